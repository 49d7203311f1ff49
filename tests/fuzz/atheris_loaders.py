"""Coverage-guided fuzzing of the loaders with atheris (libFuzzer), outside the pytest suite.

HZ-13. Every input feeds these targets, so the seeds (real programs) reach
deep at once:

* program: UTF-8 text → ``parse_program_text`` → ``compile_plan`` → ``verify(CEILINGS)``; other
  bytes → ``load_program_file`` (the non-UTF-8 path);
* limits: the bytes as a limits file → ``load_limits_file`` (a real file, as the CLI reads it);
* amplitude: inputs of at most 64 bytes → ``parse_amplitude``.

Allowed outcomes: the module's own error (ProgramError, LimitsFileError, or ValueError from the
amplitude grammar) or a result within the ceilings. Anything else is a crash that libFuzzer
reports with the input that caused it.

Run (needs ``pip install atheris``; the seeds are the corpus and the built-in programs)::

    python tests/fuzz/atheris_loaders.py -atheris_runs=200000 tests/corpus/programs programs
    python tests/fuzz/atheris_loaders.py -max_total_time=600 /tmp/fuzz-out tests/corpus/programs
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["emsctl"]):
    from emsctl.amplitude import MAX_ABSOLUTE_MA, MAX_FACTOR, parse_amplitude
    from emsctl.errors import LimitsFileError, ProgramError
    from emsctl.limits import CEILINGS, at_least_as_tight
    from emsctl.limits_file import load_limits_file
    from emsctl.loader import load_program_file, parse_program_text
    from emsctl.plan import compile_plan
    from emsctl.verify import verify

_FOLDER = Path(tempfile.mkdtemp(prefix="emsctl-atheris-"))
_FILE = _FOLDER / "input.toml"


def _program_text(data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")
    try:
        program = parse_program_text(text, "fuzz.toml")
    except ProgramError:
        return
    plan = compile_plan(program)
    blocks = [v for v in verify(plan, CEILINGS) if v.severity == "block"]
    if not blocks:
        for cplan in plan.channels:
            seg = cplan.segments
            assert max(seg["amp0_ma"].max(), seg["amp1_ma"].max()) <= 80.0 + 1e-9


def _limits_file(data: bytes) -> None:
    _FILE.write_bytes(data)
    try:
        limits = load_limits_file(_FILE)
    except LimitsFileError:
        return
    assert at_least_as_tight(limits, CEILINGS)


def _amplitude(data: bytes) -> None:
    try:
        expr = parse_amplitude(data.decode("utf-8", errors="replace"))
    except ValueError:
        return
    assert math.isfinite(expr.factor) and expr.factor >= 0
    assert expr.factor <= (MAX_ABSOLUTE_MA if expr.is_absolute else MAX_FACTOR)


def _program_file(data: bytes) -> None:
    _FILE.write_bytes(data)
    try:
        load_program_file(_FILE)
    except ProgramError:
        return


def test_one_input(data: bytes) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        _program_file(data)
    else:
        _program_text(data)
    _limits_file(data)
    if len(data) <= 64:
        _amplitude(data)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
