"""Benchmark reports: the machine they ran on, the console table, ``RESULTS.md`` and
``results.json``, and the README's short table read back from ``results.json``."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, fields
from datetime import UTC, datetime
from pathlib import Path

from .records import Figure, RunResult

__all__ = ["load_average", "machine", "render_markdown", "render_summary", "render_table",
           "results_from_json", "write_reports"]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


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


def render_comparison(before: Sequence[RunResult], after: Sequence[RunResult],
                      tolerance: float = 0.10) -> str:
    """Each figure with a same-run ratio in both runs: the ratio before and after, and whether
    it moved by more than ``tolerance`` (a behaviour change, or noise to look at again)."""
    old = {(r.name, f.name): f for r in before for f in r.figures if f.ratio is not None}
    rows = [["benchmark", "figure", "ratio before", "ratio after", "change", "within"]]
    moved = 0
    for r in after:
        for f in r.figures:
            was = old.get((r.name, f.name))
            if was is None or f.ratio is None or was.ratio is None:
                continue
            change = f.ratio / was.ratio - 1
            within = abs(change) <= tolerance
            moved += not within
            rows.append([r.name, f.name, f"{was.ratio:.3g}×", f"{f.ratio:.3g}×",
                         f"{change:+.1%}", "yes" if within else "NO"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.append(f"{len(rows) - 1} ratios compared; {moved} moved by more than "
                 f"{tolerance:.0%}")
    return "\n".join(lines)


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
