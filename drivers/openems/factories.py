"""Factories behind ``openems://`` and ``openems+ble://`` (the device table names them).

Each is ``(DeviceUrl, OpenOptions) -> OpenEmsDriver`` and parses its URL strictly. Every form
needs the declared external stimulator (``ma_at_100``, ``frequency_hz``, ``pulse_width_us``).
Links are imported lazily: pyserial and bleak only when a real device is opened. The simulated
forms live with the simulator (``emsctl.simulator.drivers.openems``).
"""

from __future__ import annotations

import importlib
from typing import Any

from ...devices import DeviceUrl, OpenOptions
from ...errors import InputError
from .driver import OpenEmsDriver
from .params import DeclaredParams, SerialParams, parse_openems_params
from .protocol import SERIAL_BAUDRATE
from .transport import BleLines, SerialLines

__all__ = ["open_ble", "open_serial"]

def open_serial(url: DeviceUrl, options: OpenOptions) -> OpenEmsDriver:
    """``openems:///dev/ttyUSB0?ma_at_100=…&frequency_hz=…&pulse_width_us=…``.

    Raises:
        InputError: no port, an unknown or malformed parameter, a missing declaration.
    """
    if not url.target:
        raise InputError("openems needs a port, e.g. 'openems:///dev/ttyUSB0?ma_at_100=40&"
                         "frequency_hz=80&pulse_width_us=180'")
    params = parse_openems_params(SerialParams, url.params, url.scheme)
    from ..links.serial import SerialLink  # noqa: PLC0415 - pyserial only for real ports

    lines = SerialLines(SerialLink(url.target, baud=SERIAL_BAUDRATE, parity="N"),
                        params.ready_timeout_s)
    driver = OpenEmsDriver(lines, params.declared(), url=url.text)
    lines.on_reset = driver.board_reset
    lines.on_mismatch = driver.echo_mismatch
    return driver


def open_ble(url: DeviceUrl, options: OpenOptions) -> OpenEmsDriver:
    """``openems+ble://ADDRESS?…`` or ``openems+ble://name=openEMSstim01?…`` (the declared
    ``ma_at_100``, ``frequency_hz`` and ``pulse_width_us`` are required).

    Raises:
        InputError: no address, a bad parameter, or no BLE support in this installation.
    """
    if not url.target:
        raise InputError("openems+ble needs the board's address or name, e.g. "
                         "'openems+ble://00:1E:C0:12:34:56?ma_at_100=40&frequency_hz=80&"
                         "pulse_width_us=180'")
    declared = parse_openems_params(DeclaredParams, url.params, url.scheme).declared()
    try:
        ble = importlib.import_module(f"{__package__.rpartition('.')[0]}.links.ble")
        link_class: Any = ble.BleakGattLink
    except (ImportError, AttributeError) as exc:
        raise InputError("openEMSstim over BLE needs emsctl's BLE link (bleak), which is not "
                         f"available in this installation: {exc}") from exc
    # docs/protocols/openemsstim.md §7: the board is found by the name its firmware was built with
    # (the profile declares it)
    if url.target.startswith("name="):
        link = link_class(name=url.target.removeprefix("name="))
    else:
        link = link_class(address=url.target)
    return OpenEmsDriver(BleLines(link), declared, url=url.text, transport_name="BLE")
