"""Device-URL parameters of the openEMSstim driver: the declared external stimulator and options.

The board modulates a separate stimulator (spec §12): its pulse rate and width are the user's
declaration and cannot change from the host, and the intensity ``I`` reaches milliamperes only
through a declared ``ma_at_100`` (the current at I = 100, linearity assumed explicitly). All three
are required; nothing is guessed. Parsing is strict: unknown keys are refused with the list of
known ones. Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...errors import InputError
from ...limits import (
    FREQUENCY_MAX_CEILING_HZ,
    FREQUENCY_MIN_CEILING_HZ,
    PEAK_CEILING_MA,
    PULSE_WIDTH_MAX_CEILING_US,
    PULSE_WIDTH_MIN_CEILING_US,
)
from .intensity import (
    DEFAULT_WINDOW,
    MAX_INTENSITY_PCT,
    WIPER_MAX_STEPS,
    CalibrationWindow,
    intensity_pct_to_wiper_steps,
)

__all__ = ["DeclaredStimulator", "float_param", "parse_declared", "refuse_unknown"]

DECLARED_KEYS: dict[str, str] = {
    "ma_at_100": "mA the external stimulator delivers through the board at I = 100 (required)",
    "frequency_hz": "the external stimulator's fixed pulse rate (required)",
    "pulse_width_us": "the external stimulator's fixed pulse width (required)",
}


@dataclass(frozen=True, slots=True)
class DeclaredStimulator:
    """What the user declares about the external stimulator behind the board.

    Attributes:
        frequency_hz: its fixed pulse rate.
        pulse_width_us: its fixed phase width.
        ma_at_100: the current at I = 100 %; the driver assumes I → mA is linear.
    """

    frequency_hz: float
    pulse_width_us: float
    ma_at_100: float
    window: CalibrationWindow = DEFAULT_WINDOW

    @property
    def ma_per_pct(self) -> float:
        """mA per intensity step of 1 % on average (the guard's rounding step)."""
        return self.ma_at_100 / 100.0

    def ma_at(self, intensity_pct: int) -> float:
        """The current the declaration predicts at ``intensity_pct`` (0–100).

        The board's attenuation is linear in the wiper's level, and the firmware maps ``I`` to
        a level with rounding (§4.2), so the assumed-linear calibration is applied to the level:
        0 mA at the level of I = 0, ``ma_at_100`` at the level of I = 100.
        """
        zero = _level(0, self.window)
        return self.ma_at_100 * (_level(intensity_pct, self.window) - zero) / (
            _level(MAX_INTENSITY_PCT, self.window) - zero)

    def intensity_for(self, amplitude_ma: float) -> int:
        """The largest ``I`` (0–100) whose predicted current is not above ``amplitude_ma``.

        Rounding is always down: the board never gets more than was asked for.
        """
        if not amplitude_ma > 0:
            return 0
        best = 0
        for intensity_pct in range(1, MAX_INTENSITY_PCT + 1):
            if self.ma_at(intensity_pct) > amplitude_ma + 1e-9:
                break
            best = intensity_pct
        return best


def _level(intensity_pct: int, window: CalibrationWindow) -> int:
    return WIPER_MAX_STEPS - intensity_pct_to_wiper_steps(intensity_pct, window)


def refuse_unknown(params: dict[str, str], known: dict[str, str], scheme: str) -> None:
    """Refuse keys that are not in ``known``.

    Raises:
        InputError: an unknown key; the message lists the known ones.
    """
    unknown = set(params) - set(known)
    if unknown:
        listing = "; ".join(f"{k}: {v}" for k, v in known.items())
        raise InputError(f"unknown {scheme} parameter(s) {', '.join(sorted(unknown))}; "
                         f"known: {listing}")


def float_param(params: dict[str, str], key: str, default: float | None, low: float,
                high: float) -> float:
    """A number from the URL within [low, high].

    Raises:
        InputError: missing without a default, not a number, or out of range.
    """
    if key not in params:
        if default is None:
            raise InputError(f"openEMSstim needs '{key}' in the device URL")
        return default
    try:
        value = float(params[key])
    except ValueError as exc:
        raise InputError(f"openEMSstim parameter {key}={params[key]!r} is not a number") from exc
    if not (math.isfinite(value) and low <= value <= high):
        raise InputError(f"openEMSstim parameter {key}={value:g} is outside {low:g}–{high:g}")
    return value


def parse_declared(params: dict[str, str]) -> DeclaredStimulator:
    """Read the declared external stimulator from URL parameters.

    Raises:
        InputError: a required parameter is missing (the message names all three and why),
            or a value is malformed or out of range.
    """
    missing = [k for k in DECLARED_KEYS if k not in params]
    if missing:
        raise InputError(
            f"openEMSstim modulates an external stimulator, so the device URL must declare "
            f"{', '.join(missing)} (e.g. '?ma_at_100=40&frequency_hz=80&pulse_width_us=180'): "
            "the board cannot set rate or width, and its intensity is a percentage that "
            "becomes mA only through your measured ma_at_100")
    return DeclaredStimulator(
        # L6, L7: a declared setting outside the ceilings could never run a plan
        frequency_hz=float_param(params, "frequency_hz", None, FREQUENCY_MIN_CEILING_HZ,
                                 FREQUENCY_MAX_CEILING_HZ),
        pulse_width_us=float_param(params, "pulse_width_us", None, PULSE_WIDTH_MIN_CEILING_US,
                                   PULSE_WIDTH_MAX_CEILING_US),
        # L3: a declaration above the peak ceiling could never be used safely at I = 100
        ma_at_100=float_param(params, "ma_at_100", None, 0.1, PEAK_CEILING_MA),
    )
