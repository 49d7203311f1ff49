"""The default ``sim`` driver: acks, retries, stop-wins, link loss and device telemetry."""

from __future__ import annotations

import asyncio

import pytest
from support.ramp import ramp_below, ramp_to

from emsctl.clock import RealClock, VirtualClock
from emsctl.contract import ZERO, ChannelSetpoint, Telemetry
from emsctl.devices import OpenOptions, open_device
from emsctl.errors import DeviceTimeoutError, InputError, LinkLostError
from emsctl.simulator.drivers.sim import SimDriver
from emsctl.simulator.faults import Fault, FaultPlan
from emsctl.simulator.model import OFF

SP = ChannelSetpoint(20.0, 50.0, 250.0)


def sim(url: str = "sim", *faults: Fault) -> SimDriver:
    driver = open_device(url, OpenOptions(fault_plan=FaultPlan(faults) if faults else None))
    assert isinstance(driver, SimDriver)
    return driver


def arm(driver: SimDriver, *faults: Fault) -> None:
    """Start ``faults`` from now (after a ramp), as a plan armed at connect would from then."""
    FaultPlan(faults).schedule(asyncio.get_running_loop(), driver.faults)


def heard(driver: SimDriver) -> list[Telemetry]:
    seen: list[Telemetry] = []
    driver.add_listener(seen.append)
    return seen


def test_capabilities_of_the_default_simulator() -> None:
    driver = sim()
    caps = driver.capabilities
    assert (caps.model, caps.channels, caps.amplitude_max_ma, caps.amplitude_step_ma) == \
        ("emsctl simulator", 4, 100.0, 0.1)
    assert (caps.pulse_width_min_us, caps.pulse_width_max_us) == (20.0, 1000.0)
    assert (caps.frequency_min_hz, caps.frequency_max_hz) == (1.0, 200.0)
    assert caps.frequency_per_channel and caps.has_output_watchdog and driver.simulated
    assert (caps.update_period_s, caps.max_lease_s) == (0.1, 1.0)
    assert caps.telemetry >= {"ack", "electrode_off", "electrode_ok", "battery",
                              "device_error", "device_reset", "link_lost"}


def test_url_parameters_configure_the_device() -> None:
    driver = sim("sim?channels=2&impedance_ohm=800&watchdog_s=0.5&compliance_v=60")
    assert driver.capabilities.channels == 2
    assert driver.capabilities.max_lease_s == 0.5
    assert driver.device.body.load(2).impedance_ohm == 800.0
    assert driver.device.spec.compliance_v == 60.0


@pytest.mark.parametrize("url", [
    "sim?chanels=2",            # unknown key
    "sim?channels=two",
    "sim?channels=9",
    "sim?watchdog_s=2",         # L21: the device must fall silent within 1 s
    "sim?compliance_v=200",     # L5
    "sim://box",
])
def test_bad_urls_are_input_errors(url: str) -> None:
    with pytest.raises(InputError):
        open_device(url)


def test_byte_level_faults_are_refused_when_opening() -> None:
    with pytest.raises(InputError, match="corrupt_bytes"):
        sim("sim", Fault("corrupt_bytes", 1.0, value=0.1))
    with pytest.raises(InputError, match="FaultPlan"):
        open_device("sim", OpenOptions(fault_plan=[Fault("disconnect", 1.0)]))


def test_apply_reaches_the_device_and_is_acked() -> None:
    async def main() -> None:
        async with sim() as driver:
            await ramp_below(driver, [SP, ZERO, ZERO, ZERO])
            seen = heard(driver)
            await driver.apply([SP, ZERO, ZERO, ZERO], lease_s=0.5)
            assert driver.device.output_now()[0].amplitude_ma == 20.0
            assert driver.last_applied[0] == SP
            assert [t.kind for t in seen] == ["ack"]
        assert all(o == OFF for o in driver.device.output_now())  # close stops first

    VirtualClock().run(main())


def test_stop_wins_over_an_apply_waiting_for_a_late_ack() -> None:
    async def main() -> None:
        driver = sim("sim", Fault("late_acks", 0.0, value=0.25))
        await driver.connect()
        await ramp_below(driver, [SP] * 4)           # each step waits for its late ack
        pending = asyncio.create_task(driver.apply([SP] * 4, lease_s=1.0))
        await asyncio.sleep(0.05)
        assert driver.device.output_now()[0].amplitude_ma == 20.0
        loop = asyncio.get_running_loop()
        t_stop = loop.time()
        await driver.stop()
        assert loop.time() == t_stop                # stop did not wait for the ack …
        assert all(o == OFF for o in driver.device.output_now())
        assert not pending.done()                   # … which is still pending
        await pending
        await asyncio.sleep(2.0)
        assert all(o == OFF for o in driver.device.output_now())   # the late ack changed nothing
        assert driver.device.intervals(1)["t1_s"][-1] == pytest.approx(t_stop)
        await driver.close()

    VirtualClock().run(main())


