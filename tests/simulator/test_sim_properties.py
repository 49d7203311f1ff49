"""Property: whatever happens — applies racing stops, lost acks, resets, lifted pads, a lost
link — the device is at zero right after a confirmed stop, stays there, and no output ever
outlives the lease of the last command the device received (HZ-03, L21).

Setpoints stay within the absolute ceilings (L3, L6, L7), which the driver contract refuses
beyond. Every apply first ramps up in allowed steps from what the device delivers (the contract
refuses faster rises, L16): one ramp at a time, as one session would, while the applies
themselves still overlap, race stops and meet faults. A jump faster than the rise ceiling is
refused with InputError, and nothing reaches the device.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.ramp import allowance_ma, delivered_ma, ramp_below

from emsctl.clock import VirtualClock
from emsctl.contract import ZERO, ChannelSetpoint, DriverStoppedError
from emsctl.errors import DeviceError, InputError
from emsctl.limit_table import (
    FREQUENCY_MAX_CEILING_HZ,
    FREQUENCY_MIN_CEILING_HZ,
    PEAK_CEILING_MA,
    PULSE_WIDTH_MAX_CEILING_US,
    PULSE_WIDTH_MIN_CEILING_US,
)
from emsctl.simulator.drivers.sim import SimDriver
from emsctl.simulator.faults import Fault
from emsctl.simulator.model import OFF

CHANNELS = 2

frequency_hz = st.floats(FREQUENCY_MIN_CEILING_HZ, FREQUENCY_MAX_CEILING_HZ)
pulse_width_us = st.floats(PULSE_WIDTH_MIN_CEILING_US, PULSE_WIDTH_MAX_CEILING_US)
setpoint = st.builds(
    ChannelSetpoint,
    amplitude_ma=st.integers(0, round(PEAK_CEILING_MA * 10)).map(lambda n: n / 10),
    frequency_hz=frequency_hz,
    pulse_width_us=pulse_width_us,
)
apply_op = st.tuples(st.just("apply"), st.lists(setpoint, min_size=CHANNELS, max_size=CHANNELS),
                     st.floats(0.01, 1.0), st.booleans())
# one channel asked to rise past the allowance by 0.2–20 mA, in the foreground
jump_op = st.tuples(st.just("jump"), st.integers(1, CHANNELS),
                    st.integers(2, 200).map(lambda n: n / 10), frequency_hz, pulse_width_us)
fault = st.one_of(
    st.builds(Fault, kind=st.just("electrode_off"), at_s=st.just(0.0),
              channel=st.sampled_from([None, 1, 2])),
    st.builds(Fault, kind=st.just("electrode_on"), at_s=st.just(0.0)),
    st.builds(Fault, kind=st.just("impedance"), at_s=st.just(0.0),
              value=st.floats(200.0, 20_000.0)),
    st.builds(Fault, kind=st.just("drop_acks"), at_s=st.just(0.0)),
    st.builds(Fault, kind=st.just("late_acks"), at_s=st.just(0.0), value=st.floats(0.01, 0.8)),
    st.builds(Fault, kind=st.just("device_reset"), at_s=st.just(0.0)),
    st.builds(Fault, kind=st.just("battery_low"), at_s=st.just(0.0), value=st.floats(0, 100)),
    st.builds(Fault, kind=st.just("strength_change"), at_s=st.just(0.0), channel=st.just(1),
              value=st.floats(0.0, 100.0)),
    st.builds(Fault, kind=st.just("disconnect"), at_s=st.just(0.0)),
)
acks_op = st.tuples(st.just("fault"), st.one_of(
    st.builds(Fault, kind=st.just("drop_acks"), at_s=st.just(0.0)),
    st.builds(Fault, kind=st.just("late_acks"), at_s=st.just(0.0), value=st.just(0.5)),
), st.just(False))
op = st.one_of(
    apply_op,
    jump_op,
    acks_op,
    st.tuples(st.just("stop")),
    # short sleeps make races with pending acks likely; long ones let leases run out
    st.tuples(st.just("sleep"), st.sampled_from([0.0, 0.05, 0.1, 0.25, 0.35, 0.7, 1.2])),
    st.tuples(st.just("fault"), fault, st.booleans()),
)


async def scenario(ops: list[tuple[Any, ...]]) -> None:
    driver = SimDriver()  # the default device: watchdog 1 s, does not notice a lost link
    device = driver.device
    loop = asyncio.get_running_loop()
    received: list[tuple[float, float]] = []   # (time, effective lease) of every command
    real_set = device.set_outputs

    def spy(setpoints: Any, lease_s: float) -> bool:
        received.append((loop.time(), min(lease_s, device.spec.watchdog_s)))
        return real_set(setpoints, lease_s)

    device.set_outputs = spy  # type: ignore[method-assign]
    driver_caps_channels = driver.capabilities.channels
    ramping = asyncio.Lock()

    async def ramp_and_apply(setpoints: list[ChannelSetpoint], lease_s: float) -> None:
        async with ramping:
            await ramp_below(driver, setpoints)
        # no await between the ramp's last look and the apply: its rise is within the rule
        await driver.apply(setpoints, lease_s)

    async def jump(channel: int, excess_ma: float, sp: ChannelSetpoint) -> None:
        """Ask ``channel`` to rise ``excess_ma`` past the allowance: refused, nothing sent."""
        delivered = delivered_ma(driver)
        target_ma = delivered[channel - 1] + allowance_ma(driver) + excess_ma
        if target_ma > PEAK_CEILING_MA:
            return  # beyond L3 whatever the rise: another refusal, tested elsewhere
        held = [last if ma > 0 else ZERO for last, ma in zip(driver.last_applied, delivered,
                                                               strict=True)]
        held[channel - 1] = ChannelSetpoint(target_ma, sp.frequency_hz, sp.pulse_width_us)
        output_before, commands_before = device.output_now(), len(received)
        last_applied = driver.last_applied
        if driver.stopped:  # the stop latch answers first
            with pytest.raises(DriverStoppedError):
                await driver.apply(held, 1.0)
        else:
            with pytest.raises(InputError, match="faster than"):
                await driver.apply(held, 1.0)
        assert device.output_now() == output_before and len(received) == commands_before
        assert driver.last_applied == last_applied

    await driver.connect()
    tasks: list[asyncio.Task[None]] = []
    first_stop_s: float | None = None
    for item in ops:
        if item[0] == "apply":
            _, sps, lease_s, background = item
            full = list(sps) + [ChannelSetpoint(0, 0, 0)] * (driver_caps_channels - CHANNELS)
            task = asyncio.ensure_future(ramp_and_apply(full, lease_s))
            tasks.append(task)
            if not background:
                await asyncio.gather(task, return_exceptions=True)
        elif item[0] == "jump":
            _, channel, excess_ma, f_hz, pw_us = item
            await jump(channel, excess_ma, ChannelSetpoint(0.0, f_hz, pw_us))
        elif item[0] == "stop":
            try:
                await driver.stop()
            except DeviceError:
                assert not driver.link_up   # only a lost link stops a stop being confirmed
            else:
                assert all(o == OFF for o in device.output_now())   # zero at once
            if first_stop_s is None and driver.link_up:
                first_stop_s = loop.time()
        elif item[0] == "sleep":
            await asyncio.sleep(item[1])
        else:
            _, f, ends = item
            driver.faults.fault_started(f)
            if ends and f.kind in {"electrode_off", "drop_acks", "late_acks"}:
                driver.faults.fault_ended(f)
    for result in await asyncio.gather(*tasks, return_exceptions=True):
        assert result is None or isinstance(result, DeviceError), repr(result)
    await asyncio.sleep(1.01)
    assert all(o == OFF for o in device.output_now())   # the watchdog caught everything

    for channel in device.channels:
        iv = device.intervals(channel)
        for row in iv[iv["amplitude_ma"] > 0]:
            t0_s, t1_s = float(row["t0_s"]), float(row["t1_s"])
            # no output outlives the lease of the last command received before it ended
            before = [t + lease for t, lease in received if t < t1_s]
            assert before and t1_s <= before[-1] + 1e-9
            # a confirmed stop latches: nothing is on after it
            if first_stop_s is not None:
                assert t0_s < first_stop_s and t1_s <= first_stop_s + 1e-9
    try:
        await driver.close()
    except DeviceError:
        assert not driver.link_up


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, max_size=25))
@example([("fault", Fault("drop_acks", 0.0), False),   # a retry must never follow a stop
          ("apply", [ChannelSetpoint(10, 50, 200)] * CHANNELS, 1.0, True),
          ("sleep", 0.1), ("stop",)])
@example([("apply", [ChannelSetpoint(20, 50, 200)] * CHANNELS, 1.0, False),  # 20 mA held
          ("jump", 1, 5.0, 50.0, 200.0),      # 25.1 mA at once: one 0.1 mA step is allowed
          ("sleep", 0.35), ("jump", 2, 0.2, 80.0, 100.0),  # 28.3 mA: 20 + 8 + 0.1 is allowed
          ("sleep", 1.2), ("jump", 1, 0.2, 50.0, 200.0)])  # lease over: from 0, 8.3 mA is not
def test_device_never_left_on_after_stop_or_lease_expiry(ops: list[tuple[Any, ...]]) -> None:
    VirtualClock().run(scenario(ops))
