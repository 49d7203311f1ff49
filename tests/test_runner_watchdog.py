"""HZ-04: a device without an output watchdog is refused before anything is connected."""

from __future__ import annotations

from dataclasses import replace

import pytest

from emsctl import runner
from emsctl.contract import Driver, _mark_simulated
from emsctl.devices import OpenOptions
from emsctl.errors import InputError
from emsctl.limits import DEFAULTS
from emsctl.loader import load_program
from emsctl.simulator.drivers.sim import SimDriver


def test_a_device_without_an_output_watchdog_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[SimDriver] = []

    def no_watchdog(url: str, options: OpenOptions | None = None) -> Driver:
        driver = SimDriver()
        _mark_simulated(driver)  # as the device table does for its own simulator entries
        driver.capabilities = replace(driver.capabilities, has_output_watchdog=False)
        made.append(driver)
        return driver

    monkeypatch.setattr(runner, "open_device", no_watchdog)
    with pytest.raises(InputError, match="no output watchdog"):
        runner.prepare_run(load_program("relaxation"), "sim", DEFAULTS)
    # refused before connect: the device never saw a command
    assert made and all(made[0].device.intervals(ch).size == 0 for ch in (1, 2))


def test_every_built_in_driver_declares_a_watchdog() -> None:
    from emsctl.devices import open_device

    urls = ["sim", "sim+sciencemode2", "sim+coyote3?ma_per_step=0.2&us_per_intensity=3",
            "sim+openems?ma_at_100=40&frequency_hz=80&pulse_width_us=180"]
    for url in urls:
        assert open_device(url).capabilities.has_output_watchdog, url
