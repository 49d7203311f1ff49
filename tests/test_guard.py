"""The runtime guard: every limit stops the session; nothing passes after the latch."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emsctl import formulas
from emsctl.contract import ZERO, ChannelSetpoint
from emsctl.drivers.sciencemode2 import mapping as sm2
from emsctl.drivers.sciencemode4 import mapping as sm4
from emsctl.errors import SafetyViolation
from emsctl.guard import ChannelGuard, Guard
from emsctl.limits import DEFAULTS, Limits, limits_from_mapping, tighten


def _guard(cap_ma: float = 30.0, area_cm2: float = 20.0) -> Guard:
    return Guard(DEFAULTS, [ChannelGuard(cap_ma, area_cm2), ChannelGuard(0.0, 1.0)], 0.1)


def _sp(ma: float, hz: float = 6.0, us: float = 250.0) -> list[ChannelSetpoint]:
    return [ChannelSetpoint(ma, hz, us), ZERO]


def _ramp_to(guard: Guard, ma: float, hz: float = 6.0, us: float = 250.0) -> float:
    """Raise within the rise limit to ``ma``; return the time reached."""
    t, level = 0.0, 0.0
    guard.check(0.0, 0.0, _sp(0.0, hz, us))
    while level < ma:
        level = min(ma, level + 2.0)
        t += 0.1
        guard.check(t, t, _sp(level, hz, us))
    return t


def test_setpoints_within_limits_pass_unchanged() -> None:
    guard = _guard()
    t = _ramp_to(guard, 20.0)
    assert guard.check(t + 0.1, t + 0.1, _sp(20.0))[0].amplitude_ma == 20.0


@pytest.mark.parametrize(
    ("label", "setpoint", "limit_id"),
    [
        ("over the channel cap", ChannelSetpoint(31.0, 6, 250), "L3"),
        ("pulse too wide", ChannelSetpoint(10.0, 6, 350), "L6"),
        ("frequency too high", ChannelSetpoint(10.0, 120, 250), "L7"),
    ],
)
def test_a_setpoint_beyond_a_limit_stops_and_latches(
    label: str, setpoint: ChannelSetpoint, limit_id: str
) -> None:
    guard = _guard()
    t = _ramp_to(guard, 10.0)
    with pytest.raises(SafetyViolation, match=limit_id):
        guard.check(t + 10.0, t + 10.0, [setpoint, ZERO])
    assert guard.latched


def test_charge_and_density_on_a_small_pad_are_refused() -> None:
    guard = _guard(cap_ma=40.0, area_cm2=4.0)
    with pytest.raises(SafetyViolation, match=r"L8|L9"):
        _ramp_to(guard, 40.0, hz=100.0, us=300.0)


@pytest.mark.parametrize(
    ("setpoint", "message"),
    [
        (ChannelSetpoint(10.0, 8.0, 250.0, 2.0, 10),  # 1.125 s bursts every 0.5 s
         "bursts overlap: 10 pulses at 8 Hz do not fit in the 0.5 s between bursts$"),
        (ChannelSetpoint(10.0, 100.0, 250.0, float("nan"), 10), "not a finite number"),
        (ChannelSetpoint(10.0, 100.0, 250.0, float("inf"), 10), "not a finite number"),
        (ChannelSetpoint(10.0, 100.0, 250.0, -2.0, 10), "not a burst pattern"),
        (ChannelSetpoint(10.0, 100.0, 250.0, 2.0, 0), "not a burst pattern"),
        (ChannelSetpoint(10.0, 100.0, 250.0, 2.0, 2.5), "not a burst pattern"),  # type: ignore[arg-type]
    ],
)
def test_a_burst_setpoint_that_is_no_burst_pattern_is_refused(
    setpoint: ChannelSetpoint, message: str
) -> None:
    guard = _guard()
    t = _ramp_to(guard, 10.0)
    with pytest.raises(SafetyViolation, match=message):
        guard.check(t + 1.0, t + 1.0, [setpoint, ZERO])
    assert guard.latched


def test_bursts_that_just_fit_between_each_other_pass() -> None:
    guard = _guard()
    t = _ramp_to(guard, 10.0)
    # 10 pulses at 20 Hz fill the 0.5 s between bursts exactly: N = 20 (as continuous 20 Hz)
    assert guard.check(t + 1.0, t + 1.0, [ChannelSetpoint(10.0, 20.0, 250.0, 2.0, 10), ZERO])
    # a burst of a single pulse is a burst too
    assert guard.check(t + 2.0, t + 2.0, [ChannelSetpoint(10.0, 20.0, 250.0, 2.0, 1), ZERO])


def test_a_jump_faster_than_the_rise_limit_is_refused() -> None:
    guard = _guard()
    guard.check(0.0, 0.0, _sp(0.0))
    with pytest.raises(SafetyViolation, match="L16/L17"):
        guard.check(0.1, 0.1, _sp(10.0))  # 10 mA in 0.1 s = 100 mA/s > 40 mA/s


def test_the_rounding_step_is_allowed_once_not_at_every_check() -> None:
    # L16: a rise may exceed the slew by one device step (rounding down to the step), once:
    # two checks 15 ms apart each took the step, and after a host stall through an off phase
    # the output rose 4.8 mA in 0.115 s, more than 40 mA/s × (0.115 s + one 0.1 s period) +
    # one 0.1 mA step (found by tests/session/test_invariants.py)
    guard = _guard()
    guard.check(0.0, 0.0, _sp(0.0))
    guard.check(1.0, 1.0, _sp(4.1))  # a full period's slew and one step
    with pytest.raises(SafetyViolation, match="L16/L17"):
        guard.check(1.015, 1.015, _sp(4.8))  # 0.6 mA of slew and the step again
    again = _guard()
    again.check(0.0, 0.0, _sp(0.0))
    again.check(1.0, 1.0, _sp(4.1))
    assert again.check(1.015, 1.015, _sp(4.7))[0].amplitude_ma == 4.7
    # the step is spent: the next period adds only its slew
    assert again.rise_ceiling_ma(0, 1.115) == pytest.approx(4.7 + 4.0)


def test_decreases_are_never_rate_limited() -> None:
    guard = _guard()
    t = _ramp_to(guard, 30.0)
    assert guard.check(t + 0.001, t + 0.001, _sp(0.0))[0].amplitude_ma == 0.0


def test_output_past_the_session_limit_is_refused() -> None:
    guard = _guard()
    t = _ramp_to(guard, 5.0)
    with pytest.raises(SafetyViolation, match="L19"):
        guard.check(t + 0.1, DEFAULTS.session_max_s + 1.0, _sp(5.0))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=30.0), min_size=1, max_size=30))
def test_after_the_latch_only_zero_passes(levels: list[float]) -> None:
    guard = _guard()
    guard.latch()
    for i, level in enumerate(levels):
        if level > 0:
            with pytest.raises(SafetyViolation):
                guard.check(i * 0.1, i * 0.1, _sp(level))
        else:
            assert all(sp.amplitude_ma == 0 for sp in guard.check(i * 0.1, i * 0.1, _sp(0.0)))


def test_w5_exactly_on_the_density_ceiling_passes_and_just_above_is_refused() -> None:
    from emsctl.limits import CEILINGS

    # W5: 40 mA, 200 µs, 100 Hz on 4 cm² is exactly 2.0 mA/cm²; only > 2.0 blocks (L9)
    guard = Guard(CEILINGS, [ChannelGuard(80.0, 4.0)], 0.0)
    t = 0.0
    guard.check(t, t, [ChannelSetpoint(0.0, 100, 200)])
    for level in range(2, 41, 2):
        t += 0.1
        guard.check(t, t, [ChannelSetpoint(float(level), 100, 200)])
    with pytest.raises(SafetyViolation, match="L9"):
        guard.check(t + 0.1, t + 0.1, [ChannelSetpoint(40.0, 100, 200.001)])


# --------------------------------------------------------------- the rates a device makes
# A P24 (like the RehaStim2) sets its period in 0.5 ms steps: 97.6 Hz (10.25 ms) is made as
# 100 Hz (10 ms), 97.4 Hz (10.27 ms) as 95.2 Hz (10.5 ms).


def _p24_guard(limits: Limits) -> Guard:
    return Guard(limits, [ChannelGuard(30.0, 20.0), ChannelGuard(0.0, 1.0)], 0.5,
                 made_hz=sm4.delivered_frequency_hz)


def test_a_rate_the_device_makes_above_the_frequency_ceiling_is_refused() -> None:
    guard = _p24_guard(tighten(DEFAULTS, frequency_max_hz=99.0))
    t = _ramp_to(guard, 4.0, hz=50.0, us=180.0)  # 50 Hz is made exactly
    with pytest.raises(SafetyViolation, match=r"^safety guard stopped the session: L7: channel 1 "
                       r"frequency 97\.6 Hz is made as 100 Hz by the device, over 99 Hz$"):
        guard.check(t + 0.1, t + 0.1, _sp(4.0, 97.6, 180.0))
    assert guard.latched


def test_rms_current_is_checked_at_the_rate_the_device_makes() -> None:
    # 5 mA, 180 µs: 0.937 mA rms at 97.6 Hz, 0.949 mA at the 100 Hz the P24 makes
    assert formulas.rms_current_ma(5.0, 180.0, 97.6) < 0.94 < formulas.rms_current_ma(
        5.0, 180.0, 100.0)
    limits = tighten(DEFAULTS, rms_ma=0.94)
    unaware = Guard(limits, [ChannelGuard(30.0, 20.0), ChannelGuard(0.0, 1.0)], 0.5)
    t = _ramp_to(unaware, 5.0, hz=97.6, us=180.0)  # passes where the rate made is not known
    guard = _p24_guard(limits)
    with pytest.raises(SafetyViolation, match="L4"):
        _ramp_to(guard, 5.0, hz=97.6, us=180.0)
    assert t > 0 and guard.latched


def test_a_rate_made_slower_than_asked_is_still_checked_at_the_rate_asked() -> None:
    # 97.4 Hz is made as 95.2 Hz: rms 0.936 mA asked, 0.926 mA made; the limit 0.93 mA is
    # between them, and the rate asked is what counts
    assert formulas.rms_current_ma(5.0, 180.0, 2000 / 21) < 0.93 < formulas.rms_current_ma(
        5.0, 180.0, 97.4)
    guard = _p24_guard(tighten(DEFAULTS, rms_ma=0.93))
    with pytest.raises(SafetyViolation, match="L4"):
        _ramp_to(guard, 5.0, hz=97.4, us=180.0)


def test_a_rate_the_device_cannot_make_is_checked_as_asked_and_left_to_its_driver() -> None:
    # the RehaStim2's periods end at 8 ms (125 Hz): its driver refuses 130 Hz, not the guard
    limits = limits_from_mapping({"frequency_max_hz": 150}, source="a limits file")
    guard = Guard(limits, [ChannelGuard(30.0, 20.0), ChannelGuard(0.0, 1.0)], 0.5,
                  made_hz=sm2.delivered_frequency_hz)
    t = _ramp_to(guard, 1.0, hz=130.0, us=100.0)
    assert guard.check(t + 0.1, t + 0.1, _sp(1.0, 130.0, 100.0))[0].frequency_hz == 130.0


# --------------------------------------------------------------- a device that delivers less


def _held_at_10_ma() -> tuple[Guard, list[ChannelSetpoint], float]:
    guard = _guard()
    t = _ramp_to(guard, 10.0)
    held = _sp(10.0)
    guard.check(t + 0.1, t + 0.1, held)
    return guard, held, t + 0.1


def test_a_lower_level_the_device_reports_is_where_the_next_rise_starts() -> None:
    # the device delivers only 0.5 mA of the 10 mA passed (a late report, its own control
    # turned down): the same setpoint objects are checked in full again, as a rise from there
    guard, held, t = _held_at_10_ma()
    guard.rise_from(0, 0.5)
    with pytest.raises(SafetyViolation, match=r"L16/L17: channel 1 rose 9\.50 mA"):
        guard.check(t + 0.5, t + 0.5, held)


def test_from_a_reported_level_one_period_of_slew_and_one_step_may_follow() -> None:
    # 0.5 mA + 40 mA/s × 0.1 s + the 0.1 mA step = 4.6 mA, and no more
    guard, _, t = _held_at_10_ma()
    guard.rise_from(0, 0.5)
    assert guard.check(t + 0.5, t + 0.5, _sp(4.6))[0].amplitude_ma == 4.6
    guard, _, t = _held_at_10_ma()
    guard.rise_from(0, 0.5)
    with pytest.raises(SafetyViolation, match="L16/L17"):
        guard.check(t + 0.5, t + 0.5, _sp(4.7))


def test_a_device_reported_at_zero_rises_from_zero() -> None:
    guard, _, t = _held_at_10_ma()
    guard.rise_from(0, 0.0)
    with pytest.raises(SafetyViolation, match=r"L16/L17: channel 1 rose 4\.20 mA"):
        guard.check(t + 0.5, t + 0.5, _sp(4.2))


def test_a_report_at_or_above_the_level_passed_or_below_zero_changes_nothing() -> None:
    for level_ma in (10.0, 12.0, -1.0):
        guard, held, t = _held_at_10_ma()
        guard.rise_from(0, level_ma)
        assert guard.rise_ceiling_ma(0, t + 0.5) == pytest.approx(10.0 + 0.1 + 4.0)
        assert guard.check(t + 0.5, t + 0.5, held) == tuple(held)


def test_the_rounding_step_comes_back_at_the_slew_rate_while_the_setpoints_stay() -> None:
    # after a rise that spent the 0.1 mA step, 1 ms of the same setpoints gives back 0.04 mA
    # of it, not the whole step
    guard = _guard()
    guard.check(0.0, 0.0, _sp(0.0))
    held = _sp(4.1)  # a full period's slew and the step
    guard.check(1.0, 1.0, held)
    guard.check(1.001, 1.001, held)
    with pytest.raises(SafetyViolation, match="L16/L17"):
        guard.check(1.002, 1.002, _sp(4.19))  # 4.1 + 0.04 + 0.04, and 0.01 mA more
