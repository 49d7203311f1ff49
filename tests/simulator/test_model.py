"""The simulated device: piecewise-constant outputs, device-side limits, lease/watchdog (L21)."""

from __future__ import annotations

import asyncio

import pytest

from emsctl.clock import RealClock, VirtualClock
from emsctl.contract import ZERO, ChannelSetpoint
from emsctl.errors import InputError, LinkLostError
from emsctl.simulator.model import OFF, DeviceEvent, DeviceSpec, SimulatedStimulator

SP = ChannelSetpoint(20.0, 50.0, 250.0)


def events_of(device: SimulatedStimulator) -> list[DeviceEvent]:
    seen: list[DeviceEvent] = []
    device.add_listener(seen.append)
    return seen


def test_lease_expiry_zeroes_exactly_at_lease_end() -> None:
    async def main() -> None:
        device = SimulatedStimulator()
        seen = events_of(device)
        await asyncio.sleep(2.0)
        assert device.set_outputs([SP, ZERO, ZERO, ZERO], lease_s=0.4)
        t_cmd = asyncio.get_running_loop().time()
        assert device.outputs_at(t_cmd + 0.4 - 1e-9)[0].amplitude_ma == 20.0
        assert device.outputs_at(t_cmd + 0.4)[0] == OFF
        await asyncio.sleep(1.0)
        assert device.output_now()[0] == OFF
        iv = device.intervals(1)
        on = iv[iv["amplitude_ma"] > 0]
        assert on.size == 1
        assert on["t0_s"][0] == t_cmd
        assert on["t1_s"][0] == t_cmd + 0.4
        assert [(e.kind, e.channel, e.t_s) for e in seen] == [("watchdog", 1, t_cmd + 0.4)]

    VirtualClock().run(main())


def test_renewal_extends_the_lease_and_the_last_command_sets_the_deadline() -> None:
    async def main() -> None:
        device = SimulatedStimulator()
        for _ in range(5):
            device.set_outputs([SP, ZERO, ZERO, ZERO], lease_s=0.3)
            await asyncio.sleep(0.2)
        t_last = asyncio.get_running_loop().time() - 0.2
        assert device.lease_deadline_s(1) == pytest.approx(t_last + 0.3)
        await asyncio.sleep(0.5)
        iv = device.intervals(1)
        on = iv[iv["amplitude_ma"] > 0]
        assert on.size == 1  # renewals with equal values continue one interval
        assert on["t1_s"][0] == pytest.approx(t_last + 0.3)

    VirtualClock().run(main())


def test_lease_longer_than_the_watchdog_is_cut_to_it() -> None:
    async def main() -> None:
        device = SimulatedStimulator(DeviceSpec(watchdog_s=0.5))
        device.set_outputs([SP] * 4, lease_s=5.0)
        t = asyncio.get_running_loop().time()
        assert device.lease_deadline_s(1) == t + 0.5

    VirtualClock().run(main())


@pytest.mark.parametrize("bad", [
    ChannelSetpoint(100.5, 50.0, 250.0),   # over the device's own maximum current
    ChannelSetpoint(10.0, 250.0, 250.0),   # over its maximum frequency
    ChannelSetpoint(10.0, 50.0, 5.0),      # under its minimum pulse width
    ChannelSetpoint(float("nan"), 50.0, 250.0),
])
def test_device_refuses_setpoints_beyond_its_limits_reports_error_and_zeroes(
        bad: ChannelSetpoint) -> None:
    async def main() -> None:
        device = SimulatedStimulator()
        seen = events_of(device)
        assert device.set_outputs([SP] * 4, lease_s=1.0)
        assert not device.set_outputs([SP, bad, SP, SP], lease_s=1.0)
        assert all(o == OFF for o in device.output_now())
        assert [(e.kind, e.channel) for e in seen] == [("device_error", 2)]

    VirtualClock().run(main())


