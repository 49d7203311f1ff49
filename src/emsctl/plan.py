"""Compiled plans: the whole truth of what a session will ask of the device, as numpy tables.

``compile_plan`` turns a :class:`Program` (plus a person's thresholds, or the program's caps for
validation) into one segment table per channel. Between its two ends a segment is linear in
amplitude, frequency and pulse width; soft start, phase transitions, on/off trains, bursts and the
final ramp-down are compiled in. Queries are vectorised: setpoints at times, sampling at a tick
period, and pulse-level expansion. Pure and deterministic: no I/O, no clock.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from .amplitude import AmplitudeExpr, Thresholds
from .program import AmplitudeRamp, Channel, Phase, Program, Ramp, Sweep
from .pulses import expand_channels

__all__ = ["SEGMENT_DTYPE", "ChannelPlan", "ChannelSampler", "PhaseSpan", "Plan", "Setpoints",
           "compile_plan"]

FloatArray = npt.NDArray[np.float64]

#: One row per linear segment of one channel.
SEGMENT_DTYPE = np.dtype(
    [
        ("t0_s", "f8"), ("t1_s", "f8"),
        ("amp0_ma", "f8"), ("amp1_ma", "f8"),
        ("freq0_hz", "f8"), ("freq1_hz", "f8"),
        ("pw0_us", "f8"), ("pw1_us", "f8"),
        ("burst_rate_hz", "f8"),  # 0: continuous pulses
        ("burst_pulses", "i4"),
        ("phase", "i4"),
    ]
)



@dataclass(frozen=True)
class PhaseSpan:
    """Where a phase sits in the plan's time line."""

    index: int
    name: str
    kind: str
    start_s: float
    end_s: float
    instructions: str | None
    #: Sensory-level phase: capped at or below MT, so no tetanic contraction (L18 exemption).
    sensory: bool = False


@dataclass(frozen=True)
class ChannelPlan:
    """The segments of one channel, with the electrode facts the verifier needs."""

    channel: int
    site: str
    electrode_area_cm2: float
    cap_ma: float
    segments: npt.NDArray[np.void]


@dataclass(frozen=True)
class Setpoints:
    """Values of every channel at a set of times: arrays of shape (channels, times)."""

    channels: tuple[int, ...]
    t_s: FloatArray
    amplitude_ma: FloatArray
    frequency_hz: FloatArray
    pulse_width_us: FloatArray


@dataclass(frozen=True)
class Plan:
    """A compiled program. ``notes`` tell the user where an amplitude was limited to a cap."""

    program_name: str
    duration_s: float
    phases: tuple[PhaseSpan, ...]
    channels: tuple[ChannelPlan, ...]
    soft_start_s: float
    notes: tuple[str, ...] = field(default=())
    #: The program's purpose ("tens" or an EMS purpose); None when unknown, which verify
    #: checks as EMS, the stricter (L13).
    purpose: str | None = None

    def channel(self, channel_id: int) -> ChannelPlan:
        """The plan of channel ``channel_id``."""
        for plan in self.channels:
            if plan.channel == channel_id:
                return plan
        raise KeyError(channel_id)

    def stimulation_s(self, t_s: float) -> float:
        """Time spent in stimulation phases (guide phases have no output) by program time
        ``t_s``: what the session-length limit L19 and the summary count."""
        return sum(max(0.0, min(t_s, span.end_s) - span.start_s)
                   for span in self.phases if span.kind == "stim")

    def phase_at(self, t_s: float) -> PhaseSpan:
        """The phase running at time ``t_s`` (the last one at or after the end)."""
        for span in self.phases:
            if t_s < span.end_s:
                return span
        return self.phases[-1]

    def setpoints_at(self, t_s: npt.ArrayLike) -> Setpoints:
        """Amplitude, frequency and pulse width of every channel at times ``t_s`` (vectorised).

        At a time where two segments meet, the later segment's value is returned; after the end
        of the plan every amplitude is zero.
        """
        times = np.atleast_1d(np.asarray(t_s, dtype=np.float64))
        amps = np.zeros((len(self.channels), times.size))
        freqs = np.zeros_like(amps)
        widths = np.zeros_like(amps)
        for row, plan in enumerate(self.channels):
            seg = plan.segments
            index = np.clip(np.searchsorted(seg["t0_s"], times, side="right") - 1, 0, len(seg) - 1)
            s = seg[index]
            span = s["t1_s"] - s["t0_s"]
            frac = np.where(span > 0, (times - s["t0_s"]) / np.where(span > 0, span, 1.0), 0.0)
            frac = np.clip(frac, 0.0, 1.0)
            inside = (times >= 0.0) & (times < self.duration_s)
            amps[row] = np.where(inside, s["amp0_ma"] + frac * (s["amp1_ma"] - s["amp0_ma"]), 0.0)
            freqs[row] = s["freq0_hz"] + frac * (s["freq1_hz"] - s["freq0_hz"])
            widths[row] = s["pw0_us"] + frac * (s["pw1_us"] - s["pw0_us"])
        ids = tuple(p.channel for p in self.channels)
        return Setpoints(ids, times, amps, freqs, widths)

    def sample(self, period_s: float) -> Setpoints:
        """Setpoints at every tick ``0, period_s, 2·period_s, …`` up to and including the end."""
        if period_s <= 0:
            raise ValueError("period_s must be positive")
        ticks = np.arange(0.0, self.duration_s, period_s)
        return self.setpoints_at(np.append(ticks, self.duration_s))

    def expand_pulses(self) -> npt.NDArray[np.void]:
        """Every pulse of the plan: time, channel, amplitude and width, sorted by time."""
        return expand_channels([(p.channel, p.segments) for p in self.channels])


