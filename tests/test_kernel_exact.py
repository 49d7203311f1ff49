"""The safety kernel reports exactly what it found: limit ID, channel, time, value, allowed.

Written to kill the mutants that survived the first mutation run (docs/mutation.md): the
existing tests checked *which* limit failed, not the figures a violation carries, and rarely
sat exactly on a boundary. Plans here are built segment by segment, so each check is hit alone.
"""

from __future__ import annotations

import numpy as np
import pytest

from emsctl.contract import Capabilities, ChannelSetpoint
from emsctl.errors import SafetyViolation
from emsctl.guard import ChannelGuard, Guard
from emsctl.limit_checks import Finding, Level, check_pulse, check_train
from emsctl.limits import CEILINGS, DEFAULTS, limits_from_mapping, tighten
from emsctl.plan import SEGMENT_DTYPE, ChannelPlan, PhaseSpan, Plan
from emsctl.verify import Violation, verify

Row = tuple[float, float, float, float, float, float, float, float, float, int, int]


def seg(t0: float, t1: float, a0: float, a1: float, hz: float | tuple[float, float] = 10.0,
        us: float | tuple[float, float] = 200.0, burst: tuple[float, int] = (0.0, 0),
        phase: int = 0) -> Row:
    f0, f1 = hz if isinstance(hz, tuple) else (hz, hz)
    w0, w1 = us if isinstance(us, tuple) else (us, us)
    return (t0, t1, a0, a1, f0, f1, w0, w1, burst[0], burst[1], phase)


def plan_of(*channels: list[Row], area: float = 20.0, sensory: bool = False,
            phases: int = 1, purpose: str | None = None) -> Plan:
    end = max(row[1] for rows in channels for row in rows)
    spans = tuple(PhaseSpan(i, f"p{i}", "stim", end * i / phases, end * (i + 1) / phases, None,
                            sensory) for i in range(phases))
    plans = tuple(ChannelPlan(n + 1, "calf-left", area, 80.0, np.array(rows, dtype=SEGMENT_DTYPE))
                  for n, rows in enumerate(channels))
    return Plan("t", end, spans, plans, 5.0, purpose=purpose)


def soft(amp: float, hz: float = 10.0, us: float = 200.0, hold_s: float = 10.0) -> list[Row]:
    """0 → amp over 10 s (within L14–L16 at the defaults), then ``hold_s`` at amp."""
    return [seg(0, 10, 0, amp, hz, us), seg(10, 10 + hold_s, amp, amp, hz, us)]


def blocks(plan: Plan, limits: object = DEFAULTS, caps: Capabilities | None = None
           ) -> list[tuple[str, int | None, float, float, float, str]]:
    return [(v.limit_id, v.channel, v.t_s, round(v.value, 6), round(v.allowed, 6), v.message)
            for v in verify(plan, limits, caps) if v.severity == "block"]  # type: ignore[arg-type]


# --- verify: electrical limits, one at a time, on and just past their boundary ---------------


def test_a_plan_within_the_defaults_has_no_violation() -> None:
    assert verify(plan_of(soft(20.0)), DEFAULTS) == []


def test_l3_peak_exactly_at_the_limit_passes_and_above_reports_value_and_limit() -> None:
    assert blocks(plan_of(soft(40.0, us=100.0))) == []
    assert blocks(plan_of(soft(40.5, us=100.0))) == [
        ("L3", 1, 0.0, 40.5, 40.0, "40.5 mA is over 40 mA")]


@pytest.mark.parametrize(
    ("us", "expected"),
    [((200.0, 350.0), ("L6", 350.0, 300.0, "350 µs is outside 100–300 µs")),
     ((350.0, 200.0), ("L6", 350.0, 300.0, "350 µs is outside 100–300 µs")),
     ((80.0, 200.0), ("L6", 80.0, 100.0, "80 µs is outside 100–300 µs")),
     ((200.0, 80.0), ("L6", 80.0, 100.0, "80 µs is outside 100–300 µs")),
     ((100.0, 300.0), None)],
)
def test_l6_reports_the_end_that_is_out_of_range(us: tuple[float, float],
                                                  expected: tuple[str, ...] | None) -> None:
    plan = plan_of([seg(0, 10, 0, 1.0, 10.0, us), seg(10, 20, 1.0, 1.0, 10.0, us[1])])
    found = [(b[0], b[3], b[4], b[5]) for b in blocks(plan)]
    assert found == ([expected] if expected else [])


@pytest.mark.parametrize(
    ("hz", "expected"),
    [((10.0, 120.0), ("L7", 120.0, 100.0, "120 Hz is outside 1–100 Hz")),
     ((0.5, 10.0), ("L7", 0.5, 1.0, "0.5 Hz is outside 1–100 Hz")),
     ((1.0, 100.0), None)],
)
def test_l7_reports_the_end_that_is_out_of_range(hz: tuple[float, float],
                                                  expected: tuple[str, ...] | None) -> None:
    plan = plan_of([seg(0, 10, 0, 1.0, hz, 100.0), seg(10, 11, 1.0, 1.0, hz[1], 100.0)])
    found = [(b[0], b[3], b[4], b[5]) for b in blocks(plan) if b[0] == "L7"]
    assert found == ([expected] if expected else [])


def test_l8_phase_charge_at_the_limit_passes_and_above_reports_it() -> None:
    limits = tighten(CEILINGS, peak_ma=40.0, phase_charge_uc=10.0)
    assert blocks(plan_of(soft(40.0, us=250.0), area=40.0), limits) == []  # exactly 10 µC
    over = tighten(CEILINGS, phase_charge_uc=10.0)
    assert blocks(plan_of(soft(40.0, us=251.0), area=100.0), over) == [
        ("L8", 1, 0.0, 10.04, 10.0, "phase charge 10.04 µC is over 10 µC")]


def test_l8_shannon_k_is_decided_through_q_squared_over_area() -> None:
    # 40 mA × 250 µs = 10 µC on 4 cm²: k = log10(100 / 4) = 1.398 ≤ 1.5
    assert [b for b in blocks(plan_of(soft(40.0, us=250.0), area=4.0)) if b[0] == "L8"] == []
    # on 2 cm²: k = log10(50) = 1.699 > 1.5
    found = [b for b in blocks(plan_of(soft(40.0, us=250.0), area=2.0)) if b[0] == "L8"]
    assert found == [("L8", 1, 0.0, 1.69897, 1.5, "Shannon k 1.70 is over 1.5 (10.0 µC on 2 cm²)")]


def test_l4_rms_current_exactly_at_the_limit_passes_and_above_reports_it() -> None:
    # I_rms = I·√(2·PW·f·1e-6): 50 mA, 250 µs, 100 Hz → 50·√0.05 = 11.1803 mA
    limits = tighten(CEILINGS, rms_ma=11.2)
    assert [b for b in blocks(plan_of(soft(50.0, 100.0, 250.0), area=100.0), limits)
            if b[0] == "L4"] == []
    limits = tighten(CEILINGS, rms_ma=11.0)
    assert [b for b in blocks(plan_of(soft(50.0, 100.0, 250.0), area=100.0), limits)
            if b[0] == "L4"] == [("L4", 1, 0.0, 11.18034, 11.0,
                                  "rms current 11.18 mA is over 11 mA")]


def test_l9_density_block_and_warning_carry_their_figures() -> None:
    # 40 mA, 200 µs, 100 Hz: I_rms = 8 mA; on 4 cm² exactly 2.0 (W5): warn, not block
    warn_at_1 = tighten(CEILINGS, current_density_warn_ma_cm2=1.0)
    w5 = verify(plan_of(soft(40.0, 100.0, 200.0), area=4.0, sensory=True, purpose="tens"),
                warn_at_1)
    assert [(v.limit_id, v.severity, round(v.value, 6), v.allowed, v.message) for v in w5] == [
        ("L9", "warn", 2.0, 1.0, "current density 2.000 mA/cm² needs attention (≥ 1)")]
    below = verify(plan_of(soft(40.0, 100.0, 200.0), area=8.1, sensory=True, purpose="tens"),
                   warn_at_1)
    assert below == []  # 0.988 mA/cm² is under the 1.0 warning
    at_warn = verify(plan_of(soft(40.0, 100.0, 200.0), area=8.0, sensory=True, purpose="tens"),
                     warn_at_1)
    assert [(v.limit_id, v.severity, v.value) for v in at_warn] == [("L9", "warn", 1.0)]
    over = blocks(plan_of(soft(40.0, 100.0, 200.0), area=3.99, sensory=True, purpose="tens"),
                  warn_at_1)
    assert ("L9", 1, 0.0, 2.005013, 2.0, "current density 2.005 mA/cm² is over 2") in over


def test_l10_power_density_limit_is_inclusive_and_the_ceiling_strict() -> None:
    # 40 mA, 200 µs, 100 Hz on 4 cm²: I_rms² = 64 mA² → 64e-6·500/4 = 0.008 W/cm²
    limits = tighten(CEILINGS, power_density_w_cm2=0.008)
    assert [b for b in blocks(plan_of(soft(40.0, 100.0, 200.0), area=4.0), limits)
            if b[0] == "L10"] == []
    limits = tighten(CEILINGS, power_density_w_cm2=0.0079)
    assert [b for b in blocks(plan_of(soft(40.0, 100.0, 200.0), area=4.0), limits)
            if b[0] == "L10"] == [("L10", 1, 0.0, 0.008, 0.0079,
                                   "power density 0.0080 W/cm² is not under 0.0079")]


