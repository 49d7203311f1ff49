"""Exact boundary verdicts: is a quantity beyond a limit, decided in rationals.

Boundary verdicts of the kernel come only from here. Square roots are never taken: a root
quantity is compared through its square, and Shannon's ``k`` through ``Q²/A`` against ``10**k``,
so boundary cases such as W1 and W5 get the same verdict on every platform
(docs/safety-basis.md §1). Each ``exceeds_*`` takes the limit as a number; which limit applies is
the caller's business.

This module is pure: no I/O, no clock, no state. It must never decide a verdict in floating
point, nor know a limit's value.
"""

from __future__ import annotations

from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Final

from .formulas import (
    ExactInput,
    current_density_squared_exact,
    exact,
    phase_charge_uc_exact,
    power_density_w_cm2_exact,
    rms_current_squared_exact,
)

__all__ = [
    "exceeds_current_density",
    "exceeds_phase_charge",
    "exceeds_power_density",
    "exceeds_rms_current",
    "exceeds_shannon_k",
]

_EXACT_POWER_MAX_DENOMINATOR: Final = 10_000


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
