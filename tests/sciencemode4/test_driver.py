"""The ScienceMode4 driver against the emulated P24 over the in-memory serial pipe, in virtual
time."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from emsctl.clock import VirtualClock
from emsctl.contract import ZERO, ChannelSetpoint, Telemetry
from emsctl.devices import OpenOptions, open_device
from emsctl.drivers.sciencemode4 import protocol as p
from emsctl.drivers.sciencemode4.driver import DEVICE_TIMEOUT_S
from emsctl.errors import DeviceError, DeviceTimeoutError, InputError
from emsctl.simulator.drivers.sciencemode4 import SimulatedScienceMode4Driver
from emsctl.simulator.faults import Fault, FaultPlan

Wire = list[tuple[float, str, bytes]]
Body = Callable[[SimulatedScienceMode4Driver, list[Telemetry], Wire], Coroutine[Any, Any, None]]


def setpoints(*channels: tuple[float, float, float]) -> list[ChannelSetpoint]:
    sps = [ChannelSetpoint(a, f, w) for a, f, w in channels]
    return sps + [ZERO] * (8 - len(sps))


#: Within one update period's slew from zero (the contract refuses faster first rises).
ON = setpoints((6.0, 20.0, 200.0))
OFF = (0.0, 0.0, 0.0)


def run(body: Body, url: str = "sim+sciencemode4", *faults: Fault) -> SimulatedScienceMode4Driver:
    options = OpenOptions(fault_plan=FaultPlan(faults) if faults else None)
    driver = open_device(url, options)
    assert isinstance(driver, SimulatedScienceMode4Driver)
    heard: list[Telemetry] = []
    driver.add_listener(heard.append)
    wire: Wire = []  # chunks as they enter the cable, in order
    link = driver.link
    tamper = link.pipe.tamper  # type: ignore[attr-defined]

    def spy(direction: str, data: bytes) -> list[tuple[float, bytes]]:
        wire.append((asyncio.get_running_loop().time(), direction, data))
        return tamper(direction, data) if tamper else [(0.0, data)]

    link.pipe.tamper = spy  # type: ignore[attr-defined]
    VirtualClock().run(body(driver, heard, wire))
    return driver


def frames(wire: Wire, direction: str = "host→device") -> list[tuple[float, p.Message]]:
    out = []
    decoder = p.FrameDecoder()
    for t, d, data in wire:
        if d == direction:
            out += [(t, p.decode_frame(f.payload)) for f in decoder.feed(data)
                    if isinstance(f, p.Frame)]
    return out


def commands(wire: Wire) -> list[int]:
    return [m.command for _, m in frames(wire)]


def test_connect_reads_status_identity_and_version_then_inits_mid_level() -> None:
    async def body(d: SimulatedScienceMode4Driver, heard: list[Telemetry], wire: Wire) -> None:
        await d.connect()
        assert commands(wire) == [p.Command.GET_STIM_STATUS, p.Command.GET_DEVICE_ID,
                                  p.Command.GET_EXTENDED_VERSION, p.Command.ML_INIT]
        init = frames(wire)[-1][1]
        assert isinstance(init, p.MlInit) and init.stop_all_on_error  # stop all on any error
        assert [t.kind for t in heard] == ["connected"]
        assert heard[0].message == ("Hasomed P24 id P24EMU0001, firmware 1.0.0, ScienceMode "
                                    "4.0.0, firmware hash 12345678")
        assert d.info is not None and d.info.device_id == "P24EMU0001"
        assert d.emulator.stim_status == p.StimStatus.MID_LEVEL_INITIALISED
        # packet numbers count 1, 2, 3 …
        assert [m.packet_number for _, m in frames(wire)] == [1, 2, 3, 4]
        await d.close()

    run(body)


def test_connect_stops_a_level_a_dead_host_left_running() -> None:
    async def body(d: SimulatedScienceMode4Driver, heard: list[Telemetry], wire: Wire) -> None:
        emulator = d.emulator
        emulator.power_on()
        block = p.MlChannelConfig((p.Point.of(200, 20.0), p.Point.of(200, -20.0)),
                                  p.Period(50))
        emulator.receive(p.encode_message(p.MlInit(packet_number=1, stop_all_on_error=False)))
        emulator.receive(p.encode_message(p.MlUpdate.of(2, {1: block})))
        assert emulator.outputs()[0].amplitude_ma == 20.0
        await d.connect()
        assert commands(wire)[:2] == [p.Command.GET_STIM_STATUS, p.Command.ML_STOP]
        assert all(o.amplitude_ma == 0 for o in emulator.outputs())
        await d.close()

    run(body)


def test_capabilities_follow_the_document() -> None:
    driver = open_device("sim+sciencemode4")
    caps = driver.capabilities
    assert (caps.channels, caps.amplitude_max_ma, caps.amplitude_step_ma) == (8, 130.0, 0.5)
    assert (caps.pulse_width_min_us, caps.pulse_width_max_us) == (10.0, 4095.0)
    assert caps.frequency_per_channel and caps.frequency_max_hz == 100.0
    assert caps.frequency_min_hz == pytest.approx(2000 / 32766)
    assert caps.max_lease_s <= 1.0 and caps.has_output_watchdog and not caps.bursts  # L21
    assert "electrode_off" in caps.telemetry and "ack" in caps.telemetry
    assert driver.simulated


def test_apply_sends_one_update_with_a_period_and_a_biphasic_pulse_per_channel() -> None:
    async def body(d: SimulatedScienceMode4Driver, heard: list[Telemetry], wire: Wire) -> None:
        await d.connect()
        await d.apply(setpoints((6.3, 20.0, 200.0), OFF, (7.5, 50.0, 150.4)), 1.0)
        (update,) = [m for _, m in frames(wire) if isinstance(m, p.MlUpdate)]
        assert update.enable_mask == 0b101
        ch1, ch3 = update.enabled[1], update.enabled[3]
        assert ch1.points == (p.Point.of(200, 6.0), p.Point.of(200, -6.0))  # floored
        assert ch1.period == p.Period(100) and ch3.period == p.Period(40)  # 50 ms, 20 ms
        assert ch3.points == (p.Point.of(150, 7.5), p.Point.of(150, -7.5))
        assert ch1.ramp_pulses == 0
        out = d.emulator.outputs()
        assert (out[0].amplitude_ma, out[0].frequency_hz, out[0].pulse_width_us) == \
            (6.0, 20.0, 200.0)
        assert out[2].amplitude_ma == 7.5 and out[1].amplitude_ma == 0
        assert heard[-1].kind == "ack"
        await d.close()

    run(body)


def test_an_unchanged_apply_renews_with_a_poll_and_a_changed_one_with_an_update() -> None:
    async def body(d: SimulatedScienceMode4Driver, heard: list[Telemetry], wire: Wire) -> None:
        await d.connect()
        await d.apply(ON, 1.0)
        before = len(commands(wire))
        await d.apply(ON, 1.0)
        assert commands(wire)[before:] == [p.Command.ML_GET_CURRENT_DATA]
        await asyncio.sleep(0.05)
        more = setpoints((7.0, 20.0, 200.0))
        before = len(commands(wire))
        await d.apply(more, 1.0)
        assert commands(wire)[before:] == [p.Command.ML_UPDATE]  # polled 50 ms ago
        await asyncio.sleep(0.3)
        before = len(commands(wire))
        await d.apply(ON, 1.0)  # the last poll is older than 0.25 s: poll, then update
        assert commands(wire)[before:] == [p.Command.ML_GET_CURRENT_DATA, p.Command.ML_UPDATE]
        await d.close()

    run(body)


def test_zero_setpoints_switch_every_channel_off_with_an_empty_update() -> None:
    async def body(d: SimulatedScienceMode4Driver, heard: list[Telemetry], wire: Wire) -> None:
        await d.connect()
        await d.apply(ON, 1.0)
        await d.apply([ZERO] * 8, 1.0)
        last = frames(wire)[-1][1]
        assert isinstance(last, p.MlUpdate) and last.enable_mask == 0
        assert d.emulator.outputs()[0].amplitude_ma == 0
        before = len(commands(wire))
        await d.apply([ZERO] * 8, 1.0)  # nothing runs: nothing to send
        assert len(commands(wire)) == before
        await d.close()

    run(body)


def test_the_contract_ceilings_keep_every_apply_within_the_load_limit() -> None:
    # the P24 refuses blocks whose load sum reaches 1000 (4095 µs at 100 Hz on 8 channels does);
    # emsctl's width ceiling (400 µs) keeps even 8 channels at the P24's 100 Hz below it, and
    # a setpoint past the ceiling never reaches the driver
    from emsctl.drivers.sciencemode4.mapping import channel_config, within_load_limit

    assert not within_load_limit([channel_config(10.0, 4095.0, 100.0)] * 8)
    assert within_load_limit([channel_config(6.0, 400.0, 100.0)] * 8)

    async def body(d: SimulatedScienceMode4Driver, heard: list[Telemetry], wire: Wire) -> None:
        await d.connect()
        before = len(commands(wire))
        with pytest.raises(InputError, match="absolute range"):
            await d.apply([ChannelSetpoint(6.0, 100.0, 4095.0)] * 8, 1.0)
        assert len(commands(wire)) == before
        await d.close()

    run(body)


def test_stop_is_written_at_once_while_an_update_waits_and_wins() -> None:
    async def body(d: SimulatedScienceMode4Driver, heard: list[Telemetry], wire: Wire) -> None:
        await d.connect()
        await d.apply(ON, 1.0)
        d.emulator.reply_extra_delay_s = 0.1  # the next acks are late
        pending = asyncio.ensure_future(d.apply(setpoints((6.5, 20.0, 200.0)), 1.0))
        await asyncio.sleep(0.01)  # the update is on the wire, its ack 90 ms away
        sent = frames(wire)
        assert isinstance(sent[-1][1], p.MlGetCurrentData | p.MlUpdate)
        t_stop = asyncio.get_running_loop().time()
        stop = asyncio.ensure_future(d.stop())
        await asyncio.sleep(0.001)
        after = [(t, m) for t, m in frames(wire) if t >= t_stop]
        assert [type(m) for _, m in after] == [p.MlStop]  # written before any ack came
        await pending
        await stop
        later = [m for t, m in frames(wire) if t >= t_stop]
        assert not any(isinstance(m, p.MlUpdate) for m in later)  # nothing after the stop
        assert all(o.amplitude_ma == 0 for o in d.emulator.outputs())
        assert d.emulator.stim_status == p.StimStatus.NONE
        assert heard[-1].kind == "stopped"
        await d.close()

    run(body, "sim+sciencemode4?reply_delay_s=0.001")


def test_the_host_lease_ends_output_with_ml_stop_when_it_is_not_renewed() -> None:
    async def body(d: SimulatedScienceMode4Driver, heard: list[Telemetry], wire: Wire) -> None:
        await d.connect()
        t0 = asyncio.get_running_loop().time()
        await d.apply(ON, 0.5)
        await asyncio.sleep(1.0)
        stops = [t for t, m in frames(wire) if isinstance(m, p.MlStop)]
        assert stops and stops[0] == pytest.approx(t0 + 0.5, abs=1e-3)
        assert d.recorder is not None
        zero_s = d.recorder.zero_after_s(1, t0)
        assert zero_s is not None and zero_s <= t0 + 0.5 + 0.01
        await d.close()

    run(body)


def test_a_dead_host_leaves_the_device_to_its_own_fixed_2_s_timeout() -> None:
    silenced: list[float] = []

    async def body(d: SimulatedScienceMode4Driver, heard: list[Telemetry], wire: Wire) -> None:
        await d.connect()
        loop = asyncio.get_running_loop()
        await d.apply(ON, 1.0)
        await asyncio.sleep(0.2)
        await d.apply(ON, 1.0)  # the last renewal the device hears
        last_s = loop.time()
        tamper = d.link.pipe.tamper  # type: ignore[attr-defined]

        def dead(direction: str, data: bytes) -> list[tuple[float, bytes]]:
            tamper(direction, data)
            return [] if direction == "host→device" else [(0.0, data)]

        d.link.pipe.tamper = dead  # type: ignore[attr-defined]  # the host is gone
        silenced.append(last_s)
        await asyncio.sleep(3.0)
        assert d.emulator.stim_status == p.StimStatus.MID_LEVEL_INITIALISED
        assert d.recorder is not None
        zero_s = d.recorder.zero_after_s(1, last_s)
        assert zero_s is not None
        assert last_s + DEVICE_TIMEOUT_S - 0.01 <= zero_s <= last_s + DEVICE_TIMEOUT_S + 0.01

    run(body)
    assert silenced


def test_an_electrode_error_becomes_electrode_off_telemetry_on_the_next_poll() -> None:
    async def body(d: SimulatedScienceMode4Driver, heard: list[Telemetry], wire: Wire) -> None:
        await d.connect()
        two = setpoints((6.0, 20.0, 200.0), (6.0, 20.0, 200.0))
        await d.apply(two, 1.0)
        d.emulator.channel_error(2, p.ChannelState.ELECTRODE_ERROR)
        await d.apply(two, 1.0)  # the poll reports it; no update is sent
        off = [t for t in heard if t.kind == "electrode_off"]
        assert [t.channel for t in off] == [2]
        assert commands(wire)[-1] == p.Command.ML_GET_CURRENT_DATA
        assert all(o.amplitude_ma == 0 for o in d.emulator.outputs())  # all stopped
        await d.apply([ZERO] * 8, 1.0)  # the session pauses: nothing runs, nothing to send
        assert commands(wire)[-1] == p.Command.ML_GET_CURRENT_DATA
        await d.close()

    run(body)


@pytest.mark.parametrize(("state", "words"), [
    (p.ChannelState.PULSE_LOW_CURRENT, "pulse low current"),
    (p.ChannelState.PULSE_TIMEOUT, "pulse timeout"),
])
def test_other_channel_errors_are_device_errors(state: p.ChannelState, words: str) -> None:
    async def body(d: SimulatedScienceMode4Driver, heard: list[Telemetry], wire: Wire) -> None:
        await d.connect()
        await d.apply(ON, 1.0)
        d.emulator.channel_error(1, state)
        with pytest.raises(DeviceError, match=words):
            await d.apply(ON, 1.0)
        assert heard[-1].kind == "device_error"
        with pytest.raises(DeviceError, match=words):  # output stays refused
            await d.apply(ON, 1.0)
        await d.close()

    run(body)


def test_a_device_reset_is_reported_and_output_never_resumes() -> None:
    async def body(d: SimulatedScienceMode4Driver, heard: list[Telemetry], wire: Wire) -> None:
        await d.connect()
        await d.apply(ON, 1.0)
        d.emulator.reset()
        with pytest.raises(DeviceError, match="reset"):
            await d.apply(ON, 1.0)
        assert [t.kind for t in heard][-1] == "device_reset"
        assert not any(isinstance(m, p.MlInit) for _, m in frames(wire)[4:])  # no re-init
        assert all(o.amplitude_ma == 0 for o in d.emulator.outputs())
        await d.close()

    run(body)


def test_the_device_timing_out_by_itself_is_a_fault() -> None:
    async def body(d: SimulatedScienceMode4Driver, heard: list[Telemetry], wire: Wire) -> None:
        await d.connect()
        await d.apply(ON, 1.0)
        d.emulator.drop_replies = True  # nothing more reaches the host…
        with pytest.raises(DeviceTimeoutError):
            await d.apply(ON, 1.0)
        d.emulator.drop_replies = False

    run(body)


def test_busy_is_a_fault() -> None:
    async def body(d: SimulatedScienceMode4Driver, heard: list[Telemetry], wire: Wire) -> None:
        await d.connect()
        d.emulator.busy = True
        with pytest.raises(DeviceError, match="result 21"):
            await d.apply(ON, 1.0)
        assert heard[-1].kind == "device_error"
        await d.stop()  # Ml_stop is never busy
        assert heard[-1].kind == "stopped"
        await d.close()

    run(body)


def test_dropped_acks_end_in_a_timeout_and_an_unconfirmed_stop_falls_silent() -> None:
    async def body(d: SimulatedScienceMode4Driver, heard: list[Telemetry], wire: Wire) -> None:
        await d.connect()
        await d.apply(ON, 1.0)
        d.emulator.drop_replies = True
        with pytest.raises(DeviceTimeoutError, match="did not acknowledge Ml_get_current_data"):
            await d.apply(ON, 1.0)
        with pytest.raises(DeviceError, match="2 s timeout ends output"):
            await d.stop()
        stops = [m for _, m in frames(wire) if isinstance(m, p.MlStop)]
        status = [m for _, m in frames(wire)[5:] if isinstance(m, p.GetStimStatus)]
        assert len(stops) == 2 and len(status) == 1  # Ml_stop, once more, Get_stim_status
        before = len(commands(wire))
        await asyncio.sleep(3.0)
        assert len(commands(wire)) == before  # silent: the device's timeout ends output
        assert all(o.amplitude_ma == 0 for o in d.emulator.outputs())
        with pytest.raises(DeviceError):
            await d.close()

    run(body)


def test_a_lost_link_is_reported() -> None:
    async def body(d: SimulatedScienceMode4Driver, heard: list[Telemetry], wire: Wire) -> None:
        await d.connect()
        await d.apply(ON, 1.0)
        await asyncio.sleep(0.1)
        assert heard[-1].kind == "link_lost" and "2 s timeout" in heard[-1].message
        assert not d.emulator.powered  # bus powered: pulling the cable switches it off
        assert all(o.amplitude_ma == 0 for o in d.emulator.outputs())
        with pytest.raises(DeviceError):
            await d.close()

    run(body, "sim+sciencemode4", Fault("disconnect", 0.05))


def test_a_damaged_frame_is_sent_again() -> None:
    flips: list[int] = []

    async def body(d: SimulatedScienceMode4Driver, heard: list[Telemetry], wire: Wire) -> None:
        await d.connect()
        tamper = d.link.pipe.tamper  # type: ignore[attr-defined]

        def damage_once(direction: str, data: bytes) -> list[tuple[float, bytes]]:
            out = tamper(direction, data)
            if direction == "host→device" and not flips:
                flips.append(1)
                return [(0.0, data[:-2] + bytes([data[-2] ^ 0x01]) + data[-1:])]
            return out

        d.link.pipe.tamper = damage_once  # type: ignore[attr-defined]
        await d.apply(ON, 1.0)  # the device answers result 1; the driver sends it again
        assert d.emulator.outputs()[0].amplitude_ma == 6.0
        await d.close()

    run(body)
    assert flips


@pytest.mark.parametrize(("url", "words"), [
    ("sim+sciencemode4:///dev/x", "takes no target"),
    ("sim+sciencemode4?watchdog_s=1", "unknown sim+sciencemode4 parameter(s) watchdog_s"),
    ("sciencemode4:///dev/ttyACM0?ack=1", "unknown sciencemode4 parameter(s) ack"),
    ("sciencemode4:///dev/ttyACM0?ack_timeout_s=0", "ack_timeout_s"),
])
def test_bad_urls_are_refused_with_one_sentence(url: str, words: str) -> None:
    with pytest.raises(InputError, match=re.escape(words)):
        open_device(url)


def test_the_real_driver_refuses_fault_plans_and_opens_no_port() -> None:
    with pytest.raises(InputError, match="only work with the simulator"):
        open_device("sciencemode4:///dev/ttyACM0",
                    OpenOptions(fault_plan=FaultPlan([Fault("disconnect", 1.0)])))
    driver = open_device("sciencemode4:///dev/does-not-exist")
    assert not driver.simulated
    assert driver.calibration_key == "sciencemode4"


@pytest.mark.parametrize("kind", ["battery_low", "strength_change"])
def test_faults_a_p24_cannot_have_are_refused(kind: str) -> None:
    with pytest.raises(InputError, match=f"cannot (inject|carry out).*{kind}"):
        open_device("sim+sciencemode4",
                    OpenOptions(fault_plan=FaultPlan([Fault(kind, 1.0, value=8.0)])))


def test_a_prepared_update_is_the_codecs_ml_update_for_every_packet_number() -> None:
    from emsctl.drivers.sciencemode4 import prepared

    setpoints = (ChannelSetpoint(12.5, 40.0, 200.0), ZERO, ZERO, ZERO,
                 ChannelSetpoint(3.0, 100.0, 4095.0), ZERO, ZERO, ChannelSetpoint(0.5, 2.0, 10.0))
    configs = prepared.blocks(setpoints)
    update = prepared.PreparedUpdate.of(configs)
    assert list(configs) == [1, 5, 8]
    for pn in range(p.MAX_PACKET_NUMBER + 1):  # pn 60: the escaped prefix
        assert update.frame(pn) == p.encode_message(p.MlUpdate.of(pn, configs))
    off = prepared.PreparedUpdate.of({})
    assert off.frame(7) == p.encode_message(p.MlUpdate.of(7, {}))
