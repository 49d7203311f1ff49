"""ScienceMode4 streaming receiver: bytes in any chunking → good frames and reported bad ones.

It follows the receiver algorithm of ``docs/protocols/sciencemode4.md`` §3: hunt for F0; take
``81 x`` as one pair everywhere, header included (raw F0, 0F and 81 occur as escaped header
values); a bare 0F ends the frame, a bare F0 restarts it; more than 1200 bytes without a stop are
dropped. A finished frame must have 81 at wire indexes 1, 3, 5 and 7, the LEN of its received
byte count and the CRC of its stuffed prefix and data. Frames are never split at the first 0F.

When a frame that was not interrupted fails, the dropped bytes are scanned again from their next
F0: a frame cut off right after an escape byte swallows the next frame's F0 as an escaped value.

This module is pure: no I/O, no clock, and :meth:`FrameDecoder.feed` never raises on any input.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from ...errors import ProtocolError
from .framing import (
    ESCAPE,
    ESCAPE_KEY,
    HEADER_LEN,
    MAX_FRAME_LEN,
    PREFIX_LEN,
    START,
    STOP,
    crc16_xmodem,
    split_prefix,
    unstuff,
)

__all__ = ["BadFrame", "BadFrameReason", "Frame", "FrameDecoder", "unwrap_frame"]

_HEADER_ESCAPE_INDEXES = (1, 3, 5, 7)
#: One whole frame as the byte walk reads it: the start, four escaped header pairs, then pairs
#: ``81 x`` and bytes other than F0/0F/81 up to the first bare stop. Such bytes are checked
#: at once (:meth:`FrameDecoder._whole`); anything else takes the byte walk.
_WHOLE_FRAME = re.compile(b"\xf0(?:\x81.){4}(?:\x81.|[^\x81\xf0\x0f])*\x0f", re.DOTALL)


class BadFrameReason(StrEnum):
    """Why the streaming decoder dropped the bytes of a frame."""

    MALFORMED_HEADER = "malformed header"
    """A header value did not come as an escaped pair (index 1, 3, 5 or 7 was not 0x81)."""
    INTERRUPTED = "interrupted"
    """A bare start byte arrived before the stop byte; the frame restarted there."""
    OVERSIZED = "oversized"
    """More than 1200 bytes without a stop byte."""
    LENGTH_MISMATCH = "length mismatch"
    CHECKSUM_MISMATCH = "checksum mismatch"
    TOO_SHORT = "too short"
    """LEN and CRC were right but fewer than two prefix bytes followed the header."""


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame that passed the header, LEN and CRC checks.

    Attributes:
        payload: the unstuffed command prefix and data.
        wire: the bytes as received, start to stop byte.
    """

    payload: bytes
    wire: bytes

    @property
    def packet_number(self) -> int:
        """The 6-bit packet number (prefix byte 0, bits 7–2)."""
        return self.payload[0] >> 2

    @property
    def command(self) -> int:
        """The 10-bit command number."""
        return ((self.payload[0] & 0x03) << 8) | self.payload[1]

    @property
    def data(self) -> bytes:
        """The unstuffed command data after the prefix."""
        return self.payload[PREFIX_LEN:]


@dataclass(frozen=True, slots=True)
class BadFrame:
    """Bytes that began like a frame but were dropped.

    Attributes:
        reason: why they were dropped.
        wire: the dropped bytes, from the start byte on.
        payload: for a frame that reached its stop byte with a whole header (LEN or CRC
            mismatch, too short), its unstuffed prefix and data, so that a device can echo the
            packet number and command in a transfer-error reply; otherwise ``None``.
    """

    reason: BadFrameReason
    wire: bytes
    payload: bytes | None = None

    @property
    def prefix(self) -> tuple[int, int] | None:
        """(packet number, command) of the payload, or None without two prefix bytes."""
        if self.payload is None or len(self.payload) < PREFIX_LEN:
            return None
        packet_number, command, _ = split_prefix(self.payload)
        return packet_number, command


