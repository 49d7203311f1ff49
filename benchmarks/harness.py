"""The benchmark framework: the registry and the run, with the helpers a benchmark imports.

A benchmark is a function ``fn(size, repeat=None) -> list[Figure]`` registered with
:func:`benchmark` in a ``benchmarks/bench_*.py`` module (found by :func:`discover`). ``size`` is
``"full"`` (the target figures) or ``"smoke"`` (tiny inputs, one run: only proves the
benchmark still works). Each figure is judged against a baseline measured *in the same run*:
the machines are shared and noisy, so medians, p99 and ratios are what we compare, never a
single time, and never against a number measured on another day.

Benchmarks are never pass/fail tests: a missed target is reported as MISSED, not raised.
This module must never change what it measures: it only times, summarises and writes reports.
Its parts: :mod:`.records` (figures and statistics), :mod:`.timing` (timers) and
:mod:`.reports` (machine, tables, RESULTS.md, results.json); their names are re-exported here,
so a benchmark imports everything from ``.harness``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from .records import (
    BenchFunction,
    Benchmark,
    Figure,
    RunResult,
    Size,
    Stats,
    figure,
    real_time_figure,
    stats,
)
from .reports import (
    load_average,
    machine,
    render_comparison,
    render_markdown,
    render_summary,
    render_table,
    results_from_json,
    write_reports,
)
from .timing import (
    emsctl_command,
    measure,
    measure_pair,
    program_ms,
    wall_times,
    wall_times_pair,
)

__all__ = [
    "BENCHMARKS",
    "BenchFunction",
    "Benchmark",
    "Figure",
    "RunResult",
    "Size",
    "Stats",
    "benchmark",
    "discover",
    "emsctl_command",
    "figure",
    "load_average",
    "machine",
    "measure",
    "measure_pair",
    "program_ms",
    "real_time_figure",
    "render_comparison",
    "render_markdown",
    "render_summary",
    "render_table",
    "repeats",
    "results_from_json",
    "run",
    "stats",
    "wall_times",
    "wall_times_pair",
    "write_reports",
]

HERE = Path(__file__).resolve().parent


BENCHMARKS: dict[str, Benchmark] = {}


def benchmark(name: str, description: str) -> Callable[[BenchFunction], BenchFunction]:
    """Register ``fn(size, repeat=None) -> list[Figure]`` under ``name`` (unique)."""

    def register(func: BenchFunction) -> BenchFunction:
        if name in BENCHMARKS:
            raise ValueError(f"benchmark {name!r} is registered twice")
        BENCHMARKS[name] = Benchmark(name, func, description, func.__module__)
        return func

    return register


def discover() -> dict[str, Benchmark]:
    """Import every ``benchmarks/bench_*.py`` module, so their benchmarks register themselves."""
    import importlib
    import pkgutil

    for info in sorted(pkgutil.iter_modules([str(HERE)]), key=lambda m: m.name):
        if info.name.startswith("bench_"):
            importlib.import_module(f"{__package__}.{info.name}")
    return BENCHMARKS


def repeats(size: Size, repeat: int | None, full: int, smoke: int = 1) -> int:
    """How many timed runs: ``repeat`` if given (≥ 1), else the benchmark's default for ``size``."""
    if repeat is not None:
        return max(1, repeat) if size == "full" else 1
    return full if size == "full" else smoke


def run(names: Sequence[str] | None, size: Size, repeat: int | None,
        echo: Callable[[str], None] | None = None) -> list[RunResult]:
    """Run the named benchmarks (all when None), in registration order; errors are recorded."""
    registry = discover()
    unknown = [n for n in names or () if n not in registry]
    if unknown:
        raise KeyError(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(registry)}")
    selected = [b for b in registry.values() if not names or b.name in names]
    results = []
    for bench in selected:
        if echo:
            echo(f"running {bench.name} ({size}) …")
        start = time.perf_counter()
        result = RunResult(bench.name, bench.description)
        try:
            figures = bench.func(size, repeat)
            # one tiny run proves the benchmark works; it says nothing about the target
            result.figures = (figures if size == "full" else
                              [replace(f, met=None, target="(smoke: not judged)") for f in figures])
        except Exception as exc:  # a broken benchmark must not hide the others' figures
            result.error = f"{type(exc).__name__}: {exc}"
        result.seconds = time.perf_counter() - start
        results.append(result)
    return results
