"""The conformance suite's table: which devices it runs on, and what each cannot do.

The devices come from :data:`emsctl.conformance.FAMILIES` (each family's emulations, and its
open-load emulations for the electrode step), plus the real device given with
``pytest --hw-device URL``. A new family needs its entry there; it needs a line here only if
some step is not possible on its emulation (every step is possible on the P24's).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from emsctl.conformance import FAMILIES, STEPS

__all__ = ["NOT_POSSIBLE", "STEP_IDS", "Target", "targets"]

STEP_IDS = tuple(spec.id for spec in STEPS)
_NO_OUTPUT = frozenset({"update_ack", "stop_race", "lease", "device_watchdog", "electrode"})

#: URL prefix (scheme and target, before ``?``) → the steps that are not possible on it.
NOT_POSSIBLE: dict[str, frozenset[str]] = {
    "sim+coyote3": frozenset({"electrode"}),
    "coyote3": frozenset({"electrode", "device_watchdog"}),  # nothing to see from the host
    "sim+openems": _NO_OUTPUT | {"ack_timeout"},  # the board acknowledges nothing on serial
    "sim+openems+ble": _NO_OUTPUT,
    "openems": _NO_OUTPUT | {"ack_timeout"},
    "openems+ble": _NO_OUTPUT,
}


@dataclass(frozen=True)
class Target:
    """One device the suite runs on.

    Attributes:
        family: the protocol family.
        url: the device URL (None: a hardware slot with no ``--hw-device`` for it).
        hardware: a real device (real time, no emulator record).
        load: what is across its outputs.
        not_possible: steps expected to be "not possible on this device".
    """

    family: str
    url: str | None
    hardware: bool = False
    load: str = "resistor"
    not_possible: frozenset[str] = field(default_factory=frozenset)

    @property
    def id(self) -> str:
        """A test id."""
        if self.url is None:
            return f"{self.family}-hw"
        return f"{self.family}-{'hw' if self.hardware else self.url}-{self.load}"


def _expected(url: str) -> frozenset[str]:
    scheme = url.partition("?")[0].partition("://")[0]
    return NOT_POSSIBLE.get(scheme, frozenset())


def targets(hw_device: str | None) -> list[Target]:
    """Every emulation of every family, each family's hardware slot, and the open-load
    emulations (electrode step only)."""
    from emsctl.conformance import family_entry_for

    hw_family = family_entry_for(hw_device)[0] if hw_device else None
    out = []
    for family, entry in FAMILIES.items():
        out += [Target(family, url, not_possible=_expected(url)) for url in entry.emulations]
        url = hw_device if hw_family == family else None
        out.append(Target(family, url, hardware=True,
                          not_possible=_expected(url) if url else frozenset()))
        out += [Target(family, url, load="open") for url in entry.open_load]
    return out