class FrameDecoder:
    """Streaming receiver: bytes in any chunking → :class:`Frame` and :class:`BadFrame` items.

    Attributes:
        frames: number of good frames returned so far.
        bad_frames: number of :class:`BadFrame` items returned so far.
        discarded_bytes: bytes skipped while hunting for a start byte.
    """

    def __init__(self) -> None:
        """Create a decoder that hunts for a start byte."""
        self.frames = 0
        self.bad_frames = 0
        self.discarded_bytes = 0
        self._buffer = bytearray()  # the frame so far, from its start byte on; empty = hunting
        self._escaped = False

    @property
    def in_frame(self) -> bool:
        """Whether a frame has started and not yet ended."""
        return bool(self._buffer)

    def reset(self) -> None:
        """Drop any partial frame and hunt for the next start byte; counters are kept."""
        self._buffer.clear()
        self._escaped = False

    def feed(self, data: bytes) -> list[Frame | BadFrame]:
        """Consume received bytes and return the frames they complete, in order.

        Never raises on any input: malformed bytes become :class:`BadFrame` items.
        """
        out: list[Frame | BadFrame] = []
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

    @staticmethod
    def _whole(data: bytes, pos: int) -> Frame | None:
        """The good frame that starts at ``data[pos]`` and ends in ``data``, read at once; None
        when there is none (the byte walk then reads the bytes, and reports what is wrong).

        The same frames as the walk, by the same rules: the pattern is the walk's path to a
        finished frame, and LEN, CRC and the prefix are checked as :meth:`_finish` does.
        """
        match = _WHOLE_FRAME.match(data, pos)
        if match is None:
            return None
        wire = match.group()
        if len(wire) > MAX_FRAME_LEN:
            return None
        length = ((wire[2] ^ ESCAPE_KEY) << 8) | (wire[4] ^ ESCAPE_KEY)
        crc = ((wire[6] ^ ESCAPE_KEY) << 8) | (wire[8] ^ ESCAPE_KEY)
        body = wire[HEADER_LEN:-1]
        if length != len(wire) or crc16_xmodem(body) != crc:
            return None
        payload = unstuff(body)
        if len(payload) < PREFIX_LEN:
            return None
        return Frame(payload, wire)

    def _walk(self, data: bytes, pos: int, out: list[Frame | BadFrame]) -> int:
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

    def _step(self, byte: int, out: list[Frame | BadFrame]) -> bytes:
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
            out.append(BadFrame(BadFrameReason.INTERRUPTED, bytes(buffer)))
            self.reset()
            buffer.append(byte)
            return b""
        elif len(buffer) in _HEADER_ESCAPE_INDEXES:  # where a header escape byte must stand
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
        if len(buffer) >= MAX_FRAME_LEN:  # the stop byte would be byte 1201 or later
            return self._fail(BadFrameReason.OVERSIZED, None, out)
        return b""

    def _finish(self, out: list[Frame | BadFrame]) -> bytes:
        wire = bytes(self._buffer)
        length = ((wire[2] ^ ESCAPE_KEY) << 8) | (wire[4] ^ ESCAPE_KEY)
        crc = ((wire[6] ^ ESCAPE_KEY) << 8) | (wire[8] ^ ESCAPE_KEY)
        body = wire[HEADER_LEN:-1]
        # The walk guarantees a body with no bare F0/0F and no trailing lone escape byte.
        payload = unstuff(body)
        if length != len(wire):
            return self._fail(BadFrameReason.LENGTH_MISMATCH, payload, out)
        if crc16_xmodem(body) != crc:
            return self._fail(BadFrameReason.CHECKSUM_MISMATCH, payload, out)
        self.reset()
        if len(payload) < PREFIX_LEN:
            out.append(BadFrame(BadFrameReason.TOO_SHORT, wire, payload))
        else:
            out.append(Frame(payload, wire))
        return b""

    def _fail(
        self, reason: BadFrameReason, payload: bytes | None, out: list[Frame | BadFrame]
    ) -> bytes:
        wire = bytes(self._buffer)
        out.append(BadFrame(reason, wire, payload))
        self.reset()
        restart = wire.find(START, 1)
        return wire[restart:] if restart > 0 else b""


def unwrap_frame(wire: bytes) -> bytes:
    """Check one complete wire frame, with nothing before or after it; return its payload.

    Raises:
        ProtocolError: if the bytes are not exactly one valid frame.
    """
    decoder = FrameDecoder()
    items = decoder.feed(wire)
    if decoder.discarded_bytes or decoder.in_frame or len(items) != 1:
        raise ProtocolError(f"{wire.hex(' ')} is not exactly one frame")
    item = items[0]
    if isinstance(item, BadFrame):
        raise ProtocolError(f"bad frame ({item.reason}): {wire.hex(' ')}")
    return item.payload
