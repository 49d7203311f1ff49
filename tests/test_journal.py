"""The session journal (HZ-22): private append-only files, de-duplicated commands that never lose
a zero or a stop, and readers that survive a killed writer but report real corruption."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from emsctl.contract import ZERO, ChannelSetpoint, Telemetry
from emsctl.errors import InputError
from emsctl.journal import (
    INCOMPLETE,
    NOT_A_JOURNAL,
    Journal,
    JournalCorruptError,
    JournalWriteError,
    SessionSummary,
    find_journal,
    journal_dir,
    list_journals,
    read_journal,
    summarize,
)

START = datetime(2025, 3, 4, 21, 30, 5, tzinfo=UTC)
ON = ChannelSetpoint(20.0, 6.0, 250.0)


def open_journal(folder: Path, *, program: str = "relaxation", started: datetime = START,
                 sites: dict[int, str] | None = None, **options: object) -> Journal:
    journal = Journal(folder, **options)  # type: ignore[arg-type]
    journal.header(program=program, program_sha256="ab" * 32, program_source="builtin",
                   device_url="sim", device_model="SimStim", limits={"amplitude_max_ma": 60.0},
                   profile_version="p1", intensity_pct=100.0,
                   sites=sites if sites is not None else {1: "calf-left"}, started_utc=started)
    return journal


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def commands(path: Path) -> list[dict[str, object]]:
    return [r for r in lines(path) if r["type"] == "command"]


def amplitudes(record: dict[str, object]) -> list[float]:
    setpoints = record["setpoints"]
    assert isinstance(setpoints, list)
    return [sp["amplitude_ma"] for sp in setpoints]


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


# ---------------------------------------------------------------------------- files


def test_journal_file_is_0600_and_new_folders_are_0700(tmp_path: Path, umask_022: None) -> None:
    folder = tmp_path / "state" / "journals"
    with open_journal(folder) as journal:
        assert journal.path is not None
        assert stat.S_IMODE(journal.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.parent.stat().st_mode) == 0o700


def test_state_dir_comes_from_env_and_an_explicit_folder_wins(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMSCTL_STATE_DIR", str(tmp_path / "st"))
    assert journal_dir() == tmp_path / "st" / "journals"
    assert journal_dir(tmp_path / "x") == tmp_path / "x"
    with open_journal(journal_dir()) as journal:
        assert journal.path is not None and journal.path.parent == tmp_path / "st" / "journals"


def test_file_name_is_utc_timestamp_program_and_short_id(tmp_path: Path) -> None:
    local_start = START.astimezone(timezone(timedelta(hours=2)))
    with open_journal(tmp_path, program="cramp training/x", started=local_start) as journal:
        assert journal.path is not None
        assert journal.path.name == (
            f"20250304T213005Z-cramp_training_x-{journal.session_id[:8]}.jsonl")


def test_an_existing_journal_is_never_opened_again(tmp_path: Path) -> None:
    with open_journal(tmp_path, session_id="0123456789abcdef") as first:
        assert first.path is not None
    before = first.path.read_bytes()
    with pytest.raises(JournalWriteError, match="cannot create journal"):
        open_journal(tmp_path, session_id="0123456789abcdef")
    assert first.path.read_bytes() == before


def test_records_are_appended_in_order_and_on_disk_at_once(tmp_path: Path) -> None:
    journal = open_journal(tmp_path, session_id="feedface" * 4)
    assert journal.path is not None
    seen = journal.path.read_bytes()
    steps: list[Callable[[], None]] = [
        lambda: journal.command(0.0, [ON], 0.5, 100.0),
        lambda: journal.event(1.0, "phase", name="settle"),
        lambda: journal.telemetry(1.5, Telemetry("electrode_off", 1.5, channel=1)),
        lambda: journal.event(1.5, "pause"),
        lambda: journal.stop(2.0, "user"),
        lambda: journal.footer("stopped", {"minutes": 0.03}),
    ]
    for step in steps:
        step()
        now = journal.path.read_bytes()  # without closing: every record is written through
        assert now.startswith(seen) and len(now) > len(seen)
        seen = now
    journal.close()
    records = lines(journal.path)
    assert [r["type"] for r in records] == [
        "header", "command", "event", "telemetry", "event", "stop", "footer"]
    assert all(isinstance(r["t_s"], float) for r in records)
    header, footer = records[0], records[-1]
    assert header["session_id"] == "feedface" * 4
    assert header["started_utc"] == "2025-03-04T21:30:05+00:00"
    assert header["command_log"] == "changes"
    assert header["sites"] == {"1": "calf-left"}
    assert header["emsctl_version"]
    assert footer["end_reason"] == "stopped" and footer["t_s"] == 2.0
    assert footer["peak_ma"] == 20.0 and footer["commands_sent"] == 1


def test_nothing_is_written_before_the_header_or_after_the_footer(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    with pytest.raises(RuntimeError):
        journal.command(0.0, [ON], 0.5, 100.0)
    journal = open_journal(tmp_path)
    journal.footer("completed", {})
    with pytest.raises(RuntimeError):
        journal.stop(1.0, "late")
    journal.close()


def test_an_exception_leaves_an_aborted_footer(tmp_path: Path) -> None:
    with pytest.raises(ZeroDivisionError), open_journal(tmp_path) as journal:
        journal.command(0.0, [ON], 0.5, 100.0)
        _ = 1 / 0
    assert journal.path is not None
    footer = lines(journal.path)[-1]
    assert footer["type"] == "footer" and footer["end_reason"] == "aborted"
    assert "ZeroDivisionError" in str(footer["delivered"])


def test_event_refuses_a_field_called_type(tmp_path: Path) -> None:
    with open_journal(tmp_path) as journal, pytest.raises(ValueError):
        journal.event(1.0, "message", type="oops")


# ---------------------------------------------------------------------------- de-duplication


def test_repeated_commands_are_written_once_and_changes_are_kept(tmp_path: Path) -> None:
    with open_journal(tmp_path) as journal:
        for i in range(40):
            journal.command(i * 0.025, [ON], 0.5, 100.0)
        journal.command(1.0, [ChannelSetpoint(21.0, 6.0, 250.0)], 0.5, 100.0)
        journal.command(1.025, [ChannelSetpoint(21.0, 6.0, 250.0)], 0.5, 90.0)
    assert journal.path is not None
    logged = commands(journal.path)
    assert [(r["t_s"], amplitudes(r)[0], r["intensity_pct"]) for r in logged] == [
        (0.0, 20.0, 100.0), (1.0, 21.0, 100.0), (1.025, 21.0, 90.0)]
    assert journal.commands_sent == 42 and journal.commands_logged == 3


def test_deduplication_never_drops_a_zero_or_a_stop(tmp_path: Path) -> None:
    with open_journal(tmp_path) as journal:
        for i in range(10):
            journal.command(i * 0.1, [ON, ON], 0.5, 100.0)
        # one channel to zero, keeping its frequency and width: only the amplitude differs
        journal.command(1.0, [ON, ChannelSetpoint(0.0, 6.0, 250.0)], 0.5, 100.0)
        journal.command(1.1, [ZERO, ZERO], 0.5, 100.0)  # all to zero
        journal.command(1.2, [ZERO, ZERO], 0.5, 100.0)  # a true repeat
        journal.stop(1.2, "user")
        journal.stop(1.25, "signal")  # a second stop is a fact too
        journal.command(1.3, [ZERO, ZERO], 0.5, 100.0)  # after a stop: written again
    assert journal.path is not None
    records = [r for r in lines(journal.path) if r["type"] in ("command", "stop")]
    summary = [(r["type"], r["t_s"], amplitudes(r) if r["type"] == "command" else r["reason"])
               for r in records]
    assert summary == [
        ("command", 0.0, [20.0, 20.0]),
        ("command", 1.0, [20.0, 0.0]),
        ("command", 1.1, [0.0, 0.0]),
        ("stop", 1.2, "user"),
        ("stop", 1.25, "signal"),
        ("command", 1.3, [0.0, 0.0]),
    ]


def test_a_repeated_command_is_written_again_after_the_keepalive(tmp_path: Path) -> None:
    with open_journal(tmp_path, command_keepalive_s=1.0) as journal:
        for i in range(101):  # 2.5 s at 40 Hz
            journal.command(i * 0.025, [ON], 0.5, 100.0)
    assert journal.path is not None
    assert [r["t_s"] for r in commands(journal.path)] == [0.0, 1.0, 2.0]


def test_command_log_all_keeps_every_command(tmp_path: Path) -> None:
    with open_journal(tmp_path, command_log="all") as journal:
        for i in range(25):
            journal.command(i * 0.025, [ON], 0.5, 100.0)
    assert journal.path is not None
    assert len(commands(journal.path)) == 25


def test_sixty_minutes_at_40_hz_stays_small(tmp_path: Path) -> None:
    with open_journal(tmp_path) as journal:
        for tick in range(60 * 60 * 40):
            t_s = tick / 40
            # 1 mA device steps: a 10 s soft start, then 5 s on / 10 s off trains
            level_ma = float(min(20, int(t_s * 2)))
            on = (t_s % 15.0) < 5.0
            setpoint = ChannelSetpoint(level_ma if on else 0.0, 30.0, 300.0)
            journal.command(t_s, [setpoint, setpoint], 0.25, 100.0)
        journal.footer("completed", {})
    assert journal.path is not None
    assert journal.commands_sent == 144_000
    assert journal.commands_logged < 1_000  # 2 changes per 15 s train, plus the soft start
    assert journal.path.stat().st_size < 200_000


def test_chatty_telemetry_is_deduplicated_but_faults_never_are(tmp_path: Path) -> None:
    with open_journal(tmp_path) as journal:
        for i in range(100):
            journal.telemetry(i * 0.025, Telemetry("ack", i * 0.025))
        for i in range(3):
            journal.telemetry(3.0 + i, Telemetry("electrode_off", 3.0 + i, channel=1))
        journal.telemetry(6.0, Telemetry("battery", 6.0, value=50.0))
        journal.telemetry(6.1, Telemetry("battery", 6.1, value=49.0))
    assert journal.path is not None
    kinds = [r["kind"] for r in lines(journal.path) if r["type"] == "telemetry"]
    assert kinds == ["ack", "electrode_off", "electrode_off", "electrode_off",
                     "battery", "battery"]


# ---------------------------------------------------------------------------- readers


def write_session(folder: Path, *, footer: bool = True, **kwargs: object) -> Path:
    journal = open_journal(folder, **kwargs)  # type: ignore[arg-type]
    journal.command(0.0, [ChannelSetpoint(5.0, 6.0, 250.0)], 0.5, 100.0)
    journal.command(10.0, [ChannelSetpoint(24.5, 6.0, 250.0)], 0.5, 100.0)
    journal.event(20.0, "pause")
    journal.command(20.0, [ZERO], 0.5, 100.0)
    journal.event(30.0, "resume")
    journal.command(30.0, [ChannelSetpoint(12.0, 6.0, 250.0)], 0.5, 100.0)
    journal.stop(60.0, "completed")
    if footer:
        journal.footer("completed", {"minutes": 1.0})
    journal.close()
    assert journal.path is not None
    return journal.path


def test_reader_returns_header_records_footer_and_summary(tmp_path: Path) -> None:
    path = write_session(tmp_path, session_id="c0ffee00" * 4)
    journal = read_journal(path)
    assert journal.header["program"] == "relaxation"
    assert [r["type"] for r in journal.records] == [
        "command", "command", "event", "command", "event", "command", "stop"]
    assert journal.footer is not None and not journal.truncated
    summary = summarize(journal)
    assert summary.session_id == "c0ffee00" * 4
    assert summary.started_utc == START
    assert (summary.duration_s, summary.peak_ma, summary.end_reason) == (60.0, 24.5, "completed")
    assert summary.sites == ("calf-left",) and summary.complete


def test_reader_tolerates_a_cut_last_line(tmp_path: Path) -> None:
    path = write_session(tmp_path, footer=False)
    with path.open("ab") as f:
        f.write(b'{"type":"command","t_s":61.0,"lease_s":0.5,"setpo')
    journal = read_journal(path)
    assert journal.truncated and journal.footer is None
    assert journal.records[-1]["type"] == "stop"
    summary = summarize(journal)
    assert summary.end_reason == INCOMPLETE and summary.duration_s == 60.0


def test_reader_tolerates_zero_padding_after_a_crash(tmp_path: Path) -> None:
    path = write_session(tmp_path, footer=False)
    with path.open("ab") as f:
        f.write(b"\0" * 512)
    journal = read_journal(path)
    assert journal.truncated and len(journal.records) == 7


def test_a_complete_last_line_without_newline_is_kept_and_flagged(tmp_path: Path) -> None:
    path = write_session(tmp_path)
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    journal = read_journal(path)
    assert journal.footer is not None and journal.truncated


def test_a_corrupt_middle_line_is_reported_with_its_number(tmp_path: Path) -> None:
    path = write_session(tmp_path)
    raw = path.read_text().splitlines(keepends=True)
    raw[3] = '{"type":"event","t_s":2\n'
    path.write_text("".join(raw))
    with pytest.raises(JournalCorruptError, match=r"corrupt at line 4 of 9"):
        read_journal(path)
    (summary,) = list_journals(tmp_path)
    assert summary.end_reason == "corrupt" and summary.problem is not None
    assert "line 4" in summary.problem and summary.program == "relaxation"


def test_a_journal_without_header_or_with_records_after_the_footer_is_corrupt(
        tmp_path: Path) -> None:
    empty = tmp_path / "20250101T000000Z-x-00000000.jsonl"
    empty.write_bytes(b'{"type":"hea')
    with pytest.raises(JournalCorruptError, match="no complete header"):
        read_journal(empty)
    path = write_session(tmp_path)
    with path.open("a") as f:
        f.write('{"type":"stop","t_s":70.0,"reason":"late"}\n')
    with pytest.raises(JournalCorruptError, match="after its footer"):
        read_journal(path)


def test_list_is_sorted_by_start_time_and_missing_folder_is_empty(tmp_path: Path) -> None:
    assert list_journals(tmp_path / "none") == []
    write_session(tmp_path, program="later", started=START + timedelta(days=1))
    write_session(tmp_path, program="earlier", started=START - timedelta(days=1))
    write_session(tmp_path, program="killed", started=START, footer=False)
    summaries = list_journals(tmp_path)
    assert [s.program for s in summaries] == ["earlier", "killed", "later"]
    assert [s.end_reason for s in summaries] == ["completed", INCOMPLETE, "completed"]


def test_find_journal_by_prefix_path_and_refuses_unknown_or_ambiguous(tmp_path: Path) -> None:
    a = write_session(tmp_path, session_id="aaaa1111" + "0" * 24)
    write_session(tmp_path, session_id="aaaa2222" + "0" * 24)
    assert find_journal("aaaa1", tmp_path) == a
    assert find_journal("AAAA1111" + "0" * 24, tmp_path) == a
    assert find_journal(str(a)) == a
    with pytest.raises(InputError, match="matches 2 sessions"):
        find_journal("aaaa", tmp_path)
    with pytest.raises(InputError, match="no session matches 'bbbb'"):
        find_journal("bbbb", tmp_path)
    with pytest.raises(InputError, match="no journal file"):
        find_journal(str(tmp_path / "gone.jsonl"))


# ---------------------------------------------------------------------------- killed writer

WRITER = textwrap.dedent("""
    import sys
    from datetime import datetime, timezone
    from emsctl.contract import ChannelSetpoint, Telemetry
    from emsctl.journal import Journal
    journal = Journal(sys.argv[1], session_id="dead0000" + "1" * 24)
    journal.header(program="relaxation", program_sha256="0" * 64, program_source="builtin",
                   device_url="sim", device_model="SimStim", limits={}, profile_version=None,
                   intensity_pct=100.0, sites={1: "calf-left"})
    print("ready", flush=True)
    i = 0
    while True:  # no footer, ever: the parent kills us
        t_s = i * 0.025
        journal.command(t_s, [ChannelSetpoint(float(i % 30), 6.0, 250.0)], 0.5, 100.0)
        if i % 10 == 0:
            journal.telemetry(t_s, Telemetry("strength", t_s, channel=1, value=float(i)))
        i += 1
