"""Coyote V3 device settings from a device URL, and the capabilities they imply.

The Coyote counts strength in device steps 0–200 that set a pulse *voltage*; no document gives a
step-to-mA relationship (docs/protocols/coyote3.md §11, §14). So the mA-per-step factor is a
declared calibration and is **required**: without it the driver refuses to open (HZ-01: no guessed
scaling). Waveform intensity 0–100 is a relative pulse width without a unit; by default one
intensity unit is the nominal 1 µs of the V2 correspondence (flagged uncalibrated), and a profile
may declare another factor. The balance parameters have no documented defaults, so a real device
needs them declared; the simulator ships a synthetic profile.

URL parameters (``coyote3://ADDRESS?ma_per_step=0.2&frequency_balance=128&intensity_balance=128``):

- ``ma_per_step`` (required): mA per strength step, 0.01–2;
- ``us_per_intensity``: pulse width in µs per waveform-intensity unit, 0.5–4 (default 1);
- ``frequency_balance``, ``intensity_balance``: BF balance bytes 0–255 (required for hardware);
- ``connect_timeout_s``: how long to try to connect, 1–60 s (default 10).

This module is pure: it parses strings and builds records; it never opens a link.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import Field

from ...contract import Capabilities
from ...device_params import DeviceParams, P, parse_params
from ...errors import InputError
from ...limit_table import PEAK_CEILING_MA, PULSE_WIDTH_MAX_CEILING_US, WATCHDOG_CEILING_S
from .frames import BALANCE_MAX, FRAME_DURATION_MS, INTENSITY_MAX, STRENGTH_STEPS_MAX
from .frequency import FREQUENCY_HZ_MAX, FREQUENCY_HZ_MIN, largest_rate_ratio

__all__ = [
    "COYOTE_MODEL",
    "COYOTE_TELEMETRY",
    "CoyoteConfig",
    "CoyoteParams",
    "capabilities_for",
    "parse_coyote_params",
]

COYOTE_MODEL = "DG-LAB Coyote V3"
#: What the driver reports: B1 strengths, the battery, faults and a lost link.
COYOTE_TELEMETRY = frozenset({"strength", "battery", "device_error", "link_lost", "stopped"})

MA_PER_STEP_MIN = 0.01
MA_PER_STEP_MAX = 2.0
US_PER_INTENSITY_MIN = 0.5
#: 100 intensity units must stay within the L6 ceiling of 400 µs.
US_PER_INTENSITY_MAX = PULSE_WIDTH_MAX_CEILING_US / INTENSITY_MAX
CONNECT_TIMEOUT_DEFAULT_S = 10.0
#: The synthetic profile of the simulator declares these balances (no vendor default exists).
SIMULATED_BALANCE = 128
#: The emulated Coyote's own calibration: one strength step is 0.2 mA into its load (0–40 mA over
#: 200 steps). A real unit's owner measures theirs (docs/devices.md §3.3).
SIMULATED_MA_PER_STEP = 0.2



@dataclass(frozen=True, slots=True)
class CoyoteConfig:
    """How one Coyote V3 is driven: its calibration factors and BF balances.

    Attributes:
        ma_per_step: mA per strength step (declared calibration; holds only for its load).
        us_per_intensity: µs of pulse width per waveform-intensity unit.
        pulse_width_calibrated: False when ``us_per_intensity`` is the nominal default.
        frequency_balance: BF "balance 1" byte, both channels.
        intensity_balance: BF "balance 2" byte, both channels.
        connect_timeout_s: how long ``connect()`` tries before giving up.

    Raises:
        InputError: a factor or byte out of range.
    """

    ma_per_step: float
    us_per_intensity: float = 1.0
    pulse_width_calibrated: bool = False
    frequency_balance: int = SIMULATED_BALANCE
    intensity_balance: int = SIMULATED_BALANCE
    connect_timeout_s: float = CONNECT_TIMEOUT_DEFAULT_S

    def __post_init__(self) -> None:
        _check_range("ma_per_step", self.ma_per_step, MA_PER_STEP_MIN, MA_PER_STEP_MAX)
        _check_range("us_per_intensity", self.us_per_intensity, US_PER_INTENSITY_MIN,
                     US_PER_INTENSITY_MAX)
        _check_range("connect_timeout_s", self.connect_timeout_s, 1.0, 60.0)
        for name in ("frequency_balance", "intensity_balance"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) \
                    or not 0 <= value <= BALANCE_MAX:
                raise InputError(f"coyote3 parameter {name} must be an integer 0–255, "
                                 f"got {value!r}")

    @property
    def max_steps(self) -> int:
        """The highest strength the driver ever asks for: 200, or fewer under the L3 ceiling."""
        return min(STRENGTH_STEPS_MAX, math.floor(PEAK_CEILING_MA / self.ma_per_step + 1e-9))

    def steps_for_ma(self, amplitude_ma: float) -> int:
        """Whole device steps for ``amplitude_ma``, rounded down (never up).

        Raises:
            InputError: a negative or non-finite amplitude, or one above ``max_steps``.
        """
        if not (math.isfinite(amplitude_ma) and amplitude_ma >= 0):
            raise InputError(f"amplitude must be finite and ≥ 0 mA, got {amplitude_ma!r}")
        steps = math.floor(amplitude_ma / self.ma_per_step + 1e-6)
        if steps > self.max_steps:
            raise InputError(f"{amplitude_ma:g} mA is {steps} steps, over the {self.max_steps} "
                             "the driver allows")
        return steps

    def intensity_for_us(self, pulse_width_us: float) -> int:
        """Waveform intensity for a pulse width, rounded down (never a wider pulse).

        Raises:
            InputError: a pulse width that maps outside intensity 1–100.
        """
        intensity = math.floor(pulse_width_us / self.us_per_intensity + 1e-6) \
            if math.isfinite(pulse_width_us) else -1
        if not 1 <= intensity <= INTENSITY_MAX:
            raise InputError(f"{pulse_width_us:g} µs is outside what the Coyote can express "
                             f"({self.us_per_intensity:g}–"
                             f"{INTENSITY_MAX * self.us_per_intensity:g} µs)")
        return intensity


def capabilities_for(config: CoyoteConfig) -> Capabilities:
    """What a Coyote V3 driven with ``config`` can do.

    The device's own dead-man is 100 ms per frame; the host streams frames only while a lease
    is valid, so the longest lease is the L21 watchdog ceiling.
    """
    step_ma = config.ma_per_step
    return Capabilities(
        model=COYOTE_MODEL,
        channels=2,
        amplitude_max_ma=config.max_steps * step_ma,
        amplitude_step_ma=step_ma,
        pulse_width_min_us=config.us_per_intensity,
        pulse_width_max_us=INTENSITY_MAX * config.us_per_intensity,
        frequency_min_hz=FREQUENCY_HZ_MIN,
        frequency_max_hz=FREQUENCY_HZ_MAX,
        frequency_per_channel=True,
        update_period_s=FRAME_DURATION_MS / 1000.0,
        max_lease_s=WATCHDOG_CEILING_S,
        has_output_watchdog=True,
        telemetry=COYOTE_TELEMETRY,
        ma_per_step=step_ma,
        bursts=False,
        # docs/protocols/coyote3.md §4: rates from period bins, up to 5 % faster than asked
        rate_ratio=largest_rate_ratio,
    )


class CoyoteParams(DeviceParams):
    """``coyote3://ADDRESS?…`` parameters: the declared calibration and the BF balances."""

    ma_per_step: float = Field(ge=MA_PER_STEP_MIN, le=MA_PER_STEP_MAX, description=(
        "mA per strength step, required (the Coyote counts steps, not mA)"))
    us_per_intensity: float | None = Field(
        None, ge=US_PER_INTENSITY_MIN, le=US_PER_INTENSITY_MAX, description=(
            "µs of pulse width per waveform-intensity unit (default 1, uncalibrated)"))
    frequency_balance: int = Field(ge=0, le=BALANCE_MAX, description=(
        "BF frequency balance 0–255 (required for hardware)"))
    intensity_balance: int = Field(ge=0, le=BALANCE_MAX, description=(
        "BF intensity balance 0–255 (required for hardware)"))
    connect_timeout_s: float = Field(CONNECT_TIMEOUT_DEFAULT_S, ge=1.0, le=60.0, description=(
        "how long to try to connect, 1–60 s (default 10)"))

    def config(self) -> CoyoteConfig:
        """The driver's settings these parameters declare."""
        return CoyoteConfig(
            ma_per_step=self.ma_per_step,
            us_per_intensity=self.us_per_intensity or 1.0,
            pulse_width_calibrated=self.us_per_intensity is not None,
            frequency_balance=self.frequency_balance,
            intensity_balance=self.intensity_balance,
            connect_timeout_s=self.connect_timeout_s,
        )


def parse_coyote_params(model: type[P], params: Mapping[str, str], scheme: str) -> P:
    """Parse Coyote URL parameters, first saying plainly what a missing declaration means.

    Raises:
        InputError: a missing ``ma_per_step`` or (for a model that requires them) balance, an
            unknown key, or a value that is not a number or out of range.
    """
    if "ma_per_step" not in params and model.model_fields["ma_per_step"].is_required():
        raise InputError("the Coyote V3 counts strength in steps, not mA: declare the current of "
                         "one step you measured on your unit with '?ma_per_step=…' in the device "
                         "URL (for example 0.2; docs/devices.md §3.3 says how to measure it)")
    missing = [k for k in ("frequency_balance", "intensity_balance")
               if k not in params and model.model_fields[k].is_required()]
    if missing:
        raise InputError(f"the Coyote V3 has no documented default for {' and '.join(missing)}; "
                         "declare what your unit is set to in the device URL (for example "
                         "'&frequency_balance=128&intensity_balance=128', the middle; "
                         "docs/devices.md §3.3)")
    return parse_params(model, params, scheme)


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not (math.isfinite(value) and low <= value <= high):
        raise InputError(f"coyote3 parameter {name} must be within {low:g}–{high:g}, "
                         f"got {value!r}")
