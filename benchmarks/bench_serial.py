"""Serial benchmarks: ScienceMode2 stop latency and update round trip over a real pty,
and a 20-minute program through ``sim+sciencemode2`` in virtual time.

- ``sm2_stop_pty``: ``driver.stop()`` → the Stop frame fully read and decoded by the emulated
  RehaStim2 in another process (``emsctl simulate sciencemode2 --pty --trace``; the trace stamps
  each frame with the emulator's monotonic clock, which is the same CLOCK_MONOTONIC as ours).
  Every stop is issued while an update waits for its ack (so a queued stop would show). The
  floor, interleaved with it: a bare 8-byte write → read between two processes over a pty.
  Beside both, the time the 8-byte Stop frame needs on a real 460800-baud 8E1 wire (computed).
- ``sm2_update_ack_pty``: ``driver.apply()`` → StartChannelListMode → its ack, round trip.
- ``sm2_program_virtual``: the 20-minute ``circulation`` program end to end (plan, session,
  guard, journal, real codec and driver, emulated device) at virtual time, against the same
  program on the plain ``sim`` driver (no bytes) in the same run.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from .harness import Figure, Size, benchmark, figure, program_ms, real_time_figure
from .harness import repeats as _repeats
from .pty import PtyEmulator, PtyFloor

STOP_FRAME_BYTES = 8  # F0 81 CRC 81 LEN pn 22 0F
WIRE_MS = STOP_FRAME_BYTES * 11 / 460800 * 1000  # 8E1: 11 bits per byte

#: The floor writes the Stop frame itself: F0 81 CRC 81 LEN pn 22 0F.
_STOP_FRAME = b"\xf0\x81\xbb\x81\x57\x00\x22\x0f"


async def _pty_samples(emulator: PtyEmulator, floor: PtyFloor, n: int
                       ) -> tuple[list[float], list[float], list[float]]:
    from emsctl.contract import ZERO, ChannelSetpoint
    from emsctl.devices import open_device

    driver = open_device(f"sciencemode2://{emulator.path}")
    on = [ChannelSetpoint(10.0, 20.0, 200.0)] + [ZERO] * 7
    more = [ChannelSetpoint(12.0, 20.0, 200.0)] + [ZERO] * 7
    stops: list[float] = []
    floors: list[float] = []
    acks: list[float] = []
    await driver.connect()
    try:
        await driver.apply(on, 1.0)
        for _ in range(n):
            t0 = time.monotonic()
            await driver.apply(more if len(acks) % 2 else on, 1.0)
            acks.append((time.monotonic() - t0) * 1000)
            pending = asyncio.ensure_future(driver.apply(on, 1.0))  # an update awaits its ack
            await asyncio.sleep(0)
            t0 = time.monotonic()
            await driver.stop()
            stops.append((emulator.read_after("StopChannelListMode", t0) - t0) * 1000)
            await pending
            floors.append(floor.sample_ms())
            await driver.connect()  # re-arm after the stop
            await driver.apply(on, 1.0)
    finally:
        await driver.close()
    return stops, floors, acks


@benchmark("sm2_pty", "ScienceMode2 over a real pty: stop → Stop frame read, update → ack")
def bench_sm2_pty(size: Size, repeat: int | None = None) -> list[Figure]:
    n = _repeats(size, repeat, full=200, smoke=3)
    with tempfile.TemporaryDirectory() as folder:
        emulator = PtyEmulator(Path(folder), "sciencemode2")
        floor = PtyFloor(_STOP_FRAME)
        try:
            stops, floors, acks = asyncio.run(_pty_samples(emulator, floor, n))
        finally:
            floor.close()
            emulator.close()
    return [
        figure("stop() → Stop frame read by the emulator (other process, pty)", stops, "ms",
               baseline=("bare 8-byte write→read between processes over a pty", floors),
               max_value=1.0, max_ratio=2.0,
               note="each stop issued while an update waits for its ack"),
        figure("Stop frame on a real 460800-baud 8E1 wire (computed: 8 bytes × 11 bits)",
               [WIRE_MS], "ms"),
        figure("update → ack round trip (StartChannelListMode, pty, other process)", acks, "ms"),
    ]


_SHORT_PROGRAM = """\
name = "bench-sm2"
title = "Benchmark: sm2"
purpose = "circulation"
evidence = "benchmark input, not a program for people"
description = "A short 2-channel program for the smoke size of the serial benchmark."
placement = "One channel per calf."
calibration_frequency_hz = 8
calibration_pulse_width_us = 250
soft_start_s = 5
transition_s = 5
end_ramp_s = 3

[[channels]]
id = 1
site = "calf-left"
electrode_area_cm2 = 20
max_amplitude_ma = 40

[[channels]]
id = 2
site = "calf-right"
electrode_area_cm2 = 20
max_amplitude_ma = 40

[[phases]]
name = "A"
duration_s = 20
frequency_hz = 8
pulse_width_us = 250
amplitude = "MT"
"""


@benchmark("sm2_program_virtual", "20-min program through sim+sciencemode2 in virtual time")
def bench_sm2_program(size: Size, repeat: int | None = None) -> list[Figure]:
    n = _repeats(size, repeat, full=5, smoke=1)
    with tempfile.TemporaryDirectory() as folder:
        program = "circulation"
        if size == "smoke":
            program = str(Path(folder) / "bench-sm2.toml")
            Path(program).write_text(_SHORT_PROGRAM)
        sm2: list[float] = []
        sim: list[float] = []
        for _ in range(n):
            sm2.append(program_ms("sim+sciencemode2", program, Path(folder)))
            sim.append(program_ms("sim", program, Path(folder)))
    name = "20-min circulation" if size == "full" else "20-s program (smoke)"
    real_ms = (1200.0 if size == "full" else 20.0) * 1000.0
    return [figure(f"{name} through sim+sciencemode2, virtual time", sm2, "ms",
                   baseline=("same program on the plain sim driver", sim), max_value=3000.0,
                   note="ratio = the protocol path's cost over the session's own"),
            real_time_figure(f"{name} through sim+sciencemode2: speed", sm2, real_ms)]
