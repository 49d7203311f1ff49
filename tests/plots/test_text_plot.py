"""The text plot: ≤ 80 columns for every built-in, bars that follow the envelope, phase names
and a time axis; shown by default on a terminal, refused without one unless asked for."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from emsctl.loader import builtin_names, load_program
from emsctl.plotting import format_min_s, plan_for_plot, text_plot

BUILTINS = builtin_names()
GUTTER = 10  # label columns before the bars


@pytest.mark.parametrize("name", BUILTINS)
def test_text_plot_fits_80_columns_for_every_builtin(name: str, run_main) -> None:
    code, out, err = run_main("plot", name, "--text")
    assert code == 0, err
    lines = out.rstrip("\n").splitlines()
    assert max(len(line) for line in lines) <= 80
    program = load_program(name).program
    plan = plan_for_plot(program)
    assert lines[0].startswith(f"{name}: ") and format_min_s(plan.duration_s) in lines[0]
    for cplan in plan.channels:
        assert f"ch {cplan.channel} · {cplan.site}" in out
    phase_row = next(line for line in lines if line.lstrip().startswith("└"))
    names = [span.name for span in plan.phases]
    # a name that does not fit its band is numbered there and named in the key below
    key = " ".join(out.split("phases: ", 1)[1].split()) if "phases: " in out else ""
    shown = [n for i, n in enumerate(names)
             if f"┬{n}" in phase_row or (f"┬{i + 1}" in phase_row and f"{i + 1} = {n}" in key)]
    assert len(shown) == len(names), f"phases missing from {phase_row!r} and {key!r}"
    axis = lines[lines.index(phase_row) + 1]
    assert axis[GUTTER:].startswith("0:00") and axis.rstrip().endswith(
        format_min_s(plan.duration_s))


def test_bars_follow_the_amplitude_envelope() -> None:
    plan = plan_for_plot(load_program("relaxation").program)  # at the 30 mA caps
    lines = text_plot(plan, "relaxation", width=80, rows_per_channel=3).splitlines()
    bottom = lines[4][GUTTER:]  # channel 1's lowest row
    top = lines[2][GUTTER:]
    cols = 80 - GUTTER
    stretch_cols = int(180 / 960 * cols)
    assert bottom[:stretch_cols].strip() == ""  # the stretch has no output
    assert set(top[stretch_cols + 1:int(780 / 960 * cols)]) == {"█"}  # A and B at the cap
    assert top.rstrip().endswith("▁") and len(top.rstrip()) < cols  # C fades out
    assert lines[2][:GUTTER] == "  30.0 mA┤" and lines[4][:GUTTER] == "     0 mA┤"


@pytest.mark.parametrize("width", [40, 60, 79])
def test_text_plot_respects_a_narrower_width(width: int) -> None:
    plan = plan_for_plot(load_program("recovery").program, "synthetic")
    text = text_plot(plan, "recovery: a long heading " * 5, width=width, note="n" * 200)
    assert max(len(line) for line in text.splitlines()) <= width


def test_a_terminal_gets_the_text_plot_without_o(
        run_main, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setenv("COLUMNS", "200")  # wider terminals still get 80 columns
    code, out, _ = run_main("plot", "massage")
    assert code == 0 and "┬medium twitches" in out and "4 = slowest twitches" in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_no_terminal_and_no_output_file_exits_2(run_main) -> None:
    code, out, err = run_main("plot", "relaxation")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "-o FILE.png" in err and "--text" in err


def test_text_with_o_writes_the_text_plot_to_the_file(tmp_path: Path, run_main) -> None:
    out = tmp_path / "relaxation.txt"
    code, stdout, _ = run_main("plot", "relaxation", "--text", "-o", str(out))
    assert code == 0 and stdout.strip() == f"wrote {out}"
    assert "┬stretch" in out.read_text(encoding="utf-8")
