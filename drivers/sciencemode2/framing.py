"""ScienceMode2 framing: start/stop bytes, byte stuffing, CRC-8 and LEN, and a streaming decoder.

A frame on the wire is ``F0 81 CRC^55 81 LEN^55 <stuffed payload> 0F``, where the payload is the
packet number, the command and its data, and CRC and LEN cover the stuffed payload exactly as
sent (``docs/protocols/sciencemode2.md`` §3). The same code serves the host driver and the
emulated device. The byte stuffing and the receiver walk are the ones both ScienceMode
generations share (:mod:`..sciencemode.stuffing`, :mod:`..sciencemode.receiver`); this module
adds what is ScienceMode2's own: the CRC-8, the 5-byte header and its checks.

This module is pure: it must never do I/O, read a clock or start a thread, and
:meth:`FrameDecoder.feed` must never raise on any input: bad bytes come back as
:class:`BadFrame` items and counters.
"""

from __future__ import annotations

from dataclasses import dataclass

from emsctl.errors import ProtocolError

from ..sciencemode.receiver import MIN_PAYLOAD_LEN, BadFrame, BadFrameReason
from ..sciencemode.receiver import Frame as _Frame
from ..sciencemode.receiver import FrameDecoder as _FrameDecoder
from ..sciencemode.stuffing import ESCAPE, ESCAPE_KEY, START, STOP, stuff, unstuff

__all__ = [
    "ESCAPE",
    "ESCAPE_KEY",
    "MAX_PAYLOAD_LEN",
    "MAX_STUFFED_PAYLOAD_LEN",
    "MIN_PAYLOAD_LEN",
    "START",
    "STOP",
    "BadFrame",
    "BadFrameReason",
    "Frame",
    "FrameDecoder",
    "crc8",
    "encode_frame",
    "stuff",
    "unstuff",
    "unwrap_frame",
]

MAX_PAYLOAD_LEN = 2 + 60
"""Command data is under 61 bytes [SM2 §2.2]."""
MAX_STUFFED_PAYLOAD_LEN = 2 * MAX_PAYLOAD_LEN
"""Even a client that escapes every byte stays within this."""
_HEADER_LEN = 5


def _make_crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _make_crc_table()


def crc8(data: bytes) -> int:
    """CRC-8/SMBUS: polynomial 0x07, init 0, no reflection, xorout 0 ("123456789" → 0xF4).

    The frame header carries this value ⊕ 0x55; that XOR is applied by the framing, not here.
    """
    crc = 0
    for byte in data:
        crc = _CRC_TABLE[crc ^ byte]
    return crc


def encode_frame(payload: bytes) -> bytes:
    """Wrap a payload (packet number, command, data) into a complete wire frame.

    Raises:
        ProtocolError: if the payload is shorter than 2 or longer than 62 bytes.
    """
    if not MIN_PAYLOAD_LEN <= len(payload) <= MAX_PAYLOAD_LEN:
        raise ProtocolError(
            f"a payload has {MIN_PAYLOAD_LEN}–{MAX_PAYLOAD_LEN} bytes, not {len(payload)}"
        )
    body = stuff(payload)
    # CRC and LEN are always sent escaped, whatever their value, so the header is 5 bytes.
    header = (START, ESCAPE, crc8(body) ^ ESCAPE_KEY, ESCAPE, len(body) ^ ESCAPE_KEY)
    return bytes(header) + body + bytes((STOP,))


@dataclass(frozen=True, slots=True)
class Frame(_Frame):
    """A frame that passed the LEN and CRC checks.

    Attributes:
        payload: the un-escaped packet number, command and data.
        wire: the bytes as received, start to stop byte.
    """

    @property
    def packet_number(self) -> int:
        """The packet number (payload byte 0)."""
        return self.payload[0]

    @property
    def command(self) -> int:
        """The command number (payload byte 1)."""
        return self.payload[1]


class FrameDecoder(_FrameDecoder[Frame, BadFrame]):
    """Streaming receiver: bytes in any chunking → :class:`Frame` and :class:`BadFrame` items.

    It follows the receiver algorithm of docs/protocols/sciencemode2.md §3 (the walk of
    :class:`~..sciencemode.receiver.FrameDecoder`), with CRC and LEN at wire indexes 2 and 4 and
    at most 124 stuffed payload bytes.

    Attributes:
        frames: number of good frames returned so far.
        bad_frames: number of :class:`BadFrame` items returned so far.
        discarded_bytes: bytes skipped while hunting for a start byte.
    """

    frame_type = Frame
    bad_frame_type = BadFrame
    header_escapes = (1, 3)
    header_len = _HEADER_LEN
    max_buffer = _HEADER_LEN + MAX_STUFFED_PAYLOAD_LEN + 1

    def _whole(self, data: bytes, start: int) -> Frame | None:
        """Fast path for the common case: a complete, valid frame whose stuffed body holds no
        escape, start or stop byte (for those bytes the walk would append every byte, end at
        the first stop byte after the header and return this very :class:`Frame`). Everything
        else (escapes in the body, split or bad frames) returns None for the walk. Profiled: the
        walk cost ~10 µs a frame, a third of a 20-minute ``sim+sciencemode2`` session's codec.
        """
        stop = data.find(STOP, start + _HEADER_LEN, start + _HEADER_LEN + MAX_STUFFED_PAYLOAD_LEN)
        if (stop < 0 or data[start + 1] != ESCAPE or data[start + 3] != ESCAPE
                or data.find(START, start + _HEADER_LEN, stop) >= 0
                or data.find(ESCAPE, start + _HEADER_LEN, stop) >= 0):
            return None
        body = data[start + _HEADER_LEN:stop]
        if (len(body) < MIN_PAYLOAD_LEN or len(body) != data[start + 4] ^ ESCAPE_KEY
                or crc8(body) != data[start + 2] ^ ESCAPE_KEY):
            return None
        return Frame(body, data[start:stop + 1])  # no escapes: the payload is the body

    def _check(self, wire: bytes, body: bytes) -> BadFrameReason | None:
        if len(body) != wire[4] ^ ESCAPE_KEY:
            return BadFrameReason.LENGTH_MISMATCH
        if crc8(body) != wire[2] ^ ESCAPE_KEY:
            return BadFrameReason.CHECKSUM_MISMATCH
        return None


def unwrap_frame(wire: bytes) -> bytes:
    """Check one complete wire frame, with nothing before or after it, and return its payload.

    Raises:
        ProtocolError: if the bytes are not exactly one valid frame.
    """
    return FrameDecoder.unwrap(wire)
