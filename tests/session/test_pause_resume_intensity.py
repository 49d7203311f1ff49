"""Pause, resume and intensity: zero at once, soft start from zero, slew-limited rises.

L14/L15: a resume starts at 0 mA and rises to the plan over at least ``soft_start_min_s``;
L17: user increases rise by at most ``user_step_ma`` per command and ``user_rise_ma_per_s``,
decreases act at once; HZ-16: while the device's reports are stale an increase is refused.
All in virtual time on the simulator, reading what the *device* was told (its intervals).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from session_helpers import all_zero, prepared, run_virtual

from emsctl.limits import DEFAULTS
from emsctl.simulator.faults import Fault

#: relaxation phase B (480–780 s): a constant MT+10 % = 13.2 mA at 3 Hz on channels 1 and 2
IN_B_S = 500.0
PLAN_B_MA = 13.2
STEP_MA = 0.1


def changes(device: object, t_from_s: float, t_to_s: float, channel: int = 1) -> np.ndarray:
    """The device's (time, set amplitude) change points of ``channel`` in [t_from, t_to)."""
    iv = device.intervals(channel)  # type: ignore[attr-defined]
    keep = (iv["t0_s"] >= t_from_s) & (iv["t0_s"] < t_to_s)
    return np.column_stack([iv["t0_s"][keep], iv["amplitude_ma"][keep]])


def amplitude_at(device: object, t_s: float, channel: int = 1) -> float:
    return float(device.outputs_at(t_s)[channel - 1].amplitude_ma)  # type: ignore[attr-defined]


def test_pause_is_zero_at_once_and_resume_soft_starts_from_zero(tmp_path: Path) -> None:
    t_pause, t_resume = IN_B_S + 0.05, IN_B_S + 30.05  # between ticks on purpose
    prep = prepared("relaxation")
    device = prep.driver.device  # type: ignore[attr-defined]
    run = run_virtual(prep, tmp_path, at=[(t_pause, lambda s: s.pause()),
                                          (t_resume, lambda s: s.resume()),
                                          (t_resume + 20, lambda s: s.stop())])
    t0 = run.session._start_s
    soft_s = DEFAULTS.soft_start_min_s
    assert soft_s >= 2.0  # L15 ceiling
    assert amplitude_at(device, t0 + t_pause - 0.01) == pytest.approx(PLAN_B_MA)
    assert all_zero(device.outputs_at(t0 + t_pause))  # the same instant, not the next tick
    assert all_zero(device.outputs_at(t0 + t_resume - 0.01))
    # L14: from zero, never back at the earlier level; L15: up to the plan over ≥ soft_s
    rise = changes(device, t0 + t_resume, t0 + t_resume + soft_s + 1)
    assert rise[0, 1] <= PLAN_B_MA * 0.1 / soft_s + STEP_MA  # first step: one tick's worth
    assert np.all(np.diff(rise[:, 1]) >= -1e-9)  # monotonic
    reached = rise[rise[:, 1] >= PLAN_B_MA - 1e-9]
    assert reached.size, "the soft start must reach the plan"
    assert reached[0, 0] - (t0 + t_resume) >= soft_s - 0.1 - 1e-9
    # and no faster than linear over soft_s (one tick and one device step of slack)
    elapsed = rise[:, 0] - (t0 + t_resume)
    assert np.all(rise[:, 1] <= PLAN_B_MA * (elapsed + 0.1) / soft_s + STEP_MA + 1e-9)
    # the program clock stood still while paused
    assert run.outcome.result.stim_time_s == pytest.approx(
        run.session.plan.stimulation_s(t_resume + 20 - 30), abs=0.11)


def test_resume_after_a_pause_in_the_soft_start_also_starts_from_zero(tmp_path: Path) -> None:
    prep = prepared("circulation")  # output from t = 0, plan soft start 0 → target over 5 s
    device = prep.driver.device  # type: ignore[attr-defined]
    run = run_virtual(prep, tmp_path, at=[(3.0, lambda s: s.pause()),
                                          (4.0, lambda s: s.resume()),
                                          (12.0, lambda s: s.stop())])
    t0 = run.session._start_s
    assert amplitude_at(device, t0 + 2.95) > 1.0
    assert amplitude_at(device, t0 + 3.5) == 0.0
    assert amplitude_at(device, t0 + 4.0) <= STEP_MA  # resume: from zero again (L14)


