"""The electrical formulas of docs/safety-basis.md §3, written once, in three flavours.

* **float** (``rms_current_ma``, …): for display, logs and reports.
* **array** (``rms_current_ma_array``, …): numpy-vectorised floats for the plan verifier, which
  evaluates many segments at once. Arrays in, arrays out; same formulas as the float flavour.
* **exact** (``*_exact``): :class:`fractions.Fraction` arithmetic on the decimal inputs
  (:func:`exact` reads them). Root quantities are given squared (``rms_current_squared_exact``),
  so that :mod:`emsctl.exact_verdicts` can decide every boundary without a square root.

Symbols: I = peak phase current (mA); PW = phase width (µs); n = 2 phases per pulse (symmetric
biphasic, L1); N = the largest number of pulses in any 1 s window (``pulses_per_s``, computed
by :mod:`emsctl.pulse_window` and nowhere else); A = smallest pad area (cm²); R = 500 Ω
reference load.

This module is pure: no I/O, no clock, no state. It knows formulas, not limits: it must never
decide a verdict (that is :mod:`emsctl.exact_verdicts`) nor hold a limit (the numbers the results
are checked against live in :mod:`emsctl.limit_table`).
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from typing import Final, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "PHASES_PER_PULSE",
    "REFERENCE_LOAD_OHM",
    "ExactInput",
    "FloatArray",
    "as_float64",
    "current_density_ma_cm2",
    "current_density_ma_cm2_array",
    "current_density_squared_exact",
    "duty",
    "duty_array",
    "duty_exact",
    "energy_per_pulse_mj",
    "energy_per_pulse_mj_array",
    "energy_per_pulse_mj_exact",
    "exact",
    "max_phase_charge_uc",
    "phase_charge_uc",
    "phase_charge_uc_array",
    "phase_charge_uc_exact",
    "power_density_w_cm2",
    "power_density_w_cm2_array",
    "power_density_w_cm2_exact",
    "rms_current_ma",
    "rms_current_ma_array",
    "rms_current_squared_exact",
    "session_average_duty",
    "shannon_k",
    "shannon_k_array",
]

PHASES_PER_PULSE: Final = 2
"""n in docs/safety-basis.md §3: a symmetric biphasic pulse has two phases of equal width (L1)."""

REFERENCE_LOAD_OHM: Final = 500
"""R in docs/safety-basis.md §3: the IEC/FDA reference load (docs/safety-basis.md §1, reference
conditions)."""

ExactInput: TypeAlias = int | float | str | Decimal | Fraction
"""A number the exact functions accept. Floats are read as their shortest decimal (``repr``)."""

FloatArray: TypeAlias = NDArray[np.float64]

_US_PER_S: Final = 1_000_000
_MA_PER_A: Final = 1000


# ---------------------------------------------------------------------------------------------
# float flavour


def duty(pulse_width_us: float, pulses_per_s: float) -> float:
    """Duty cycle d = n · PW · N · 10⁻⁶ (docs/safety-basis.md §3), the fraction of time current
    flows.

    Args:
        pulse_width_us: Phase width in µs.
        pulses_per_s: Largest number of pulses in any 1 s window (N).

    Returns:
        The duty cycle, a fraction (0.096 for 400 µs at 120 Hz).
    """
    return PHASES_PER_PULSE * pulse_width_us * pulses_per_s / _US_PER_S


def session_average_duty(duty_fraction: float, on_s: float, off_s: float) -> float:
    """Session-average duty d × ON / (ON + OFF), for logs and reports only
    (docs/safety-basis.md §3).

    Args:
        duty_fraction: Duty cycle inside the ON time (from :func:`duty`).
        on_s: ON time of the train in s.
        off_s: OFF time of the train in s.

    Returns:
        The averaged duty cycle.
    """
    return duty_fraction * on_s / (on_s + off_s)


def rms_current_ma(amplitude_ma: float, pulse_width_us: float, pulses_per_s: float) -> float:
    """rms current I_rms = I · √d in mA (docs/safety-basis.md §3, L4).

    Args:
        amplitude_ma: Peak phase current in mA.
        pulse_width_us: Phase width in µs.
        pulses_per_s: Largest number of pulses in any 1 s window.

    Returns:
        The rms current in mA.
    """
    return amplitude_ma * math.sqrt(duty(pulse_width_us, pulses_per_s))


def current_density_ma_cm2(
    amplitude_ma: float, pulse_width_us: float, pulses_per_s: float, area_cm2: float
) -> float:
    """rms current density J = I_rms / A in mA/cm² (docs/safety-basis.md §3, L9).

    Args:
        amplitude_ma: Peak phase current in mA.
        pulse_width_us: Phase width in µs.
        pulses_per_s: Largest number of pulses in any 1 s window.
        area_cm2: Smallest electrode area in cm².

    Returns:
        The current density in mA/cm².
    """
    return rms_current_ma(amplitude_ma, pulse_width_us, pulses_per_s) / area_cm2


def power_density_w_cm2(
    amplitude_ma: float, pulse_width_us: float, pulses_per_s: float, area_cm2: float
) -> float:
    """Average power density P / A = I_rms² · R / A in W/cm² at 500 Ω (docs/safety-basis.md §3,
    L10).

    Args:
        amplitude_ma: Peak phase current in mA.
        pulse_width_us: Phase width in µs.
        pulses_per_s: Largest number of pulses in any 1 s window.
        area_cm2: Smallest electrode area in cm².

    Returns:
        The power density in W/cm².
    """
    rms_a = rms_current_ma(amplitude_ma, pulse_width_us, pulses_per_s) / _MA_PER_A
    return rms_a * rms_a * REFERENCE_LOAD_OHM / area_cm2


def phase_charge_uc(amplitude_ma: float, pulse_width_us: float) -> float:
    """Phase charge Q = I · PW / 1000 in µC (docs/safety-basis.md §3, L8).

    Args:
        amplitude_ma: Peak phase current in mA.
        pulse_width_us: Phase width in µs.

    Returns:
        The charge per phase in µC.
    """
    return amplitude_ma * pulse_width_us / _MA_PER_A


def shannon_k(charge_uc: float, area_cm2: float) -> float:
    """Shannon's k = log10(Q² / A) (docs/safety-basis.md §3, L8).

    Args:
        charge_uc: Phase charge in µC.
        area_cm2: Smallest electrode area in cm².

    Returns:
        k; ``-inf`` for zero charge.
    """
    if charge_uc == 0:
        return -math.inf
    # 2·log10 Q − log10 A rather than log10(Q²/A): Q² can underflow for tiny charges.
    return 2 * math.log10(charge_uc) - math.log10(area_cm2)


def max_phase_charge_uc(k: float, area_cm2: float) -> float:
    """Largest phase charge at a given k: Q_max = √(10^k · A) in µC (docs/safety-basis.md §3).

    Args:
        k: Shannon's k.
        area_cm2: Electrode area in cm².

    Returns:
        Q_max in µC (16.8 µC at k = 1.85 on 4 cm²).
    """
    return math.sqrt(10.0**k * area_cm2)


def energy_per_pulse_mj(amplitude_ma: float, pulse_width_us: float) -> float:
    """Energy per pulse E = I² · R · PW · n in mJ at 500 Ω (docs/safety-basis.md §3, L11).

    Args:
        amplitude_ma: Peak phase current in mA.
        pulse_width_us: Phase width in µs.

    Returns:
        The energy per biphasic pulse in mJ (2.56 mJ at 80 mA, 400 µs).
    """
    amplitude_a = amplitude_ma / _MA_PER_A
    joules = amplitude_a * amplitude_a * REFERENCE_LOAD_OHM * pulse_width_us / _US_PER_S
    return joules * PHASES_PER_PULSE * 1000


# ---------------------------------------------------------------------------------------------
# array flavour (numpy; for the plan verifier)


def as_float64(values: ArrayLike) -> FloatArray:
    """Any array-like of numbers as a float64 array (no copy when it is one already)."""
    return np.asarray(values, dtype=np.float64)


def duty_array(pulse_width_us: ArrayLike, pulses_per_s: ArrayLike) -> FloatArray:
    """Vectorised :func:`duty`. Arguments broadcast; returns float64."""
    return PHASES_PER_PULSE * as_float64(pulse_width_us) * as_float64(pulses_per_s) / _US_PER_S


def rms_current_ma_array(
    amplitude_ma: ArrayLike, pulse_width_us: ArrayLike, pulses_per_s: ArrayLike
) -> FloatArray:
    """Vectorised :func:`rms_current_ma`. Arguments broadcast; returns mA as float64."""
    return as_float64(amplitude_ma) * np.sqrt(duty_array(pulse_width_us, pulses_per_s))


def current_density_ma_cm2_array(
    amplitude_ma: ArrayLike,
    pulse_width_us: ArrayLike,
    pulses_per_s: ArrayLike,
    area_cm2: ArrayLike,
) -> FloatArray:
    """Vectorised :func:`current_density_ma_cm2`. Arguments broadcast; returns mA/cm²."""
    return rms_current_ma_array(amplitude_ma, pulse_width_us, pulses_per_s) / as_float64(area_cm2)


def power_density_w_cm2_array(
    amplitude_ma: ArrayLike,
    pulse_width_us: ArrayLike,
    pulses_per_s: ArrayLike,
    area_cm2: ArrayLike,
) -> FloatArray:
    """Vectorised :func:`power_density_w_cm2`. Arguments broadcast; returns W/cm²."""
    rms_a = rms_current_ma_array(amplitude_ma, pulse_width_us, pulses_per_s) / _MA_PER_A
    return rms_a * rms_a * REFERENCE_LOAD_OHM / as_float64(area_cm2)


def phase_charge_uc_array(amplitude_ma: ArrayLike, pulse_width_us: ArrayLike) -> FloatArray:
    """Vectorised :func:`phase_charge_uc`. Arguments broadcast; returns µC."""
    return as_float64(amplitude_ma) * as_float64(pulse_width_us) / _MA_PER_A


def shannon_k_array(charge_uc: ArrayLike, area_cm2: ArrayLike) -> FloatArray:
    """Vectorised :func:`shannon_k`; zero charge gives ``-inf`` without a warning."""
    with np.errstate(divide="ignore"):
        return 2 * np.log10(as_float64(charge_uc)) - np.log10(as_float64(area_cm2))


def energy_per_pulse_mj_array(amplitude_ma: ArrayLike, pulse_width_us: ArrayLike) -> FloatArray:
    """Vectorised :func:`energy_per_pulse_mj`. Arguments broadcast; returns mJ."""
    amplitude_a = as_float64(amplitude_ma) / _MA_PER_A
    joules = amplitude_a * amplitude_a * REFERENCE_LOAD_OHM * as_float64(pulse_width_us) / _US_PER_S
    return joules * PHASES_PER_PULSE * 1000


# ---------------------------------------------------------------------------------------------
# exact flavour (rationals; what the verdicts of emsctl.exact_verdicts compare)


def exact(value: ExactInput) -> Fraction:
    """Read a decimal input as an exact rational.

    A float is read through its shortest round-tripping decimal (``repr``), so ``0.1`` becomes
    1/10 rather than the binary fraction the float stores; that is the decimal the user wrote.

    Args:
        value: An int, float, decimal string, Decimal or Fraction.

    Returns:
        The exact value.

    Raises:
        TypeError: For booleans and other types (a bool is never a quantity).
        ValueError: For NaN, infinities and strings that are not decimal numbers.
    """
    if isinstance(value, bool):
        raise TypeError("a boolean is not a quantity")
    if isinstance(value, Fraction):
        return value
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {value!r}")
        return Fraction(repr(value))
    if isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except ArithmeticError as exc:  # decimal.InvalidOperation
            raise ValueError(f"not a decimal number: {value!r}") from exc
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"not a finite number: {value!r}")
        return Fraction(value)
    raise TypeError(f"not a number: {value!r}")


def duty_exact(pulse_width_us: ExactInput, pulses_per_s: ExactInput) -> Fraction:
    """Exact :func:`duty`."""
    return PHASES_PER_PULSE * exact(pulse_width_us) * exact(pulses_per_s) / _US_PER_S


def rms_current_squared_exact(
    amplitude_ma: ExactInput, pulse_width_us: ExactInput, pulses_per_s: ExactInput
) -> Fraction:
    """Exact I_rms² = I² · d in mA² (the square of :func:`rms_current_ma`)."""
    amplitude = exact(amplitude_ma)
    return amplitude * amplitude * duty_exact(pulse_width_us, pulses_per_s)


def current_density_squared_exact(
    amplitude_ma: ExactInput,
    pulse_width_us: ExactInput,
    pulses_per_s: ExactInput,
    area_cm2: ExactInput,
) -> Fraction:
    """Exact J² = I_rms² / A² in (mA/cm²)² (the square of :func:`current_density_ma_cm2`)."""
    area = exact(area_cm2)
    return rms_current_squared_exact(amplitude_ma, pulse_width_us, pulses_per_s) / (area * area)


def power_density_w_cm2_exact(
    amplitude_ma: ExactInput,
    pulse_width_us: ExactInput,
    pulses_per_s: ExactInput,
    area_cm2: ExactInput,
) -> Fraction:
    """Exact P / A in W/cm²; rational because it needs I_rms² only."""
    rms_squared_a2 = rms_current_squared_exact(amplitude_ma, pulse_width_us, pulses_per_s) / (
        _MA_PER_A * _MA_PER_A
    )
    return rms_squared_a2 * REFERENCE_LOAD_OHM / exact(area_cm2)


def phase_charge_uc_exact(amplitude_ma: ExactInput, pulse_width_us: ExactInput) -> Fraction:
    """Exact :func:`phase_charge_uc`."""
    return exact(amplitude_ma) * exact(pulse_width_us) / _MA_PER_A


def energy_per_pulse_mj_exact(amplitude_ma: ExactInput, pulse_width_us: ExactInput) -> Fraction:
    """Exact :func:`energy_per_pulse_mj`."""
    amplitude_a = exact(amplitude_ma) / _MA_PER_A
    joules = amplitude_a * amplitude_a * REFERENCE_LOAD_OHM * exact(pulse_width_us) / _US_PER_S
    return joules * PHASES_PER_PULSE * 1000
