"""N, the largest number of pulses in any 1 s window, for continuous pulses and for bursts.

rms current, current density and power density (L4, L9, L10) are computed from N. For bursts
N is not bursts/s × pulses: below one burst a second, and at any rate that is not a whole
number, the worst 1 s window holds more pulses than that product. These tests compare N with
a brute-force count over the expanded pulse times, and run the case that slipped through on a
small pad (a 0.1/s burst of 100 pulses) through verify, ``emsctl show``, ``emsctl validate``
and the runtime guard.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from emsctl import pulse_window
from emsctl.cli import cli
from emsctl.cli.show import worst_case
from emsctl.contract import ChannelSetpoint
from emsctl.errors import SafetyViolation
from emsctl.guard import ChannelGuard, Guard
from emsctl.limits import DEFAULTS
from emsctl.loader import parse_program_text
from emsctl.plan import SEGMENT_DTYPE, ChannelSampler, compile_plan
from emsctl.pulses import expand_channel
from emsctl.verify import verify

# A window [t, t + 1 s) is half-open: a 100 Hz train has 100 pulses in every second (N = f).
# Float pulse times that fall within this of a window edge are taken as on the edge.
_EDGE_S = 1e-9


def _brute_force_n(frequency_hz: float, burst_rate_hz: float, burst_pulses: int) -> int:
    """Expand one long phase into pulse times and count the fullest 1 s window."""
    if burst_rate_hz > 0:
        period = 1 / burst_rate_hz
        span = (burst_pulses - 1) / frequency_hz
        # long enough that every window start of a whole burst period sees all bursts around it
        duration = span + 2 * period + 2.0
    else:
        duration = 3.0
    segments = np.array([(0.0, duration, 10.0, 10.0, frequency_hz, frequency_hz, 200.0, 200.0,
                          burst_rate_hz, burst_pulses, 0)], dtype=SEGMENT_DTYPE)
    times = np.sort(expand_channel(1, segments)["t_s"])
    # the fullest window starts at a pulse; count pulses in [t, t + 1)
    first = np.searchsorted(times, times - _EDGE_S, side="left")
    end = np.searchsorted(times, times + 1.0 - _EDGE_S, side="left")
    return int(np.max(end - first))


def _decimal(low: str, high: str, places: int) -> st.SearchStrategy[float]:
    return st.decimals(low, high, places=places).map(float)


frequencies = st.one_of(st.integers(1, 150).map(float), _decimal("1", "150", 2))
burst_rates = st.one_of(st.sampled_from([0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 10.0]),
                        _decimal("0.05", "10", 2))


@settings(max_examples=300, deadline=None)
@given(frequency=frequencies, rate=burst_rates, pulses=st.integers(1, 100))
def test_n_of_bursts_is_the_largest_number_of_pulses_in_any_1_s_window(
    frequency: float, rate: float, pulses: int
) -> None:
    brute = _brute_force_n(frequency, rate, pulses)
    # what the guard and the drivers' setpoints use, then the formula itself (every flavour)
    assert ChannelSetpoint(10.0, frequency, 200.0, rate, pulses).pulses_per_s == brute
    assert pulse_window.pulses_per_s(frequency, rate, pulses) == brute
    assert pulse_window.pulses_per_s_exact(frequency, rate, pulses) == brute
    assert pulse_window.pulses_per_s_array([frequency], [rate], [pulses]).tolist() == [brute]


@settings(max_examples=200, deadline=None)
@given(frequency=frequencies, rate=burst_rates, data=st.data())
def test_n_of_bursts_a_program_can_hold_is_the_largest_number_of_pulses_in_any_1_s_window(
    frequency: float, rate: float, data: st.DataObject
) -> None:
    # the program model's bursts never overlap: pulses / frequency × rate ≤ 1
    most = max(1, min(100, math.floor(Fraction(repr(frequency)) / Fraction(repr(rate)))))
    pulses = data.draw(st.integers(1, most), label="pulses")
    if pulses * Fraction(repr(rate)) > Fraction(repr(frequency)):
        return  # 1 pulse at under 1/T Hz: overlapping, covered above
    brute = _brute_force_n(frequency, rate, pulses)
    assert ChannelSetpoint(10.0, frequency, 200.0, rate, pulses).pulses_per_s == brute
    assert pulse_window.pulses_per_s(frequency, rate, pulses) == brute


@settings(max_examples=50, deadline=None)
@given(frequency=st.integers(1, 150))
def test_n_of_a_continuous_train_at_a_whole_frequency_is_the_frequency(frequency: int) -> None:
    assert _brute_force_n(float(frequency), 0.0, 0) == frequency
    assert pulse_window.pulses_per_s(float(frequency)) == frequency
    assert pulse_window.pulses_per_s_exact(frequency) == frequency


@pytest.mark.parametrize(
    ("frequency", "rate", "pulses", "expected"),
    [
        (100.0, 0.1, 100, 100),  # one 0.99 s burst every 10 s: all 100 pulses in one window
        (100.0, 0.5, 10, 10),  # one 90 ms burst every 2 s
        (50.0, 0.1, 100, 50),  # a 1.98 s burst: a window holds 50 of its pulses
        (100.0, 1.5, 10, 20),  # bursts at 0 and 0.67 s in the same window, not 15
        (100.0, 2.5, 30, 80),  # 30 + 30 + the first 20 of a burst at 0.8 s, not 75
        (100.0, 2.0, 10, 20),  # whole rates: bursts/s × pulses (tens-burst, W8)
        (80.0, 0.0, 0, 80),  # continuous: N = f
    ],
)
def test_worked_values_of_n(frequency: float, rate: float, pulses: int, expected: int) -> None:
    assert pulse_window.pulses_per_s(frequency, rate, pulses) == expected
    assert _brute_force_n(frequency, rate, pulses) == expected


def test_n_is_exact_on_a_window_edge() -> None:
    # 3 bursts/s of 10 pulses at 30 Hz: each burst is 1/3 s long; bursts at 0, 1/3, 2/3 s fit
    # exactly, and the pulse at 1 s belongs to the next window
    assert pulse_window.pulses_per_s_exact("30", "3", 10) == 30
    assert pulse_window.pulses_per_s_exact(Fraction(1, 3) * 90, 3, 10) == 30


def test_n_edge_inputs_and_refusals() -> None:
    assert pulse_window.pulses_per_s_exact(0) == 0
    assert pulse_window.pulses_per_s_exact(0.5) == Fraction(1, 2)
    assert pulse_window.pulses_per_s(0.5) == 0.5  # continuous: N = f even below 1 Hz
    assert pulse_window.pulses_per_s_exact(0, 2, 10) == 0  # no inner rate: no pulses
    assert pulse_window.pulses_per_s_exact(100, 2, 0) == 0  # bursts of no pulses
    assert pulse_window.pulses_per_s_exact(100, 2) == 0
    assert pulse_window.pulses_per_s(100.0, 2.0) == 0
    assert pulse_window.pulses_per_s_exact(100, 1, 1) == 1
    for args in ((-1,), (100, -1, 10), (100, 2, -1), (-100, 2, 10)):
        with pytest.raises(ValueError, match=r"^pulse and burst rates and pulse counts cannot "
                           r"be negative$"):
            pulse_window.pulses_per_s_exact(*args)
    with pytest.raises(ValueError):
        pulse_window.pulses_per_s(100.0, float("nan"), 10)


@pytest.mark.parametrize(
    ("frequency", "rate", "pulses", "expected"),
    [
        (8.0, 2.0, 10, 20),  # 1.125 s bursts every 0.5 s
        (10.0, 3.0, 10, 30),  # 0.9 s bursts every 1/3 s
        (7.0, 1.5, 20, 31),  # pulses of 3 bursts, unevenly interleaved
        (1.0, 10.0, 100, 1000),  # 99 s bursts every 0.1 s: 1 pulse each from 1000 bursts
    ],
)
def test_overlapping_bursts_are_counted_exactly(frequency: float, rate: float, pulses: int,
                                                expected: int) -> None:
    # the program model and the guard refuse these; verify still counts them exactly
    assert pulse_window.pulses_per_s(frequency, rate, pulses) == expected
    assert _brute_force_n(frequency, rate, pulses) == expected


# --------------------------------------------------------------------- the regression case

SLOW_BURST_ON_SMALL_PADS = """\
name = "slow-burst"
title = "Slow bursts on small pads"
purpose = "tens"
evidence = "none"
description = "One burst of 100 pulses at 100 Hz every 10 s, on 4 cm² pads."
placement = "Forearm."
calibration_frequency_hz = 100
calibration_pulse_width_us = 250

