"""The emulated RehaStim2, byte for byte against the spec
(docs/protocols/sciencemode2.md §5, §10, §11), in virtual time."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from emsctl.clock import VirtualClock
from emsctl.drivers.sciencemode2 import protocol as p
from emsctl.simulator.devices.sciencemode2 import RehaStim2, RehaStim2Config, rehastim2_spec
from emsctl.simulator.model import SimulatedStimulator

H = bytes.fromhex
# docs/protocols/sciencemode2.md §11: InitAck pn 0, result 0
INIT_ACK_0 = H("F0 81 7F 81 56 00 02 00 0F")
INIT_CLM_40HZ = H("F0 81 EC 81 5C 00 1E 00 03 00 0D 00 30 00 0F")  # ch1+ch2, t1 25 ms
START_PN1 = H("F0 81 A1 81 5F 01 20 00 01 2C 14 01 00 C8 10 0F")  # ch1 20 mA, ch2 doublet 16
STOP_PN7 = H("F0 81 D0 81 57 07 22 0F")
GET_MODE_PN2 = H("F0 81 49 81 57 02 0A 0F")
GET_MODE_XOR = H("F0 81 E5 81 57 02 5F 0F")
WATCHDOG_PN0 = H("F0 81 49 81 57 00 04 0F")


class Bench:
    """An emulator whose replies are decoded into a list."""

    def __init__(self, config: RehaStim2Config | None = None) -> None:
        self.config = config or RehaStim2Config()
        self.device = SimulatedStimulator(rehastim2_spec(self.config))
        self.sent: list[p.Message] = []
        self.raw: list[bytes] = []
        self.log: list[str] = []
        self.emulator = RehaStim2(self.device, self._write, self.config, log=self.log.append)

    def _write(self, wire: bytes) -> None:
        self.raw.append(wire)
        with contextlib.suppress(p.UnknownCommandError):  # MOTOmed acks: checked as raw bytes
            self.sent.append(p.decode_message(wire))

    def replies(self) -> list[p.Message]:
        return [m for m in self.sent if not isinstance(m, p.Init)]

    def output_ma(self, channel: int) -> float:
        return self.device.output_now()[channel - 1].amplitude_ma


def run(body: Callable[[Bench], Coroutine[Any, Any, None]],
        config: RehaStim2Config | None = None) -> Bench:
    bench = Bench(config)

    async def main() -> None:
        bench.emulator.power_on()
        await body(bench)

    VirtualClock().run(main())
    return bench


async def connected(b: Bench) -> None:
    b.emulator.receive(INIT_ACK_0)
    await asyncio.sleep(0.001)


def test_init_is_sent_every_500_ms_until_acknowledged_with_the_spec_frame() -> None:
    async def body(b: Bench) -> None:
        await asyncio.sleep(1.2)
        assert [m.packet_number for m in b.sent] == [0, 1, 2]
        b.emulator.receive(INIT_ACK_0)
        await asyncio.sleep(1.0)
        assert len(b.sent) == 3 and b.emulator.connected

    b = run(body)
    # docs/protocols/sciencemode2.md §11 Init pn 0, version 1
    assert b.raw[0] == H("F0 81 47 81 56 00 01 01 0F")


def test_everything_but_init_ack_is_ignored_while_not_connected() -> None:
    async def body(b: Bench) -> None:
        for frame in (WATCHDOG_PN0, INIT_CLM_40HZ, START_PN1, GET_MODE_PN2,
                      H("F0 81 90 81 56 00 02 FB 0F")):  # InitAck −5 keeps it unconnected
            b.emulator.receive(frame)
        await asyncio.sleep(0.1)
        assert b.replies() == [] and not b.emulator.connected

    run(body)


def test_mode_table_of_section_5() -> None:
    async def body(b: Bench) -> None:
        await connected(b)
        e = b.emulator
        e.receive(START_PN1)                          # mode 0: Start → −3
        e.receive(STOP_PN7)                           # mode 0: Stop → 0
        e.receive(INIT_CLM_40HZ)                      # → mode 1
        e.receive(INIT_CLM_40HZ)                      # mode 1: Init → −3
        e.receive(GET_MODE_PN2)
        e.receive(START_PN1)                          # → mode 2
        e.receive(START_PN1)                          # update, stays 2
        e.receive(H("F0 81 09 81 53 03 24 00 00 FA 1E 0F"))  # SinglePulse in mode 2 → −3
        e.receive(STOP_PN7)                           # → mode 0
        results = [(type(m).__name__, int(m.result)) for m in b.replies()]  # type: ignore[union-attr]
        assert results == [("StartChannelListModeAck", -3), ("StopChannelListModeAck", 0),
                           ("InitChannelListModeAck", 0), ("InitChannelListModeAck", -3),
                           ("GetStimulationModeAck", 0), ("StartChannelListModeAck", 0),
                           ("StartChannelListModeAck", 0), ("SinglePulseAck", -3),
                           ("StopChannelListModeAck", 0)]
        mode_ack = b.replies()[4]
        assert isinstance(mode_ack, p.GetStimulationModeAck) and mode_ack.mode == 1

    run(body)


def test_output_follows_start_after_the_execution_latency_and_stops_on_stop() -> None:
    async def body(b: Bench) -> None:
        await connected(b)
        b.emulator.receive(INIT_CLM_40HZ + START_PN1)
        await asyncio.sleep(0.010)
        assert b.output_ma(1) == 0.0                 # 15 ms execution latency
        await asyncio.sleep(0.010)
        out = b.device.output_now()
        assert (out[0].amplitude_ma, out[0].pulse_width_us, out[0].frequency_hz) == \
            (20.0, 300.0, 40.0)
        assert (out[1].amplitude_ma, out[1].burst_pulses, out[1].frequency_hz) == \
            (16.0, 2, pytest.approx(125.0))           # doublet spaced t2 = 8 ms
        b.emulator.receive(STOP_PN7)
        await asyncio.sleep(0.001)
        assert b.output_ma(1) == 0.0 and b.output_ma(2) == 0.0

    run(body)


def test_watchdog_zeroes_output_exactly_1200_ms_after_the_last_valid_packet() -> None:
    async def body(b: Bench) -> None:
        await connected(b)
        b.emulator.receive(INIT_CLM_40HZ + START_PN1)
        last_s = asyncio.get_running_loop().time()
        await asyncio.sleep(1.19)
        assert b.output_ma(1) == 20.0
        await asyncio.sleep(0.02)
        assert b.output_ma(1) == 0.0 and not b.emulator.connected
        track = b.device.intervals(1)
        assert track["t1_s"][-1] == pytest.approx(last_s + 1.2, abs=1e-9)
        await asyncio.sleep(0.6)
        assert isinstance(b.sent[-1], p.Init)        # back to announcing itself

    run(body)


def test_keepalive_watchdog_frames_keep_the_output_alive() -> None:
    async def body(b: Bench) -> None:
        await connected(b)
        b.emulator.receive(INIT_CLM_40HZ + START_PN1)
        for _ in range(20):
            await asyncio.sleep(0.5)
            b.emulator.receive(WATCHDOG_PN0)
        assert b.output_ma(1) == 20.0 and not any(isinstance(m, p.Init) for m in b.sent[1:])

    run(body)


def test_lenient_watchdog_is_2_s_and_log_only_never_expires() -> None:
    async def lenient(b: Bench) -> None:
        await connected(b)
        await asyncio.sleep(1.9)
        b.emulator.receive(WATCHDOG_PN0)
        assert b.emulator.connected
        assert any("gap" in line for line in b.log)

    run(lenient, RehaStim2Config(profile="lenient"))

    async def log_only(b: Bench) -> None:
        await connected(b)
        b.emulator.receive(INIT_CLM_40HZ + START_PN1)
        await asyncio.sleep(30)
        assert b.emulator.connected and b.output_ma(1) == 20.0

    run(log_only, RehaStim2Config(watchdog_s=math.inf))


def test_bad_crc_gets_the_commands_ack_with_minus_1_and_changes_nothing() -> None:
    async def body(b: Bench) -> None:
        await connected(b)
        b.emulator.receive(INIT_CLM_40HZ)
        bad = bytearray(START_PN1)
        bad[-2] ^= 0x01                               # 16 → 17 mA: CRC no longer matches
        b.emulator.receive(bytes(bad))
        await asyncio.sleep(0.05)
        assert b.output_ma(1) == 0.0
        last = b.replies()[-1]
        assert isinstance(last, p.StartChannelListModeAck) and last.result == -1
        assert last.packet_number == 1

    run(body)


def test_parameter_checks_give_minus_2_and_leave_the_state_unchanged() -> None:
    async def body(b: Bench) -> None:
        await connected(b)
        e = b.emulator
        # strict: t2 code 1 (2 ms) is below the 8 ms firmware minimum
        e.receive(p.encode_message(p.InitChannelListMode(
            packet_number=3, low_frequency_factor=0, active_channel_mask=1,
            low_frequency_channel_mask=0, inter_pulse_interval_code=1, main_interval_code=48)))
        assert e.mode == 0
        e.receive(INIT_CLM_40HZ)
        # two channels active: a Start with one channel's 4 bytes is the wrong count
        e.receive(p.encode_message(p.StartChannelListMode(
            packet_number=4, channel_settings=(p.ChannelSettings(p.PulseGroup.SINGLE, 200, 10),))))
        # current 131 mA: out of range (built by hand: the codec refuses to encode it)
        e.receive(p.encode_frame(bytes((5, 32, 0, 1, 0x2C, 131, 0, 0, 0xC8, 10))))
        await asyncio.sleep(0.05)
        results = [int(m.result) for m in b.replies()]  # type: ignore[union-attr]
        assert results == [-2, 0, -2, -2]
        assert e.mode == 1 and b.output_ma(1) == 0.0

    run(body)


def test_lenient_profile_clamps_short_t2_and_reads_xored_get_mode() -> None:
    async def body(b: Bench) -> None:
        await connected(b)
        e = b.emulator
        e.receive(p.encode_message(p.InitChannelListMode(
            packet_number=3, low_frequency_factor=0, active_channel_mask=1,
            low_frequency_channel_mask=0, inter_pulse_interval_code=1, main_interval_code=48)))
        e.receive(GET_MODE_XOR)
        acks = b.replies()
        assert int(acks[0].result) == 0  # type: ignore[union-attr]
        assert isinstance(acks[1], p.GetStimulationModeAck) and acks[1].mode == 1
        assert e.clm is not None and e.clm.inter_pulse_interval_code == 13
        assert any("clamped" in line for line in b.log)

    run(body, RehaStim2Config(profile="lenient"))


def test_strict_profile_answers_the_xored_command_with_unknown_command() -> None:
    async def body(b: Bench) -> None:
        await connected(b)
        b.emulator.receive(GET_MODE_XOR)
        # docs/protocols/sciencemode2.md §11 UnknownCommand vector
        assert b.raw[-1] == H("F0 81 26 81 56 02 03 5F 0F")

    run(body)


def test_busy_answers_minus_8_but_stop_always_goes_through() -> None:
    async def body(b: Bench) -> None:
        await connected(b)
        b.emulator.receive(INIT_CLM_40HZ + START_PN1)
        await asyncio.sleep(0.02)
        b.emulator.busy = True
        b.emulator.receive(START_PN1 + GET_MODE_PN2 + STOP_PN7)
        await asyncio.sleep(0.001)
        assert [int(m.result) for m in b.replies()[-3:]] == [-8, -8, 0]  # type: ignore[union-attr]
        short = b.replies()[-2]
        assert isinstance(short, p.GetStimulationModeAck) and short.mode is None  # short form
        assert b.output_ma(1) == 0.0

    run(body)


def test_electrode_off_on_a_running_channel_sends_stimulation_error_minus_2() -> None:
    async def body(b: Bench) -> None:
        await connected(b)
        b.emulator.receive(INIT_CLM_40HZ + START_PN1)
        await asyncio.sleep(0.02)
        b.device.electrode_off(1)
        assert b.output_ma(1) == 0.0 and b.output_ma(2) == 0.0
        error = b.sent[-1]
        assert isinstance(error, p.StimulationError) and error.error == -2
        # the link stays up (docs/protocols/sciencemode2.md §5)
        assert b.emulator.mode == 0 and b.emulator.connected

    run(body)


def test_reset_stops_output_and_starts_announcing_again() -> None:
    async def body(b: Bench) -> None:
        await connected(b)
        b.emulator.receive(INIT_CLM_40HZ + START_PN1)
        await asyncio.sleep(0.02)
        b.emulator.reset()
        assert b.output_ma(1) == 0.0 and not b.emulator.connected
        assert isinstance(b.sent[-1], p.Init) and b.sent[-1].packet_number == 0

    run(body)


def test_motomed_commands_get_minus_4_and_get_motomed_mode_reports_none() -> None:
    async def body(b: Bench) -> None:
        await connected(b)
        b.emulator.receive(p.encode_frame(bytes((9, 50))) + p.encode_frame(bytes((10, 12))))
        assert b.raw[-2] == p.encode_frame(bytes((9, 51, 0xFC)))
        assert b.raw[-1] == p.encode_frame(bytes((10, 13, 0, 0xFF)))

    run(body)
