"""Coyote V3 frequency byte: the one-byte code of a pulse period, and its Hz helpers.

The B0 frame carries, per 25 ms slot, a *frequency byte* that encodes the pulse period P in
milliseconds (10–1000 ms, i.e. 1–100 Hz) on a piecewise-linear scale (docs/protocols/coyote3.md §4):

===========  ==========================  ==========================
code         period_ms (lower bin edge)   bin width
===========  ==========================  ==========================
10–100       code                         1 ms
101–200      100 + 5·(code − 100)          5 ms
201–240      600 + 10·(code − 200)         10 ms
===========  ==========================  ==========================

Encoding uses integer division, so a period maps to the code whose bin contains it and decoding
returns the bin's lower edge. Where the vendor's table disagrees with the formula (650 ms), the
formula governs. Out-of-range inputs are rejected; there is never a silent fallback to 100 Hz.

This module is pure: it does no I/O, reads no clock and keeps no state. It must never clamp or
substitute a value it was not asked for.
"""

from __future__ import annotations

import math
import numbers
import operator

from emsctl.errors import ProtocolError

__all__ = [
    "FREQUENCY_CODE_MAX",
    "FREQUENCY_CODE_MIN",
    "FREQUENCY_HZ_MAX",
    "FREQUENCY_HZ_MIN",
    "PERIOD_MS_MAX",
    "PERIOD_MS_MIN",
    "frequency_code_from_hz",
    "frequency_code_from_period_ms",
    "frequency_hz_from_code",
    "frequency_hz_from_period_ms",
    "is_valid_frequency_code",
    "largest_rate_ratio",
    "period_bin_width_ms",
    "period_ms_from_frequency_code",
    "period_ms_from_frequency_hz",
]

PERIOD_MS_MIN = 10
"""Shortest encodable pulse period (100 Hz)."""
PERIOD_MS_MAX = 1000
"""Longest encodable pulse period (1 Hz)."""
FREQUENCY_CODE_MIN = 10
"""Smallest valid frequency byte; anything lower silences the channel for that frame."""
FREQUENCY_CODE_MAX = 240
"""Largest valid frequency byte; anything higher silences the channel for that frame."""
FREQUENCY_HZ_MIN = 1.0
"""Lowest pulse rate the device can express."""
FREQUENCY_HZ_MAX = 100.0
"""Highest pulse rate the device can express."""

_FINE_END_MS = 100  # periods 10–100 ms encode 1:1
_MEDIUM_END_MS = 600  # periods 101–600 ms encode in 5 ms bins
_MEDIUM_STEP_MS = 5
_COARSE_STEP_MS = 10
_MEDIUM_CODE_END = 200  # last code of the 5 ms scale


