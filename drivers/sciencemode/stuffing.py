"""The byte stuffing of Hasomed's ScienceMode frames, the same in both generations.

A frame starts with ``F0`` and ends with ``0F``; inside it ``F0``, ``0F`` and ``81`` travel as
the pair ``81, b ⊕ 0x55``, and a receiver un-escapes *any* byte that follows ``81``
(``docs/protocols/sciencemode2.md`` §3 and §10, ``docs/protocols/sciencemode4.md`` §3). What the
header holds (CRC-8 and LEN, or LEN and CRC-16) is each generation's own framing.

Pure: no I/O, no clock, no state.
"""

from __future__ import annotations

import re

from ...errors import ProtocolError

__all__ = ["ESCAPE", "ESCAPE_KEY", "SPECIAL_BYTES", "START", "STOP", "stuff", "unstuff"]

START = 0xF0
STOP = 0x0F
ESCAPE = 0x81
ESCAPE_KEY = 0x55
SPECIAL_BYTES = frozenset({START, STOP, ESCAPE})
_SPECIAL = re.compile(b"[\xf0\x0f\x81]")
_ESCAPED = {bytes((b,)): bytes((ESCAPE, b ^ ESCAPE_KEY)) for b in SPECIAL_BYTES}


def stuff(raw: bytes) -> bytes:
    """Escape F0, 0F and 81 as ``81, b ⊕ 0x55`` (``81 A5``, ``81 5A``, ``81 D4``); keep the rest."""
    return _SPECIAL.sub(lambda match: _ESCAPED[match.group()], bytes(raw))


def unstuff(stuffed: bytes) -> bytes:
    """Undo :func:`stuff`, un-escaping *any* byte that follows 0x81 (the tolerant receiver).

    Raises:
        ProtocolError: on a bare start or stop byte, or an escape byte with nothing after it.
    """
    if not _SPECIAL.search(stuffed):
        return bytes(stuffed)  # nothing escaped: most frames
    out = bytearray()
    escaped = False
    for byte in stuffed:
        if escaped:
            out.append(byte ^ ESCAPE_KEY)
            escaped = False
        elif byte == ESCAPE:
            escaped = True
        elif byte in (START, STOP):
            raise ProtocolError(f"bare 0x{byte:02X} inside stuffed bytes")
        else:
            out.append(byte)
    if escaped:
        raise ProtocolError("stuffed bytes end with a lone escape byte")
    return bytes(out)
