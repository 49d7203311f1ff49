"""``emsctl plot``: an image for every built-in program, SVG by suffix, one-sentence errors,
and a clear message naming the ``plot`` extra when matplotlib is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from emsctl.loader import builtin_names

BUILTINS = builtin_names()


def test_every_builtin_program_is_a_builtin_we_plot() -> None:
    assert "relaxation" in BUILTINS and len(BUILTINS) >= 8


@pytest.mark.parametrize("name", BUILTINS)
def test_png_is_drawn_for_every_builtin_program(name: str, tmp_path: Path, run_main,
                                                png_size) -> None:
    out = tmp_path / f"{name}.png"
    code, stdout, err = run_main("plot", name, "-o", str(out))
    assert code == 0, err
    assert stdout.strip() == f"wrote {out}"
    width_px, height_px = png_size(out)
    # 11 in wide at 100 dpi; two channels: 2 × 2 in + 3.6 in high
    assert width_px == 1100 and 600 <= height_px <= 900
    assert 20_000 < out.stat().st_size < 400_000


def test_svg_is_drawn_when_the_file_name_says_svg(tmp_path: Path, run_main) -> None:
    out = tmp_path / "relaxation.svg"
    code, _, err = run_main("plot", "relaxation", "-o", str(out), "--amplitudes", "synthetic")
    assert code == 0, err
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<?xml") and "<svg" in text[:1000] and text.rstrip().endswith("</svg>")
    assert 20_000 < len(text) < 2_000_000


def test_an_unknown_image_suffix_exits_2_without_writing(tmp_path: Path, run_main) -> None:
    out = tmp_path / "relaxation.jpg"
    code, stdout, err = run_main("plot", "relaxation", "-o", str(out))
    assert code == 2 and stdout == "" and not out.exists()
    assert err.count("\n") == 1 and ".png or .svg" in err and "Traceback" not in err


def test_an_unknown_program_exits_2(tmp_path: Path, run_main) -> None:
    code, _, err = run_main("plot", "nosuch", "-o", str(tmp_path / "x.png"))
    assert code == 2 and "no built-in program 'nosuch'" in err


def test_missing_matplotlib_names_the_extra_and_exits_2(
        tmp_path: Path, run_main, monkeypatch: pytest.MonkeyPatch) -> None:
    for module in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` → ImportError
    out = tmp_path / "relaxation.png"
    code, stdout, err = run_main("plot", "relaxation", "-o", str(out))
    assert code == 2 and stdout == "" and not out.exists()
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "pip install 'emsctl[plot]'" in err and "matplotlib" in err
    assert "pip install -e '.[plot]' in a checkout" in err  # works from a source tree too
    # the text plot needs no extra
    code, stdout, _ = run_main("plot", "relaxation", "--text")
    assert code == 0 and "stretch" in stdout


def test_the_text_plot_and_the_cli_module_do_not_import_matplotlib() -> None:
    code = ("import sys; from emsctl.loader import load_program; import emsctl.cli.plot; "
            "from emsctl.plotting import plan_for_plot, text_plot; "
            "text_plot(plan_for_plot(load_program('relaxation').program), 'x'); "
            "assert 'matplotlib' not in sys.modules, 'matplotlib was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def test_the_plot_draws_what_a_person_gets_with_the_caps_as_limits(run_main) -> None:
    """Not the 30 mA cap as if it were the dose: the synthetic person's 12 → 13.2 mA, labelled."""
    code, out, err = run_main("plot", "relaxation", "--text")
    assert code == 0, err
    flat = " ".join(out.split())
    assert "amplitudes for the simulator's synthetic person (ST 6, MT 12, TOL 25 mA)" in flat
    assert "ch 1 · calf-left · peak 13.2 mA · cap 22.5 mA" in out
    code, out, _ = run_main("plot", "relaxation", "--text", "--amplitudes", "caps")
    assert "peak 30.0 mA" in out and "worst case that validation checks" in out
    # on a device with 2 mA steps, the person gets 12 mA, and the plot says so
    code, out, err = run_main("plot", "relaxation", "--text", "-d", "sim+sciencemode2")
    assert code == 0, err
    flat = " ".join(out.split())
    assert "peak 12.0 mA" in out and "in 2 mA steps" in flat and "RehaStim2" in flat


def test_the_image_draws_the_amplitudes_the_caps_and_names_them(
        tmp_path: Path, run_main, monkeypatch: pytest.MonkeyPatch) -> None:
    from emsctl.plotting import program

    figures = []
    monkeypatch.setattr(program, "save", lambda fig, path, fmt: figures.append(fig))
    code, _, err = run_main("plot", "relaxation", "-o", str(tmp_path / "r.png"))
    assert code == 0, err
    [fig] = figures
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert "13.2 mA" in texts and " cap 22.5 mA" in texts and " program cap\n 30 mA" in texts
    assert "synthetic person" in fig._suptitle.get_text()
    channel = fig.axes[0]
    top = max(max(line.get_ydata()) for line in channel.lines if len(line.get_ydata()) > 2)
    assert top == pytest.approx(13.2)
    # every phase is named in the table beside the pulse, in full
    table = "\n".join(texts)
    for name in ("stretch", "gentle twitches", "slower twitches", "fading out"):
        assert name in table


def test_plot_for_a_real_device_without_a_calibration_says_what_to_do(run_main) -> None:
    code, out, err = run_main("plot", "relaxation", "--text", "-d",
                              "sciencemode2:///dev/emsctl-test-nothing-here")
    assert code == 2 and out == "" and "emsctl calibrate" in err
