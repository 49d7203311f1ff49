"""Honest ``--speed N``: a paced simulator session lasts its program's length / N.

``session_speed_paced`` runs ``emsctl run PROGRAM --speed N`` for N = 10, 60 and 600 in the same
run, in a pipe (plain output), and times each session from its first progress line (``[00:00]
…``: the session has started, so start-up — imports, checks, plan — is excluded) to the first
line after the progress lines (the summary: the device has been stopped and closed). Each figure
is judged by the ratio to N: achieved speed / N = (program length / N) / session wall time,
target 0.98–1.02 (within 2 %).

Programs: for N = 10 a 60 s program file (6 s per run: the 16-min relaxation would take 96 s),
for N = 60 and 600 the 16-minute ``relaxation``. A ``--speed max`` run of relaxation is reported
beside them, so a reader knows this machine's maximum (any N below it should be met; above it,
``emsctl run`` says it is running at its maximum).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from .harness import Figure, Size, benchmark, emsctl_command, figure
from .harness import repeats as _repeats

RELAXATION_S = 960.0


def _env(state_dir: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(EMSCTL_STATE_DIR=state_dir, NO_COLOR="1", COLUMNS="100")
    env.pop("EMSCTL_DEVICE", None)
    return env


def session_wall_s(argv: list[str], env: dict[str, str]) -> float:
    """Wall seconds from a run's first progress line to the first line after them.

    Raises:
        RuntimeError: the run printed no progress line or no summary, or failed.
    """
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                          env=env) as proc:
        assert proc.stdout is not None
        started = ended = None
        for line in proc.stdout:
            now = time.perf_counter()
            if started is None and line.startswith("["):
                started = now
            elif started is not None and ended is None and not line.startswith("["):
                ended = now
        code = proc.wait()
    if code != 0 or started is None or ended is None:
        raise RuntimeError(f"{' '.join(argv)} exited {code} (start seen: {started is not None}, "
                           f"end seen: {ended is not None})")
    return ended - started


def _short_program(folder: str, duration_s: float) -> str:
    from .bench_core import program_text

    path = Path(folder) / f"bench-speed-{duration_s:g}s.toml"
    path.write_text(program_text("continuous", duration_s), encoding="utf-8")
    return str(path)


@benchmark("session_speed_paced",
           "emsctl run --speed N for N = 10, 60, 600: session time vs program length / N")
def bench_session_speed_paced(size: Size, repeat: int | None = None) -> list[Figure]:
    n = _repeats(size, repeat, full=3)
    full = size == "full"
    emsctl = emsctl_command()
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="emsctl-bench-") as state:
        env = _env(state)
        short_s = 60.0 if full else 10.0
        short = _short_program(state, short_s)
        # smoke: the short program everywhere (a second in all, start-ups included)
        long, long_s = ("relaxation", RELAXATION_S) if full else (short, short_s)
        runs = [(10.0, short, short_s), (60.0, long, long_s), (600.0, long, long_s)]
        samples: dict[float, list[float]] = {speed: [] for speed, _, _ in runs}
        for _ in range(n):  # interleaved: 10, 60, 600, 10, …
            for speed, program, _ in runs:
                argv = [*emsctl, "run", program, "--speed", f"{speed:g}"]
                samples[speed].append(session_wall_s(argv, env) * 1000.0)
        for speed, program, length_s in runs:
            ideal_ms = length_s / speed * 1000.0
            figures.append(figure(
                f"--speed {speed:g}: {Path(program).stem} ({length_s:g} s) session wall time",
                samples[speed], "ms", baseline=(f"program length / {speed:g}", [ideal_ms]),
                speedup=True, min_ratio=0.98 if full else None,
                max_ratio=1.02 if full else None,
                target="ratio to N within 2 % (0.98–1.02)" if full else None,
                note="ratio = achieved speed / N = (length / N) / session wall time"))
        most = [session_wall_s([*emsctl, "run", long, "--speed", "max"], env) * 1000.0
                for _ in range(n)]
        figures.append(figure(
            f"--speed max: {Path(long).stem} ({long_s:g} s) session wall time "
            "(this machine's maximum)", most, "ms",
            baseline=(f"real time ({long_s:g} s)", [long_s * 1000.0]), speedup=True,
            note="ratio = the highest N this machine can pace; report"))
    return figures
