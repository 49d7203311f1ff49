"""``emsctl history``: the session list, one session's timeline, JSON output, killed sessions
shown as incomplete, and one-sentence errors with exit 2 for sessions that do not exist."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from emsctl.cli import cli, main
from emsctl.contract import ZERO, ChannelSetpoint, Telemetry
from emsctl.journal import INCOMPLETE, Journal

START = datetime(2025, 3, 4, 21, 30, 5, tzinfo=UTC)
EMSCTL = Path(sys.executable).parent / "emsctl"


def write_session(state: Path, *, session_id: str, program: str = "relaxation",
                  started: datetime = START, footer: bool = True) -> Path:
    """A 20-minute session in ``state``/journals with every kind of record."""
    journal = Journal(state / "journals", session_id=session_id)
    journal.header(program=program, program_sha256="ab" * 32, program_source="builtin",
                   device_url="sim", device_model="SimStim", limits={"amplitude_max_ma": 60.0},
                   profile_version="p1", intensity_pct=100.0, sites={1: "calf-left"},
                   started_utc=started)
    journal.event(0.0, "phase", name="settle")
    for tick in range(400):
        journal.command(tick * 0.025, [ChannelSetpoint(min(tick, 200) * 0.1, 6.0, 250.0)],
                        0.5, 100.0)
    journal.telemetry(300.0, Telemetry("electrode_off", 300.0, channel=1))
    journal.event(300.0, "pause", reason="electrode off")
    journal.command(300.0, [ZERO], 0.5, 100.0)
    journal.event(330.0, "resume")
    journal.event(600.0, "intensity", target_pct=80.0)
    journal.stop(1200.0, "completed")
    if footer:
        journal.footer("completed", {"stimulation_minutes": 19.5, "charge_uc": 1234.5})
    journal.close()
    assert journal.path is not None
    return journal.path


def invoke(state: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["history", *args], env={"EMSCTL_STATE_DIR": str(state)})
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    return result.exit_code, result.stdout, result.stderr


def run_main(state: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
             *args: str) -> tuple[int, str, str]:
    """Run the console entry point in-process: the one place errors become exit codes."""
    monkeypatch.setenv("EMSCTL_STATE_DIR", str(state))
    with pytest.raises(SystemExit) as stopped:
        main(["history", *args])
    out, err = capsys.readouterr()
    assert isinstance(stopped.value.code, int)
    return stopped.value.code, out, err


def test_list_shows_one_aligned_row_per_session_oldest_first(tmp_path: Path) -> None:
    write_session(tmp_path, session_id="bbbb" * 8, program="recovery",
                  started=START + timedelta(days=1))
    write_session(tmp_path, session_id="aaaa" * 8)
    code, out, _ = invoke(tmp_path)
    assert code == 0
    header, first, second = out.splitlines()
    assert header.split()[:3] == ["DATE", "(UTC)", "SESSION"]
    assert first.split() == ["2025-03-04", "21:30", "aaaaaaaa", "relaxation", "sim", "20:00",
                             "completed", "20.0"]
    assert second.split()[2:4] == ["bbbbbbbb", "recovery"]
    assert header.index("PEAK mA") == first.index("20.0")  # columns line up


def test_list_says_so_when_there_are_no_sessions(tmp_path: Path) -> None:
    code, out, _ = invoke(tmp_path)
    assert code == 0 and out.startswith("No sessions recorded in")
    code, out, _ = invoke(tmp_path, "--format", "json")
    assert code == 0 and json.loads(out) == []


def test_list_as_json_parses_with_the_figures(tmp_path: Path) -> None:
    write_session(tmp_path, session_id="aaaa" * 8)
    code, out, _ = invoke(tmp_path, "--format", "json")
    assert code == 0
    (row,) = json.loads(out)
    assert row["session_id"] == "aaaa" * 8
    assert row["started_utc"] == "2025-03-04T21:30:05+00:00"
    assert (row["duration_s"], row["peak_ma"], row["end_reason"]) == (1200.0, 20.0, "completed")
    assert row["complete"] is True and row["sites"] == ["calf-left"]


def test_dir_option_overrides_the_state_directory(tmp_path: Path) -> None:
    write_session(tmp_path / "other", session_id="cccc" * 8)
    code, out, _ = invoke(tmp_path / "empty", "--dir", str(tmp_path / "other" / "journals"))
    assert code == 0 and "cccccccc" in out


def test_show_prints_header_timeline_and_footer_figures(tmp_path: Path) -> None:
    write_session(tmp_path, session_id="aaaa" * 8)
    code, out, _ = invoke(tmp_path, "aaaa")
    assert code == 0
    assert "program    relaxation (sha256 abababababababab…, from builtin)" in out
    assert "device     sim (SimStim)" in out and "sites      1: calf-left" in out
    timeline = out.split("\ntimeline\n")[1].split("\n\n")[0].splitlines()
    assert [line.split()[2] for line in timeline] == [
        "event:phase", "telemetry:electrode_off", "event:pause", "event:resume",
        "event:intensity", "stop"]
    assert timeline[2].split()[0] == "300.00" and 'reason="electrode off"' in timeline[2]
    # commands stay out of the timeline and are counted: the ramp's 201 levels, then the zero
    assert "commands   202 recorded, peak 20.0 mA" in out and "duration   20:00 (1200.0 s)" in out
    assert "end        completed" in out and "charge_uc" in out and "1234.5" in out


def test_show_as_json_parses_with_header_records_and_footer(tmp_path: Path) -> None:
    path = write_session(tmp_path, session_id="aaaa" * 8)
    code, out, _ = invoke(tmp_path, str(path), "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["header"]["session_id"] == "aaaa" * 8
    assert data["footer"]["delivered"]["charge_uc"] == 1234.5
    assert data["truncated"] is False and data["summary"]["end_reason"] == "completed"
    assert [r["type"] for r in data["records"]].count("stop") == 1


def test_unknown_session_exits_2_with_one_sentence(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    write_session(tmp_path, session_id="aaaa" * 8)
    code, out, err = run_main(tmp_path, monkeypatch, capsys, "ffff")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("emsctl: no session matches 'ffff'")
    assert "Traceback" not in err


def test_ambiguous_prefix_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    write_session(tmp_path, session_id="aaaa1" + "0" * 27)
    write_session(tmp_path, session_id="aaaa2" + "0" * 27, started=START + timedelta(hours=2))
    code, _, err = run_main(tmp_path, monkeypatch, capsys, "aaaa")
    assert code == 2 and "matches 2 sessions" in err and err.count("\n") == 1


def test_corrupt_journal_is_reported_in_the_list_and_refused_when_shown(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = write_session(tmp_path, session_id="aaaa" * 8)
    raw = path.read_text().splitlines(keepends=True)
    raw[5] = "garbage\n"
    path.write_text("".join(raw))
    code, out, err = invoke(tmp_path)
    assert code == 0 and "corrupt" in out.splitlines()[1]
    assert "corrupt at line 6" in err
    code, _, err = run_main(tmp_path, monkeypatch, capsys, "aaaa")
    assert code == 2 and "corrupt at line 6" in err and "Traceback" not in err


def test_show_of_a_cut_journal_says_incomplete(tmp_path: Path) -> None:
    path = write_session(tmp_path, session_id="aaaa" * 8, footer=False)
    with path.open("ab") as f:
        f.write(b'{"type":"comm')
    code, out, _ = invoke(tmp_path, "aaaa")
    assert code == 0
    assert f"end        {INCOMPLETE}: the journal has no footer (its last line was cut)" in out


WRITER = textwrap.dedent("""
    import sys
    from emsctl.contract import ChannelSetpoint
    from emsctl.journal import Journal
    journal = Journal(sys.argv[1], session_id="dead0000" + "1" * 24)
    journal.header(program="relaxation", program_sha256="0" * 64, program_source="builtin",
                   device_url="sim", device_model="SimStim", limits={}, profile_version=None,
                   intensity_pct=100.0)
    print("ready", flush=True)
    i = 0
    while True:
        journal.command(i * 0.025, [ChannelSetpoint(float(i % 25), 6.0, 250.0)], 0.5, 100.0)
        i += 1
