"""What both ScienceMode host drivers do the same way, around their own state machines.

:class:`ScienceModeHost` is the base of the RehaStim2 and P24 drivers: it holds the byte link
(opened once, its receive and loss handlers set first), the requests waiting for their acks
(:class:`~.acks.PendingAcks`), the receive path (frames decoded, bad ones counted, messages to
the driver's ``_on_message``; a request's usual ack, known byte for byte, taken without
decoding), the host lease (one lazy timer), and what happens when the driver falls
silent after a fault it cannot confirm away: it sends nothing more, so the device's own
watchdog or timeout ends output. Each driver keeps its handshake, commands, lease rules and
words.

This module must never import pyserial or the simulator, nor read the wall clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import ClassVar, Generic, Protocol, TypeVar

from ...contract import Driver, Telemetry, TelemetryKind
from ...errors import DeviceError, LinkLostError, ProtocolError
from ..links.base import ByteLink
from .acks import TIMER_SLACK_S, PendingAcks, Reply, ignore_result
from .receiver import BadFrame, Frame

__all__ = ["FrameSource", "PacketFrame", "ScienceModeHost"]

MessageT = TypeVar("MessageT", bound=Reply)
#: A command's wire frame for a packet number (both generations number their commands).
PacketFrame = Callable[[int], bytes]


class FrameSource(Protocol):
    """A generation's streaming frame decoder, as the host reads it."""

    def feed(self, data: bytes) -> Sequence[Frame | BadFrame]:
        """The frames ``data`` completes."""

    @property
    def in_frame(self) -> bool:
        """Whether a frame has started and not yet ended."""


class ScienceModeHost(Driver, Generic[MessageT]):
    """A ScienceMode device behind a byte link: the parts both generations share.

    Args:
        link: the serial port, pty or in-memory pipe (opened by :meth:`_open_link`).
        url: the URL the driver was opened from, for the journal.
        ack_timeout_s: how long to wait for each ack.
        decoder: the generation's frame decoder.
        decode: a good frame's payload → its message (raises ProtocolError if it is none).
    """

    #: The device, in sentences ("RehaStim2", "P24").
    device_name: ClassVar[str]

    def __init__(self, link: ByteLink, *, url: str, ack_timeout_s: float,
                 decoder: FrameSource,
                 decode: Callable[[bytes], MessageT]) -> None:
        super().__init__()
        self.link = link
        self.url = url
        self.ack_timeout_s = ack_timeout_s
        self.bad_frames = 0
        self._decoder = decoder
        self._decode = decode
        self._acks: PendingAcks[MessageT] = PendingAcks(ack_timeout_s, self._write,
                                                        self._usual_ack)
        self._lock = asyncio.Lock()
        self._opened = self._silenced = self._lost = False
        self._silence_reason = ""
        self._fault: str | None = None
        self._lease: asyncio.TimerHandle | None = None
        self._lease_end_s = 0.0

    async def _open_link(self) -> None:
        """Open the link the first time (its handlers are set before it opens).

        Raises:
            DeviceError: the port cannot be opened.
        """
        if not self._opened:
            self.link.on_receive(self._on_bytes)
            self.link.on_lost(self._on_lost)
            await self.link.open()
            self._opened = True

    def _write(self, frame: bytes) -> Awaitable[None]:
        # through self.link each time: a wire tap may replace the link after connect
        return self.link.write(frame)

    # ------------------------------------------------------------------ receiving

    def _usual_ack(self, command: int, packet_number: int) -> tuple[bytes, MessageT] | None:
        """The ack of ``command`` when it succeeds and has nothing else to report (result 0,
        no data), as wire frame and message; None when its ack carries data."""
        return None

    def _on_bytes(self, data: bytes) -> None:
        if not self._decoder.in_frame and self._acks.take_usual(data):
            return  # exactly the usual ack of a waiting request: nothing to decode
        for item in self._decoder.feed(data):
            if isinstance(item, BadFrame):
                self.bad_frames += 1
                continue
            try:
                message = self._decode(item.payload)
            except ProtocolError:
                self.bad_frames += 1  # unknown or malformed: not an ack
                continue
            self._on_message(message)

    def _on_message(self, message: MessageT) -> None:
        """A decoded message from the device."""
        raise NotImplementedError

    def _on_lost(self, reason: str) -> None:
        """The link went away."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the host lease

    def _arm_lease(self, end_s: float) -> None:
        """The lease now ends at ``end_s``. A renewal only moves the end: the timer, when it
        fires before the end, sets itself there again; a shorter lease moves it earlier. (A
        new timer per renewal would leave a cancelled one in the loop for every update, and
        the loop stops now and then to sweep them out.)"""
        self._lease_end_s = end_s
        if self._lease is None or self._lease.when() > end_s:
            self._cancel_lease()
            self._lease = asyncio.get_running_loop().call_at(end_s, self._lease_expired)

    def _lease_expired(self) -> None:
        self._lease = None
        if not self._lease_over():  # renewed since the timer was set
            self._lease = asyncio.get_running_loop().call_at(self._lease_end_s,
                                                             self._lease_expired)
            return
        if not self.stopped and self._output_on():
            task = asyncio.ensure_future(self._end_lease())
            task.add_done_callback(ignore_result)

    def _lease_over(self) -> bool:
        """Whether the lease has ended and no apply renewed it (for :meth:`_end_lease`, which
        runs later, behind the lock)."""
        return self._lease is None and self._now() >= self._lease_end_s - TIMER_SLACK_S

    def _output_on(self) -> bool:
        """Whether the device runs output the host asked for (what a lease stop ends)."""
        raise NotImplementedError

    async def _end_lease(self) -> None:
        """No apply renewed the lease: the host stops the output itself."""
        raise NotImplementedError

    def _cancel_lease(self) -> None:
        if self._lease is not None:
            self._lease.cancel()
            self._lease = None

    # ------------------------------------------------------------------ silence and errors

    def _fall_silent(self, reason: str) -> None:
        """Send nothing more, so the device's own watchdog or timeout ends output."""
        self._silenced = True
        self._silence_reason = reason
        self._cancel_lease()

    def _check_link(self) -> None:
        if self._lost:
            raise LinkLostError(f"the link to the {self.device_name} is lost")
        if self._silenced:
            raise DeviceError(f"the driver has fallen silent after a fault "
                              f"({self._silence_reason})")

    def _failure(self, error: DeviceError) -> DeviceError:
        """Journal a fault as telemetry (the session stops on it), then hand it back to raise."""
        self._tell("device_error", str(error))
        return error

    def _tell(self, kind: TelemetryKind, message: str, value: float | None = None) -> None:
        if self._listeners:  # every ack tells: build nothing when nobody listens
            self._emit(Telemetry(kind, self._now(), None, value, message))
