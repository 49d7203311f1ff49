"""The emulated P24 served on a pseudo-terminal: the factory :mod:`..pty` calls.

:func:`pty_device` has the shape of :data:`~emsctl.simulator.pty.PtyDeviceFactory`. The pty
server already puts the pty into raw mode, keeps its slave open and writes each reply with one
``write()``; the P24 itself emits nothing but reply frames (``docs/protocols/sciencemode4.md``
§2, §13), which is what third-party clients that search for ``F0 81`` need.
"""

from __future__ import annotations

from collections.abc import Callable

from ...drivers.sciencemode4.protocol import CHANNEL_COUNT
from ...errors import InputError
from ..body import BodyModel
from ..model import SimulatedStimulator
from ..pty import Log, PtyDeviceOptions, Trace
from .sciencemode4 import ML_TIMEOUT_S, P24, p24_spec

__all__ = ["pty_device"]


def pty_device(options: PtyDeviceOptions, write: Callable[[bytes], None], trace: Trace,
               log: Log) -> P24:
    """Build an emulated P24 for a pty.

    The P24's mid-level timeout is fixed and it has one behaviour, so a watchdog, a profile
    other than ``strict`` and extra options are refused.

    Raises:
        InputError: any of those options.
    """
    if options.extras:
        raise InputError(f"sciencemode4 takes no extra options, got {sorted(options.extras)}")
    if options.watchdog_s is not None:
        raise InputError(f"the P24's mid-level timeout is fixed at {ML_TIMEOUT_S:g} s")
    if options.profile != "strict":
        raise InputError(f"sciencemode4 has only the strict profile, not {options.profile!r}")
    device = SimulatedStimulator(p24_spec(), BodyModel(CHANNEL_COUNT, options.impedance_ohm))
    return P24(device, write, trace=trace, log=log)
