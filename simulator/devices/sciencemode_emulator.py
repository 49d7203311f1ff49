"""What the two emulated ScienceMode devices share: frames in, replies out, fault hooks.

:class:`ScienceModeEmulator` is the base of :class:`~.sciencemode2.RehaStim2` and
:class:`~.sciencemode4.P24`. Host bytes go through the generation's frame decoder while the
device is powered (each good frame and each bad one to the subclass, counted); replies leave
one frame per ``write`` call after the configured delay. The fault hooks — ``busy`` (the
device's busy answer to every command it may refuse), ``drop_replies`` and
``reply_extra_delay_s`` — are switched by a fault plan through :attr:`faults`, whose other
kinds act on the output stage. Unsolicited frames (the RehaStim2's Init and StimulationError)
are never withheld or delayed.

Runs on the running asyncio loop (virtual or real time); never reads the wall clock, sleeps or
does I/O itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from typing import Generic, TypeVar

from ...drivers.sciencemode.receiver import BadFrame, Frame, FrameDecoder
from ..fault_targets import DeviceFaultInjector, FaultRouter, Route, reply_routes
from ..model import ChannelOutput, SimulatedStimulator

__all__ = ["Log", "ScienceModeEmulator", "Trace"]

Trace = Callable[[str, bytes, str], None]
"""trace(direction, wire bytes, one-line description) for every frame in and out."""
Log = Callable[[str], None]

FrameT = TypeVar("FrameT", bound=Frame)
BadFrameT = TypeVar("BadFrameT", bound=BadFrame)


class ScienceModeEmulator(Generic[FrameT, BadFrameT]):
    """An emulated ScienceMode device on an output stage.

    Args:
        device: the output stage.
        write: called with each outgoing frame (one call per frame).
        decoder: the generation's frame decoder.
        fault_kinds: what a fault plan can do to the device itself.
        fault_routes: the device's own fault kinds besides the reply hooks.
        trace: optional frame log, see :data:`Trace`.
        log: optional human log.
    """

    def __init__(self, device: SimulatedStimulator, write: Callable[[bytes], None],
                 decoder: FrameDecoder[FrameT, BadFrameT], *, fault_kinds: Iterable[str],
                 fault_routes: Mapping[str, Route] | None = None, trace: Trace | None = None,
                 log: Log | None = None) -> None:
        self.device = device
        self.decoder = decoder
        self._write = write
        self._trace = trace
        self._log = log
        self.powered = False
        #: Fault hooks: the busy answer to every command that may get it; drop or delay replies.
        self.busy = False
        self.drop_replies = False
        self.reply_extra_delay_s = 0.0
        #: The fault target: the reply hooks above and ``fault_routes``; the rest on the
        #: output stage.
        self.faults = FaultRouter(fault_kinds, device.spec.channels,
                                  {**reply_routes(self), **(fault_routes or {})},
                                  rest=DeviceFaultInjector(device).route())
        self.frames_in = self.bad_frames_in = self.replies_dropped = 0

    @property
    def reply_delay_s(self) -> float:
        """How long the device takes to answer a command (its configuration)."""
        raise NotImplementedError

    def reset(self) -> None:
        """A reset (brown-out), through the model's event: what it does is the device's own."""
        self.device.reset()

    def outputs(self) -> tuple[ChannelOutput, ...]:
        """Every channel's output now."""
        return self.device.output_now()

    # ------------------------------------------------------------------ bytes in

    def receive(self, data: bytes) -> None:
        """Consume bytes from the host; any input is safe (HZ-12)."""
        if not self.powered:
            return
        for item in self.decoder.feed(data):
            if isinstance(item, BadFrame):
                self.bad_frames_in += 1
                self._bad_frame(item)
            else:
                self.frames_in += 1
                self._frame(item)

    def _bad_frame(self, bad: BadFrameT) -> None:
        """A frame that failed the decoder's checks (already counted)."""
        raise NotImplementedError

    def _frame(self, frame: FrameT) -> None:
        """A good frame from the host (already counted)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ bytes out

    def _reply(self, wire: bytes, text: str, *, extra_delay_s: float = 0.0,
               unsolicited: bool = False) -> None:
        """Send one frame: withheld while replies are dropped, after the reply delay (never
        for what the device sends of its own accord)."""
        if self.drop_replies and not unsolicited:
            self.replies_dropped += 1
            self._trace_frame("device→host", wire, f"{text} (dropped by fault)")
            return
        delay_s = 0.0 if unsolicited else \
            self.reply_delay_s + self.reply_extra_delay_s + extra_delay_s
        if delay_s > 0:
            asyncio.get_running_loop().call_later(delay_s, self._emit, wire, text)
        else:
            self._emit(wire, text)

    def _emit(self, wire: bytes, text: str) -> None:
        if self.powered:
            self._trace_frame("device→host", wire, text)
            self._write(wire)

    def _trace_frame(self, direction: str, wire: bytes, text: str) -> None:
        if self._trace is not None:
            self._trace(direction, wire, text)

    def _say(self, text: str) -> None:
        if self._log is not None:
            self._log(text)
