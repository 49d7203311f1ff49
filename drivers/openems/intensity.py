"""openEMSstim intensity ↔ potentiometer mapping and calibration window
(docs/protocols/openemsstim.md §4.2, §4.3).

The intensity ``I`` is a percentage of a per-channel calibration window on an AD5252 wiper, not
a current. These functions reproduce the firmware's arithmetic exactly (integers, no float
error), including what a 16-bit ``int`` on the AVR does to it: every parsed value and every
product wraps at 16 bits (:func:`to_int16`), so the device-side mapping
(:func:`firmware_wiper_steps`) is not monotonic above I = 205. Pure: no I/O, no clock; they must
never clamp ``I`` at 100 on the device side, because the firmware does not.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from emsctl.errors import ProtocolError

__all__ = [
    "DEFAULT_WINDOW",
    "MAX_INTENSITY_PCT",
    "WIPER_MAX_STEPS",
    "CalibrationWindow",
    "firmware_option_steps",
    "firmware_wiper_steps",
    "intensity_pct_to_wiper_steps",
    "option_pct_to_window_steps",
    "to_int16",
    "wiper_steps_to_intensity_pct",
]

MAX_INTENSITY_PCT = 100  # the host's ceiling; the firmware itself does not clamp
WIPER_MAX_STEPS = 255  # wiper 255: maximum attenuation, no signal


@dataclass(frozen=True, slots=True)
class CalibrationWindow:
    """Per-channel calibration window in potentiometer steps (default 55/215).

    The firmware does not order the bounds, so neither does this class.

    Raises:
        ProtocolError: if a bound is outside 0-255.
    """

    min_steps: int = 55
    max_steps: int = 215

    def __post_init__(self) -> None:
        for steps in (self.min_steps, self.max_steps):
            if not 0 <= steps <= WIPER_MAX_STEPS:
                raise ProtocolError(f"calibration bound {steps} is outside 0-255 steps")


DEFAULT_WINDOW = CalibrationWindow()


def _trunc_div(numerator: int, denominator: int) -> int:
    """Integer division truncating toward zero, like C's float-to-int conversion."""
    quotient = abs(numerator) // abs(denominator)
    return quotient if (numerator >= 0) == (denominator > 0) else -quotient


def to_int16(value: int) -> int:
    """``value`` as the board's 16-bit ``int`` holds it (two's complement, wrapping).

    The AVR's ``int`` is 16 bits: a parsed field, ``I − 1`` and each product wrap, so
    ``40000`` is −25536 and ``65536`` is 0.
    """
    return (value + 0x8000) % 0x10000 - 0x8000


def _times_hundredth_rounded(product: int) -> int:
    """``int(product * 0.01f + 0.5f)`` for an int16 ``product``, computed exactly.

    ``product / 100 + 0.5`` is an integer or at least 0.01 away from one; the float error of the
    firmware's expression is far below that, and for an exact tie the error of ``0.01f`` is
    under half a unit in the last place, so the tie value itself comes out: truncating the
    exact rational gives the firmware's result.
    """
    return _trunc_div(2 * product + 100, 200)


@functools.lru_cache(maxsize=1024)  # a session asks for the same few levels again and again
def firmware_wiper_steps(intensity: int, min_steps: int, max_steps: int) -> int:
    """The wiper the firmware writes for a parsed ``I``, 16-bit quirks included
    (docs/protocols/openemsstim.md §4.1, §4.2).

    The firmware calls ``setIntensity(I − 1)``: ``level = int((max − min)·(I − 1)·0.01f + 0.5f)
    + min``, clamped to 0–255, and wiper = 255 − level, every ``int`` 16 bits wide. With the
    default window:

    * I 0–205 follow the docs/protocols/openemsstim.md §4.2 formula (I 126–205: wiper 0, the
      stimulator unattenuated);
    * I 206–375 make ``160·(I − 1)`` wrap negative: level below 0, wiper 255 (no signal);
    * from I 376 the wrapped product climbs back (I 410: wiper 200), and so on;
    * a bare ``I`` parses as −1: ``setIntensity(−2)``, wiper 202.

    Args:
        intensity: The parsed ``I``, already an int16 (−1 for a letter without digits).
        min_steps: The channel's window minimum as the firmware holds it (any int16).
        max_steps: The channel's window maximum (any int16; options can store odd values).

    Returns:
        Wiper position, 0–255.
    """
    argument = to_int16(intensity - 1)
    product = to_int16(to_int16(max_steps - min_steps) * argument)
    level = to_int16(_times_hundredth_rounded(product) + min_steps)
    return WIPER_MAX_STEPS - min(max(level, 0), WIPER_MAX_STEPS)