[[channels]]
id = 1
site = "forearm-left"
electrode_area_cm2 = 4
max_amplitude_ma = 40

[[phases]]
name = "bursts"
duration_s = 600
frequency_hz = 100
pulse_width_us = 250
amplitude = "40mA"
amplitude_cap = "MT"
burst = { rate_hz = 0.1, pulses = 100 }
"""

#: 40 mA, 250 µs, 100 pulses in the worst second, 4 cm²: J = 40 · √(2 · 250e-6 · 100) / 4.
WORST_SECOND_MA_CM2 = 40 * math.sqrt(2 * 250e-6 * 100) / 4  # 2.236 > 2.0 (L9)


def _worst_second_density(plan_pulses: np.ndarray, area_cm2: float) -> float:
    """rms current density of the fullest 1 s window of the plan's own pulses."""
    t = plan_pulses["t_s"]
    energy = np.cumsum(np.concatenate([[0.0], 2 * plan_pulses["amplitude_ma"] ** 2
                                       * plan_pulses["pulse_width_us"] * 1e-6]))
    end = np.searchsorted(t, t + 1.0 - _EDGE_S, side="left")
    worst = float(np.max(energy[end] - energy[np.arange(t.size)]))
    return math.sqrt(worst) / area_cm2


def test_the_worst_second_of_a_slow_burst_on_small_pads_is_over_the_density_ceiling() -> None:
    plan = compile_plan(parse_program_text(SLOW_BURST_ON_SMALL_PADS))
    delivered = _worst_second_density(plan.expand_pulses(), 4.0)
    assert delivered == pytest.approx(WORST_SECOND_MA_CM2, rel=1e-9)
    blocks = [v for v in verify(plan, DEFAULTS) if v.severity == "block"]
    assert [(v.limit_id, v.channel) for v in blocks] == [("L9", 1)]
    assert blocks[0].value == pytest.approx(delivered, rel=1e-9)  # what verify reports
    assert blocks[0].allowed == 2.0