def test_l13_area_just_under_the_minimum_is_reported_at_t0() -> None:
    assert blocks(plan_of(soft(1.0), area=3.99, purpose="tens")) == [
        ("L13", 1, 0.0, 3.99, 4.0, "electrode area 3.99 cm² is under 4 cm²")]
    assert blocks(plan_of(soft(1.0), area=4.0, purpose="tens")) == []


@pytest.mark.parametrize("purpose", ["relaxation", "massage", "circulation", "recovery",
                                     "training", None])
def test_l13_ems_and_unknown_purposes_need_16_cm2(purpose: str | None) -> None:
    ems = ("L13", 1, 0.0, 15.99, 16.0, "electrode area 15.99 cm² is under 16 cm², the smallest "
           "pad for EMS programs; only TENS programs may use pads down to 4 cm²")
    assert blocks(plan_of(soft(1.0), area=15.99, purpose=purpose)) == [ems]
    assert blocks(plan_of(soft(1.0), area=16.0, purpose=purpose)) == []
    # a limits file that asks for larger pads than 16 cm² applies to EMS as to TENS
    larger = tighten(DEFAULTS, electrode_area_min_cm2=20.0)
    for kind in (purpose, "tens"):
        assert blocks(plan_of(soft(1.0), area=19.9, purpose=kind), larger) == [
            ("L13", 1, 0.0, 19.9, 20.0, "electrode area 19.9 cm² is under 20 cm²")]


def test_the_product_maximum_inside_a_segment_is_found() -> None:
    # amplitude 0 → 40 while pulse width 400 → 0 over one segment: Q(x) = 40x · 400(1-x) / 1000
    # peaks at x = 1/2 with 4 µC; neither end (0 µC) shows it
    limits = tighten(CEILINGS, phase_charge_uc=3.9, shannon_k=1.85, plan_rise_ma_per_s=80.0)
    plan = plan_of([seg(0, 10, 0, 40, 10.0, (400.0, 0.0001)), seg(10, 11, 40, 40, 10.0, 100.0)],
                   area=100.0)
    charge = [(b[3], b[5]) for b in blocks(plan, limits) if b[0] == "L8"]
    assert charge == [(4.000001, "phase charge 4.00 µC is over 3.9 µC")]  # at x = 1/2


# --- verify: starts, steps, rises, soft start (L14–L17) --------------------------------------


def test_l14_output_that_starts_above_zero_is_reported() -> None:
    plan = plan_of([seg(0, 10, 2.0, 2.0)])
    assert ("L14", 1, 0.0, 2.0, 0.0, "output starts at 2.0 mA, not at 0") in blocks(plan)


def test_a_step_up_from_zero_is_l14_and_from_a_level_is_l17_with_its_size() -> None:
    plan = plan_of([seg(0, 10, 0, 5), seg(10, 20, 5, 5), seg(20, 21, 0, 0), seg(21, 30, 3, 3),
                    seg(30, 40, 4, 4)])
    steps = [b for b in blocks(plan) if b[0] in {"L14", "L17"}]
    message = "amplitude steps up by {:.2f} mA (never step up; ramp instead)"
    assert steps == [("L14", 1, 21.0, 3.0, 0.0, message.format(3.0)),
                     ("L17", 1, 30.0, 1.0, 0.0, message.format(1.0))]


def test_l16_rise_rate_over_the_plan_limit_is_reported_with_its_rate() -> None:
    plan = plan_of([seg(0, 10, 0, 20), seg(10, 10.25, 20, 31), seg(10.25, 20, 31, 31)])
    assert [b for b in blocks(plan) if b[0] == "L16"] == [
        ("L16", 1, 10.0, 44.0, 40.0, "amplitude rises at 44.0 mA/s, over 40 mA/s")]
    exactly = plan_of([seg(0, 10, 0, 20), seg(10, 10.25, 20, 30), seg(10.25, 20, 30, 30)])
    assert [b for b in blocks(exactly) if b[0] == "L16"] == []


def test_l16_a_ramp_from_zero_shorter_than_the_minimum_is_reported() -> None:
    # two rising pieces that join count as one ramp: 0 → 1 → 2 mA in 0.4 + 0.4 s < 1 s
    plan = plan_of([seg(0, 10, 0, 10), seg(10, 11, 10, 10), seg(11, 12, 0, 0),
                    seg(12, 12.4, 0, 1), seg(12.4, 12.8, 1, 2), seg(12.8, 20, 2, 2)])
    found = [b for b in blocks(plan) if b[0] == "L16"]
    assert found == [("L16", 1, 12.0, 0.8, 1.0,
                      "a ramp from 0 to 2.0 mA takes 0.80 s, under 1 s")]
    ok = plan_of([seg(0, 10, 0, 10), seg(10, 11, 10, 10), seg(11, 12, 0, 0),
                  seg(12, 12.5, 0, 1), seg(12.5, 13, 1, 2), seg(13, 20, 2, 2)])
    assert [b for b in blocks(ok) if b[0] == "L16"] == []


def test_l15_a_soft_start_above_the_straight_line_is_reported_where_it_leaves_it() -> None:
    # peak 10 mA: within the first 5 s the amplitude must stay under 2 mA/s · t
    plan = plan_of([seg(0, 2, 0, 5), seg(2, 10, 5, 10), seg(10, 20, 10, 10)])
    assert [b for b in blocks(plan) if b[0] == "L15"] == [
        ("L15", 1, 2.0, 5.0, 4.0, "soft start reaches 5.0 mA after 2.0 s; 0 → peak must take "
                                  "≥ 5 s")]
    on_the_line = plan_of([seg(0, 5, 0, 10), seg(5, 20, 10, 10)])
    assert [b for b in blocks(on_the_line) if b[0] == "L15"] == []


def test_l15_checks_only_the_first_seconds_of_output_after_a_silent_start() -> None:
    plan = plan_of([seg(0, 3, 0, 0), seg(3, 8, 0, 10), seg(8, 9, 10, 10), seg(9, 20, 10, 10)])
    assert [b for b in blocks(plan) if b[0] in {"L15", "L14"}] == []


# --- verify: trains (L18) and session length (L19) -------------------------------------------


def _train(on_s: float, off_s: float, cycles: int, hz: float = 30.0) -> list[Row]:
    rows, t = [], 0.0
    for _ in range(cycles):
        rows += [seg(t, t + 1, 0, 10, hz, 100.0), seg(t + 1, t + 1 + on_s, 10, 10, hz, 100.0),
                 seg(t + 1 + on_s, t + 2 + on_s, 10, 0, hz, 100.0),
                 seg(t + 2 + on_s, t + 2 + on_s + off_s, 0, 0, hz, 100.0)]
        t += 2 + on_s + off_s
    return rows


def test_l18_a_train_longer_than_allowed_reports_its_length() -> None:
    limits = limits_from_mapping({"soft_start_min_s": 2.0})
    found = [b for b in blocks(plan_of(_train(9.0, 20.0, 2)), limits) if b[0] == "L18"]
    assert found == [("L18", 1, 0.0, 11.0, 10.0, "a 11.0 s train at ≥ 20 Hz is longer than 10 s"),
                     ("L18", 1, 31.0, 11.0, 10.0, "a 11.0 s train at ≥ 20 Hz is longer than 10 s")]


def test_l18_off_time_needs_the_minimum_and_at_least_the_on_time() -> None:
    limits = limits_from_mapping({"soft_start_min_s": 2.0})
    found = [b for b in blocks(plan_of(_train(6.0, 7.0, 2)), limits) if b[0] == "L18"]
    assert found[0] == ("L18", 1, 8.0, 7.0, 8.0, "only 7.0 s off after a 8.0 s train; needs "
                                                 "≥ 8.0 s")
    relaxed = CEILINGS  # ceilings: OFF ≥ 5 s only
    assert [b for b in blocks(plan_of(_train(6.0, 7.0, 2)), relaxed) if b[0] == "L18"] == []
    short = [b for b in blocks(plan_of(_train(2.0, 4.0, 2)), relaxed) if b[0] == "L18"]
    assert short[0][2:5] == (4.0, 4.0, 5.0)


def test_l18_exemptions_sub_tetanic_sensory_and_short_bursts() -> None:
    limits = limits_from_mapping({"soft_start_min_s": 2.0})
    long_train = _train(30.0, 1.0, 1)
    assert [b for b in blocks(plan_of(_train(30.0, 1.0, 1, hz=19.99)), limits)
            if b[0] == "L18"] == []
    assert [b for b in blocks(plan_of(long_train, sensory=True), limits) if b[0] == "L18"] == []
    burst = [seg(0, 10, 0, 10, 100.0, 100.0, (2.0, 10)), seg(10, 60, 10, 10, 100.0, 100.0,
                                                           (2.0, 10))]
    assert [b for b in blocks(plan_of(burst), limits) if b[0] == "L18"] == []  # 100 ms, 20 %
    long_burst = [seg(0, 10, 0, 10, 100.0, 100.0, (1.0, 21)),
                  seg(10, 60, 10, 10, 100.0, 100.0, (1.0, 21))]  # 210 ms > 200 ms
    assert [b[0] for b in blocks(plan_of(long_burst), limits)].count("L18") == 1
    dense = [seg(0, 10, 0, 10, 100.0, 100.0, (3.0, 10)), seg(10, 60, 10, 10, 100.0, 100.0,
                                                           (3.0, 10))]  # 30 % duty
    assert [b[0] for b in blocks(plan_of(dense), limits)].count("L18") == 1


