"""ScienceMode4 pulse shapes: points, the per-channel period word, and a mid-level channel block.

A pulse is 1–16 points, each a duration in µs and a signed current; a balanced biphasic pulse is
(+I, t), (−I, t), and an inter-phase gap is a 0 mA point (``docs/protocols/sciencemode4.md`` §6).
A point travels as a u32: bits 31–20 duration 0–4095 µs, bits 19–10 the current code
``c = 2·I[mA] + 300`` (0–600 ⇔ −150…+150 mA in 0.5 mA steps, offset binary), bits 9–0 reserved
(sent as 0, ignored on receipt). A mid-level channel block is one byte ``(n − 1) << 4 | ramp``, the
16-bit period word (bits 15–1 code, bit 0 resolution: 0 → code/2 ms, 1 → code/4 ms) and the n
points. Multi-byte fields are big endian.

The wire ranges are checked here; the device's own limits (|I| ≤ 130 mA, period code ≥ 1, the
load limit) are policy for the emulator and the host, not for the codec. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Self

from ...errors import ProtocolError
from .fields import check_int

__all__ = [
    "CURRENT_CODE_MAX",
    "CURRENT_CODE_ZERO",
    "MAX_PERIOD_CODE",
    "MAX_POINTS",
    "MAX_POINT_DURATION_US",
    "MAX_RAMP_PULSES",
    "POINT_LEN",
    "MlChannelConfig",
    "Period",
    "Point",
    "check_points",
    "current_code_from_ma",
    "current_ma_from_code",
    "decode_points",
    "encode_points",
]

POINT_LEN = 4
MAX_POINTS = 16
MAX_POINT_DURATION_US = 4095
CURRENT_CODE_ZERO = 300
"""Code of 0 mA."""
CURRENT_CODE_MAX = 600
"""Code of +150 mA; code 0 is −150 mA."""
MAX_PERIOD_CODE = 0x7FFF
MAX_RAMP_PULSES = 15


def current_code_from_ma(current_ma: float) -> int:
    """The code ``2·I + 300`` of a current that is an exact multiple of 0.5 mA within ±150 mA.

    Raises:
        ProtocolError: a current that is not a multiple of 0.5 mA, or outside ±150 mA (rounding
            is a host decision, see :mod:`.mapping`).
    """
    if (isinstance(current_ma, bool) or not isinstance(current_ma, int | float)
            or not math.isfinite(current_ma)):
        raise ProtocolError(f"current must be a finite number of mA, not {current_ma!r}")
    doubled = Fraction(current_ma) * 2
    if doubled.denominator != 1:
        raise ProtocolError(f"{current_ma!r} mA is not a multiple of 0.5 mA")
    code = int(doubled) + CURRENT_CODE_ZERO
    check_int("current code", code, 0, CURRENT_CODE_MAX)
    return code


def current_ma_from_code(code: int) -> float:
    """The current in mA of a code 0–600: ``(c − 300) / 2``.

    Raises:
        ProtocolError: a code outside 0–600.
    """
    check_int("current code", code, 0, CURRENT_CODE_MAX)
    return (code - CURRENT_CODE_ZERO) / 2


@dataclass(frozen=True, slots=True)
class Point:
    """One point of a pulse: a duration and a current code.

    Attributes:
        duration_us: 0–4095 µs (the device executes less than 10 µs as 10 µs).
        current_code: 0–600, i.e. ``2·I[mA] + 300``; 300 is 0 mA.

    Raises:
        ProtocolError: a field outside its wire range.
    """

    duration_us: int
    current_code: int

    def __post_init__(self) -> None:
        check_int("duration_us", self.duration_us, 0, MAX_POINT_DURATION_US)
        check_int("current_code", self.current_code, 0, CURRENT_CODE_MAX)

    @classmethod
    def of(cls, duration_us: int, current_ma: float) -> Self:
        """A point from a current in mA (an exact multiple of 0.5 mA within ±150 mA).

        Raises:
            ProtocolError: a duration or current the wire cannot carry exactly.
        """
        return cls(duration_us, current_code_from_ma(current_ma))

    @property
    def current_ma(self) -> float:
        """The signed current in mA."""
        return (self.current_code - CURRENT_CODE_ZERO) / 2

    def encode(self) -> bytes:
        """The point as a u32, big endian; the reserved bits 9–0 are 0."""
        word = (self.duration_us << 20) | (self.current_code << 10)
        return word.to_bytes(POINT_LEN, "big")

    @classmethod
    def decode(cls, raw: bytes) -> Self:
        """A point from its 4 wire bytes; the reserved bits 9–0 are ignored.

        Raises:
            ProtocolError: not 4 bytes, or a current code above 600.
        """
        if len(raw) != POINT_LEN:
            raise ProtocolError(f"a point has {POINT_LEN} bytes, got {len(raw)}")
        word = int.from_bytes(raw, "big")
        return cls(word >> 20, (word >> 10) & 0x3FF)


def encode_points(points: Iterable[Point]) -> bytes:
    """Points one after the other, 4 bytes each."""
    return b"".join(point.encode() for point in points)


def decode_points(raw: bytes) -> tuple[Point, ...]:
    """Points from a run of 4-byte words.

    Raises:
        ProtocolError: a length that is not a multiple of 4, or a bad point.
    """
    if len(raw) % POINT_LEN:
        raise ProtocolError(f"{len(raw)} bytes of points is not a multiple of {POINT_LEN}")
    return tuple(Point.decode(raw[i:i + POINT_LEN]) for i in range(0, len(raw), POINT_LEN))


def check_points(points: tuple[Point, ...], name: str = "points") -> None:
    """Check a pulse of 1–16 :class:`Point` records, or raise ProtocolError."""
    if not isinstance(points, tuple) or not all(isinstance(p, Point) for p in points):
        raise ProtocolError(f"{name} must be a tuple of Point records")
    if not 1 <= len(points) <= MAX_POINTS:
        raise ProtocolError(f"a pulse has 1–{MAX_POINTS} points, not {len(points)}")


@dataclass(frozen=True, slots=True)
class Period:
    """A channel's period word: a 15-bit code and the resolution flag.

    Attributes:
        code: 0–32767 on the wire (the device's range starts at 1).
        quarter_ms: the resolution flag R: False → code/2 ms (0.5 ms steps, up to 16383.5 ms),
            True → code/4 ms (0.25 ms steps, up to 8191.75 ms).

    Raises:
        ProtocolError: a code outside 0–32767.
    """

    code: int
    quarter_ms: bool = False

    def __post_init__(self) -> None:
        check_int("period code", self.code, 0, MAX_PERIOD_CODE)
        if not isinstance(self.quarter_ms, bool):
            raise ProtocolError(f"quarter_ms must be a bool, not {self.quarter_ms!r}")

    @classmethod
    def from_ms(cls, period_ms: float) -> Self:
        """The exact word for a period: 0.5 ms steps if possible, else 0.25 ms steps.

        Raises:
            ProtocolError: a period that is not a multiple of 0.25 ms within 0.25–16383.5 ms.
        """
        if (isinstance(period_ms, bool) or not isinstance(period_ms, int | float)
                or not math.isfinite(period_ms)):
            raise ProtocolError(f"period must be a finite number of ms, not {period_ms!r}")
        exact = Fraction(period_ms)
        for steps_per_ms, quarter in ((2, False), (4, True)):
            code = exact * steps_per_ms
            if code.denominator == 1 and 1 <= code <= MAX_PERIOD_CODE:
                return cls(int(code), quarter)
        raise ProtocolError(f"period {period_ms} ms is not a multiple of 0.25 ms within "
                            "0.25–16383.5 ms")

    @property
    def period_ms(self) -> float:
        """The period in ms (0 for code 0, which the device refuses)."""
        return self.code / (4 if self.quarter_ms else 2)

    @property
    def word(self) -> int:
        """The 16-bit word: ``code << 1 | R``."""
        return (self.code << 1) | int(self.quarter_ms)

    @classmethod
    def from_word(cls, word: int) -> Self:
        """The period of a 16-bit word.

        Raises:
            ProtocolError: a word that is not 16 bits.
        """
        check_int("period word", word, 0, 0xFFFF)
        return cls(word >> 1, bool(word & 1))


@dataclass(frozen=True, slots=True)
class MlChannelConfig:
    """One enabled channel's block in Ml_update: pulse shape, start ramp and period.

    Attributes:
        points: the pulse, 1–16 points; all of them form one pulse, repeated every period.
        period: this channel's own period.
        ramp_pulses: 0–15 pulses of linearly rising, lower current when the channel becomes
            enabled.

    Raises:
        ProtocolError: a field outside its wire range.
    """

    points: tuple[Point, ...]
    period: Period
    ramp_pulses: int = 0

    def __post_init__(self) -> None:
        check_points(self.points)
        if not isinstance(self.period, Period):
            raise ProtocolError(f"period must be a Period, not {self.period!r}")
        check_int("ramp_pulses", self.ramp_pulses, 0, MAX_RAMP_PULSES)

    @property
    def pulse_duration_us(self) -> int:
        """Σ point durations in µs, as sent (before the device's 10 µs minimum)."""
        return sum(point.duration_us for point in self.points)

    def encode(self) -> bytes:
        """Points/ramp byte, period word, points."""
        head = ((len(self.points) - 1) << 4) | self.ramp_pulses
        return (bytes((head,)) + self.period.word.to_bytes(2, "big")
                + encode_points(self.points))

    @classmethod
    def decode_from(cls, data: bytes, offset: int) -> tuple[Self, int]:
        """Decode the block that starts at ``data[offset]``; return it and the next offset.

        Raises:
            ProtocolError: the data ends inside the block, or a field is out of range.
        """
        if offset + 3 > len(data):
            raise ProtocolError("Ml_update data ends inside a channel block header")
        count = (data[offset] >> 4) + 1
        ramp = data[offset] & 0x0F
        period = Period.from_word(int.from_bytes(data[offset + 1:offset + 3], "big"))
        end = offset + 3 + POINT_LEN * count
        if end > len(data):
            raise ProtocolError(f"Ml_update data ends inside the {count} points of a block")
        return cls(decode_points(data[offset + 3:end]), period, ramp), end
