"""Core benchmarks (the README's "Performance" figures): compile + verify, pulse expansion, CLI
start-up.

Every figure is measured beside its baseline in the same run, interleaved with it:
- compile + verify of a 60-minute, 2-channel program (no baseline; target ≤ 20 ms);
- pulse-level expansion of 60 min at 100 Hz on 2 channels (720,000 pulses) against one numpy
  pass writing an array of the same dtype and size (targets ≤ 50 ms and ≤ 5× baseline);
- ``emsctl validate programs/``, 1,000 files, and ``emsctl --help`` as whole-process wall times
  against the interpreter floors ``python -c "import numpy, pydantic, click"`` and
  ``python -c "import click"``;
- a check (not a timing) that ``import emsctl`` and ``emsctl validate`` import none of bleak,
  serial or matplotlib.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from functools import partial
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .harness import (
    Figure,
    Size,
    benchmark,
    emsctl_command,
    figure,
    measure,
    measure_pair,
    wall_times,
    wall_times_pair,
)
from .harness import repeats as _repeats

if TYPE_CHECKING:
    from emsctl.limits import Limits
    from emsctl.program import Program

FORBIDDEN = ("bleak", "serial", "matplotlib")

_PROGRAM = """\
name = "{name}"
title = "Benchmark: {name}"
purpose = "tens"
evidence = "benchmark input, not a program for people"
description = "A long 2-channel program for timing the compiler and the verifier."
placement = "Lower back, one channel on each side of the spine."
calibration_frequency_hz = {freq}
calibration_pulse_width_us = 180
soft_start_s = 5
transition_s = 5
end_ramp_s = 3

[[channels]]
id = 1
site = "lower-back-left"
electrode_area_cm2 = 16
max_amplitude_ma = 40

[[channels]]
id = 2
site = "lower-back-right"
electrode_area_cm2 = 16
max_amplitude_ma = 40