def test_l19_stimulation_over_the_session_limit_reports_its_minutes() -> None:
    limits = tighten(DEFAULTS, session_max_s=600.0)
    plan = plan_of(soft(10.0, hold_s=591.0))
    assert [b for b in blocks(plan, limits) if b[0] == "L19"] == [
        ("L19", None, 0.0, 601.0, 600.0, "stimulation lasts 10.0 min, over 10 min")]
    assert [b for b in blocks(plan_of(soft(10.0, hold_s=590.0)), limits) if b[0] == "L19"] == []


# --- verify: device capabilities -------------------------------------------------------------


def caps(**changes: object) -> Capabilities:
    base: dict[str, object] = dict(
        model="Dev", channels=2, amplitude_max_ma=50.0, amplitude_step_ma=0.0,
        pulse_width_min_us=100.0, pulse_width_max_us=300.0, frequency_min_hz=2.0,
        frequency_max_hz=100.0, frequency_per_channel=True, update_period_s=0.1, max_lease_s=1.0,
        has_output_watchdog=True, bursts=False)
    base.update(changes)
    return Capabilities(**base)  # type: ignore[arg-type]


def _device(plan: Plan, capabilities: Capabilities) -> list[tuple[object, ...]]:
    return [(v.channel, v.t_s, v.value, v.allowed, v.message)
            for v in verify(plan, CEILINGS, capabilities) if v.limit_id == "device"]


def test_a_device_with_fewer_channels_is_reported_once_per_missing_channel() -> None:
    plan = plan_of(soft(5.0), soft(5.0), soft(5.0))
    assert _device(plan, caps()) == [(3, 0.0, 3, 2, "Dev has only 2 channels")]


@pytest.mark.parametrize(
    ("plan", "expected"),
    [(plan_of(soft(51.0, 10.0, 200.0)), (51.0, 50.0, "51 mA is outside what Dev can do (0–50 mA)")),
     (plan_of(soft(5.0, 10.0, 310.0)), (310.0, 300.0,
                                        "310 µs is outside what Dev can do (100–300 µs)")),
     (plan_of(soft(5.0, 10.0, 90.0)), (90.0, 100.0,
                                       "90 µs is outside what Dev can do (100–300 µs)")),
     (plan_of(soft(5.0, 101.0, 200.0)), (101.0, 100.0,
                                         "101 Hz is outside what Dev can do (2–100 Hz)")),
     (plan_of(soft(5.0, 1.5, 200.0)), (1.5, 2.0, "1.5 Hz is outside what Dev can do (2–100 Hz)"))],
)
def test_a_device_range_violation_reports_value_and_the_bound(
    plan: Plan, expected: tuple[float, float, str]
) -> None:
    assert _device(plan, caps()) == [(1, 0.0, *expected)]  # once, though it is max and min
    assert _device(plan_of(soft(50.0, 100.0, 300.0)), caps()) == []
    assert _device(plan_of(soft(5.0, 2.0, 100.0)), caps()) == []


def test_bursts_on_a_device_that_cannot_time_them_are_reported() -> None:
    burst = plan_of([seg(0, 10, 0, 5, 50.0, 200.0, (2.0, 5)), seg(10, 20, 5, 5, 50.0, 200.0,
                                                                (2.0, 5))])
    assert _device(burst, caps()) == [(1, 0.0, 1.0, 0.0, "Dev cannot time bursts; this phase "
                                                          "needs them")]
    assert _device(burst, caps(bursts=True)) == []


def test_a_silent_channel_has_no_device_findings() -> None:
    assert _device(plan_of([seg(0, 10, 0, 0, 500.0, 900.0)]), caps()) == []


def test_one_global_frequency_with_two_live_channels_at_different_rates_is_reported() -> None:
    plan = plan_of(soft(5.0, 10.0), [seg(0, 4, 0, 0, 40.0), seg(4, 14, 0, 5, 40.0),
                                     seg(14, 20, 5, 5, 40.0)])
    message = ("the device has one frequency for all channels, but the plan runs channels at "
               "different frequencies at the same time")
    assert _device(plan, caps(frequency_per_channel=False)) == [(None, 10.0, 30.0, 0.0, message)]
    same = plan_of(soft(5.0, 10.0), [seg(0, 4, 0, 0, 40.0), seg(4, 14, 0, 5, 10.0)])
    assert _device(same, caps(frequency_per_channel=False)) == []
    assert _device(plan, caps(frequency_per_channel=True)) == []


def test_each_phase_reports_its_own_first_violation() -> None:
    rows = [seg(0, 10, 0, 50, phase=0), seg(10, 20, 50, 50, phase=0),
            seg(20, 30, 50, 50, phase=1), seg(30, 40, 50, 50, phase=1)]
    assert [(b[0], b[2]) for b in blocks(plan_of(rows, phases=2)) if b[0] == "L3"] == [
        ("L3", 0.0), ("L3", 20.0)]


# --- check_pulse / check_train findings -------------------------------------------------------


def test_check_pulse_findings_carry_value_relation_limit_and_unit() -> None:
    found = check_pulse(81, 401, 151, 151, 3, CEILINGS)
    assert [(f.limit_id, f.quantity, round(f.value, 4), f.relation, f.allowed, f.unit)
            for f in found] == [
        ("L3", "peak_ma", 81.0, "≤", 80.0, "mA"),
        ("L6", "pulse_width_max_us", 401.0, "≤", 400.0, "µs"),
        ("L7", "frequency_max_hz", 151.0, "≤", 150.0, "Hz"),
        ("L8", "phase_charge_uc", 32.481, "≤", 32.0, "µC"),
        ("L8", "shannon_k", 2.5461, "≤", 1.85, ""),
        ("L9", "current_density_ma_cm2", 9.3959, "≤", 2.0, "mA/cm²"),
        ("L13", "electrode_area_min_cm2", 3.0, "≥", 4.0, "cm²"),
    ]
    low = check_pulse(1, 49, 0.5, 0.5, 4, CEILINGS)
    assert [(f.quantity, f.value, f.relation, f.allowed) for f in low] == [
        ("pulse_width_min_us", 49.0, "≥", 50.0), ("frequency_min_hz", 0.5, "≥", 1.0)]


def test_check_pulse_on_every_boundary_passes() -> None:
    assert check_pulse(80, 400, 150, 1, 400, CEILINGS) == []
    assert check_pulse(40, 200, 100, 100, 16, DEFAULTS) == []


def test_check_pulse_rms_and_power_findings() -> None:
    limits = tighten(CEILINGS, rms_ma=8, power_density_w_cm2=0.0079)
    found = {f.quantity: f for f in check_pulse(40.0001, 200, 100, 100, 4, limits)}
    assert (found["rms_ma"].relation, found["rms_ma"].allowed) == ("≤", 8.0)
    assert round(found["rms_ma"].value, 4) == 8.0
    assert (found["power_density_w_cm2"].relation, found["power_density_w_cm2"].allowed) == (
        "≤", 0.0079)
    # 80 mA, 400 µs, 150 Hz: I_rms² = 768 mA² → 0.384 W; on 1.536 cm² exactly 0.25 W/cm²
    at_ceiling = check_pulse(80, 400, 150, 150, "1.536", CEILINGS)
    power = [f for f in at_ceiling if f.quantity == "power_density_w_cm2"]
    assert [(f.relation, f.allowed) for f in power] == [("<", 0.25)]


def test_check_pulse_warns_for_density_at_the_warning_level_only_when_not_blocked() -> None:
    warn_at_1 = tighten(CEILINGS, current_density_warn_ma_cm2=1.0)
    warn = check_pulse(40, 200, 100, 100, 8, warn_at_1)
    assert warn == [Finding("L9", "current_density_warn_ma_cm2", 1.0, "<", 1.0, "mA/cm²",
                            Level.WARN)]
    assert str(warn[0]) == "L9 warning: current_density_warn_ma_cm2 = 1 mA/cm² (allowed < 1 mA/cm²)"
    assert check_pulse(40, 200, 100, 100, 8.01, warn_at_1) == []
    assert check_pulse(40, 200, 100, 100, 4, CEILINGS) == []  # warning level = block level


def test_check_pulse_refuses_negative_inputs_and_a_zero_area() -> None:
    for args in ((-1, 200, 10, 10, 4), (1, -1, 10, 10, 4), (1, 200, -1, 10, 4),
                 (1, 200, 10, -1, 4), (1, 200, 10, 10, 0)):
        with pytest.raises(ValueError, match="non-negative values and a positive area"):
            check_pulse(*args, CEILINGS)
    assert check_pulse(0, 200, 10, 10, 4, CEILINGS) == []


def test_check_train_findings_and_exemptions() -> None:
    found = check_train(30, 11, 7, DEFAULTS)
    assert [(f.quantity, f.value, f.relation, f.allowed) for f in found] == [
        ("train_on_max_s", 11.0, "≤", 10.0), ("off_at_least_on", 7.0, "≥", 11.0)]
    assert [f.quantity for f in check_train(30, 5, 4, DEFAULTS)] == ["train_off_min_s",
                                                                     "off_at_least_on"]
    assert check_train(30, 10, 10, DEFAULTS) == []
    assert check_train(19.99, 60, 0, DEFAULTS) == []
    assert check_train(20, 60, 0.001, DEFAULTS) != []
    assert check_train(30, 60, 0, DEFAULTS, motor_level=False) == []
    assert check_train(100, 0.2, 0.6, DEFAULTS) == []  # burst: 200 ms, 25 % duty
    assert check_train(100, 0.2, 0.59, DEFAULTS) != []
    assert check_train(100, 0.21, 1.0, DEFAULTS) != []
    with pytest.raises(ValueError, match="positive period"):
        check_train(30, 0, 0, DEFAULTS)
    with pytest.raises(ValueError, match="positive period"):
        check_train(30, -1, 5, DEFAULTS)


