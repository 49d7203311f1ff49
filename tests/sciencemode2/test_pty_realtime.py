"""Over a REAL pseudo-terminal, in real time, with the emulator in its own process:
``emsctl simulate sciencemode2 --pty`` driven by a session in another process (the real
ScienceMode2 driver on a SerialLink); SIGKILL of the host → the emulated output reaches zero
within its 1.2 s watchdog (L21 fallback, docs/protocols/sciencemode2.md §8)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pty_lines import OUTPUT, lines_until

from emsctl.amplitude import Thresholds
from emsctl.drivers.links.serial import SerialLink
from emsctl.errors import DeviceError
from emsctl.loader import load_program
from emsctl.plan import ChannelSampler, compile_plan

EMSCTL = str(Path(sys.executable).with_name("emsctl"))
THRESHOLDS = {1: Thresholds(6.0, 12.0, 25.0), 2: Thresholds(6.0, 12.0, 25.0)}

# The host: the circulation program's plan, the real driver on the pty, a Session in real time.
# It prints the session's start on the monotonic clock (shared by both processes on Linux).
HOST = textwrap.dedent("""
    import asyncio, sys, time
    from emsctl.amplitude import Thresholds
    from emsctl.devices import open_device
    from emsctl.limits import DEFAULTS
    from emsctl.loader import load_program
    from emsctl.plan import compile_plan
    from emsctl.session import Session
    from emsctl.verify import certify

    async def main() -> None:
        th = Thresholds(6.0, 12.0, 25.0)
        plan = compile_plan(load_program("circulation").program, {1: th, 2: th},
                            profile_caps_ma={1: 22.5, 2: 22.5})
        driver = open_device("sciencemode2://" + sys.argv[1])
        await driver.connect()
        session = Session(certify(plan, DEFAULTS, driver.capabilities), driver)
        print(f"start {time.monotonic():.6f}", flush=True)
        await session.run()
    asyncio.run(main())
""")


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    trace = tmp_path / "trace.txt"
    proc = subprocess.Popen([EMSCTL, "simulate", "sciencemode2", "--pty", "--trace", str(trace)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    path = proc.stdout.readline().strip()
    assert path.startswith("/dev/"), path + (proc.stderr.read() if proc.poll() else "")
    yield proc, path, trace
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
    _close_pipes(proc)


def _close_pipes(proc: subprocess.Popen[str]) -> None:
    """Close a finished child's pipes (left open, they are a ResourceWarning: an error here)."""
    proc.wait(5)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


@pytest.mark.realtime
def test_session_over_a_real_pty_matches_the_plan_and_sigkill_ends_output_by_the_watchdog(
        emulator: tuple[subprocess.Popen[str], str, Path]) -> None:
    proc, path, trace = emulator
    host = subprocess.Popen([sys.executable, "-c", HOST, path], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert host.stdout is not None
        started = host.stdout.readline()
        assert started.startswith("start"), started + host.stderr.read()  # type: ignore[union-attr]
        start_s = float(started.split()[1])
        time.sleep(3.5)
        host.send_signal(signal.SIGKILL)
        kill_s = time.monotonic()
        host.wait(5)
    finally:
        if host.poll() is None:
            host.kill()
        _close_pipes(host)
    lines = lines_until(proc, "watchdog", timeout_s=4.0)
    plan = compile_plan(load_program("circulation").program, THRESHOLDS,
                        profile_caps_ma={1: 22.5, 2: 22.5})
    sampler = ChannelSampler(plan.channel(1), plan.duration_s)
    outputs = [(t, float(m["ma"])) for t, text in lines if (m := OUTPUT.search(text))]
    assert len(outputs) >= 3 and max(ma for _, ma in outputs) >= 4.0
    for t, ma in outputs:
        stim_s = t - start_s
        window = [sampler.at(max(0.0, stim_s - dt))[0] for dt in (0.0, 0.1, 0.2, 0.3)]
        assert ma <= max(window) + 1e-9, (stim_s, ma, window)       # never above the plan
        assert ma >= min(window) - 2.0 - 1e-9, (stim_s, ma, window)  # within the 2 mA step
    zero_s = next(t for t, text in lines if text == "output zero")
    # the emulator heard the host last at most one keep-alive (0.25 s) before the kill
    # (+0.25 s: the emulator is a process on a shared, loaded machine; firmware has no such lag)
    assert 1.2 - 0.3 <= zero_s - kill_s <= 1.2 + 0.25, zero_s - kill_s
    frames = trace.read_text().splitlines()
    assert any(f.endswith("| StartChannelListMode") and "host→device" in f for f in frames)


@pytest.mark.realtime
def test_a_second_open_of_the_same_port_fails_with_a_clear_sentence() -> None:
    master, slave = os.openpty()
    path = os.ttyname(slave)

    async def main() -> None:
        first = SerialLink(path)
        await first.open()
        try:
            with pytest.raises(DeviceError, match="in use by another program"):
                await SerialLink(path).open()
        finally:
            await first.close()
        second = SerialLink(path)  # released by close: opens again
        await second.open()
        await second.close()

    try:
        asyncio.run(main())
    finally:
        os.close(master)
        os.close(slave)


def test_a_missing_port_is_a_clear_sentence() -> None:
    async def main() -> None:
        await SerialLink("/dev/ttyNOPE-emsctl").open()

    with pytest.raises(DeviceError, match="does not exist; run 'emsctl devices'"):
        asyncio.run(main())