class ChannelSampler:
    """Scalar setpoints of one channel at increasing times, for the session's tick loop.

    The vectorised :meth:`Plan.setpoints_at` costs tens of µs per call for one time; a session
    asks for one time per tick, so this keeps plain-float copies of the segment table and a
    cursor that only moves forward (it falls back to a search when time goes back).
    """

    def __init__(self, plan: ChannelPlan, duration_s: float) -> None:
        seg = plan.segments
        self.channel = plan.channel
        self._duration_s = duration_s
        self._t0: list[float] = seg["t0_s"].tolist()
        self._t1: list[float] = seg["t1_s"].tolist()
        self._rows = list(zip(seg["amp0_ma"].tolist(), seg["amp1_ma"].tolist(),
                              seg["freq0_hz"].tolist(), seg["freq1_hz"].tolist(),
                              seg["pw0_us"].tolist(), seg["pw1_us"].tolist(),
                              seg["burst_rate_hz"].tolist(), seg["burst_pulses"].tolist(),
                              strict=True))
        self._cursor = 0

    def at(self, t_s: float) -> tuple[float, float, float, float, int]:
        """(amplitude_ma, frequency_hz, pulse_width_us, burst_rate_hz, burst_pulses) at ``t_s``."""
        i = self._cursor
        if i >= len(self._t0) or t_s < self._t0[i]:
            i = max(0, bisect.bisect_right(self._t0, t_s) - 1)
        while i + 1 < len(self._t0) and t_s >= self._t0[i + 1]:
            i += 1
        self._cursor = i
        a0, a1, f0, f1, w0, w1, rate, pulses = self._rows[i]
        t0, t1 = self._t0[i], self._t1[i]
        frac = min(1.0, max(0.0, (t_s - t0) / (t1 - t0))) if t1 > t0 else 0.0
        amp = a0 + frac * (a1 - a0) if 0.0 <= t_s < self._duration_s else 0.0
        return amp, f0 + frac * (f1 - f0), w0 + frac * (w1 - w0), rate, int(pulses)

    def steady_until(self, t_s: float) -> float:
        """Until when (plan time) the setpoint stays exactly what it is at ``t_s``.

        ``t_s`` itself when the current segment changes (a ramp or a sweep); the segment's end
        when amplitude, frequency and width are all constant on it. Call :meth:`at` first.
        """
        a0, a1, f0, f1, w0, w1, _, _ = self._rows[self._cursor]
        if a0 == a1 and f0 == f1 and w0 == w1:
            return min(self._t1[self._cursor], self._duration_s)
        return t_s


# --------------------------------------------------------------------------- compilation


