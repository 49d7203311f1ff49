"""The dose ledger's one place (L20, HZ-05): ``<state dir>/dose-ledger.jsonl``, whatever the run.

Real-device sessions are run here without hardware the way ``emsctl run`` runs them: the CLI
with a driver made outside the device table (so it is *not* simulated: only the table's
``sim`` entries are), a virtual clock, and the before-session questions answered as "no".
"""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

import pytest
from click.testing import CliRunner
from person_helpers import REAL_URL, answers, calibration, write_journal

from emsctl.cli import main
from emsctl.clock import VirtualClock
from emsctl.contract import Driver
from emsctl.profile import Profile, save_profile
from emsctl.simulator.drivers.sim import SimDriver

NO_FLAGS = {"calf_red_flag": False, "cramp_red_flag": False, "skin": False}
LEDGER = "dose-ledger.jsonl"


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    data, state = tmp_path / "data", tmp_path / "state"
    monkeypatch.setenv("EMSCTL_DATA_DIR", str(data))
    monkeypatch.setenv("EMSCTL_STATE_DIR", str(state))
    monkeypatch.delenv("EMSCTL_DEVICE", raising=False)
    monkeypatch.delenv("EMSCTL_LIMITS", raising=False)
    return {"data": data, "state": state, "journals": state / "journals",
            "ledger": state / LEDGER, "elsewhere": tmp_path / "elsewhere"}


