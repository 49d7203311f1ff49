"""Session benchmarks (the README's "Performance" figures).

- ``session_speed_max``: ``emsctl run circulation --speed max`` (a 20-minute program on the
  simulator), whole-process wall time minus start-up, where start-up is ``emsctl --help`` and
  ``emsctl validate`` of one program file measured in the same run, interleaved (target
  ≥ 2,000× real time, i.e. ≤ 0.6 s above start-up);
- ``session_tick_lateness``: a real-time session at a 25 ms update period (the simulator with
  its capabilities' period replaced by 0.025 s), tick lateness p50/p99 against a plain
  ``asyncio.sleep`` loop on the same schedule, interleaved in chunks, idle and with the other
  core busy (a busy-loop process); targets p99 ≤ 1 ms idle and ≤ 3 ms busy;
- ``session_stop_latency``: ``Session.stop()`` to zero output on the simulator, real time,
  p99 (target ≤ 1 ms), against two bare loop hops (``await asyncio.sleep(0)`` twice);
- ``session_memory``: RSS growth over a 60-minute session in virtual time (target ≤ 5 MB),
  with the simulator's record of every output change reported separately.

Tick lateness is the loop time at which a tick starts, minus its schedule (start + k × period),
on the session's own clock; the baseline measures the same for a loop that only sleeps.
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from .harness import Figure, Size, benchmark, emsctl_command, figure, stats, wall_times
from .harness import repeats as _repeats

if TYPE_CHECKING:
    from emsctl.plan import Plan
    from emsctl.simulator.drivers.sim import SimDriver

TWENTY_MIN_S = 1200.0
FAST_PERIOD_S = 0.025


def _env(state_dir: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(EMSCTL_STATE_DIR=state_dir, NO_COLOR="1")
    env.pop("EMSCTL_DEVICE", None)
    return env


def _load() -> str:
    try:
        return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load average unknown"


# --------------------------------------------------------------------------- speed max


@benchmark("session_speed_max", "emsctl run circulation (20 min) --speed max, minus start-up")
def bench_session_speed_max(size: Size, repeat: int | None = None) -> list[Figure]:
    n = _repeats(size, repeat, full=9)
    emsctl = emsctl_command()
    one_file = str(Path(str(resources.files("emsctl.programs"))) / "circulation.toml")
    full = size == "full"
    with tempfile.TemporaryDirectory(prefix="emsctl-bench-") as state:
        env = _env(state)
        program = "circulation"
        real_ms = TWENTY_MIN_S * 1000.0
        if not full:  # smoke: a 1-minute program file, so the smoke run stays short
            from .bench_core import program_text

            program = str(Path(state) / "bench-smoke.toml")
            Path(program).write_text(program_text("continuous", 60.0), encoding="utf-8")
            real_ms = 60_000.0
        commands = {
            "run": [*emsctl, "run", program, "--speed", "max"],
            "help": [*emsctl, "--help"],
            "validate": [*emsctl, "validate", one_file],
        }
        times: dict[str, list[float]] = {k: [] for k in commands}
        warmup = 1 if size == "full" else 0
        for _ in range(warmup):
            for argv in commands.values():
                wall_times(argv, 1, 0, env=env)
        for _ in range(n):  # interleaved: run, help, validate, run, …
            for key, argv in commands.items():
                times[key].extend(wall_times(argv, 1, 0, env=env))
    run_ms = times["run"]
    figures = [
        figure(f"emsctl run {Path(program).stem} --speed max (wall)", run_ms, "ms"),
        figure("start-up: emsctl --help (wall)", times["help"], "ms"),
        figure("start-up: emsctl validate circulation.toml (wall)", times["validate"], "ms"),
    ]
    for key, label in (("help", "--help"), ("validate", "validate")):
        # pairwise differences: each run minus the start-up measured right beside it
        session_ms = [max(r - s, 1e-3) for r, s in zip(run_ms, times[key], strict=True)]
        figures.append(figure(
            f"session time = run − start-up ({label})", session_ms, "ms",
            max_value=600.0 if full else None))
        figures.append(figure(
            f"speed vs real time (start-up: {label})", session_ms, "ms",
            baseline=(f"{real_ms / 60_000:g} min of real time", [real_ms]), speedup=True,
            min_ratio=2000.0 if full else None,
            target="≥ 2,000× real time" if full else None,
            note=f"ratio = real time / median session time; {_load()}"))
    return figures


# --------------------------------------------------------------------------- tick lateness


def _plan() -> Plan:
    from emsctl.limits import DEFAULTS
    from emsctl.loader import load_program
    from emsctl.runner import prepare_run

    return prepare_run(load_program("circulation"), "sim", DEFAULTS).plan


def _fast_driver(period_s: float = FAST_PERIOD_S) -> SimDriver:
    from emsctl.simulator.drivers.sim import SimDriver

    driver = SimDriver()
    driver.capabilities = replace(driver.capabilities, update_period_s=period_s)
    return driver


async def _session_lateness(plan: Plan, run_s: float, journal_dir: str) -> list[float]:
    from emsctl.journal import Journal
    from emsctl.limits import DEFAULTS
    from emsctl.session import Session, SessionState
    from emsctl.verify import certify

    driver = _fast_driver()
    period_s = driver.capabilities.update_period_s
    late_ms: list[float] = []

    def tick(state: SessionState) -> None:
        if state.status != "running":
            return
        k = int(state.t_s / period_s + 1e-9)
        late_ms.append((state.t_s - k * period_s) * 1000.0)

    with Journal(journal_dir) as journal:
        journal.header(program=plan.program_name, program_sha256="0" * 64,
                       program_source="benchmark", device_url="sim", device_model="sim",
                       limits={}, profile_version=None, intensity_pct=100.0)
        await driver.connect()
        session = Session(certify(plan, DEFAULTS, driver.capabilities), driver,
                          journal=journal, on_tick=tick)
        asyncio.get_running_loop().call_later(run_s, session.stop)
        await session.run()
        await driver.close()
        journal.footer("stopped", {})
    return late_ms[1:]  # tick 0 runs at the start itself


async def _sleep_lateness(run_s: float, period_s: float = FAST_PERIOD_S) -> list[float]:
    loop = asyncio.get_running_loop()
    start_s = loop.time()
    late_ms: list[float] = []
    k = 0
    while True:
        k += 1
        deadline_s = start_s + k * period_s
        if deadline_s - start_s > run_s:
            return late_ms
        await asyncio.sleep(deadline_s - loop.time())
        late_ms.append((loop.time() - deadline_s) * 1000.0)


def _busy_core() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@benchmark("session_tick_lateness", "real-time session at 25 ms: tick lateness vs asyncio.sleep")
def bench_session_tick_lateness(size: Size, repeat: int | None = None) -> list[Figure]:
    from emsctl.clock import RealClock

    total_s = 60.0 if size == "full" else 0.25
    chunks = _repeats(size, repeat, full=6)
    chunk_s = total_s / chunks
    plan = _plan()
    figures: list[Figure] = []
    targets = {"idle": 1.0, "other core busy": 3.0}
    with tempfile.TemporaryDirectory(prefix="emsctl-bench-") as journals:
        for condition, target_ms in targets.items():
            busy = _busy_core() if condition != "idle" else None
            try:
                subject: list[float] = []
                base: list[float] = []
                for _ in range(chunks):  # interleaved chunks: session, sleep loop, …
                    subject += RealClock().run(_session_lateness(plan, chunk_s, journals))
                    base += RealClock().run(_sleep_lateness(chunk_s))
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
            s, b = stats(subject), stats(base)
            judged = size == "full"
            for label, value, base_value in (("p50", s.median, b.median),
                                             ("p99", s.p99, b.p99)):
                met = (value <= target_ms) if judged and label == "p99" else None
                figures.append(Figure(
                    f"tick lateness {label}, {condition}", value, "ms", s.median, s.p99, s.n,
                    baseline_name=f"asyncio.sleep loop {label}", baseline_value=base_value,
                    ratio=value / base_value if base_value > 0 else None,
                    target=f"p99 ≤ {target_ms:g} ms" if label == "p99" else "",
                    met=met,
                    note=(f"{s.n:,} ticks over {total_s:g} s in {chunks} chunks; max "
                          f"{s.maximum:.2f} ms (sleep loop max {b.maximum:.2f} ms); "
                          f"{_load()}") if label == "p99" else ""))
    return figures


# --------------------------------------------------------------------------- stop latency


_HOPS_PER_STOP = 20


async def _one_stop(plan: Plan, rng: random.Random) -> tuple[float, list[float]]:
    """Real-time seconds from ``Session.stop()`` to the simulated device's outputs at zero, and
    :data:`_HOPS_PER_STOP` timings of two bare loop hops in the same loop after it."""
    from emsctl.limits import DEFAULTS
    from emsctl.session import Session
    from emsctl.simulator.drivers.sim import SimDriver
    from emsctl.verify import certify

    driver = SimDriver()
    device = driver.device
    marks: dict[str, float] = {}
    real_stop = device.stop

    def spy_stop() -> None:
        real_stop()
        if "stop" in marks:  # not the handshake's stop in connect()
            marks.setdefault("zero", time.perf_counter())

    device.stop = spy_stop  # type: ignore[method-assign]
    await driver.connect()
    session = Session(certify(plan, DEFAULTS, driver.capabilities), driver)

    loop = asyncio.get_running_loop()

    def press_stop() -> None:
        if not any(o.amplitude_ma > 0 for o in device.output_now()):
            # a busy machine ticked late and the soft start has not reached a device step
            # yet: press once the output is on (an assert here would leave a 20-min session
            # running in real time)
            loop.call_later(0.01, press_stop)
            return
        marks["stop"] = time.perf_counter()
        session.stop()

    loop.call_later(rng.uniform(0.12, 0.2), press_stop)
    await session.run()
    await driver.close()
    assert all(o.amplitude_ma == 0 for o in device.output_now())
    # the floor, in the same loop after the same session: many samples, so its median is steady
    hops = [await _two_hops() for _ in range(_HOPS_PER_STOP)]
    return marks["zero"] - marks["stop"], hops


async def _two_hops() -> float:
    start = time.perf_counter()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    return time.perf_counter() - start


@benchmark("session_stop_latency", "Session.stop() to zero output on the simulator, real time")
def bench_session_stop_latency(size: Size, repeat: int | None = None) -> list[Figure]:
    from emsctl.clock import RealClock

    n = _repeats(size, repeat, full=100, smoke=3)
    plan = _plan()
    rng = random.Random(3)
    subject: list[float] = []
    base: list[float] = []
    for _ in range(n):
        gc.collect()
        stop_s, hops_s = RealClock().run(_one_stop(plan, rng))
        subject.append(stop_s * 1000.0)
        base.extend(h * 1000.0 for h in hops_s)
    f = figure("stop() → zero output", subject, "ms",
               baseline=("two bare loop hops, same loop", base),
               note=f"stop pressed 0.12–0.2 s into a session (output on); ratio of medians, the "
                    f"floor {_HOPS_PER_STOP}× after each session ({len(base):,} samples); "
                    f"{_load()}")
    met = f.p99 <= 1.0 if size == "full" else None
    return [replace(f, value=f.p99, target="p99 ≤ 1 ms", met=met)]


# --------------------------------------------------------------------------- memory


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _memory_run(kind: str, duration_s: float, sample: Callable[[], None],
                record: bool = True) -> tuple[int, int]:
    """Run a ``kind`` program for ``duration_s`` in virtual time; ``sample`` is called on the
    first tick and every 500 ticks. Without ``record`` the driver acks without a simulated
    device, so nothing keeps a record of the output. Returns (output changes kept, ticks)."""
    from emsctl.clock import VirtualClock
    from emsctl.contract import ChannelSetpoint, Telemetry
    from emsctl.journal import Journal
    from emsctl.limits import limits_from_mapping
    from emsctl.loader import parse_program_text
    from emsctl.plan import compile_plan
    from emsctl.session import Session, SessionState
    from emsctl.simulator.drivers.sim import SimDriver
    from emsctl.verify import certify

    from .bench_core import program_text

    class AckOnly(SimDriver):
        """Acks every command like the simulator, but keeps no device and no record."""

        async def _apply_internal(self, setpoints: tuple[ChannelSetpoint, ...],
                                  lease_s: float) -> None:
            await asyncio.sleep(0)
            self._emit(Telemetry("ack", self._now(), value=1.0, message="accepted"))

    limits = limits_from_mapping({"session_max_s": 3600}, source="benchmark limits")
    plan = compile_plan(parse_program_text(program_text(kind, duration_s)))
    ticks = [0]

    def tick(_state: SessionState) -> None:
        ticks[0] += 1
        if ticks[0] % 500 == 1:
            sample()

    async def main() -> int:
        driver = SimDriver() if record else AckOnly()
        with tempfile.TemporaryDirectory(prefix="emsctl-bench-") as folder, \
                Journal(folder) as journal:
            journal.header(program=plan.program_name, program_sha256="0" * 64,
                           program_source="benchmark", device_url="sim", device_model="sim",
                           limits={}, profile_version=None, intensity_pct=100.0)
            await driver.connect()
            session = Session(certify(plan, limits, driver.capabilities), driver,
                              journal=journal, on_tick=tick)
            result = await session.run()
            await driver.close()
            journal.footer(result.end_reason, {})
            assert result.end_reason == "completed", result.message
        device = driver.device
        return sum(len(device.intervals(c)) for c in device.channels) if record else 0

    changes = VirtualClock(None).run(main())
    return changes, ticks[0]


@benchmark("session_memory", "RSS growth over a 60-minute session (virtual time)")
def bench_session_memory(size: Size, repeat: int | None = None) -> list[Figure]:
    duration_s = 3600.0 if size == "full" else 60.0
    figures = []
    cases = (("continuous", "steady output", False), ("sweep", "pulse-width sweep", False),
             ("continuous", "steady output, simulator record", True),
             ("sweep", "pulse-width sweep, simulator record", True))
    for kind, label, record in cases:
        _memory_run(kind, 30.0, lambda: None, record)  # warm-up: imports, first allocations
        gc.collect()
        marks: list[int] = []  # RSS at the first tick (plan compiled, session built), then on

        def sample(marks: list[int] = marks) -> None:
            marks.append(_rss_bytes())

        changes, ticks = _memory_run(kind, duration_s, sample, record)
        gc.collect()
        after = _rss_bytes()
        growth_mb = (max([*marks, after]) - marks[0]) / 1e6
        judged = size == "full" and not record
        note = (f"{ticks:,} ticks; peak − first tick; end − first tick "
                f"{(after - marks[0]) / 1e6:.2f} MB")
        if record:
            note += (f"; the simulator keeps {changes:,} output changes: its record of what "
                     "was delivered grows by design (a real device keeps none)")
        else:
            note += "; driver acks without a simulated device (no output record)"
        figures.append(Figure(
            f"RSS growth, {duration_s / 60:g} min session, {label}", growth_mb, "MB",
            growth_mb, growth_mb, 1, target="≤ 5 MB" if not record else "report",
            met=(growth_mb <= 5.0) if judged else None, note=note))
    return figures
