"""Reading ScienceMode traffic as the conformance facts of both generations do.

The wire tap (:class:`~emsctl.wiretap.ByteTap`) records what crosses a serial link; the facts
of a ScienceMode family read it frame by frame. :class:`FrameSplitter` cuts the bytes into
whole frames by the receiver rules both generations share (``81 x`` is one pair, header
included; a bare ``0F`` ends a frame, a bare ``F0`` restarts one), and :class:`FrameReader`
reads each recorded unit as one generation's frame and message.

Reads only recorded bytes; no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar, Generic, Protocol, TypeVar

from ...errors import ProtocolError
from ...wiretap import WireEvent
from .receiver import BadFrame, Frame
from .stuffing import ESCAPE, START, STOP

__all__ = ["FrameReader", "FrameSplitter", "NumberedFrame"]


class FrameSplitter:
    """Cuts received bytes into whole frames by the receiver rules; bytes outside frames pass
    as they are."""

    #: A unit that reaches this many bytes without its stop byte ends there (None: no bound).
    max_len: ClassVar[int | None] = None

    def __init__(self) -> None:
        self._frame = bytearray()
        self._escaped = False

    def feed(self, data: bytes) -> list[bytes]:
        """The frames (and stray bytes) ``data`` completes, in order."""
        out: list[bytes] = []
        stray = bytearray()
        for byte in data:
            if not self._frame:
                if byte == START:
                    if stray:
                        out.append(bytes(stray))
                        stray.clear()
                    self._frame.append(byte)
                else:
                    stray.append(byte)
                continue
            if self._escaped:
                self._frame.append(byte)
                self._escaped = False
            elif byte == ESCAPE:
                self._frame.append(byte)
                self._escaped = True
            elif byte == START:  # a bare start restarts the frame: what came before is stray
                out.append(bytes(self._frame))
                self._frame = bytearray((byte,))
            else:
                self._frame.append(byte)
                if byte == STOP:
                    out.append(bytes(self._frame))
                    self._frame.clear()
            if self.max_len is not None and len(self._frame) >= self.max_len:
                out.append(bytes(self._frame))
                self._frame.clear()
                self._escaped = False
        if stray:
            out.append(bytes(stray))
        return out


class NumberedFrame(Protocol):
    """A generation's good frame: its packet number and command."""

    @property
    def packet_number(self) -> int:
        """The packet number."""

    @property
    def command(self) -> int:
        """The command number."""

    @property
    def payload(self) -> bytes:
        """The un-escaped payload."""


FrameT = TypeVar("FrameT", bound=NumberedFrame)
MessageT = TypeVar("MessageT")


class _Decoder(Protocol):
    def feed(self, data: bytes) -> Sequence[Frame | BadFrame]:
        """Frames completed by ``data``."""


class FrameReader(Generic[FrameT, MessageT]):
    """Reads recorded units as one generation's frames and messages.

    Args:
        decoder: makes a fresh frame decoder of the generation.
        decode: a frame's payload → its message (raises :class:`ProtocolError` when it is none).
    """

    def __init__(self, decoder: Callable[[], _Decoder],
                 decode: Callable[[bytes], MessageT]) -> None:
        self._decoder = decoder
        self._decode = decode

    def decode(self, data: bytes) -> tuple[FrameT | None, MessageT | None, str]:
        """The first frame in ``data``, its message, and a sentence when it is not one."""
        for item in self._decoder().feed(data):
            if isinstance(item, BadFrame):
                return None, None, f"bad frame ({item.reason})"
            frame: FrameT = item  # type: ignore[assignment]  # the generation's own frames
            try:
                return frame, self._decode(frame.payload), ""
            except ProtocolError as exc:
                return frame, None, f"command {frame.command}: {exc}"
        return None, None, "not a frame"

    def command(self, data: bytes) -> int | None:
        """The command of the first frame in ``data``, or None."""
        frame, _message, _why = self.decode(data)
        return None if frame is None else frame.command

    def messages(self, events: Sequence[WireEvent], *, host: bool | None = None,
                 delivered: bool = True) -> list[tuple[WireEvent, FrameT, MessageT | None]]:
        """Every recorded frame (from the host, the device, or both; by default only those
        delivered) with its message."""
        out = []
        for event in events:
            if ((host is not None and event.from_host != host)
                    or (delivered and not event.delivered)):
                continue
            frame, message, _why = self.decode(event.data)
            if frame is not None:
                out.append((event, frame, message))
        return out
