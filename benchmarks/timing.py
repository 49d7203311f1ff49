"""Timers for benchmarks: in-process calls, subprocess wall times, a whole simulated session.

Every sample starts from the same heap (a collection before it; the collector stays enabled,
as in real use). Never changes what it measures.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["emsctl_command", "measure", "measure_pair", "program_ms", "wall_times",
           "wall_times_pair"]


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