""")


def test_a_killed_session_is_listed_as_incomplete(tmp_path: Path) -> None:
    folder = tmp_path / "journals"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(folder)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        (path,) = folder.glob("*.jsonl")
        deadline = time.monotonic() + 20
        while path.read_bytes().count(b"\n") < 200:
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

    code, out, _ = invoke(tmp_path)
    assert code == 0
    row = out.splitlines()[1]
    assert "dead0000" in row and INCOMPLETE in row and row.split()[-1] == "24.0"

    env = {**os.environ, "EMSCTL_STATE_DIR": str(tmp_path)}
    real = subprocess.run([str(EMSCTL), "history", "--format", "json"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert real.returncode == 0, real.stderr
    (summary,) = json.loads(real.stdout)
    assert summary["end_reason"] == INCOMPLETE and summary["complete"] is False
    assert summary["duration_s"] > 0

    unknown = subprocess.run([str(EMSCTL), "history", "nosuch"], env=env,
                             capture_output=True, text=True, timeout=60, check=False)
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert unknown.stderr.count("\n") == 1 and "Traceback" not in unknown.stderr


@pytest.mark.realtime
def test_a_terminal_gets_a_rich_table(tmp_path: Path) -> None:
    write_session(tmp_path, session_id="aaaa" * 8)
    main_fd, child_fd = pty.openpty()
    env = {**os.environ, "EMSCTL_STATE_DIR": str(tmp_path), "COLUMNS": "120", "TERM": "xterm"}
    proc = subprocess.Popen([str(EMSCTL), "history"], stdout=child_fd, stderr=child_fd,
                            env=env)
    os.close(child_fd)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([main_fd], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(main_fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(main_fd)
        assert proc.wait(timeout=30) == 0
    screen = b"".join(chunks).decode()
    assert "┃" in screen or "│" in screen  # rich's box drawing, not the plain layout
    assert "aaaaaaaa" in screen and "relaxation" in screen