def compile_plan(
    program: Program,
    thresholds: Mapping[int, Thresholds] | None = None,
    *,
    profile_caps_ma: Mapping[int, float] | None = None,
    frequency_hz: float | None = None,
) -> Plan:
    """Compile ``program`` into a plan.

    Args:
        program: a validated program.
        thresholds: per channel id, the person's thresholds. ``None`` compiles the worst case
            used for validation: every relative amplitude resolves to the channel's cap.
        profile_caps_ma: per channel id, a further cap (e.g. 0.9 × TOL, L3). Resolved amplitudes
            above the effective cap are limited to it and a note says so.
        frequency_hz: replaces the frequency of every stim phase (cramp-training's CTF + 30 Hz).

    Returns:
        The plan.
    """
    spans: list[PhaseSpan] = []
    start = 0.0
    for index, phase in enumerate(program.phases):
        cap = phase.amplitude_cap
        sensory = cap is not None and cap.threshold in ("ST", "MT") and cap.factor <= 1.0
        spans.append(PhaseSpan(index, phase.name, phase.kind, start, start + phase.duration_s,
                               phase.instructions, sensory))
        start += phase.duration_s
    duration = start
    stim = [s for s in spans if s.kind == "stim"]
    first_stim_s, last_stim_end_s = stim[0].start_s, stim[-1].end_s
    notes: list[str] = []
    channel_plans = []
    for order, channel in enumerate(program.channels):
        cap_ma = channel.max_amplitude_ma
        if profile_caps_ma and channel.id in profile_caps_ma:
            cap_ma = min(cap_ma, profile_caps_ma[channel.id])
        person = None if thresholds is None else thresholds[channel.id]
        resolver = _Resolver(channel, cap_ma, person,
                             notes)
        rows: list[npt.NDArray[np.void]] = []
        previous_end_ma = 0.0
        for span, phase in zip(spans, program.phases, strict=True):
            table = _phase_segments(program, phase, span, order, resolver, previous_end_ma,
                                    first_stim_s, last_stim_end_s, frequency_hz)
            rows.append(table)
            previous_end_ma = float(table["amp1_ma"][-1])
        channel_plans.append(ChannelPlan(channel.id, channel.site, channel.electrode_area_cm2,
                                         cap_ma, np.concatenate(rows)))
    return Plan(program.name, duration, tuple(spans), tuple(channel_plans),
                program.soft_start_s, tuple(dict.fromkeys(notes)), program.purpose)


@dataclass
class _Resolver:
    channel: Channel
    cap_ma: float
    thresholds: Thresholds | None
    notes: list[str]

    def __call__(self, expr: AmplitudeExpr, phase: str) -> float:
        if expr.factor == 0:
            return 0.0
        if self.thresholds is None:
            value = self.cap_ma if not expr.is_absolute else expr.factor
        else:
            value = expr.resolve_ma(self.thresholds)
        if value > self.cap_ma:
            if self.thresholds is not None:
                self.notes.append(
                    f"channel {self.channel.id}, phase '{phase}': {expr} = {value:.1f} mA is "
                    f"limited to the cap of {self.cap_ma:.1f} mA"
                )
            value = self.cap_ma
        return value


def _sorted_unique(values: FloatArray) -> FloatArray:
    """``np.unique`` of a float array, the same sort and the same dedup; written out because
    ``np.unique`` imports ``numpy.ma`` on its first call (profiled: ~8 ms of every
    ``emsctl validate``)."""
    t = np.sort(values)
    keep = np.empty(t.shape, dtype=bool)
    keep[:1] = True
    np.not_equal(t[1:], t[:-1], out=keep[1:])
    return t[keep]


