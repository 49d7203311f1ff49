"""The table of protocol families a check knows, found by module path as data.

Each family's wire facts live with its driver (``drivers/<family>/conformance.py``), in the
drivers layer; the core reaches them only through :data:`FAMILIES`, like the device table. A
new family is one entry here plus its ``conformance`` module.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..devices import parse_device_url
from ..errors import InputError
from .run import Family

__all__ = ["FAMILIES", "FamilyEntry", "family_entry_for", "load_family"]


@dataclass(frozen=True)
class FamilyEntry:
    """One row of :data:`FAMILIES`.

    Attributes:
        family: ``"module:attribute"`` of the family's :class:`Family` object.
        schemes: the device URL schemes that speak this protocol (real and emulated).
        emulations: the emulated devices the conformance suite runs on by default.
        open_load: emulations whose electrodes are on nothing (for the electrode step).
    """

    family: str
    schemes: tuple[str, ...]
    emulations: tuple[str, ...]
    open_load: tuple[str, ...] = ()


_OPENEMS_DECLARED = "ma_at_100=40&frequency_hz=80&pulse_width_us=180"

#: family name → where its wire facts live and which devices speak it.
FAMILIES: dict[str, FamilyEntry] = {
    "sciencemode2": FamilyEntry(
        "emsctl.drivers.sciencemode2.conformance:FAMILY",
        ("sciencemode2", "sim+sciencemode2"),
        ("sim+sciencemode2",),
        ("sim+sciencemode2?impedance_ohm=1000000",)),
    "coyote3": FamilyEntry(
        "emsctl.drivers.coyote3.conformance:FAMILY",
        ("coyote3", "sim+coyote3"),
        ("sim+coyote3?ma_per_step=0.2",)),
    "sciencemode4": FamilyEntry(
        "emsctl.drivers.sciencemode4.conformance:FAMILY",
        ("sciencemode4", "sim+sciencemode4"),
        ("sim+sciencemode4",),
        ("sim+sciencemode4?impedance_ohm=1000000",)),
    "openems": FamilyEntry(
        "emsctl.drivers.openems.conformance:FAMILY",
        ("openems", "openems+ble", "sim+openems", "sim+openems+ble"),
        (f"sim+openems?{_OPENEMS_DECLARED}", f"sim+openems+ble?{_OPENEMS_DECLARED}")),
}


def family_entry_for(url: str) -> tuple[str, FamilyEntry]:
    """The family a device URL belongs to.

    Raises:
        InputError: a bad URL, or a scheme no family lists.
    """
    scheme = parse_device_url(url).scheme
    for name, entry in FAMILIES.items():
        if scheme in entry.schemes:
            return name, entry
    known = sorted(s for entry in FAMILIES.values() for s in entry.schemes)
    raise InputError(f"there are no conformance steps for '{scheme}' devices; known: "
                     f"{', '.join(known)}")


def load_family(entry: FamilyEntry) -> Family:
    """Import a family's :class:`Family` object.

    Raises:
        InputError: the module or its object is missing.
    """
    module_name, _, attr = entry.family.partition(":")
    try:
        family = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"the conformance steps in {entry.family} are not available: "
                         f"{exc}") from exc
    if not isinstance(family, Family):
        raise InputError(f"{entry.family} is not a conformance family")
    return family
