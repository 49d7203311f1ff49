"""The effective safety limits: the :class:`Limits` value, which can only be tightened.

:class:`Limits` refuses, on construction, any value looser than its ceiling (the table in
:mod:`emsctl.limit_table`), so no ``Limits`` object anywhere can be looser than :data:`CEILINGS`.
:data:`DEFAULTS` is the shipped configuration. Device profiles, programs and calibration can
only tighten: combine them with :func:`tighten` and :func:`intersect`. A user's limits may move
a default only within its ceiling (:func:`limits_from_mapping`; the file is read by
:mod:`emsctl.limits_file`).

This module is pure: it must never clamp a value silently (a looser value is refused with its
field and limit ID), read a clock or do I/O.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from .errors import LimitsFileError
from .limit_table import LIMIT_SPECS, Tighter

__all__ = [
    "CEILINGS",
    "DEFAULTS",
    "Limits",
    "at_least_as_tight",
    "intersect",
    "limits_from_mapping",
    "tighten",
]

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

