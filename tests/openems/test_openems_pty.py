"""openEMSstim serial over a real pseudo-terminal, in real time: the generic pty server with the
emulated board on the master side, the real driver and SerialLink on the slave path."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from support.ramp import ramp_below, ramp_to

from emsctl.contract import ZERO, ChannelSetpoint, Telemetry
from emsctl.devices import open_device
from emsctl.drivers.openems.driver import OpenEmsDriver
from emsctl.simulator.devices.openems_pty import OpenEmsPtyDevice
from emsctl.simulator.pty import PtyDeviceOptions, PtyServer

pytestmark = pytest.mark.realtime

DECL = "ma_at_100=40&frequency_hz=80&pulse_width_us=180"
ON = ChannelSetpoint(20.0, 80.0, 180.0)
#: Caps above the board's full scale at ma_at_100=40 (50.6 mA): without caps it sends nothing.
CAPS_MA = {1: 60.0, 2: 60.0}


def test_a_session_over_a_pty_renews_stops_and_ends_at_zero() -> None:
    async def main() -> None:
        server = PtyServer("openems", PtyDeviceOptions(extras={"boot_s": "0.3"}))
        device = server.device
        assert isinstance(device, OpenEmsPtyDevice)
        board = device.board
        path = server.open()
        stop_serving = asyncio.Event()
        serving = asyncio.ensure_future(server.serve_until(stop_serving))
        driver = open_device(f"openems://{path}?{DECL}&ready_timeout_s=2")
        assert isinstance(driver, OpenEmsDriver)
        driver.set_channel_caps_ma(CAPS_MA)
        seen: list[Telemetry] = []
        driver.add_listener(seen.append)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await driver.connect()
        assert loop.time() - t0 < 1.0  # the banner, not the 2 s timeout, ended the wait
        await ramp_below(driver, [ON, ON])
        for _ in range(10):  # 2.5 s of renewals with a 0.5 s lease
            await driver.apply([ON, ON], 0.5)
            await asyncio.sleep(0.25)
        assert board.active(0) and board.active(1)
        assert [o.amplitude_ma for o in board.device.output_now()] == \
            [pytest.approx(driver.declared.ma_at(50))] * 2
        on = board.device.intervals(1)
        level = np.isclose(on["amplitude_ma"], driver.declared.ma_at(50))
        on = on[on["t0_s"] >= on[level]["t0_s"].min()]  # from the renewals on, not the ramp
        assert len(on[on["amplitude_ma"] > 0]) == 1  # renewed without a gap
        started = time.monotonic()
        await driver.stop()
        while board.active(0) or board.active(1):
            await asyncio.sleep(0.002)
        stop_to_zero_s = time.monotonic() - started
        assert stop_to_zero_s < 0.3  # L22: stop → output zero
        await driver.apply([ZERO, ZERO], 0.5)
        await driver.close()
        assert b"EMS_CMD: Converted HEX command: C9G" in board.debug_lines
        assert board.unsafe_events == [] and board.dropped_rx_bytes == 0
        assert [t.kind for t in seen] == ["connected"]
        stop_serving.set()
        await serving

    asyncio.run(main())


def test_without_renewal_the_board_over_a_pty_falls_silent_by_its_on_time() -> None:
    async def main() -> None:
        server = PtyServer("openems", PtyDeviceOptions(extras={"boot_s": "0"}))
        board = server.device.board  # type: ignore[attr-defined]
        path = server.open()
        stop_serving = asyncio.Event()
        serving = asyncio.ensure_future(server.serve_until(stop_serving))
        driver = open_device(f"openems://{path}?{DECL}&ready_timeout_s=0.2")
        driver.set_channel_caps_ma(CAPS_MA)
        await driver.connect()
        await ramp_to(driver, [ON, ZERO], 0.3)
        await asyncio.sleep(0.1)
        assert board.active(0)
        await asyncio.sleep(0.35)  # the host goes quiet (as if it hung)
        assert not board.active(0)
        await driver.close()
        stop_serving.set()
        await serving

    asyncio.run(main())