""")


def run_and_kill_writer(folder: Path, min_lines: int = 300) -> Path:
    """Start a real writer process, let it write, and SIGKILL it mid-loop."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(folder)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        (path,) = folder.glob("*.jsonl")
        deadline = time.monotonic() + 20
        while path.read_bytes().count(b"\n") < min_lines:
            assert time.monotonic() < deadline, "the writer wrote too little"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:  # an open pipe is a ResourceWarning, an error in the suite
            proc.stdout.close()
    return path


def test_a_writer_killed_mid_session_leaves_a_readable_incomplete_journal(
        tmp_path: Path) -> None:
    path = run_and_kill_writer(tmp_path)
    journal = read_journal(path)
    assert journal.footer is None
    assert len(journal.records) >= 299
    times = [r["t_s"] for r in journal.records if isinstance(r["t_s"], float)]
    assert len(times) == len(journal.records) and times == sorted(times)  # appended in order
    (summary,) = list_journals(tmp_path)
    assert summary.end_reason == INCOMPLETE and not summary.complete
    assert summary.session_id.startswith("dead0000")
    assert summary.duration_s > 0 and summary.peak_ma == 29.0


def test_a_fifo_named_like_a_journal_is_listed_as_unreadable_not_waited_on(
        tmp_path: Path) -> None:
    write_session(tmp_path)
    fifo = tmp_path / "20250304T220000Z-relaxation-0badf1f0.jsonl"
    os.mkfifo(fifo)
    listed: list[object] = []
    reader = threading.Thread(target=lambda: listed.extend(list_journals(tmp_path)),
                              daemon=True)
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "list_journals blocked on a FIFO"
    fine, unreadable = (s for s in listed if isinstance(s, SessionSummary))
    assert fine.complete and fine.problem is None
    assert unreadable.path == fifo and unreadable.end_reason == NOT_A_JOURNAL
    assert "not a regular file" in (unreadable.problem or "")
    with pytest.raises(InputError, match="not a regular file"):
        read_journal(fifo)
