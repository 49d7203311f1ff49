"""The safety numbers of emsctl: ceilings, shipped defaults, and the checks that use them.

Every number cites its limit ID from docs/safety-basis.md §2 (L1–L24). A *ceiling* is a constant in
this module; nothing at run time can raise it. A *default* is the shipped configuration value,
which a user may move only within the ceiling (docs/safety-basis.md §1). Device profiles, programs
and calibration can only tighten: combine them with :func:`tighten` and :func:`intersect`.

:class:`Limits` refuses, on construction, any value looser than its ceiling, so no ``Limits``
object anywhere can be looser than :data:`CEILINGS`.

This module must never clamp a value silently, read a clock or do I/O other than reading the
limits file in :func:`load_limits_file`. The formulas live in :mod:`emsctl.formulas`; boundary
verdicts here always come from their exact (rational) flavour.
"""

from __future__ import annotations

import difflib
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import Enum, StrEnum
from types import MappingProxyType
from typing import Final

from . import formulas as fx
from .datafile import DataFileRefused, read_data_file
from .errors import LimitsFileError

__all__ = [
    "BURST_DUTY_MAX_CEILING",
    "BURST_MAX_CEILING_S",
    "CEILINGS",
    "COMPLIANCE_CEILING_V",
    "COMPLIANCE_DEFAULT_MAX_V",
    "CURRENT_DENSITY_CEILING_MA_CM2",
    "DC_MEAN_MAX_UA",
    "DEFAULTS",
    "ELECTRODE_AREA_MIN_CEILING_CM2",
    "EMS_ELECTRODE_AREA_MIN_CM2",
    "ENERGY_PER_PULSE_CEILING_MJ",
    "FREQUENCY_MAX_CEILING_HZ",
    "FREQUENCY_MIN_CEILING_HZ",
    "HEARTBEAT_CEILING_S",
    "IMPEDANCE_MAX_OHM",
    "IMPEDANCE_RISE_MAX_FRACTION",
    "LIMITS_FILE_MAX_BYTES",
    "LIMIT_NAMES",
    "LIMIT_SPECS",
    "MINUTES_PER_DAY_CEILING",
    "MIN_GAP_BETWEEN_SESSIONS_CEILING_S",
    "NET_CHARGE_MAX_FRACTION",
    "PEAK_CEILING_MA",
    "PHASE_CHARGE_CEILING_UC",
    "PLAN_RISE_CEILING_MA_PER_S",
    "PLAN_RISE_DEFAULT_MA_PER_S",
    "POWER_DENSITY_CEILING_W_CM2",
    "PULSE_WIDTH_MAX_CEILING_US",
    "PULSE_WIDTH_MIN_CEILING_US",
    "RAMP_MIN_CEILING_S",
    "RMS_CEILING_MA",
    "SESSIONS_PER_DAY_CEILING",
    "SESSION_MAX_CEILING_S",
    "SHANNON_K_CEILING",
    "SOFT_START_MIN_CEILING_S",
    "STOP_TO_WIRE_MAX_S",
    "STOP_TO_ZERO_MAX_S",
    "TENS_PURPOSES",
    "TETANIC_FREQUENCY_HZ",
    "TRAIN_OFF_MIN_CEILING_S",
    "TRAIN_ON_MAX_CEILING_S",
    "USER_RISE_CEILING_MA_PER_S",
    "USER_STEP_CEILING_MA",
    "WATCHDOG_CEILING_S",
    "Finding",
    "Level",
    "LimitSpec",
    "Limits",
    "Tighter",
    "at_least_as_tight",
    "check_pulse",
    "check_train",
    "electrode_area_min_cm2",
    "intersect",
    "limits_from_mapping",
    "load_limits_file",
    "tighten",
]