def test_no_retry_is_sent_after_a_stop() -> None:
    async def main() -> None:
        driver = sim()
        await driver.connect()
        await ramp_below(driver, [SP] * 4)
        t0 = asyncio.get_running_loop().time()
        arm(driver, Fault("drop_acks", 0.0))
        pending = asyncio.create_task(driver.apply([SP] * 4, lease_s=1.0))
        await asyncio.sleep(0.1)
        await driver.stop()
        await pending                                # the ack timeout passes: no resend
        await asyncio.sleep(0.5)
        on = driver.device.intervals(1)
        on = on[on["t0_s"] >= t0]                    # the ramp's steps came before
        assert on[on["amplitude_ma"] > 0]["t1_s"].tolist() == [pytest.approx(t0 + 0.1)]
        await driver.close()

    VirtualClock().run(main())


def test_late_ack_within_the_timeout_is_fine() -> None:
    async def main() -> float:
        async with sim("sim", Fault("late_acks", 0.0, value=0.2)) as driver:
            await ramp_below(driver, [SP] * 4)       # each step waits for its late ack
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await driver.apply([SP] * 4, lease_s=1.0)
            return loop.time() - t0

    assert VirtualClock().run(main()) == pytest.approx(0.2)


def test_dropped_acks_retry_once_then_raise_device_timeout() -> None:
    async def main() -> None:
        driver = sim()
        await driver.connect()
        await ramp_below(driver, [SP] * 4)
        arm(driver, Fault("drop_acks", 0.0))
        sent: list[float] = []
        real_set = driver.device.set_outputs

        def spy(setpoints, lease_s):  # type: ignore[no-untyped-def]
            sent.append(asyncio.get_running_loop().time())
            return real_set(setpoints, lease_s)

        driver.device.set_outputs = spy  # type: ignore[method-assign]
        t0 = asyncio.get_running_loop().time()
        with pytest.raises(DeviceTimeoutError):
            await driver.apply([SP] * 4, lease_s=1.0)
        assert sent == pytest.approx([t0, t0 + 0.3])  # the command and one retry
        assert asyncio.get_running_loop().time() == pytest.approx(t0 + 0.6)
        await driver.close()

    VirtualClock().run(main())


def test_no_retry_restarts_an_output_whose_lease_ran_out() -> None:
    # A 0.2 s lease is legal, but the retry comes after the 0.3 s ack timeout: by then the
    # device's watchdog has switched the output off, and the retry used to switch it back on
    # at the full level at once (10.8 mA from zero, found by tests/session/test_invariants.py)
    async def main() -> None:
        driver = sim()
        await driver.connect()
        await ramp_below(driver, [SP] * 4)
        arm(driver, Fault("drop_acks", 0.0))
        t0 = asyncio.get_running_loop().time()
        with pytest.raises(DeviceTimeoutError, match="lease"):
            await driver.apply([SP] * 4, lease_s=0.2)
        await driver.close()
        for channel in driver.device.channels:
            late = [row for row in driver.device.intervals(channel)
                    if row["t1_s"] > t0 + 0.2 + 1e-9 and row["amplitude_ma"] > 0]
            assert late == [], channel

    VirtualClock().run(main())


def test_acks_flow_again_when_a_drop_acks_fault_ends() -> None:
    async def main() -> None:
        async with sim("sim", Fault("drop_acks", 0.0, duration_s=1.0)) as driver:
            await asyncio.sleep(1.0)
            await ramp_to(driver, [SP] * 4, lease_s=1.0)  # every step needs its ack

    VirtualClock().run(main())


def test_disconnect_loses_the_link_and_the_device_zeroes_by_its_own_watchdog() -> None:
    async def main() -> None:
        driver = sim()
        seen = heard(driver)
        await driver.connect()
        loop = asyncio.get_running_loop()
        await ramp_to(driver, [SP] * 4, lease_s=0.8)
        t_cmd = loop.time()
        arm(driver, Fault("disconnect", 0.3))
        await asyncio.sleep(0.5)
        assert [(t.kind, t.t_s) for t in seen if t.kind == "link_lost"] == \
            [("link_lost", pytest.approx(t_cmd + 0.3))]
        # The host did not zero it: the device still runs, on its lease alone.
        assert driver.device.output_now()[0].amplitude_ma == 20.0
        with pytest.raises(LinkLostError):
            await driver.apply([SP] * 4, lease_s=0.8)
        with pytest.raises(LinkLostError):
            await driver.stop()
        await asyncio.sleep(0.5)
        assert all(o == OFF for o in driver.device.output_now())
        assert driver.device.intervals(1)["t1_s"][-1] == t_cmd + 0.8   # L21, exactly
        with pytest.raises(LinkLostError):
            await driver.close()
        assert not driver.link_up

    VirtualClock().run(main())