def _phase_segments(
    program: Program,
    phase: Phase,
    span: PhaseSpan,
    order: int,
    resolve: _Resolver,
    previous_end_ma: float,
    first_stim_s: float,
    last_stim_end_s: float,
    frequency_override_hz: float | None,
) -> npt.NDArray[np.void]:
    t0, t1 = span.start_s, span.end_s
    if phase.kind == "guide":
        out = np.zeros(1, SEGMENT_DTYPE)
        out[0] = (t0, t1, 0.0, 0.0, program.calibration_frequency_hz,
                  program.calibration_frequency_hz, program.calibration_pulse_width_us,
                  program.calibration_pulse_width_us, 0.0, 0, span.index)
        return out
    freq_spec: float | Ramp | Sweep | None = (
        frequency_override_hz if frequency_override_hz is not None else phase.frequency_hz)
    assert freq_spec is not None and phase.pulse_width_us is not None
    assert phase.amplitude is not None
    amp = phase.amplitude
    if isinstance(amp, AmplitudeRamp):
        a_start_expr, a_end_expr = amp.start, amp.end
    else:
        a_start_expr = a_end_expr = amp
    a_start, a_end = resolve(a_start_expr, phase.name), resolve(a_end_expr, phase.name)
    if phase.amplitude_cap is not None:
        phase_cap = resolve(phase.amplitude_cap, phase.name)
        a_start, a_end = min(a_start, phase_cap), min(a_end, phase_cap)

    points: list[float] = [t0, t1]
    points += _spec_breaks(freq_spec, t0, t1) + _spec_breaks(phase.pulse_width_us, t0, t1)
    ramp_in_s = 0.0
    if a_start > previous_end_ma and t0 > first_stim_s:
        ramp_in_s = min(program.transition_s, t1 - t0)  # L17/HZ-02: a phase never steps up
        points.append(t0 + ramp_in_s)
    if t0 == first_stim_s:
        points.append(t0 + min(program.soft_start_s, t1 - t0))
    if t1 == last_stim_end_s:
        points.append(max(t0, t1 - program.end_ramp_s))
    gate_x: FloatArray | None = None
    if phase.duty is not None:
        d = phase.duty
        offset = d.cycle_s / 2 if (phase.pattern == "alternating" and order % 2) else 0.0
        gate_x = np.array([0.0, d.ramp_up_s, d.ramp_up_s + d.on_s, d.train_s, d.cycle_s])
        first = t0 - offset
        cycles = np.arange(0, int(np.ceil((t1 - first) / d.cycle_s)) + 1)
        starts = first + cycles * d.cycle_s
        points += list((starts[:, None] + gate_x[None, :]).ravel())
    t = _sorted_unique(np.clip(np.asarray(points), t0, t1))

    base = _linear(t, t0, t1, a_start, a_end)
    if ramp_in_s > 0:
        target = np.interp(t0 + ramp_in_s, [t0, t1], [a_start, a_end])
        base = np.where(t < t0 + ramp_in_s,
                        _linear(t, t0, t0 + ramp_in_s, previous_end_ma, float(target)), base)
    gain = np.ones_like(t)
    if t0 == first_stim_s and program.soft_start_s > 0:
        gain *= np.clip((t - t0) / program.soft_start_s, 0.0, 1.0)
    if t1 == last_stim_end_s and program.end_ramp_s > 0:
        gain *= np.clip((t1 - t) / program.end_ramp_s, 0.0, 1.0)
    if gate_x is not None and phase.duty is not None:
        offset = phase.duty.cycle_s / 2 if (phase.pattern == "alternating" and order % 2) else 0.0
        u = np.mod(t - t0 + offset, phase.duty.cycle_s)
        at_cycle_end = np.isclose(u, 0.0) & (t > t0)
        gate = np.interp(u, gate_x, [0.0, 1.0, 1.0, 0.0, 0.0])
        gain *= np.where(at_cycle_end, 0.0, gate)
    amps = base * gain
    freqs = _spec_values(freq_spec, t, t0, t1)
    widths = _spec_values(phase.pulse_width_us, t, t0, t1)
    out = np.zeros(len(t) - 1, SEGMENT_DTYPE)
    out["t0_s"], out["t1_s"] = t[:-1], t[1:]
    out["amp0_ma"], out["amp1_ma"] = amps[:-1], amps[1:]
    out["freq0_hz"], out["freq1_hz"] = freqs[:-1], freqs[1:]
    out["pw0_us"], out["pw1_us"] = widths[:-1], widths[1:]
    if phase.burst is not None:
        out["burst_rate_hz"], out["burst_pulses"] = phase.burst.rate_hz, phase.burst.pulses
    out["phase"] = span.index
    return out


def _linear(t: FloatArray, t0: float, t1: float, v0: float, v1: float) -> FloatArray:
    if t1 <= t0:
        return np.full_like(t, v1)
    return v0 + (v1 - v0) * np.clip((t - t0) / (t1 - t0), 0.0, 1.0)


def _spec_breaks(spec: float | Ramp | Sweep, t0: float, t1: float) -> list[float]:
    if isinstance(spec, Sweep):
        half = spec.period_s / 2
        return [*np.arange(t0, t1, half).tolist(), t1]
    return []


def _spec_values(spec: float | Ramp | Sweep, t: FloatArray, t0: float, t1: float) -> FloatArray:
    if isinstance(spec, Ramp):
        return _linear(t, t0, t1, spec.start, spec.end)
    if isinstance(spec, Sweep):
        x = np.mod((t - t0) / spec.period_s, 1.0)
        # the end of a whole period is the sweep's low point, not the start of the next one
        x = np.where(np.isclose(x, 0.0) & (t > t0), 1.0, x)
        return spec.low + (spec.high - spec.low) * (1.0 - np.abs(2.0 * x - 1.0))
    return np.full_like(t, float(spec))
