"""openEMSstim debug output: the human-readable lines the firmware prints on USB
(docs/protocols/openemsstim.md §2, §7).

The device never replies or acknowledges. With debug on it prints diagnostic lines ending in
``\\r\\n``; the emulator writes them with :func:`encode_debug_line`, and the host splits and
tags them with :class:`DebugLineParser` for its log and to notice a reset mid-session (the
setup banner). These lines are diagnostics: host code must never wait for one or treat one as
an acknowledgement (docs/protocols/openemsstim.md §10).

Pure: no I/O, no clock. Nothing here may raise on received bytes: free-form text is expected
at any time.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass

__all__ = [
    "DEBUG_LINE_END",
    "DebugKind",
    "DebugLine",
    "DebugLineParser",
    "encode_debug_line",
    "parse_debug_line",
]

DEBUG_LINE_END = b"\r\n"


class DebugKind(enum.Enum):
    """The debug lines the spec names; each value is the fixed text or prefix of its line."""

    SETUP_DONE = b"SETUP DONE (LED 13 WILL BE ON)"  # the last setup line: the board (re)booted
    HEX_ECHO = b"EMS_CMD: Converted HEX command: "  # followed by the decoded command
    UNKNOWN_COMMAND = b"Unknown command: "  # followed by the ignored command
    SINGLE_CHAR_UNKNOWN = b"ERROR: SINGLE-CHAR Command Unknown"
    OTHER = b""  # any other free-form text


_PREFIXED = (DebugKind.HEX_ECHO, DebugKind.UNKNOWN_COMMAND)


@dataclass(frozen=True, slots=True)
class DebugLine:
    """One trimmed debug line and what it is.

    Attributes:
        kind: Which known line this is, or ``OTHER``.
        text: The whole line, trimmed, as raw bytes.
        payload: The command after the prefix of a ``HEX_ECHO`` or ``UNKNOWN_COMMAND`` line
            (trailing whitespace lost to trimming), else None.
    """

    kind: DebugKind
    text: bytes
    payload: bytes | None = None


def encode_debug_line(kind: DebugKind, payload: bytes = b"") -> bytes:
    """The bytes the firmware prints for a debug line, ``\\r\\n`` included (emulator side).

    Args:
        kind: Which line; ``OTHER`` prints ``payload`` as is.
        payload: The command for ``HEX_ECHO``/``UNKNOWN_COMMAND``, the text for ``OTHER``;
            ignored for the fixed lines.
    """
    fixed_text: bytes = kind.value
    if kind in _PREFIXED or kind is DebugKind.OTHER:
        return fixed_text + payload + DEBUG_LINE_END
    return fixed_text + DEBUG_LINE_END


def parse_debug_line(line: bytes) -> DebugLine | None:
    """Tag one line of device output; None if it is blank after trimming. Never raises."""
    return _tag(bytes(line.strip()))


@functools.lru_cache(maxsize=256)  # the board echoes the same few lines all session
def _tag(text: bytes) -> DebugLine | None:
    if not text:
        return None
    for kind in (DebugKind.SETUP_DONE, DebugKind.SINGLE_CHAR_UNKNOWN):
        if text == kind.value:
            return DebugLine(kind, text)
    for kind in _PREFIXED:
        if text.startswith(kind.value):
            return DebugLine(kind, text, text[len(kind.value) :])
        if text == kind.value.rstrip():  # an empty command: trimming took the separator
            return DebugLine(kind, text, b"")
    return DebugLine(DebugKind.OTHER, text)


class DebugLineParser:
    """Incremental splitter of device output into :class:`DebugLine` items (host side)."""

    def __init__(self) -> None:
        """Create a parser with an empty buffer."""
        self._pending = bytearray()

    @property
    def pending(self) -> bytes:
        """Bytes received since the last complete line."""
        return bytes(self._pending)

    def feed(self, data: bytes) -> list[DebugLine]:
        """Add received bytes; return the non-blank lines they complete, in order."""
        self._pending += data
        if b"\n" not in data:
            return []
        *lines, rest = bytes(self._pending).split(b"\n")
        self._pending = bytearray(rest)
        return [item for item in map(parse_debug_line, lines) if item is not None]