# --- Ceilings: kernel constants (docs/safety-basis.md §2, "Absolute ceiling" column)
# ------------------
PEAK_CEILING_MA: Final = 80.0  # L3
RMS_CEILING_MA: Final = 50.0  # L4
PULSE_WIDTH_MIN_CEILING_US: Final = 50.0  # L6: phase width 50–400 µs
PULSE_WIDTH_MAX_CEILING_US: Final = 400.0  # L6
FREQUENCY_MIN_CEILING_HZ: Final = 1.0  # L7: 1–150 Hz (inner rate for bursts)
FREQUENCY_MAX_CEILING_HZ: Final = 150.0  # L7
PHASE_CHARGE_CEILING_UC: Final = 32.0  # L8: Q ≤ 32 µC (80 mA × 400 µs)
SHANNON_K_CEILING: Final = 1.85  # L8: k ≤ 1.85
CURRENT_DENSITY_CEILING_MA_CM2: Final = 2.0  # L9: block strictly above 2.0; exactly 2.0 passes
POWER_DENSITY_CEILING_W_CM2: Final = 0.25  # L10: strict, P/A must stay below 0.25
ENERGY_PER_PULSE_CEILING_MJ: Final = 300.0  # L11: assertion only, never binds (2.56 mJ max)
ELECTRODE_AREA_MIN_CEILING_CM2: Final = 4.0  # L13: reject pads below 4 cm²
EMS_ELECTRODE_AREA_MIN_CM2: Final = 16.0  # L13: EMS programs need pads of ≥ 16 cm² (≈ 4 × 4 cm)
#: Program purposes that are TENS; every other purpose is EMS (muscle stimulation) for L13.
TENS_PURPOSES: Final = frozenset({"tens"})
SOFT_START_MIN_CEILING_S: Final = 2.0  # L15
RAMP_MIN_CEILING_S: Final = 0.5  # L16: contraction ramps, each
PLAN_RISE_CEILING_MA_PER_S: Final = 80.0  # L16 family [E]: amplitude rise inside a plan
PLAN_RISE_DEFAULT_MA_PER_S: Final = 40.0  # L16 family [E]: 40 mA over a 1.0 s default ramp
USER_STEP_CEILING_MA: Final = 2.0  # L17: per user command
USER_RISE_CEILING_MA_PER_S: Final = 5.0  # L17: decreases and stop are never rate-limited
TETANIC_FREQUENCY_HZ: Final = 20.0  # L18 applies to motor-level trains at or above this rate
TRAIN_ON_MAX_CEILING_S: Final = 15.0  # L18: ON includes ramps
TRAIN_OFF_MIN_CEILING_S: Final = 5.0  # L18
BURST_MAX_CEILING_S: Final = 0.2  # L18 exemption: TENS bursts ≤ 200 ms …
BURST_DUTY_MAX_CEILING: Final = 0.25  # L18 exemption: … with burst duty ≤ 25 %
SESSION_MAX_CEILING_S: Final = 3600.0  # L19: 60 min, monotonic clock
SESSIONS_PER_DAY_CEILING: Final = 4  # L20, per body site
MINUTES_PER_DAY_CEILING: Final = 120.0  # L20, per body site
MIN_GAP_BETWEEN_SESSIONS_CEILING_S: Final = 0.0  # L20 sets no general gap ceiling (default 1 h)
WATCHDOG_CEILING_S: Final = 1.0  # L21: device zeroes output after 1.0 s without heartbeat
HEARTBEAT_CEILING_S: Final = 0.25  # L21: host heartbeat every 250 ms
# Not Limits fields: device, telemetry and bench figures for the modules that check them.
NET_CHARGE_MAX_FRACTION: Final = 0.01  # L2: |Q_net| ≤ 1 % of phase charge, when reported
DC_MEAN_MAX_UA: Final = 10.0  # L2: mean DC ≤ 10 µA, when measurable
COMPLIANCE_DEFAULT_MAX_V: Final = 100.0  # L5: device-declared compliance
COMPLIANCE_CEILING_V: Final = 150.0  # L5: refuse a profile that declares more
IMPEDANCE_MAX_OHM: Final = 5000.0  # L12: stop above 5 kΩ (cannot be disabled)
IMPEDANCE_RISE_MAX_FRACTION: Final = 0.5  # L12: stop on a rise > 50 % within a session
STOP_TO_WIRE_MAX_S: Final = 0.05  # L22: UI/API stop → command on the wire
STOP_TO_ZERO_MAX_S: Final = 0.3  # L22: stop → output zero, end to end

LIMITS_FILE_MAX_BYTES: Final = 1 << 20
"""Size cap on a user limits file (HZ-13): larger files are refused unread."""


class Tighter(Enum):
    """Which way a limit gets tighter."""

    SMALLER = "smaller"
    LARGER = "larger"
    TRUE = "true"


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """One row of :data:`LIMIT_SPECS`: what a :class:`Limits` field is and how it tightens."""

    limit_id: str
    unit: str
    tighter: Tighter
    ceiling: float | int | bool
    default: float | int | bool