def test_intensity_increase_is_slew_limited_and_decrease_is_immediate(tmp_path: Path) -> None:
    t_up, t_down = IN_B_S, IN_B_S + 20.05
    prep = prepared("relaxation")
    device = prep.driver.device  # type: ignore[attr-defined]
    run = run_virtual(prep, tmp_path, intensity_pct=50.0,
                      at=[(t_up, lambda s: s.change_intensity(+50.0)),
                          (t_down, lambda s: s.change_intensity(-80.0)),
                          (t_down + 5, lambda s: s.stop())])
    t0 = run.session._start_s
    step_ma, rise_ma_per_s = DEFAULTS.user_step_ma, DEFAULTS.user_rise_ma_per_s
    assert amplitude_at(device, t0 + t_up - 0.01) == pytest.approx(PLAN_B_MA / 2, abs=STEP_MA)
    rise = changes(device, t0 + t_up - 0.2, t0 + t_down)
    times, amps = rise[:, 0], rise[:, 1]
    assert amps[-1] == pytest.approx(PLAN_B_MA)  # it gets there …
    # … no faster than L17 allows: per command and over every window (one device step slack)
    assert np.all(np.diff(amps) <= step_ma + 1e-9)
    for i in range(len(times)):
        for j in range(i + 1, len(times)):
            assert amps[j] - amps[i] <= rise_ma_per_s * (times[j] - times[i]) + STEP_MA + 1e-9
    took_s = float(times[np.argmax(amps >= PLAN_B_MA - 1e-9)] - (t0 + t_up))
    assert took_s >= (PLAN_B_MA / 2 - STEP_MA) / rise_ma_per_s - 0.1
    # a decrease is never rate-limited, and acts in the same instant (not at the next tick)
    assert amplitude_at(device, t0 + t_down) == pytest.approx(PLAN_B_MA * 0.2, abs=STEP_MA)


def test_rapid_pause_resume_does_not_speed_up_an_intensity_rise(tmp_path: Path) -> None:
    # every resume wakes the loop for an extra tick: the rise must be paced by time, not ticks
    prep = prepared("relaxation")
    toggles = [(IN_B_S + 0.1 + 0.021 * k, lambda s: s.toggle_pause()) for k in range(60)]
    run = run_virtual(prep, tmp_path, intensity_pct=50.0, keep_states=True,
                      at=[(IN_B_S, lambda s: s.change_intensity(+50.0)), *toggles,
                          (IN_B_S + 10, lambda s: s.stop())])
    states = [s for s in run.states if s.t_s >= IN_B_S - 0.01 and s.status != "stopped"]
    assert len(states) > 60  # the toggles did add ticks
    t = np.array([s.t_s for s in states])
    ma = np.array([s.intensity_pct for s in states]) / 100 * PLAN_B_MA  # intensity in mA
    assert ma[-1] == pytest.approx(PLAN_B_MA)
    rise = ma[None, :] - ma[:, None]
    allowed = DEFAULTS.user_rise_ma_per_s * (t[None, :] - t[:, None]) + STEP_MA * 2 + 1e-9
    upper = np.triu(np.ones_like(rise, dtype=bool), 1)
    assert np.all(rise[upper] <= allowed[upper])


def test_stale_device_reports_refuse_increases_but_not_decreases(tmp_path: Path) -> None:
    # HZ-16: acks delayed by 2 s (the driver waits up to 5 s) leave the session without news
    t_late, late_s = IN_B_S, 2.0
    prep = prepared("relaxation", Fault("late_acks", at_s=t_late, value=late_s, duration_s=3.0),
                    url="sim?ack_timeout_s=5")
    seen: dict[str, tuple[float, bool, str, float | None]] = {}

    def look(name: str, delta_pct: float):
        def act(session) -> None:
            session.change_intensity(delta_pct)
            st = session.state
            seen[name] = (st.target_intensity_pct, session._telemetry_stale(), st.message,
                          st.telemetry_age_s)
        return act

    run = run_virtual(prep, tmp_path, intensity_pct=50.0, at=[
        (t_late - 1.0, look("fresh: +5", +5.0)),
        (t_late + 1.6, look("stale: +5", +5.0)),
        (t_late + 1.7, look("stale: -10", -10.0)),
        (t_late + 12.0, look("fresh again: +5", +5.0)),
        (t_late + 13.0, lambda s: s.stop()),
    ])
    assert seen["fresh: +5"][:2] == (55.0, False)
    target, stale, message, _ = seen["stale: +5"]
    assert stale and target == 55.0  # refused
    assert "stale" in message and "refused" in message
    target, stale, _, _ = seen["stale: -10"]
    assert stale and target == 45.0  # decreases always pass
    # one outstanding command: 2 s without an ack is 2 s without a new command, longer than
    # the 1 s lease, so the device switched off; output never restarts from there
    assert "fresh again: +5" not in seen
    result = run.outcome.result
    assert result.end_reason == "fault" and "output is off" in result.message
    assert all_zero(run.outputs_at_stop)


def test_the_state_reports_telemetry_age_for_the_view(tmp_path: Path) -> None:
    prep = prepared("relaxation")
    run = run_virtual(prep, tmp_path, keep_states=True, at=[(200.0, lambda s: s.stop())])
    ages = [s.telemetry_age_s for s in run.states if s.status == "running"]
    assert ages and all(a is not None and 0 <= a <= DEFAULTS.heartbeat_s + 0.11 for a in ages[1:])
    assert not any(s.telemetry_stale for s in run.states if s.status == "running")
