"""The emulated P24 served on a pseudo-terminal: the factory :mod:`..pty` calls.

:func:`pty_device` has the shape of :data:`~emsctl.simulator.pty.PtyDeviceFactory`. The pty
server already puts the pty into raw mode, keeps its slave open and writes each reply with one
``write()``; the P24 itself emits nothing but reply frames (``docs/protocols/sciencemode4.md``
docs/protocols/sciencemode4.md §2, §13), which is what third-party clients that search for ``F0 81``
need.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ...drivers.sciencemode4.protocol import CHANNEL_COUNT
from ...errors import InputError
from ..body import BodyModel
from ..model import ChannelOutput, SimulatedStimulator
from ..pty import Log, PtyDeviceOptions, Trace
from .sciencemode4 import ML_TIMEOUT_S, P24, p24_spec

__all__ = ["P24OnPty", "pty_device"]

_WATCH_S = 0.001


class P24OnPty:
    """The emulated P24 as the pty server sees it, logging its output like the other
    emulations: one ``output ch1 … mA …`` line per change and ``output zero`` when every
    channel has stopped (the 2 s timeout ends output without any input, so the outputs are
    looked at every millisecond).

    Args:
        p24: the emulated device.
        log: the server's event log.
    """

    def __init__(self, p24: P24, log: Log) -> None:
        self.p24 = p24
        self._log = log
        self._shown = ""
        self._watch: asyncio.TimerHandle | None = None

    def power_on(self) -> None:
        """Plug in; start watching the outputs."""
        self.p24.power_on()
        self._watch_outputs()

    def power_off(self) -> None:
        """Unplug: output zero at once."""
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        self.p24.power_off()
        self._show()

    def receive(self, data: bytes) -> None:
        """Bytes from the client."""
        self.p24.receive(data)
        self._show()

    def outputs(self) -> tuple[ChannelOutput, ...]:
        """Every channel's output now."""
        return self.p24.outputs()

    def status(self) -> str:
        """Level, high voltage, active channels and counters."""
        return self.p24.status()

    def _watch_outputs(self) -> None:
        self._show()
        self._watch = asyncio.get_running_loop().call_later(_WATCH_S, self._watch_outputs)

    def _show(self) -> None:
        shown = ", ".join(f"ch{c} {o.amplitude_ma:g} mA {o.pulse_width_us:g} µs "
                          f"{o.frequency_hz:.2f} Hz"
                          for c, o in enumerate(self.p24.outputs(), 1) if o.amplitude_ma > 0)
        if shown != self._shown:
            self._shown = shown
            self._log(f"output {shown or 'zero'}")


def pty_device(options: PtyDeviceOptions, write: Callable[[bytes], None], trace: Trace,
               log: Log) -> P24OnPty:
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
    return P24OnPty(P24(device, write, trace=trace, log=log), log)
