"""The electrode–skin load on each channel: impedance, compliance limiting, lifting and falling off.

A constant-current stimulator can only push ``set current`` through the load while
``I·Z ≤ compliance voltage`` (L5); beyond that the current is limited to ``V/Z``. A lifting pad
raises the impedance, a pad that falls off is an open circuit (nothing is delivered). The device
flags *no load* the way L12 asks: impedance over 5 kΩ, a rise of more than 50 % over the baseline
taken when the electrode was (re)attached or the session started, or an open circuit.

Pure state: no clock, no I/O, no events. :class:`~emsctl.simulator.model.SimulatedStimulator`
owns a :class:`BodyModel` and turns its changes into output intervals and device events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import InputError

__all__ = [
    "DEFAULT_IMPEDANCE_OHM",
    "NO_LOAD_IMPEDANCE_OHM",
    "NO_LOAD_RISE_FRACTION",
    "BodyModel",
    "ElectrodeLoad",
]

DEFAULT_IMPEDANCE_OHM = 1000.0
#: L12: the device flags no load above this impedance.
NO_LOAD_IMPEDANCE_OHM = 5000.0
#: L12: … or when the impedance rose by more than this fraction over its baseline.
NO_LOAD_RISE_FRACTION = 0.5


@dataclass(frozen=True, slots=True)
class ElectrodeLoad:
    """The load one channel drives.

    Attributes:
        impedance_ohm: electrode–skin impedance while attached.
        baseline_ohm: impedance when the electrode was attached (reference for the L12 rise).
        attached: False when the pad is off: an open circuit.
    """

    impedance_ohm: float
    baseline_ohm: float
    attached: bool = True

    def delivered_ma(self, set_ma: float, compliance_v: float) -> float:
        """Current that actually flows for a set current: ``min(set, V/Z)``, 0 when open."""
        if not self.attached or set_ma <= 0:
            return 0.0
        return min(set_ma, compliance_v / self.impedance_ohm * 1000.0)

    @property
    def no_load(self) -> bool:
        """The device's no-load flag (L12): open, Z > 5 kΩ, or Z > baseline + 50 %."""
        return (not self.attached
                or self.impedance_ohm > NO_LOAD_IMPEDANCE_OHM
                or self.impedance_ohm > self.baseline_ohm * (1.0 + NO_LOAD_RISE_FRACTION))


class BodyModel:
    """Per-channel electrode loads (channels numbered from 1).

    Args:
        channels: number of channels.
        impedance_ohm: initial impedance of every channel's load.

    Raises:
        InputError: a non-positive channel count or impedance.
    """

    def __init__(self, channels: int, impedance_ohm: float = DEFAULT_IMPEDANCE_OHM) -> None:
        if channels < 1:
            raise InputError(f"a body needs at least one channel, got {channels}")
        _check_impedance(impedance_ohm)
        self.channels = channels
        self._loads = [ElectrodeLoad(impedance_ohm, impedance_ohm) for _ in range(channels)]

    def load(self, channel: int) -> ElectrodeLoad:
        """The load on ``channel`` now.

        Raises:
            InputError: no such channel.
        """
        return self._loads[self._index(channel)]

    def set_impedance(self, channel: int, impedance_ohm: float) -> None:
        """Change the impedance of an attached or detached pad (lifting, drying, sweating).

        Raises:
            InputError: no such channel, or an impedance that is not finite and positive.
        """
        _check_impedance(impedance_ohm)
        i = self._index(channel)
        old = self._loads[i]
        self._loads[i] = ElectrodeLoad(impedance_ohm, old.baseline_ohm, old.attached)

    def detach(self, channel: int) -> None:
        """The pad falls off: open circuit.

        Raises:
            InputError: no such channel.
        """
        i = self._index(channel)
        old = self._loads[i]
        self._loads[i] = ElectrodeLoad(old.impedance_ohm, old.baseline_ohm, attached=False)

    def attach(self, channel: int) -> None:
        """The pad is (re)applied; its present impedance becomes the new L12 baseline.

        Raises:
            InputError: no such channel.
        """
        i = self._index(channel)
        old = self._loads[i]
        self._loads[i] = ElectrodeLoad(old.impedance_ohm, old.impedance_ohm, attached=True)

    def _index(self, channel: int) -> int:
        if not 1 <= channel <= self.channels:
            raise InputError(f"channel {channel} does not exist (1–{self.channels})")
        return channel - 1


def _check_impedance(impedance_ohm: float) -> None:
    if not (math.isfinite(impedance_ohm) and impedance_ohm > 0):
        raise InputError(f"impedance must be finite and positive, got {impedance_ohm} Ω")