def firmware_option_steps(pct: int) -> int:
    """The window bound the firmware stores for ``OMA``/``OMI`` with a parsed ``pct``
    (docs/protocols/openemsstim.md §4.3).

    ``int(255 * pct * 0.01f + 0.5f)`` with a 16-bit product: 0–128 give trunc(255·pct/100 +
    0.5) as documented; from 129 the product wraps negative (``OMA[0,130]`` stores −323), and
    the result is stored unchecked (``setIntensity`` clamps the level later).
    """
    return to_int16(_times_hundredth_rounded(to_int16(WIPER_MAX_STEPS * pct)))


def intensity_pct_to_wiper_steps(
    intensity_pct: int, window: CalibrationWindow = DEFAULT_WINDOW
) -> int:
    """Map an intensity to the wiper position the firmware writes
    (docs/protocols/openemsstim.md §4.2).

    ``level = trunc((max - min)·(I - 1)/100 + 0.5) + min`` clamped to 0-255, wiper = 255 - level.
    Computed exactly, as the firmware computes it (:func:`firmware_wiper_steps`): I above 100
    follows the formula, as the firmware does not clamp it, and from I 206 its 16-bit products
    wrap.

    Args:
        intensity_pct: The ``I`` field, 0 or more.
        window: The channel's calibration window.

    Returns:
        Wiper position in steps: 255 passes nothing, 0 passes the stimulator unattenuated.

    Raises:
        ProtocolError: if ``intensity_pct`` is negative (no digit string can express that).
    """
    if intensity_pct < 0:
        raise ProtocolError(f"intensity {intensity_pct} % is negative")
    return firmware_wiper_steps(intensity_pct, window.min_steps, window.max_steps)


def wiper_steps_to_intensity_pct(
    wiper_steps: int, window: CalibrationWindow = DEFAULT_WINDOW
) -> int | None:
    """Return the smallest intensity 0-100 that the firmware maps to ``wiper_steps``.

    Args:
        wiper_steps: Wiper position, 0-255.
        window: The channel's calibration window.

    Returns:
        The intensity in percent, or None if no intensity in 0-100 yields this wiper (for
        example after the test handler moved the wiper by one step).

    Raises:
        ProtocolError: if ``wiper_steps`` is outside 0-255.
    """
    if not 0 <= wiper_steps <= WIPER_MAX_STEPS:
        raise ProtocolError(f"wiper position {wiper_steps} is outside 0-255 steps")
    for intensity_pct in range(MAX_INTENSITY_PCT + 1):
        if intensity_pct_to_wiper_steps(intensity_pct, window) == wiper_steps:
            return intensity_pct
    return None


def option_pct_to_window_steps(pct: int) -> int:
    """Convert an ``OMA``/``OMI`` percentage to steps: trunc(255·pct/100 + 0.5)
    (docs/protocols/openemsstim.md §4.3).

    Raises:
        ProtocolError: if ``pct`` is negative.
    """
    if pct < 0:
        raise ProtocolError(f"calibration percentage {pct} is negative")
    return (2 * WIPER_MAX_STEPS * pct + 100) // 200
