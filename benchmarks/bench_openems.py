"""openEMSstim benchmarks: stop latency to the emulated board, a 20-minute program.

- ``openems_stop``: ``driver.stop()`` issued while an update waits for its 50 ms line slot, on
  ``sim+openems`` (19 200-baud in-memory serial) and ``sim+openems+ble`` (7.5 ms connection
  interval). Figures: virtual time from the call to the board's output at zero on every
  channel (wire time, the board's loop pass and its blocking waits included; L22 target
  ≤ 300 ms), and the wall time from the call until the first stop command was handed to the
  link (the host's own share; L22: stop → wire ≤ 50 ms).
- ``openems_program_virtual``: a 20-minute 80 Hz / 180 µs program (the built-in ``tens``
  settings) end to end at virtual time through each transport, against the same program on
  the plain ``sim`` driver in the same run. Target ≤ 3 s.
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

#: 16 mA at I = 100: 20.2 mA at full scale, within the synthetic person's 22.5 mA cap (the driver
#: refuses caps below its full scale)
DECL = "ma_at_100=16&frequency_hz=80&pulse_width_us=180"
URLS = {"serial": f"sim+openems?{DECL}&boot_s=0",
        "BLE": f"sim+openems+ble?{DECL}"}



async def _stop_once(url: str, rng: random.Random) -> tuple[float, float]:
    from emsctl.contract import ChannelSetpoint
    from emsctl.devices import open_device
    from emsctl.simulator.drivers.openems import SimulatedOpenEmsDriver
    from tests.support.ramp import ramp_to

    driver = open_device(url)
    assert isinstance(driver, SimulatedOpenEmsDriver)
    on = ChannelSetpoint(8.0, 80.0, 180.0)
    loop = asyncio.get_running_loop()
    driver.set_channel_caps_ma({1: 22.5, 2: 22.5})
    await driver.connect()
    await ramp_to(driver, [on, on], 1.0)  # a rise beyond 80 mA/s is refused: soft start first
    await asyncio.sleep(rng.uniform(0.0, 0.3))
    pending = asyncio.ensure_future(driver.apply([on, on], 1.0))
    await asyncio.sleep(rng.uniform(0.0, 0.06))  # somewhere inside the update's line slots
    handed: list[float] = []
    send = driver.link.send

    async def timed_send(command: object) -> None:
        handed.append(time.perf_counter())
        await send(command)  # type: ignore[arg-type]

    driver.link.send = timed_send  # type: ignore[method-assign]
    t_stop = loop.time()
    wall_start = time.perf_counter()
    await driver.stop()
    await pending
    await asyncio.sleep(0.5)
    ends = []
    for channel in (1, 2):
        iv = driver.device.intervals(channel)
        lit = iv[iv["amplitude_ma"] > 0]
        ends.append(float(lit["t1_s"].max()) if lit.size else t_stop)
    await driver.close()
    return (max(ends) - t_stop) * 1000, (handed[0] - wall_start) * 1000


@benchmark("openems_stop", "openEMSstim stop() → board output zero (in-memory, serial and BLE)")
def bench_openems_stop(size: Size, repeat: int | None = None) -> list[Figure]:
    from emsctl.clock import VirtualClock

    n = _repeats(size, repeat, full=300, smoke=3)
    figures = []
    for name, url in URLS.items():
        rng = random.Random(5)

        async def many(url: str = url, rng: random.Random = rng) -> list[tuple[float, float]]:
            return [await _stop_once(url, rng) for _ in range(n)]

        results = VirtualClock().run(many())
        figures.append(figure(f"{name}: stop() → every channel at 0 on the board (virtual)",
                              [r[0] for r in results], "ms", max_value=300.0,
                              note="issued during a pending update; wire + loop pass + "
                                   "the board's 50 ms blocking waits"))
        figures.append(figure(f"{name}: stop() → first stop command handed to the link (wall)",
                              [r[1] for r in results], "ms", max_value=50.0))
    return figures


@benchmark("openems_program_virtual", "20-min program through sim+openems(+ble), virtual time")
def bench_openems_program(size: Size, repeat: int | None = None) -> list[Figure]:
    n = _repeats(size, repeat, full=5, smoke=1)
    duration_s = 1200 if size == "full" else 15
    with tempfile.TemporaryDirectory() as folder:
        program = str(Path(folder) / "bench-openems.toml")
        Path(program).write_text(program_text("continuous", duration_s))
        times: dict[str, list[float]] = {"serial": [], "BLE": [], "sim": []}
        for _ in range(n):  # interleaved, so machine noise hits all three alike
            for name, url in URLS.items():
                times[name].append(program_ms(url, program, Path(folder)))
            times["sim"].append(program_ms("sim", program, Path(folder)))
    label = "20-min program" if size == "full" else "15-s program (smoke)"
    figures = []
    for name in URLS:
        figures.append(figure(
            f"{label} through sim+openems ({name}), virtual time", times[name], "ms",
            baseline=("same program on the plain sim driver", times["sim"]),
            max_value=3000.0, note="ratio = the protocol path's cost over the session's"))
        figures.append(real_time_figure(f"{label} through sim+openems ({name}): speed",
                                        times[name], duration_s * 1000.0))
    return figures
