"""The runtime guard: every limit stops the session; nothing passes after the latch."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emsctl.contract import ZERO, ChannelSetpoint
from emsctl.errors import SafetyViolation
from emsctl.guard import ChannelGuard, Guard
from emsctl.limits import DEFAULTS


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
