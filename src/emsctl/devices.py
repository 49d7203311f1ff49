"""``open_device(url)``: one string picks the driver, like pyvisa's ``@sim`` or pyserial URLs.

The scheme before ``://`` (or the whole string for ``sim`` and ``sim+<protocol>``) selects a
factory from the built-in table; other packages may add schemes through the entry-point group
``emsctl.drivers`` but may never shadow a built-in name. Drivers are imported only when opened,
so importing emsctl never imports pyserial or bleak.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from .contract import Driver, _mark_simulated
from .errors import InputError

__all__ = ["BUILTIN_DRIVERS", "DeviceUrl", "OpenOptions", "is_simulator_url", "known_schemes",
           "open_device", "parse_device_url", "reserved_scheme"]

#: scheme → "module:factory"; each factory is ``(DeviceUrl, OpenOptions) -> Driver``.
BUILTIN_DRIVERS: dict[str, str] = {
    "sim": "emsctl.simulator.drivers.sim:open_sim",
    "sim+sciencemode2": "emsctl.simulator.drivers.sciencemode2:open_emulated",
    "sciencemode2": "emsctl.drivers.sciencemode2.driver:open_serial",
    "sim+sciencemode4": "emsctl.simulator.drivers.sciencemode4:open_emulated",
    "sciencemode4": "emsctl.drivers.sciencemode4.driver:open_serial",
    "sim+coyote3": "emsctl.simulator.drivers.coyote3:open_simulated_coyote",
    "coyote3": "emsctl.drivers.coyote3.driver:open_ble",
    "sim+openems": "emsctl.simulator.drivers.openems:open_simulated",
    "sim+openems+ble": "emsctl.simulator.drivers.openems:open_simulated_ble",
    "openems": "emsctl.drivers.openems.factories:open_serial",
    "openems+ble": "emsctl.drivers.openems.factories:open_ble",
}
ENTRY_POINT_GROUP = "emsctl.drivers"


@dataclass(frozen=True)
class DeviceUrl:
    """A parsed device URL: ``scheme://target?key=value&…``."""

    text: str
    scheme: str
    target: str
    params: dict[str, str]



@dataclass
class OpenOptions:
    """Options for opening a device that do not belong in its URL.

    ``fault_plan`` (a :class:`emsctl.simulator.faults.FaultPlan`) and ``seed`` only apply to
    simulated devices.
    """

    fault_plan: Any = None
    seed: int = 0
    extras: dict[str, Any] = field(default_factory=dict)


def parse_device_url(url: str) -> DeviceUrl:
    """Split a device URL into scheme, target and ``?key=value`` parameters.

    Raises:
        InputError: the URL is empty or malformed.
    """
    text = url.strip()
    if not text:
        raise InputError("the device URL is empty; use e.g. 'sim' or 'sciencemode2:///dev/ttyUSB0'")
    scheme, sep, rest = text.partition("://")
    if not sep:  # the bare form: "sim" or "sim?channels=2" has no target, maybe a query
        scheme, qmark, query_only = text.partition("?")
        rest = qmark + query_only
    target, _, query = rest.partition("?")
    params: dict[str, str] = {}
    if query:
        for item in query.split("&"):
            key, eq, value = item.partition("=")
            if not eq or not key:
                raise InputError(f"device URL parameter '{item}' is not key=value")
            if key in params:
                raise InputError(f"device URL parameter '{key}' is given twice; give it once")
            params[key] = value
    return DeviceUrl(text, scheme.lower(), target, params)


def reserved_scheme(scheme: str) -> bool:
    """True for the names only the bundled simulator may use: ``sim`` and ``sim+…``."""
    return scheme == "sim" or scheme.startswith("sim+")


def is_simulator_url(url: str) -> bool:
    """Whether a device URL names the bundled simulator.

    Only for reading old journals, whose header has no ``simulated`` flag; everything else
    reads :attr:`emsctl.contract.Driver.simulated` from the opened driver.
    """
    return reserved_scheme(url.strip().partition("://")[0].partition("?")[0].lower())


def known_schemes() -> dict[str, str]:
    """Built-in schemes plus those of installed plugins, which never shadow a built-in and
    never use the simulator's reserved names (``sim``, ``sim+…``)."""
    table = dict(BUILTIN_DRIVERS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name.lower() not in BUILTIN_DRIVERS and not reserved_scheme(ep.name.lower()):
            table[ep.name.lower()] = ep.value
    return table


def open_device(url: str, options: OpenOptions | None = None) -> Driver:
    """Make (but do not connect) the driver for ``url``.

    Raises:
        InputError: unknown scheme (the message lists the known ones) or a bad URL.
    """
    parsed = parse_device_url(url)
    table = known_schemes()
    if parsed.scheme not in table:
        raise InputError(
            f"unknown device '{parsed.scheme}'; known: {', '.join(sorted(table))}"
        )
    module_name, _, attr = table[parsed.scheme].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"the driver for '{parsed.scheme}' is not available: {exc}") from exc
    factory: Callable[[DeviceUrl, OpenOptions], Driver] = getattr(module, attr)
    driver = factory(parsed, options or OpenOptions())
    if reserved_scheme(parsed.scheme) and BUILTIN_DRIVERS.get(parsed.scheme) == table[
            parsed.scheme]:
        _mark_simulated(driver)
    return driver
