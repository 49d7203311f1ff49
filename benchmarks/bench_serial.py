"""Serial benchmarks: ScienceMode2 stop latency and update round trip over a real pty,
and a 20-minute program through ``sim+sciencemode2`` in virtual time.

- ``sm2_stop_pty``: ``driver.stop()`` → the Stop frame fully read and decoded by the emulated
  RehaStim2 in another process (``emsctl simulate sciencemode2 --pty --trace``; the trace stamps
  each frame with the emulator's monotonic clock, which is the same CLOCK_MONOTONIC as ours).
  Every stop is issued while an update waits for its ack (so a queued stop would show). The
  floor, interleaved with it: a bare 8-byte write → read between two processes over a pty.
  Beside both, the time the 8-byte Stop frame needs on a real 460800-baud 8E1 wire (computed).
- ``sm2_update_ack_pty``: ``driver.apply()`` → StartChannelListMode → its ack, round trip.
- ``sm2_update_ack_side_by_side``: the update → ack round trip three ways on one emulated
  RehaStim2 (no trace), in interleaved rounds: emsctl's driver (event loop), the third-party
  ``pysciencemode`` client (it spins on its reads: a busy wait), and the floor of a sleeping
  wait: a bare blocking ``write()`` of the very StartChannelListMode frames emsctl sent and a
  blocking ``read()`` of each ack, on the same pty. Each client starts once the emulator, whose
  watchdog ended the previous client's connection, announces itself with Init again.
- ``sm2_program_virtual``: the 20-minute ``circulation`` program end to end (plan, session,
  guard, journal, real codec and driver, emulated device) at virtual time, against the same
  program on the plain ``sim`` driver (no bytes) in the same run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import os
import tempfile
import time
import tty
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .harness import Figure, Size, benchmark, figure, program_ms, real_time_figure
from .harness import repeats as _repeats
from .pty import PtyEmulator, PtyFloor
from .side_by_side import WrittenFrames, side_by_side_figures, timed_applies

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


async def _sm2_driver_round_trips(path: str, n: int) -> tuple[list[float], int, list[bytes]]:
    """emsctl: ``apply`` of a changed setpoint → StartChannelListMode → ack (ms), the samples
    left out (not exactly one frame), and the frames written (for the floor to replay)."""
    from emsctl.contract import ZERO, ChannelSetpoint
    from emsctl.devices import open_device

    driver = open_device(f"sciencemode2://{path}")
    await driver.connect()
    frames = WrittenFrames(driver)
    on = [ChannelSetpoint(10.0, 40.0, 200.0)] + [ZERO] * 7
    more = [ChannelSetpoint(12.0, 40.0, 200.0)] + [ZERO] * 7  # 2 mA steps
    try:
        await driver.apply(on, 1.0)
        samples, left_out = await timed_applies(driver, frames, (more, on), n)
    finally:
        await driver.close()
    return samples, left_out, frames.written


@contextlib.contextmanager
def _no_parity_on_a_pty() -> Iterator[None]:
    """While a client opens its port: without the even parity it asks for. A pty carries no
    parity bit, and Linux refuses a parity setting from every opener after the first (EINVAL);
    emsctl's own link makes the same allowance (docs/protocols/sciencemode2.md §2)."""
    import serial

    real = serial.Serial

    def without_parity(*args: Any, **kwargs: Any) -> Any:
        kwargs["parity"] = serial.PARITY_NONE
        return real(*args, **kwargs)

    serial.Serial = without_parity  # type: ignore[misc,assignment]
    try:
        yield
    finally:
        serial.Serial = real  # type: ignore[misc]


