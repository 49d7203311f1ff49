"""``emsctl calibrate`` through the real CLI in a pseudo-terminal, on the simulator."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import re
import select
import subprocess
import sys
import termios
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from person_helpers import relaxation_profile

from emsctl.profile import load_profile, save_profile

EMSCTL = Path(sys.executable).with_name("emsctl")
BASE = ["calibrate", "--device", "sim", "--channel", "1", "--site", "calf-left"]


def _controlling_terminal() -> None:
    """In the child, after setsid: make the pty its controlling terminal (so Ctrl-C is SIGINT)."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """A child process on a pty: read what it prints, type keys."""

    def __init__(self, args: list[str], data_dir: Path) -> None:
        self.main_fd, child_fd = pty.openpty()
        env = {**os.environ, "EMSCTL_DATA_DIR": str(data_dir), "NO_COLOR": "1",
               "PYTHONUNBUFFERED": "1", "TERM": "xterm"}
        env.pop("EMSCTL_DEVICE", None)
        self.proc = subprocess.Popen([str(EMSCTL), *args], stdin=child_fd, stdout=child_fd,
                                     stderr=child_fd, env=env, start_new_session=True,
                                     preexec_fn=_controlling_terminal)  # noqa: PLW1509
        os.close(child_fd)
        self.text = ""

    def read_until(self, pattern: str, timeout_s: float = 30.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            if match := regex.search(self.text):
                return match
            ready, _, _ = select.select([self.main_fd], [], [], 0.05)
            if ready:
                try:
                    self.text += os.read(self.main_fd, 4096).decode(errors="replace")
                except OSError:
                    break
        raise AssertionError(f"never saw {pattern!r}; output:\n{self.text[-2000:]}")

    def _drain(self, wait_s: float) -> None:
        ready, _, _ = select.select([self.main_fd], [], [], wait_s)
        if ready:
            with contextlib.suppress(OSError):
                self.text += os.read(self.main_fd, 4096).decode(errors="replace")

    def type(self, keys: str) -> None:
        os.write(self.main_fd, keys.encode())

    def finish(self, timeout_s: float = 30.0) -> int:
        try:
            deadline = time.monotonic() + timeout_s
            while self.proc.poll() is None and time.monotonic() < deadline:
                self._drain(0.05)  # keep reading, or the child blocks on a full pty
            code = self.proc.wait(timeout=1.0)
            while True:
                ready, _, _ = select.select([self.main_fd], [], [], 0.1)
                if not ready:
                    break
                try:
                    chunk = os.read(self.main_fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                self.text += chunk.decode(errors="replace")
            return code
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            os.close(self.main_fd)

    def report(self) -> dict[str, object]:
        start = self.text.index("{\r\n")
        value = json.loads(self.text[start:self.text.rindex("}") + 1].replace("\r\n", "\n"))
        assert isinstance(value, dict)
        return value


@pytest.mark.realtime
def test_virtual_user_through_the_cli_saves_thresholds_and_zero_comes_at_once(tmp_path: Path
                                                                               ) -> None:
    term = Terminal([*BASE, "--program", "relaxation", "--virtual-user", "5,10,20", "--speed",
                     "max", "--format", "json"], tmp_path)
    assert term.finish() == 0, term.text
    report = term.report()
    assert (report["st_ma"], report["mt_ma"], report["tol_ma"]) == (5.0, 10.0, 20.0)
    assert report["output_zero_after_too_much_ms"] == 0.0
    assert "shown, not asked, and never block" in term.text  # the simulator never blocks
    (entry,) = load_profile(tmp_path / "profile.toml").calibrations
    assert (entry.device, entry.channel, entry.site) == ("sim", 1, "calf-left")
    assert (entry.st_ma, entry.mt_ma, entry.tol_ma) == (5.0, 10.0, 20.0)
    assert (entry.frequency_hz, entry.pulse_width_us) == (6.0, 250.0)  # relaxation's P0 settings
    assert (tmp_path / "profile.toml").stat().st_mode & 0o777 == 0o600


@pytest.mark.realtime
def test_keys_in_a_terminal_set_st_mt_and_too_much_stops(tmp_path: Path) -> None:
    term = Terminal([*BASE, "--speed", "4", "--format", "json"], tmp_path)
    term.read_until(r"f feel it")
    term.read_until(r"\r\s*3\.0 mA")
    term.type("f")
    term.read_until(r"\r\s*6\.0 mA")
    term.type("t")
    term.read_until(r"\r\s*9\.0 mA")
    term.type(" ")
    assert term.finish() == 0, term.text
    report = term.report()
    st, mt, tol = (float(report[k]) for k in ("st_ma", "mt_ma", "tol_ma"))  # type: ignore[arg-type]
    assert 3.0 <= st <= 4.5 and 6.0 <= mt <= 7.5 and 9.0 <= tol <= 10.5, report
    assert report["output_zero_after_too_much_ms"] == 0.0
    (entry,) = load_profile(tmp_path / "profile.toml").calibrations
    assert (entry.st_ma, entry.mt_ma, entry.tol_ma) == (st, mt, tol)
    assert (entry.frequency_hz, entry.pulse_width_us) == (8.0, 250.0)  # the P0 default


@pytest.mark.realtime
def test_ctrl_c_aborts_and_saves_nothing(tmp_path: Path) -> None:
    term = Terminal([*BASE, "--speed", "4"], tmp_path)
    term.read_until(r"\r\s*2\.0 mA")
    term.type("f")
    term.read_until(r"\r\s*3\.0 mA")
    term.type("\x03")
    assert term.finish() == 130, term.text
    assert "nothing saved" in term.text
    assert not (tmp_path / "profile.toml").exists()


def test_a_real_device_cannot_take_a_virtual_user(tmp_path: Path) -> None:
    proc = subprocess.run([str(EMSCTL), "calibrate", "--device",
                           "sciencemode2:///dev/null-does-not-exist", "--channel", "1",
                           "--site", "calf-left", "--virtual-user", "5,10,20"],
                          env={**os.environ, "EMSCTL_DATA_DIR": str(tmp_path)},
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "only works with the simulator" in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_calibrating_for_cramp_training_needs_expert_and_a_ctf(tmp_path: Path) -> None:
    env = {**os.environ, "EMSCTL_DATA_DIR": str(tmp_path)}
    args = [str(EMSCTL), *BASE, "--program", "cramp-training", "--virtual-user", "5,10,20"]
    plain = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60,
                           check=False)
    assert plain.returncode == 2 and "needs --expert" in plain.stderr
    expert = subprocess.run([*args, "--expert"], env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert expert.returncode == 2 and "cramp threshold frequency" in expert.stderr


def _calibrated(data_dir: Path) -> None:
    save_profile(relaxation_profile(datetime.now(UTC) - timedelta(hours=1), screened=False),
                 data_dir / "profile.toml")


REAL = ["run", "relaxation", "--device", "sciencemode2:///dev/null-does-not-exist", "--yes"]


@pytest.mark.realtime
def test_the_questionnaire_in_a_terminal_stores_a_hard_block(tmp_path: Path) -> None:
    _calibrated(tmp_path)
    term = Terminal(REAL, tmp_path)
    term.read_until(r"pacemaker.*\[y/n\]")
    term.type("y\n")
    assert term.finish() == 2, term.text
    assert "no override" in term.text and "18 years" not in term.text
    screening = load_profile(tmp_path / "profile.toml").screening
    assert screening is not None and screening.implanted_device


@pytest.mark.realtime
def test_a_calf_red_flag_in_a_terminal_blocks_the_session(tmp_path: Path) -> None:
    _calibrated(tmp_path)
    term = Terminal(REAL, tmp_path)
    replies = [("pacemaker", "n"), ("18 years", "y"), ("pregnant", "n"), ("epilepsy", "n"),
               ("heart disease", "n"), ("arterial disease", "n"), ("cancer", "n"),
               ("surgery", "n")]
    for question, reply in replies:
        term.read_until(rf"{question}.*\[y/n\]")
        term.type(f"{reply}\n")
    term.read_until(r"reduced skin sensation")
    term.type("\n")
    term.read_until(r"one calf swollen.*\[y/n\]")
    term.type("y\n")
    assert term.finish() == 2, term.text
    assert "medical care today" in term.text
    screening = load_profile(tmp_path / "profile.toml").screening
    assert screening is not None and screening.adult and not screening.implanted_device


def test_cramp_training_calibrates_tol_in_trains_at_ctf_plus_30(tmp_path: Path) -> None:
    from person_helpers import calibration, ctf

    from emsctl.profile import Profile

    base = calibration("calf-left", 1, device="sim", frequency_hz=8.0, pulse_width_us=150.0,
                       when=datetime.now(UTC) - timedelta(hours=1))
    save_profile(Profile(ctf=ctf(22.0), calibrations=[base]), tmp_path / "profile.toml")
    proc = subprocess.run([str(EMSCTL), *BASE, "--program", "cramp-training", "--expert",
                           "--virtual-user", "5,10,15", "--speed", "max", "--format", "json"],
                          env={**os.environ, "EMSCTL_DATA_DIR": str(tmp_path)},
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["frequency_hz"] == 52.0 and report["pulse_width_us"] == 150.0
    assert 15.0 <= report["tol_ma"] <= 16.0 and report["output_zero_after_too_much_ms"] == 0.0
    entry = next(c for c in load_profile(tmp_path / "profile.toml").calibrations
                 if c.frequency_hz == 52.0)
    assert entry.method == "trains" and (entry.st_ma, entry.mt_ma) == (5.0, 10.0)


@pytest.mark.realtime
def test_a_burst_of_keys_is_read_whole_and_too_much_in_it_stops(tmp_path: Path) -> None:
    term = Terminal([*BASE, "--speed", "4", "--format", "json"], tmp_path)
    term.read_until(r"\r\s*4\.0 mA")
    term.type("ft ")  # one write: feel, twitch and too much arrive together
    assert term.finish() == 0, term.text
    report = term.report()
    assert report["st_ma"] == report["mt_ma"] == report["tol_ma"]
    assert 4.0 <= float(report["tol_ma"]) <= 5.0  # type: ignore[arg-type]
    assert report["output_zero_after_too_much_ms"] == 0.0
