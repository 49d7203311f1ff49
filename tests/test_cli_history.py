"""``emsctl history``: the session list, one session's human summary and (``--events``) its event
log, JSON output, running sessions shown as running and killed ones as incomplete, and
one-sentence errors with exit 2 for sessions that do not exist."""

from __future__ import annotations

import json
import os
import pty
import re
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
from emsctl.journal import INCOMPLETE, RUNNING, Journal

START = datetime(2025, 3, 4, 21, 30, 5, tzinfo=UTC)
EMSCTL = Path(sys.executable).parent / "emsctl"


def write_session(state: Path, *, session_id: str, program: str = "relaxation",
                  started: datetime = START, footer: bool = True, acks: int = 0) -> Path:
    """A 20-minute session in ``state``/journals with every kind of record (and ``acks``
    device acknowledgements whose values change, so the journal keeps each one)."""
    journal = Journal(state / "journals", session_id=session_id)
    journal.header(program=program, program_sha256="ab" * 32, program_source="builtin",
                   device_url="sim", device_model="SimStim", limits={"amplitude_max_ma": 60.0},
                   profile_version="p1", intensity_pct=100.0, sites={1: "calf-left"},
                   started_utc=started)
    journal.event(0.0, "phase", name="settle")
    for n in range(acks):
        journal.telemetry(n * 0.5, Telemetry("ack", n * 0.5, value=float(n)))
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


def test_show_prints_a_human_summary(tmp_path: Path) -> None:
    write_session(tmp_path, session_id="aaaa" * 8)
    code, out, _ = invoke(tmp_path, "aaaa")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "Session aaaaaaaa: Evening calf relaxation (relaxation)"
    flat = " ".join(out.split())
    assert "Device SimStim (sim)" in flat
    assert "Started Tue 04 Mar 2025" in flat
    assert "Length 20:00" in flat
    assert "Ended completed: the program ran to its end; output off" in flat
    assert "Intensity started at 100 %, then 80 % (1 change)" in flat
    assert "Channels 1: left calf (calf-left): peak 20.0 mA commanded" in flat
    assert "--events" in out and "timeline" not in out and "sha256" not in out
    assert all(len(line) <= 100 for line in lines)


def test_events_add_the_details_and_the_event_log_with_acks_counted(tmp_path: Path) -> None:
    path = write_session(tmp_path, session_id="aaaa" * 8, acks=40)
    code, out, _ = invoke(tmp_path, "aaaa", "--events")
    assert code == 0
    assert "program    relaxation (sha256 abababababababab…, from builtin)" in out
    assert "sites      1: calf-left" in out
    events = out.split("\nevents\n")[1].split("\n\n")[0].splitlines()
    assert [line.split()[2] for line in events] == [
        "event:phase", "telemetry:electrode_off", "event:pause", "event:resume",
        "event:intensity", "stop"]
    assert events[2].split()[0] == "300.00" and 'reason="electrode off"' in events[2]
    assert "telemetry:ack" not in out  # acknowledgements are counted, not listed
    acks = sum(1 for line in path.read_text().splitlines() if '"kind":"ack"' in line)
    assert acks > 1 and f"acks       {acks} device acknowledgements (not listed)" in out
    # commands stay out of the log and are counted: the ramp's 201 levels, then the zero
    assert "commands   202 recorded, peak 20.0 mA" in out and "duration   20:00 (1200.0 s)" in out
    assert "end        completed" in out and "charge_uc" in out and "1234.5" in out
    # the limits are wrapped, not one long line
    assert "limits     amplitude_max_ma=60.0" in out
    assert all(len(line) <= 100 for line in out.splitlines() if "=" in line
               and not line.startswith("  "))
    verbose = CliRunner().invoke(cli, ["-v", "history", "aaaa"],
                                 env={"EMSCTL_STATE_DIR": str(tmp_path)})
    assert verbose.exit_code == 0 and "\nevents\n" in verbose.stdout


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
    assert (f"Ended {INCOMPLETE}: the journal has no footer and its last line was cut"
            in " ".join(out.split()))
    code, out, _ = invoke(tmp_path, "aaaa", "--events")
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


def test_a_running_session_is_running_and_a_killed_one_incomplete(tmp_path: Path) -> None:
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
        # the writer is alive: its lock on the journal says so
        code, out, _ = invoke(tmp_path)
        assert code == 0 and f"  {RUNNING}  " in out.splitlines()[1]
        code, out, _ = invoke(tmp_path, "dead0000")
        assert code == 0 and "Ended still running" in " ".join(out.split())
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


# --- JSON output is JSON, whatever a journal holds ---------------------------------------------


def _strict_json(text: str) -> object:
    """Parse as RFC 8259 JSON: Infinity, -Infinity and NaN are not JSON."""
    def refuse(name: str) -> object:
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def _crafted(journals: Path) -> tuple[Path, Path]:
    """Two hand-written journals: one whose numbers overflow to ±inf (1e999), one with NaN."""
    journals.mkdir(parents=True)
    huge = journals / "20250304T213005Z-relaxation-0badf00d.jsonl"
    huge.write_text(
        '{"type": "header", "t_s": 0, "session_id": "0badf00d-huge", "program": "relaxation",'
        ' "started_utc": "2025-03-04T21:30:05+00:00", "device_url": "sim",'
        ' "intensity_pct": 1e999, "limits": {"peak_ma": -1e999}}\n'
        '{"type": "command", "t_s": 1.0, "setpoints": [{"amplitude_ma": 1e999,'
        ' "frequency_hz": 6, "pulse_width_us": 250}], "lease_s": 0.5}\n'
        '{"type": "telemetry", "t_s": 2.0, "kind": "battery", "value": -1e999}\n'
        '{"type": "footer", "t_s": 1e999, "end_reason": "completed",'
        ' "delivered": {"charge_uc": 1e999}}\n', encoding="utf-8")
    nan = journals / "20250305T213005Z-relaxation-0badcafe.jsonl"
    nan.write_text(
        '{"type": "header", "t_s": 0, "session_id": "0badcafe-nan", "program": "relaxation",'
        ' "started_utc": "2025-03-05T21:30:05+00:00", "device_url": "sim"}\n'
        '{"type": "command", "t_s": NaN, "setpoints": []}\n'
        '{"type": "footer", "t_s": 3.0, "end_reason": "completed", "delivered": {}}\n',
        encoding="utf-8")
    return huge, nan


