"""Plan verification: an independent second check of a compiled plan against the limits.

It reads only the plan's segment tables (not the program that produced them), so a compiler
bug cannot hide from it. Within a segment amplitude, width and frequency are linear; the
checked quantities are products of them, so each maximum is found exactly: at the segment's
ends or at an interior stationary point of the product polynomial. Every violation is
returned — limit ID, channel, phase, time, value, allowed value and the setting it broke — not
just the first. Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.polynomial.polynomial as P
import numpy.typing as npt

from . import pulse_window
from .errors import ValidationFailed
from .limit_checks import electrode_area_min_cm2
from .limit_table import POWER_DENSITY_CEILING_W_CM2
from .limits import Limits
from .plan import ChannelPlan, PhaseSpan, Plan
from .violation import Violation

if TYPE_CHECKING:
    from .contract import Capabilities

__all__ = ["VerifiedPlan", "Violation", "certify", "refusal", "verify"]

FloatArray = npt.NDArray[np.float64]
_EPS = 1e-9




class VerifiedPlan:
    """A plan that passed :func:`verify` against these limits and this device's capabilities.

    The only kind of plan a session runs; only :func:`certify` makes one, so a plan that
    skipped verification (or a plan edited after it) cannot be handed to a session by mistake.

    Attributes:
        plan: the plan. limits: what it was verified against. capabilities: the device's.
        warnings: what verification reported without refusing (e.g. L9 ≥ 1 mA/cm²).
    """

    __slots__ = ("capabilities", "limits", "plan", "warnings")
    plan: Plan
    limits: Limits
    capabilities: Capabilities
    warnings: tuple[Violation, ...]

    def __init__(self) -> None:
        raise TypeError("a VerifiedPlan comes only from emsctl.verify.certify()")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a VerifiedPlan cannot be changed")


def certify(plan: Plan, limits: Limits, capabilities: Capabilities) -> VerifiedPlan:
    """Verify ``plan`` against ``limits`` and the device, and vouch for it if nothing blocks.

    The plan's segment tables are frozen (made read-only) so that what was verified is what
    runs.

    Raises:
        ValidationFailed: a limit or a device capability is broken; the message lists each
            problem once, naming the channels it affects.
    """
    found = verify(plan, limits, capabilities)
    blocks = [v for v in found if v.severity == "block"]
    if blocks:
        raise refusal(plan.program_name, capabilities.model, blocks)
    for cplan in plan.channels:
        cplan.segments.flags.writeable = False
    verified = object.__new__(VerifiedPlan)
    for name, value in (("plan", plan), ("limits", limits), ("capabilities", capabilities),
                        ("warnings", tuple(v for v in found if v.severity == "warn"))):
        object.__setattr__(verified, name, value)
    return verified


def refusal(program_name: str, model: str, blocks: list[Violation]) -> ValidationFailed:
    """The error that refuses ``program_name`` on ``model``: each problem once, with the
    channels it affects."""
    from .reports import limit_reports  # noqa: PLC0415 - only when refusing

    return ValidationFailed(f"'{program_name}' cannot run on {model}:\n"
                            + "\n".join(f"  {r.summary()}" for r in limit_reports(blocks)))


def verify(plan: Plan, limits: Limits, capabilities: Capabilities | None = None) -> list[Violation]:
    """Check ``plan`` against ``limits`` (and a device's ``capabilities`` when given).

    Returns:
        Every violation and warning, ordered by channel and time; empty when the plan passes.
    """
    found: list[Violation] = []
    stim_s = sum(s.end_s - s.start_s for s in plan.phases if s.kind == "stim")
    if stim_s > limits.session_max_s + _EPS:
        found.append(Violation("L19", None, 0.0, stim_s, limits.session_max_s,
                               f"stimulation lasts {stim_s / 60:.1f} min, over "
                               f"{limits.session_max_s / 60:.0f} min", setting="session_max_s"))
    for cplan in plan.channels:
        planned = _check_channel(plan, cplan, limits)
        found += planned
        if capabilities is not None:
            found += _check_device(plan, cplan, capabilities)
            found += _check_rates_made(plan, cplan, limits, capabilities, planned)
    if capabilities is not None and not capabilities.frequency_per_channel:
        found += _check_global_frequency(plan)
    return found


def _check_channel(plan: Plan, cplan: ChannelPlan, lim: Limits) -> list[Violation]:
    out: list[Violation] = []
    seg = cplan.segments
    ch, area = cplan.channel, cplan.electrode_area_cm2

    def add(limit_id: str, index: int, value: float, allowed: float, message: str,
            setting: str, severity: Literal["block", "warn"] = "block") -> None:
        out.append(Violation(limit_id, ch, float(seg["t0_s"][index]), value, allowed, message,
                             severity, plan.phases[int(seg["phase"][index])], setting))

    need = electrode_area_min_cm2(lim, plan.purpose)  # 16 cm² unless TENS
    if area < need - _EPS:
        why = "" if need <= lim.electrode_area_min_cm2 else (
            f", the smallest pad for EMS programs; only TENS programs may use pads down to "
            f"{lim.electrode_area_min_cm2:g} cm²")
        out.append(Violation("L13", ch, 0.0, area, need,
                             f"electrode area {area:g} cm² is under {need:g} cm²{why}",
                             setting="electrode_area_min_cm2"))
    a0, a1 = seg["amp0_ma"], seg["amp1_ma"]
    live = (a0 > 0) | (a1 > 0)
    peak = np.maximum(a0, a1)
    for i in _first_each_phase(seg, live & (peak > lim.peak_ma + _EPS)):
        add("L3", i, float(peak[i]), lim.peak_ma, f"{peak[i]:.1f} mA is over {lim.peak_ma:g} mA",
            "peak_ma")
    for name, lo_hi, unit, lid, setting in (
        ("pw", (lim.pulse_width_min_us, lim.pulse_width_max_us), "µs", "L6", "pulse_width"),
        ("freq", (lim.frequency_min_hz, lim.frequency_max_hz), "Hz", "L7", "frequency"),
    ):
        unit_key = "us" if name == "pw" else "hz"
        v0, v1 = seg[f"{name}0_{unit_key}"], seg[f"{name}1_{unit_key}"]
        lo, hi = lo_hi
        bad = live & ((np.minimum(v0, v1) < lo - _EPS) | (np.maximum(v0, v1) > hi + _EPS))
        for i in _first_each_phase(seg, bad):
            value = float(v0[i] if not lo - _EPS <= v0[i] <= hi + _EPS else v1[i])
            side = "max" if value > hi else "min"
            add(lid, i, value, hi if value > hi else lo,
                f"{value:g} {unit} is outside {lo:g}–{hi:g} {unit}",
                f"{setting}_{side}_{unit_key}")

    charge = _max_product(seg, powers=(1, 1, 0)) / 1000.0  # µC per phase
    for i in _first_each_phase(seg, live & (charge > lim.phase_charge_uc + _EPS)):
        add("L8", i, float(charge[i]), lim.phase_charge_uc,
            f"phase charge {charge[i]:.2f} µC is over {lim.phase_charge_uc:g} µC",
            "phase_charge_uc")
    k_bound = 10.0 ** lim.shannon_k * area  # k ≤ limit ⇔ Q² ≤ 10^k · A
    for i in _first_each_phase(seg, live & (charge**2 > k_bound * (1 + _EPS))):
        k = float(np.log10(charge[i] ** 2 / area))
        add("L8", i, k, lim.shannon_k, f"Shannon k {k:.2f} is over {lim.shannon_k:g} "
            f"({charge[i]:.1f} µC on {area:g} cm²)", "shannon_k")
    # I_rms² = I² · 2 · PW · N · 1e-6 (mA²); N = the most pulses in any 1 s window
    rms_sq = _max_product(seg, powers=(2, 1, 1)) * 2e-6
    rms = np.sqrt(rms_sq)
    for i in _first_each_phase(seg, live & (rms > lim.rms_ma + _EPS)):
        add("L4", i, float(rms[i]), lim.rms_ma,
            f"rms current {rms[i]:.2f} mA is over {lim.rms_ma:g} mA", "rms_ma")
    density = rms / area
    for i in _first_each_phase(seg, live & (density > lim.current_density_ma_cm2 + _EPS)):
        add("L9", i, float(density[i]), lim.current_density_ma_cm2,
            f"current density {density[i]:.3f} mA/cm² is over {lim.current_density_ma_cm2:g}",
            "current_density_ma_cm2")
    warn = live & (density >= lim.current_density_warn_ma_cm2 - _EPS) & (
        density <= lim.current_density_ma_cm2 + _EPS)
    for i in _first_each_phase(seg, warn):
        add("L9", i, float(density[i]), lim.current_density_warn_ma_cm2,
            f"current density {density[i]:.3f} mA/cm² needs attention (≥ "
            f"{lim.current_density_warn_ma_cm2:g})", "current_density_warn_ma_cm2", "warn")
    power = rms_sq * 1e-6 * 500.0 / area  # W/cm² at 500 Ω
    power_bad = (power > lim.power_density_w_cm2 + _EPS) | (power >= POWER_DENSITY_CEILING_W_CM2)
    for i in _first_each_phase(seg, live & power_bad):
        add("L10", i, float(power[i]), lim.power_density_w_cm2,
            f"power density {power[i]:.4f} W/cm² is not under {lim.power_density_w_cm2:g}",
            "power_density_w_cm2")
    out += _check_rises(plan, cplan, lim)
    out += _check_trains(plan, cplan, lim)
    return out


def _pulse_rates(seg: npt.NDArray[np.void]) -> tuple[FloatArray, FloatArray]:
    """N at each end of every segment: the frequency for continuous pulses; for bursts the
    segment's largest count of pulses in any 1 s window (the larger of its two ends)."""
    rate, count = seg["burst_rate_hz"], seg["burst_pulses"]
    burst = rate != 0
    burst_n = np.maximum(pulse_window.pulses_per_s_array(seg["freq0_hz"], rate, count),
                         pulse_window.pulses_per_s_array(seg["freq1_hz"], rate, count))
    return (np.where(burst, burst_n, seg["freq0_hz"]), np.where(burst, burst_n, seg["freq1_hz"]))


def _max_product(seg: npt.NDArray[np.void], powers: tuple[int, int, int]) -> FloatArray:
    """Exact maximum over each segment of amp^p · pw^q · rate^r (all linear in time)."""
    pa, pw, pf = powers
    lines = [(seg["amp0_ma"], seg["amp1_ma"], pa), (seg["pw0_us"], seg["pw1_us"], pw),
             (*_pulse_rates(seg), pf)]
    best = np.zeros(len(seg))
    for x in (0.0, 1.0):
        best = np.maximum(best, _product_at(lines, np.full(len(seg), x)))
    varying = sum((np.abs(b - a) > _EPS).astype(int) for a, b, p in lines if p > 0)
    for i in np.flatnonzero(varying >= 2):  # interior maxima need two varying factors
        coef = np.array([1.0])  # polynomial in x ∈ [0, 1], lowest power first
        for a, b, p in lines:
            for _ in range(p):
                coef = np.convolve(coef, [a[i], b[i] - a[i]])
        roots = P.polyroots(P.polyder(coef)) if coef.size > 2 else np.zeros(0)
        xs = [r.real for r in np.atleast_1d(roots) if abs(r.imag) < 1e-12 and 0 < r.real < 1]
        if xs:
            best[i] = max(best[i], *(float(P.polyval(x, coef)) for x in xs))
    return best


def _product_at(lines: list[tuple[FloatArray, FloatArray, int]], x: FloatArray) -> FloatArray:
    value = np.ones_like(x)
    for a, b, p in lines:
        value = value * (a + (b - a) * x) ** p
    return value


def _check_rises(plan: Plan, cplan: ChannelPlan, lim: Limits) -> list[Violation]:
    out: list[Violation] = []
    seg = cplan.segments
    ch = cplan.channel
    a0, a1, t0, t1 = seg["amp0_ma"], seg["amp1_ma"], seg["t0_s"], seg["t1_s"]
    dt = t1 - t0

    def phase(i: int | np.integer[Any]) -> PhaseSpan:
        return plan.phases[int(seg["phase"][i])]

    if len(seg) and a0[0] > _EPS:
        out.append(Violation("L14", ch, float(t0[0]), float(a0[0]), 0.0,
                             f"output starts at {a0[0]:.1f} mA, not at 0", phase=phase(0)))
    steps = np.flatnonzero(a0[1:] > a1[:-1] + 1e-6) + 1
    for i in steps:
        from_zero = a1[i - 1] <= _EPS  # L14: output starts (and restarts) at 0, then ramps
        out.append(Violation("L14" if from_zero else "L17", ch, float(t0[i]),
                             float(a0[i] - a1[i - 1]), 0.0,
                             f"amplitude steps up by {a0[i] - a1[i - 1]:.2f} mA (never step up; "
                             "ramp instead)", phase=phase(i)))
    rate = np.where(dt > 0, (a1 - a0) / np.where(dt > 0, dt, 1.0), 0.0)
    for i in np.flatnonzero(rate > lim.plan_rise_ma_per_s + _EPS)[:20]:
        out.append(Violation("L16", ch, float(t0[i]), float(rate[i]), lim.plan_rise_ma_per_s,
                             f"amplitude rises at {rate[i]:.1f} mA/s, over "
                             f"{lim.plan_rise_ma_per_s:g} mA/s", phase=phase(i),
                             setting="plan_rise_ma_per_s"))
    # ramps from zero must last at least the minimum ramp time (L16)
    rising = a1 > a0 + _EPS
    for i in np.flatnonzero((a0 <= _EPS) & rising):
        j = i
        while j + 1 < len(seg) and rising[j + 1] and abs(a0[j + 1] - a1[j]) < 1e-6:
            j += 1
        ramp_s = float(t1[j] - t0[i])
        if ramp_s < lim.ramp_min_s - _EPS:
            out.append(Violation("L16", ch, float(t0[i]), ramp_s, lim.ramp_min_s,
                                 f"a ramp from 0 to {a1[j]:.1f} mA takes {ramp_s:.2f} s, under "
                                 f"{lim.ramp_min_s:g} s", phase=phase(i), setting="ramp_min_s"))
            break
    # soft start: within the first soft_start_min_s of output, stay under a straight line
    # from 0 to the channel's peak (L15)
    live = np.flatnonzero(np.maximum(a0, a1) > _EPS)
    peak = float(np.max(np.maximum(a0, a1))) if len(seg) else 0.0
    if live.size and peak > 0:
        start = float(t0[live[0]])
        window = lim.soft_start_min_s
        for i in live:
            for t, a in ((t0[i], a0[i]), (t1[i], a1[i])):
                elapsed = float(t) - start
                if elapsed < window - _EPS and a > peak * elapsed / window + 1e-6:
                    out.append(Violation("L15", ch, float(t), float(a), peak * elapsed / window,
                                         f"soft start reaches {a:.1f} mA after {elapsed:.1f} s; "
                                         f"0 → peak must take ≥ {window:g} s", phase=phase(i),
                                         setting="soft_start_min_s"))
                    break
            else:
                if float(t0[i]) - start > window:
                    break
                continue
            break
    return out


def _runs(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """Index ranges [i, j] of consecutive True values."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _check_trains(plan: Plan, cplan: ChannelPlan, lim: Limits) -> list[Violation]:
    """L18: motor-level trains at ≥ 20 Hz need bounded ON and enough OFF time."""
    seg = cplan.segments
    ch = cplan.channel
    sensory = np.array([plan.phases[p].sensory for p in seg["phase"]], dtype=bool)
    burst = seg["burst_rate_hz"] > 0
    burst_s = np.where(burst, seg["burst_pulses"] / np.maximum(seg["freq0_hz"], _EPS), 0.0)
    burst_ok = burst & (burst_s <= lim.burst_max_s + _EPS) & (
        burst_s * seg["burst_rate_hz"] <= lim.burst_duty_max + _EPS)
    tetanic = np.maximum(seg["freq0_hz"], seg["freq1_hz"]) >= lim.tetanic_frequency_hz
    live = np.maximum(seg["amp0_ma"], seg["amp1_ma"]) > _EPS
    motor = live & tetanic & ~sensory & ~burst_ok
    out: list[Violation] = []
    on_runs = _runs(live)
    for n, (i, j) in enumerate(on_runs):
        if not motor[i:j + 1].any():
            continue
        on_s = float(seg["t1_s"][j] - seg["t0_s"][i])
        first_motor = i + int(np.argmax(motor[i:j + 1]))
        phase = plan.phases[int(seg["phase"][first_motor])]
        if on_s > lim.train_on_max_s + _EPS:
            out.append(Violation("L18", ch, float(seg["t0_s"][i]), on_s, lim.train_on_max_s,
                                 f"a {on_s:.1f} s train at ≥ {lim.tetanic_frequency_hz:g} Hz is "
                                 f"longer than {lim.train_on_max_s:g} s", phase=phase,
                                 setting="train_on_max_s"))
            continue
        next_start = (float(seg["t0_s"][on_runs[n + 1][0]]) if n + 1 < len(on_runs)
                      else plan.duration_s + lim.train_off_min_s + on_s)
        off_s = next_start - float(seg["t1_s"][j])
        need = max(lim.train_off_min_s, on_s if lim.off_at_least_on else 0.0)
        if off_s < need - _EPS:
            out.append(Violation("L18", ch, float(seg["t1_s"][j]), off_s, need,
                                 f"only {off_s:.1f} s off after a {on_s:.1f} s train; needs "
                                 f"≥ {need:.1f} s", phase=phase, setting="train_off_min_s"))
    return out


def _check_rates_made(plan: Plan, cplan: ChannelPlan, lim: Limits, caps: Capabilities,
                      planned: list[Violation]) -> list[Violation]:
    """The limits again at the rates the device makes, where it makes any faster than asked
    (``caps.rate_ratio``: a device with period bins): rms current, densities, the frequency
    ceiling, the tetanic threshold — everything that grows with the rate. Each segment's rates
    are scaled by the largest ratio over them (exact for a fixed rate; a bound for a ramp). A
    limit already broken at the plan's rates is not reported twice."""
    ratio_of = caps.rate_ratio
    if ratio_of is None:
        return []
    seg = cplan.segments
    live = np.maximum(seg["amp0_ma"], seg["amp1_ma"]) > 0
    low = np.minimum(seg["freq0_hz"], seg["freq1_hz"])
    high = np.maximum(seg["freq0_hz"], seg["freq1_hz"])
    ratio = np.ones(seg.size)
    for i in np.flatnonzero(live & (low >= caps.frequency_min_hz - _EPS)
                            & (high <= caps.frequency_max_hz + _EPS)):
        ratio[i] = max(1.0, ratio_of(float(low[i]), float(high[i])))
    if not (ratio > 1.0).any():
        return []
    made = seg.copy()
    made["freq0_hz"] = seg["freq0_hz"] * ratio
    made["freq1_hz"] = seg["freq1_hz"] * ratio
    seen = {(v.limit_id, v.setting, v.phase) for v in planned}
    name = _short_model(caps.model)
    out = []
    for v in _check_channel(plan, replace(cplan, segments=made), lim):
        if (v.limit_id, v.setting, v.phase) in seen:
            continue
        row = max(0, int(np.searchsorted(seg["t0_s"], v.t_s, side="right")) - 1)
        if ratio[row] <= 1.0:  # an off time after a train (L18): the train before it
            faster = ratio[:row] > 1.0
            if v.phase is not None:
                faster &= seg["phase"][:row] == v.phase.index
            before = np.flatnonzero(faster)
            row = int(before[-1]) if before.size else int(np.argmax(ratio))
        asked0, asked1 = float(seg["freq0_hz"][row]), float(seg["freq1_hz"][row])
        if asked0 == asked1:
            how = f"{name} makes {asked0:g} Hz as {asked0 * ratio[row]:.4g} Hz"
        else:
            how = (f"{name} makes the rates of {asked0:g}–{asked1:g} Hz up to "
                   f"{(ratio[row] - 1) * 100:.1f} % faster")
        out.append(replace(v, message=f"{v.message} ({how})"))
    return out


def _check_device(plan: Plan, cplan: ChannelPlan, caps: Capabilities) -> list[Violation]:
    """What ``caps`` cannot express, phase by phase (each report names its own phase)."""
    out: list[Violation] = []
    seg = cplan.segments
    ch = cplan.channel
    name = _short_model(caps.model)
    if ch > caps.channels:
        return [Violation("device", ch, 0.0, ch, caps.channels,
                          f"{name} has only {caps.channels} channels", setting="channels")]
    live = np.maximum(seg["amp0_ma"], seg["amp1_ma"]) > _EPS
    for index in _sorted_unique_ints(seg["phase"][live]):
        s = seg[live & (seg["phase"] == index)]
        span = plan.phases[index]
        checks = (
            (np.maximum(s["amp0_ma"], s["amp1_ma"]).max(), 0.0, caps.amplitude_max_ma, "mA",
             "amplitude"),
            (np.maximum(s["pw0_us"], s["pw1_us"]).max(), caps.pulse_width_min_us,
             caps.pulse_width_max_us, "µs", "pulse_width"),
            (np.minimum(s["pw0_us"], s["pw1_us"]).min(), caps.pulse_width_min_us,
             caps.pulse_width_max_us, "µs", "pulse_width"),
            (np.maximum(s["freq0_hz"], s["freq1_hz"]).max(), caps.frequency_min_hz,
             caps.frequency_max_hz, "Hz", "frequency"),
            (np.minimum(s["freq0_hz"], s["freq1_hz"]).min(), caps.frequency_min_hz,
             caps.frequency_max_hz, "Hz", "frequency"),
        )
        reported: set[tuple[float, str]] = set()
        for value, lo, hi, unit, quantity in checks:
            if (float(value), unit) in reported:
                continue  # the same value found as both minimum and maximum
            reported.add((float(value), unit))
            if not lo - _EPS <= float(value) <= hi + _EPS:
                side, unit_key = ("max" if value > hi else "min"), _UNIT_KEYS[unit]
                out.append(Violation("device", ch, span.start_s, float(value),
                                     hi if value > hi else lo,
                                     f"{value:g} {unit} is outside what {name} can do "
                                     f"({_span(lo, hi, unit)})", phase=span,
                                     setting=f"{quantity}_{side}_{unit_key}"))
        if (s["burst_rate_hz"] > 0).any() and not caps.bursts:
            out.append(Violation("device", ch, span.start_s, 1.0, 0.0,
                                 f"{name} cannot time bursts; this phase needs them",
                                 phase=span, setting="bursts"))
    return out


_UNIT_KEYS = {"mA": "ma", "µs": "us", "Hz": "hz"}


def _short_model(model: str) -> str:
    """A device's name without the parenthesised details: "openEMSstim (serial; …)" → …"""
    return model.split(" (", 1)[0] or model


def _span(lo: float, hi: float, unit: str) -> str:
    if abs(hi - lo) <= _EPS:
        what = {"Hz": "rate", "µs": "width"}.get(unit, "setting")
        return f"only {_figure(lo)} {unit}, its fixed {what}"
    return f"{_figure(lo)}–{_figure(hi)} {unit}"


def _figure(value: float) -> str:
    """A device's range end as people read it: at most two decimals (0.97561 → 0.98)."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _sorted_unique_ints(values: npt.NDArray[np.int32]) -> list[int]:
    return sorted({int(v) for v in values.tolist()})


def _check_global_frequency(plan: Plan) -> list[Violation]:
    """A device with one frequency for all channels cannot run two at once at different rates."""
    times = np.unique(np.concatenate([c.segments["t0_s"] for c in plan.channels]))
    sp = plan.setpoints_at(times)
    live = sp.amplitude_ma > _EPS
    highest = np.where(live, sp.frequency_hz, -np.inf).max(axis=0)
    lowest = np.where(live, sp.frequency_hz, np.inf).min(axis=0)
    several = live.sum(axis=0) >= 2
    spread = np.where(several, highest - lowest, 0.0)
    bad = np.flatnonzero(several & (spread > _EPS))
    if bad.size == 0:
        return []
    i = int(bad[0])
    return [Violation("device", None, float(times[i]), float(spread[i]), 0.0,
                      "the device has one frequency for all channels, but the plan runs "
                      "channels at different frequencies at the same time",
                      phase=plan.phase_at(float(times[i])), setting="frequency_per_channel")]


def _first_each_phase(seg: npt.NDArray[np.void], mask: npt.NDArray[np.bool_]) -> list[int]:
    """Indices of the first flagged segment of each phase (one report per phase and limit)."""
    indices = np.flatnonzero(mask)
    if indices.size == 0:
        return []
    _, first = np.unique(seg["phase"][indices], return_index=True)
    return [int(indices[k]) for k in sorted(first)]