@pytest.fixture
def real_runs(dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> list[Driver]:
    """``emsctl run --device sim`` on a driver that is real to emsctl, in virtual time."""
    import emsctl.cli.gates
    import emsctl.runner

    opened: list[Driver] = []

    def open_device(url: str, options: object = None) -> Driver:
        driver = SimDriver(url="sim")  # not opened from the device table: not simulated
        assert not driver.simulated
        opened.append(driver)
        return driver

    def pass_gates(profile: Profile, *args: object, **kwargs: object
                   ) -> tuple[Profile, dict[str, bool]]:
        return profile, dict(NO_FLAGS)  # the checks before each session, answered "no"

    monkeypatch.setattr(emsctl.runner, "open_device", open_device)
    monkeypatch.setattr(emsctl.runner, "make_clock", lambda driver, speed: VirtualClock(None))
    monkeypatch.setattr(emsctl.cli.gates, "pass_gates", pass_gates)
    when = datetime.now(UTC) - timedelta(minutes=30)
    save_profile(Profile(screening=answers(when), calibrations=[
        calibration(site, ch, when=when, device="sim")
        for site, ch in (("calf-left", 1), ("calf-right", 2))]), dirs["data"] / "profile.toml")
    return opened


def run(*args: str) -> tuple[int, str, str]:
    """``emsctl run ARGS`` through the console-script entry point (errors → one sentence)."""
    with CliRunner().isolation() as (out, err, *_):
        try:
            main(["run", *args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        return code, out.getvalue().decode(), err.getvalue().decode()


def real_run(*extra: str) -> tuple[int, str, str]:
    return run("relaxation", "--device", "sim", "--yes", "--format", "json", *extra)


def journal_dir_options(tmp_path: Path) -> list[tuple[str, ...]]:
    """Five ways to say where the journal goes: three fresh folders, the default, another."""
    return [("--journal-dir", str(tmp_path / "a")), ("--journal-dir", str(tmp_path / "b")),
            ("--journal-dir", str(tmp_path / "c")), (), ("--journal-dir", str(tmp_path / "d"))]


# ------------------------------------------------------------- regressions: the bypass closed


def test_five_real_sessions_in_a_minute_are_refused_by_the_gap_whatever_the_journal_dir(
        tmp_path: Path, dirs: dict[str, Path], real_runs: list[Driver]) -> None:
    codes, errors = [], []
    for option in journal_dir_options(tmp_path):
        code, _, err = real_run(*option)
        codes.append(code)
        errors.append(err)
    assert len(real_runs) == 5 and not any(d.simulated for d in real_runs)
    assert codes == [0, 1, 1, 1, 1], errors
    for err in errors[1:]:
        assert "need 60 min between them (L20)" in err and "next session allowed from" in err
        assert "Traceback" not in err


@pytest.fixture
def wall_clock(monkeypatch: pytest.MonkeyPatch) -> list[timedelta]:
    """Move emsctl's wall clock on by ``offset[0]``: virtual-time sessions take no real time."""
    import emsctl.ledger
    import emsctl.local_time

    offset = [timedelta(0)]
    real = datetime

    class Shifted(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Shifted:
            moment = real.now(tz) + offset[0]
            return cls.fromtimestamp(moment.timestamp(), moment.tzinfo)

    monkeypatch.setattr(emsctl.ledger, "datetime", Shifted)  # the ledger's records
    monkeypatch.setattr(emsctl.local_time, "datetime", Shifted)  # local_now()
    return offset


def test_back_to_back_real_sessions_are_refused_by_the_daily_count_whatever_the_journal_dir(
        tmp_path: Path, dirs: dict[str, Path], real_runs: list[Driver],
        wall_clock: list[timedelta]) -> None:
    limits = tmp_path / "limits.toml"  # no gap (its ceiling is 0 s), the ceiling of 4 a day
    limits.write_text("min_gap_between_sessions_s = 0\nsessions_per_day = 4\n"
                      "minutes_per_day = 120\n")
    codes, errors = [], []
    for option in journal_dir_options(tmp_path):
        code, _, err = real_run("--limits", str(limits), *option)
        codes.append(code)
        errors.append(err)
        wall_clock[0] += timedelta(minutes=18)  # each 16-minute session, then the next
    assert codes == [0, 0, 0, 0, 1], errors
    assert "4 sessions on calf-left in the last 24 h; at most 4 a day (L20)" in errors[-1]


def test_an_upgrade_keeps_counting_the_journals_already_in_the_default_folder(
        dirs: dict[str, Path], real_runs: list[Driver]) -> None:
    now = datetime.now(UTC)
    for hours in (5, 3, 1.5):  # written before the ledger file existed
        write_journal(dirs["journals"], now - timedelta(hours=hours), 960)
    assert not dirs["ledger"].exists()
    code, _, err = real_run("--journal-dir", str(dirs["elsewhere"]))
    assert code == 1 and "at most 3 a day (L20)" in err, err


def test_a_future_dated_journal_still_counts(dirs: dict[str, Path], real_runs: list[Driver]
                                             ) -> None:
    write_journal(dirs["journals"], datetime.now(UTC) + timedelta(hours=2), 960)
    code, _, err = real_run("--journal-dir", str(dirs["elsewhere"]))
    assert code == 1 and "(L20)" in err
    assert "dated in the future" in err


def test_a_future_dated_ledger_record_still_counts(dirs: dict[str, Path], real_runs: list[Driver]
                                                   ) -> None:
    dirs["state"].mkdir(parents=True)
    future = datetime.now(UTC) + timedelta(days=3)
    records = [{"type": "import-done", "folder": str(dirs["journals"]), "sessions": 0},
               {"type": "start", "session_id": "f" * 32, "started_utc": future.isoformat(),
                "program": "relaxation", "sites": ["calf-left"], "planned_s": 960.0,
                "device_url": REAL_URL, "journal": None}]
    dirs["ledger"].write_text("".join(json.dumps(r) + "\n" for r in records))
    code, _, err = real_run()
    assert code == 1 and "calf-left" in err and "(L20)" in err


# ------------------------------------------------------------------------- helpers for below


def in_thread(func: Callable[[], object], timeout_s: float = 10.0) -> object:
    """Call ``func`` in a thread; fail (instead of hanging the suite) if it blocks."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = func()
        except BaseException as exc:  # handed back to the test
            box["error"] = exc
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout_s)
    assert not thread.is_alive(), "blocked: a FIFO was opened as if it were a file"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


def ledger_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def file_mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# ------------------------------------------------------------------- the ledger file itself


def test_a_real_session_is_recorded_at_its_start_and_closed_with_its_length(
        tmp_path: Path, dirs: dict[str, Path], real_runs: list[Driver]) -> None:
    code, out, err = real_run("--journal-dir", str(dirs["elsewhere"]))
    assert code == 0, err
    assert file_mode(dirs["ledger"]) == 0o600 and file_mode(dirs["state"]) == 0o700
    done, start, end = ledger_lines(dirs["ledger"])
    assert done["type"] == "import-done" and done["sessions"] == 0
    assert start["type"] == "start" and start["sites"] == ["calf-left", "calf-right"]
    assert start["planned_s"] == 960.0 and start["program"] == "relaxation"
    journal = Path(json.loads(out)["journal"])
    assert journal.parent == dirs["elsewhere"]
    header = json.loads(journal.read_text().splitlines()[0])
    assert start["session_id"] == end["session_id"] == header["session_id"]
    assert end["type"] == "end" and end["end_reason"] == "completed"
    assert end["journal"] == str(journal)
    assert 960.0 <= float(end["duration_s"]) < 970.0  # type: ignore[arg-type]


def test_a_simulator_session_never_touches_the_ledger(dirs: dict[str, Path]) -> None:
    code, _, err = run("relaxation", "--speed", "max", "--format", "json")
    assert code == 0, err
    assert not dirs["ledger"].exists()


def test_a_session_without_its_end_record_counts_with_its_planned_length(
        dirs: dict[str, Path]) -> None:
    from emsctl.ledger import begin_session, past_sessions
    from emsctl.limits import DEFAULTS

    start = datetime.now(UTC) - timedelta(hours=2)
    begin_session(session_id="a" * 32, program="relaxation", sites=["calf-left"],
                  planned_s=960.0, limits=DEFAULTS, device_url=REAL_URL, now=start)
    (past,) = past_sessions()  # killed: no end record, ever
    assert past.started_utc == start and past.duration_s == 960.0
    assert past.sites == ("calf-left",)


def test_a_second_run_that_passed_preflight_is_refused_when_it_starts(
        dirs: dict[str, Path]) -> None:
    from emsctl.dose_rules import DoseLimitReached
    from emsctl.ledger import begin_session
    from emsctl.limits import DEFAULTS

    now = datetime.now(UTC)
    begin_session(session_id="b" * 32, program="relaxation", sites=["calf-left"],
                  planned_s=960.0, limits=DEFAULTS, device_url=REAL_URL, now=now)
    with pytest.raises(DoseLimitReached, match="calf-left"):  # checked again under the lock
        begin_session(session_id="c" * 32, program="relaxation", sites=["calf-left"],
                      planned_s=960.0, limits=DEFAULTS, device_url=REAL_URL,
                      now=now + timedelta(seconds=1))
    assert [r["type"] for r in ledger_lines(dirs["ledger"])] == ["import-done", "start"]


def test_a_real_session_counts_even_when_its_journal_cannot_be_written(
        tmp_path: Path, dirs: dict[str, Path], real_runs: list[Driver]) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    code, _, err = real_run("--journal-dir", str(not_a_folder / "journals"))
    assert code != 0 and "cannot create journal" in err
    start, end = ledger_lines(dirs["ledger"])[1:]
    assert start["type"] == "start" and end["type"] == "end"
    assert end["duration_s"] == 0.0 and end["end_reason"] == "journal not written"
    code, _, err = real_run()
    assert code == 1 and "(L20)" in err


def test_old_journals_are_imported_once(dirs: dict[str, Path]) -> None:
    from emsctl.ledger import past_sessions

    now = datetime.now(UTC)
    write_journal(dirs["journals"], now - timedelta(hours=30), 960)
    write_journal(dirs["journals"], now - timedelta(hours=3), 600)
    write_journal(dirs["journals"], now - timedelta(hours=2), 600, device_url="sim")
    first = past_sessions()
    assert [p.duration_s for p in first] == [960.0, 600.0]
    lines = dirs["ledger"].read_text()
    assert past_sessions() == first and dirs["ledger"].read_text() == lines
    # a journal written after the import is not the ledger's business
    write_journal(dirs["journals"], now - timedelta(hours=1), 600)
    assert past_sessions() == first


def test_an_import_cut_short_is_finished_without_counting_twice(dirs: dict[str, Path]) -> None:
    from emsctl.ledger import past_sessions

    now = datetime.now(UTC)
    write_journal(dirs["journals"], now - timedelta(hours=3), 600)
    write_journal(dirs["journals"], now - timedelta(hours=2), 600)
    past_sessions()
    records = ledger_lines(dirs["ledger"])
    assert [r["type"] for r in records] == ["imported", "imported", "import-done"]
    # killed after the first imported record, before the rest and the mark
    dirs["ledger"].write_text(json.dumps(records[0]) + "\n")
    assert len(past_sessions()) == 2
    assert [r["type"] for r in ledger_lines(dirs["ledger"])] == [
        "imported", "imported", "import-done"]


def test_a_cut_last_line_is_tolerated_and_ended_by_the_next_write(dirs: dict[str, Path]) -> None:
    from emsctl.ledger import begin_session, past_sessions
    from emsctl.limits import DEFAULTS

    now = datetime.now(UTC)
    begin_session(session_id="d" * 32, program="relaxation", sites=["calf-left"],
                  planned_s=960.0, limits=DEFAULTS, device_url=REAL_URL,
                  now=now - timedelta(hours=5))
    with dirs["ledger"].open("a") as handle:
        handle.write('{"type":"end","session_id":"dddd')  # a write cut by a kill
    assert len(past_sessions()) == 1
    begin_session(session_id="e" * 32, program="relaxation", sites=["calf-right"],
                  planned_s=960.0, limits=DEFAULTS, device_url=REAL_URL, now=now)
    text = dirs["ledger"].read_text()
    assert '"session_id":"dddd\n{"type":"repaired"}\n' in text
    assert [p.sites for p in past_sessions()] == [("calf-left",), ("calf-right",)]


@pytest.mark.parametrize(("content", "why"), [
    ('{"type":"import-done"}\ngarbage\n{"type":"import-done"}\n', "line 2 (not a JSON record)"),
    ('{"type":"start","session_id":"x","started_utc":"yesterday","program":"p","sites":[],'
     '"planned_s":1}\n', "line 1 (a 'start' record with"),
    ('{"type":"pause","session_id":"x"}\n', "line 1 (a record of unknown type 'pause')"),
    ('{"type":"import-done"}\n{"type":"end","sess\n', "line 2 (not a JSON record)"),
])
def test_a_damaged_ledger_refuses_a_real_run_with_exit_2_and_one_sentence(
        dirs: dict[str, Path], real_runs: list[Driver], content: str, why: str) -> None:
    dirs["state"].mkdir(parents=True)
    dirs["ledger"].write_text(content)
    code, _, err = real_run()
    assert code == 2 and f"the dose ledger {dirs['ledger']} is damaged at {why}" in err
    assert "never taken as empty" in err and err.count("\n") == 1
    assert not list(dirs["state"].glob("journals/*"))  # refused before the session
    assert dirs["ledger"].read_text() == content  # refused: nothing appended


def test_a_ledger_that_is_not_a_file_refuses_with_exit_2(dirs: dict[str, Path],
                                                         real_runs: list[Driver]) -> None:
    dirs["ledger"].mkdir(parents=True)
    code, _, err = real_run()
    assert code == 2 and "a directory, not a file" in err and err.count("\n") == 1


def test_a_fifo_named_like_the_ledger_is_refused_without_blocking(dirs: dict[str, Path]) -> None:
    from emsctl.errors import LedgerError
    from emsctl.ledger import past_sessions

    dirs["state"].mkdir(parents=True)
    os.mkfifo(dirs["ledger"])
    with pytest.raises(LedgerError, match="FIFO"):
        in_thread(past_sessions)


def test_a_fifo_named_like_a_journal_is_skipped_without_blocking(
        dirs: dict[str, Path]) -> None:
    from emsctl.ledger import past_sessions

    dirs["journals"].mkdir(parents=True)
    stamp = datetime.now(UTC) - timedelta(hours=1)
    os.mkfifo(dirs["journals"] / f"{stamp:%Y%m%dT%H%M%SZ}-relaxation-0badf1f0.jsonl")
    # emsctl writes only regular journals: a FIFO is not a session (a corrupt regular
    # journal still counts on every site: tests/profile/test_profile_ledger.py)
    assert in_thread(past_sessions) == []


def test_a_fifo_named_like_the_profile_is_refused_without_blocking(dirs: dict[str, Path]) -> None:
    from emsctl.profile import ProfileError, load_profile

    dirs["data"].mkdir(parents=True)
    os.mkfifo(dirs["data"] / "profile.toml")
    with pytest.raises(ProfileError, match="FIFO"):
        in_thread(load_profile)


@pytest.mark.parametrize("data_dir", [None, "default"])
def test_moving_the_state_dir_away_from_the_profile_is_refused(
        dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, data_dir: str | None) -> None:
    import platformdirs

    from emsctl.errors import LedgerError
    from emsctl.ledger import past_sessions

    if data_dir is None:
        monkeypatch.delenv("EMSCTL_DATA_DIR")
    else:  # the default folder named explicitly moves nothing either
        monkeypatch.setenv("EMSCTL_DATA_DIR", platformdirs.user_data_dir("emsctl"))
    with pytest.raises(LedgerError, match="set EMSCTL_DATA_DIR too") as caught:
        past_sessions()
    assert caught.value.exit_code == 2 and not dirs["ledger"].exists()
