"""ScienceMode4 from the command line and from a bare ``sciencemode4://``.

``emsctl devices`` lists ports with the P24's USB id (0483:5740) as candidates; the URL without
a port opens the one candidate that answers Get_device_id as a P24 and refuses otherwise, naming
every candidate (ports served by in-process emulators stand in for the USB ports);
``emsctl run … -d sim+sciencemode4`` runs; a real-device URL over a pty served by
``emsctl simulate sciencemode4`` refuses to run without a profile and the screening, before
any byte reaches the port.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner
from pty_lines import lines_until

from emsctl.cli import cli
from emsctl.devices import open_device
from emsctl.errors import DeviceError
from emsctl.profile import Calibration, Profile, save_profile
from emsctl.simulator.pty import PtyDeviceOptions, PtyServer

EMSCTL = str(Path(sys.executable).with_name("emsctl"))


def _port(device: str, vid: int | None, pid: int | None, description: str) -> Any:
    return SimpleNamespace(device=device, vid=vid, pid=pid, description=description,
                           product=None, serial_number="1", manufacturer="STMicroelectronics")


def _comports(monkeypatch: pytest.MonkeyPatch, ports: list[Any]) -> None:
    from serial.tools import list_ports

    monkeypatch.setattr(list_ports, "comports", lambda: ports)


def test_devices_lists_the_p24_usb_id_as_a_candidate(monkeypatch: pytest.MonkeyPatch) -> None:
    _comports(monkeypatch, [_port("/dev/ttyACM0", 0x0483, 0x5740, "STM32 Virtual ComPort"),
                            _port("/dev/ttyACM1", 0x0483, 0x5740, "STM32 Virtual ComPort"),
                            _port("/dev/ttyUSB0", 0x0403, 0x6001, "FT232R USB UART")])
    result = CliRunner().invoke(cli, ["devices"])
    assert result.exit_code == 0, result.output
    assert ("/dev/ttyACM0: STM32 Virtual ComPort [0483:5740] — STM32 virtual COM port (a "
            "generic USB id other devices share): a candidate Hasomed P24") in result.output
    assert "emsctl run --device sciencemode4:///dev/ttyACM0" in result.output
    assert "P24 candidates (USB id 0483:5740): /dev/ttyACM0, /dev/ttyACM1" in result.output
    rows = json.loads(CliRunner().invoke(cli, ["devices", "--format", "json"]).output)["serial"]
    assert [r["url"] for r in rows] == ["sciencemode4:///dev/ttyACM0",
                                        "sciencemode4:///dev/ttyACM1",
                                        "sciencemode2:///dev/ttyUSB0"]


# --------------------------------------------------------------------------- sciencemode4://


def _discover(monkeypatch: pytest.MonkeyPatch, emulations: list[str]) -> str:
    """Serve ``emulations`` on ptys with the P24's USB id, open ``sciencemode4://``: the id of
    the P24 it connected to, or the refusal."""

    async def main() -> str:
        servers = [PtyServer(name, PtyDeviceOptions()) for name in emulations]
        stop = asyncio.Event()
        paths = [server.open() for server in servers]
        tasks = [asyncio.ensure_future(s.serve_until(stop)) for s in servers]
        _comports(monkeypatch, [_port(path, 0x0483, 0x5740, "STM32 Virtual ComPort")
                                for path in paths])
        await asyncio.sleep(0.05)
        driver = open_device("sciencemode4://")
        try:
            await driver.connect()
            info = driver.info  # type: ignore[attr-defined]
            description = driver.link.description  # type: ignore[attr-defined]
            await driver.close()
            assert paths[emulations.index("sciencemode4")] in description
            return f"connected to {info.device_id}"
        except DeviceError as exc:
            return f"refused: {exc}".replace(paths[0], "<A>").replace(paths[-1], "<B>")
        finally:
            stop.set()
            await asyncio.gather(*tasks)

    return asyncio.run(main())


def test_a_bare_url_opens_the_one_candidate_that_answers_as_a_p24(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the other candidate is a RehaStim2 emulation: it never answers Get_device_id
    assert _discover(monkeypatch, ["sciencemode2", "sciencemode4"]) == "connected to P24EMU0001"


def test_a_bare_url_refuses_two_p24s_and_names_both(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _discover(monkeypatch, ["sciencemode4", "sciencemode4"])
    assert text == ("refused: sciencemode4:// found 2 P24s, so it will not choose one (<A> (P24 "
                    "id P24EMU0001); <B> (P24 id P24EMU0001)); name the port, e.g. "
                    "sciencemode4://<A>")


def test_a_bare_url_refuses_when_no_candidate_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _discover(monkeypatch, ["sciencemode2"])
    assert text == ("refused: sciencemode4:// found no P24: no port with USB id 0483:5740 "
                    "answered Get_device_id as a P24 (<A> (no P24 answer to Get_device_id "
                    "within 0.5 s)); name the port: sciencemode4:///dev/ttyACM0")


def test_a_bare_url_without_candidates_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    _comports(monkeypatch, [_port("/dev/ttyUSB0", 0x0403, 0x6001, "FT232R")])
    driver = open_device("sciencemode4://")

    async def main() -> None:
        await driver.connect()

    with pytest.raises(DeviceError, match="found no port with the P24's USB id 0483:5740"):
        asyncio.run(main())


# --------------------------------------------------------------------------- emsctl run


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMSCTL_")}
    env.update(EMSCTL_DATA_DIR=str(tmp_path / "data"), EMSCTL_STATE_DIR=str(tmp_path / "state"),
               NO_COLOR="1")
    return env


def test_run_relaxation_on_sim_sciencemode4_completes(tmp_path: Path) -> None:
    proc = subprocess.run([EMSCTL, "run", "relaxation", "-d", "sim+sciencemode4", "--speed",
                           "max", "--format", "json"], capture_output=True, text=True,
                          timeout=120, env=_env(tmp_path), stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["end_reason"] == "completed"
    records = [json.loads(line) for line in Path(summary["journal"]).read_text().splitlines()]
    assert records[0]["device_model"] == "Hasomed P24 (ScienceMode4)"
    connected = [r for r in records if r["type"] == "telemetry" and r["kind"] == "connected"]
    assert connected and "id P24EMU0001, firmware 1.0.0, ScienceMode 4.0.0" in \
        connected[0]["message"]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    trace = tmp_path / "trace.txt"
    with subprocess.Popen([EMSCTL, "simulate", "sciencemode4", "--pty", "--trace", str(trace)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/"), path
        try:
            lines_until(proc, "powered on", 5.0)
            yield path, trace
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.mark.realtime
def test_a_real_p24_url_refuses_to_run_without_a_profile_and_the_screening(
        served: tuple[str, Path], tmp_path: Path) -> None:
    path, trace = served
    url = f"sciencemode4://{path}"
    env = _env(tmp_path)

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run([EMSCTL, "run", "relaxation", "--device", url, "--yes"],
                              capture_output=True, text=True, timeout=60, env=env,
                              stdin=subprocess.DEVNULL, check=False)

    no_profile = run()
    assert no_profile.returncode == 2, no_profile.stderr
    assert f"run 'emsctl calibrate --device {url} --channel 1 --site calf-left" in \
        no_profile.stderr
    assert no_profile.stderr.count("\n") == 1 and "Traceback" not in no_profile.stderr
    # calibrated on this device kind, but the questionnaire was never answered
    when = datetime.now(UTC) - timedelta(hours=1)
    calibrations = [Calibration(device="sciencemode4", channel=ch, site=site, pad_set="default",
                                st_ma=5.0, mt_ma=10.0, tol_ma=20.0, frequency_hz=6.0,
                                pulse_width_us=250.0, measured_utc=when)
                    for ch, site in ((1, "calf-left"), (2, "calf-right"))]
    save_profile(Profile(screening=None, calibrations=calibrations),
                 tmp_path / "data" / "profile.toml")
    unscreened = run()
    assert unscreened.returncode == 2, unscreened.stderr
    assert "questionnaire must be answered in a terminal" in unscreened.stderr
    assert "Traceback" not in unscreened.stderr
    # neither run put a byte on the port
    assert "host→device" not in trace.read_text(encoding="utf-8")
