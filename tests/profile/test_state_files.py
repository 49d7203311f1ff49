"""State files are opened only when they are regular files, and never block.

A FIFO (or a device, a socket, a directory) where a journal, the profile, a fault plan or the
Coyote emulator's state should be used to hang ``emsctl history`` and every real-device
``emsctl run`` with no message: the readers opened it blocking. Now each is refused at once,
and a journal folder entry that is not a regular file is listed as "not a journal" and skipped
by the dose ledger.

Every call that used to hang runs in a subprocess or a thread with a generous guard timeout, so
a regression fails the test instead of blocking the suite; the timeout is a guard, never a
pass/fail figure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from person_helpers import REAL_URL, relaxation_profile, write_journal

from emsctl.errors import InputError
from emsctl.journal import NOT_A_JOURNAL, list_journals
from emsctl.ledger import past_sessions
from emsctl.profile import ProfileError, load_profile, save_profile

EMSCTL = Path(sys.executable).parent / "emsctl"
#: Far above anything these commands need (well under a second each): only a hang reaches it.
GUARD_S = 60.0
FIFO_NAME = "20250304T213005Z-relaxation-deadbeef.jsonl"
T = TypeVar("T")


def _release(fifo: Path) -> None:
    """Unblock a reader stuck in open() on ``fifo`` (a writer that opens and closes at once)."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return  # no reader is waiting
    os.close(fd)


def guarded(call: Callable[[], T], fifo: Path) -> T:
    """``call()`` in a thread; fail (and unblock it) if it has not returned within GUARD_S."""
    outcome: list[object] = []

    def target() -> None:
        try:
            outcome.append(("ok", call()))
        except BaseException as exc:  # handed to the test thread
            outcome.append(("raised", exc))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(GUARD_S)
    if thread.is_alive():
        _release(fifo)
        thread.join(GUARD_S)
        pytest.fail(f"blocked on the FIFO {fifo.name} for {GUARD_S:g} s")
    kind, value = outcome[0]  # type: ignore[misc]
    if kind == "raised":
        assert isinstance(value, BaseException)
        raise value
    return value  # type: ignore[return-value]


def emsctl(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed console script, with the test's data and state folders, no terminal."""
    env = {**os.environ, "EMSCTL_STATE_DIR": str(tmp_path / "state"),
           "EMSCTL_DATA_DIR": str(tmp_path / "data")}
    env.pop("EMSCTL_DEVICE", None)
    try:
        return subprocess.run([str(EMSCTL), *args], env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=GUARD_S, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"'emsctl {' '.join(args)}' hung for {GUARD_S:g} s")


@pytest.fixture
def journals(tmp_path: Path) -> Path:
    folder = tmp_path / "state" / "journals"
    folder.mkdir(parents=True, mode=0o700)
    return folder


def test_history_lists_a_fifo_in_the_journal_folder_as_not_a_journal(
        tmp_path: Path, journals: Path) -> None:
    write_journal(journals, datetime(2025, 3, 4, 20, 0, tzinfo=UTC), 600.0)
    os.mkfifo(journals / FIFO_NAME)
    done = emsctl(tmp_path, "history")
    assert done.returncode == 0, done.stderr
    assert f"{FIFO_NAME} is not a journal" in done.stderr
    assert "not a regular file" in done.stderr and "Traceback" not in done.stderr
    assert "completed" in done.stdout and NOT_A_JOURNAL in done.stdout


def test_a_real_device_run_is_not_hung_by_a_fifo_in_the_journal_folder(
        tmp_path: Path, journals: Path) -> None:
    save_profile(relaxation_profile(datetime.now(UTC) - timedelta(hours=1)),
                 tmp_path / "data" / "profile.toml")
    os.mkfifo(journals / FIFO_NAME)
    done = emsctl(tmp_path, "run", "relaxation", "--device", REAL_URL, "--yes")
    # past the profile and the dose ledger, it stops where a real device needs a terminal
    assert done.returncode == 2, done.stderr
    assert "need a terminal" in done.stderr and "Traceback" not in done.stderr


def test_the_ledger_skips_what_is_not_a_regular_file(
        journals: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMSCTL_STATE_DIR", str(journals.parent))  # the ledger imports from here
    os.mkfifo(journals / FIFO_NAME)
    (journals / "20250304T213006Z-relaxation-0000beef.jsonl").mkdir()
    summaries = guarded(lambda: list_journals(journals), journals / FIFO_NAME)
    assert [s.end_reason for s in summaries] == [NOT_A_JOURNAL, NOT_A_JOURNAL]
    assert all("not a journal" in (s.problem or "") for s in summaries)
    assert guarded(past_sessions, journals / FIFO_NAME) == []


def test_a_fifo_profile_is_refused_with_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "profile.toml"
    os.mkfifo(path, 0o600)
    with pytest.raises(ProfileError, match=r"cannot read profile .*not a regular file"):
        guarded(lambda: load_profile(path), path)


def test_a_real_device_run_with_a_fifo_profile_exits_2(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir(mode=0o700)
    os.mkfifo(tmp_path / "data" / "profile.toml", 0o600)
    done = emsctl(tmp_path, "run", "relaxation", "--device", REAL_URL, "--yes")
    assert done.returncode == 2
    assert "not a regular file" in done.stderr and "Traceback" not in done.stderr


def test_a_fifo_fault_plan_is_refused(tmp_path: Path) -> None:
    from emsctl.simulator.faults import load_fault_plan

    path = tmp_path / "faults.toml"
    os.mkfifo(path)
    with pytest.raises(InputError, match="not a regular file"):
        guarded(lambda: load_fault_plan(path), path)


def test_a_fifo_as_the_coyote_emulator_state_is_refused(tmp_path: Path) -> None:
    from emsctl.simulator.devices.coyote3 import EmulatedCoyote

    path = tmp_path / "coyote-state.json"
    os.mkfifo(path)
    with pytest.raises(InputError, match="not a regular file"):
        guarded(lambda: EmulatedCoyote(ma_per_step=0.2, persist_path=path), path)
