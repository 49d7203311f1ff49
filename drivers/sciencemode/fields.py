"""The field checks both ScienceMode codecs make the same way.

Who sends a message, an integer field within its wire range, and the exact length of a command's
data (``docs/protocols/sciencemode2.md`` §4, ``docs/protocols/sciencemode4.md`` §4). Enum fields
are each codec's own (the two read them with different rules).

Pure: no I/O, no clock, no state, no silent clamping.
"""

from __future__ import annotations

from enum import Enum

from ...errors import ProtocolError

__all__ = ["Direction", "check_int", "expect_len"]


class Direction(Enum):
    """Who sends a message."""

    HOST_TO_DEVICE = "host→device"
    DEVICE_TO_HOST = "device→host"


def check_int(name: str, value: object, low: int, high: int) -> None:
    """Check that a field is an int (not a bool) within low–high, or raise ProtocolError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"{name} must be an integer, not {value!r}")
    if not low <= value <= high:
        raise ProtocolError(f"{name} {value} is outside {low}–{high}")


def expect_len(data: bytes, count: int) -> None:
    """Check the exact number of command data bytes, or raise ProtocolError."""
    if len(data) != count:
        raise ProtocolError(f"expected {count} data bytes, got {len(data)}")
