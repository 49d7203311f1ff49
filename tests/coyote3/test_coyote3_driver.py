"""The Coyote V3 driver against the emulated device through the in-memory GATT link."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from support.ramp import ramp_below, ramp_to

from emsctl.clock import VirtualClock
from emsctl.contract import ZERO, ChannelSetpoint, DriverStoppedError, Telemetry
from emsctl.devices import OpenOptions, open_device
from emsctl.errors import DeviceError, DeviceTimeoutError, InputError, LinkLostError
from emsctl.simulator.drivers.coyote3 import SimulatedCoyoteDriver
from emsctl.simulator.faults import Fault, FaultPlan
from emsctl.simulator.model import OFF

URL = "sim+coyote3?ma_per_step=0.2"
SP = ChannelSetpoint(10.0, 50.0, 80.0)  # 50 steps, 50 Hz, intensity 80


def coyote(url: str = URL, *faults: Fault) -> SimulatedCoyoteDriver:
    plan = FaultPlan(faults) if faults else None
    driver = open_device(url, OpenOptions(fault_plan=plan))
    assert isinstance(driver, SimulatedCoyoteDriver)
    return driver


def run(body: Callable[[SimulatedCoyoteDriver, list[Telemetry]], Coroutine[Any, Any, None]],
        driver: SimulatedCoyoteDriver | None = None) -> SimulatedCoyoteDriver:
    driver = driver or coyote()
    heard: list[Telemetry] = []
    driver.add_listener(heard.append)

    async def main() -> None:
        await body(driver, heard)
    VirtualClock().run(main())
    return driver


async def hold(driver: SimulatedCoyoteDriver, setpoints: list[ChannelSetpoint],
               duration_s: float) -> None:
    """Apply like a session: ramp up in allowed steps, then every 100 ms for ``duration_s``,
    lease 1 s."""
    await ramp_below(driver, setpoints)
    loop = asyncio.get_running_loop()
    end_s = loop.time() + duration_s
    while loop.time() < end_s:
        await driver.apply(setpoints, 1.0)
        await asyncio.sleep(0.1)


def kinds(heard: list[Telemetry]) -> list[str]:
    return [t.kind for t in heard]


# ---------------------------------------------------------------------- URLs and capabilities

def test_a_real_unit_needs_its_measured_ma_per_step_named_with_a_value_and_the_doc() -> None:
    with pytest.raises(InputError, match=r"counts strength in steps, not mA.*'\?ma_per_step=…'.*"
                                         r"for example 0\.2; docs/devices\.md §3\.3 says how to "
                                         r"measure it"):
        open_device("coyote3://AA:BB:CC:DD:EE:FF")
    with pytest.raises(InputError, match=r"frequency_balance and intensity_balance.*"
                                         r"docs/devices\.md §3\.3"):
        open_device("coyote3://AA:BB:CC:DD:EE:FF?ma_per_step=0.2")


def test_the_emulated_coyote_declares_its_own_calibration() -> None:
    caps = open_device("sim+coyote3").capabilities
    assert caps.ma_per_step == 0.2 and caps.amplitude_max_ma == pytest.approx(40.0)
    assert open_device("sim+coyote3?ma_per_step=0.25").capabilities.ma_per_step == 0.25


@pytest.mark.parametrize("url", [
    "sim+coyote3?ma_per_step=0",
    "sim+coyote3?ma_per_step=abc",
    "sim+coyote3?ma_per_step=0.2&us_per_intensity=5",  # 100 × 5 µs is over L6's 400 µs
    "sim+coyote3?ma_per_step=0.2&mA_per_step=0.3",   # unknown key
    "sim+coyote3://box?ma_per_step=0.2",
    "sim+coyote3?ma_per_step=0.2&battery_pct=101",
    "coyote3://AA:BB:CC:DD:EE:FF?ma_per_step=0.2",   # hardware: balances must be declared
    "coyote3://?ma_per_step=0.2&frequency_balance=1&intensity_balance=2",  # no target
    "coyote3://AA:BB?ma_per_step=0.2&frequency_balance=256&intensity_balance=2",
])
def test_bad_urls_are_input_errors(url: str) -> None:
    with pytest.raises(InputError):
        open_device(url)


def test_hardware_urls_pick_address_or_name_without_touching_the_radio() -> None:
    tail = "?ma_per_step=0.2&frequency_balance=100&intensity_balance=120"
    by_address = open_device("coyote3://AA:BB:CC:DD:EE:FF" + tail)
    by_name = open_device("coyote3://name=47L121000" + tail)
    assert by_address.link.address == "AA:BB:CC:DD:EE:FF"  # type: ignore[attr-defined]
    assert by_name.link.name == "47L121000"  # type: ignore[attr-defined]
    assert not by_address.simulated
    with pytest.raises(InputError, match="simulated"):
        open_device("coyote3://AA:BB:CC:DD:EE:FF" + tail,
                    OpenOptions(fault_plan=FaultPlan([Fault("disconnect", 1.0)])))


def test_capabilities_are_in_device_steps_through_the_declared_factor() -> None:
    caps = coyote("sim+coyote3?ma_per_step=0.2&us_per_intensity=3").capabilities
    assert (caps.channels, caps.ma_per_step, caps.amplitude_step_ma) == (2, 0.2, 0.2)
    assert caps.amplitude_max_ma == pytest.approx(40.0)  # 200 steps × 0.2 mA
    assert (caps.pulse_width_min_us, caps.pulse_width_max_us) == (3.0, 300.0)
    assert (caps.frequency_min_hz, caps.frequency_max_hz) == (1.0, 100.0)
    assert caps.frequency_per_channel and caps.has_output_watchdog and not caps.bursts
    assert (caps.update_period_s, caps.max_lease_s) == (0.1, 1.0)
    # L3: 200 steps of 0.5 mA would be 100 mA; the driver stops at 80 mA (160 steps)
    assert coyote("sim+coyote3?ma_per_step=0.5").capabilities.amplitude_max_ma == 80.0


# ---------------------------------------------------------------------- connect

def test_connect_writes_the_soft_limits_and_starts_a_left_over_strength_at_zero() -> None:
    driver = coyote()
    # a dead host left the device set (docs/protocols/coyote3.md §10)
    driver.emulator.strengths_steps = [120, 90]
    driver.set_channel_caps_ma({1: 9.1, 2: 30.0})  # min(program cap, profile cap), in mA

    async def body(d: SimulatedCoyoteDriver, heard: list[Telemetry]) -> None:
        await d.connect()
        assert d.emulator.limits_steps == [45, 150]  # floor(9.1 / 0.2), floor(30 / 0.2)
        assert d.emulator.balances == (128, 128, 128, 128)
        assert d.emulator.strengths_steps == [0, 0]  # L14: every session starts at 0
        assert d.tracker.known == (0, 0)
        assert ("battery", 100.0) in [(t.kind, t.value) for t in heard]
        await d.close()
        # docs/protocols/coyote3.md §10 step 3: the wheel cannot raise it now
        assert d.emulator.limits_steps == [0, 0]
    run(body, driver)


def test_a_nearly_empty_battery_refuses_the_session() -> None:
    async def body(d: SimulatedCoyoteDriver, heard: list[Telemetry]) -> None:
        with pytest.raises(DeviceError, match="battery is at 15 %"):
            await d.connect()
        assert not d.emulator.server.connected
    run(body, coyote(URL + "&battery_pct=15"))


# ---------------------------------------------------------------------- streaming

def test_output_follows_apply_and_b1_confirms_the_strength() -> None:
    async def body(d: SimulatedCoyoteDriver, heard: list[Telemetry]) -> None:
        async with d:
            await hold(d, [SP, ZERO], 0.5)
            out = d.device.output_now()
            assert out[0].amplitude_ma == pytest.approx(10.0)
            assert (out[0].frequency_hz, out[0].pulse_width_us) == (50.0, 80.0)
            assert out[1] == OFF
            assert d.tracker.known == (50, 0) and d.emulator.strengths_steps == [50, 0]
            assert (1, pytest.approx(10.0)) in [(t.channel, t.value) for t in heard
                                                if t.kind == "strength"]
        assert d.device.output_now() == (OFF, OFF) and d.emulator.strengths_steps == [0, 0]
        assert "stopped" in kinds(heard)
    run(body)


def test_frames_stream_every_100_ms_between_applies() -> None:
    async def body(d: SimulatedCoyoteDriver, heard: list[Telemetry]) -> None:
        async with d:
            await ramp_to(d, [SP, SP], 1.0)
            before = d.emulator.frames_received
            await asyncio.sleep(0.55)  # no apply: the stream alone keeps the output alive
            assert d.emulator.frames_received - before in (5, 6)
            assert d.device.output_now()[1].amplitude_ma == pytest.approx(10.0)
    run(body)


def test_without_lease_renewal_the_output_ends_and_the_driver_faults() -> None:
    async def body(d: SimulatedCoyoteDriver, heard: list[Telemetry]) -> None:
        await d.connect()
        await ramp_to(d, [SP, SP], 0.3)
        await asyncio.sleep(0.3 + 0.1 + 0.01)
        assert d.device.output_now() == (OFF, OFF)  # silent by the lease's last slot
        await asyncio.sleep(0.2)
        errors = [t.message for t in heard if t.kind == "device_error"]
        assert errors and "L21" in errors[0]
        assert d.stopped and d.emulator.strengths_steps == [0, 0]
        with pytest.raises(DeviceError):  # latched: nothing but zero until a new session
            await d.apply([SP, SP], 0.3)
        await d.close()
    run(body)


# ---------------------------------------------------------------------- interlock
# (docs/protocols/coyote3.md §9 step 5)

def test_a_strength_raised_on_the_device_stops_the_output() -> None:
    driver = coyote(URL, Fault("strength_change", 1.0, channel=1, value=14.0))

    async def body(d: SimulatedCoyoteDriver, heard: list[Telemetry]) -> None:
        await d.connect()
        with pytest.raises(DeviceError):  # the fault, or the stop it latched
            await hold(d, [SP, ZERO], 3.0)
        errors = [t for t in heard if t.kind == "device_error"]
        assert errors and "strength 70 on channel 1, above the 50 steps" in errors[0].message
        assert ("strength", 1, pytest.approx(14.0)) in [(t.kind, t.channel, t.value)
                                                        for t in heard]
        await asyncio.sleep(0.15)
        assert d.device.output_now() == (OFF, OFF) and d.emulator.strengths_steps == [0, 0]
        high = d.recorder.intervals(1)
        above = high[high["amplitude_ma"] > 10.0 + 1e-9]
        assert (above["t1_s"] - above["t0_s"]).sum() < 0.05  # ≤ one B1 round trip
        await d.close()
    run(body, driver)


def test_a_strength_lowered_on_the_device_also_stops_it() -> None:
    async def body(d: SimulatedCoyoteDriver, heard: list[Telemetry]) -> None:
        await d.connect()
        await hold(d, [SP, ZERO], 0.5)
        d.emulator.wheel(1, up=False)
        await asyncio.sleep(0.05)
        assert d.stopped and "device_error" in kinds(heard)
        await d.close()
    run(body)


def test_a_malformed_strength_report_stops_it() -> None:
    async def body(d: SimulatedCoyoteDriver, heard: list[Telemetry]) -> None:
        await d.connect()
        await hold(d, [SP, SP], 0.3)
        d.emulator.server.notify(d.emulator.server.name and
                                 "0000150b-0000-1000-8000-00805f9b34fb", b"\xb1\x01")
        await asyncio.sleep(0.05)
        assert d.stopped and "malformed" in next(t for t in heard
                                             if t.kind == "device_error").message
        await d.close()
    run(body)


def test_strength_changes_that_are_never_confirmed_stop_it() -> None:
    driver = coyote(URL, Fault("drop_acks", 0.5))

    async def body(d: SimulatedCoyoteDriver, heard: list[Telemetry]) -> None:
        await d.connect()
        with pytest.raises(DeviceTimeoutError, match="did not confirm 3 strength changes"):
            for step in range(1, 40):
                await d.apply([ChannelSetpoint(step * 0.2, 50.0, 80.0), ZERO], 1.0)
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        assert d.device.output_now() == (OFF, OFF)
        with pytest.raises(DeviceTimeoutError):  # the stop cannot be confirmed either
            await d.close()
    run(body, driver)


def test_a_decrease_whose_frames_were_all_lost_is_applied_once_frames_get_through() -> None:
    # Found by tests/session/test_invariants.py: every frame that carried a decrease was lost
    # for the 300 ms the driver waits for its B1, so the change was taken as applied and never
    # sent again; the device stayed at the higher strength (10.8 mA for 3.6 s after "−" asked
    # for 10.26 mA). An unconfirmed change is now set again in the following frames.
    async def body(d: SimulatedCoyoteDriver, heard: list[Telemetry]) -> None:
        await d.connect()
        await hold(d, [SP, ZERO], 0.5)  # 10 mA: 50 steps
        loop = asyncio.get_running_loop()
        FaultPlan([Fault("drop_frames", 0.0, duration_s=0.35, value=1.0)]).schedule(
            loop, d.emulator.faults)
        lower = ChannelSetpoint(9.0, 50.0, 80.0)
        end_s = loop.time() + 1.5
        while loop.time() < end_s:
            await d.apply([lower, ZERO], 1.0)
            await asyncio.sleep(0.1)
        assert d.device.output_now()[0].amplitude_ma == pytest.approx(9.0)
        assert "device_error" not in kinds(heard)
        await d.close()
    run(body)


# ---------------------------------------------------------------------- stop and link loss

def test_stop_reaches_the_device_first_and_latches() -> None:
    async def body(d: SimulatedCoyoteDriver, heard: list[Telemetry]) -> None:
        await d.connect()
        await hold(d, [SP, SP], 0.5)
        racing = asyncio.ensure_future(d.apply([ChannelSetpoint(12.0, 50.0, 80.0)] * 2, 1.0))
        await d.stop()
        with pytest.raises(DriverStoppedError):  # HZ-03: the stop wins the race
            await racing
        assert d.emulator.strengths_steps == [0, 0] and d.device.output_now() == (OFF, OFF)
        assert d.emulator.reports[-1].strength_a_steps == 0
        frames = d.emulator.frames_received
        await asyncio.sleep(0.5)
        assert d.emulator.frames_received == frames  # nothing streams after a stop
        await d.stop()  # idempotent
        await d.close()
    run(body)


def test_a_dropped_link_is_reported_and_the_device_falls_silent_by_itself() -> None:
    driver = coyote(URL, Fault("disconnect", 1.0))

    async def body(d: SimulatedCoyoteDriver, heard: list[Telemetry]) -> None:
        await d.connect()
        with pytest.raises(LinkLostError):
            await hold(d, [SP, SP], 3.0)
        lost = [t for t in heard if t.kind == "link_lost"]
        assert len(lost) == 1 and "connection" in lost[0].message
        await asyncio.sleep(0.11)
        assert d.device.output_now() == (OFF, OFF)  # the last frame ran out (≤ 100 ms)
        with pytest.raises(LinkLostError, match="next connect sets the strength to 0"):
            await d.stop()
        with pytest.raises(LinkLostError):  # close stops first, and says it could not
            await d.close()
        assert not d.emulator.server.connected
    run(body, driver)


def test_battery_changes_arrive_as_telemetry() -> None:
    driver = coyote(URL, Fault("battery_low", 0.5, value=8))

    async def body(d: SimulatedCoyoteDriver, heard: list[Telemetry]) -> None:
        async with d:
            await hold(d, [ZERO, ZERO], 1.0)
        assert [t.value for t in heard if t.kind == "battery"] == [100.0, 8.0]
    run(body, driver)


def test_corrupted_frames_never_push_the_output_past_the_soft_limit() -> None:
    driver = coyote(URL, Fault("corrupt_bytes", 0.0, value=0.3))
    driver.set_channel_caps_ma({1: 12.0, 2: 12.0})

    async def body(d: SimulatedCoyoteDriver, heard: list[Telemetry]) -> None:
        try:
            await d.connect()
            await hold(d, [SP, SP], 5.0)
        except DeviceError:
            pass  # HZ-12: a corrupted exchange may stop the session; that is allowed
        with contextlib.suppress(DeviceError):
            await d.close()
        await asyncio.sleep(0.2)
        for channel in (1, 2):
            assert d.recorder.intervals(channel)["amplitude_ma"].max() <= 12.0 + 1e-9
        assert d.device.output_now() == (OFF, OFF)
    run(body, driver)


def test_a_refused_write_without_response_falls_back_to_write_requests() -> None:
    driver = coyote()
    link = driver.link
    original = link.write

    async def picky(uuid: str, data: bytes, *, response: bool) -> None:
        if not response:
            raise DeviceError("write without response not permitted")
        await original(uuid, data, response=response)
    link.write = picky  # type: ignore[method-assign]

    async def body(d: SimulatedCoyoteDriver, heard: list[Telemetry]) -> None:
        async with d:
            await hold(d, [SP, ZERO], 0.3)
            assert d.emulator.strengths_steps == [50, 0]
    run(body, driver)


def test_a_link_lost_while_the_stop_waits_for_its_b1_is_no_confirmed_stop() -> None:
    # found by the invariant long run: the lost link woke the waiting stop, which took it as
    # the B1 and reported "strength 0 on both channels"; the session then ended "completed"
    async def body(d: SimulatedCoyoteDriver, heard: list[Telemetry]) -> None:
        await d.connect()
        await hold(d, [SP, SP], 0.5)
        d.emulator.server.latency_s = 0.1  # the B1 comes 0.2 s after the stop frame
        stopping = asyncio.ensure_future(d.stop())
        await asyncio.sleep(0.05)
        assert not stopping.done()
        d.emulator.server.drop_connection("out of range")
        with pytest.raises(LinkLostError, match="before the Coyote confirmed the stop"):
            await stopping
        assert "stopped" not in kinds(heard)
        assert kinds(heard).count("link_lost") == 1
        with contextlib.suppress(LinkLostError):
            await d.close()
    run(body)
