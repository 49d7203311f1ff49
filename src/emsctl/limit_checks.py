"""The limit checks at one operating point: which limits a pulse or a train breaks.

:func:`check_pulse` finds every electrical limit (L3, L4, L6–L11, L13) broken by one amplitude,
width, rate and pad; :func:`check_train` the L18 on/off limits of one repeating train;
:func:`electrode_area_min_cm2` the smallest pad a program's purpose may use (L13). Each broken
limit is a :class:`Finding`.

This module is pure: it must never clamp a value, read a clock or do I/O. Its verdicts always
come from the exact (rational) comparisons of :mod:`emsctl.exact_verdicts`; floats are only the
values a finding reports.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from . import formulas as fx
from .exact_verdicts import (
    exceeds_current_density,
    exceeds_power_density,
    exceeds_rms_current,
    exceeds_shannon_k,
)
from .limit_table import (
    EMS_ELECTRODE_AREA_MIN_CM2,
    ENERGY_PER_PULSE_CEILING_MJ,
    LIMIT_SPECS,
    POWER_DENSITY_CEILING_W_CM2,
    TENS_PURPOSES,
)
from .limits import Limits

__all__ = [
    "Finding",
    "Level",
    "check_pulse",
    "check_train",
    "electrode_area_min_cm2",
]


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
            :func:`emsctl.pulse_window.pulses_per_s`: the frequency for continuous trains and
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
    if exceeds_rms_current(amp, pw, rate, limits.rms_ma):
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
    if exceeds_shannon_k(charge, area, limits.shannon_k):
        k = fx.shannon_k(float(charge), area_f)
        out.append(_finding("shannon_k", k, "≤", limits.shannon_k))
    density = fx.current_density_ma_cm2(amp_f, pw_f, rate_f, area_f)
    block, warn = limits.current_density_ma_cm2, limits.current_density_warn_ma_cm2
    if exceeds_current_density(amp, pw, rate, area, block):
        out.append(_finding("current_density_ma_cm2", density, "≤", block))
    elif warn < block and exceeds_current_density(amp, pw, rate, area, warn, or_equal=True):
        found = _finding("current_density_warn_ma_cm2", density, "<", warn)
        out.append(replace(found, level=Level.WARN))
    # L10: the effective limit is inclusive (≤ 0.05 by default); the kernel ceiling is strict.
    over_limit = exceeds_power_density(amp, pw, rate, area, limits.power_density_w_cm2)
    at_ceiling = exceeds_power_density(
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
