"""N, the largest number of pulses in any 1 s window, in the three flavours of the formulas.

N is ``pulses_per_s`` in every formula of docs/safety-basis.md §3 (rms current, current and power
density). For continuous pulses it is the frequency; for bursts it is the exact count of the
fullest half-open window [t, t + 1 s), which is bursts/s × pulses per burst only at a whole
number of bursts per second. The float and array flavours are read off the exact count.

This module is pure: no I/O, no clock, no state. It must never estimate N (an average rate
undercounts the fullest window), and no other module computes it.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from numpy.typing import ArrayLike

from .formulas import ExactInput, FloatArray, as_float64, exact

__all__ = [
    "pulses_per_s",
    "pulses_per_s_array",
    "pulses_per_s_exact",
]


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


def pulses_per_s_array(
    frequency_hz: ArrayLike, burst_rate_hz: ArrayLike, burst_pulses: ArrayLike
) -> FloatArray:
    """Vectorised :func:`pulses_per_s`. Arguments broadcast; returns float64.

    Bursts are counted exactly, once per distinct (frequency, rate, pulses) triple.
    """
    freq, rate, count = np.broadcast_arrays(as_float64(frequency_hz), as_float64(burst_rate_hz),
                                            np.asarray(burst_pulses))
    out = freq.copy()
    burst = rate != 0
    if burst.any():
        triples = list(zip(freq[burst].tolist(), rate[burst].tolist(), count[burst].tolist(),
                           strict=True))
        known = {t: float(pulses_per_s_exact(t[0], t[1], int(t[2]))) for t in set(triples)}
        out[burst] = [known[t] for t in triples]
    return out


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