[[phases]]
name = "1"
duration_s = {duration_s}
frequency_hz = {freq}
pulse_width_us = {width}
amplitude = "MT-10%"
amplitude_cap = "MT"
"""


def program_text(kind: str, duration_s: float, freq_hz: float = 80.0) -> str:
    """A tens-like 2-channel program: ``"sweep"`` (pulse width 100 ↔ 180 µs, 1 s period) or
    ``"continuous"`` (fixed 180 µs)."""
    width = "{ low = 100, high = 180, period_s = 1 }" if kind == "sweep" else "180"
    return _PROGRAM.format(name=f"bench-{kind}", duration_s=duration_s, freq=freq_hz,
                           width=width)


def _span(duration_s: float) -> str:
    return f"{duration_s / 60:g} min" if duration_s >= 60 else f"{duration_s:g} s"


def _long_session_limits() -> Limits:
    # L19: the shipped default allows 30 min; a 60-min program needs a limits file that moves
    # session_max_s up to its ceiling (3600 s). Everything else stays at the shipped defaults.
    from emsctl.limits import limits_from_mapping

    return limits_from_mapping({"session_max_s": 3600}, source="benchmark limits")


# --------------------------------------------------------------------------- compile + verify


def _compile_verify(program: Program, limits: Limits) -> object:
    from emsctl.plan import compile_plan
    from emsctl.verify import verify

    return verify(compile_plan(program), limits)


def _parse_compile_verify(text: str, limits: Limits) -> object:
    from emsctl.loader import parse_program_text

    return _compile_verify(parse_program_text(text), limits)


@benchmark("compile_verify", "compile + verify a 60-minute 2-channel program")
def bench_compile_verify(size: Size, repeat: int | None = None) -> list[Figure]:
    from emsctl.loader import parse_program_text
    from emsctl.plan import compile_plan
    from emsctl.verify import verify

    duration_s = 3600 if size == "full" else 60
    n = _repeats(size, repeat, full=40)
    limits = _long_session_limits()
    figures = []
    for kind, label in (("sweep", "pulse-width sweep 1 s"), ("continuous", "continuous")):
        program = parse_program_text(program_text(kind, duration_s), f"<bench-{kind}>")
        plan = compile_plan(program)
        violations = verify(plan, limits)
        if any(v.severity == "block" for v in violations):
            raise RuntimeError(f"benchmark program does not verify: {violations[0]}")
        segments = sum(len(c.segments) for c in plan.channels)
        samples = measure(partial(_compile_verify, program, limits), n)
        figures.append(figure(
            f"compile+verify {_span(duration_s)}, 2 ch, {label}", samples, "ms",
            max_value=20.0 if size == "full" else None,
            note=f"{segments:,} segments in the plan; parsing not included"))
        text = program_text(kind, duration_s)
        samples = measure(partial(_parse_compile_verify, text, limits), n)
        figures.append(figure(f"parse+compile+verify, {label}", samples, "ms"))
    return figures


# --------------------------------------------------------------------------- pulse expansion


@benchmark("pulse_expansion", "pulse-level expansion, 60 min at 100 Hz on 2 channels")
def bench_pulse_expansion(size: Size, repeat: int | None = None) -> list[Figure]:
    from emsctl.loader import parse_program_text
    from emsctl.plan import compile_plan
    from emsctl.pulses import PULSE_DTYPE

    duration_s = 3600 if size == "full" else 10
    n = _repeats(size, repeat, full=25)
    plan = compile_plan(parse_program_text(program_text("continuous", duration_s, 100.0)))
    pulses = plan.expand_pulses()
    count = int(pulses.size)
    channels = len(plan.channels)

    def baseline() -> np.ndarray:
        # one numpy pass writing the same array: same dtype, same length, every field written
        out = np.empty(count, PULSE_DTYPE)
        step = np.arange(count)
        out["t_s"] = step * (1.0 / (100.0 * channels))
        out["channel"] = step % channels + 1
        out["amplitude_ma"] = 40.0
        out["pulse_width_us"] = 180.0
        return out

    subject, base = measure_pair(plan.expand_pulses, baseline, n)
    return [figure(
        f"expand_pulses, {_span(duration_s)} × 100 Hz × 2 ch", subject, "ms",
        baseline=("numpy pass, same array", base),
        max_value=50.0 if size == "full" else None, max_ratio=5.0 if size == "full" else None,
        note=f"{count:,} pulses (the two at t = 0 have zero amplitude during the soft start "
             "and are not pulses)")]


# --------------------------------------------------------------------------- CLI start-up


def _floor(imports: str) -> list[str]:
    return [sys.executable, "-c", f"import {imports}"]


def _programs_dir() -> Path:
    return Path(str(resources.files("emsctl.programs")))


#: ``import pydantic`` is lazy: the floor does not load pydantic's model machinery. This is the
#: least any program that declares one pydantic model pays on top of the floor.
_ONE_MODEL = ("import numpy, pydantic, click\nfrom pydantic import BaseModel, Field\n"
              "class M(BaseModel):\n    x: float = Field(gt=0)\nM(x=1.0)")


@benchmark("cli_validate", "emsctl validate programs/ vs the numpy+pydantic+click import floor")
def bench_cli_validate(size: Size, repeat: int | None = None) -> list[Figure]:
    n = _repeats(size, repeat, full=20)
    commands = {"validate": [*emsctl_command(), "validate", str(_programs_dir())],
                "floor": _floor("numpy, pydantic, click"),
                "model": [sys.executable, "-c", _ONE_MODEL]}
    times: dict[str, list[float]] = {k: [] for k in commands}
    for argv in commands.values():  # warm-up: bytecode and page caches
        wall_times(argv, 1, 0)
    for _ in range(n):  # interleaved: validate, floor, one model, validate, …
        for key, argv in commands.items():
            times[key] += wall_times(argv, 1, 0)
    floor = ('python -c "import numpy, pydantic, click"', times["floor"])
    return [figure("emsctl validate programs/ (wall)", times["validate"], "ms", baseline=floor,
                   max_ratio=1.5),
            figure("reference: the floor + one pydantic model (wall)", times["model"], "ms",
                   baseline=floor,
                   note="pydantic loads its model machinery (BaseModel, schema generation, "
                        "plugin discovery via importlib.metadata) only when a model is "
                        "declared, so the floor leaves it out; this is the least any use of "
                        "a pydantic model adds to the floor")]


@benchmark("cli_validate_1000", "emsctl validate on 1,000 program files in one call")
def bench_cli_validate_many(size: Size, repeat: int | None = None) -> list[Figure]:
    files = 1000 if size == "full" else 10
    n = _repeats(size, repeat, full=5)
    sources = sorted(_programs_dir().glob("*.toml"))
    with tempfile.TemporaryDirectory(prefix="emsctl-bench-") as tmp:
        folder = Path(tmp)
        for i in range(files):
            src = sources[i % len(sources)]
            shutil.copyfile(src, folder / f"{i:04d}-{src.name}")
        subject, base = wall_times_pair([*emsctl_command(), "validate", str(folder)],
                                        _floor("numpy, pydantic, click"), n)
    per_file_ms = (float(np.median(subject)) - float(np.median(base))) / files
    return [figure(f"emsctl validate, {files:,} files (wall)", subject, "ms",
                   baseline=('python -c "import numpy, pydantic, click"', base),
                   max_value=3000.0 if size == "full" else None,
                   note=f"≈ {per_file_ms:.2f} ms per file above the import floor; copies of the "
                        f"{len(sources)} built-ins")]


@benchmark("cli_help", "emsctl --help vs the click import floor")
def bench_cli_help(size: Size, repeat: int | None = None) -> list[Figure]:
    n = _repeats(size, repeat, full=30)
    subject, base = wall_times_pair([*emsctl_command(), "--help"], _floor("click"), n)
    return [figure("emsctl --help (wall)", subject, "ms",
                   baseline=('python -c "import click"', base), max_ratio=1.5)]


_IMPORT_PROBE = """\
import contextlib, io, json, sys
mode, folder = sys.argv[1], sys.argv[2]
if mode == "validate":
    from emsctl.cli import main
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        main(["validate", folder])
else:
    import emsctl
forbidden = {names!r}
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in forbidden)))
"""


@benchmark("validate_imports", "import emsctl / emsctl validate load no bleak, serial, matplotlib")
def bench_validate_imports(size: Size, repeat: int | None = None) -> list[Figure]:
    """A check, not a timing: the figure is the number of optional modules imported (target 0)."""
    figures = []
    probe = _IMPORT_PROBE.format(names=FORBIDDEN)
    for mode, label in (("import", "import emsctl"), ("validate", "emsctl validate programs/")):
        done = subprocess.run([sys.executable, "-c", probe, mode, str(_programs_dir())],
                              capture_output=True, text=True, check=True)
        loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
        roots = sorted({m.split(".")[0] for m in loaded})
        figures.append(Figure(
            f"{label}: modules of {'/'.join(FORBIDDEN)} imported", float(len(loaded)), "modules",
            float(len(loaded)), float(len(loaded)), 1, target="0 (check, not a timing)",
            met=not loaded, note=f"imported: {', '.join(roots)}" if roots else ""))
    return figures
