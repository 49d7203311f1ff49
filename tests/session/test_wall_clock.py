"""HZ-05: a wall-clock jump (NTP, DST, a user setting the clock) cannot stretch or cut a session.

The session and everything under it read only the loop's clock. Here ``time.time`` jumps an
hour forward and then an hour back in the middle of a session: the session lasts exactly as
long as without the jumps, and the device receives exactly the same commands at the same
loop times. A spy also shows that no session, guard, driver or simulator code asked the wall
clock at all (the journal may: its file name and footer carry the UTC date).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
from session_helpers import prepared, run_virtual

HOUR_S = 3600.0
FORBIDDEN_CALLERS = ("emsctl.session", "emsctl.guard", "emsctl.plan", "emsctl.clock",
                     "emsctl.drivers", "emsctl.simulator")


def device_record(prep: object) -> list[np.ndarray]:
    device = prep.driver.device  # type: ignore[attr-defined]
    return [device.intervals(ch) for ch in device.channels]


def test_a_wall_clock_jump_changes_neither_duration_nor_commands(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    control_prep = prepared("relaxation")
    control = run_virtual(control_prep, tmp_path / "control")

    real_time = time.time
    offset = {"s": 0.0}
    callers: list[str] = []

    def jumpy_time() -> float:
        callers.append(sys._getframe(1).f_globals.get("__name__", "?"))
        return real_time() + offset["s"]

    def jump(by_s: float):
        def act(session: object) -> None:
            offset["s"] += by_s
        return act

    monkeypatch.setattr(time, "time", jumpy_time)
    prep = prepared("relaxation")
    run = run_virtual(prep, tmp_path / "jumps", at=[(300.0, jump(+HOUR_S)),
                                                    (600.0, jump(-2 * HOUR_S)),
                                                    (700.0, jump(+HOUR_S))])
    monkeypatch.setattr(time, "time", real_time)
    assert offset["s"] == 0.0

    for a in (control, run):
        assert a.outcome.result.end_reason == "completed"
    duration_s = prep.plan.duration_s
    assert run.outcome.result.stim_time_s == pytest.approx(prep.plan.stimulation_s(duration_s),
                                                           abs=0.11)
    assert run.outcome.result.stim_time_s == control.outcome.result.stim_time_s
    assert run.session.state.t_s == control.session.state.t_s
    # the device got the same commands at the same loop times
    for got, want in zip(device_record(prep), device_record(control_prep), strict=True):
        assert got.shape == want.shape
        assert np.array_equal(got, want)
    assert not [c for c in callers if c.startswith(FORBIDDEN_CALLERS)], set(callers)
