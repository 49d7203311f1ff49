"""Device-agnostic setpoints → ScienceMode4 mid-level channel blocks, as pure functions.

Each channel has its own period, so every channel maps on its own (``docs/protocols/
sciencemode4.md`` docs/protocols/sciencemode4.md §14): the frequency becomes a period word with
0.5 ms resolution (code ``round(2000 / f)``, ties to the longer period), the amplitude is floored to
the 0.5 mA step and capped at the profile limit (at most the device's 130 mA), the pulse width is
floored to whole µs, and a channel gets a balanced biphasic pulse ``(+I, pw)``, optionally ``(0 mA,
gap)``, ``(−I, pw)``: equal and opposite phase charge, which the device itself does not enforce. The
load limit the device applies to a whole update is :func:`within_load_limit`.

Nothing here is ever rounded up. Pure: no I/O, no clock, no session state.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ...errors import InputError, ProtocolError
from ..sciencemode.rates import grid_rate_ratio
from .pulses import MAX_PERIOD_CODE, MAX_POINT_DURATION_US, MlChannelConfig, Period, Point

__all__ = [
    "AMPLITUDE_STEP_MA",
    "DEVICE_MAX_CURRENT_MA",
    "FREQUENCY_MAX_HZ",
    "FREQUENCY_MIN_HZ",
    "LOAD_LIMIT",
    "LOAD_OVERHEAD_US",
    "MAX_GAP_US",
    "MAX_PHASE_US",
    "MIN_PHASE_US",
    "amplitude_ma_floor",
    "biphasic_points",
    "channel_config",
    "delivered_frequency_hz",
    "frequency_hz_from_period",
    "largest_rate_ratio",
    "period_from_frequency_hz",
    "update_load",
    "within_load_limit",
]

AMPLITUDE_STEP_MA = 0.5
DEVICE_MAX_CURRENT_MA = 130.0
"""The P24 refuses more than 130 mA (current codes below 40 or above 560)."""
FREQUENCY_MAX_HZ = 100.0
"""The emsctl profile cap; the device itself reaches about 2000 Hz."""
_MAX_HALF_MS_CODE = MAX_PERIOD_CODE - 1
"""Code 32766 = 16383 ms, the longest period the device accepts."""
FREQUENCY_MIN_HZ = 2000.0 / _MAX_HALF_MS_CODE
MIN_PHASE_US = 10
"""The device executes shorter points as 10 µs; the host never asks for them."""
MAX_PHASE_US = MAX_POINT_DURATION_US
MAX_GAP_US = 1000
"""The emsctl limit on an inter-phase gap."""
LOAD_OVERHEAD_US = 60
"""Per channel and pulse, added to the pulse's duration in the load sum."""
LOAD_LIMIT = 1000.0
"""Σ (pulse µs + 60) / period ms over the enabled channels must stay below this."""
_TINY = 1e-9


