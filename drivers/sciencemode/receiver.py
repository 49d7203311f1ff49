"""The streaming receiver of ScienceMode frames: bytes in any chunking → good and bad frames.

Both generations receive the same way (``docs/protocols/sciencemode2.md`` §3,
``docs/protocols/sciencemode4.md`` §3): hunt for F0; take ``81 x`` as one pair everywhere,
header included (its values always travel as escaped pairs); a bare 0F ends the frame and a
bare F0 restarts it; too many bytes without a stop are dropped. When a frame that was not
interrupted fails its checks, the dropped bytes are scanned again from their next F0, because a
frame cut off right after an escape byte swallows the next frame's F0 as an escaped value.

:class:`FrameDecoder` is that walk. Each generation's decoder says where its header escapes
stand, how long a frame may grow, how LEN and the CRC are checked, and how a whole good frame is
read at once (the fast path: the same frames as the walk, by the same rules).

This module is pure: no I/O, no clock, and :meth:`FrameDecoder.feed` never raises on any input.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Generic, TypeVar

from ...errors import ProtocolError
from .stuffing import ESCAPE, START, STOP, unstuff

__all__ = ["MIN_PAYLOAD_LEN", "BadFrame", "BadFrameReason", "Frame", "FrameDecoder"]

MIN_PAYLOAD_LEN = 2
"""Packet number and command: what every frame carries before its data."""


class BadFrameReason(StrEnum):
    """Why the streaming decoder dropped the bytes of a frame."""

    MALFORMED_HEADER = "malformed header"
    """A header value did not come as an escaped pair."""
    INTERRUPTED = "interrupted"
    """A bare start byte arrived before the stop byte; the frame restarted there."""
    OVERSIZED = "oversized"
    """More bytes than any valid frame can have, and no stop byte."""
    LENGTH_MISMATCH = "length mismatch"
    CHECKSUM_MISMATCH = "checksum mismatch"
    TOO_SHORT = "too short"
    """LEN and CRC were right but the payload lacks a packet number or command."""


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame that passed the header, LEN and CRC checks.

    Attributes:
        payload: the un-escaped packet number, command and data.
        wire: the bytes as received, start to stop byte.
    """

    payload: bytes
    wire: bytes


@dataclass(frozen=True, slots=True)
class BadFrame:
    """Bytes that began like a frame but were dropped.

    Attributes:
        reason: why they were dropped.
        wire: the dropped bytes, from the start byte on.
        payload: for a frame that reached its stop byte with a whole header (LEN or CRC
            mismatch, too short), its un-escaped payload, so that a device can echo the packet
            number and command in its transfer-error reply; otherwise ``None``.
    """

    reason: BadFrameReason
    wire: bytes
    payload: bytes | None = None


FrameT = TypeVar("FrameT", bound=Frame)
BadFrameT = TypeVar("BadFrameT", bound=BadFrame)


