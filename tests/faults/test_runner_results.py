"""What the runner reports and configures around a faulted session (bugs the fault matrix found).

* An unconfirmed stop when the driver closes (a lost link cannot carry the stop) must not
  replace what the session ended with: the reason, message, stimulation time and peaks stay
  (HZ-22), the failure is added to the message and events, and the exit code is 1.
* ``prepare_run`` hands the verified channel caps to a driver that can hold its own limits: the
  Coyote writes them as BF soft limits, so neither its wheel nor a stray frame goes past them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from matrix import AT_S, prepare_cell, run_cell

from emsctl.clock import VirtualClock
from emsctl.runner import execute


@pytest.mark.parametrize("family", ["sim", "sciencemode2", "coyote3", "openems"])
def test_an_unconfirmed_stop_at_close_keeps_the_sessions_result_and_adds_the_failure(
        family: str, tmp_path: Path) -> None:
    run = run_cell(family, "disconnect", tmp_path)
    result = run.outcome.result
    assert (result.end_reason, result.exit_code) == ("fault", 1)
    assert result.message.startswith("link to the device lost")
    assert "; stop not confirmed: " in result.message
    assert any(e.startswith("stop not confirmed: ") for e in result.events)
    assert result.stim_time_s == pytest.approx(AT_S, abs=0.5)
    assert max(result.peak_ma) > 0
    assert run.outcome.delivered["stim_time_s"] == result.stim_time_s


def test_a_completed_program_whose_stop_is_not_confirmed_is_exit_1_with_its_full_time(
        tmp_path: Path) -> None:
    run = run_cell("coyote3", "drop_acks", tmp_path)
    result = run.outcome.result
    assert (result.end_reason, result.exit_code) == ("fault", 1)
    assert result.stim_time_s == run.prepared.plan.duration_s
    assert result.message.startswith("stop not confirmed: the Coyote did not confirm the stop")
    assert result.message.count("stop not confirmed") == 1  # said once, not once per try


def test_the_coyote_soft_limits_are_the_plans_caps_during_a_run(tmp_path: Path) -> None:
    prepared, _ = prepare_cell("coyote3", None)
    driver = prepared.driver
    emulator = driver.emulator  # type: ignore[attr-defined]
    config = driver.config  # type: ignore[attr-defined]
    caps = {c.channel: c.cap_ma for c in prepared.plan.channels}
    expected = [config.steps_for_ma(caps[1]), config.steps_for_ma(caps[2])]
    assert expected != [200, 200] and all(0 < s < 200 for s in expected)
    seen: list[list[int]] = []

    def on_start(session: object) -> None:
        seen.append(list(emulator.limits_steps))
        asyncio.get_running_loop().call_later(10.0, session.stop)  # type: ignore[attr-defined]

    outcome = execute(prepared, VirtualClock(None), journal_dir=tmp_path, on_start=on_start,
                      handle_signals=False)
    assert outcome.result.end_reason == "stopped"
    assert seen == [expected]  # BF written at connect from the plan's caps
    assert emulator.limits_steps == [0, 0]  # and 0/0 at close (the wheel cannot raise it)