# --- guard --------------------------------------------------------------------------------------


def guard(limits: object = DEFAULTS, cap_ma: float = 30.0, area: float = 20.0,
          step_ma: float = 0.0) -> Guard:
    return Guard(limits, [ChannelGuard(cap_ma, area)], step_ma)  # type: ignore[arg-type]


def ramp(g: Guard, amp: float, hz: float = 10.0, us: float = 200.0) -> float:
    t, level = 0.0, 0.0
    g.check(t, t, [ChannelSetpoint(0.0, hz, us)])
    while level < amp:
        level = min(amp, level + 2.0)
        t += 0.1
        g.check(t, t, [ChannelSetpoint(level, hz, us)])
    return t


@pytest.mark.parametrize(
    ("setpoint", "message"),
    [(ChannelSetpoint(30.5, 10.0, 200.0),
      "L3: channel 1 at 30.50 mA is over its cap of 30.00 mA"),
     (ChannelSetpoint(10.0, 10.0, 301.0), "L6: channel 1 pulse width 301 µs is outside 100–300 µs"),
     (ChannelSetpoint(10.0, 10.0, 99.0), "L6: channel 1 pulse width 99 µs is outside 100–300 µs"),
     (ChannelSetpoint(10.0, 101.0, 200.0), "L7: channel 1 frequency 101 Hz is outside 1–100 Hz"),
     (ChannelSetpoint(10.0, 0.5, 200.0), "L7: channel 1 frequency 0.5 Hz is outside 1–100 Hz"),
     (ChannelSetpoint(-1.0, 10.0, 200.0), "channel 1: negative amplitude -1.0 mA"),
     (ChannelSetpoint(float("nan"), 10.0, 200.0), "channel 1: a setpoint is not a finite number"),
     (ChannelSetpoint(10.0, float("inf"), 200.0), "channel 1: a setpoint is not a finite number")],
)
def test_guard_refuses_each_field_with_its_own_sentence(setpoint: ChannelSetpoint,
                                                         message: str) -> None:
    g = guard()
    t = ramp(g, 30.0 if setpoint.amplitude_ma == 30.5 else 10.0)
    with pytest.raises(SafetyViolation) as info:
        g.check(t + 1.0, t + 1.0, [setpoint])
    assert str(info.value) == f"safety guard stopped the session: {message}"
    assert g.latched


def test_guard_passes_every_field_exactly_on_its_limit() -> None:
    g = guard(cap_ma=30.0)
    t = ramp(g, 30.0, hz=100.0, us=100.0)
    assert g.check(t + 0.1, t, [ChannelSetpoint(30.0, 100.0, 300.0)])[0].amplitude_ma == 30.0
    assert g.check(t + 0.2, t, [ChannelSetpoint(30.0, 1.0, 300.0)])[0].frequency_hz == 1.0
    assert g.peak_ma == [30.0]
    assert not g.latched


def test_guard_rise_allows_the_rate_plus_one_device_step_and_no_more() -> None:
    g = guard(step_ma=0.5)
    g.check(0.0, 0.0, [ChannelSetpoint(0.0, 10.0, 200.0)])
    assert g.check(0.1, 0.1, [ChannelSetpoint(4.5, 10.0, 200.0)])  # 40 mA/s · 0.1 s + 0.5
    # the one step is spent: the next 0.1 s adds the rate only (over both checks: 8 mA of
    # slew and one step; each check taking a step of its own added up to 45 mA/s)
    with pytest.raises(SafetyViolation, match=r"L16/L17: channel 1 rose 4.01 mA in 0.100 s, "
                                              r"more than 4.00 mA"):
        g.check(0.2, 0.2, [ChannelSetpoint(8.51, 10.0, 200.0)])
    again = guard(step_ma=0.5)
    again.check(0.0, 0.0, [ChannelSetpoint(0.0, 10.0, 200.0)])
    again.check(0.1, 0.1, [ChannelSetpoint(4.5, 10.0, 200.0)])
    assert again.check(0.2, 0.2, [ChannelSetpoint(8.5, 10.0, 200.0)])


def test_guard_measures_the_rise_from_the_last_checked_time_not_the_session_start() -> None:
    g = guard()
    g.check(5.0, 0.0, [ChannelSetpoint(0.0, 10.0, 200.0)])
    with pytest.raises(SafetyViolation, match="L16/L17"):
        g.check(5.1, 0.1, [ChannelSetpoint(5.0, 10.0, 200.0)])


def test_guard_rechecks_a_setpoint_only_when_it_changes() -> None:
    g = guard()
    t = ramp(g, 10.0)
    same = [ChannelSetpoint(10.0, 10.0, 200.0)]
    assert g.check(t + 0.1, t, same) == tuple(same)
    assert g.check(t + 0.2, t, same) == tuple(same)
    with pytest.raises(SafetyViolation, match="L6"):
        g.check(t + 0.3, t, [ChannelSetpoint(10.0, 10.0, 350.0)])


def test_guard_charge_k_rms_density_and_power_each_stop_with_their_figure() -> None:
    tight = tighten(CEILINGS, phase_charge_uc=5.0)
    g = guard(tight, cap_ma=80.0, area=100.0)
    t = ramp(g, 20.0, us=250.0)
    with pytest.raises(SafetyViolation, match=r"L8: channel 1 phase charge 5.25 µC is over 5 µC"):
        g.check(t + 0.1, t, [ChannelSetpoint(21.0, 10.0, 250.0)])
    g = guard(tighten(CEILINGS, shannon_k=0.5), cap_ma=80.0, area=4.0)
    t = ramp(g, 4.0, us=250.0)  # Q = 1 µC, k = log10(1/4) = -0.6
    with pytest.raises(SafetyViolation, match=r"L8: channel 1 Shannon k 0.51 is over 0.5"):
        g.check(t + 1.0, t, [ChannelSetpoint(9.0, 10.0, 400.0)])  # 3.6 µC: Q²/A = 3.24
    g = guard(tighten(CEILINGS, rms_ma=2.0), cap_ma=80.0, area=100.0)
    t = ramp(g, 20.0, hz=10.0, us=200.0)  # I_rms = 20·√0.004 = 1.265 mA
    with pytest.raises(SafetyViolation, match=r"L4: channel 1 rms current 2.00 mA is over 2 mA"):
        g.check(t + 0.1, t, [ChannelSetpoint(20.0, 25.1, 200.0)])
    g = guard(tighten(CEILINGS, current_density_ma_cm2=0.1), cap_ma=80.0, area=20.0)
    t = ramp(g, 20.0, hz=10.0, us=200.0)  # 1.265 / 20 = 0.063
    with pytest.raises(SafetyViolation, match=r"L9: channel 1 current density 0.126 mA/cm² is "
                                              r"over 0.1 mA/cm²"):
        g.check(t + 0.1, t, [ChannelSetpoint(20.0, 40.0, 200.0)])
    g = guard(tighten(CEILINGS, power_density_w_cm2=0.0001), cap_ma=80.0, area=20.0)
    t = ramp(g, 20.0, hz=10.0, us=200.0)  # 1.6e-6 · 500 / 20 = 4e-5
    with pytest.raises(SafetyViolation, match=r"L10: channel 1 power density 0.0002 W/cm² is "
                                              r"over 0.0001 W/cm²"):
        g.check(t + 0.1, t, [ChannelSetpoint(20.0, 60.0, 200.0)])


def test_guard_w5_boundary_is_decided_exactly() -> None:
    g = guard(CEILINGS, cap_ma=80.0, area=4.0)
    t = ramp(g, 40.0, hz=100.0, us=200.0)  # exactly 2.0 mA/cm²
    assert g.check(t + 0.1, t, [ChannelSetpoint(40.0, 100.0, 200.0)])
    assert not g.latched


def test_guard_wrong_number_of_setpoints_latches() -> None:
    g = guard()
    with pytest.raises(SafetyViolation, match="2 setpoints for 1 channels"):
        g.check(0.0, 0.0, [ChannelSetpoint(0.0, 10.0, 200.0)] * 2)
    assert g.latched


def test_guard_session_time_limit_is_inclusive_and_ignores_zero_output() -> None:
    g = guard()
    t = ramp(g, 5.0)
    limit = DEFAULTS.session_max_s
    assert g.check(t + 0.1, limit, [ChannelSetpoint(5.0, 10.0, 200.0)])
    assert g.check(t + 0.2, limit + 10, [ChannelSetpoint(0.0, 10.0, 200.0)])
    g = guard()
    t = ramp(g, 5.0)
    with pytest.raises(SafetyViolation, match=r"L19: stimulation time 1801 s is over 1800 s"):
        g.check(t + 0.1, limit + 1.0, [ChannelSetpoint(5.0, 10.0, 200.0)])


