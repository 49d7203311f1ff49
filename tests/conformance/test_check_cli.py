"""``emsctl check URL``: full reports from emulations and over a real pty, failed steps with
their bytes, bad usage, and ``--hw-device`` skipping cleanly without hardware."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from emsctl.cli import main
from emsctl.conformance import STEPS

EMSCTL = str(Path(sys.executable).with_name("emsctl"))
ROOT = Path(__file__).resolve().parents[2]
OPENEMS = "ma_at_100=40&frequency_hz=80&pulse_width_us=180"
ALL_STEPS = len(STEPS)


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["check", *args])
    out, err = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1), out, err


@pytest.mark.parametrize("url, passed, not_possible", [
    ("sim+sciencemode2", ALL_STEPS, 0),
    ("sim+sciencemode4", ALL_STEPS, 0),
    ("sim+coyote3?ma_per_step=0.2", ALL_STEPS - 1, 1),
    (f"sim+openems?{OPENEMS}", ALL_STEPS - 6, 6),
    (f"sim+openems+ble?{OPENEMS}", ALL_STEPS - 5, 5),
])
def test_a_simulated_device_gets_a_full_report_and_exit_0(
        capsys: pytest.CaptureFixture[str], url: str, passed: int, not_possible: int) -> None:
    code, out, err = check(capsys, url)
    assert code == 0, out + err
    assert f"Result: {passed} passed, 0 failed, {not_possible} not possible on this device, " \
           "0 not run; exit 0" in out
    for spec in STEPS:
        assert spec.id in out
    assert "Measurements" in out and "handshake (connect to ready)" in out
    assert "emulated; times are emulated time" in out
    if not_possible < 5:
        assert err.startswith("WARNING: the next steps put current on the outputs")
        assert "smallest step" in err
    else:  # the openEMSstim: no step puts current on the outputs, so no warning
        assert "WARNING" not in err
        assert "cannot be held at a small minimum" in out


def test_markdown_is_the_issue_template(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = check(capsys, "sim+coyote3?ma_per_step=0.2", "--format", "markdown")
    assert code == 0
    assert out.startswith("### emsctl hardware check: `sim+coyote3?ma_per_step=0.2`")
    assert "| Step | Result | Details | Reference |" in out
    assert "| `electrode` Electrode and error reports | not possible on this device |" in out
    assert "#### Measurements" in out
    assert "<!-- Please add:" in out


def test_json_is_data(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = check(capsys, "sim+sciencemode2", "--format", "json")
    data = json.loads(out)
    assert code == data["exit_code"] == 0
    assert data["identity"]["protocol version"] == "1"
    assert [s["id"] for s in data["steps"]] == [s.id for s in STEPS]
    assert data["counts"] == {"passed": ALL_STEPS, "failed": 0, "not_possible": 0, "not_run": 0}
    assert "wire" not in data["steps"][0]  # bytes only for failed steps


def _plan(tmp_path: Path, *lines: str) -> str:
    path = tmp_path / "faults.toml"
    path.write_text("[[faults]]\n" + "\n".join(lines) + "\n")
    return str(path)


def test_dropped_acks_fail_the_handshake_with_its_bytes(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    plan = _plan(tmp_path, 'kind = "drop_acks"', "at_s = 0.0")
    code, out, _err = check(capsys, "sim+sciencemode2", "--faults", plan)
    assert code == 1
    assert "FAILED" in out and "handshake" in out
    assert "Bytes exchanged during handshake" in out
    # the Stop went out (bytes and meaning), and no StopAck came back
    assert "F0 81 BB 81 57 00 22 0F  | StopChannelListMode pn 0" in out
    assert "StopChannelListModeAck" not in out
    assert "0 passed, 1 failed, 0 not possible on this device, 10 not run; exit 1" in out


def test_corrupted_bytes_fail_with_the_bad_frame_shown(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    plan = _plan(tmp_path, 'kind = "corrupt_bytes"', "at_s = 0.0")
    code, out, _err = check(capsys, "sim+sciencemode2", "--faults", plan, "--format", "json")
    assert code == 1
    failed = [s for s in json.loads(out)["steps"] if s["status"] == "failed"]
    assert failed and failed[0]["id"] == "handshake"
    assert any("bad frame" in w["meaning"] for w in failed[0]["wire"])


def test_a_pad_off_fails_the_matching_steps_in_markdown(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    plan = _plan(tmp_path, 'kind = "electrode_off"', "at_s = 0.0", "channel = 1")
    code, out, _err = check(capsys, "sim+sciencemode2", "--faults", plan, "--format", "markdown")
    assert code == 1
    assert "| `update_ack` An update and its acknowledgement | **FAILED** |" in out
    assert "<details><summary><code>update_ack</code>" in out
    assert any("StimulationError pn" in line and "error -2" in line for line in out.splitlines())


def test_a_p24_that_answers_nothing_fails_the_handshake_with_its_bytes(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    plan = _plan(tmp_path, 'kind = "drop_acks"', "at_s = 0.0")
    code, out, _err = check(capsys, "sim+sciencemode4", "--faults", plan)
    assert code == 1
    assert "FAILED" in out and "Bytes exchanged during handshake" in out
    # Get_stim_status pn 1 (vector T1 of the protocol document), sent once more, never answered
    assert "F0 81 55 81 59 81 4E 81 0C 04 3E 0F  | GetStimStatus pn 1" in out
    assert "GetStimStatus pn 2" in out and "GetStimStatusAck" not in out
    assert "0 passed, 1 failed, 0 not possible on this device, 10 not run; exit 1" in out


def test_a_p24_pad_off_fails_the_electrode_step_with_the_devices_report(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    plan = _plan(tmp_path, 'kind = "electrode_off"', "at_s = 0.0", "channel = 1")
    code, out, _err = check(capsys, "sim+sciencemode4", "--faults", plan, "--steps",
                            "electrode", "--format", "markdown")
    assert code == 1
    assert "| `electrode` Electrode and error reports | **FAILED** |" in out
    assert "with the test load in place" in out
    # the poll the driver makes on the renewal, and the device's answer: ch1 electrode error
    assert any("MlGetCurrentDataAck pn" in line and "result 10 (electrode error)" in line
               and "ch1 electrode error" in line for line in out.splitlines())


def test_the_open_load_check_of_an_emulated_p24(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = check(capsys, "sim+sciencemode4?impedance_ohm=1000000", "--load", "open",
                            "--steps", "electrode")
    assert code == 0, out
    assert "reported: the P24 reports an electrode error on channel 1" in out


def test_a_coyote_that_confirms_nothing_fails_with_its_frames(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    plan = _plan(tmp_path, 'kind = "drop_acks"', "at_s = 0.0")
    code, out, _err = check(capsys, "sim+coyote3?ma_per_step=0.2", "--faults", plan)
    assert code == 1
    assert "Bytes exchanged during update_ack" in out
    assert "B0 seq" in out and "[0x150A]" in out


def test_a_corrupted_openems_line_fails_with_the_echo_shown(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    plan = _plan(tmp_path, 'kind = "corrupt_bytes"', "at_s = 0.0")
    code, out, _err = check(capsys, f"sim+openems?{OPENEMS}", "--faults", plan)
    assert code == 1
    assert "which was not sent" in out
    assert "EMS_CMD: Converted HEX command:" in out


@pytest.mark.parametrize("args, words", [
    (["nosuch://x"], "no conformance steps for 'nosuch' devices"),
    (["sim"], "no conformance steps for 'sim' devices"),
    (["sim+sciencemode2", "--steps", "handshake,nosuch"], "unknown step(s) nosuch"),
    (["sim+sciencemode2", "--format", "yaml"], "Invalid value"),
    (["sciencemode2:///dev/nonexistent-emsctl"], "pass --no-person"),
])
def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str], args: list[str],
                           words: str) -> None:
    code, out, err = check(capsys, *args)
    assert code == 2
    assert words in out + err


def test_faults_are_for_the_simulator_only(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    plan = _plan(tmp_path, 'kind = "drop_acks"', "at_s = 0.0")
    code, _out, err = check(capsys, "sciencemode2:///dev/nonexistent-emsctl", "--no-person",
                            "--faults", plan)
    assert code == 2
    assert "fault plans only work with the simulator" in err


def test_a_real_device_that_cannot_be_opened_fails_the_handshake(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = check(capsys, "sciencemode2:///dev/nonexistent-emsctl", "--no-person")
    assert code == 1
    assert "real device; times are real time" in out
    assert "no person connected (confirmed with --no-person)" in out
    assert "1 failed" in out and "10 not run" in out


def test_no_output_runs_only_the_steps_without_current(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = check(capsys, "sim+sciencemode2", "--no-output", "--format", "json")
    data = json.loads(out)
    assert code == 0 and "WARNING" not in err
    assert {s["id"] for s in data["steps"] if s["status"] == "not_possible"} == {
        "update_ack", "stop_race", "lease", "electrode"}
    assert not any(s["output"] for s in data["steps"])


def test_the_open_load_check_of_an_emulated_rehastim(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = check(capsys, "sim+sciencemode2?impedance_ohm=1000000", "--load", "open",
                            "--steps", "electrode")
    assert code == 0, out
    assert "electrodes on nothing (open outputs)" in out
    assert "reported: the RehaStim2 stopped stimulation: electrode error" in out


# ---------------------------------------------------------------------- over a real pty


def _serve_pty(family: str) -> Iterator[str]:
    with subprocess.Popen([EMSCTL, "simulate", family, "--pty"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/"), path + (proc.stderr.read() if proc.poll() else "")  # type: ignore[union-attr]
        yield path
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def pty_device() -> Iterator[str]:
    yield from _serve_pty("sciencemode2")


@pytest.fixture
def p24_pty() -> Iterator[str]:
    yield from _serve_pty("sciencemode4")


@pytest.mark.realtime
def test_check_over_a_pty_served_by_emsctl_simulate(pty_device: str) -> None:
    done = subprocess.run([EMSCTL, "check", f"sciencemode2://{pty_device}", "--no-person"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert f"Result: {ALL_STEPS} passed, 0 failed" in out
    assert "real device; times are real time" in out
    assert "protocol version: 1" in out
    assert "device fell silent after the host did" in out
    assert done.stderr.startswith("WARNING: the next steps put current on the outputs")


@pytest.mark.realtime
def test_check_of_a_p24_over_a_pty_served_by_emsctl_simulate(p24_pty: str) -> None:
    done = subprocess.run([EMSCTL, "check", f"sciencemode4://{p24_pty}", "--no-person"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert f"Result: {ALL_STEPS} passed, 0 failed" in out
    assert "real device; times are real time" in out
    assert "device id: P24EMU0001; firmware: 1.0.0; ScienceMode version: 4.0.0" in out
    assert "device fell silent after the host did" in out
    assert "at 0.5 mA (the smallest step)" in done.stderr


@pytest.mark.realtime
def test_markdown_over_a_pty(pty_device: str) -> None:
    done = subprocess.run([EMSCTL, "check", f"sciencemode2://{pty_device}", "--no-person",
                           "--format", "markdown", "--no-output"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| Person | no person connected (confirmed with --no-person) |" in done.stdout


# ---------------------------------------------------------------------- --hw-device


def test_hw_device_tests_skip_cleanly_without_hardware() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
         "tests/conformance/test_conformance_suite.py", "-k", "hw"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "passed" not in done.stdout.splitlines()[-1]
    assert "44 skipped" in done.stdout
    assert "no real sciencemode2 device: pass --hw-device URL" in done.stdout
    assert "no real sciencemode4 device: pass --hw-device URL" in done.stdout


def test_hw_device_names_a_family(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--co",
         "--hw-device", "sciencemode2:///dev/nonexistent-emsctl",
         "tests/conformance/test_conformance_suite.py", "-k", "hw"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sciencemode2-hw-resistor" in done.stdout


def test_on_a_terminal_the_owner_is_asked_and_no_means_no(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import click

    from emsctl.cli import check as check_cli
    from emsctl.errors import InputError

    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    asked: list[str] = []

    def answer(text: str, **_kw: object) -> bool:
        asked.append(text)
        return len(asked) > 1

    monkeypatch.setattr(click, "confirm", answer)
    with pytest.raises(InputError, match="only with no person connected"):
        check_cli._confirm_no_person(simulated=False, no_person=False)
    assert "NO person" in asked[0]
    assert check_cli._confirm_no_person(simulated=False, no_person=False) == \
        "no person connected (confirmed at the prompt)"
    assert "simulated" in check_cli._confirm_no_person(simulated=True, no_person=False)
