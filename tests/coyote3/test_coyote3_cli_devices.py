"""``emsctl devices --ble``: recognised Coyotes with their URL; no Bluetooth is one sentence."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from emsctl.cli.devices import devices
from emsctl.drivers.links import ble


class Adv:
    def __init__(self, name: str | None, rssi: int) -> None:
        self.local_name, self.rssi, self.service_uuids = name, rssi, []


class Dev:
    def __init__(self, address: str, name: str | None) -> None:
        self.address, self.name = address, name


class Scanner:
    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error

    async def discover(self, timeout: float = 5.0, *, return_adv: bool = False) -> Any:
        if self.error is not None:
            raise self.error
        return {"C0:FF:EE:00:00:03": (Dev("C0:FF:EE:00:00:03", "47L121000"),
                                      Adv("47L121000", -55)),
                "11:22:33:44:55:66": (Dev("11:22:33:44:55:66", "Headphones"),
                                      Adv("Headphones", -70))}


@pytest.fixture(autouse=True)
def no_serial_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("emsctl.cli.devices.serial_ports", lambda: [])


def test_ble_scan_lists_the_coyote_with_its_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ble, "_bleak_scanner", Scanner)
    result = CliRunner().invoke(devices, ["--ble", "--scan-s", "1"])
    assert result.exit_code == 0, result.output
    assert "C0:FF:EE:00:00:03: 47L121000, -55 dBm — DG-LAB Coyote V3" in result.output
    assert "coyote3://C0:FF:EE:00:00:03?ma_per_step=<your calibration>" in result.output
    assert "Headphones" in result.output and "not a device emsctl drives" in result.output


def test_ble_scan_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ble, "_bleak_scanner", Scanner)
    result = CliRunner().invoke(devices, ["--ble", "--format", "json"])
    data = json.loads(result.output)
    assert data["ble_error"] is None and data["ble"][0]["address"] == "C0:FF:EE:00:00:03"
    assert data["ble"][0]["url"].startswith("coyote3://C0:FF:EE:00:00:03?")


def test_no_bluetooth_is_one_sentence_and_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    # what bleak raises on this machine: BlueZ's D-Bus socket does not exist
    monkeypatch.setattr(ble, "_bleak_scanner",
                        lambda: Scanner(FileNotFoundError(2, "No such file or directory")))
    result = CliRunner().invoke(devices, ["--ble"])
    assert result.exit_code == 1
    assert "Bluetooth is not available on this computer" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_without_ble_nothing_imports_a_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ble, "_bleak_scanner", lambda: pytest.fail("scanned without --ble"))
    assert CliRunner().invoke(devices, []).exit_code == 0
