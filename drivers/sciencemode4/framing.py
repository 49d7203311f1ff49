"""ScienceMode4 framing: command prefix, byte stuffing, CRC-16/XMODEM, LEN, and the frame encoder.

A frame on the wire is ``F0 81 LEN_hi^55 81 LEN_lo^55 81 CRC_hi^55 81 CRC_lo^55 <stuffed> 0F``
(``docs/protocols/sciencemode4.md`` §3). The stuffed part is the 2-byte command prefix (6-bit
packet number, 10-bit command) followed by the command data. LEN counts every wire byte of the
frame, start and stop included; the CRC covers the stuffed prefix and data exactly as sent. The
four header values are always sent as escaped pairs, so the header is always 9 bytes.

The byte stuffing is the one both ScienceMode generations share (:mod:`..sciencemode.stuffing`);
the streaming receiver is in :mod:`.stream`. This module is pure: it must never do I/O, read a
clock or keep state.
"""

from __future__ import annotations

import binascii

from ...errors import ProtocolError
from ..sciencemode.stuffing import ESCAPE, ESCAPE_KEY, START, STOP, stuff, unstuff

__all__ = [
    "ESCAPE",
    "ESCAPE_KEY",
    "HEADER_LEN",
    "MAX_COMMAND",
    "MAX_FRAME_LEN",
    "MAX_PACKET_NUMBER",
    "MIN_FRAME_LEN",
    "PREFIX_LEN",
    "START",
    "STOP",
    "command_prefix",
    "crc16_xmodem",
    "encode_frame",
    "frame_from_stuffed",
    "split_prefix",
    "stuff",
    "unstuff",
]

HEADER_LEN = 9
"""Start byte plus four escaped pairs (LEN high, LEN low, CRC high, CRC low)."""
PREFIX_LEN = 2
"""The command prefix: packet number and command number, before stuffing."""
MIN_FRAME_LEN = HEADER_LEN + PREFIX_LEN + 1
"""12 wire bytes: a command without data."""
MAX_FRAME_LEN = 1200
"""The longest frame the device accepts, in wire bytes after stuffing
[docs/protocols/sciencemode4.md §3]."""
MAX_PACKET_NUMBER = 63
"""Packet numbers are 6 bits."""
MAX_COMMAND = 1023
"""Command numbers are 10 bits."""


def crc16_xmodem(data: bytes) -> int:
    """CRC-16/XMODEM: polynomial 0x1021, init 0, no reflection, xorout 0 ("123456789" → 0x31C3).

    The vendor calls it "CRC-CCITT"; it is not CRC-16/CCITT-FALSE (init 0xFFFF). The frame
    header carries each byte of this value ⊕ 0x55; that XOR is applied by the framing, not here.
    The standard library's ``binascii.crc_hqx`` computes it (the same polynomial, unreflected,
    started at 0), in C.
    """
    return binascii.crc_hqx(data, 0)


def command_prefix(packet_number: int, command: int) -> bytes:
    """The two prefix bytes: ``(pn << 2) | (cmd >> 8)`` and ``cmd & 0xFF``.

    Raises:
        ProtocolError: a packet number outside 0–63 or a command outside 0–1023.
    """
    if not 0 <= packet_number <= MAX_PACKET_NUMBER:
        raise ProtocolError(f"packet number {packet_number} is outside 0–{MAX_PACKET_NUMBER}")
    if not 0 <= command <= MAX_COMMAND:
        raise ProtocolError(f"command {command} is outside 0–{MAX_COMMAND}")
    return bytes(((packet_number << 2) | (command >> 8), command & 0xFF))


def split_prefix(payload: bytes) -> tuple[int, int, bytes]:
    """Split unstuffed prefix + data into (packet number, command, data).

    Raises:
        ProtocolError: fewer than two bytes.
    """
    if len(payload) < PREFIX_LEN:
        raise ProtocolError(f"a frame needs a 2-byte command prefix, got {payload.hex(' ')!r}")
    return payload[0] >> 2, ((payload[0] & 0x03) << 8) | payload[1], payload[2:]


def encode_frame(payload: bytes) -> bytes:
    """Wrap unstuffed prefix + data into a complete wire frame, start to stop byte.

    Raises:
        ProtocolError: fewer than 2 bytes, or a frame longer than 1200 wire bytes.
    """
    if len(payload) < PREFIX_LEN:
        raise ProtocolError(f"a frame needs a 2-byte command prefix, got {len(payload)} bytes")
    return frame_from_stuffed(stuff(payload))


def frame_from_stuffed(body: bytes) -> bytes:
    """The wire frame around an already stuffed prefix and data (``stuff`` works byte by byte,
    so a host may stuff a prefix and a data block apart and join them).

    Raises:
        ProtocolError: a frame longer than 1200 wire bytes.
    """
    length = HEADER_LEN + len(body) + 1
    if length > MAX_FRAME_LEN:
        raise ProtocolError(f"a frame of {length} wire bytes is over {MAX_FRAME_LEN}")
    crc = crc16_xmodem(body)
    # the four header values are always escaped, whatever their value
    return bytes((START, ESCAPE, (length >> 8) ^ ESCAPE_KEY, ESCAPE, (length & 0xFF) ^ ESCAPE_KEY,
                  ESCAPE, (crc >> 8) ^ ESCAPE_KEY, ESCAPE, (crc & 0xFF) ^ ESCAPE_KEY)) \
        + body + bytes((STOP,))