class FrameDecoder(Generic[FrameT, BadFrameT]):
    """Streaming receiver: bytes in any chunking → good frames and :class:`BadFrame` items.

    A generation's decoder sets the class attributes and fills :meth:`_check` and
    :meth:`_whole`.

    Attributes:
        frames: number of good frames returned so far.
        bad_frames: number of bad frames returned so far.
        discarded_bytes: bytes skipped while hunting for a start byte.
    """

    #: The good frames this decoder returns.
    frame_type: ClassVar[type[Frame]]
    #: The bad frames this decoder returns.
    bad_frame_type: ClassVar[type[BadFrame]]
    #: Wire indexes where a header escape byte must stand.
    header_escapes: ClassVar[tuple[int, ...]]
    #: Bytes from the start byte to the first payload byte.
    header_len: ClassVar[int]
    #: A frame that reaches this many bytes without its stop byte is dropped as oversized.
    max_buffer: ClassVar[int]

    def __init__(self) -> None:
        """Create a decoder that hunts for a start byte."""
        self.frames = 0
        self.bad_frames = 0
        self.discarded_bytes = 0
        self._buffer = bytearray()  # the frame so far, from its start byte on; empty = hunting
        self._escaped = False

    @classmethod
    def unwrap(cls, wire: bytes) -> bytes:
        """Check one complete wire frame, with nothing before or after it; return its payload.

        Raises:
            ProtocolError: if the bytes are not exactly one valid frame.
        """
        decoder = cls()
        items = decoder.feed(wire)
        if decoder.discarded_bytes or decoder.in_frame or len(items) != 1:
            raise ProtocolError(f"{wire.hex(' ')} is not exactly one frame")
        item = items[0]
        if isinstance(item, BadFrame):
            raise ProtocolError(f"bad frame ({item.reason}): {wire.hex(' ')}")
        return item.payload

    @property
    def in_frame(self) -> bool:
        """Whether a frame has started and not yet ended."""
        return bool(self._buffer)

    def reset(self) -> None:
        """Drop any partial frame and hunt for the next start byte; counters are kept."""
        self._buffer.clear()
        self._escaped = False

    def feed(self, data: bytes) -> list[FrameT | BadFrameT]:
        """Consume received bytes and return the frames they complete, in order.

        Never raises on any input: malformed bytes become bad-frame items.
        """
        out: list[FrameT | BadFrameT] = []
        data = bytes(data)
        pos, end = 0, len(data)
        while pos < end:
            if not self._buffer:  # hunting: skip to the next start byte in one search
                start = data.find(START, pos)
                if start < 0:
                    self.discarded_bytes += end - pos
                    break
                self.discarded_bytes += start - pos
                pos = start
                whole = self._whole(data, pos)
                if whole is not None:
                    out.append(whole)
                    pos += len(whole.wire)
                    continue
            pos = self._walk(data, pos, out)
        if out:
            bad = sum(isinstance(item, BadFrame) for item in out)
            self.frames += len(out) - bad
            self.bad_frames += bad
        return out

    def _whole(self, data: bytes, start: int) -> FrameT | None:
        """The good frame that starts at ``data[start]`` and ends in ``data``, read at once;
        None when there is none or the case is unusual (the byte walk then reads the bytes, and
        reports what is wrong). It must return exactly the frame the walk would."""
        raise NotImplementedError

    def _check(self, wire: bytes, body: bytes) -> BadFrameReason | None:
        """Why a frame that reached its stop byte fails LEN or CRC (``body``: its stuffed bytes
        between header and stop), or None."""
        raise NotImplementedError

    def _walk(self, data: bytes, pos: int, out: list[FrameT | BadFrameT]) -> int:
        """Step byte by byte from ``data[pos]`` until the frame in progress has ended and no
        dropped bytes wait for a re-scan; return the position of the next unread byte."""
        # Bytes to re-scan go on a stack of iterators and are consumed before the input
        # resumes. Each re-scan is shorter than the frame it came from, so this ends.
        while pos < len(data):
            replay = self._step(data[pos], out)
            pos += 1
            stack: list[Iterator[int]] = [iter(replay)] if replay else []
            while stack:
                for byte in stack[-1]:
                    again = self._step(byte, out)
                    if again:
                        stack.append(iter(again))
                        break
                else:
                    stack.pop()
            if not self._buffer:
                break
        return pos

    def _step(self, byte: int, out: list[FrameT | BadFrameT]) -> bytes:
        """Process one byte; return bytes to re-scan (non-empty only after a failed frame)."""
        buffer = self._buffer
        if not buffer:
            if byte == START:
                buffer.append(byte)
            else:
                self.discarded_bytes += 1
            return b""
        if self._escaped:  # the byte after 0x81 is a value, whatever it is
            self._escaped = False
            buffer.append(byte)
        elif byte == START:
            out.append(self._bad(BadFrameReason.INTERRUPTED, bytes(buffer)))
            self.reset()
            buffer.append(byte)
            return b""
        elif len(buffer) in self.header_escapes:  # where a header escape byte must stand
            buffer.append(byte)
            if byte != ESCAPE:
                return self._fail(BadFrameReason.MALFORMED_HEADER, None, out)
            self._escaped = True
        elif byte == STOP:
            buffer.append(byte)
            return self._finish(out)
        else:
            buffer.append(byte)
            self._escaped = byte == ESCAPE
        if len(buffer) >= self.max_buffer:
            return self._fail(BadFrameReason.OVERSIZED, None, out)
        return b""

    def _finish(self, out: list[FrameT | BadFrameT]) -> bytes:
        wire = bytes(self._buffer)
        body = wire[self.header_len:-1]
        # The walk guarantees a body with no bare F0/0F and no trailing lone escape byte.
        payload = unstuff(body)
        problem = self._check(wire, body)
        if problem is not None:
            return self._fail(problem, payload, out)
        self.reset()
        if len(payload) < MIN_PAYLOAD_LEN:
            out.append(self._bad(BadFrameReason.TOO_SHORT, wire, payload))
        else:
            out.append(self._good(payload, wire))
        return b""

    def _fail(self, reason: BadFrameReason, payload: bytes | None,
              out: list[FrameT | BadFrameT]) -> bytes:
        wire = bytes(self._buffer)
        out.append(self._bad(reason, wire, payload))
        self.reset()
        restart = wire.find(START, 1)
        return wire[restart:] if restart > 0 else b""

    def _good(self, payload: bytes, wire: bytes) -> FrameT:
        return self.frame_type(payload, wire)  # type: ignore[return-value]

    def _bad(self, reason: BadFrameReason, wire: bytes, payload: bytes | None = None
             ) -> BadFrameT:
        return self.bad_frame_type(reason, wire, payload)  # type: ignore[return-value]