def test_show_reports_the_worst_second_of_a_slow_burst(tmp_path: Path) -> None:
    path = tmp_path / "slow-burst.toml"
    path.write_text(SLOW_BURST_ON_SMALL_PADS)
    (channel,) = worst_case(str(path))["channels"]
    assert channel["current_density_ma_cm2"] == pytest.approx(WORST_SECOND_MA_CM2, rel=1e-9)
    assert channel["rms_ma"] == pytest.approx(WORST_SECOND_MA_CM2 * 4, rel=1e-9)


def test_validate_refuses_a_slow_burst_on_small_pads(tmp_path: Path) -> None:
    path = tmp_path / "slow-burst.toml"
    path.write_text(SLOW_BURST_ON_SMALL_PADS)
    result = CliRunner().invoke(cli, ["validate", "--format", "json", str(path)])
    assert result.exit_code == 1, result.output
    (entry,) = json.loads(result.stdout)["files"]
    assert [p["limit"] for p in entry["problems"]] == ["L9"]


def test_the_guard_refuses_the_slow_burst_setpoint_at_run_time() -> None:
    plan = compile_plan(parse_program_text(SLOW_BURST_ON_SMALL_PADS))
    (cplan,) = plan.channels
    sampler = ChannelSampler(cplan, plan.duration_s)
    guard = Guard(DEFAULTS, [ChannelGuard(cplan.cap_ma, cplan.electrode_area_cm2)])
    # the session's own setpoints, tick by tick through the soft start
    threshold_ma = 2.0 * 4 / math.sqrt(2 * 250e-6 * 100)  # J = 2.0 at 35.78 mA
    with pytest.raises(SafetyViolation, match="L9") as refused:
        for tick in range(200):
            t = tick * 0.05
            amp, freq, width, rate, pulses = sampler.at(t)
            guard.check(t, t, [ChannelSetpoint(amp, freq, width, rate, pulses)])
            last_ma = amp
    assert guard.latched
    assert "is over 2 mA/cm²" in str(refused.value)
    assert amp > threshold_ma  # refused at the first tick beyond the ceiling, not before
    assert last_ma <= threshold_ma


def test_the_guard_refuses_a_slow_burst_setpoint_beyond_the_density_ceiling() -> None:
    # a 40 mA device step lets the one jump past the slew rule: only the density is under test
    guard = Guard(DEFAULTS, [ChannelGuard(40.0, 4.0)], amplitude_step_ma=40.0)
    guard.check(0.0, 0.0, [ChannelSetpoint(0.0, 100.0, 250.0, 0.1, 100)])
    with pytest.raises(SafetyViolation, match=r"L9: channel 1 current density 2\.236"):
        guard.check(1.0, 1.0, [ChannelSetpoint(40.0, 100.0, 250.0, 0.1, 100)])
