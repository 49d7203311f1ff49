"""openEMSstim intensity ↔ potentiometer mapping and calibration window (spec §4.2, §4.3).

The intensity ``I`` is a percentage of a per-channel calibration window on an AD5252 wiper, not
a current. These functions reproduce the firmware's arithmetic exactly (integers, no float
error). Pure: no I/O, no clock; they must never clamp ``I`` at 100 on the device side, because
the firmware does not.
"""

from __future__ import annotations

from dataclasses import dataclass

from emsctl.errors import ProtocolError

__all__ = [
    "DEFAULT_WINDOW",
    "MAX_INTENSITY_PCT",
    "WIPER_MAX_STEPS",
    "CalibrationWindow",
    "intensity_pct_to_wiper_steps",
    "option_pct_to_window_steps",
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


def intensity_pct_to_wiper_steps(
    intensity_pct: int, window: CalibrationWindow = DEFAULT_WINDOW
) -> int:
    """Map an intensity to the wiper position the firmware writes (§4.2).

    ``level = trunc((max - min)·(I - 1)/100 + 0.5) + min`` clamped to 0-255, wiper = 255 - level.
    Computed exactly; I above 100 follows the formula, as the firmware does not clamp it.

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
    span = window.max_steps - window.min_steps
    # trunc(span·(I-1)/100 + 1/2) == trunc((2·span·(I-1) + 100) / 200), without float error.
    level = _trunc_div(2 * span * (intensity_pct - 1) + 100, 200) + window.min_steps
    return WIPER_MAX_STEPS - min(max(level, 0), WIPER_MAX_STEPS)


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
    """Convert an ``OMA``/``OMI`` percentage to steps: trunc(255·pct/100 + 0.5) (§4.3).

    Raises:
        ProtocolError: if ``pct`` is negative.
    """
    if pct < 0:
        raise ProtocolError(f"calibration percentage {pct} is negative")
    return (2 * WIPER_MAX_STEPS * pct + 100) // 200