def test_guard_latched_returns_zero_setpoints_for_zero_input() -> None:
    g = guard()
    g.latch()
    out = g.check(0.0, 0.0, [ChannelSetpoint(0.0, 10.0, 200.0)])
    assert out == (ChannelSetpoint(0.0, 0.0, 0.0),) or out[0].amplitude_ma == 0.0
    with pytest.raises(SafetyViolation, match="output after stop"):
        g.check(0.1, 0.1, [ChannelSetpoint(0.1, 10.0, 200.0)])


def test_violation_text_names_channel_and_time() -> None:
    v = Violation("L3", 2, 12.34, 50.0, 40.0, "50.0 mA is over 40 mA")
    assert str(v) == "L3: channel 2, t=12.3 s: 50.0 mA is over 40 mA"
    assert str(Violation("L19", None, 0.0, 1.0, 1.0, "x")) == "L19: t=0.0 s: x"


# --- second batch: survivors of the re-run (docs/mutation.md) --------------------------------


@pytest.mark.parametrize(
    ("limit_name", "setpoint", "area"),
    [("phase_charge_uc", ChannelSetpoint(20.000001, 10.0, 250.0), 100.0),  # 5.00000025 µC > 5
     ("rms_ma", ChannelSetpoint(20.000001, 25.0, 200.0), 100.0),  # 2.0000001 mA > 2
     ("power_density_w_cm2", ChannelSetpoint(20.000001, 25.0, 200.0), 20.0)],  # 1.00000001e-4
)
def test_guard_refuses_a_value_a_hair_above_its_limit_inside_the_float_noise_band(
    limit_name: str, setpoint: ChannelSetpoint, area: float
) -> None:
    """Within 1e-6 of a limit the guard asks the exact rationals; a hair above is still above."""
    value = {"phase_charge_uc": 5.0, "rms_ma": 2.0, "power_density_w_cm2": 0.0001}[limit_name]
    g = guard(tighten(CEILINGS, **{limit_name: value}), cap_ma=80.0, area=area)
    t = ramp(g, 20.0, hz=setpoint.frequency_hz, us=setpoint.pulse_width_us)  # exactly on it
    with pytest.raises(SafetyViolation):
        g.check(t + 1.0, t, [setpoint])


def test_guard_refuses_shannon_k_a_hair_above_its_limit() -> None:
    # Q = 2 µC (8 mA, 250 µs) on 4 cm²: Q²/A = 1 → k = 0 exactly; a hair more is above k = 0
    g = guard(tighten(CEILINGS, shannon_k=0.0), cap_ma=80.0, area=4.0)
    t = ramp(g, 8.0, us=250.0)
    with pytest.raises(SafetyViolation, match="Shannon k"):
        g.check(t + 1.0, t, [ChannelSetpoint(8.000001, 10.0, 250.0)])


def test_silent_segments_are_not_checked_for_width_or_rate() -> None:
    plan = plan_of([seg(0, 5, 0, 0, 0.0001, 0.0001), seg(5, 15, 0, 10), seg(15, 25, 10, 10)])
    assert blocks(plan) == []


def test_check_pulse_and_check_train_lower_boundaries_are_inclusive() -> None:
    assert check_pulse(1, 50, 1, 1, 400, CEILINGS) == []
    assert check_pulse(1, 100, 1, 1, 4, DEFAULTS) == []
    assert check_train(30, 5, 5, DEFAULTS) == []
    assert [f.quantity for f in check_train(30, 1, 4.99, DEFAULTS)] == ["train_off_min_s"]
    assert str(check_train(30, 1, 4.99, DEFAULTS)[0]) == (
        "L18: train_off_min_s = 4.99 s (allowed ≥ 5 s)")
    with pytest.raises(ValueError, match="a train needs non-negative times and a positive period"):
        check_train(-1, 5, 5, DEFAULTS)
    with pytest.raises(ValueError, match=r"^operating point needs non-negative values and a "
                                         r"positive area$"):
        check_pulse(1, 1, 1, 1, 0, CEILINGS)


def test_finding_text_without_a_unit_has_no_stray_space() -> None:
    k = check_pulse(81, 401, 151, 151, 3, CEILINGS)[4]
    assert str(k) == "L8: shannon_k = 2.55 (allowed ≤ 1.85)"


def test_limits_mapping_accepts_equal_bounds_and_refuses_heartbeat_equal_to_watchdog() -> None:
    from emsctl.errors import LimitsFileError
    from emsctl.limits import limits_from_mapping as from_mapping

    same = from_mapping({"pulse_width_min_us": 200, "pulse_width_max_us": 200})
    assert (same.pulse_width_min_us, same.pulse_width_max_us) == (200.0, 200.0)
    with pytest.raises(LimitsFileError, match=r"^limits: heartbeat_s \(0.25\) must be above 0 "):
        from_mapping({"heartbeat_s": 0.25, "watchdog_s": 0.25})


@pytest.mark.parametrize(
    ("data", "message"),
    [({"off_at_least_on": 1}, "off_at_least_on must be true or false, not 1."),
     ({"peak_ma": "x" * 50}, "peak_ma must be a number, not '" + "x" * 36 + "...."),
     ({"peak_ma": [1]}, "peak_ma must be a number, not list."),
     ({"sessions_per_day": 2.0}, "sessions_per_day must be a whole number, not 2."),
     ({"rms_ma": float("inf")}, "rms_ma must be a finite number, not inf."),
     ({"rms_ma": -1}, "rms_ma must not be negative, not -1."),
     ({"shannon_k": 2}, "shannon_k = 2 would loosen L8 (ceiling 1.85); limits can only be "
                        "tightened."),
     ({"peak_mx": 1}, "unknown key 'peak_mx' (did you mean 'peak_ma'?)."),
     ({"zzz": 1}, "unknown key 'zzz'.")],
)
def test_limits_file_messages_quote_the_value_as_written(data: dict[str, object],
                                                         message: str) -> None:
    from emsctl.errors import LimitsFileError

    with pytest.raises(LimitsFileError) as info:
        limits_from_mapping(data)
    assert str(info.value).endswith(message)


def test_boolean_limit_shown_as_true_or_false() -> None:
    from emsctl.errors import LimitsFileError

    with pytest.raises(LimitsFileError, match=r"off_at_least_on must be a|not true\."):
        limits_from_mapping({"peak_ma": True})
    with pytest.raises(LimitsFileError, match=r"peak_ma must be a number, not true\.$"):
        limits_from_mapping({"peak_ma": True})
    with pytest.raises(LimitsFileError, match=r"peak_ma must be a number, not false\.$"):
        limits_from_mapping({"peak_ma": False})


def test_exact_refuses_non_numbers_with_a_sentence() -> None:
    from decimal import Decimal

    from emsctl.formulas import exact

    cases = [(True, TypeError, "a boolean is not a quantity"),
             ("abc", ValueError, "not a decimal number: 'abc'"),
             (float("nan"), ValueError, "not a finite number: nan"),
             (Decimal("Infinity"), ValueError, "not a finite number: Decimal('Infinity')"),
             ([1], TypeError, "not a number: [1]")]
    for value, kind, text in cases:
        with pytest.raises(kind) as info:
            exact(value)  # type: ignore[arg-type]
        assert str(info.value) == text


def test_exceeds_rms_current_boundary_and_degenerate_limits() -> None:
    from emsctl.exact_verdicts import exceeds_rms_current

    # 10 mA, 50 µs, 100 Hz: I_rms² = 100 · 0.01 = 1 → exactly 1 mA
    assert not exceeds_rms_current(10, 50, 100, 1)
    assert exceeds_rms_current(10, 50, 100, 1, or_equal=True)
    assert not exceeds_rms_current(0, 50, 100, 0)
    assert exceeds_rms_current(0, 50, 100, -1)


def test_shannon_k_array_of_zero_charge_is_minus_infinity_without_a_warning() -> None:
    import warnings

    from emsctl.formulas import shannon_k_array

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert shannon_k_array([0.0], [4.0])[0] == -np.inf


def test_energy_per_pulse_l11_finding_is_complete() -> None:
    # L11 never binds within the other ceilings; check it with a huge pulse on loose input
    found = [f for f in check_pulse(10000, 4000, 1, 1, 10**6, CEILINGS) if f.limit_id == "L11"]
    assert [(f.quantity, round(f.value, 3), f.relation, f.allowed, f.unit) for f in found] == [
        ("energy_per_pulse_mj", 400000.0, "≤", 300.0, "mJ")]


# --- third batch: bursts, segment starts, train ends, later soft-start segments --------------


def _burst_plan(rate_hz: float, pulses: int, amp: float = 40.0) -> Plan:
    b = (rate_hz, pulses)
    return plan_of([seg(0, 10, 0, amp, 100.0, 200.0, b), seg(10, 20, amp, amp, 100.0, 200.0, b)],
                   area=100.0, sensory=True)


def test_rms_of_bursts_counts_bursts_times_pulses_not_the_inner_rate() -> None:
    # 40 mA, 200 µs: at a whole burst rate N = 2 × 10 = 20 pulses/s → I_rms² = 1600 · 0.008
    # = 12.8 (3.58 mA);
    # at the inner 100 Hz it would be 64 (8 mA); at 2 / 10 = 0.2 it would be 0.128 (0.36 mA)
    assert [b[3] for b in blocks(_burst_plan(2.0, 10), tighten(CEILINGS, rms_ma=3.5))
            if b[0] == "L4"] == [3.577709]
    assert [b for b in blocks(_burst_plan(2.0, 10), tighten(CEILINGS, rms_ma=3.6))
            if b[0] == "L4"] == []