def _finite(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, not {value!r}")
    return float(value)


def amplitude_ma_floor(amplitude_ma: float, limit_ma: float = DEVICE_MAX_CURRENT_MA) -> float:
    """The amplitude floored to 0.5 mA, then capped at ``limit_ma`` (itself floored).

    Raises:
        InputError: a negative or non-finite amplitude, or a limit outside 0–130 mA.
    """
    amplitude_ma = _finite(amplitude_ma, "amplitude_ma")
    limit_ma = _finite(limit_ma, "limit_ma")
    if amplitude_ma < 0:
        raise InputError(f"amplitude must not be negative, got {amplitude_ma} mA")
    if not 0 <= limit_ma <= DEVICE_MAX_CURRENT_MA:
        raise InputError(f"the current limit must be within 0–{DEVICE_MAX_CURRENT_MA:g} mA, "
                         f"got {limit_ma}")
    steps = min(math.floor(amplitude_ma / AMPLITUDE_STEP_MA + _TINY),
                math.floor(limit_ma / AMPLITUDE_STEP_MA + _TINY))
    return steps * AMPLITUDE_STEP_MA


def period_from_frequency_hz(frequency_hz: float,
                             max_frequency_hz: float = FREQUENCY_MAX_HZ) -> Period:
    """The period word (0.5 ms steps) for a pulse rate: code = round(2000 / f), ties longer.

    Raises:
        InputError: a frequency that is not positive and finite, whose code falls outside
            1–32766, or whose actual rate 2000 / code is above ``max_frequency_hz``.
    """
    frequency_hz = _finite(frequency_hz, "frequency_hz")
    if frequency_hz <= 0:
        raise InputError(f"frequency must be positive, got {frequency_hz} Hz")
    code = math.floor(2000.0 / frequency_hz + 0.5)
    if not 1 <= code <= _MAX_HALF_MS_CODE:
        raise InputError(f"{frequency_hz:g} Hz is outside the period range 0.5–16383 ms")
    if 2000.0 / code > max_frequency_hz + _TINY:
        raise InputError(f"{frequency_hz:g} Hz is above the {max_frequency_hz:g} Hz cap")
    return Period(code)


def frequency_hz_from_period(period: Period) -> float:
    """The pulse rate a period word gives: 1000 / period ms.

    Raises:
        ProtocolError: period code 0 (no period).
    """
    if period.code == 0:
        raise ProtocolError("period code 0 has no rate")
    return 1000.0 / period.period_ms


def delivered_frequency_hz(frequency_hz: float) -> float:
    """The rate of the period word a frequency becomes: the nearest 0.5 ms step to 1000 / f
    (docs/protocols/sciencemode4.md §14).

    Raises:
        InputError: a frequency outside the period range or above the profile cap.
    """
    return frequency_hz_from_period(period_from_frequency_hz(frequency_hz))


def largest_rate_ratio(low_hz: float, high_hz: float) -> float:
    """The most the P24 makes a rate asked in ``low_hz``–``high_hz`` faster, as a ratio (exact
    for one rate): its periods are on a 0.5 ms grid."""
    return grid_rate_ratio(low_hz, high_hz, delivered_frequency_hz)


def biphasic_points(amplitude_ma: float, pulse_width_us: int,
                    gap_us: int = 0) -> tuple[Point, ...]:
    """A balanced biphasic pulse: (+I, pw), optionally (0 mA, gap), then (−I, pw).

    Args:
        amplitude_ma: the phase current, an exact multiple of 0.5 mA within 0–130 mA.
        pulse_width_us: each phase's width, 10–4095 µs.
        gap_us: the inter-phase gap, 0 (none) to 1000 µs.

    Raises:
        InputError: a value outside these ranges.
    """
    if isinstance(pulse_width_us, bool) or not isinstance(pulse_width_us, int) \
            or not MIN_PHASE_US <= pulse_width_us <= MAX_PHASE_US:
        raise InputError(f"a phase is {MIN_PHASE_US}–{MAX_PHASE_US} whole µs, "
                         f"not {pulse_width_us!r}")
    if isinstance(gap_us, bool) or not isinstance(gap_us, int) \
            or not 0 <= gap_us <= MAX_GAP_US:
        raise InputError(f"an inter-phase gap is 0–{MAX_GAP_US} whole µs, not {gap_us!r}")
    amplitude_ma = _finite(amplitude_ma, "amplitude_ma")
    if not 0 <= amplitude_ma <= DEVICE_MAX_CURRENT_MA:
        raise InputError(f"amplitude {amplitude_ma} mA is outside 0–130 mA")
    try:
        first = Point.of(pulse_width_us, amplitude_ma)
        second = Point.of(pulse_width_us, -amplitude_ma)
    except ProtocolError as exc:
        raise InputError(str(exc)) from exc
    gap = (Point.of(gap_us, 0),) if gap_us else ()
    return (first, *gap, second)


def channel_config(amplitude_ma: float, pulse_width_us: float, frequency_hz: float, *,
                   gap_us: int = 0, ramp_pulses: int = 0,
                   limit_ma: float = DEVICE_MAX_CURRENT_MA,
                   max_frequency_hz: float = FREQUENCY_MAX_HZ) -> MlChannelConfig | None:
    """One channel's Ml_update block for a setpoint, or None when it has no output.

    The amplitude is floored to 0.5 mA and capped at ``limit_ma``; the pulse width is floored
    to whole µs. A channel whose amplitude or width floors to 0 is off (None): leave it out of
    the enable mask.

    Raises:
        InputError: a width of 1–9 µs or above 4095 µs, a gap or ramp out of range, or a
            frequency the period word cannot carry within the cap.
    """
    current_ma = amplitude_ma_floor(amplitude_ma, limit_ma)
    width_us = math.floor(_finite(pulse_width_us, "pulse_width_us") + _TINY)
    if current_ma <= 0 or width_us <= 0:
        return None
    if isinstance(ramp_pulses, bool) or not isinstance(ramp_pulses, int) \
            or not 0 <= ramp_pulses <= 15:
        raise InputError(f"a device ramp is 0–15 pulses, not {ramp_pulses!r}")
    points = biphasic_points(current_ma, width_us, gap_us)
    return MlChannelConfig(points, period_from_frequency_hz(frequency_hz, max_frequency_hz),
                           ramp_pulses)


def update_load(configs: Iterable[MlChannelConfig]) -> float:
    """The device's load sum Σ (Σ point durations µs + 60) / period ms of an update's blocks.

    A block with period code 0 counts as infinite load.
    """
    total = 0.0
    for config in configs:
        period_ms = config.period.period_ms
        if period_ms <= 0:
            return math.inf
        total += (config.pulse_duration_us + LOAD_OVERHEAD_US) / period_ms
    return total


def within_load_limit(configs: Iterable[MlChannelConfig]) -> bool:
    """Whether the device accepts these blocks together: load sum below 1000 (duty < 100 %)."""
    return update_load(configs) < LOAD_LIMIT
