"""ScienceMode4 streaming receiver: bytes in any chunking → good frames and reported bad ones.

It follows the receiver algorithm of ``docs/protocols/sciencemode4.md`` §3: hunt for F0; take
``81 x`` as one pair everywhere, header included (raw F0, 0F and 81 occur as escaped header
values); a bare 0F ends the frame, a bare F0 restarts it; more than 1200 bytes without a stop are
dropped. A finished frame must have 81 at wire indexes 1, 3, 5 and 7, the LEN of its received
byte count and the CRC of its stuffed prefix and data. Frames are never split at the first 0F.

When a frame that was not interrupted fails, the dropped bytes are scanned again from their next
F0: a frame cut off right after an escape byte swallows the next frame's F0 as an escaped value.
That walk is the one both ScienceMode generations share (:mod:`..sciencemode.receiver`); this
module adds ScienceMode4's header, its checks and its frames' prefix.

This module is pure: no I/O, no clock, and :meth:`FrameDecoder.feed` never raises on any input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..sciencemode.receiver import BadFrame as _BadFrame
from ..sciencemode.receiver import BadFrameReason
from ..sciencemode.receiver import Frame as _Frame
from ..sciencemode.receiver import FrameDecoder as _FrameDecoder
from .framing import (
    ESCAPE_KEY,
    HEADER_LEN,
    MAX_FRAME_LEN,
    PREFIX_LEN,
    crc16_xmodem,
    split_prefix,
    unstuff,
)

__all__ = ["BadFrame", "BadFrameReason", "Frame", "FrameDecoder", "unwrap_frame"]

#: One whole frame as the byte walk reads it: the start, four escaped header pairs, then pairs
#: ``81 x`` and bytes other than F0/0F/81 up to the first bare stop. Such bytes are checked
#: at once (:meth:`FrameDecoder._whole`); anything else takes the byte walk.
_WHOLE_FRAME = re.compile(b"\xf0(?:\x81.){4}(?:\x81.|[^\x81\xf0\x0f])*\x0f", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Frame(_Frame):
    """A frame that passed the header, LEN and CRC checks.

    Attributes:
        payload: the unstuffed command prefix and data.
        wire: the bytes as received, start to stop byte.
    """

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
class BadFrame(_BadFrame):
    """Bytes that began like a frame but were dropped.

    Attributes:
        reason: why they were dropped.
        wire: the dropped bytes, from the start byte on.
        payload: for a frame that reached its stop byte with a whole header (LEN or CRC
            mismatch, too short), its unstuffed prefix and data, so that a device can echo the
            packet number and command in a transfer-error reply; otherwise ``None``.
    """

    @property
    def prefix(self) -> tuple[int, int] | None:
        """(packet number, command) of the payload, or None without two prefix bytes."""
        if self.payload is None or len(self.payload) < PREFIX_LEN:
            return None
        packet_number, command, _ = split_prefix(self.payload)
        return packet_number, command


class FrameDecoder(_FrameDecoder[Frame, BadFrame]):
    """Streaming receiver: bytes in any chunking → :class:`Frame` and :class:`BadFrame` items.

    Header escapes at wire indexes 1, 3, 5 and 7; LEN counts the whole frame; more than 1200
    bytes without a stop are dropped.

    Attributes:
        frames: number of good frames returned so far.
        bad_frames: number of :class:`BadFrame` items returned so far.
        discarded_bytes: bytes skipped while hunting for a start byte.
    """

    frame_type = Frame
    bad_frame_type = BadFrame
    header_escapes = (1, 3, 5, 7)
    header_len = HEADER_LEN
    max_buffer = MAX_FRAME_LEN  # the stop byte would be byte 1201 or later

    def _whole(self, data: bytes, start: int) -> Frame | None:
        """The good frame that starts at ``data[start]`` and ends in ``data``, read at once;
        None when there is none (the byte walk then reads the bytes, and reports what is
        wrong).

        The same frames as the walk, by the same rules: the pattern is the walk's path to a
        finished frame, and LEN, CRC and the prefix are checked as the walk does.
        """
        match = _WHOLE_FRAME.match(data, start)
        if match is None:
            return None
        wire = match.group()
        if len(wire) > MAX_FRAME_LEN:
            return None
        body = wire[HEADER_LEN:-1]
        if self._check(wire, body) is not None:
            return None
        payload = unstuff(body)
        if len(payload) < PREFIX_LEN:
            return None
        return Frame(payload, wire)

    def _check(self, wire: bytes, body: bytes) -> BadFrameReason | None:
        if ((wire[2] ^ ESCAPE_KEY) << 8) | (wire[4] ^ ESCAPE_KEY) != len(wire):
            return BadFrameReason.LENGTH_MISMATCH
        if ((wire[6] ^ ESCAPE_KEY) << 8) | (wire[8] ^ ESCAPE_KEY) != crc16_xmodem(body):
            return BadFrameReason.CHECKSUM_MISMATCH
        return None


def unwrap_frame(wire: bytes) -> bytes:
    """Check one complete wire frame, with nothing before or after it; return its payload.

    Raises:
        ProtocolError: if the bytes are not exactly one valid frame.
    """
    return FrameDecoder.unwrap(wire)