def test_stop_reset_and_noticed_disconnect_zero_at_once() -> None:
    async def main() -> None:
        device = SimulatedStimulator(DeviceSpec(zero_on_disconnect=True))
        seen = events_of(device)
        for action in (device.stop, device.reset, device.disconnect):
            device.connect()
            device.set_outputs([SP] * 4, lease_s=1.0)
            await asyncio.sleep(0.1)
            action()
            assert all(o == OFF for o in device.output_now()), action.__name__
            assert device.lease_deadline_s(1) is None
        assert "device_reset" in [e.kind for e in seen]
        await asyncio.sleep(2.0)
        assert "watchdog" not in [e.kind for e in seen]  # no stale timer fires later

    VirtualClock().run(main())


def test_unnoticed_disconnect_runs_on_until_the_watchdog() -> None:
    async def main() -> None:
        device = SimulatedStimulator(DeviceSpec(zero_on_disconnect=False))
        device.set_outputs([SP] * 4, lease_s=0.8)
        t = asyncio.get_running_loop().time()
        device.disconnect()
        assert device.output_now()[0].amplitude_ma == 20.0
        with pytest.raises(LinkLostError):
            device.set_outputs([ZERO] * 4, lease_s=0.8)
        await asyncio.sleep(1.0)
        assert device.intervals(1)["t1_s"][-1] == t + 0.8
        assert device.output_now()[0] == OFF

    VirtualClock().run(main())


def test_mapping_sets_only_the_named_channels() -> None:
    async def main() -> None:
        device = SimulatedStimulator()
        device.set_outputs([SP] * 4, lease_s=1.0)
        await asyncio.sleep(0.5)
        device.set_outputs({2: ChannelSetpoint(5.0, 10.0, 100.0)}, lease_s=1.0)
        t = asyncio.get_running_loop().time()
        out = device.output_now()
        assert out[0].amplitude_ma == 20.0 and out[1].amplitude_ma == 5.0
        assert device.lease_deadline_s(1) == pytest.approx(t + 0.5)
        assert device.lease_deadline_s(2) == t + 1.0
        with pytest.raises(InputError):
            device.set_outputs({5: SP}, lease_s=1.0)

    VirtualClock().run(main())


def test_outputs_at_reads_history() -> None:
    async def main() -> None:
        device = SimulatedStimulator()
        t0 = asyncio.get_running_loop().time()
        device.set_outputs([SP] * 4, lease_s=1.0)
        await asyncio.sleep(0.5)
        device.set_outputs([ChannelSetpoint(30.0, 50.0, 250.0)] * 4, lease_s=1.0)
        await asyncio.sleep(0.2)
        device.stop()
        assert device.outputs_at(t0 + 0.25)[0].amplitude_ma == 20.0
        assert device.outputs_at(t0 + 0.6)[0].amplitude_ma == 30.0
        assert device.outputs_at(t0 + 0.7)[0] == OFF
        assert device.outputs_at(t0 - 1.0)[0] == OFF

    VirtualClock().run(main())


def test_strength_changed_on_the_device_is_reported() -> None:
    async def main() -> None:
        device = SimulatedStimulator()
        seen = events_of(device)
        device.set_outputs([SP] * 4, lease_s=1.0)
        device.change_strength(1, 35.0)
        assert device.output_now()[0].amplitude_ma == 35.0
        assert [(e.kind, e.channel, e.value) for e in seen] == [("strength", 1, 35.0)]

    VirtualClock().run(main())


def test_watchdog_works_on_the_real_clock_too() -> None:
    async def main() -> None:
        device = SimulatedStimulator()
        seen = events_of(device)
        device.set_outputs([SP] * 4, lease_s=0.05)
        deadline_s = device.lease_deadline_s(1)
        assert deadline_s == pytest.approx(asyncio.get_running_loop().time() + 0.05, abs=1e-3)
        await asyncio.sleep(0.1)
        assert all(o == OFF for o in device.output_now())
        assert {e.kind for e in seen} == {"watchdog"}
        assert device.intervals(1)["t1_s"][-1] == deadline_s  # the device's timer, not jitter

    RealClock().run(main())


def test_spec_refuses_compliance_over_150_v() -> None:
    with pytest.raises(InputError, match="150 V"):
        DeviceSpec(compliance_v=200.0)
