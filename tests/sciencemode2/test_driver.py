"""The ScienceMode2 driver against the emulated RehaStim2 over the in-memory serial pipe."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from support.ramp import ramp_below, ramp_to

from emsctl.clock import VirtualClock
from emsctl.contract import ZERO, ChannelSetpoint, Telemetry
from emsctl.devices import OpenOptions, open_device
from emsctl.drivers.sciencemode2 import protocol as p
from emsctl.errors import DeviceError, InputError, LinkLostError
from emsctl.simulator.drivers.sciencemode2 import SimulatedScienceModeDriver
from emsctl.simulator.faults import Fault, FaultPlan

Body = Callable[[SimulatedScienceModeDriver, list[Telemetry], list[tuple[float, str, bytes]]],
                Coroutine[Any, Any, None]]


def setpoints(*channels: tuple[float, float, float]) -> list[ChannelSetpoint]:
    sps = [ChannelSetpoint(a, f, w) for a, f, w in channels]
    return sps + [ZERO] * (8 - len(sps))


def run(body: Body, url: str = "sim+sciencemode2", *faults: Fault) -> SimulatedScienceModeDriver:
    options = OpenOptions(fault_plan=FaultPlan(faults) if faults else None)
    driver = open_device(url, options)
    assert isinstance(driver, SimulatedScienceModeDriver)
    heard: list[Telemetry] = []
    driver.add_listener(heard.append)
    wire: list[tuple[float, str, bytes]] = []  # frames as they enter the cable, in order
    pipe = driver.emulator  # noqa: F841 - the pipe is reached through the link
    link = driver.link
    tamper = link.pipe.tamper  # type: ignore[attr-defined]

    def spy(direction: str, data: bytes) -> list[tuple[float, bytes]]:
        wire.append((asyncio.get_running_loop().time(), direction, data))
        return tamper(direction, data) if tamper else [(0.0, data)]

    link.pipe.tamper = spy  # type: ignore[attr-defined]

    async def main() -> None:
        await body(driver, heard, wire)

    VirtualClock().run(main())
    return driver


def host_commands(wire: list[tuple[float, str, bytes]]) -> list[int]:
    out = []
    for _, direction, data in wire:
        if direction == "host→device":
            out += [f.command for f in p.FrameDecoder().feed(data) if isinstance(f, p.Frame)]
    return out


def test_connect_answers_init_and_confirms_mode_0_with_stop() -> None:
    async def body(d: SimulatedScienceModeDriver, heard: list[Telemetry], wire: Any) -> None:
        await d.connect()
        assert d.protocol_version == 1 and d.emulator.connected
        assert host_commands(wire)[:2] == [p.Command.INIT_ACK, p.Command.STOP_CHANNEL_LIST_MODE]
        assert heard[0].kind == "connected"
        await d.close()

    run(body)


def test_capabilities_declare_one_global_frequency_and_the_2_ma_step() -> None:
    driver = open_device("sim+sciencemode2")
    caps = driver.capabilities
    assert (caps.channels, caps.amplitude_max_ma, caps.amplitude_step_ma) == (8, 130.0, 2.0)
    assert (caps.pulse_width_min_us, caps.pulse_width_max_us) == (20.0, 500.0)
    assert caps.frequency_per_channel is False and caps.max_lease_s <= 1.0  # L21
    assert caps.has_output_watchdog and driver.simulated and not caps.bursts


def test_current_is_floored_to_the_2_ma_step_and_never_exceeds_the_request() -> None:
    async def body(d: SimulatedScienceModeDriver, heard: Any, wire: Any) -> None:
        await d.connect()
        await ramp_to(d, setpoints((21.9, 8.0, 250.4), (1.9, 8.0, 250.0), (13.0, 8.0, 300.0)),
                      1.0)
        await asyncio.sleep(0.05)
        out = d.device.output_now()
        assert [o.amplitude_ma for o in out[:3]] == [20.0, 0.0, 12.0]
        assert out[0].pulse_width_us == 250.0 and out[0].frequency_hz == 8.0
        await d.close()

    run(body)


def test_different_frequencies_at_once_are_refused_before_anything_is_sent() -> None:
    async def body(d: SimulatedScienceModeDriver, heard: Any, wire: Any) -> None:
        await d.connect()
        sent = len(wire)
        with pytest.raises(InputError, match="one frequency"):
            await d.apply(setpoints((10.0, 8.0, 250.0), (10.0, 20.0, 250.0)), 1.0)
        assert len(wire) == sent
        await d.close()

    run(body)


def test_a_frequency_change_runs_stop_init_start() -> None:
    async def body(d: SimulatedScienceModeDriver, heard: Any, wire: Any) -> None:
        await d.connect()
        await d.apply(setpoints((10.0, 8.0, 250.0)), 1.0)
        mark = len(host_commands(wire))
        await d.apply(setpoints((10.0, 3.0, 250.0)), 1.0)
        assert host_commands(wire)[mark:] == [p.Command.STOP_CHANNEL_LIST_MODE,
                                              p.Command.INIT_CHANNEL_LIST_MODE,
                                              p.Command.START_CHANNEL_LIST_MODE]
        await asyncio.sleep(0.05)
        assert d.device.output_now()[0].frequency_hz == pytest.approx(1000 / 333.5)
        await d.close()

    run(body)


def test_stop_wins_over_a_pending_update() -> None:
    async def body(d: SimulatedScienceModeDriver, heard: Any, wire: Any) -> None:
        await d.connect()
        await d.apply(setpoints((10.0, 8.0, 250.0)), 1.0)
        d.emulator.drop_replies = True               # the next update waits for its ack
        update = asyncio.ensure_future(d.apply(setpoints((12.0, 8.0, 250.0)), 1.0))
        await asyncio.sleep(0.01)
        d.emulator.drop_replies = False
        t0 = asyncio.get_running_loop().time()
        await d.stop()
        assert asyncio.get_running_loop().time() - t0 < 0.001  # acked at once, not queued
        await update                                  # returns without resending
        commands = host_commands(wire)
        stop_at = len(commands) - 1 - commands[::-1].index(p.Command.STOP_CHANNEL_LIST_MODE)
        # nothing that makes output follows the stop: the pending update is never resent
        assert p.Command.START_CHANNEL_LIST_MODE not in commands[stop_at:]
        await asyncio.sleep(1.0)
        assert d.device.output_now()[0].amplitude_ma == 0.0
        await d.close()

    run(body)


def test_stop_frame_leaves_within_a_millisecond_while_an_update_waits_for_its_ack() -> None:
    async def body(d: SimulatedScienceModeDriver, heard: Any, wire: Any) -> None:
        await d.connect()
        d.emulator.drop_replies = True
        update = asyncio.ensure_future(d.apply(setpoints((10.0, 8.0, 250.0)), 1.0))
        await asyncio.sleep(0.05)
        t0 = asyncio.get_running_loop().time()
        stop = asyncio.ensure_future(d.stop())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        stops = [t for t, direction, data in wire if direction == "host→device"
                 and p.decode_message(data).command == p.Command.STOP_CHANNEL_LIST_MODE]
        assert stops and stops[-1] - t0 < 0.001
        with pytest.raises(DeviceError):
            await stop                                # no ack at all: it falls silent
        await update
        with pytest.raises(DeviceError):
            await d.close()                           # closes anyway; says the stop failed

    run(body)


def test_unacknowledged_stop_falls_silent_and_the_device_watchdog_ends_output() -> None:
    async def body(d: SimulatedScienceModeDriver, heard: list[Telemetry], wire: Any) -> None:
        await d.connect()
        await ramp_to(d, setpoints((20.0, 8.0, 250.0)), 1.0)
        last_heard_s = asyncio.get_running_loop().time()
        d.link.pipe.tamper = lambda direction, data: (  # type: ignore[attr-defined]
            [] if direction == "host→device" else [(0.0, data)])   # the host's bytes are lost
        with pytest.raises(DeviceError, match="watchdog"):
            await d.stop()
        assert d.device.output_now()[0].amplitude_ma == 20.0   # the device never heard the stop
        await asyncio.sleep(1.5)
        assert d.device.output_now()[0].amplitude_ma == 0.0
        zero_at_s = d.device.intervals(1)["t1_s"][-1]
        assert zero_at_s <= last_heard_s + 1.2 + 1e-6          # its 1.2 s watchdog did it
        assert [t.kind for t in heard].count("device_error") >= 1
        with contextlib.suppress(DeviceError):
            await d.close()

    run(body)


def test_the_host_enforces_the_lease_with_a_stop() -> None:
    async def body(d: SimulatedScienceModeDriver, heard: Any, wire: Any) -> None:
        await d.connect()
        await ramp_to(d, setpoints((20.0, 8.0, 250.0)), 0.5)
        await asyncio.sleep(0.45)
        assert d.device.output_now()[0].amplitude_ma == 20.0
        await asyncio.sleep(0.1)
        assert d.device.output_now()[0].amplitude_ma == 0.0
        assert d.emulator.connected                      # keep-alive holds the link
        await d.close()

    run(body)


def test_keepalive_holds_an_idle_connection_for_minutes() -> None:
    async def body(d: SimulatedScienceModeDriver, heard: Any, wire: Any) -> None:
        await d.connect()
        await asyncio.sleep(120)
        assert d.emulator.connected
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(wire)
                if a[1] == b[1] == "host→device"]
        assert max(gaps) <= 0.25 + 1e-6                   # L21 heartbeat
        await d.close()

    run(body)


def test_device_reset_is_reported_and_output_never_resumes_by_itself() -> None:
    async def body(d: SimulatedScienceModeDriver, heard: list[Telemetry], wire: Any) -> None:
        await d.connect()
        await ramp_to(d, setpoints((20.0, 8.0, 250.0)), 1.0)
        await asyncio.sleep(0.05)
        d.emulator.reset()
        await asyncio.sleep(0.05)
        assert "device_reset" in [t.kind for t in heard]
        with pytest.raises(DeviceError, match="reset"):
            await d.apply(setpoints((20.0, 8.0, 250.0)), 1.0)
        await asyncio.sleep(0.5)
        assert d.device.output_now()[0].amplitude_ma == 0.0
        await d.stop()                                   # confirmed: re-handshaken
        await d.close()

    run(body)


def test_stimulation_error_becomes_device_error_telemetry_and_refuses_output() -> None:
    async def body(d: SimulatedScienceModeDriver, heard: list[Telemetry], wire: Any) -> None:
        await d.connect()
        await ramp_to(d, setpoints((20.0, 8.0, 250.0)), 1.0)
        await asyncio.sleep(0.05)
        d.device.electrode_off(1)
        await asyncio.sleep(0.01)
        errors = [t for t in heard if t.kind == "device_error"]
        assert errors and "electrode error" in errors[0].message
        with pytest.raises(DeviceError, match="electrode"):
            await d.apply(setpoints((20.0, 8.0, 250.0)), 1.0)
        await d.close()

    run(body)


def test_cut_cable_reports_link_lost_and_stop_says_the_watchdog_ends_output() -> None:
    async def body(d: SimulatedScienceModeDriver, heard: list[Telemetry], wire: Any) -> None:
        await d.connect()
        await ramp_to(d, setpoints((20.0, 8.0, 250.0)), 1.0)
        d.link.pipe.cut()  # type: ignore[attr-defined]
        await asyncio.sleep(0.001)
        assert heard[-1].kind == "link_lost"
        with pytest.raises(LinkLostError, match="watchdog"):
            await d.stop()
        await asyncio.sleep(1.25)
        assert d.device.output_now()[0].amplitude_ma == 0.0
        with contextlib.suppress(DeviceError):
            await d.close()

    run(body)


def test_busy_is_retried_and_a_transient_busy_is_invisible() -> None:
    async def body(d: SimulatedScienceModeDriver, heard: list[Telemetry], wire: Any) -> None:
        await d.connect()
        await ramp_below(d, setpoints((20.0, 8.0, 250.0)))
        d.emulator.busy = True
        asyncio.get_running_loop().call_later(0.03, setattr, d.emulator, "busy", False)
        await d.apply(setpoints((20.0, 8.0, 250.0)), 1.0)
        await asyncio.sleep(0.05)
        assert d.device.output_now()[0].amplitude_ma == 20.0
        assert "device_error" not in [t.kind for t in heard]
        await d.close()

    run(body)


def test_no_init_within_1_5_s_is_a_clear_error() -> None:
    async def body(d: SimulatedScienceModeDriver, heard: Any, wire: Any) -> None:
        d.link.pipe.tamper = lambda direction, data: []  # type: ignore[attr-defined]
        with pytest.raises(DeviceError, match="no Init"):
            await d.connect()

    run(body)


@pytest.mark.parametrize("url", ["sim+sciencemode2://x", "sim+sciencemode2?profile=loose",
                                 "sim+sciencemode2?watchdog_s=-1", "sim+sciencemode2?foo=1",
                                 "sciencemode2://", "sciencemode2:///dev/ttyUSB0?baud=9600"])
def test_bad_urls_are_input_errors(url: str) -> None:
    with pytest.raises(InputError):
        open_device(url)


def test_a_fault_plan_is_refused_for_a_real_port() -> None:
    with pytest.raises(InputError, match="simulator"):
        open_device("sciencemode2:///dev/ttyUSB0",
                    OpenOptions(fault_plan=FaultPlan([Fault("disconnect", 1.0)])))
