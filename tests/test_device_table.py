"""The device table: who may be simulated, and strict URL parameters for every driver."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from emsctl import devices
from emsctl.contract import Driver
from emsctl.devices import BUILTIN_DRIVERS, known_schemes, open_device, parse_device_url
from emsctl.errors import InputError
from emsctl.simulator.drivers.sim import SimDriver

SIMULATED = ["sim", "sim+sciencemode2", "sim+coyote3?ma_per_step=0.2",
             "sim+openems?ma_at_100=40&frequency_hz=80&pulse_width_us=180",
             "sim+openems+ble?ma_at_100=40&frequency_hz=80&pulse_width_us=180"]
REAL = ["sciencemode2:///dev/ttyUSB0",
        "coyote3://AA:BB:CC:DD:EE:FF?ma_per_step=0.2&frequency_balance=1&intensity_balance=1",
        "openems:///dev/ttyUSB0?ma_at_100=40&frequency_hz=80&pulse_width_us=180",
        "openems+ble://AA:BB?ma_at_100=40&frequency_hz=80&pulse_width_us=180"]


@pytest.mark.parametrize("url", SIMULATED)
def test_the_simulators_own_entries_make_simulated_drivers(url: str) -> None:
    assert open_device(url).simulated


@pytest.mark.parametrize("url", REAL)
def test_real_entries_make_real_drivers_without_opening_a_port(url: str) -> None:
    assert not open_device(url).simulated


def test_a_driver_made_outside_the_table_is_not_simulated() -> None:
    assert not SimDriver().simulated  # only the table marks; a caller cannot by building one


def test_a_driver_class_cannot_claim_to_be_simulated() -> None:
    with pytest.raises(TypeError, match=r"^Liar may not define 'simulated': only the device "
                                        r"table marks a driver as simulated$"):
        type("Liar", (SimDriver,), {"simulated": property(lambda self: True)})


def _plugins(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    eps = [EntryPoint(name, "emsctl.simulator.drivers.sim:open_sim", devices.ENTRY_POINT_GROUP)
           for name in names]
    monkeypatch.setattr(devices, "entry_points", lambda group: eps)


def test_a_plugin_cannot_register_a_simulator_name_or_shadow_a_builtin(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _plugins(monkeypatch, "sim+mine", "SIM+Other", "sim", "sciencemode2", "mydevice")
    table = known_schemes()
    assert "sim+mine" not in table and "sim+other" not in table
    assert table["sim"] == BUILTIN_DRIVERS["sim"]
    assert table["sciencemode2"] == BUILTIN_DRIVERS["sciencemode2"]
    assert table["mydevice"] == "emsctl.simulator.drivers.sim:open_sim"
    with pytest.raises(InputError, match="unknown device 'sim\\+mine'"):
        open_device("sim+mine")


def test_a_plugin_that_opens_the_simulator_still_is_a_real_device(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the real-device gates (profile, screening, dose) can never be skipped by naming
    _plugins(monkeypatch, "mydevice")
    driver: Driver = open_device("mydevice")
    assert isinstance(driver, SimDriver) and not driver.simulated


def test_a_key_given_twice_is_refused() -> None:
    with pytest.raises(InputError, match="'ma_per_step' is given twice"):
        parse_device_url("sim+coyote3?ma_per_step=0.2&ma_per_step=0.4")


@pytest.mark.parametrize(("url", "words"), [
    ("sim?channel=2", ["unknown sim parameter(s) channel", "known: channels"]),
    ("sim+sciencemode2?watchdog=1", ["unknown sim+sciencemode2 parameter(s) watchdog",
                                     "watchdog_s"]),
    ("sim+coyote3?ma_per_step=0.2&batery_pct=3", ["batery_pct", "battery_pct"]),
    ("sim+openems?ma_at_100=40&frequency_hz=80&pulse_width_us=180&debg=0", ["debg", "debug"]),
    ("sciencemode2:///dev/x?ack=1", ["unknown sciencemode2 parameter(s) ack", "ack_timeout_s"]),
    ("openems:///dev/x?ma_at_100=40&frequency_hz=80&pulse_width_us=180&x=1",
     ["unknown openems parameter(s) x", "ready_timeout_s"]),
])
def test_unknown_keys_are_refused_with_the_known_ones(url: str, words: list[str]) -> None:
    with pytest.raises(InputError) as info:
        open_device(url)
    assert all(w in str(info.value) for w in words), str(info.value)


@pytest.mark.parametrize(("url", "key"), [
    ("sim?channels=9", "channels"), ("sim?channels=two", "channels"),
    ("sim?watchdog_s=nan", "watchdog_s"), ("sim?impedance_ohm=inf", "impedance_ohm"),
    ("sim+sciencemode2?watchdog_s=0", "watchdog_s"), ("sim+sciencemode2?profile=loose", "profile"),
    ("sim+coyote3?ma_per_step=5", "ma_per_step"),
    ("sim+openems?ma_at_100=400&frequency_hz=80&pulse_width_us=180", "ma_at_100"),
    ("sim+openems?ma_at_100=40&frequency_hz=80&pulse_width_us=180&debug=maybe", "debug"),
])
def test_bad_values_are_one_sentence_naming_the_key(url: str, key: str) -> None:
    with pytest.raises(InputError) as info:
        open_device(url)
    assert f"parameter {key}=" in str(info.value) and "\n" not in str(info.value)