def require_int(name: str, value: int, low: int, high: int) -> int:
    """Check that ``value`` is an integer (not a bool) within ``low``–``high``.

    Args:
        name: What the value is, for the error message.
        value: The value to check; any integer type (``operator.index``) is accepted.
        low: Smallest allowed value.
        high: Largest allowed value.

    Returns:
        The value as a plain ``int``.

    Raises:
        ProtocolError: If the value is not an integer or lies outside the range.
    """
    if isinstance(value, bool):
        raise ProtocolError(f"{name} must be an integer, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise ProtocolError(f"{name} must be an integer, got {value!r}") from None
    if not low <= number <= high:
        raise ProtocolError(f"{name} must be within {low}–{high}, got {number}")
    return number


def is_valid_frequency_code(code: int) -> bool:
    """Tell whether a frequency byte lies in the range the device accepts (10–240).

    Args:
        code: The raw frequency byte of one slot.

    Returns:
        True if the device plays a slot with this code; False if it discards the channel's frame.
    """
    return FREQUENCY_CODE_MIN <= code <= FREQUENCY_CODE_MAX


def frequency_code_from_period_ms(period_ms: int) -> int:
    """Encode a pulse period as the frequency byte whose bin contains it.

    Args:
        period_ms: Pulse period in milliseconds, 10–1000.

    Returns:
        The frequency byte, 10–240.

    Raises:
        ProtocolError: If ``period_ms`` is not an integer within 10–1000.
    """
    period_ms = require_int("period_ms", period_ms, PERIOD_MS_MIN, PERIOD_MS_MAX)
    if period_ms <= _FINE_END_MS:
        return period_ms
    if period_ms <= _MEDIUM_END_MS:
        return (period_ms - _FINE_END_MS) // _MEDIUM_STEP_MS + _FINE_END_MS
    return (period_ms - _MEDIUM_END_MS) // _COARSE_STEP_MS + _MEDIUM_CODE_END


def period_ms_from_frequency_code(code: int) -> int:
    """Decode a frequency byte to the lower edge of its period bin.

    Args:
        code: Frequency byte, 10–240.

    Returns:
        The pulse period in milliseconds, 10–1000.

    Raises:
        ProtocolError: If ``code`` is not an integer within 10–240 (the device would discard it).
    """
    code = require_int("frequency code", code, FREQUENCY_CODE_MIN, FREQUENCY_CODE_MAX)
    if code <= _FINE_END_MS:
        return code
    if code <= _MEDIUM_CODE_END:
        return _FINE_END_MS + _MEDIUM_STEP_MS * (code - _FINE_END_MS)
    return _MEDIUM_END_MS + _COARSE_STEP_MS * (code - _MEDIUM_CODE_END)


def period_bin_width_ms(period_ms: int) -> int:
    """Return the resolution of the period scale around ``period_ms``.

    A period is represented exactly at the lower edge of its bin; any other period in the bin is
    rounded down by less than this width.

    Args:
        period_ms: Pulse period in milliseconds, 10–1000.

    Returns:
        1, 5 or 10 (ms).

    Raises:
        ProtocolError: If ``period_ms`` is not an integer within 10–1000.
    """
    code = frequency_code_from_period_ms(period_ms)
    if code < _FINE_END_MS:
        return 1
    if code < _MEDIUM_CODE_END:
        return _MEDIUM_STEP_MS
    return _COARSE_STEP_MS


def period_ms_from_frequency_hz(frequency_hz: float) -> int:
    """Convert a pulse rate to the nearest whole-millisecond period.

    ``period_ms = round(1000 / frequency_hz)``, with an exact half rounded up (to the longer
    period, i.e. the lower rate), so that the result does not depend on banker's rounding.

    Args:
        frequency_hz: Pulse rate in Hz, 1–100 inclusive.

    Returns:
        The period in milliseconds, 10–1000.

    Raises:
        ProtocolError: If ``frequency_hz`` is not a finite number within 1–100 Hz.
    """
    if isinstance(frequency_hz, bool) or not isinstance(frequency_hz, numbers.Real):
        raise ProtocolError(f"frequency_hz must be a number, got {frequency_hz!r}")
    frequency_hz = float(frequency_hz)
    if not math.isfinite(frequency_hz) or not (
        FREQUENCY_HZ_MIN <= frequency_hz <= FREQUENCY_HZ_MAX
    ):
        raise ProtocolError(
            f"frequency_hz must be within {FREQUENCY_HZ_MIN:g}–{FREQUENCY_HZ_MAX:g} Hz, "
            f"got {frequency_hz!r}"
        )
    return math.floor(1000.0 / frequency_hz + 0.5)


def frequency_hz_from_period_ms(period_ms: int) -> float:
    """Convert a period in milliseconds to a pulse rate in Hz.

    Args:
        period_ms: Pulse period in milliseconds, 10–1000.

    Returns:
        ``1000 / period_ms``.

    Raises:
        ProtocolError: If ``period_ms`` is not an integer within 10–1000.
    """
    period_ms = require_int("period_ms", period_ms, PERIOD_MS_MIN, PERIOD_MS_MAX)
    return 1000.0 / period_ms


def frequency_code_from_hz(frequency_hz: float) -> int:
    """Encode a pulse rate as a frequency byte (via the rounded period).

    Args:
        frequency_hz: Pulse rate in Hz, 1–100 inclusive.

    Returns:
        The frequency byte, 10–240.

    Raises:
        ProtocolError: If ``frequency_hz`` is not a finite number within 1–100 Hz.
    """
    return frequency_code_from_period_ms(period_ms_from_frequency_hz(frequency_hz))


def frequency_hz_from_code(code: int) -> float:
    """Return the pulse rate the device plays for a frequency byte.

    Args:
        code: Frequency byte, 10–240.

    Returns:
        ``1000 / period_ms`` of the bin's lower edge, in Hz.

    Raises:
        ProtocolError: If ``code`` is not an integer within 10–240.
    """
    return 1000.0 / period_ms_from_frequency_code(code)


def largest_rate_ratio(low_hz: float, high_hz: float) -> float:
    """The most the device's rate exceeds the rate asked, as a ratio, over rates asked in
    ``low_hz``–``high_hz`` (either order; 1–100 Hz).

    A rate is made as ``1000 / P``, ``P`` the lower edge of the bin of its rounded period, so
    within one bin the ratio is largest at the lowest rate asked that falls in it (at the bin's
    open end: a bound never reached). Exact for ``low_hz == high_hz``: the rate made for it over
    it. Every rate made for a rate in the range is at most that rate × the ratio.

    Raises:
        ProtocolError: a rate that is not a finite number within 1–100 Hz.
    """
    low_hz, high_hz = sorted((low_hz, high_hz))
    ends = [frequency_hz_from_code(frequency_code_from_hz(f)) / f for f in (low_hz, high_hz)]
    best = max(ends)
    if low_hz == high_hz:
        return best
    for code in range(FREQUENCY_CODE_MIN, FREQUENCY_CODE_MAX + 1):
        first_ms = period_ms_from_frequency_code(code)
        last_ms = min(first_ms + period_bin_width_ms(first_ms) - 1, PERIOD_MS_MAX)
        # the rates asked whose period rounds into the bin: (slowest, fastest]
        slowest_hz = 1000.0 / (last_ms + 0.5)
        fastest_hz = 1000.0 / (first_ms - 0.5)
        if slowest_hz < high_hz and fastest_hz >= low_hz:
            best = max(best, (1000.0 / first_ms) / max(low_hz, slowest_hz))
    return best
