"""Device-URL parameters of the openEMSstim driver: the declared external stimulator and options.

The board modulates a separate stimulator (docs/protocols/openemsstim.md §12): its pulse rate and
width are the user's declaration and cannot change from the host, and the intensity ``I`` reaches
milliamperes only through a declared ``ma_at_100`` (the current at I = 100, linearity assumed
explicitly). All three are required; nothing is guessed. Parsing is strict: unknown keys are refused
with the list of known ones. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from pydantic import Field

from ...device_params import DeviceParams, parse_params
from ...errors import InputError
from ...limit_table import (
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
from .transport import READY_TIMEOUT_S

__all__ = ["DeclaredParams", "DeclaredStimulator", "SerialParams", "parse_openems_params"]

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
    def full_scale_ma(self) -> float:
        """The current at wiper 0, where the board passes the external stimulator unattenuated.

        Every ``I`` from 126 to 205 opens the wiper fully (docs/protocols/openemsstim.md §4.2) and
        the firmware does not clamp ``I``, so a corrupted line can reach this level: it is the
        board's real bound, not ``ma_at_100``. The declared linear calibration extrapolated to wiper
        0 gives ``ma_at_100 × (255 − level(0)) / (level(100) − level(0))``, 1.26 × ``ma_at_100`` for
        the default window.
        """
        return self.ma_at_100 * self._full_scale_ratio

    def largest_ma_at_100_within(self, cap_ma: float) -> float:
        """The largest ``ma_at_100`` whose full scale is not above ``cap_ma``."""
        return cap_ma / self._full_scale_ratio

    @property
    def _full_scale_ratio(self) -> float:
        zero = _level(0, self.window)
        return (WIPER_MAX_STEPS - zero) / (_level(MAX_INTENSITY_PCT, self.window) - zero)

    @property
    def ma_per_pct(self) -> float:
        """mA per intensity step of 1 % on average (the guard's rounding step)."""
        return self.ma_at_100 / 100.0

    def ma_at(self, intensity_pct: int) -> float:
        """The current the declaration predicts at ``intensity_pct`` (0–100).

        The board's attenuation is linear in the wiper's level, and the firmware maps ``I`` to
        a level with rounding (docs/protocols/openemsstim.md §4.2), so the assumed-linear
        calibration is applied to the level: 0 mA at the level of I = 0, ``ma_at_100`` at the level
        of I = 100.
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


class DeclaredParams(DeviceParams):
    """The declaration every openEMSstim URL carries: the external stimulator behind the board.

    Ranges: the rate and width within the ceilings of limits L6/L7 (a declared setting outside
    them could never run a plan), the current within the L3 peak ceiling.
    """

    ma_at_100: float = Field(ge=0.1, le=PEAK_CEILING_MA, description=DECLARED_KEYS["ma_at_100"])
    frequency_hz: float = Field(ge=FREQUENCY_MIN_CEILING_HZ, le=FREQUENCY_MAX_CEILING_HZ,
                                description=DECLARED_KEYS["frequency_hz"])
    pulse_width_us: float = Field(ge=PULSE_WIDTH_MIN_CEILING_US, le=PULSE_WIDTH_MAX_CEILING_US,
                                  description=DECLARED_KEYS["pulse_width_us"])

    def declared(self) -> DeclaredStimulator:
        """The declared external stimulator."""
        return DeclaredStimulator(frequency_hz=self.frequency_hz,
                                  pulse_width_us=self.pulse_width_us, ma_at_100=self.ma_at_100)


class SerialParams(DeclaredParams):
    """``openems://PORT?…`` parameters."""

    ready_timeout_s: float = Field(READY_TIMEOUT_S, ge=0.0, le=60.0, description=(
        "how long to wait for the setup banner after opening (default 12)"))


P = TypeVar("P", bound=DeclaredParams)


def parse_openems_params(model: type[P], params: Mapping[str, str], scheme: str) -> P:
    """Parse openEMSstim URL parameters, first saying plainly why the declaration is needed.

    Raises:
        InputError: a missing declaration (the message names all three and why), an unknown
            key, or a value that is malformed or out of range.
    """
    missing = [k for k in DECLARED_KEYS if k not in params and model.model_fields[k].is_required()]
    if missing:
        raise InputError(
            f"openEMSstim modulates an external stimulator, so the device URL must declare "
            f"{', '.join(missing)} of the stimulator behind it (for example "
            "'?ma_at_100=16&frequency_hz=80&pulse_width_us=180'; docs/devices.md §3.4 says how "
            "to measure them): the board cannot set rate or width, and its intensity is a "
            "percentage that becomes mA only through your measured ma_at_100")
    return parse_params(model, params, scheme)
