"""openEMSstim over serial when more is written than its 19 200-baud line carries.

Every line four times (two overlapping ``duplicate_frames`` faults, as they stacked when the
invariant runs found this) at the shortest lease is more than the line carries: 2 lines per
100 ms × 4 × 15.6 ms. The lines then wait in the link (drivers/links/base.py ``AHEAD_S``: the
link hands on at most 20 ms of line time ahead of the line), where a stop drops them and goes
next, and the next update, finding them, ends as a fault. In virtual time, over the in-memory
cable (each copy takes its wire time); tests/openems/test_openems_pty.py does the same over a
real pty through SerialLink.
"""

from __future__ import annotations

import asyncio
import math

import pytest
from support.ramp import ramp_below

from emsctl.clock import VirtualClock
from emsctl.contract import ChannelSetpoint
from emsctl.devices import OpenOptions, open_device
from emsctl.errors import DeviceError
from emsctl.simulator.drivers.openems import SimulatedOpenEmsDriver

DECL = "ma_at_100=40&frequency_hz=80&pulse_width_us=180"
SERIAL = f"sim+openems?{DECL}&boot_s=0&ready_timeout_s=0.1"
ON = ChannelSetpoint(20.0, 80.0, 180.0)
CAPS_MA = {1: 60.0, 2: 60.0}
LEASE_S = 0.2  # the shortest lease: two command periods


def storm(driver: SimulatedOpenEmsDriver, copies: int = 4) -> None:
    """From now, every line the host writes reaches the board ``copies`` times, each copy
    taking its wire time."""
    pipe = driver.front.pipe
    tamper = pipe.tamper

    def more(direction: str, data: bytes) -> list[tuple[float, bytes]]:
        chunks = tamper(direction, data) if tamper else [(0.0, data)]
        if direction != "host→device":
            return chunks
        return [chunk for chunk in chunks for _ in range(copies)]

    pipe.tamper = more


async def _until_lines_wait(driver: SimulatedOpenEmsDriver) -> bytes:
    """Renew both channels at every 100 ms tick in the storm until an update leaves a line
    waiting in the link; return what waits."""
    queued = driver.front.pipe.host._queued
    loop = asyncio.get_running_loop()
    for _ in range(20):
        tick_s = loop.time()
        await driver.apply([ON, ON], LEASE_S)
        if queued:
            return b"".join(queued)
        await asyncio.sleep(tick_s + 0.1 - loop.time())
    raise AssertionError("the storm never left a line waiting")


def _prepared() -> SimulatedOpenEmsDriver:
    driver = open_device(SERIAL, OpenOptions())
    assert isinstance(driver, SimulatedOpenEmsDriver)
    driver.set_channel_caps_ma(CAPS_MA)
    return driver


def test_a_stop_drops_the_setpoint_lines_still_waiting_and_goes_next() -> None:
    driver = _prepared()
    board = driver.emulator

    async def main() -> tuple[float, bytes]:
        await driver.connect()
        await ramp_below(driver, [ON, ON], step_lease_s=LEASE_S)
        storm(driver)
        waiting = await _until_lines_wait(driver)
        stop_s = asyncio.get_running_loop().time()
        await driver.stop()
        await asyncio.sleep(1.0)
        await driver.close()
        return stop_s, waiting

    stop_s, waiting = VirtualClock().run(main())
    # what waited was channel 2's line of the last update (written 50 ms after channel 1's)
    assert b"WV,0018,4331" in waiting
    # it never reached the board: nothing put channel 2 on after the stop (its stop idiom
    # C1I0T0G comes as an activation at zero current)
    assert [a for a in board.activations if a.t_s > stop_s and a.channel == 1
            and board.level_ma(a.channel, a.wiper_steps) > 0] == []
    # and the output was zero within the lease (+ the 50 ms of a firmware loop pass) of the
    # stop, as a stop on a quiet line is
    for channel in (1, 2):
        on = board.device.intervals(channel)
        on = on[on["amplitude_ma"] > 0]
        assert float(on["t1_s"].max()) <= stop_s + LEASE_S + 0.05


def test_an_update_that_finds_the_last_one_still_waiting_ends_as_a_fault() -> None:
    driver = _prepared()

    async def main() -> int:
        await driver.connect()
        await ramp_below(driver, [ON, ON], step_lease_s=LEASE_S)
        storm(driver)
        loop = asyncio.get_running_loop()
        tick = 0
        while True:  # a session's ticks, 100 ms apart
            tick += 1
            assert tick <= 20, "20 updates in the storm and none ended as a fault"
            tick_s = loop.time()
            try:
                await driver.apply([ON, ON], LEASE_S)
            except DeviceError as exc:
                assert "cannot carry the commands in time" in str(exc)
                break
            await asyncio.sleep(tick_s + 0.1 - loop.time())
        # the waiting lines were dropped and this update sent nothing: the stop goes next
        assert not driver.front.pipe.host._queued
        await driver.stop()
        await asyncio.sleep(1.0)
        await driver.close()
        return tick

    tick = VirtualClock().run(main())
    assert tick <= 5  # within half a second of the storm
    assert all(o.amplitude_ma == 0 for o in driver.device.outputs_at(math.inf))


def test_the_shutdown_after_a_corrupted_echo_goes_before_the_lines_still_waiting() -> None:
    driver = _prepared()
    board = driver.emulator

    async def main() -> float:
        await driver.connect()
        await ramp_below(driver, [ON, ON], step_lease_s=LEASE_S)
        storm(driver)
        await _until_lines_wait(driver)
        seen_s = asyncio.get_running_loop().time()
        driver.echo_mismatch(b"C0I99T200G")  # the board executed a line nobody sent
        await asyncio.sleep(1.0)
        await driver.close()
        return seen_s

    seen_s = VirtualClock().run(main())
    assert [a for a in board.activations if a.t_s > seen_s and a.channel == 1
            and board.level_ma(a.channel, a.wiper_steps) > 0] == []


def test_an_update_under_way_sends_nothing_more_after_a_corrupted_echo() -> None:
    # on a quiet line: the echo comes between channel 1's line and channel 2's, 50 ms later
    driver = _prepared()
    board = driver.emulator

    async def main() -> float:
        await driver.connect()
        await ramp_below(driver, [ON, ON], step_lease_s=LEASE_S)
        update = asyncio.ensure_future(driver.apply([ON, ON], LEASE_S))
        await asyncio.sleep(0.02)
        seen_s = asyncio.get_running_loop().time()
        driver.echo_mismatch(b"C0I99T200G")
        with pytest.raises(DeviceError, match="which was not sent"):
            await update
        await asyncio.sleep(1.0)
        await driver.close()
        return seen_s

    seen_s = VirtualClock().run(main())
    assert [a for a in board.activations if a.t_s > seen_s
            and board.level_ma(a.channel, a.wiper_steps) > 0] == []
