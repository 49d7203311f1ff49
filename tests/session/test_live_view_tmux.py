"""The live view in a real terminal: ``emsctl run`` driven inside tmux.

A private tmux server (its own socket, no user config) runs the command in a window of a given
size with its own state directory, under ``bash`` with an INT trap so that a Ctrl-C reaches
emsctl and the shell still prints the exit code. Every wait polls ``capture-pane`` with a
timeout; nothing relies on a fixed sleep, and no test passes or fails on how fast the machine
is (timeouts are generous, and what is waited for always comes).

- relaxation at 20×: the plain phase name and the time left in it, ``-``, ``+``, space and
  ``q``; the stop says "Stopped. Output is off." and the live view's key hints are gone.
- a short program with a short guidance phase at 2×: the countdown to the first current,
  ``+`` at 100 % says so, and the final screen when the program completes (output off, the
  program's advice for afterwards, what the person had, no key hints, no "[STOPPED]").
- Ctrl-C: words, never a signal's name.
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
from session_helpers import EMSCTL, ROOT, have_tmux

from emsctl.journal import read_journal

pytestmark = [pytest.mark.realtime,
              pytest.mark.skipif(not have_tmux(), reason="tmux is not installed")]

WAIT_S = 30.0  # generous: the first current comes 9 s in at 20x, later on a loaded machine


class Tmux:
    def __init__(self, socket: str) -> None:
        self.base = ["tmux", "-L", socket, "-f", "/dev/null"]
        self.screens: list[str] = []

    def __call__(self, *args: str) -> str:
        done = subprocess.run([*self.base, *args], capture_output=True, text=True, check=True,
                              timeout=10)
        return done.stdout

    def start(self, command: str, columns: int = 100, rows: int = 30) -> None:
        script = f"trap : INT; {command}; echo \"EXIT=$?\"; sleep 60"
        self("new-session", "-d", "-s", "live", "-x", str(columns), "-y", str(rows),
             "bash", "-c", script)

    def screen(self) -> str:
        text = self("capture-pane", "-p", "-t", "live")
        self.screens.append(text)
        return text

    def history(self) -> str:
        """The whole window, scrollback included."""
        return self("capture-pane", "-p", "-S", "-", "-t", "live")

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

    def control_c(self) -> None:
        self("send-keys", "-t", "live", "C-c")


def amplitudes_ma(screen: str) -> list[float]:
    return [float(v) for v in re.findall(r"calf-(?:left|right)\s+(\d+\.\d)", screen)]


def emsctl(state: Path, *args: str) -> str:
    return (f"env EMSCTL_STATE_DIR={shlex.quote(str(state))} "
            f"{shlex.quote(str(EMSCTL))} " + " ".join(shlex.quote(a) for a in args))


@pytest.fixture
def term(tmp_path: Path) -> Iterator[Tmux]:
    terminal = Tmux(f"test-{os.getpid()}-{tmp_path.name}")
    try:
        yield terminal
    finally:
        subprocess.run([*terminal.base, "kill-server"], capture_output=True, check=False)


def short_program(folder: Path) -> Path:
    """relaxation cut short: 12 s of guidance, 20 s of gentle twitches, and its advice."""
    text = (ROOT / "programs" / "relaxation.toml").read_text(encoding="utf-8")
    text = text.replace('name = "relaxation"', 'name = "relaxation-short"')
    text = text.replace("duration_s = 180\ninstructions", "duration_s = 12\ninstructions", 1)
    cut = text.index('\n[[phases]]\nname = "slower twitches"')
    text = text[:cut].replace("duration_s = 300", "duration_s = 20")
    path = folder / "relaxation-short.toml"
    path.write_text(text + "\n", encoding="utf-8")
    return path


def test_live_view_shows_intensity_change_pause_and_a_plain_stop(
        term: Tmux, tmp_path: Path) -> None:
    state = tmp_path / "state"
    term.start(emsctl(state, "run", "relaxation", "--speed", "20"))
    screen = term.wait_for("the gentle twitches with output", lambda s: (
        "phase gentle twitches" in s and any(a > 0 for a in amplitudes_ma(s))))
    assert "[RUNNING]" in screen and "intensity 100 %" in screen
    assert "left in this phase" in screen and "left in the program" in screen
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
    screen = term.wait_for("the final screen", lambda s: "EXIT=" in s)
    assert "Stopped. Output is off" in screen and "EXIT=130" in screen
    assert "keys:" not in screen and "[STOPPED]" not in screen  # the live view is gone
    assert "What you had:" in screen and "Traceback" not in screen
    assert not any("-0.0 s ago" in s for s in term.screens)

    [path] = (state / "journals").glob("*.jsonl")
    journal = read_journal(path)
    kinds = [r.get("kind") for r in journal.records if r["type"] == "event"]
    assert kinds.count("intensity") == 2 and "pause" in kinds
    assert journal.records[-1]["type"] == "stop" and journal.records[-1]["reason"] == "stopped"
    assert journal.footer is not None and journal.footer["end_reason"] == "stopped"


def test_countdown_plus_at_full_and_the_final_screen(term: Tmux, tmp_path: Path) -> None:
    program = short_program(tmp_path)
    term.start(emsctl(tmp_path / "state", "run", str(program), "--speed", "2"), columns=80,
               rows=40)
    screen = term.wait_for("the countdown", lambda s: "current starts in" in s)
    match = re.search(r"current starts in (\d+) s — q stops", screen)
    assert match and 1 <= int(match.group(1)) <= 10
    assert "phase stretch" in screen and "(no current)" in screen
    assert amplitudes_ma(screen) == [0.0, 0.0]

    term.keys("+")
    term.wait_for("'+' at 100 % says so", lambda s: "already at 100 %" in s)

    screen = term.wait_for("the final screen", lambda s: "EXIT=" in s)
    whole = term.history()
    assert "EXIT=0" in screen
    assert "Finished. Output is off: you can take the pads off now." in screen
    assert "drink enough over the day" in screen  # the program's advice for afterwards
    assert "What you had:" in screen
    assert re.search(r"Highest current +1\d\.\d mA on each calf", screen)
    assert "keys:" not in screen and "[STOPPED]" not in screen
    # the text before the live view breaks lines between words, never inside one
    before = whole.split("The current starts after", 1)[0]
    assert "Upper pad" in " ".join(before.split())
    assert all(len(line) <= 80 for line in before.splitlines())
    assert "MT = the level where the muscle starts to twitch" in before


def test_ctrl_c_says_stopped_in_words(term: Tmux, tmp_path: Path) -> None:
    term.start(emsctl(tmp_path / "state", "run", "relaxation", "--speed", "20"))
    term.wait_for("the live view", lambda s: "[RUNNING]" in s)
    term.control_c()
    screen = term.wait_for("the final screen", lambda s: "EXIT=" in s)
    assert "Stopped. Output is off" in screen and "EXIT=130" in screen
    assert "SIG" not in term.history()
