"""Coyote V3 benchmarks: stop latency to the emulated device, a 20-minute program.

- ``coyote3_stop``: ``driver.stop()`` issued at a random moment of a running stream on
  ``sim+coyote3`` (in-memory GATT link, 7.5 ms connection interval). Figures: virtual time from
  the call to the stop frame (set 0/0, intensity 0) being applied by the emulated device, and to
  the device's output at zero on both channels (L22: stop → output zero ≤ 300 ms); and the wall
  time from the call until the emulated device has applied the stop frame (the host's own CPU
  share, since virtual time skips the link latency; L22: stop → wire ≤ 50 ms).
- ``coyote3_program_virtual``: a 20-minute 2-channel program (80 Hz, 180 µs) end to end through
  ``sim+coyote3`` at virtual time, against the same program on the plain ``sim`` driver in the
  same run. Target ≤ 3 s.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from pathlib import Path

from .bench_core import program_text
from .harness import Figure, Size, benchmark, figure, program_ms, real_time_figure
from .harness import repeats as _repeats

URL = "sim+coyote3?ma_per_step=0.2&us_per_intensity=2"



def _is_stop_frame(data: bytes) -> bool:
    """B0, both channels set absolutely (mode 11 11) to 0, intensities 0
    (docs/protocols/coyote3.md §10)."""
    return (len(data) == 20 and data[0] == 0xB0 and data[1] & 0x0F == 0x0F
            and data[2] == data[3] == 0 and not any(data[8:12]) and not any(data[16:20]))


async def _stop_once(rng: random.Random) -> tuple[float, float, float]:
    from emsctl.contract import ChannelSetpoint
    from emsctl.devices import open_device
    from emsctl.simulator.drivers.coyote3 import SimulatedCoyoteDriver
    from tests.support.ramp import ramp_below

    driver = open_device(URL)
    assert isinstance(driver, SimulatedCoyoteDriver)
    loop = asyncio.get_running_loop()
    on = ChannelSetpoint(20.0, 80.0, 180.0)
    await driver.connect()
    await ramp_below(driver, [on, on])  # a rise beyond 80 mA/s is refused: soft start first
    end_s = loop.time() + rng.uniform(0.3, 1.0)
    while loop.time() < end_s:
        await driver.apply([on, on], 1.0)
        await asyncio.sleep(0.1)
    await asyncio.sleep(rng.uniform(0.0, 0.1))  # anywhere in the stream's 100 ms cycle
    server = driver.emulator.server
    device_write = server.on_write
    assert device_write is not None
    arrived: list[tuple[float, float]] = []

    def timed_write(uuid: str, data: bytes, response: bool) -> None:
        device_write(uuid, data, response)
        if not arrived and _is_stop_frame(data):
            arrived.append((loop.time(), time.perf_counter()))

    server.on_write = timed_write
    t_stop = loop.time()
    wall_start = time.perf_counter()
    await driver.stop()
    ends = []
    for channel in (1, 2):
        iv = driver.device.intervals(channel)
        lit = iv[iv["amplitude_ma"] > 0]
        ends.append(float(lit["t1_s"].max()) if lit.size else t_stop)
    await driver.close()
    t_arrived, wall_arrived = arrived[0]
    return ((t_arrived - t_stop) * 1000, (max(*ends, t_stop) - t_stop) * 1000,
            (wall_arrived - wall_start) * 1000)


@benchmark("coyote3_stop", "Coyote V3 stop() → stop frame applied / output zero (in-memory BLE)")
def bench_coyote3_stop(size: Size, repeat: int | None = None) -> list[Figure]:
    from emsctl.clock import VirtualClock

    n = _repeats(size, repeat, full=300, smoke=3)
    rng = random.Random(3)

    async def many() -> list[tuple[float, float, float]]:
        return [await _stop_once(rng) for _ in range(n)]

    results = VirtualClock().run(many())
    return [
        figure("stop() → stop frame applied by the emulated Coyote (virtual)",
               [r[0] for r in results], "ms", max_value=50.0,
               note="one 7.5 ms connection interval of the in-memory link"),
        figure("stop() → both channels at 0 on the emulated Coyote (virtual)",
               [r[1] for r in results], "ms", max_value=300.0,
               note="L22 end to end; the stop frame zeroes the strength on arrival"),
        figure("stop() → stop frame applied (wall, host CPU share)",
               [r[2] for r in results], "ms", max_value=50.0),
    ]


@benchmark("coyote3_program_virtual", "20-min program through sim+coyote3, virtual time")
def bench_coyote3_program(size: Size, repeat: int | None = None) -> list[Figure]:
    n = _repeats(size, repeat, full=5, smoke=1)
    duration_s = 1200 if size == "full" else 15
    with tempfile.TemporaryDirectory() as folder:
        program = str(Path(folder) / "bench-coyote3.toml")
        Path(program).write_text(program_text("continuous", duration_s))
        coyote: list[float] = []
        sim: list[float] = []
        for _ in range(n):  # interleaved, so machine noise hits both alike
            coyote.append(program_ms(URL, program, Path(folder)))
            sim.append(program_ms("sim", program, Path(folder)))
    label = "20-min program" if size == "full" else "15-s program (smoke)"
    return [figure(f"{label} through sim+coyote3, virtual time", coyote, "ms",
                   baseline=("same program on the plain sim driver", sim), max_value=3000.0,
                   note="ratio = the protocol path's cost over the session's"),
            real_time_figure(f"{label} through sim+coyote3: speed", coyote, duration_s * 1000.0)]
