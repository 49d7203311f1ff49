"""The electrical formulas of docs/safety-basis.md §3, written once, in three flavours.

* **float** (``rms_current_ma``, …): for display, logs and reports.
* **array** (``rms_current_ma_array``, …): numpy-vectorised floats for the plan verifier, which
  evaluates many segments at once. Arrays in, arrays out; same formulas as the float flavour.
* **exact** (``*_exact`` and ``exceeds_*``): :class:`fractions.Fraction` arithmetic on the decimal
  inputs. Boundary verdicts come only from these. Square roots are never taken: a root quantity is
  compared through its square, and Shannon's ``k`` through ``Q²/A`` against ``10**k``, so boundary
  cases such as W1 and W5 get the same verdict on every platform (docs/safety-basis.md §1).

Symbols: I = peak phase current (mA); PW = phase width (µs); n = 2 phases per pulse (symmetric
biphasic, L1); N = the largest number of pulses in any 1 s window (``pulses_per_s``, computed
by :func:`pulses_per_s` and nowhere else); A = smallest pad area (cm²); R = 500 Ω reference load.

This module is pure: no I/O, no clock, no state. It knows formulas, not limits; the numbers that
the results are checked against live in :mod:`emsctl.limit_table`.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Final, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "PHASES_PER_PULSE",
    "REFERENCE_LOAD_OHM",
    "ExactInput",
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
    "exceeds_current_density",
    "exceeds_phase_charge",
    "exceeds_power_density",
    "exceeds_rms_current",
    "exceeds_shannon_k",
    "max_phase_charge_uc",
    "phase_charge_uc",
    "phase_charge_uc_array",
    "phase_charge_uc_exact",
    "power_density_w_cm2",
    "power_density_w_cm2_array",
    "power_density_w_cm2_exact",
    "pulses_per_s",
    "pulses_per_s_array",
    "pulses_per_s_exact",
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
_EXACT_POWER_MAX_DENOMINATOR: Final = 10_000


# ---------------------------------------------------------------------------------------------
# float flavour


def pulses_per_s(frequency_hz: float, burst_rate_hz: float = 0.0, burst_pulses: int = 0) -> float:
    """N: the largest number of pulses in any 1 s window (see :func:`pulses_per_s_exact`).

    Args:
        frequency_hz: Pulse rate in Hz; for bursts the rate inside a burst.
        burst_rate_hz: Bursts per second; 0 for continuous pulses.
        burst_pulses: Pulses per burst.

    Returns:
        N; ``frequency_hz`` itself for continuous pulses, a whole number for bursts.
    """
    if burst_rate_hz == 0:
        return frequency_hz
    return float(pulses_per_s_exact(frequency_hz, burst_rate_hz, burst_pulses))


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


def _f64(values: ArrayLike) -> FloatArray:
    return np.asarray(values, dtype=np.float64)


def pulses_per_s_array(
    frequency_hz: ArrayLike, burst_rate_hz: ArrayLike, burst_pulses: ArrayLike
) -> FloatArray:
    """Vectorised :func:`pulses_per_s`. Arguments broadcast; returns float64.

    Bursts are counted exactly, once per distinct (frequency, rate, pulses) triple.
    """
    freq, rate, count = np.broadcast_arrays(_f64(frequency_hz), _f64(burst_rate_hz),
                                            np.asarray(burst_pulses))
    out = freq.copy()
    burst = rate != 0
    if burst.any():
        triples = list(zip(freq[burst].tolist(), rate[burst].tolist(), count[burst].tolist(),
                           strict=True))
        known = {t: float(pulses_per_s_exact(t[0], t[1], int(t[2]))) for t in set(triples)}
        out[burst] = [known[t] for t in triples]
    return out


def duty_array(pulse_width_us: ArrayLike, pulses_per_s: ArrayLike) -> FloatArray:
    """Vectorised :func:`duty`. Arguments broadcast; returns float64."""
    return PHASES_PER_PULSE * _f64(pulse_width_us) * _f64(pulses_per_s) / _US_PER_S


def rms_current_ma_array(
    amplitude_ma: ArrayLike, pulse_width_us: ArrayLike, pulses_per_s: ArrayLike
) -> FloatArray:
    """Vectorised :func:`rms_current_ma`. Arguments broadcast; returns mA as float64."""
    return _f64(amplitude_ma) * np.sqrt(duty_array(pulse_width_us, pulses_per_s))


def current_density_ma_cm2_array(
    amplitude_ma: ArrayLike,
    pulse_width_us: ArrayLike,
    pulses_per_s: ArrayLike,
    area_cm2: ArrayLike,
) -> FloatArray:
    """Vectorised :func:`current_density_ma_cm2`. Arguments broadcast; returns mA/cm²."""
    return rms_current_ma_array(amplitude_ma, pulse_width_us, pulses_per_s) / _f64(area_cm2)


def power_density_w_cm2_array(
    amplitude_ma: ArrayLike,
    pulse_width_us: ArrayLike,
    pulses_per_s: ArrayLike,
    area_cm2: ArrayLike,
) -> FloatArray:
    """Vectorised :func:`power_density_w_cm2`. Arguments broadcast; returns W/cm²."""
    rms_a = rms_current_ma_array(amplitude_ma, pulse_width_us, pulses_per_s) / _MA_PER_A
    return rms_a * rms_a * REFERENCE_LOAD_OHM / _f64(area_cm2)


def phase_charge_uc_array(amplitude_ma: ArrayLike, pulse_width_us: ArrayLike) -> FloatArray:
    """Vectorised :func:`phase_charge_uc`. Arguments broadcast; returns µC."""
    return _f64(amplitude_ma) * _f64(pulse_width_us) / _MA_PER_A


def shannon_k_array(charge_uc: ArrayLike, area_cm2: ArrayLike) -> FloatArray:
    """Vectorised :func:`shannon_k`; zero charge gives ``-inf`` without a warning."""
    with np.errstate(divide="ignore"):
        return 2 * np.log10(_f64(charge_uc)) - np.log10(_f64(area_cm2))


def energy_per_pulse_mj_array(amplitude_ma: ArrayLike, pulse_width_us: ArrayLike) -> FloatArray:
    """Vectorised :func:`energy_per_pulse_mj`. Arguments broadcast; returns mJ."""
    amplitude_a = _f64(amplitude_ma) / _MA_PER_A
    joules = amplitude_a * amplitude_a * REFERENCE_LOAD_OHM * _f64(pulse_width_us) / _US_PER_S
    return joules * PHASES_PER_PULSE * 1000


# ---------------------------------------------------------------------------------------------
# exact flavour (rationals; the only source of boundary verdicts)


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


def pulses_per_s_exact(
    frequency_hz: ExactInput, burst_rate_hz: ExactInput = 0, burst_pulses: int = 0
) -> Fraction:
    """Exactly N, the largest number of pulses in any 1 s window [t, t + 1 s)
    (docs/safety-basis.md §3).

    The window is half-open, so a 100 Hz train has 100 pulses in every second.

    * Continuous pulses: N = f, as docs/safety-basis.md §3 defines it (exact for a whole-number f;
      at a fractional f the 1 s average is f and a window can hold ⌈f⌉).
    * Bursts of P pulses at f, one burst every T = 1/R s, each lasting (P − 1)/f: the fullest
      window starts with a burst. When bursts do not overlap (P/f ≤ T: every pulse comes at
      least 1/f after the one before, which the program model requires) the k-th burst after
      it starts k·T later and adds the pulses j/f < 1 − k·T, so

          N = Σ min(P, ⌈f · (1 − k·T)⌉) over k = 0, 1, … with k·T < 1.

      That is R·P only when R is a whole number. A 0.1/s burst of 100 pulses at 100 Hz has
      N = 100, not 10; 1.5/s × 10 at 100 Hz has 20, not 15; a 2 s burst at 50 Hz has 50.
      Overlapping bursts are counted by trying every window that starts at a pulse.

    Args:
        frequency_hz: Pulse rate in Hz; for bursts the rate inside a burst.
        burst_rate_hz: Bursts per second R; 0 for continuous pulses.
        burst_pulses: Pulses per burst P.

    Returns:
        N as an exact rational (a whole number for bursts).

    Raises:
        ValueError: For negative or non-finite inputs.
        TypeError: For inputs that are not numbers.
    """
    freq, rate = exact(frequency_hz), exact(burst_rate_hz)
    if freq < 0 or rate < 0 or burst_pulses < 0:
        raise ValueError("pulse and burst rates and pulse counts cannot be negative")
    if rate == 0:
        return freq
    pulses = int(burst_pulses)
    if freq == 0 or pulses == 0:
        return Fraction(0)
    period = 1 / rate
    if pulses <= freq * period:  # bursts do not overlap: the window starts with a burst
        total, k = 0, 0
        while k * period < 1:
            total += min(pulses, math.ceil(freq * (1 - k * period)))
            k += 1
        return Fraction(total)
    return Fraction(_overlapping_bursts_n(freq, period, pulses))


def _overlapping_bursts_n(freq: Fraction, period: Fraction, pulses: int) -> int:
    """N of bursts that overlap: the fullest window starts at some pulse j/f of a burst.

    Times are counted in whole ticks of 1/D s (D = the least common multiple of the
    denominators of 1/f and T), so every comparison is an exact integer one.
    """
    pulse_gap = 1 / freq
    ticks = math.lcm(pulse_gap.denominator, period.denominator)
    gap = pulse_gap.numerator * (ticks // pulse_gap.denominator)  # 1/f in ticks
    every = period.numerator * (ticks // period.denominator)  # T in ticks
    span = (pulses - 1) * gap
    best = 0
    for j in range(pulses):
        start = j * gap
        count = 0
        # bursts k with a pulse in [start, start + 1 s): k·T + span ≥ start, k·T < start + 1 s
        for k in range(-((span - start) // every), -(-(start + ticks) // every)):
            first = max(-((k * every - start) // gap), 0)  # ⌈(start − k·T) / gap⌉
            end = min(-((k * every - start - ticks) // gap), pulses)
            count += max(end - first, 0)
        best = max(best, count)
    return best


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


def _beyond(value: Fraction, limit: Fraction, or_equal: bool) -> bool:
    return value >= limit if or_equal else value > limit


def _beyond_squared(value_squared: Fraction, limit: ExactInput, or_equal: bool) -> bool:
    """Compare √value_squared with a limit through squares (both sides are non-negative)."""
    bound = exact(limit)
    if bound < 0:
        return True
    return _beyond(value_squared, bound * bound, or_equal)


def exceeds_rms_current(
    amplitude_ma: ExactInput,
    pulse_width_us: ExactInput,
    pulses_per_s: ExactInput,
    limit_ma: ExactInput,
    *,
    or_equal: bool = False,
) -> bool:
    """Exactly decide I_rms > limit (or ≥ with ``or_equal``), via I² · d against limit² (L4).

    Returns:
        True when the rms current is beyond the limit.
    """
    value_squared = rms_current_squared_exact(amplitude_ma, pulse_width_us, pulses_per_s)
    return _beyond_squared(value_squared, limit_ma, or_equal)


def exceeds_current_density(
    amplitude_ma: ExactInput,
    pulse_width_us: ExactInput,
    pulses_per_s: ExactInput,
    area_cm2: ExactInput,
    limit_ma_cm2: ExactInput,
    *,
    or_equal: bool = False,
) -> bool:
    """Exactly decide J > limit (or ≥ with ``or_equal``), via J² against limit² (L9).

    W5 (40 mA, 200 µs, 100 Hz, 4 cm²) sits exactly on 2.0 mA/cm²: it does not exceed 2.0, and
    it does reach the 1.0 warning level.

    Returns:
        True when the current density is beyond the limit.
    """
    value_squared = current_density_squared_exact(
        amplitude_ma, pulse_width_us, pulses_per_s, area_cm2
    )
    return _beyond_squared(value_squared, limit_ma_cm2, or_equal)


def exceeds_power_density(
    amplitude_ma: ExactInput,
    pulse_width_us: ExactInput,
    pulses_per_s: ExactInput,
    area_cm2: ExactInput,
    limit_w_cm2: ExactInput,
    *,
    or_equal: bool = False,
) -> bool:
    """Exactly decide P/A > limit (or ≥ with ``or_equal``; the L10 ceiling is strict, < 0.25).

    Returns:
        True when the power density is beyond the limit.
    """
    value = power_density_w_cm2_exact(amplitude_ma, pulse_width_us, pulses_per_s, area_cm2)
    return _beyond(value, exact(limit_w_cm2), or_equal)


def exceeds_phase_charge(
    amplitude_ma: ExactInput,
    pulse_width_us: ExactInput,
    limit_uc: ExactInput,
    *,
    or_equal: bool = False,
) -> bool:
    """Exactly decide Q > limit (or ≥ with ``or_equal``) (L8).

    Returns:
        True when the phase charge is beyond the limit.
    """
    return _beyond(phase_charge_uc_exact(amplitude_ma, pulse_width_us), exact(limit_uc), or_equal)


def exceeds_shannon_k(
    charge_uc: ExactInput, area_cm2: ExactInput, limit_k: ExactInput, *, or_equal: bool = False
) -> bool:
    """Exactly decide k = log10(Q²/A) > limit (or ≥ with ``or_equal``) without a logarithm (L8).

    With limit = p/q in lowest terms, k > p/q ⇔ (Q²/A)^q > 10^p. That is done in integers when q
    is small (1.85 = 37/20, 1.5 = 3/2). For a large q (a limit like 1.8499999999999999) the two
    sides can never be equal, because 10^(p/q) is irrational for q > 1, so a decimal logarithm
    at rising precision decides it.

    Args:
        charge_uc: Phase charge Q in µC (a Fraction from :func:`phase_charge_uc_exact` is fine).
        area_cm2: Smallest electrode area in cm².
        limit_k: The k limit.
        or_equal: Also count k == limit as beyond.

    Returns:
        True when k is beyond the limit; never for zero charge (k = -inf).
    """
    charge = exact(charge_uc)
    ratio = charge * charge / exact(area_cm2)
    limit = exact(limit_k)
    if ratio <= 0:
        return False
    p, q = limit.numerator, limit.denominator
    if q <= _EXACT_POWER_MAX_DENOMINATOR:
        return _beyond(ratio**q, Fraction(10) ** p, or_equal)
    return _log10_above(ratio, limit)


def _log10_above(ratio: Fraction, limit: Fraction) -> bool:
    """Decide log10(ratio) > limit when equality is impossible (limit denominator > 1)."""
    digits = 50
    while True:
        with localcontext() as ctx:
            ctx.prec = digits
            log_ratio = Decimal(ratio.numerator).log10() - Decimal(ratio.denominator).log10()
            difference = log_ratio - Decimal(limit.numerator) / Decimal(limit.denominator)
            scale = max(Decimal(1), abs(log_ratio), abs(Decimal(limit.numerator)) + 1)
            # Each operation is correctly rounded; 10 guard digits cover the accumulated error.
            if abs(difference) > scale * Decimal(10) ** (10 - digits):
                return difference > 0
        digits *= 2