_S, _L, _T = Tighter.SMALLER, Tighter.LARGER, Tighter.TRUE

LIMIT_SPECS: Final[Mapping[str, LimitSpec]] = MappingProxyType(
    {
        # L3 default: min(0.9 × TOL, 40 mA); 40 mA while TOL is unknown (calibration tightens).
        "peak_ma": LimitSpec("L3", "mA", _S, PEAK_CEILING_MA, 40.0),
        "rms_ma": LimitSpec("L4", "mA", _S, RMS_CEILING_MA, 25.0),
        "pulse_width_min_us": LimitSpec("L6", "µs", _L, PULSE_WIDTH_MIN_CEILING_US, 100.0),
        "pulse_width_max_us": LimitSpec("L6", "µs", _S, PULSE_WIDTH_MAX_CEILING_US, 300.0),
        "frequency_min_hz": LimitSpec("L7", "Hz", _L, FREQUENCY_MIN_CEILING_HZ, 1.0),
        "frequency_max_hz": LimitSpec("L7", "Hz", _S, FREQUENCY_MAX_CEILING_HZ, 100.0),
        "phase_charge_uc": LimitSpec("L8", "µC", _S, PHASE_CHARGE_CEILING_UC, 20.0),
        "shannon_k": LimitSpec("L8", "", _S, SHANNON_K_CEILING, 1.5),
        "current_density_ma_cm2": LimitSpec(
            "L9", "mA/cm²", _S, CURRENT_DENSITY_CEILING_MA_CM2, 2.0
        ),
        # L9 warning at ≥ 1.0. At its ceiling (= the block level) there is no separate warning.
        "current_density_warn_ma_cm2": LimitSpec(
            "L9", "mA/cm²", _S, CURRENT_DENSITY_CEILING_MA_CM2, 1.0
        ),
        # L10: the field is "≤ value"; the kernel also blocks P/A ≥ 0.25 (strict ceiling).
        "power_density_w_cm2": LimitSpec("L10", "W/cm²", _S, POWER_DENSITY_CEILING_W_CM2, 0.05),
        # L13 default 4 cm²: the ≥ 16 cm² of EMS programs is a program rule (W5 passes defaults),
        # EMS_ELECTRODE_AREA_MIN_CM2 through electrode_area_min_cm2().
        "electrode_area_min_cm2": LimitSpec("L13", "cm²", _L, ELECTRODE_AREA_MIN_CEILING_CM2, 4.0),
        "soft_start_min_s": LimitSpec("L15", "s", _L, SOFT_START_MIN_CEILING_S, 5.0),
        "ramp_min_s": LimitSpec("L16", "s", _L, RAMP_MIN_CEILING_S, 1.0),
        "user_step_ma": LimitSpec("L17", "mA", _S, USER_STEP_CEILING_MA, 1.0),
        "user_rise_ma_per_s": LimitSpec("L17", "mA/s", _S, USER_RISE_CEILING_MA_PER_S, 2.0),
        "plan_rise_ma_per_s": LimitSpec(
            "L16", "mA/s", _S, PLAN_RISE_CEILING_MA_PER_S, PLAN_RISE_DEFAULT_MA_PER_S
        ),
        # L18 smaller is tighter: a lower threshold puts more trains under the on/off rule.
        "tetanic_frequency_hz": LimitSpec("L18", "Hz", _S, TETANIC_FREQUENCY_HZ, 20.0),
        "train_on_max_s": LimitSpec("L18", "s", _S, TRAIN_ON_MAX_CEILING_S, 10.0),
        "train_off_min_s": LimitSpec("L18", "s", _L, TRAIN_OFF_MIN_CEILING_S, 5.0),
        "off_at_least_on": LimitSpec("L18", "", _T, False, True),  # default: OFF ≥ ON
        "burst_max_s": LimitSpec("L18", "s", _S, BURST_MAX_CEILING_S, 0.2),
        "burst_duty_max": LimitSpec("L18", "", _S, BURST_DUTY_MAX_CEILING, 0.25),
        # L19 default: shipped programs last ≤ 30 min; a longer own program needs a limits file.
        "session_max_s": LimitSpec("L19", "s", _S, SESSION_MAX_CEILING_S, 1800.0),
        "sessions_per_day": LimitSpec("L20", "sessions", _S, SESSIONS_PER_DAY_CEILING, 3),
        "minutes_per_day": LimitSpec("L20", "min", _S, MINUTES_PER_DAY_CEILING, 90.0),
        "min_gap_between_sessions_s": LimitSpec(
            "L20", "s", _L, MIN_GAP_BETWEEN_SESSIONS_CEILING_S, 3600.0
        ),
        "watchdog_s": LimitSpec("L21", "s", _S, WATCHDOG_CEILING_S, 1.0),
        "heartbeat_s": LimitSpec("L21", "s", _S, HEARTBEAT_CEILING_S, 0.25),
    }
)
"""Every :class:`Limits` field: limit ID, unit, direction of "tighter", ceiling and default."""

