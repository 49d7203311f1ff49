"""``emsctl devices`` and ``emsctl simulate``: listing, guesses, URLs, and clear refusals."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from emsctl.cli import cli
from emsctl.cli.devices import guess_device


def _port(device: str, vid: int | None, pid: int | None, description: str) -> Any:
    return SimpleNamespace(device=device, vid=vid, pid=pid, description=description,
                           product=None, serial_number="A1", manufacturer="FTDI")


@pytest.fixture
def ports(monkeypatch: pytest.MonkeyPatch) -> None:
    from serial.tools import list_ports

    monkeypatch.setattr(list_ports, "comports", lambda: [
        _port("/dev/ttyUSB0", 0x0403, 0x6001, "FT232R USB UART"),
        _port("/dev/ttyACM0", 0x2341, 0x0043, "Arduino Uno"),
        _port("/dev/ttyS0", None, None, "n/a"),
    ])


def test_devices_lists_ports_with_vid_pid_guess_and_url(ports: None) -> None:
    result = CliRunner().invoke(cli, ["devices"])
    assert result.exit_code == 0, result.output
    assert "/dev/ttyUSB0: FT232R USB UART [0403:6001] — FTDI FT232R bridge: possibly a " \
           "Hasomed RehaStim2" in result.output
    assert "emsctl run --device sciencemode2:///dev/ttyUSB0" in result.output
    assert "openems:///dev/ttyACM0" in result.output


def test_devices_names_the_emulated_devices_and_what_each_declares(ports: None) -> None:
    result = CliRunner().invoke(cli, ["devices"])
    assert "  --device sim+coyote3       declares ma_per_step=0.2&frequency_balance=128&" \
           "intensity_balance=128" in result.output
    assert "  --device sim+openems       declares ma_at_100=16&frequency_hz=80&" \
           "pulse_width_us=180" in result.output
    assert "  --device sim+sciencemode4\n" in result.output
    emulated = json.loads(CliRunner().invoke(cli, ["devices", "--format", "json"]).output)[
        "emulated"]
    assert [e["url"] for e in emulated] == ["sim", "sim+sciencemode2", "sim+sciencemode4",
                                            "sim+coyote3", "sim+openems", "sim+openems+ble"]


def test_devices_json_is_data(ports: None) -> None:
    result = CliRunner().invoke(cli, ["devices", "--format", "json"])
    rows = json.loads(result.output)["serial"]
    assert [r["url"] for r in rows] == ["openems:///dev/ttyACM0", None,
                                        "sciencemode2:///dev/ttyUSB0"]
    assert rows[2]["vid_pid"] == "0403:6001"


def test_a_rehastim_named_port_is_recognised_whatever_its_bridge() -> None:
    assert guess_device(None, None, "RehaStim2 USB") == ("sciencemode2", "Hasomed RehaStim2")
    assert guess_device(0x1234, 0x5678, "thing")[0] is None


@pytest.mark.parametrize("args, words", [
    (["simulate", "sciencemode2"], "only --pty"),
    (["simulate", "nosuch", "--pty"], "no emulation called 'nosuch'"),
    (["simulate", "sciencemode2", "--pty", "--watchdog-s", "soon"], "seconds or 'log-only'"),
])
def test_simulate_refuses_bad_usage_with_one_sentence(args: list[str], words: str) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0
    assert words in str(result.exception) + result.output
