"""What a benchmark produces: figures beside their same-run baselines and targets, and the
statistics they are made of.

:func:`figure` turns samples into a :class:`Figure` with its median, p99, ratio to the baseline
and verdict; :func:`stats` summarises any list of numbers. Never pass/fail: a missed target is
reported as MISSED.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

__all__ = ["BenchFunction", "Benchmark", "Figure", "RunResult", "Size", "Stats", "figure",
           "real_time_figure", "stats"]

Size = Literal["full", "smoke"]


class BenchFunction(Protocol):
    def __call__(self, size: Size, repeat: int | None = None) -> list[Figure]: ...


@dataclass(frozen=True)
class Stats:
    """Summary of repeated samples, in the unit they were given in."""

    median: float
    p99: float
    n: int
    minimum: float
    maximum: float


@dataclass(frozen=True)
class Figure:
    """One measured figure, beside its baseline and target.

    ``value`` is the figure that is judged (usually the median; for a ratio target, the
    median too, with ``ratio`` = median / baseline median). ``met`` is None for a figure
    reported without a target.
    """

    name: str
    value: float
    unit: str
    median: float
    p99: float
    n: int
    baseline_name: str | None = None
    baseline_value: float | None = None
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def verdict(self) -> str:
        return {True: "met", False: "MISSED", None: "report"}[self.met]


@dataclass(frozen=True)
class Benchmark:
    """A registered benchmark."""

    name: str
    func: BenchFunction
    description: str
    module: str


@dataclass
class RunResult:
    """What one benchmark produced: its figures, or the error that stopped it."""

    name: str
    description: str
    figures: list[Figure] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0


def stats(samples: Sequence[float]) -> Stats:
    """Median and p99 (linear interpolation between order statistics) of ``samples``."""
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    return Stats(_quantile(ordered, 0.5), _quantile(ordered, 0.99), len(ordered),
                 ordered[0], ordered[-1])


def _quantile(ordered: Sequence[float], q: float) -> float:
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def figure(name: str, samples: Sequence[float], unit: str, *,
           baseline: tuple[str, Sequence[float]] | None = None,
           max_value: float | None = None, max_ratio: float | None = None,
           min_ratio: float | None = None, speedup: bool = False, target: str | None = None,
           note: str = "") -> Figure:
    """Summarise ``samples`` into a Figure judged on its median.

    Args:
        name: what was measured.
        samples: repeated measurements in ``unit``.
        unit: the unit of ``samples``.
        baseline: (name, samples) measured in the same run; ratio = median / baseline median,
            or baseline median / median when ``speedup`` (e.g. real time / session time).
        max_value: target: median ≤ this.
        max_ratio: target: ratio ≤ this.
        min_ratio: target: ratio ≥ this (with ``speedup``: "≥ 2,000× real time").
        speedup: the ratio is how many times faster than the baseline the figure is.
        target: target text; built from the limits when not given.
        note: anything a reader needs to interpret the figure.
    """
    s = stats(samples)
    base_name = base_value = ratio = None
    if baseline is not None:
        base_name = baseline[0]
        base_value = stats(baseline[1]).median
        num, den = (base_value, s.median) if speedup else (s.median, base_value)
        ratio = num / den if den > 0 else math.inf
    checks: list[bool] = []
    texts: list[str] = []
    if max_value is not None:
        checks.append(s.median <= max_value)
        texts.append(f"≤ {max_value:g} {unit}")
    if max_ratio is not None:
        checks.append(ratio is not None and ratio <= max_ratio)
        texts.append(f"≤ {max_ratio:g}× baseline")
    if min_ratio is not None:
        checks.append(ratio is not None and ratio >= min_ratio)
        texts.append(f"≥ {min_ratio:g}× {'faster than ' if speedup else ''}baseline")
    met = all(checks) if checks else None
    return Figure(name, s.median, unit, s.median, s.p99, s.n, base_name, base_value, ratio,
                  target if target is not None else "; ".join(texts), met, note)


def real_time_figure(name: str, samples_ms: Sequence[float], real_ms: float,
                     min_ratio: float = 400.0, note: str = "") -> Figure:
    """How many times faster than real time a session of ``real_ms`` ran (samples in ms).

    The baseline is the program's own length (what the session takes on a real clock); the
    ratio is real time / median run time, judged against ``min_ratio`` (≥ 400× for
    a 20-minute session through a ``sim+<protocol>`` driver, ≥ 2,000× on the plain simulator).
    """
    span = f"{real_ms / 60_000:g} min" if real_ms >= 60_000 else f"{real_ms / 1000:g} s"
    return figure(name, samples_ms, "ms", baseline=(f"real time ({span})", [real_ms]), speedup=True,
                  min_ratio=min_ratio, target=f"≥ {min_ratio:,.0f}× real time",
                  note=note or "ratio = real time / median wall time of the whole session")