#: Short human names of the limits L1–L24 (SAFETY.md "Limits as enforced"), for reports that
#: must never show a bare limit ID.
LIMIT_NAMES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "L1": "Waveform",
        "L2": "Net charge per pulse",
        "L3": "Peak current",
        "L4": "rms current",
        "L5": "Device compliance voltage",
        "L6": "Pulse width",
        "L7": "Pulse frequency",
        "L8": "Phase charge and Shannon k",
        "L9": "Current density",
        "L10": "Power density",
        "L11": "Energy per pulse",
        "L12": "Load impedance",
        "L13": "Electrode area",
        "L14": "Start from zero",
        "L15": "Soft start",
        "L16": "Ramps",
        "L17": "No step-ups",
        "L18": "Motor trains",
        "L19": "Session length",
        "L20": "Dose per site",
        "L21": "Heartbeat and watchdog",
        "L22": "Stop latency",
        "L23": "Electrode placement",
        "L24": "Contraindications",
    }
)

# Fields that may be negative: k = log10(Q²/A) is negative for small charges.
_SIGNED_FIELDS: Final = frozenset({"shannon_k"})


def _show(value: object) -> str:
    """Format a value for an error message: 80.0 → "80", True → "true"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return repr(value).removesuffix(".0")
    text = repr(value) if isinstance(value, (int, float, str)) else type(value).__name__
    return text if len(text) <= 40 else f"{text[:37]}..."


def _is_looser(tighter: Tighter, value: float | int | bool, reference: float | int | bool) -> bool:
    if tighter is Tighter.SMALLER:
        return value > reference
    if tighter is Tighter.LARGER:
        return value < reference
    return reference is True and value is False


def _validated(
    name: str, value: object, reference: float | int | bool, label: str
) -> float | int | bool:
    """Check one field value's type, finiteness and sign, and that it does not loosen.

    Raises:
        LimitsFileError: Naming the field and, for a loosening, its limit ID.
    """
    spec = LIMIT_SPECS[name]
    result: float | int | bool
    if isinstance(spec.ceiling, bool):
        if not isinstance(value, bool):
            raise LimitsFileError(f"{name} must be true or false, not {_show(value)}.")
        result = value
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LimitsFileError(f"{name} must be a number, not {_show(value)}.")
    elif isinstance(spec.ceiling, int):
        if not isinstance(value, int):
            raise LimitsFileError(f"{name} must be a whole number, not {_show(value)}.")
        result = value
    else:
        try:
            result = float(value)
        except OverflowError:
            result = math.inf
        if not math.isfinite(result):
            raise LimitsFileError(f"{name} must be a finite number, not {_show(value)}.")
    if name not in _SIGNED_FIELDS and result < 0:
        raise LimitsFileError(f"{name} must not be negative, not {_show(value)}.")
    if _is_looser(spec.tighter, result, reference):
        unit = f" {spec.unit}" if spec.unit else ""
        raise LimitsFileError(
            f"{name} = {_show(result)} would loosen {spec.limit_id} ({label} {_show(reference)}"
            f"{unit}); limits can only be tightened."
        )
    return result


@dataclass(frozen=True, slots=True)
class Limits:
    """Effective safety limits: one field per limit, named with its unit.

    Build one by combining :data:`CEILINGS`/:data:`DEFAULTS` with :func:`tighten`,
    :func:`intersect` or :func:`load_limits_file`. Construction refuses wrong types, non-finite or
    negative numbers and any value looser than its ceiling (see :data:`LIMIT_SPECS`).

    Attributes:
        peak_ma: L3 largest peak phase current.
        rms_ma: L4 largest rms current.
        pulse_width_min_us: L6 narrowest phase width.
        pulse_width_max_us: L6 widest phase width.
        frequency_min_hz: L7 lowest pulse rate (inner rate for bursts).
        frequency_max_hz: L7 highest pulse rate.
        phase_charge_uc: L8 largest charge per phase.
        shannon_k: L8 largest Shannon k = log10(Q²/A).
        current_density_ma_cm2: L9 block when rms current density is strictly above.
        current_density_warn_ma_cm2: L9 warn at or above; equal to the block level means no warning.
        power_density_w_cm2: L10 largest average power density (and always < 0.25 W/cm²).
        electrode_area_min_cm2: L13 smallest electrode area.
        soft_start_min_s: L15 shortest soft start from 0 to the first target.
        ramp_min_s: L16 shortest contraction ramp, up or down.
        user_step_ma: L17 largest amplitude increase per user command.
        user_rise_ma_per_s: L17 fastest user-driven amplitude rise.
        plan_rise_ma_per_s: L16 family [E] fastest amplitude rise inside a plan.
        tetanic_frequency_hz: L18 motor-level trains at or above this rate are on/off-limited.
        train_on_max_s: L18 longest ON time, ramps included.
        train_off_min_s: L18 shortest OFF time.
        off_at_least_on: L18 OFF must also last at least as long as ON.
        burst_max_s: L18 exemption: longest burst that counts as a TENS burst.
        burst_duty_max: L18 exemption: largest burst duty (burst time / period) of a TENS burst.
        session_max_s: L19 longest session.
        sessions_per_day: L20 most sessions per body site per day.
        minutes_per_day: L20 most stimulation minutes per body site per day.
        min_gap_between_sessions_s: L20 shortest gap between sessions on one site.
        watchdog_s: L21 device output-off timeout without a heartbeat.
        heartbeat_s: L21 longest interval between host heartbeats.
    """

    peak_ma: float
    rms_ma: float
    pulse_width_min_us: float
    pulse_width_max_us: float
    frequency_min_hz: float
    frequency_max_hz: float
    phase_charge_uc: float
    shannon_k: float
    current_density_ma_cm2: float
    current_density_warn_ma_cm2: float
    power_density_w_cm2: float
    electrode_area_min_cm2: float
    soft_start_min_s: float
    ramp_min_s: float
    user_step_ma: float
    user_rise_ma_per_s: float
    plan_rise_ma_per_s: float
    tetanic_frequency_hz: float
    train_on_max_s: float
    train_off_min_s: float
    off_at_least_on: bool
    burst_max_s: float
    burst_duty_max: float
    session_max_s: float
    sessions_per_day: int
    minutes_per_day: float
    min_gap_between_sessions_s: float
    watchdog_s: float
    heartbeat_s: float

    def __post_init__(self) -> None:
        for name, spec in LIMIT_SPECS.items():
            value = _validated(name, getattr(self, name), spec.ceiling, "ceiling")
            object.__setattr__(self, name, value)  # normalises ints to floats in float fields


def _make(values: Mapping[str, float | int | bool]) -> Limits:
    """Build Limits from a complete field mapping (validated again by ``__post_init__``)."""
    return Limits(**values)  # type: ignore[arg-type]


def _values(limits: Limits) -> dict[str, float | int | bool]:
    return {name: getattr(limits, name) for name in LIMIT_SPECS}


CEILINGS: Final = _make({name: spec.ceiling for name, spec in LIMIT_SPECS.items()})
"""The kernel ceilings as a :class:`Limits`; nothing is looser."""

DEFAULTS: Final = _make({name: spec.default for name, spec in LIMIT_SPECS.items()})
"""The shipped configuration (docs/safety-basis.md §2, "Shipped default" column)."""


def tighten(base: Limits, **overrides: float | int | bool) -> Limits:
    """Return ``base`` with some fields tightened.

    Args:
        base: The limits to start from.
        **overrides: Field name → new value, each equal to or tighter than ``base``.

    Returns:
        The new limits.

    Raises:
        LimitsFileError: For an unknown field, a bad value, or an override that would loosen
            ``base``, naming the field and its limit ID.
    """
    checked: dict[str, float | int | bool] = {}
    for name, value in overrides.items():
        if name not in LIMIT_SPECS:
            raise LimitsFileError(f"unknown limit {name!r}{_did_you_mean(name)}.")
        reference = getattr(base, name)
        label = "ceiling" if reference == LIMIT_SPECS[name].ceiling else "current limit"
        checked[name] = _validated(name, value, reference, label)
    return _make({**_values(base), **checked})


def intersect(a: Limits, b: Limits) -> Limits:
    """Return the tightest of two limit sets, field by field."""
    values: dict[str, float | int | bool] = {}
    for name, spec in LIMIT_SPECS.items():
        x, y = getattr(a, name), getattr(b, name)
        values[name] = y if _is_looser(spec.tighter, x, y) else x
    return _make(values)


def at_least_as_tight(candidate: Limits, reference: Limits) -> bool:
    """Whether ``candidate`` is equal to or tighter than ``reference`` in every field."""
    return not any(
        _is_looser(spec.tighter, getattr(candidate, name), getattr(reference, name))
        for name, spec in LIMIT_SPECS.items()
    )


def _did_you_mean(name: str) -> str:
    close = difflib.get_close_matches(name, list(LIMIT_SPECS), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def limits_from_mapping(data: Mapping[str, object], *, source: str = "limits") -> Limits:
    """Build limits from field → value pairs: :data:`DEFAULTS`, moved only within the ceilings.

    A value may loosen a default up to its ceiling (docs/safety-basis.md §1, "Default vs ceiling").

    Args:
        data: Field names of :class:`Limits` and their values (parsed TOML, say).
        source: Where the data came from, for error messages.

    Returns:
        The effective limits.

    Raises:
        LimitsFileError: Naming ``source`` and the key, for unknown keys, wrong types, booleans
            where numbers belong, non-finite or negative numbers, a value beyond its ceiling, or
            an inconsistent set (minimum above maximum, heartbeat not shorter than watchdog).
    """
    values: dict[str, float | int | bool] = {}
    for key, value in data.items():
        if key not in LIMIT_SPECS:
            raise LimitsFileError(f"{source}: unknown key {key!r}{_did_you_mean(key)}.")
        try:
            values[key] = _validated(key, value, LIMIT_SPECS[key].ceiling, "ceiling")
        except LimitsFileError as exc:
            raise LimitsFileError(f"{source}: key {key!r}: {exc}") from None
    limits = _make({**_values(DEFAULTS), **values})
    pairs = (
        ("pulse_width_min_us", "pulse_width_max_us"),
        ("frequency_min_hz", "frequency_max_hz"),
    )
    for low, high in pairs:
        if getattr(limits, low) > getattr(limits, high):
            raise LimitsFileError(
                f"{source}: {low} ({_show(getattr(limits, low))}) is above {high} "
                f"({_show(getattr(limits, high))}); nothing could run."
            )
    if not 0 < limits.heartbeat_s < limits.watchdog_s:
        raise LimitsFileError(
            f"{source}: heartbeat_s ({_show(limits.heartbeat_s)}) must be above 0 and below "
            f"watchdog_s ({_show(limits.watchdog_s)})."
        )
    return limits


def load_limits_file(path: str | os.PathLike[str]) -> Limits:
    """Load a user limits file (TOML; keys are :class:`Limits` field names).

    Args:
        path: The file; at most :data:`LIMITS_FILE_MAX_BYTES` bytes of UTF-8 TOML.

    Returns:
        :data:`DEFAULTS` with the file's values applied, each checked against its ceiling.

    Raises:
        LimitsFileError: Naming the file (and the key, where one is at fault) if the file cannot
            be read or is not a regular file, is too large (refused unread), is not TOML, or
            holds a value that is invalid or looser than its ceiling. Nothing is partially
            applied.
    """
    source = os.fspath(path)
    try:
        raw = read_data_file(source, LIMITS_FILE_MAX_BYTES)
    except DataFileRefused as exc:
        if exc.too_large:
            raise LimitsFileError(f"{source}: the limits file is larger than 1 MiB.") from None
        raise LimitsFileError(f"{source}: cannot read the limits file ({exc.reason}).") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise LimitsFileError(f"{source}: the limits file is not UTF-8 text.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise LimitsFileError(f"{source}: not valid TOML: {exc}.") from exc
    except ValueError as exc:  # int() refusing an integer of more than 4300 digits
        raise LimitsFileError(f"{source}: not valid TOML: a number is too long.") from exc
    except RecursionError as exc:
        raise LimitsFileError(f"{source}: not valid TOML: nested too deeply.") from exc
    return limits_from_mapping(data, source=source)


# --- Checks at one operating point ------------------------------------------------------------


class Level(StrEnum):
    """How serious a :class:`Finding` is."""

    BLOCK = "block"
    WARN = "warn"


@dataclass(frozen=True, slots=True)
class Finding:
    """One limit broken (or, for ``Level.WARN``, reached) at an operating point.

    Attributes:
        limit_id: docs/safety-basis.md limit ID, e.g. ``"L9"``.
        quantity: The :class:`Limits` field (or, for L11, ``"energy_per_pulse_mj"``).
        value: The value found, as a float for display.
        relation: What the value must satisfy: ``"≤"``, ``"<"`` or ``"≥"``.
        allowed: The limit value.
        unit: Unit of ``value`` and ``allowed``.
        level: ``BLOCK`` refuses the operating point; ``WARN`` only informs.
    """

    limit_id: str
    quantity: str
    value: float
    relation: str
    allowed: float
    unit: str
    level: Level = Level.BLOCK

    def __str__(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        kind = " warning" if self.level is Level.WARN else ""
        return (
            f"{self.limit_id}{kind}: {self.quantity} = {self.value:.3g}{unit} "
            f"(allowed {self.relation} {self.allowed:g}{unit})"
        )


def _finding(name: str, value: float, relation: str, allowed: float) -> Finding:
    spec = LIMIT_SPECS[name]
    return Finding(spec.limit_id, name, value, relation, allowed, spec.unit)


def electrode_area_min_cm2(limits: Limits, purpose: str | None) -> float:
    """The smallest pad (L13) a program of ``purpose`` may use under ``limits``.

    TENS programs: the limit in force (4 cm² by default). Every other purpose is EMS (muscle
    stimulation) and needs at least :data:`EMS_ELECTRODE_AREA_MIN_CM2` (16 cm²); so does a
    program of unknown purpose (``None``), the stricter case.
    """
    if purpose in TENS_PURPOSES:
        return limits.electrode_area_min_cm2
    return max(limits.electrode_area_min_cm2, EMS_ELECTRODE_AREA_MIN_CM2)


def check_pulse(
    amplitude_ma: fx.ExactInput,
    pulse_width_us: fx.ExactInput,
    frequency_hz: fx.ExactInput,
    pulses_per_s: fx.ExactInput,
    area_cm2: fx.ExactInput,
    limits: Limits,
) -> list[Finding]:
    """Every electrical limit (L3, L4, L6–L11, L13) broken at one operating point.

    Verdicts are exact (rationals, squared quantities); the values reported are floats.

    Args:
        amplitude_ma: Peak phase current in mA.
        pulse_width_us: Phase width in µs.
        frequency_hz: Pulse rate in Hz; for bursts the inner rate (L7 checks it).
        pulses_per_s: Largest number of pulses in any 1 s window (N in docs/safety-basis.md §3),
        from
            :func:`emsctl.formulas.pulses_per_s`: the frequency for continuous trains and
            on/off trains with ON ≥ 1 s; for bursts the exact count of the fullest window
            (bursts/s × pulses per burst only at a whole number of bursts per second).
        area_cm2: Smallest electrode area in cm².
        limits: The effective limits.

    Returns:
        Findings in limit-ID order; empty when the point passes. An L9 warning is returned only
        when the point is not blocked by L9.

    Raises:
        ValueError: For non-finite or negative inputs or a non-positive area.
        TypeError: For inputs that are not numbers.
    """
    amp, pw, freq, rate, area = (
        fx.exact(v) for v in (amplitude_ma, pulse_width_us, frequency_hz, pulses_per_s, area_cm2)
    )
    if min(amp, pw, freq, rate) < 0 or area <= 0:
        raise ValueError("operating point needs non-negative values and a positive area")
    amp_f, pw_f, rate_f, area_f = float(amp), float(pw), float(rate), float(area)
    charge = fx.phase_charge_uc_exact(amp, pw)
    out: list[Finding] = []
    if amp > fx.exact(limits.peak_ma):
        out.append(_finding("peak_ma", amp_f, "≤", limits.peak_ma))
    if fx.exceeds_rms_current(amp, pw, rate, limits.rms_ma):
        out.append(_finding("rms_ma", fx.rms_current_ma(amp_f, pw_f, rate_f), "≤", limits.rms_ma))
    if pw < fx.exact(limits.pulse_width_min_us):
        out.append(_finding("pulse_width_min_us", pw_f, "≥", limits.pulse_width_min_us))
    if pw > fx.exact(limits.pulse_width_max_us):
        out.append(_finding("pulse_width_max_us", pw_f, "≤", limits.pulse_width_max_us))
    if freq < fx.exact(limits.frequency_min_hz):
        out.append(_finding("frequency_min_hz", float(freq), "≥", limits.frequency_min_hz))
    if freq > fx.exact(limits.frequency_max_hz):
        out.append(_finding("frequency_max_hz", float(freq), "≤", limits.frequency_max_hz))
    if charge > fx.exact(limits.phase_charge_uc):
        out.append(_finding("phase_charge_uc", float(charge), "≤", limits.phase_charge_uc))
    if fx.exceeds_shannon_k(charge, area, limits.shannon_k):
        k = fx.shannon_k(float(charge), area_f)
        out.append(_finding("shannon_k", k, "≤", limits.shannon_k))
    density = fx.current_density_ma_cm2(amp_f, pw_f, rate_f, area_f)
    block, warn = limits.current_density_ma_cm2, limits.current_density_warn_ma_cm2
    if fx.exceeds_current_density(amp, pw, rate, area, block):
        out.append(_finding("current_density_ma_cm2", density, "≤", block))
    elif warn < block and fx.exceeds_current_density(amp, pw, rate, area, warn, or_equal=True):
        found = _finding("current_density_warn_ma_cm2", density, "<", warn)
        out.append(replace(found, level=Level.WARN))
    # L10: the effective limit is inclusive (≤ 0.05 by default); the kernel ceiling is strict.
    over_limit = fx.exceeds_power_density(amp, pw, rate, area, limits.power_density_w_cm2)
    at_ceiling = fx.exceeds_power_density(
        amp, pw, rate, area, POWER_DENSITY_CEILING_W_CM2, or_equal=True
    )
    if over_limit or at_ceiling:
        power = fx.power_density_w_cm2(amp_f, pw_f, rate_f, area_f)
        relation, allowed = ("≤", limits.power_density_w_cm2) if over_limit else ("<", 0.25)
        out.append(_finding("power_density_w_cm2", power, relation, allowed))
    if fx.energy_per_pulse_mj_exact(amp, pw) > fx.exact(ENERGY_PER_PULSE_CEILING_MJ):
        energy = fx.energy_per_pulse_mj(amp_f, pw_f)
        out.append(
            Finding("L11", "energy_per_pulse_mj", energy, "≤", ENERGY_PER_PULSE_CEILING_MJ, "mJ")
        )
    if area < fx.exact(limits.electrode_area_min_cm2):
        out.append(_finding("electrode_area_min_cm2", area_f, "≥", limits.electrode_area_min_cm2))
    return out


def check_train(
    frequency_hz: fx.ExactInput,
    on_s: fx.ExactInput,
    off_s: fx.ExactInput,
    limits: Limits,
    *,
    motor_level: bool = True,
) -> list[Finding]:
    """L18 on/off limits for one repeating train (or burst pattern).

    Exempt: trains below ``tetanic_frequency_hz``, sensory-level trains (``motor_level`` False:
    target below MT, amplitude capped at MT), and TENS bursts whose ON time is at most
    ``burst_max_s`` with burst duty ON / (ON + OFF) at most ``burst_duty_max``.

    Args:
        frequency_hz: Pulse rate inside the ON time (inner rate for bursts).
        on_s: ON time in s, ramps included; the phase duration for continuous trains.
        off_s: OFF time in s; 0 for continuous trains.
        limits: The effective limits.
        motor_level: Whether the train targets at least the motor threshold.

    Returns:
        The L18 findings; empty when the train passes or is exempt.

    Raises:
        ValueError: For non-finite or negative inputs or ON + OFF = 0.
    """
    freq, on, off = fx.exact(frequency_hz), fx.exact(on_s), fx.exact(off_s)
    if min(freq, on, off) < 0 or on + off == 0:
        raise ValueError("a train needs non-negative times and a positive period")
    if not motor_level or freq < fx.exact(limits.tetanic_frequency_hz):
        return []
    burst_duty = on / (on + off)
    if on <= fx.exact(limits.burst_max_s) and burst_duty <= fx.exact(limits.burst_duty_max):
        return []
    out: list[Finding] = []
    if on > fx.exact(limits.train_on_max_s):
        out.append(_finding("train_on_max_s", float(on), "≤", limits.train_on_max_s))
    if off < fx.exact(limits.train_off_min_s):
        out.append(_finding("train_off_min_s", float(off), "≥", limits.train_off_min_s))
    if limits.off_at_least_on and off < on:
        out.append(_finding("off_at_least_on", float(off), "≥", float(on)))
    return out