def test_one_burst_a_second_is_counted_as_bursts_not_at_the_inner_rate() -> None:
    # 1 burst/s × 10 pulses at 100 Hz: N = 10 → I_rms = 40 · √(2·200·10e-6) = 2.530 mA
    assert [b[3] for b in blocks(_burst_plan(1.0, 10), tighten(CEILINGS, rms_ma=2.5))
            if b[0] == "L4"] == [2.529822]


def test_bursts_slower_than_one_per_second_are_still_bursts() -> None:
    # 0.5 bursts/s × 10 pulses at 100 Hz: the worst 1 s window holds a whole burst, N = 10
    # (not 0.5 × 10 = 5): I_rms = 40 · √(2·200·10e-6) = 2.530 mA (at N = 5 it was 1.789 mA)
    assert [b[3] for b in blocks(_burst_plan(0.5, 10), tighten(CEILINGS, rms_ma=2.5))
            if b[0] == "L4"] == [2.529822]
    assert [b for b in blocks(_burst_plan(0.5, 10), tighten(CEILINGS, rms_ma=2.53))
            if b[0] == "L4"] == []
    limits = limits_from_mapping({"soft_start_min_s": 2.0})
    long_burst_train = plan_of([seg(0, 10, 0, 10, 100.0, 100.0, (0.5, 10)),
                                seg(10, 60, 10, 10, 100.0, 100.0, (0.5, 10))])
    assert [b for b in blocks(long_burst_train, limits) if b[0] == "L18"] == []  # 100 ms, 5 %


def test_a_segment_that_starts_high_is_checked_at_its_start() -> None:
    plan = plan_of([seg(0, 10, 40, 0, 10.0, 250.0)], area=100.0)  # 10 µC at t = 0, then less
    assert [(b[0], b[3]) for b in blocks(plan, tighten(CEILINGS, phase_charge_uc=9.0))
            if b[0] == "L8"] == [("L8", 10.0)]


def test_a_rising_rate_inside_a_segment_is_checked_at_both_ends() -> None:
    # frequency 10 → 100 Hz while 40 mA, 200 µs: I_rms at the end = 8 mA, at the start 2.53
    plan = plan_of([seg(0, 10, 0, 40, 10.0, 200.0), seg(10, 20, 40, 40, (10.0, 100.0), 200.0)],
                   area=100.0, sensory=True)
    assert [b[3] for b in blocks(plan, tighten(CEILINGS, rms_ma=7.9)) if b[0] == "L4"] == [8.0]
    falling = plan_of([seg(0, 10, 0, 40, 10.0, 200.0), seg(10, 20, 40, 40, (100.0, 10.0), 200.0)],
                      area=100.0, sensory=True)
    assert [b[3] for b in blocks(falling, tighten(CEILINGS, rms_ma=7.9)) if b[0] == "L4"] == [8.0]


def test_the_last_train_of_a_plan_needs_no_off_time_after_the_end() -> None:
    limits = limits_from_mapping({"soft_start_min_s": 2.0})
    plan = plan_of([seg(0, 30, 0, 0, 30.0, 100.0), seg(30, 31, 0, 10, 30.0, 100.0),
                    seg(31, 37, 10, 10, 30.0, 100.0), seg(37, 38, 10, 0, 30.0, 100.0)])
    assert [b for b in blocks(plan, limits) if b[0] == "L18"] == []


def test_l18_applies_from_exactly_the_tetanic_frequency() -> None:
    limits = limits_from_mapping({"soft_start_min_s": 2.0})
    assert [b[0] for b in blocks(plan_of(_train(30.0, 1.0, 1, hz=20.0)), limits)].count("L18") == 1


def test_l18_checks_a_motor_train_after_a_sensory_one() -> None:
    limits = limits_from_mapping({"soft_start_min_s": 2.0})
    rows = [seg(0, 10, 0, 10, 5.0, 100.0), seg(10, 20, 10, 10, 5.0, 100.0),
            seg(20, 30, 10, 0, 5.0, 100.0), seg(30, 40, 0, 0, 5.0, 100.0),
            seg(40, 41, 0, 10, 30.0, 100.0), seg(41, 71, 10, 10, 30.0, 100.0),
            seg(71, 72, 10, 0, 30.0, 100.0), seg(72, 110, 0, 0, 30.0, 100.0)]
    assert [(b[0], b[2], b[3]) for b in blocks(plan_of(rows), limits) if b[0] == "L18"] == [
        ("L18", 40.0, 32.0)]


def test_l15_finds_a_soft_start_breach_in_a_later_segment_after_a_silent_start() -> None:
    # output starts at 3 s; peak 10 mA: 1 mA after 1 s is fine, 6 mA after 2 s is not (> 4)
    plan = plan_of([seg(0, 3, 0, 0), seg(3, 4, 0, 1), seg(4, 5, 1, 6), seg(5, 10, 6, 10),
                    seg(10, 20, 10, 10)])
    assert [(b[0], b[2], b[3]) for b in blocks(plan) if b[0] == "L15"] == [("L15", 5.0, 6.0)]


def test_l15_applies_to_small_peaks_too() -> None:
    plan = plan_of([seg(0, 0.5, 0, 0.8), seg(0.5, 20, 0.8, 0.8)])  # 0 → 0.8 mA in 0.5 s
    assert [b[0] for b in blocks(plan, tighten(DEFAULTS, ramp_min_s=1.0))].count("L15") == 1


def test_a_global_frequency_is_compared_across_channels_at_each_time_only() -> None:
    # both channels run 10 Hz, then both 40 Hz: never two rates at once
    both = [seg(0, 10, 0, 5, 10.0), seg(10, 20, 5, 5, 40.0)]
    assert _device(plan_of(both, both), caps(frequency_per_channel=False)) == []
    silent = [seg(0, 20, 0, 0, 90.0)]
    assert _device(plan_of(both, both, silent), caps(channels=3,
                                                     frequency_per_channel=False)) == []


def test_a_global_frequency_that_changes_for_both_channels_together_is_fine() -> None:
    both = [seg(0, 10, 0, 5, 10.0), seg(10, 15, 5, 5, 10.0), seg(15, 20, 5, 5, 40.0)]
    assert _device(plan_of(both, both), caps(frequency_per_channel=False)) == []


def test_at_least_as_tight_compares_every_field_in_its_own_direction() -> None:
    from emsctl.limits import at_least_as_tight

    assert at_least_as_tight(DEFAULTS, CEILINGS)
    assert not at_least_as_tight(CEILINGS, DEFAULTS)
    assert not at_least_as_tight(tighten(DEFAULTS, peak_ma=30.0), tighten(DEFAULTS, rms_ma=10))


def test_check_train_refuses_a_negative_off_time() -> None:
    with pytest.raises(ValueError, match="positive period"):
        check_train(30, 5, -1, DEFAULTS)


def test_guard_checks_a_one_milliampere_setpoint_like_any_other() -> None:
    g = guard()
    g.check(0.0, 0.0, [ChannelSetpoint(0.0, 10.0, 200.0)])
    with pytest.raises(SafetyViolation, match="L6"):
        g.check(1.0, 1.0, [ChannelSetpoint(1.0, 10.0, 350.0)])


@pytest.mark.parametrize(
    ("limits", "area", "start", "hair"),
    [(tighten(CEILINGS, shannon_k=1.0), 10.0, ChannelSetpoint(40.0, 10.0, 250.0),
      ChannelSetpoint(40.000001, 10.0, 250.0)),  # Q = 10 µC on 10 cm²: k = 1 exactly
     (CEILINGS, 4.0, ChannelSetpoint(40.0, 100.0, 200.0),
      ChannelSetpoint(40.000001, 100.0, 200.0))],  # W5: J = 2.0 exactly
)
def test_guard_decides_k_and_density_a_hair_above_the_limit_exactly(
    limits: object, area: float, start: ChannelSetpoint, hair: ChannelSetpoint
) -> None:
    g = guard(limits, cap_ma=80.0, area=area)
    t = ramp(g, 40.0, hz=start.frequency_hz, us=start.pulse_width_us)
    assert g.check(t + 1.0, t, [start])
    with pytest.raises(SafetyViolation):
        g.check(t + 2.0, t, [hair])


def test_slow_bursts_on_a_device_that_cannot_time_bursts_are_reported() -> None:
    burst = plan_of([seg(0, 10, 0, 5, 50.0, 200.0, (0.5, 5)), seg(10, 20, 5, 5, 50.0, 200.0,
                                                                 (0.5, 5))])
    assert [m[-1] for m in _device(burst, caps())] == [
        "Dev cannot time bursts; this phase needs them"]


# --- third batch: what a violation points at (docs/mutation.md) ---------------------------------
#
# A violation names the setting that was broken (what `emsctl validate` tells the person to
# change) and the phase it is in; the earlier tests compared only ID, channel, time and figures.


def named(plan: Plan, limits: object = DEFAULTS, capabilities: Capabilities | None = None
          ) -> list[tuple[str, str, str | None, str | None]]:
    """(limit ID, severity, setting, phase name) of every violation, in order."""
    return [(v.limit_id, v.severity, v.setting, None if v.phase is None else v.phase.name)
            for v in verify(plan, limits, capabilities)]  # type: ignore[arg-type]


