"""Signals to a real ``emsctl run`` subprocess (real time, simulator, stdout a pipe).

SIGINT, SIGTERM and SIGHUP stop the session at once: exit code 130, a summary that says it was
stopped and that the output is off, in words (never a signal's name), and a journal that ends
with a stop record and a footer (HZ-22). The simulator lives in the subprocess, so what the
device did is read from the journal: the last command/stop records and the footer's delivered
figures (the simulator's recorder), whose record ends at the stop — not a lease later, which is
what a device left to its watchdog would show.

``relaxation`` as shipped starts with 3 minutes of guided stretching without output, so it is
also run from a copy without the stretch, where the output is on when the signal arrives.
SIGKILL cannot be caught: the journal it leaves must still be readable by ``emsctl history``.

All processes of this module start together (a module fixture) to keep the wall time short.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from session_helpers import EMSCTL, ROOT, emsctl_env

from emsctl.journal import read_journal

pytestmark = pytest.mark.realtime

STARTUP_TIMEOUT_S = 30.0
EXIT_TIMEOUT_S = 15.0
LEASE_S = 1.0


def no_stretch_program(folder: Path) -> Path:
    """relaxation without its guide phase: output from the first second on."""
    text = (ROOT / "programs" / "relaxation.toml").read_text(encoding="utf-8")
    text, n = re.subn(r'\[\[phases\]\]\nname = "stretch".*?(?=\n# Gentle twitches:)', "", text,
                      flags=re.S)
    assert n == 1
    path = folder / "relaxation-now.toml"
    path.write_text(text.replace('name = "relaxation"', 'name = "relaxation-now"'),
                    encoding="utf-8")
    return path


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    journal: Path
    signalled_at_t_s: float


def journal_of(state_dir: Path) -> Path | None:
    found = sorted((state_dir / "journals").glob("*.jsonl"))
    return found[0] if found else None


def lines(path: Path) -> list[dict]:
    out = []
    for raw in path.read_bytes().split(b"\n"):
        try:
            out.append(json.loads(raw))
        except ValueError:
            continue
    return out


def ready(state_dir: Path, need_output: bool) -> float | None:
    """The session time of its latest journaled command (one with output, if asked)."""
    path = journal_of(state_dir)
    if path is None:
        return None
    commands = [r for r in lines(path) if r.get("type") == "command"]
    if need_output:
        commands = [c for c in commands if any(sp["amplitude_ma"] > 0 for sp in c["setpoints"])]
    if not commands:
        return None
    return float(commands[-1]["t_s"])


CASES = {
    "relaxation-SIGINT": ("relaxation", signal.SIGINT),
    "relaxation-SIGTERM": ("relaxation", signal.SIGTERM),
    "output-on-SIGINT": ("now", signal.SIGINT),
    "output-on-SIGTERM": ("now", signal.SIGTERM),
    "output-on-SIGHUP": ("now", signal.SIGHUP),
    "output-on-SIGKILL": ("now", signal.SIGKILL),
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    base = tmp_path_factory.mktemp("signals")
    program_now = no_stretch_program(base)
    procs: dict[str, tuple[subprocess.Popen[str], Path]] = {}
    for name, (program, _) in CASES.items():
        state = base / name
        state.mkdir()
        argv = [str(EMSCTL), "run", str(program_now) if program == "now" else program,
                "--speed", "1"]
        procs[name] = (subprocess.Popen(argv, env=emsctl_env(state), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, start_new_session=True), state)
    sent: dict[str, float] = {}
    seen_at: dict[str, float] = {}
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    try:
        while len(sent) < len(CASES) and time.monotonic() < deadline:
            for name, (proc, state) in procs.items():
                if name in sent or proc.poll() is not None:
                    continue
                t_s = ready(state, need_output=CASES[name][0] == "now")
                if t_s is None:
                    continue
                # signal half a second into the session (repeated commands are not journaled)
                seen_at.setdefault(name, time.monotonic())
                if time.monotonic() - seen_at[name] >= 0.5:
                    proc.send_signal(CASES[name][1])
                    sent[name] = t_s
            time.sleep(0.05)
        results = {}
        for name, (proc, state) in procs.items():
            out, err = proc.communicate(timeout=EXIT_TIMEOUT_S)
            journal = journal_of(state)
            assert name in sent, f"{name} never got going: {out} {err}"
            assert journal is not None
            results[name] = Outcome(proc.returncode, out, err, journal, sent[name])
        return results
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


CAUGHT = [n for n, (_, sig) in CASES.items() if sig != signal.SIGKILL]


@pytest.mark.parametrize("name", CAUGHT)
def test_a_signal_stops_the_session_with_130_a_summary_and_a_closed_journal(
        name: str, outcomes: dict[str, Outcome]) -> None:
    got = outcomes[name]
    sig = CASES[name][1]
    assert got.returncode == 130, (got.stdout, got.stderr)
    said = {signal.SIGINT: "Stopped. Output is off",
            signal.SIGTERM: "Stopped (emsctl was asked to quit). Output is off",
            signal.SIGHUP: "Stopped (the terminal was closed). Output is off"}[sig]
    assert said in got.stdout and "SIG" not in got.stdout  # words, never a signal's name
    assert "Traceback" not in got.stderr
    journal = read_journal(got.journal)
    assert journal.footer is not None and not journal.truncated
    assert journal.footer["end_reason"] == "signal"
    stop = [r for r in journal.records if r["type"] in ("command", "stop")][-1]
    assert stop["type"] == "stop" and stop["reason"] == "signal"
    # the signal came soon after the command we saw: the session did not run on
    assert got.signalled_at_t_s <= stop["t_s"] <= got.signalled_at_t_s + 3.0
    channels = journal.footer["delivered"]["channels"]
    if CASES[name][0] == "relaxation":  # stopped during the stretch: nothing was ever on
        assert all(ch["pulse_count"] == 0 and ch["on_time_s"] == 0 for ch in channels.values())
    else:
        commands = [r for r in journal.records if r["type"] == "command"]
        assert any(sp["amplitude_ma"] > 0 for sp in commands[-1]["setpoints"])  # it was on
        for ch in ("1", "2"):
            figures = channels[ch]
            assert figures["pulse_count"] > 0
            # the device's record ends at the stop, not at a watchdog deadline a lease later
            assert stop["t_s"] - 0.05 <= figures["duration_s"] <= stop["t_s"] + 0.25
            assert figures["duration_s"] < stop["t_s"] + LEASE_S - 0.5


def test_a_killed_session_leaves_a_journal_that_history_reads(
        outcomes: dict[str, Outcome]) -> None:
    got = outcomes["output-on-SIGKILL"]
    assert got.returncode == -signal.SIGKILL
    journal = read_journal(got.journal)
    assert journal.footer is None
    assert any(r["type"] == "command" for r in journal.records)
    state_dir = got.journal.parent.parent
    listing = subprocess.run([str(EMSCTL), "history", "--format", "json"], check=False,
                             text=True, capture_output=True, env=emsctl_env(state_dir), timeout=30)
    assert listing.returncode == 0, listing.stderr
    [row] = json.loads(listing.stdout)
    assert row["program"] == "relaxation-now"
    assert row["end_reason"] == "killed/incomplete"
    session_id = journal.header["session_id"]
    shown = subprocess.run([str(EMSCTL), "history", str(session_id)[:12]], check=False,
                           text=True, capture_output=True, env=emsctl_env(state_dir), timeout=30)
    assert shown.returncode == 0, shown.stderr
    assert "relaxation-now" in shown.stdout
