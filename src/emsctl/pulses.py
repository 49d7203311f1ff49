"""Pulse-level expansion of a plan: the time, amplitude and width of every single pulse.

Used for plots and for checking what the simulator delivered against what was planned. The
pulse train's phase is the integral of the frequency, which is linear within a segment, so
pulse times solve a quadratic exactly. Pure numpy; no I/O.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["PULSE_DTYPE", "expand_channel", "expand_channels"]

PULSE_DTYPE = np.dtype([("t_s", "f8"), ("channel", "i4"), ("amplitude_ma", "f8"),
                        ("pulse_width_us", "f8")])

_Columns = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]


def expand_channel(channel: int, segments: npt.NDArray[np.void]) -> npt.NDArray[np.void]:
    """Every pulse of one channel's segment table, in time order.

    Continuous segments place a pulse each time the accumulated pulse phase ∫f dt crosses an
    integer; burst segments place ``burst_pulses`` pulses at the segment frequency at the start
    of each burst period. Pulses at zero amplitude are not pulses and are left out.
    """
    times, amplitude, width = _columns(segments)
    out = np.empty(times.size, PULSE_DTYPE)
    out["t_s"] = times
    out["channel"] = channel
    out["amplitude_ma"] = amplitude
    out["pulse_width_us"] = width
    return out


def expand_channels(channels: list[tuple[int, npt.NDArray[np.void]]]) -> npt.NDArray[np.void]:
    """Every pulse of several channels (``(channel, segments)`` pairs), sorted by time.

    Pulses at the same time keep the order of ``channels``. The structured array is written
    once, after the merge: profiled, writing each channel's structured array and gathering
    its fields back for the merge cost as much as expanding the pulses.
    """
    if len(channels) == 1:
        return expand_channel(*channels[0])
    columns = [_columns(segments) for _, segments in channels]
    sizes = [c[0].size for c in columns]
    times = np.concatenate([c[0] for c in columns])
    order = np.argsort(times, kind="stable")
    out = np.empty(times.size, PULSE_DTYPE)
    out["t_s"] = times[order]
    out["channel"] = np.repeat(np.array([c for c, _ in channels], np.int32), sizes)[order]
    out["amplitude_ma"] = np.concatenate([c[1] for c in columns])[order]
    out["pulse_width_us"] = np.concatenate([c[2] for c in columns])[order]
    return out


def _columns(segments: npt.NDArray[np.void]) -> _Columns:
    """Times, amplitudes and widths of one channel's pulses, in time order, zeros left out."""
    seg = segments[segments["t1_s"] > segments["t0_s"]]
    times = np.concatenate([_continuous_times(seg[seg["burst_rate_hz"] == 0]),
                            _burst_times(seg[seg["burst_rate_hz"] > 0])])
    times.sort(kind="stable")
    # Gather per-segment values, not whole segment rows (profiled: rows cost 3×); differences
    # are taken per segment before the gather, which gives the very same numbers per pulse.
    index = np.searchsorted(seg["t0_s"], times, side="right") - 1
    np.clip(index, 0, len(seg) - 1, out=index)
    t0 = seg["t0_s"][index]
    frac = times - t0
    frac /= (seg["t1_s"] - seg["t0_s"])[index]
    a0 = seg["amp0_ma"][index]
    amplitude = (seg["amp1_ma"] - seg["amp0_ma"])[index]
    amplitude *= frac
    amplitude += a0  # a0 + frac × (a1 − a0)
    keep = _kept(amplitude > 0)
    times, amplitude, frac, index = times[keep], amplitude[keep], frac[keep], index[keep]
    w0 = seg["pw0_us"][index]
    width = (seg["pw1_us"] - seg["pw0_us"])[index]
    width *= frac
    width += w0  # w0 + frac × (w1 − w0)
    return times, amplitude, width


def _kept(keep: npt.NDArray[np.bool_]) -> slice | npt.NDArray[np.bool_]:
    """``keep`` as a slice when it drops only pulses at the ends (the usual case: the soft
    start and the end ramp are at zero exactly there), so that selecting costs no copy."""
    drop = np.flatnonzero(~keep)
    lead = int(np.searchsorted(drop - np.arange(drop.size), 0, side="right"))
    trail = drop.size - lead
    if trail and not np.array_equal(drop[lead:], np.arange(keep.size - trail, keep.size)):
        return keep
    return slice(lead, keep.size - trail)


def _continuous_times(seg: npt.NDArray[np.void]) -> npt.NDArray[np.float64]:
    if seg.size == 0:
        return np.zeros(0)
    dt = seg["t1_s"] - seg["t0_s"]
    f0, f1 = seg["freq0_hz"], seg["freq1_hz"]
    cycles = 0.5 * (f0 + f1) * dt  # pulses in each segment (trapezoid is exact for linear f)
    phase_end = np.cumsum(cycles)
    phase_start = phase_end - cycles
    first = np.ceil(phase_start - 1e-9).astype(np.int64)  # a pulse at the very start counts
    last = np.ceil(phase_end - 1e-9).astype(np.int64) - 1
    counts = np.maximum(last - first + 1, 0)
    # Per-segment values are spread over their pulses with np.repeat (a block copy) rather
    # than a gather through an owner index; the arithmetic per pulse is unchanged.
    # pulse number in the phase = first of its segment + its rank in the segment
    number = np.arange(counts.sum()) + np.repeat(first - (np.cumsum(counts) - counts), counts)
    target = number - np.repeat(phase_start, counts)  # phase to advance inside the segment
    b = np.repeat(f0, counts)
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = target / b
    a_seg = 0.5 * (f1 - f0) / dt
    chirp = np.abs(a_seg) > 1e-12
    if chirp.any():  # frequency ramps: solve a·τ² + b·τ = target (stable form)
        on = np.repeat(chirp, counts)
        a, b_on, target_on = np.repeat(a_seg, counts)[on], b[on], target[on]
        with np.errstate(divide="ignore", invalid="ignore"):
            disc = np.sqrt(np.maximum(b_on * b_on + 4 * a * target_on, 0.0))
            tau[on] = 2 * target_on / (b_on + disc)
    tau += np.repeat(seg["t0_s"], counts)
    return np.asarray(tau, dtype=np.float64)  # already float64: no copy


def _burst_times(seg: npt.NDArray[np.void]) -> npt.NDArray[np.float64]:
    if seg.size == 0:
        return np.zeros(0)
    parts = []
    # bursts are timed from the start of their phase, so splitting a phase into segments
    # (ramps, soft start) does not shift the bursts
    for phase in np.unique(seg["phase"]):
        rows = seg[seg["phase"] == phase]
        start, end = float(rows["t0_s"].min()), float(rows["t1_s"].max())
        rate, pulses = float(rows["burst_rate_hz"][0]), int(rows["burst_pulses"][0])
        freq = float(rows["freq0_hz"][0])
        bursts = start + np.arange(int(np.ceil((end - start) * rate - 1e-9))) / rate
        times = (bursts[:, None] + np.arange(pulses)[None, :] / freq).ravel()
        parts.append(times[times < end])
    return np.concatenate(parts)