def late(rows: list[Row]) -> list[Row]:
    """The same rows in the second of two phases (so a report that loses its phase shows)."""
    return [(*row[:-1], 1) for row in rows]  # type: ignore[misc]


def _soft_limits() -> object:
    return limits_from_mapping({"soft_start_min_s": 2.0})


@pytest.mark.parametrize(
    ("plan", "limits", "capabilities", "expected"),
    [
        pytest.param(plan_of(late(soft(5.0)), area=3.0, phases=2, purpose="tens"), DEFAULTS,
                     None, [("L13", "block", "electrode_area_min_cm2", None)], id="L13"),
        pytest.param(plan_of(late(soft(40.5, us=100.0)), phases=2), DEFAULTS, None,
                     [("L3", "block", "peak_ma", "p1")], id="L3"),
        pytest.param(plan_of(late([seg(0, 10, 0, 1.0, 10.0, (200.0, 350.0)),
                                   seg(10, 20, 1.0, 1.0, 10.0, 350.0)]), phases=2), DEFAULTS,
                     None, [("L6", "block", "pulse_width_max_us", "p1")], id="L6-max"),
        pytest.param(plan_of(late([seg(0, 10, 0, 1.0, 10.0, (80.0, 200.0)),
                                   seg(10, 20, 1.0, 1.0, 10.0, 200.0)]), phases=2), DEFAULTS,
                     None, [("L6", "block", "pulse_width_min_us", "p1")], id="L6-min"),
        pytest.param(plan_of(late([seg(0, 10, 0, 1.0, (10.0, 19.0), 100.0),
                                   seg(10, 11, 1.0, 1.0, 19.0, 100.0)]), phases=2),
                     tighten(DEFAULTS, frequency_max_hz=15.0), None,
                     [("L7", "block", "frequency_max_hz", "p1")], id="L7-max"),
        pytest.param(plan_of(late([seg(0, 10, 0, 1.0, (0.5, 10.0), 100.0),
                                   seg(10, 11, 1.0, 1.0, 10.0, 100.0)]), phases=2), DEFAULTS,
                     None, [("L7", "block", "frequency_min_hz", "p1")], id="L7-min"),
        pytest.param(plan_of(late(soft(40.0, us=251.0)), area=100.0, phases=2),
                     tighten(CEILINGS, phase_charge_uc=10.0), None,
                     [("L8", "block", "phase_charge_uc", "p1")], id="L8-charge"),
        pytest.param(plan_of(late(soft(40.0, us=250.0)), area=9.5, phases=2, purpose="tens"),
                     tighten(DEFAULTS, shannon_k=1.0), None,
                     [("L8", "block", "shannon_k", "p1")], id="L8-k"),
        pytest.param(plan_of(late(soft(50.0, hz=19.0, us=250.0)), area=100.0, phases=2),
                     tighten(CEILINGS, rms_ma=4.8), None,
                     [("L4", "block", "rms_ma", "p1")], id="L4"),
        pytest.param(plan_of(late(soft(20.0, hz=19.0, us=300.0)), area=16.0, phases=2),
                     tighten(CEILINGS, current_density_ma_cm2=0.1,
                             current_density_warn_ma_cm2=0.1), None,
                     [("L9", "block", "current_density_ma_cm2", "p1")], id="L9"),
        pytest.param(plan_of(late(soft(20.0, hz=19.0, us=300.0)), area=16.0, phases=2),
                     tighten(CEILINGS, current_density_warn_ma_cm2=0.1), None,
                     [("L9", "warn", "current_density_warn_ma_cm2", "p1")], id="L9-warn"),
        pytest.param(plan_of(late(soft(20.0, hz=19.0, us=300.0)), area=16.0, phases=2),
                     tighten(CEILINGS, power_density_w_cm2=1e-4), None,
                     [("L10", "block", "power_density_w_cm2", "p1")], id="L10"),
        pytest.param(plan_of(late([seg(0, 10, 0, 5), seg(10, 20, 8, 8)]), phases=2), DEFAULTS,
                     None, [("L17", "block", None, "p1")], id="L17"),
        pytest.param(plan_of(late([seg(0, 10, 0, 5), seg(10, 10.2, 5, 15),
                                   seg(10.2, 20, 15, 15)]), phases=2), DEFAULTS, None,
                     [("L16", "block", "plan_rise_ma_per_s", "p1")], id="L16-rate"),
        pytest.param(plan_of(late([seg(0, 0.5, 0, 0.1), seg(0.5, 20, 0.1, 0.1)]), phases=2),
                     DEFAULTS, None, [("L16", "block", "ramp_min_s", "p1"),
                                      ("L15", "block", "soft_start_min_s", "p1")], id="L16-ramp"),
        pytest.param(plan_of(late([seg(0, 1, 0, 2), seg(1, 10, 2, 2)]), phases=2), DEFAULTS,
                     None, [("L15", "block", "soft_start_min_s", "p1")], id="L15"),
        pytest.param(plan_of(late(_train(9.0, 20.0, 1)), phases=2), _soft_limits(), None,
                     [("L15", "block", "soft_start_min_s", "p1"),
                      ("L18", "block", "train_on_max_s", "p1")], id="L18-on"),
        pytest.param(plan_of(late(_train(6.0, 7.0, 1) + _train(1.0, 30.0, 1)), phases=2),
                     _soft_limits(), None,
                     [("L15", "block", "soft_start_min_s", "p1"),
                      ("L18", "block", "train_off_min_s", "p1")], id="L18-off"),
        pytest.param(plan_of(soft(10.0, hold_s=1800.0)), DEFAULTS, None,
                     [("L19", "block", "session_max_s", None)], id="L19"),
        pytest.param(plan_of(soft(5.0), soft(5.0), soft(5.0)), CEILINGS, caps(),
                     [("device", "block", "channels", None)], id="device-channels"),
        pytest.param(plan_of(late(soft(51.0, 10.0, 200.0)), phases=2), CEILINGS, caps(),
                     [("device", "block", "amplitude_max_ma", "p1")], id="device-amplitude"),
        pytest.param(plan_of(late(soft(5.0, 10.0, 310.0)), phases=2), CEILINGS, caps(),
                     [("device", "block", "pulse_width_max_us", "p1")], id="device-pw-max"),
        pytest.param(plan_of(late(soft(5.0, 10.0, 90.0)), phases=2), CEILINGS, caps(),
                     [("device", "block", "pulse_width_min_us", "p1")], id="device-pw-min"),
        pytest.param(plan_of(late(soft(5.0, 19.0, 200.0)), phases=2), CEILINGS,
                     caps(frequency_max_hz=18.0),
                     [("device", "block", "frequency_max_hz", "p1")], id="device-freq-max"),
        pytest.param(plan_of(late(soft(5.0, 1.5, 200.0)), phases=2), CEILINGS, caps(),
                     [("device", "block", "frequency_min_hz", "p1")], id="device-freq-min"),
        pytest.param(plan_of(late([seg(0, 10, 0, 5, 50.0, 200.0, (2.0, 5)),
                                   seg(10, 20, 5, 5, 50.0, 200.0, (2.0, 5))]), phases=2),
                     CEILINGS, caps(), [("device", "block", "bursts", "p1")], id="device-bursts"),
        pytest.param(plan_of(soft(5.0, 10.0), [seg(0, 4, 0, 0, 15.0), seg(4, 14, 0, 5, 15.0),
                                               seg(14, 20, 5, 5, 15.0)], phases=2),
                     CEILINGS, caps(frequency_per_channel=False),
                     [("device", "block", "frequency_per_channel", "p1")],
                     id="device-one-frequency"),
    ],
)
def test_every_violation_names_its_setting_and_phase(
    plan: Plan, limits: object, capabilities: Capabilities | None,
    expected: list[tuple[str, str, str | None, str | None]]
) -> None:
    assert named(plan, limits, capabilities) == expected


def test_a_step_from_zero_and_output_at_the_start_name_their_phase() -> None:
    assert [n for n in named(plan_of(late([seg(0, 10, 5, 5)]), phases=2)) if n[0] == "L14"] == [
        ("L14", "block", None, "p1")]
    rows = late([seg(0, 10, 0, 5), seg(10, 20, 5, 0), seg(20, 30, 3, 3)])
    assert [n for n in named(plan_of(rows, phases=2)) if n[0] == "L14"] == [
        ("L14", "block", None, "p1")]


def test_a_falling_segment_under_one_milliampere_is_still_checked() -> None:
    # the last 0.5 mA of a ramp down to zero, at a frequency over the limit
    rows = [seg(0, 10, 0, 0.5, 10.0, 100.0), seg(10, 11, 0.5, 0.0, (10.0, 120.0), 100.0)]
    assert [(b[0], b[3]) for b in blocks(plan_of(rows)) if b[0] == "L7"] == [("L7", 120.0)]


def test_shannon_k_is_compared_against_ten_to_the_k() -> None:
    # 10 µC on 9.5 cm²: Q²/A = 10.53, k = 1.022 > 1 (and still under 11¹)
    found = [b for b in blocks(plan_of(soft(40.0, us=250.0), area=9.5, purpose="tens"),
                               tighten(DEFAULTS, shannon_k=1.0)) if b[0] == "L8"]
    assert found == [("L8", 1, 0.0, 1.022276, 1.0,
                      "Shannon k 1.02 is over 1 (10.0 µC on 9.5 cm²)")]


