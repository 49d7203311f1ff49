"""What the simulated device actually delivered: pulses, phase charge, rms, peak and net DC.

Built from the model's piecewise-constant intervals with numpy (a 20-minute, 2-channel session
at 100 Hz is 240 000 pulses; no Python loop runs per pulse). Pure: reads the model, never the
clock; :meth:`Recorder.save_npz` is the one method that writes a file.

Pulse timing rule: a channel's pulse generator starts when its set amplitude turns above 0 — the
first pulse at that instant — and then runs phase-continuously across later changes of
amplitude, width or frequency: a pulse each time the accumulated phase ∫f dt crosses an integer.
Turning the channel off (amplitude 0, stop, watchdog expiry, reset) ends the run; the next run
starts at phase 0 again. Each pulse takes the amplitude and width of the interval it starts in;
pulses while the pad is off deliver 0 mA and are left out of :meth:`Recorder.pulses`.

Every pulse is biphasic: a first phase of ``+I`` for ``PW`` and a second phase of
``-I·r_a`` for ``PW·r_w`` with the ratios of the device spec (1 and 1: symmetric). Net DC is
computed from both phases, so an asymmetric device shows a non-zero figure.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..results import PULSE_DTYPE
from .model import SimulatedStimulator

__all__ = ["DELIVERED_PULSE_DTYPE", "Recorder"]

#: One row per delivered pulse: start time, delivered first-phase current, first-phase width
#: (the core's :data:`emsctl.results.PULSE_DTYPE`, which :func:`emsctl.run` returns).
DELIVERED_PULSE_DTYPE = PULSE_DTYPE

_PHASE_EPS = 1e-9


class Recorder:
    """Read-only figures of what a :class:`SimulatedStimulator` delivered.

    Every method takes ``until_s``: the end of the record (default: when the device's last known
    output ends, its pending watchdog deadline included). The session starts at the device's
    first activity (``device.t_start_s``).

    Args:
        device: the simulated device to read.
    """

    def __init__(self, device: SimulatedStimulator) -> None:
        self.device = device

    # ------------------------------------------------------------------ now

    def delivered_now_ma(self, channel: int) -> float:
        """The current ``channel`` (1-based) delivers at the device's present time."""
        return self.device.output_now()[channel - 1].delivered_ma

    def zero_after_s(self, channel: int, t_s: float) -> float | None:
        """When ``channel``'s output was next zero from ``t_s`` on (``t_s`` if it already was);
        None while it is still on at the end of the record."""
        zero_at_s = t_s
        for row in self.intervals(channel):
            if row["t1_s"] <= t_s:
                continue
            if row["delivered_ma"] <= 0:
                return zero_at_s
            zero_at_s = max(zero_at_s, float(row["t1_s"]))
        return zero_at_s

    # ------------------------------------------------------------------ arrays

    def intervals(self, channel: int, until_s: float | None = None) -> npt.NDArray[np.void]:
        """The channel's output intervals (:data:`~emsctl.simulator.model.INTERVAL_DTYPE`).

        Raises:
            InputError: no such channel.
        """
        return self.device.intervals(channel, until_s)

    def pulses(self, channel: int, until_s: float | None = None) -> npt.NDArray[np.void]:
        """Every pulse that delivered current, in time order (:data:`DELIVERED_PULSE_DTYPE`).

        Raises:
            InputError: no such channel.
        """
        seg = self.intervals(channel, until_s)
        seg = seg[seg["t1_s"] > seg["t0_s"]]
        if (seg["burst_rate_hz"] > 0).any():
            return _with_bursts(seg, self._continuous_pulses)
        return self._continuous_pulses(seg)

    @staticmethod
    def _continuous_pulses(seg: npt.NDArray[np.void]) -> npt.NDArray[np.void]:
        on = (seg["amplitude_ma"] > 0) & (seg["frequency_hz"] > 0)
        if not on.any():
            return np.zeros(0, DELIVERED_PULSE_DTYPE)
        t0, t1 = seg["t0_s"], seg["t1_s"]
        freq = np.where(on, seg["frequency_hz"], 0.0)
        cycles = freq * (t1 - t0)
        # Intervals are contiguous by construction: a run starts at an "on" after an "off".
        run_start = on & ~np.concatenate([[False], on[:-1]])
        phase_end = np.cumsum(cycles)
        phase_total_before = phase_end - cycles
        run_id = np.cumsum(run_start)
        run_base = np.zeros(run_id.max() + 1)
        run_base[run_id[run_start]] = phase_total_before[run_start]
        phase_start = phase_total_before - run_base[run_id]
        phase_stop = phase_start + cycles
        first = np.ceil(phase_start - _PHASE_EPS).astype(np.int64)
        last = np.ceil(phase_stop - _PHASE_EPS).astype(np.int64) - 1
        counts = np.where(on, np.maximum(last - first + 1, 0), 0)
        owner = np.repeat(np.arange(seg.size), counts)
        k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        target = first[owner] + k - phase_start[owner]
        out = np.zeros(owner.size, DELIVERED_PULSE_DTYPE)
        out["t_s"] = t0[owner] + target / freq[owner]
        out["amplitude_ma"] = seg["delivered_ma"][owner]
        out["pulse_width_us"] = seg["pulse_width_us"][owner]
        return out[out["amplitude_ma"] > 0]

    def phase_charges_uc(self, channel: int, until_s: float | None = None
                         ) -> npt.NDArray[np.float64]:
        """Per pulse, the charge of the first (positive) and second (negative) phase, µC.

        Returns:
            An ``(n, 2)`` array; column 1 is negative.

        Raises:
            InputError: no such channel.
        """
        p = self.pulses(channel, until_s)
        spec = self.device.spec
        first = p["amplitude_ma"] * p["pulse_width_us"] / 1000.0
        second = -(p["amplitude_ma"] * spec.phase2_amplitude_ratio) \
            * (p["pulse_width_us"] * spec.phase2_width_ratio) / 1000.0
        return np.column_stack([first, second]).astype(np.float64)

    def phase_charge_uc(self, channel: int, until_s: float | None = None
                        ) -> npt.NDArray[np.float64]:
        """Per pulse, the first-phase charge ``I·PW/1000`` in µC (mA × µs = nC).

        Raises:
            InputError: no such channel.
        """
        return self.phase_charges_uc(channel, until_s)[:, 0]

    # ------------------------------------------------------------------ figures

    def duration_s(self, until_s: float | None = None) -> float:
        """Length of the record: from the device's first activity to ``until_s``."""
        start = self.device.t_start_s
        if start is None:
            return 0.0
        if until_s is not None:
            return max(until_s - start, 0.0)
        ends = [start] + [float(iv["t1_s"][-1]) for c in self.device.channels
                          if (iv := self.intervals(c)).size]
        return max(ends) - start

    def pulse_count(self, channel: int, until_s: float | None = None) -> int:
        """Number of pulses that delivered current.

        Raises:
            InputError: no such channel.
        """
        return int(self.pulses(channel, until_s).size)

    def peak_ma(self, channel: int, until_s: float | None = None) -> float:
        """Largest delivered pulse current, mA (0 without pulses).

        Raises:
            InputError: no such channel.
        """
        p = self.pulses(channel, until_s)
        return float(p["amplitude_ma"].max()) if p.size else 0.0

    def rms_ma(self, channel: int, until_s: float | None = None) -> float:
        """Root-mean-square current over the whole record, both phases counted, mA.

        For a constant output this is ``I·sqrt(2·PW·f·1e-6)`` (symmetric biphasic).

        Raises:
            InputError: no such channel.
        """
        duration_s = self.duration_s(until_s)
        if duration_s <= 0:
            return 0.0
        p = self.pulses(channel, until_s)
        spec = self.device.spec
        a_ma, w_us = p["amplitude_ma"], p["pulse_width_us"]
        energy = (a_ma**2 * w_us
                  + (a_ma * spec.phase2_amplitude_ratio) ** 2 * w_us * spec.phase2_width_ratio)
        return float(np.sqrt(energy.sum() * 1e-6 / duration_s))

    def net_charge_uc(self, channel: int, until_s: float | None = None) -> float:
        """Sum of both phases' charge over all pulses, µC (0 for a balanced waveform).

        Raises:
            InputError: no such channel.
        """
        return float(self.phase_charges_uc(channel, until_s).sum())

    def net_dc_ua(self, channel: int, until_s: float | None = None) -> float:
        """Mean (DC) current over the record, µA: net charge over duration.

        Raises:
            InputError: no such channel.
        """
        duration_s = self.duration_s(until_s)
        return self.net_charge_uc(channel, until_s) / duration_s if duration_s > 0 else 0.0

    def summary(self, until_s: float | None = None) -> dict[int, dict[str, float]]:
        """Per channel: pulse_count, peak_ma, rms_ma, max_phase_charge_uc, net_charge_uc,
        net_dc_ua, on_time_s and duration_s."""
        duration_s = self.duration_s(until_s)
        figures: dict[int, dict[str, float]] = {}
        for channel in self.device.channels:
            iv = self.intervals(channel, until_s)
            delivering = iv[iv["delivered_ma"] > 0]
            charges = self.phase_charge_uc(channel, until_s)
            figures[channel] = {
                "pulse_count": float(self.pulse_count(channel, until_s)),
                "peak_ma": self.peak_ma(channel, until_s),
                "rms_ma": self.rms_ma(channel, until_s),
                "max_phase_charge_uc": float(charges.max()) if charges.size else 0.0,
                "net_charge_uc": self.net_charge_uc(channel, until_s),
                "net_dc_ua": self.net_dc_ua(channel, until_s),
                "on_time_s": float((delivering["t1_s"] - delivering["t0_s"]).sum()),
                "duration_s": duration_s,
            }
        return figures

    def save_npz(self, path: str | Path, until_s: float | None = None) -> None:
        """Write every channel's intervals and pulses to a ``.npz`` file for plots.

        Raises:
            OSError: the file could not be written.
        """
        arrays: dict[str, npt.NDArray[np.void]] = {}
        for channel in self.device.channels:
            arrays[f"intervals_ch{channel}"] = self.intervals(channel, until_s)
            arrays[f"pulses_ch{channel}"] = self.pulses(channel, until_s)
        np.savez(Path(path), **arrays)  # type: ignore[arg-type]



