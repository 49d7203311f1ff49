"""Factories behind ``openems://``, ``openems+ble://``, ``sim+openems`` and ``sim+openems+ble``.

Each is ``(DeviceUrl, OpenOptions) -> OpenEmsDriver`` and parses its URL strictly. Every form
needs the declared external stimulator (``ma_at_100``, ``frequency_hz``, ``pulse_width_us``).
The simulated forms build an emulated board (``emsctl.simulator.devices.openems``) whose
external stimulator *is* the declared one, wired with an in-memory link, and return a
:class:`~.simulated.SimulatedOpenEmsDriver`. Links are imported lazily: pyserial and
bleak only when a real device is opened, the simulator only when a simulated one is.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ...devices import DeviceUrl, OpenOptions
from ...errors import InputError
from .driver import OpenEmsDriver
from .params import (
    DECLARED_KEYS,
    DeclaredStimulator,
    float_param,
    parse_declared,
    refuse_unknown,
)
from .protocol import SERIAL_BAUDRATE, Firmware
from .transport import READY_TIMEOUT_S, BleLines, SerialLines

if TYPE_CHECKING:
    from ...simulator.devices.openems import OpenEmsBoard

__all__ = ["open_ble", "open_serial", "open_simulated", "open_simulated_ble"]

_SERIAL_KEYS = {**DECLARED_KEYS,
                "ready_timeout_s": "how long to wait for the setup banner after opening (12)"}
_BLE_KEYS = dict(DECLARED_KEYS)
_SIM_KEYS = {
    **_SERIAL_KEYS,
    "debug": "the board prints its debug lines: 1 or 0 (default 1)",
    "firmware": "current or legacy (default current)",
    "boot_s": "setup time after a reset, 0–60 s (default 11.4)",
    "loop_ms": "main-loop period, ms (default 1)",
    "blocking": "model the 50 ms blocking waits: 1 or 0 (default 1)",
    "impedance_ohm": "electrode–skin impedance (default 1000)",
}
_SIM_BLE_KEYS = {**{k: v for k, v in _SIM_KEYS.items() if k != "ready_timeout_s"},
                 "name": "the advertised name (default openEMSstim01)"}


def open_serial(url: DeviceUrl, options: OpenOptions) -> OpenEmsDriver:
    """``openems:///dev/ttyUSB0?ma_at_100=…&frequency_hz=…&pulse_width_us=…``.

    Raises:
        InputError: no port, an unknown or malformed parameter, a missing declaration.
    """
    refuse_unknown(url.params, _SERIAL_KEYS, "openems")
    if not url.target:
        raise InputError("openems needs a port, e.g. 'openems:///dev/ttyUSB0?ma_at_100=40&"
                         "frequency_hz=80&pulse_width_us=180'")
    declared = parse_declared(url.params)
    ready_s = float_param(url.params, "ready_timeout_s", READY_TIMEOUT_S, 0.0, 60.0)
    from ..links.serial import SerialLink  # noqa: PLC0415 - pyserial only for real ports

    lines = SerialLines(SerialLink(url.target, baud=SERIAL_BAUDRATE, parity="N"), ready_s)
    driver = OpenEmsDriver(lines, declared, url=url.text)
    lines.on_reset = driver.board_reset
    lines.on_mismatch = driver.echo_mismatch
    return driver


def open_ble(url: DeviceUrl, options: OpenOptions) -> OpenEmsDriver:
    """``openems+ble://ADDRESS?…`` or ``openems+ble://name=openEMSstim01?…`` (the declared
    ``ma_at_100``, ``frequency_hz`` and ``pulse_width_us`` are required).

    Raises:
        InputError: no address, a bad parameter, or no BLE support in this installation.
    """
    refuse_unknown(url.params, _BLE_KEYS, "openems+ble")
    if not url.target:
        raise InputError("openems+ble needs the board's address or name, e.g. "
                         "'openems+ble://00:1E:C0:12:34:56?ma_at_100=40&frequency_hz=80&"
                         "pulse_width_us=180'")
    declared = parse_declared(url.params)
    try:
        ble = importlib.import_module(f"{__package__.rpartition('.')[0]}.links.ble")
        link_class: Any = ble.BleakGattLink
    except (ImportError, AttributeError) as exc:
        raise InputError("openEMSstim over BLE needs emsctl's BLE link (bleak), which is not "
                         f"available in this installation: {exc}") from exc
    # §7: the board is found by the name its firmware was built with (the profile declares it)
    if url.target.startswith("name="):
        link = link_class(name=url.target.removeprefix("name="))
    else:
        link = link_class(address=url.target)
    return OpenEmsDriver(BleLines(link), declared, url=url.text, transport_name="BLE")


def open_simulated(url: DeviceUrl, options: OpenOptions) -> OpenEmsDriver:
    """``sim+openems?ma_at_100=…&frequency_hz=…&pulse_width_us=…``: serial to an emulated board.

    Raises:
        InputError: a target, a bad parameter, or a fault plan the board cannot carry out.
    """
    from ...simulator.devices.openems_front import UsbSerialFront  # noqa: PLC0415
    from .simulated import SimulatedOpenEmsDriver  # noqa: PLC0415

    refuse_unknown(url.params, _SIM_KEYS, "sim+openems")
    _no_target(url)
    declared = parse_declared(url.params)
    front = UsbSerialFront(_board(url.params, declared), seed=options.seed)
    ready_s = float_param(url.params, "ready_timeout_s", READY_TIMEOUT_S, 0.0, 60.0)
    lines = SerialLines(front.link, ready_s)
    driver = SimulatedOpenEmsDriver(lines, declared, front, url=url.text,
                                    fault_plan=options.fault_plan)
    lines.on_reset = driver.board_reset
    lines.on_mismatch = driver.echo_mismatch
    return driver


def open_simulated_ble(url: DeviceUrl, options: OpenOptions) -> OpenEmsDriver:
    """``sim+openems+ble?ma_at_100=…&…``: BLE writes to an emulated board's RN4020.

    Raises:
        InputError: a target, a bad parameter, or a fault plan the board cannot carry out.
    """
    from ...simulator.devices.openems_front import Rn4020Front  # noqa: PLC0415
    from ...simulator.transports import MemoryGattLink  # noqa: PLC0415
    from .simulated import SimulatedOpenEmsDriver  # noqa: PLC0415

    refuse_unknown(url.params, _SIM_BLE_KEYS, "sim+openems+ble")
    _no_target(url)
    declared = parse_declared(url.params)
    front = Rn4020Front(_board(url.params, declared),
                        name=url.params.get("name", "openEMSstim01"), seed=options.seed)
    return SimulatedOpenEmsDriver(BleLines(MemoryGattLink(front.server)), declared, front,
                                  url=url.text, fault_plan=options.fault_plan)


# ---------------------------------------------------------------------- helpers


def _no_target(url: DeviceUrl) -> None:
    if url.target:
        raise InputError(f"{url.scheme} takes no target, got '{url.target}'")


def _flag(params: dict[str, str], key: str, default: bool) -> bool:
    if key not in params:
        return default
    value = params[key].lower()
    if value in ("1", "true", "on", "yes"):
        return True
    if value in ("0", "false", "off", "no"):
        return False
    raise InputError(f"openEMSstim parameter {key}={params[key]!r} must be 1 or 0")


def _board(params: dict[str, str], declared: DeclaredStimulator) -> OpenEmsBoard:
    from ...simulator.devices.openems import BOOT_S, OpenEmsBoard, OpenEmsConfig  # noqa: PLC0415
    from .simulated import external_for  # noqa: PLC0415

    firmware_name = params.get("firmware", "current")
    try:
        firmware = Firmware(firmware_name)
    except ValueError:
        raise InputError(f"openEMSstim firmware must be 'current' or 'legacy', not "
                         f"'{firmware_name}'") from None
    config = OpenEmsConfig(
        external_for(declared),
        firmware=firmware,
        debug=_flag(params, "debug", True),
        loop_ms=float_param(params, "loop_ms", 1.0, 0.01, 100.0),
        model_blocking=_flag(params, "blocking", True),
        boot_s=float_param(params, "boot_s", BOOT_S, 0.0, 60.0),
        impedance_ohm=float_param(params, "impedance_ohm", 1000.0, 1.0, 1e6),
    )
    return OpenEmsBoard(config)
