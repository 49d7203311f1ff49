"""The host lease of both ScienceMode drivers: one lazy timer that renewals only move.

A new timer per renewal would leave a cancelled one in the event loop for every update, and
the loop stops now and then to sweep them out (a stall in the middle of a session). The lease
must still end the output when the renewals stop, and a shorter lease must still end sooner.
"""

from __future__ import annotations

import asyncio

import pytest

from emsctl.clock import VirtualClock
from emsctl.contract import ZERO, ChannelSetpoint
from emsctl.devices import open_device

ON = [ChannelSetpoint(4.0, 20.0, 200.0)] + [ZERO] * 7


def _output_ma(driver: object) -> float:
    return float(driver.emulator.outputs()[0].amplitude_ma)  # type: ignore[attr-defined]


@pytest.mark.parametrize("url", ["sim+sciencemode2", "sim+sciencemode4"])
def test_renewals_move_one_timer_and_the_lease_still_ends_the_output(url: str) -> None:
    driver = open_device(url)

    async def body() -> None:
        loop = asyncio.get_running_loop()
        await driver.connect()
        await driver.apply(ON, 0.5)
        timers = set()
        for _ in range(50):  # renewals every 0.1 s, each with a 0.5 s lease
            await asyncio.sleep(0.1)
            await driver.apply(ON, 0.5)
            lease_timers = [h for h in loop._scheduled  # type: ignore[attr-defined]
                            if getattr(h._callback, "__name__", "") == "_lease_expired"]
            assert len(lease_timers) == 1 and not lease_timers[0].cancelled()
            timers.add(id(lease_timers[0]))
        assert len(timers) <= 12  # one per lease that ran out on the timer, not per renewal
        assert _output_ma(driver) == 4.0
        await asyncio.sleep(0.45)  # 5.45 s: the last lease ends at 5.5 s
        assert _output_ma(driver) == 4.0
        await asyncio.sleep(0.1)
        assert _output_ma(driver) == 0.0
        await driver.close()

    VirtualClock().run(body())


@pytest.mark.parametrize("url", ["sim+sciencemode2", "sim+sciencemode4"])
def test_a_shorter_lease_ends_sooner_than_the_timer_set_for_a_longer_one(url: str) -> None:
    driver = open_device(url)

    async def body() -> None:
        await driver.connect()
        await driver.apply(ON, 1.0)
        await asyncio.sleep(0.1)
        await driver.apply(ON, 0.2)  # ends at 0.3 s, not 1.0 s
        await asyncio.sleep(0.15)
        assert _output_ma(driver) == 4.0
        await asyncio.sleep(0.1)
        assert _output_ma(driver) == 0.0
        await driver.close()

    VirtualClock().run(body())