def _with_bursts(seg: npt.NDArray[np.void],
                 continuous: Callable[[npt.NDArray[np.void]], npt.NDArray[np.void]]
                 ) -> npt.NDArray[np.void]:
    """Pulses when some intervals are device-timed bursts.

    Bursts start when a burst run starts and repeat every 1/``burst_rate_hz`` s; each holds
    ``burst_pulses`` pulses at the interval's frequency, with the amplitude in force at each pulse.
    """
    burst = seg["burst_rate_hz"] > 0
    parts = [continuous(seg[~burst])]
    on = burst & (seg["amplitude_ma"] > 0)
    run_start = on & ~np.concatenate([[False], on[:-1]])
    starts = np.flatnonzero(run_start)
    for first in starts:
        last = first
        while last + 1 < seg.size and on[last + 1]:
            last += 1
        rows = seg[first:last + 1]
        begin, end = float(rows["t0_s"][0]), float(rows["t1_s"][-1])
        rate, pulses = float(rows["burst_rate_hz"][0]), int(rows["burst_pulses"][0])
        freq = float(rows["frequency_hz"][0])
        count = int(np.ceil((end - begin) * rate - _PHASE_EPS))
        times = (begin + np.arange(count)[:, None] / rate
                 + np.arange(pulses)[None, :] / freq).ravel()
        times = times[times < end]
        index = np.searchsorted(rows["t0_s"], times, side="right") - 1
        out = np.zeros(times.size, DELIVERED_PULSE_DTYPE)
        out["t_s"] = times
        out["amplitude_ma"] = rows["delivered_ma"][index]
        out["pulse_width_us"] = rows["pulse_width_us"][index]
        parts.append(out[out["amplitude_ma"] > 0])
    merged = np.concatenate(parts)
    return merged[np.argsort(merged["t_s"], kind="stable")]
