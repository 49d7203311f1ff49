"""Every registered benchmark still runs: once, at its tiny "smoke" size.

No timing is asserted here (benchmarks are never pass/fail tests; see benchmarks/README.md):
only that each benchmark returns figures whose numbers are finite.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # plain `pytest` (not `python -m pytest`) leaves the root out
    sys.path.insert(0, str(ROOT))

from benchmarks import harness  # noqa: E402

BENCHMARKS = harness.discover()


def test_core_benchmarks_are_registered() -> None:
    assert {"compile_verify", "pulse_expansion", "cli_validate", "cli_validate_1000", "cli_help",
            "validate_imports"} <= set(BENCHMARKS)


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_benchmark_runs_at_smoke_size_with_finite_figures(name: str) -> None:
    figures = BENCHMARKS[name].func("smoke")
    assert figures, f"{name} returned no figures"
    for f in figures:
        assert isinstance(f, harness.Figure)
        assert f.n >= 1
        for value in (f.value, f.median, f.p99):
            assert math.isfinite(value), f"{name} / {f.name}: {value}"
        if f.baseline_name is not None:
            assert f.baseline_value is not None and math.isfinite(f.baseline_value)
            assert f.ratio is not None and math.isfinite(f.ratio)
        assert f.met in (True, False, None)


def test_report_shows_each_figure_beside_its_baseline_and_an_honest_verdict(tmp_path) -> None:
    ok = harness.figure("fast", [1.0, 2.0, 3.0], "ms", baseline=("floor", [1.0, 1.0]),
                        max_ratio=5.0)
    slow = harness.figure("slow", [30.0, 31.0], "ms", max_value=20.0)
    results = [harness.RunResult("demo", "demo", [ok, slow]),
               harness.RunResult("broken", "broken", error="RuntimeError: boom")]
    md, js = harness.write_reports(results, {"cpu": "test"}, "python -m benchmarks",
                                   folder=tmp_path)
    text = md.read_text()
    assert "| demo | fast | 2 ms |" in text
    assert "floor: 1 ms | 2.00× | ≤ 5× baseline | met |" in text
    assert "| ≤ 20 ms | MISSED |" in text
    assert "RuntimeError: boom" in text
    assert '"result": "MISSED"' in js.read_text()


def test_stats_median_and_p99() -> None:
    s = harness.stats([float(x) for x in range(1, 101)])
    assert s.median == 50.5
    assert s.p99 == pytest.approx(99.01)
    assert s.n == 100


def test_comparison_flags_a_ratio_that_moved_by_more_than_ten_percent() -> None:
    def run(ratio_a: float, ratio_b: float) -> list[harness.RunResult]:
        a = harness.figure("a", [ratio_a], "ms", baseline=("floor", [1.0]))
        b = harness.figure("b", [ratio_b], "ms", baseline=("floor", [1.0]))
        return [harness.RunResult("demo", "demo", [a, b])]

    text = harness.render_comparison(run(2.0, 3.0), run(2.1, 3.5))
    rows = [line.split() for line in text.splitlines()[1:3]]
    assert rows == [["demo", "a", "2×", "2.1×", "+5.0%", "yes"],
                    ["demo", "b", "3×", "3.5×", "+16.7%", "NO"]]
    assert text.endswith("2 ratios compared; 1 moved by more than 10%")