def test_history_json_is_valid_json_for_a_crafted_journal_with_1e999_and_nan(
        tmp_path: Path) -> None:
    huge, _ = _crafted(tmp_path / "journals")
    code, out, _ = invoke(tmp_path, "--format", "json")
    assert code == 0
    rows = _strict_json(out)
    assert isinstance(rows, list) and len(rows) == 2
    by_id = {row["session_id"]: row for row in rows}
    assert by_id["0badf00d-huge"]["duration_s"] is None  # inf: not a number JSON can carry
    assert by_id["0badf00d-huge"]["peak_ma"] is None
    assert by_id["0badcafe"]["end_reason"] == "corrupt"  # NaN literal: not a journal line

    code, out, _ = invoke(tmp_path, str(huge), "--format", "json")
    assert code == 0
    shown = _strict_json(out)
    assert isinstance(shown, dict)
    assert shown["header"]["intensity_pct"] is None
    assert shown["header"]["limits"] == {"peak_ma": None}
    assert shown["records"][0]["setpoints"][0]["amplitude_ma"] is None
    assert shown["records"][1]["value"] is None
    assert shown["footer"]["t_s"] is None and shown["footer"]["delivered"]["charge_uc"] is None


def test_every_cli_json_dumps_goes_through_the_finite_json_helper() -> None:
    import emsctl.cli as cli_package

    folder = Path(cli_package.__file__).parent
    offenders = [f"{path.name}:{n}" for path in sorted(folder.glob("*.py"))
                 for n, line in enumerate(path.read_text().splitlines(), start=1)
                 if "json.dumps(" in line and path.name != "common.py"]
    assert offenders == []


def _emsctl(state: Path, *args: str, columns: int = 100) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EMSCTL_STATE_DIR": str(state), "COLUMNS": str(columns)}
    env.pop("EMSCTL_DEVICE", None)
    return subprocess.run([str(EMSCTL), *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_a_real_session_reads_as_a_human_summary(tmp_path: Path) -> None:
    run = _emsctl(tmp_path, "run", "relaxation", "-d", "sim+sciencemode2", "--speed", "max")
    assert run.returncode == 0, run.stderr
    [path] = (tmp_path / "journals").glob("*.jsonl")
    short = path.stem.rsplit("-", 1)[1]
    shown = _emsctl(tmp_path, "history", short, columns=80)
    assert shown.returncode == 0, shown.stderr
    flat = " ".join(shown.stdout.split())
    assert flat.startswith(f"Session {short}: Evening calf relaxation (relaxation)")
    assert "Device Hasomed RehaStim2 (ScienceMode2) (sim+sciencemode2)" in flat
    assert "Length 16:00, 13:00 of it with current" in flat
    assert "Ended completed: the program ran to its end; output off" in flat
    assert "Intensity 100 % all through" in flat
    assert re.search(r"1: left calf \(calf-left\): peak 12\.0 mA, rms 0\.\d\d mA, charge at "
                     r"most \d\.\d µC per pulse phase", flat)
    assert re.search(r"Reports \d+ acknowledgements recorded", flat)
    assert "telemetry:ack" not in shown.stdout
    assert all(len(line) <= 80 for line in shown.stdout.splitlines())
    events = _emsctl(tmp_path, "history", short, "--events", columns=80)
    limits = events.stdout.split("\nlimits     ", 1)[1].split("\n\nevents", 1)[0]
    assert limits.count("\n") >= 5 and all(len(line) <= 80 for line in limits.splitlines())
    assert 'event:phase            name="gentle twitches"' in events.stdout
    assert "telemetry:ack" not in events.stdout


def test_a_session_in_progress_is_listed_as_running(tmp_path: Path) -> None:
    env = {**os.environ, "EMSCTL_STATE_DIR": str(tmp_path)}
    env.pop("EMSCTL_DEVICE", None)
    proc = subprocess.Popen([str(EMSCTL), "run", "relaxation", "--speed", "5"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    with proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().startswith("[00:00] phase stretch")  # it has started
            listing = _emsctl(tmp_path, "history", "--format", "json")
            [row] = json.loads(listing.stdout)
            assert row["end_reason"] == RUNNING and row["running"] is True
            shown = _emsctl(tmp_path, "history", row["session_id"][:8])
            assert "Ended still running" in " ".join(shown.stdout.split())
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 130
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    [row] = json.loads(_emsctl(tmp_path, "history", "--format", "json").stdout)
    assert row["end_reason"] == "signal" and row["running"] is False
    shown = _emsctl(tmp_path, "history", row["session_id"][:8])
    assert "Ended stopped: emsctl was asked to quit; output off" in " ".join(shown.stdout.split())