def test_at_most_twenty_rises_too_fast_are_reported_per_channel() -> None:
    rows, level = [seg(0, 10, 0, 2)], 2.0
    for k in range(25):  # 25 rises of 1 mA in 0.01 s (100 mA/s), each after a 1 s hold
        t = 10.0 + 1.01 * k
        rows += [seg(t, t + 0.01, level, level + 1), seg(t + 0.01, t + 1.01, level + 1, level + 1)]
        level += 1
    fast = [b for b in blocks(plan_of(rows), CEILINGS) if b[0] == "L16"]
    assert len(fast) == 20 and fast[0][2] == 10.0 and fast[-1][2] == pytest.approx(10 + 1.01 * 19)


def test_a_train_names_the_phase_of_its_first_motor_segment() -> None:
    # the output starts at 10 Hz in phase 0 (not tetanic), the 30 Hz motor train is phase 1
    limits = _soft_limits()
    rows = [seg(0, 1, 0, 0, 10.0, 100.0, phase=0), seg(1, 3, 0, 10, 10.0, 100.0, phase=0),
            seg(3, 15, 10, 10, 30.0, 100.0, phase=1), seg(15, 16, 10, 0, 30.0, 100.0, phase=1),
            seg(16, 60, 0, 0, 30.0, 100.0, phase=1)]
    found = [(v.limit_id, v.t_s, v.value, v.phase.name if v.phase else None)
             for v in verify(plan_of(rows, phases=2), limits) if v.limit_id == "L18"]
    assert found == [("L18", 1.0, 15.0, "p1")]


def test_a_device_model_is_named_without_its_details() -> None:
    plan = plan_of(soft(51.0))
    found = [v.message for v in verify(plan, CEILINGS, caps(model="Vendor Stim (serial; a (b))"))
             if v.limit_id == "device"]
    assert found == ["51 mA is outside what Vendor Stim can do (0–50 mA)"]


def test_a_device_with_one_fixed_frequency_says_only() -> None:
    found = [v.message for v in verify(plan_of(soft(5.0, 40.0)), CEILINGS,
                                       caps(frequency_min_hz=50.0, frequency_max_hz=50.0))
             if v.limit_id == "device"]
    assert found == ["40 Hz is outside what Dev can do (only 50 Hz, its fixed rate)"]


# --- certify: what a session runs -----------------------------------------------------------


def test_certify_refuses_a_plan_the_device_cannot_run_and_lists_each_problem() -> None:
    from emsctl.errors import ValidationFailed
    from emsctl.verify import certify

    with pytest.raises(ValidationFailed) as info:
        certify(plan_of(soft(5.0, 10.0, 310.0)), CEILINGS, caps())
    text = str(info.value)
    assert text.startswith("'t' cannot run on Dev:\n  ")
    assert "310" in text
    with pytest.raises(ValidationFailed) as both:
        certify(plan_of(soft(51.0, 10.0, 310.0)), CEILINGS, caps())
    assert both.value.args[0].count("\n  ") == 2  # one line per problem


def test_certify_vouches_for_a_passing_plan_keeps_its_warnings_and_freezes_it() -> None:
    from emsctl.verify import VerifiedPlan, certify

    plan = plan_of(soft(20.0, hz=19.0, us=300.0), area=16.0)  # an L9 warning only
    limits = tighten(CEILINGS, current_density_warn_ma_cm2=0.1)
    verified = certify(plan, limits, caps())
    assert isinstance(verified, VerifiedPlan)
    assert (verified.plan, verified.limits, verified.capabilities) == (plan, limits, caps())
    assert [(w.limit_id, w.severity) for w in verified.warnings] == [("L9", "warn")]
    with pytest.raises(ValueError, match="read-only"):
        plan.channels[0].segments["amp1_ma"][0] = 80.0


def test_a_verified_plan_cannot_be_made_by_hand() -> None:
    from emsctl.verify import VerifiedPlan

    with pytest.raises(TypeError, match=r"^a VerifiedPlan comes only from "
                                        r"emsctl\.verify\.certify\(\)$"):
        VerifiedPlan()  # type: ignore[call-arg]


# --- guard: defaults, first command, the unchanged path ----------------------------------------


ZERO_SP = ChannelSetpoint(0.0, 10.0, 200.0)


def test_guard_defaults_are_no_device_step_and_a_tenth_of_a_second() -> None:
    g = Guard(DEFAULTS, [ChannelGuard(30.0, 20.0)])
    assert g.peak_ma == [0.0]
    assert g.rise_ceiling_ma(0, 0.0) == 0.0  # nothing checked yet: no time has passed
    g.check(0.0, 0.0, [ZERO_SP])
    assert g.rise_ceiling_ma(0, 0.0) == 0.0
    assert g.rise_ceiling_ma(0, 0.05) == pytest.approx(2.0)  # 40 mA/s · 0.05 s
    assert g.rise_ceiling_ma(0, 5.0) == pytest.approx(4.0)  # one period at most, however long
    with pytest.raises(SafetyViolation, match=r"rose 4\.50 mA in 5\.000 s, more than 4\.00 mA"):
        g.check(5.0, 5.0, [ChannelSetpoint(4.5, 10.0, 200.0)])
    later = Guard(DEFAULTS, [ChannelGuard(30.0, 20.0)])
    later.check(100.0, 0.0, [ZERO_SP])
    assert later.rise_ceiling_ma(0, 100.05) == pytest.approx(2.0)  # from the last check


def test_guard_first_command_may_rise_by_one_step_only() -> None:
    with pytest.raises(SafetyViolation, match=r"rose 0\.50 mA in 0\.000 s, more than 0\.00 mA"):
        guard().check(3.0, 0.0, [ChannelSetpoint(0.5, 10.0, 200.0)])
    assert guard(step_ma=0.5).check(3.0, 0.0, [ChannelSetpoint(0.5, 10.0, 200.0)])


def test_guard_an_unchanged_heartbeat_moves_the_rise_clock() -> None:
    g = guard()
    same = [ChannelSetpoint(0.0, 10.0, 200.0)]
    first = g.check(0.0, 0.0, same)
    assert g.check(1.0, 1.0, same) is first  # the very same result: the session's fast path
    assert g.check(1.05, 1.05, [ChannelSetpoint(2.0, 10.0, 200.0)])  # 40 mA/s · 0.05 s


def test_guard_session_limit_on_the_unchanged_path_counts_only_output() -> None:
    limit = DEFAULTS.session_max_s
    g = guard(step_ma=0.5)
    low = [ChannelSetpoint(0.5, 10.0, 200.0)]
    g.check(0.0, limit, low)  # exactly at the limit: allowed
    assert g.check(0.1, limit, low)
    with pytest.raises(SafetyViolation, match="L19: stimulation time 1801 s is over 1800 s"):
        g.check(0.2, limit + 1.0, low)
    g = guard(step_ma=0.5)
    with pytest.raises(SafetyViolation, match="L19"):
        g.check(0.0, limit + 1.0, [ChannelSetpoint(0.5, 10.0, 200.0)])
    g = guard()
    off = [ChannelSetpoint(0.0, 10.0, 200.0)]
    g.check(0.0, limit + 1.0, off)
    assert g.check(0.1, limit + 2.0, off)[0].amplitude_ma == 0.0


def test_guard_output_after_stop_message() -> None:
    g = guard()
    g.latch()
    with pytest.raises(SafetyViolation) as info:
        g.check(0.0, 0.0, [ChannelSetpoint(0.1, 10.0, 200.0)])
    assert str(info.value) == ("safety guard stopped the session: output after stop: the stop "
                               "latch holds until a new session (HZ-03)")


def test_guard_burst_refusal_names_the_channel() -> None:
    g = Guard(DEFAULTS, [ChannelGuard(30.0, 20.0)] * 2, 0.5)
    with pytest.raises(SafetyViolation, match=r"channel 2: bursts overlap"):
        g.check(0.0, 0.0, [ZERO_SP, ChannelSetpoint(0.5, 10.0, 200.0, 5.0, 3)])



@pytest.mark.parametrize(("rows", "setting", "value"), [
    ([seg(0, 10, 0, 5, 10.0, (90.0, 200.0)), seg(10, 20, 5, 5, 10.0, 200.0)],
     "pulse_width_min_us", 90.0),
    ([seg(0, 10, 0, 5, (1.5, 10.0), 200.0), seg(10, 20, 5, 5, 10.0, 200.0)],
     "frequency_min_hz", 1.5),
])
def test_a_device_minimum_found_in_a_phase_that_also_has_larger_values(
        rows: list[Row], setting: str, value: float) -> None:
    found = [(v.setting, v.value) for v in verify(plan_of(rows), CEILINGS, caps())
             if v.limit_id == "device"]
    assert found == [(setting, value)]


def test_device_findings_of_a_phase_use_only_that_phase_s_live_segments() -> None:
    rows = [seg(0, 10, 0, 5, 10.0, 200.0, phase=0), seg(10, 20, 5, 5, 10.0, 200.0, phase=0),
            seg(20, 21, 5, 0, 10.0, 200.0, phase=0), seg(21, 25, 0, 0, 500.0, 200.0, phase=1),
            seg(25, 35, 0, 5, 150.0, 200.0, phase=1), seg(35, 40, 5, 5, 150.0, 200.0, phase=1)]
    found = [(v.phase.name if v.phase else None, v.value)
             for v in verify(plan_of(rows, phases=2), CEILINGS, caps()) if v.limit_id == "device"]
    assert found == [("p1", 150.0)]