def test_pending_apply_fails_at_once_when_the_link_is_lost() -> None:
    async def main() -> None:
        driver = sim()
        await driver.connect()
        await ramp_below(driver, [SP] * 4)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        arm(driver, Fault("drop_acks", 0.0), Fault("disconnect", 0.1))
        with pytest.raises(LinkLostError):
            await driver.apply([SP] * 4, lease_s=1.0)
        assert loop.time() == pytest.approx(t0 + 0.1)

    VirtualClock().run(main())


def test_electrode_off_delivers_nothing_and_is_reported() -> None:
    async def main() -> None:
        async with sim() as driver:
            seen = heard(driver)
            await ramp_below(driver, [SP] * 4)
            t0 = asyncio.get_running_loop().time()
            arm(driver, Fault("electrode_off", 0.25, channel=2))
            for _ in range(5):
                await driver.apply([SP] * 4, lease_s=0.5)
                await asyncio.sleep(0.1)
            out = driver.device.output_now()
            assert out[1].delivered_ma == 0.0 and out[0].delivered_ma == 20.0
            off = [t for t in seen if t.kind == "electrode_off"]
            assert [(t.channel, t.t_s) for t in off] == [(2, pytest.approx(t0 + 0.25))]

    VirtualClock().run(main())


def test_device_reset_and_low_battery_become_telemetry() -> None:
    async def main() -> None:
        plan = (Fault("battery_low", 0.1, value=8.0), Fault("device_reset", 0.2))
        async with sim() as driver:
            await ramp_below(driver, [SP] * 4)
            seen = heard(driver)
            arm(driver, *plan)
            await driver.apply([SP] * 4, lease_s=1.0)
            await asyncio.sleep(0.3)
            assert all(o == OFF for o in driver.device.output_now())  # HZ-17: up at 0
            kinds = [(t.kind, t.value) for t in seen if t.kind != "ack"]
            assert kinds == [("battery", 8.0), ("device_reset", None)]

    VirtualClock().run(main())


def test_recorder_sees_what_the_driver_delivered() -> None:
    async def main() -> tuple[SimDriver, float]:
        async with sim("sim?channels=2") as driver:
            await ramp_below(driver, [ChannelSetpoint(10.0, 100.0, 200.0), ZERO])
            t0 = asyncio.get_running_loop().time()
            for _ in range(10):
                await driver.apply([ChannelSetpoint(10.0, 100.0, 200.0), ZERO], lease_s=0.5)
                await asyncio.sleep(0.1)
        return driver, t0

    driver, t0 = VirtualClock().run(main())
    # the pulses of the 1 s held at 10 mA, after the ramp's
    assert driver.recorder.pulse_count(1) - driver.recorder.pulse_count(1, until_s=t0) == 100
    assert driver.recorder.summary()[2]["pulse_count"] == 0


def test_sim_driver_runs_on_the_real_clock() -> None:
    async def main() -> None:
        async with sim("sim?channels=1") as driver:
            await ramp_to(driver, [SP], lease_s=0.05)
            assert driver.device.output_now()[0].amplitude_ma == 20.0
            await asyncio.sleep(0.1)
            assert driver.device.output_now()[0] == OFF   # its watchdog, in real time

    RealClock().run(main())


def test_request_stop_latches_before_the_stop_task_runs() -> None:
    """HZ-03: a key or signal handler's stop holds from the instant it returns."""
    from emsctl.clock import VirtualClock
    from emsctl.contract import ChannelSetpoint, DriverStoppedError
    from emsctl.simulator.drivers.sim import SimDriver

    async def main() -> None:
        driver = SimDriver()
        await driver.connect()
        on = [ChannelSetpoint(5.0, 10.0, 200.0)] + [ChannelSetpoint(0, 0, 0)] * 3
        await driver.apply(on, 0.5)
        task = driver.request_stop()  # no await: the stop task has not run yet
        assert task is not None and not task.done()
        try:
            await driver.apply(on, 0.5)
        except DriverStoppedError:
            pass
        else:
            raise AssertionError("output accepted after request_stop()")
        await task
        assert all(out.amplitude_ma == 0 for out in driver.device.output_now())
        await driver.close()

    VirtualClock().run(main())
