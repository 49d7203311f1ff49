"""The benchmark framework: a registry, timers, figure records, a machine description, reports.

A benchmark is a function ``fn(size, repeat=None) -> list[Figure]`` registered with
:func:`benchmark` in a ``benchmarks/bench_*.py`` module (found by :func:`discover`). ``size`` is
``"full"`` (the target figures) or ``"smoke"`` (tiny inputs, one run: only proves the
benchmark still works). Each figure is judged against a baseline measured *in the same run*:
the machines are shared and noisy, so medians, p99 and ratios are what we compare, never a
single time, and never against a number measured on another day.

Benchmarks are never pass/fail tests: a missed target is reported as MISSED, not raised.
This module must never change what it measures: it only times, summarises and writes reports.
"""

from __future__ import annotations

import gc
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

__all__ = [
    "BENCHMARKS",
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
    "real_time_figure",
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

Size = Literal["full", "smoke"]
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


class BenchFunction(Protocol):
    def __call__(self, size: Size, repeat: int | None = None) -> list[Figure]: ...


# --------------------------------------------------------------------------- records


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


# --------------------------------------------------------------------------- timing


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


def _time_once(fn: Callable[[], object]) -> int:
    gc.collect()  # start every sample from the same heap; GC stays enabled (real conditions)
    start = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - start


def measure(fn: Callable[[], object], repeat: int, warmup: int = 1) -> list[float]:
    """Wall times of ``fn()`` in milliseconds (time.perf_counter_ns), after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    return [_time_once(fn) / 1e6 for _ in range(repeat)]


def measure_pair(subject: Callable[[], object], baseline: Callable[[], object], repeat: int,
                 warmup: int = 1) -> tuple[list[float], list[float]]:
    """Time ``subject`` and ``baseline`` alternately (ms), so machine noise hits both alike."""
    for _ in range(warmup):
        subject()
        baseline()
    a: list[float] = []
    b: list[float] = []
    for _ in range(repeat):
        a.append(_time_once(subject) / 1e6)
        b.append(_time_once(baseline) / 1e6)
    return a, b


def _wall_once(argv: Sequence[str], cwd: Path | None, env: dict[str, str] | None,
               ok_codes: tuple[int, ...]) -> float:
    start = time.perf_counter_ns()
    done = subprocess.run(list(argv), cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, check=False)
    elapsed = (time.perf_counter_ns() - start) / 1e6
    if done.returncode not in ok_codes:
        err = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {' | '.join(err)}")
    return elapsed


def wall_times(argv: Sequence[str], repeat: int, warmup: int = 1, *, cwd: Path | None = None,
               env: dict[str, str] | None = None, ok_codes: tuple[int, ...] = (0,)) -> list[float]:
    """Whole-process wall times (ms) of a command; raises if it exits with another code."""
    for _ in range(warmup):  # fills the bytecode and page caches, as on a user's second run
        _wall_once(argv, cwd, env, ok_codes)
    return [_wall_once(argv, cwd, env, ok_codes) for _ in range(repeat)]


def wall_times_pair(subject: Sequence[str], baseline: Sequence[str], repeat: int,
                    warmup: int = 1, *, cwd: Path | None = None,
                    env: dict[str, str] | None = None) -> tuple[list[float], list[float]]:
    """Wall times (ms) of two commands, run alternately."""
    for _ in range(warmup):
        _wall_once(subject, cwd, env, (0,))
        _wall_once(baseline, cwd, env, (0,))
    a: list[float] = []
    b: list[float] = []
    for _ in range(repeat):
        a.append(_wall_once(subject, cwd, env, (0,)))
        b.append(_wall_once(baseline, cwd, env, (0,)))
    return a, b


def emsctl_command() -> list[str]:
    """The ``emsctl`` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("emsctl")
    if not script.exists():
        raise RuntimeError(f"no emsctl script next to {sys.executable}; install the package")
    return [str(script)]


# --------------------------------------------------------------------------- figures


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


# --------------------------------------------------------------------------- machine


def load_average() -> list[float]:
    """The 1-, 5- and 15-minute load averages (empty where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []



def machine() -> dict[str, object]:
    """What the figures were measured on."""
    import numpy

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "load_average_start": load_average(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "commit": _git_commit(),
    }


def _git_commit() -> str:
    try:
        done = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                              capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


# --------------------------------------------------------------------------- running


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


# --------------------------------------------------------------------------- reports


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if not math.isfinite(value):
        return str(value)
    text = f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{text} {unit}".strip()


def _rows(results: Sequence[RunResult]) -> list[list[str]]:
    rows = []
    for r in results:
        if r.error:
            rows.append([r.name, "ERROR", "", "", "", "", "", "", r.error])
            continue
        for f in r.figures:
            base = (f"{f.baseline_name}: {_num(f.baseline_value, f.unit)}"
                    if f.baseline_name else "—")
            ratio = f"{f.ratio:.2f}×" if f.ratio is not None else "—"
            rows.append([r.name, f.name, _num(f.median, f.unit), _num(f.p99, f.unit), str(f.n),
                         base, ratio, f.target or "—", f.verdict])
    return rows


HEADER = ["benchmark", "figure", "median", "p99", "n", "baseline (median, same run)", "ratio",
          "target", "result"]


def render_table(results: Sequence[RunResult]) -> str:
    """A plain-text table for the terminal."""
    rows = [HEADER, *_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {r.name} / {f.name}: {f.note}" for r in results for f in r.figures if f.note]
    return "\n".join(lines + (["", "notes:", *notes] if notes else []))


SUMMARY_HEADER = ["figure", "median", "p99", "baseline (same run)", "ratio", "target", "result"]


def render_summary(results: Sequence[RunResult]) -> str:
    """The short table for the README: judged figures only (those with a target)."""
    rows = []
    for r in results:
        for f in r.figures:
            if f.met is None:
                continue
            base = (f"{f.baseline_name}: {_num(f.baseline_value, f.unit)}"
                    if f.baseline_name else "—")
            ratio = f"{f.ratio:,.2f}×" if f.ratio is not None else "—"
            rows.append([f.name, _num(f.median, f.unit), _num(f.p99, f.unit), base, ratio,
                         f.target or "—", f.verdict])
    return "\n".join(["| " + " | ".join(SUMMARY_HEADER) + " |",
                      "|" + "---|" * len(SUMMARY_HEADER),
                      *("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"
                        for row in rows)])


def results_from_json(path: Path) -> tuple[list[RunResult], dict[str, object], str, str]:
    """Read ``results.json`` back: (results, machine, command, date)."""
    payload = json.loads(path.read_text(encoding="utf-8"))
    names = {f.name for f in fields(Figure)}
    results = [RunResult(b["name"], b["description"],
                         [Figure(**{k: v for k, v in f.items() if k in names})
                          for f in b["figures"]], b["error"], b["seconds"])
               for b in payload["benchmarks"]]
    return results, payload["machine"], payload["command"], payload["date"]


def render_markdown(results: Sequence[RunResult], info: dict[str, object], command: str,
                    date: str) -> str:
    """RESULTS.md: machine, date, command, and every figure beside its baseline and target."""
    figures = [f for r in results for f in r.figures]
    missed = [f for f in figures if f.met is False]
    errors = [r for r in results if r.error]
    lines = [
        "# Benchmark results",
        "",
        f"Measured {date} with `{command}`. Medians and p99 over n repeated runs; every baseline "
        "was measured in the same run, interleaved with its figure. Written by "
        "`python -m benchmarks`; do not edit by hand.",
        "",
        "## Machine",
        "",
        *(f"- {k}: {v}" for k, v in info.items()),
        "",
        "## Figures",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
        *("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"
          for row in _rows(results)),
        "",
        f"Targets met: {sum(f.met is True for f in figures)}, missed: {len(missed)}, "
        f"reported without a target: {sum(f.met is None for f in figures)}"
        + (f", benchmarks that failed to run: {len(errors)}." if errors else "."),
    ]
    notes = [f"- **{r.name} / {f.name}**: {f.note}" for r in results for f in r.figures if f.note]
    if notes:
        lines += ["", "## Notes", "", *notes]
    return "\n".join(lines) + "\n"


def write_reports(results: Sequence[RunResult], info: dict[str, object], command: str,
                  folder: Path = HERE) -> tuple[Path, Path]:
    """Write ``RESULTS.md`` and ``results.json`` into ``folder``."""
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    md = folder / "RESULTS.md"
    md.write_text(render_markdown(results, info, command, date), encoding="utf-8")
    js = folder / "results.json"
    payload = {
        "date": date,
        "command": command,
        "machine": info,
        "benchmarks": [
            {"name": r.name, "description": r.description, "seconds": round(r.seconds, 3),
             "error": r.error,
             "figures": [{**asdict(f), "result": f.verdict} for f in r.figures]}
            for r in results
        ],
    }
    js.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return md, js


def program_ms(url: str, program: str, folder: Path) -> float:
    """Wall time (ms) of one whole session of ``program`` on ``url`` in virtual time.

    Raises:
        RuntimeError: the session did not complete.
    """
    from emsctl.clock import VirtualClock
    from emsctl.limits import DEFAULTS
    from emsctl.loader import load_program
    from emsctl.runner import execute, prepare_run

    prepared = prepare_run(load_program(program), url, DEFAULTS)
    t0 = time.perf_counter()
    outcome = execute(prepared, VirtualClock(), journal_dir=folder, handle_signals=False)
    elapsed_ms = (time.perf_counter() - t0) * 1000
    if outcome.result.end_reason != "completed":
        raise RuntimeError(f"{url}: {outcome.result.message}")
    return elapsed_ms
