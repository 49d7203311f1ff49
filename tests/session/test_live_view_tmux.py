"""The live view in a real terminal: ``emsctl run relaxation --speed 20`` driven inside tmux.

A private tmux server (its own socket, no user config) runs the command in a 100×30 window with
its own state directory. The test waits for phase A's output on screen, then presses ``-``,
``+`` (so there is room to rise), space and ``q``, and reads the screen after each: it must show
the intensity change, the PAUSED status with zero output, and the stop with its summary and
exit code 130. Every wait polls ``capture-pane`` with a timeout; nothing relies on a fixed sleep.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from session_helpers import EMSCTL, have_tmux

from emsctl.journal import read_journal

pytestmark = [pytest.mark.realtime,
              pytest.mark.skipif(not have_tmux(), reason="tmux is not installed")]

WAIT_S = 30.0  # generous: phase A starts 9 s in at 20x, later on a loaded machine


class Tmux:
    def __init__(self, socket: str) -> None:
        self.base = ["tmux", "-L", socket, "-f", "/dev/null"]

    def __call__(self, *args: str) -> str:
        done = subprocess.run([*self.base, *args], capture_output=True, text=True, check=True,
                              timeout=10)
        return done.stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "live")

    def wait_for(self, what: str, test: Callable[[str], bool], timeout_s: float = WAIT_S) -> str:
        deadline = time.monotonic() + timeout_s
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if test(screen):
                return screen
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; the screen:\n{screen}")

    def keys(self, key: str) -> None:
        self("send-keys", "-t", "live", "-l", key)


def amplitudes_ma(screen: str) -> list[float]:
    return [float(v) for v in re.findall(r"calf-(?:left|right)\s+(\d+\.\d)", screen)]


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[tuple[Tmux, Path]]:
    term = Tmux(f"test-{os.getpid()}")
    state = tmp_path / "state"
    command = (f"env EMSCTL_STATE_DIR={shlex.quote(str(state))} "
               f"{shlex.quote(str(EMSCTL))} run relaxation --speed 20; "
               'echo "EXIT=$?"; sleep 60')
    term("new-session", "-d", "-s", "live", "-x", "100", "-y", "30", "sh", "-c", command)
    try:
        yield term, state
    finally:
        subprocess.run([*term.base, "kill-server"], capture_output=True, check=False)


def test_live_view_shows_intensity_change_pause_and_stop(tmux: tuple[Tmux, Path]) -> None:
    term, state = tmux
    screen = term.wait_for("phase A with output", lambda s: "phase A" in s and any(
        a > 0 for a in amplitudes_ma(s)))
    assert "[RUNNING]" in screen and "intensity 100 %" in screen
    assert "device: ok" in screen  # HZ-16: the device's own reports, with their age

    term.keys("-")
    screen = term.wait_for("intensity 95 %", lambda s: "intensity  95 %" in s)
    lowered = max(amplitudes_ma(screen))

    term.keys("+")
    screen = term.wait_for("intensity back at 100 %", lambda s: "intensity 100 %" in s
                           and max(amplitudes_ma(s)) > lowered)

    term.keys(" ")
    screen = term.wait_for("PAUSED at zero", lambda s: "[PAUSED]" in s
                           and amplitudes_ma(s) == [0.0, 0.0])

    term.keys("q")
    screen = term.wait_for("the exit summary", lambda s: "EXIT=" in s)
    assert "Session stopped: stopped by the user." in screen
    assert "EXIT=130" in screen
    assert "Journal:" in screen and "Traceback" not in screen

    [path] = (state / "journals").glob("*.jsonl")
    journal = read_journal(path)
    kinds = [r.get("kind") for r in journal.records if r["type"] == "event"]
    assert kinds.count("intensity") == 2 and "pause" in kinds
    assert journal.records[-1]["type"] == "stop" and journal.records[-1]["reason"] == "stopped"
    assert journal.footer is not None and journal.footer["end_reason"] == "stopped"
