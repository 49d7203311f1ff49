"""ScienceMode4 (Hasomed P24) benchmarks: stop latency and update round trips over a real pty
(the emulated P24 in another process), and a 20-minute program through ``sim+sciencemode4``.

- ``sm4_pty``: ``driver.stop()`` → the Ml_stop frame read and decoded by the emulated P24 in
  another process (``emsctl simulate sciencemode4 --pty --trace``; the trace stamps each frame
  with the emulator's CLOCK_MONOTONIC, the same clock as ours). Every stop is issued while an
  update waits for its ack. Its floor, interleaved: a bare 12-byte write → read between two
  processes over a pty. Beside it, ``driver.apply()`` → Ml_update → its ack.
- ``sm4_update_ack_side_by_side``: the update → ack round trip three ways on one emulated P24
  (no trace), in interleaved rounds: emsctl's driver (event loop, no polling), the third-party
  ``science-mode-4`` client (it checks for the ack every 10 ms), and the floor of a sleeping
  wait: a bare blocking ``write()`` of the same Ml_update frame and blocking ``read()`` of its
  ack on the same pty. emsctl's samples in which the driver also polled (it renews with an
  Ml_get_current_data at least every 0.25 s) are left out and counted in the note.
- ``sm4_program_virtual``: the 20-minute ``circulation`` program end to end through
  ``sim+sciencemode4`` in virtual time, against the plain ``sim`` driver in the same run.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import tty
from pathlib import Path

from .harness import Figure, Size, benchmark, figure, program_ms, real_time_figure
from .harness import repeats as _repeats
from .pty import PtyEmulator, PtyFloor
from .side_by_side import WrittenFrames, side_by_side_figures, timed_applies

STOP_FRAME_BYTES = 12  # F0, four escaped header pairs, pn, 34, 0F

def _setpoints(amplitude_ma: float) -> list[object]:
    from emsctl.contract import ZERO, ChannelSetpoint

    return [ChannelSetpoint(amplitude_ma, 40.0, 200.0)] + [ZERO] * 7


async def _driver_round_trips(path: str, n: int) -> tuple[list[float], int]:
    """emsctl: ``apply`` of a changed setpoint → Ml_update → ack (ms), and how many samples
    were left out because the driver polled in the same apply."""
    from emsctl.devices import open_device

    driver = open_device(f"sciencemode4://{path}")
    await driver.connect()
    frames = WrittenFrames(driver)
    try:
        from tests.support.ramp import ramp_below

        await ramp_below(driver, _setpoints(10.0))  # type: ignore[arg-type]  # soft start
        await driver.apply(_setpoints(10.0), 1.0)  # type: ignore[arg-type]
        samples, left_out = await timed_applies(driver, frames,
                                                (_setpoints(10.0), _setpoints(10.5)), n)
    finally:
        await driver.close()
    return samples, left_out


async def _client_round_trips(path: str, n: int) -> list[float]:
    """science-mode-4: ``LayerMidLevel.update`` → its ack (ms)."""
    import science_mode_4 as sm4  # type: ignore[import-not-found]

    connection = sm4.SerialPortConnection(path)
    connection.open()
    device = sm4.DeviceP24(connection)
    mid = device.get_layer_mid_level()
    samples: list[float] = []
    try:
        await mid.init(True)
        for i in range(n):
            config = sm4.MidLevelChannelConfiguration(True, 0, 25, [
                sm4.ChannelPoint(200, 10.5 if i % 2 else 11.0),
                sm4.ChannelPoint(200, -(10.5 if i % 2 else 11.0))])
            t0 = time.perf_counter()
            await mid.update([config])
            samples.append((time.perf_counter() - t0) * 1000)
        await mid.stop()
    finally:
        connection.close()
    return samples


def _blocking_round_trips(path: str, n: int) -> list[float]:
    """The sleeping floor: blocking write of an Ml_update frame, blocking read of its ack."""
    from emsctl.drivers.sciencemode4 import protocol as p

    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    samples: list[float] = []

    def round_trip(message: p.MessageBase) -> float:
        frame = p.encode_message(message)
        decoder = p.FrameDecoder()
        t0 = time.perf_counter()
        os.write(fd, frame)
        while True:
            items = [i for i in decoder.feed(os.read(fd, 64)) if isinstance(i, p.Frame)]
            if any(i.packet_number == message.packet_number for i in items):
                return (time.perf_counter() - t0) * 1000

    try:
        round_trip(p.MlInit(packet_number=1, stop_all_on_error=True))
        for i in range(n):
            current = 10.5 if i % 2 else 11.0
            block = p.MlChannelConfig((p.Point.of(200, current), p.Point.of(200, -current)),
                                      p.Period(50))
            samples.append(round_trip(p.MlUpdate.of(2 + i % 60, {1: block})))
        round_trip(p.MlStop(packet_number=63))
    finally:
        os.close(fd)
    return samples


async def _stop_samples(emulator: PtyEmulator, floor: PtyFloor, n: int
                        ) -> tuple[list[float], list[float], list[float]]:
    from emsctl.devices import open_device

    driver = open_device(f"sciencemode4://{emulator.path}")
    stops: list[float] = []
    floors: list[float] = []
    acks: list[float] = []
    await driver.connect()
    try:
        from tests.support.ramp import ramp_below

        await ramp_below(driver, _setpoints(10.0))  # type: ignore[arg-type]  # soft start
        await driver.apply(_setpoints(10.0), 1.0)  # type: ignore[arg-type]
        for i in range(n):
            t0 = time.monotonic()
            await driver.apply(_setpoints(10.5 if i % 2 else 10.0), 1.0)  # type: ignore[arg-type]
            acks.append((time.monotonic() - t0) * 1000)
            pending = asyncio.ensure_future(driver.apply(_setpoints(10.0), 1.0))  # type: ignore[arg-type]
            await asyncio.sleep(0)  # the update is on the wire and waits for its ack
            t0 = time.monotonic()
            await driver.stop()
            stops.append((emulator.read_after("MlStop", t0) - t0) * 1000)
            await pending
            floors.append(floor.sample_ms())
            await driver.connect()  # re-arm after the stop: output rises from zero again
            await ramp_below(driver, _setpoints(10.0))  # type: ignore[arg-type]
            await driver.apply(_setpoints(10.0), 1.0)  # type: ignore[arg-type]
    finally:
        await driver.close()
    return stops, floors, acks


@benchmark("sm4_pty", "ScienceMode4 over a real pty: stop → Ml_stop read, update → ack")
def bench_sm4_pty(size: Size, repeat: int | None = None) -> list[Figure]:
    n = _repeats(size, repeat, full=200, smoke=3)
    with tempfile.TemporaryDirectory() as folder:
        emulator = PtyEmulator(Path(folder), "sciencemode4")
        floor = PtyFloor(b"\xf0" + bytes(STOP_FRAME_BYTES - 2) + b"\x0f")
        try:
            stops, floors, acks = asyncio.run(_stop_samples(emulator, floor, n))
        finally:
            floor.close()
            emulator.close()
    return [
        figure("stop() → Ml_stop read by the emulated P24 (other process, pty)", stops, "ms",
               baseline=("bare 12-byte write→read between processes over a pty", floors),
               max_value=1.0, max_ratio=2.0,
               note="each stop issued while an update waits for its ack"),
        figure("update → ack round trip (Ml_update, pty, other process)", acks, "ms",
               note="an apply that also polls (every 0.25 s) counts both round trips"),
    ]


@benchmark("sm4_update_ack_side_by_side",
           "update → ack: emsctl vs the science-mode-4 client vs a blocking write→read")
def bench_sm4_side_by_side(size: Size, repeat: int | None = None) -> list[Figure]:
    rounds = 5 if size == "full" else 1
    per_round = _repeats(size, repeat, full=100, smoke=3)
    ours: list[float] = []
    client: list[float] = []
    floor: list[float] = []
    left_out = 0
    with tempfile.TemporaryDirectory() as folder:
        emulator = PtyEmulator(Path(folder), "sciencemode4", trace=False)
        try:
            for _ in range(rounds):  # interleaved, so machine noise hits all three alike
                samples, skipped = asyncio.run(_driver_round_trips(emulator.path, per_round))
                ours += samples
                left_out += skipped
                client += asyncio.run(_client_round_trips(emulator.path, per_round))
                floor += _blocking_round_trips(emulator.path, per_round)
        finally:
            emulator.close()
    return side_by_side_figures(
        ours, client, floor, client_name="science-mode-4", client_waits="checks every 10 ms",
        floor_frames="the same frame",
        left_out=f"{left_out} samples in which the driver also polled were left out")


@benchmark("sm4_program_virtual", "20-min program through sim+sciencemode4 in virtual time")
def bench_sm4_program(size: Size, repeat: int | None = None) -> list[Figure]:
    from .bench_serial import _SHORT_PROGRAM

    n = _repeats(size, repeat, full=5, smoke=1)
    with tempfile.TemporaryDirectory() as folder:
        program = "circulation"
        if size == "smoke":
            program = str(Path(folder) / "bench-sm4.toml")
            Path(program).write_text(_SHORT_PROGRAM.replace("bench-sm2", "bench-sm4"))
        sm4: list[float] = []
        sim: list[float] = []
        for _ in range(n):
            sm4.append(program_ms("sim+sciencemode4", program, Path(folder)))
            sim.append(program_ms("sim", program, Path(folder)))
    name = "20-min circulation" if size == "full" else "20-s program (smoke)"
    real_ms = (1200.0 if size == "full" else 20.0) * 1000.0
    return [figure(f"{name} through sim+sciencemode4, virtual time", sm4, "ms",
                   baseline=("same program on the plain sim driver", sim), max_value=3000.0,
                   note="ratio = the protocol path's cost over the session's own"),
            real_time_figure(f"{name} through sim+sciencemode4: speed", sm4, real_ms)]