def _pysciencemode_round_trips(path: str, n: int) -> list[float]:
    """pysciencemode: ``Rehastim2.start_stimulation`` with updated channels → its ack (ms)."""
    from pysciencemode import (  # type: ignore[import-not-found]
        Channel,
        Device,
        Modes,
        Rehastim2,
    )

    def channels(amplitude_ma: int) -> list[object]:
        return [Channel(mode=Modes.SINGLE, no_channel=1, amplitude=amplitude_ma,
                        pulse_width=200, device_type=Device.Rehastim2)]

    samples: list[float] = []
    with contextlib.redirect_stdout(io.StringIO()), _no_parity_on_a_pty():  # it prints as it goes
        stim = Rehastim2(path)
        try:
            stim.init_channel(stimulation_interval=25, list_channels=channels(10))
            alternating = (channels(12), channels(10))
            for i in range(n):
                update = alternating[i % 2]
                t0 = time.perf_counter()
                stim.start_stimulation(upd_list_channels=update)
                samples.append((time.perf_counter() - t0) * 1000)
            stim.end_stimulation()
        finally:
            stim.disconnect()
            stim.close_port()
    return samples


def _sm2_blocking_round_trips(path: str, frames: list[bytes], n: int) -> list[float]:
    """The sleeping floor: answer the device's Init, then blocking writes of the frames emsctl
    sent (its InitChannelListMode and its StartChannelListMode frames, with our own packet
    numbers), each followed by blocking reads until its ack."""
    from emsctl.drivers.sciencemode2 import protocol as p

    messages = [p.decode_message(f) for f in frames]
    init_clm = next(m for m in messages if isinstance(m, p.InitChannelListMode))
    starts = [m for m in messages if isinstance(m, p.StartChannelListMode)][-2:]
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    decoder = p.FrameDecoder()
    pn = 0

    def replies() -> list[p.Message]:
        return [p.decode_frame(i.payload) for i in decoder.feed(os.read(fd, 64))
                if isinstance(i, p.Frame)]

    def round_trip(message: p.Message) -> float:
        nonlocal pn
        pn = (pn + 1) & 0xFF
        frame = p.encode_message(dataclasses.replace(message, packet_number=pn))
        t0 = time.perf_counter()
        os.write(fd, frame)
        while not any(r.packet_number == pn and r.command == message.command + 1
                      for r in replies()):
            pass
        return (time.perf_counter() - t0) * 1000

    samples: list[float] = []
    try:
        init = None
        while init is None:  # the device announces itself every 0.5 s
            init = next((r for r in replies() if isinstance(r, p.Init)), None)
        os.write(fd, p.encode_message(p.InitAck(packet_number=init.packet_number,
                                                result=p.Result.OK)))
        round_trip(init_clm)
        for i in range(n):
            samples.append(round_trip(starts[i % 2]))
        round_trip(p.StopChannelListMode(packet_number=0))
    finally:
        os.close(fd)
    return samples


@benchmark("sm2_update_ack_side_by_side",
           "update → ack: emsctl vs the pysciencemode client vs a blocking write→read")
def bench_sm2_side_by_side(size: Size, repeat: int | None = None) -> list[Figure]:
    rounds = 5 if size == "full" else 1
    per_round = _repeats(size, repeat, full=100, smoke=3)
    ours: list[float] = []
    client: list[float] = []
    floor: list[float] = []
    left_out = 0
    with tempfile.TemporaryDirectory() as folder:
        emulator = PtyEmulator(Path(folder), "sciencemode2", trace=False)
        announcing = "sending Init"  # the last client's connection has ended
        try:
            for _ in range(rounds):  # interleaved, so machine noise hits all three alike
                emulator.wait_for_log(announcing)
                samples, skipped, frames = asyncio.run(
                    _sm2_driver_round_trips(emulator.path, per_round))
                ours += samples
                left_out += skipped
                emulator.wait_for_log(announcing)
                client += _pysciencemode_round_trips(emulator.path, per_round)
                emulator.wait_for_log(announcing)
                floor += _sm2_blocking_round_trips(emulator.path, frames, per_round)
        finally:
            emulator.close()
    return side_by_side_figures(
        ours, client, floor, client_name="pysciencemode", client_waits="spins on its reads",
        floor_frames="the same frames",
        left_out=f"{left_out} samples that were not exactly one frame were left out")


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
