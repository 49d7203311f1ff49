"""The emulated P24, byte for byte against docs/protocols/sciencemode4.md §5–§9, §12, in
virtual time: requests are built by the codec (or copied from the docs/protocols/sciencemode4.md §12
vectors), replies are compared with the vectors or decoded, and output is read from the
SimulatedStimulator."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emsctl.clock import VirtualClock
from emsctl.drivers.sciencemode4 import protocol as p
from emsctl.drivers.sciencemode4.protocol import ChannelState, Result, StimStatus
from emsctl.errors import InputError
from emsctl.simulator.body import BodyModel
from emsctl.simulator.devices.sciencemode4 import ML_TIMEOUT_S, P24, P24Config, p24_spec
from emsctl.simulator.faults import Fault, FaultPlan
from emsctl.simulator.model import SimulatedStimulator
from emsctl.simulator.recorder import Recorder

H = bytes.fromhex
# docs/protocols/sciencemode4.md §12 host frames
T1_GET_STIM_STATUS = H("F0 81 55 81 59 81 4E 81 0C 04 3E 0F")
T2_GET_DEVICE_ID = H("F0 81 55 81 59 81 AA 81 2B 08 34 0F")
T3_GET_VERSION = H("F0 81 55 81 59 81 18 81 78 0C 44 0F")
T4_ML_INIT = H("F0 81 55 81 58 81 36 81 4A 10 1E 00 0F")
T5_ML_INIT_STOP_ALL = H("F0 81 55 81 58 81 26 81 6B 10 1E 01 0F")
T6_ML_UPDATE = H("F0 81 55 81 4D 81 69 81 4B 14 20 01 10 00 64 0C 85 50 00 0C 84 10 00 0F")
T7_ML_UPDATE_2CH = H("F0 81 55 81 76 81 1C 81 ED 18 20 03 10 00 64 0C 85 50 00 0C 84 10 00 10 "
                     "00 64 0C 85 50 00 0C 84 10 00 0F")
T8_ML_UPDATE_EXAMPLE = H("F0 81 55 81 7E 81 01 81 8A 14 20 03 23 00 50 0C 85 50 00 06 44 B0 00 "
                         "0C 84 10 00 23 00 28 06 45 00 00 06 44 B0 00 06 44 60 00 0F")
T9_ML_UPDATE_CH5 = H("F0 81 55 81 4D 81 E6 81 C3 24 20 10 10 00 64 0C 85 74 00 0C 83 EC 00 0F")
T10_GET_DATA = H("F0 81 55 81 58 81 E9 81 F1 1C 24 04 0F")
T11_GET_DATA_PN60 = H("F0 81 55 81 5B 81 22 81 13 81 A5 24 04 0F")
T12_ML_STOP = H("F0 81 55 81 59 81 57 81 93 20 22 0F")
T13_LL_INIT = H("F0 81 55 81 58 81 0F 81 53 24 00 00 0F")
T14_LL_CONFIG = H("F0 81 55 81 43 81 3C 81 43 28 02 81 D4 0C 85 50 00 0C 84 10 00 0F")
T15_LL_STOP = H("F0 81 55 81 59 81 56 81 5A 2C 04 0F")
T16_RESET = H("F0 81 55 81 59 81 C7 81 D9 30 3A 0F")
# docs/protocols/sciencemode4.md §12 device frames
A1 = H("F0 81 55 81 5A 81 34 81 75 04 3F 00 00 01 0F")
A2 = H("F0 81 55 81 42 81 E8 81 D0 08 35 00 50 32 34 45 4D 55 30 30 30 31 0F")
A3 = H("F0 81 55 81 4C 81 CF 81 74 0C 45 00 01 00 00 04 00 00 12 34 56 78 01 01 0F")
A4 = H("F0 81 55 81 58 81 05 81 7B 10 1F 00 0F")
A5 = H("F0 81 55 81 58 81 FF 81 21 14 21 00 0F")
A6 = H("F0 81 55 81 58 81 DF 81 63 14 21 02 0F")
A7 = H("F0 81 55 81 58 81 8F 81 C6 14 21 07 0F")
A8 = H("F0 81 55 81 46 81 68 81 1E 1C 25 00 04 03 00 00 00 00 0F")
A9 = H("F0 81 55 81 46 81 C4 81 74 1C 25 0A 04 01 10 00 00 00 0F")
A10 = H("F0 81 55 81 58 81 80 81 26 20 23 00 0F")
A11 = H("F0 81 55 81 58 81 3C 81 62 24 01 00 0F")
A12 = H("F0 81 55 81 5A 81 C4 81 10 28 03 00 00 00 0F")
A13 = H("F0 81 55 81 58 81 59 81 07 2C 05 00 0F")
A14 = H("F0 81 55 81 58 81 A5 81 C4 34 43 0B 0F")
A15 = H("F0 81 55 81 58 81 2E 81 DA 00 42 01 0F")


def frame(pn: int, command: int, data: bytes = b"") -> bytes:
    return p.encode_frame(p.command_prefix(pn, command) + data)


def update(pn: int, configs: dict[int, p.MlChannelConfig]) -> bytes:
    return p.encode_message(p.MlUpdate.of(pn, configs))


def block(current_ma: float, period_ms: float = 25, width_us: int = 200,
          ramp: int = 0) -> p.MlChannelConfig:
    points = (p.Point.of(width_us, current_ma), p.Point.of(width_us, -current_ma))
    return p.MlChannelConfig(points, p.Period.from_ms(period_ms), ramp)


def get_data(pn: int, selection: int = 4) -> bytes:
    return p.encode_message(p.MlGetCurrentData(packet_number=pn, data_selection=selection))


class Bench:
    """An emulated P24 whose replies are kept raw and decoded."""

    def __init__(self, impedance_ohm: float = 1000.0, config: P24Config | None = None) -> None:
        self.device = SimulatedStimulator(p24_spec(config), BodyModel(8, impedance_ohm))
        self.raw: list[bytes] = []
        self.log: list[str] = []
        self.p24 = P24(self.device, self.raw.append, config, log=self.log.append)

    @property
    def replies(self) -> list[p.Message]:
        return [p.decode_message(wire) for wire in self.raw]

    def last(self) -> p.Message:
        return p.decode_message(self.raw[-1])

    def results(self) -> list[int]:
        return [int(m.result) for m in self.replies if isinstance(m, p.AckBase)]

    def send(self, *wires: bytes) -> None:
        for wire in wires:
            self.p24.receive(wire)

    def ma(self, channel: int) -> float:
        return self.device.output_now()[channel - 1].amplitude_ma

    @staticmethod
    def now() -> float:
        return asyncio.get_running_loop().time()


def run(body: Callable[[Bench], Coroutine[Any, Any, None]], bench: Bench | None = None) -> Bench:
    b = bench or Bench()

    async def main() -> None:
        b.p24.power_on()
        await body(b)

    VirtualClock().run(main())
    return b


async def running(b: Bench, init: bytes = T4_ML_INIT, start: bytes = T7_ML_UPDATE_2CH) -> None:
    b.send(init, start)
    await asyncio.sleep(0)


# --- docs/protocols/sciencemode4.md §10 step 2 and §12: the exact replies
# -------------------------------------------------------------


def test_identification_replies_are_the_spec_frames_and_nothing_is_sent_unasked():
    async def body(b: Bench) -> None:
        await asyncio.sleep(5.0)
        assert b.raw == []  # no banner, no unsolicited frame
        b.send(T1_GET_STIM_STATUS, T2_GET_DEVICE_ID, T3_GET_VERSION)
        assert b.raw == [A1, A2, A3]

    run(body)


def test_the_mid_level_example_session_gives_the_spec_replies():
    async def body(b: Bench) -> None:
        b.send(T4_ML_INIT)
        assert b.raw[-1] == A4
        b.send(T8_ML_UPDATE_EXAMPLE)
        assert b.raw[-1] == A5
        await asyncio.sleep(0.1)
        b.send(T10_GET_DATA)
        assert b.raw[-1] == A8  # channels 1 and 2 active
        b.send(T12_ML_STOP)
        assert b.raw[-1] == A10
        assert (b.ma(1), b.ma(2), b.p24.stim_status) == (0.0, 0.0, StimStatus.NONE)

    run(body)


def test_low_level_session_gives_the_spec_replies_and_acks_after_the_pulse():
    async def body(b: Bench) -> None:
        b.send(T13_LL_INIT)
        assert b.raw[-1] == A11
        b.send(T14_LL_CONFIG)
        assert b.ma(1) == 20.0 and b.raw[-1] == A11  # the ack waits for the pulse
        await asyncio.sleep(0.00039)
        assert b.raw[-1] == A11
        await asyncio.sleep(0.00002)
        assert b.raw[-1] == A12 and b.ma(1) == 0.0
        b.send(T15_LL_STOP)
        assert b.raw[-1] == A13 and b.p24.stim_status == StimStatus.NONE

    b = run(body)
    pulses = Recorder(b.device).pulses(1)
    assert len(pulses) == 1 and pulses["pulse_width_us"][0] == 200.0


def test_unknown_commands_get_unknown_cmd_with_the_echoed_packet_number():
    async def body(b: Bench) -> None:
        b.send(frame(13, 54))  # a battery query the P24 does not have
        assert b.raw[-1] == A14
        for command in (37, 38, 31, 100, 106, 50, 64, 1023):  # acks and other devices' numbers
            b.send(frame(9, command, b"\x04"))
            assert b.last() == p.UnknownCommand(packet_number=9)

    run(body)


def test_transfer_errors_get_the_commands_ack_or_general_error_zero_filled():
    async def body(b: Bench) -> None:
        b.send(T4_ML_INIT)
        bad = bytearray(T6_ML_UPDATE)
        bad[-3] ^= 0x01
        b.send(bytes(bad))
        assert b.last() == p.MlUpdateAck(packet_number=5, result=Result.TRANSFER_ERROR)
        assert b.ma(1) == 0.0
        bad = bytearray(T10_GET_DATA)
        bad[4] ^= 0x01  # LEN
        b.send(bytes(bad))
        assert len(b.raw[-1]) == 19
        assert b.last() == p.MlGetCurrentDataAck.refusal(7, Result.TRANSFER_ERROR)
        bad = bytearray(frame(0, 54))  # a battery query the P24 does not have …
        bad[8] ^= 0x01  # … with a CRC error
        b.send(bytes(bad))
        assert b.raw[-1] == A15

    run(body)


def test_malformed_frames_are_dropped_without_a_reply():
    async def body(b: Bench) -> None:
        b.send(b"\x00\x0f\x81\x55hello\r\n")  # outside a frame
        b.send(H("F0 81 55 55 59 81 4E 81 0C 04 3E 0F"))  # header byte 3 not 81
        b.send(T1_GET_STIM_STATUS[:10] + T1_GET_STIM_STATUS)  # interrupted, then whole
        b.send(H("F0 81 55 81 5E 81 56 81 55 0F"))  # no prefix
        b.send(b"\xf0" + b"\x00" * 1300)  # oversized
        assert b.raw == [A1]

    run(body)


def test_packet_numbers_are_echoed_including_the_escaped_prefix_of_pn_60():
    async def body(b: Bench) -> None:
        await running(b)
        b.send(T11_GET_DATA_PN60)
        reply = b.last()
        assert reply.packet_number == 60 and reply.command == 37

    run(body)


# --- docs/protocols/sciencemode4.md §9: the level state machine
# ------------------------------------------------------------------

REQUESTS = {
    "ml_init": T4_ML_INIT, "ml_update": T6_ML_UPDATE, "ml_data": T10_GET_DATA,
    "ml_stop": T12_ML_STOP, "ll_init": T13_LL_INIT, "ll_config": T14_LL_CONFIG,
    "ll_stop": T15_LL_STOP, "status": T1_GET_STIM_STATUS,
}
SETUP = {"none": [], "ll": [T13_LL_INIT], "ml_init": [T4_ML_INIT],
         "ml_run": [T4_ML_INIT, T6_ML_UPDATE]}
N, LL, MI, MR = (StimStatus.NONE, StimStatus.LOW_LEVEL, StimStatus.MID_LEVEL_INITIALISED,
                 StimStatus.MID_LEVEL_RUNNING)
TABLE = [  # (state, request, result, next state)
    ("none", "ml_init", 0, MI), ("ll", "ml_init", 7, LL), ("ml_init", "ml_init", 0, MI),
    ("ml_run", "ml_init", 0, MI),
    ("none", "ml_update", 7, N), ("ll", "ml_update", 7, LL), ("ml_init", "ml_update", 0, MR),
    ("ml_run", "ml_update", 0, MR),
    ("none", "ml_data", 7, N), ("ll", "ml_data", 7, LL), ("ml_init", "ml_data", 0, MI),
    ("ml_run", "ml_data", 0, MR),
    ("none", "ml_stop", 0, N), ("ll", "ml_stop", 7, LL), ("ml_init", "ml_stop", 0, N),
    ("ml_run", "ml_stop", 0, N),
    ("none", "ll_init", 0, LL), ("ll", "ll_init", 0, LL), ("ml_init", "ll_init", 7, MI),
    ("ml_run", "ll_init", 7, MR),
    ("none", "ll_config", 7, N), ("ll", "ll_config", 0, LL), ("ml_init", "ll_config", 7, MI),
    ("ml_run", "ll_config", 7, MR),
    ("none", "ll_stop", 0, N), ("ll", "ll_stop", 0, N), ("ml_init", "ll_stop", 7, MI),
    ("ml_run", "ll_stop", 7, MR),
    ("none", "status", 0, N), ("ll", "status", 0, LL), ("ml_init", "status", 0, MI),
    ("ml_run", "status", 0, MR),
]


@pytest.mark.parametrize(("state", "request_name", "result", "after"), TABLE,
                         ids=[f"{s}-{r}" for s, r, *_ in TABLE])
def test_state_table_of_section_9(state, request_name, result, after):
    async def body(b: Bench) -> None:
        b.send(*SETUP[state])
        count = len(b.raw)
        b.send(REQUESTS[request_name])
        await asyncio.sleep(0.01)  # a low-level pulse is acked after it ran
        assert len(b.raw) == count + 1
        reply = b.last()
        assert isinstance(reply, p.AckBase) and int(reply.result) == result
        assert b.p24.stim_status == after
        if result == 7:
            assert len(b.raw[-1]) == len(p.encode_message(p.refusal(
                reply.command - 1, 0, Result.OK)))  # the success layout

    run(body)


def test_a_refused_update_before_ml_init_is_the_spec_frame():
    async def body(b: Bench) -> None:
        b.send(T6_ML_UPDATE)
        assert b.raw == [A7]

    run(body)


def test_stim_status_reports_level_and_high_voltage_code():
    async def body(b: Bench) -> None:
        statuses = []
        for setup in ([], [T4_ML_INIT], [T6_ML_UPDATE], [T12_ML_STOP],
                      [p.encode_message(p.LlInit(packet_number=1, high_voltage_code=1))],
                      [p.encode_message(p.LlInit(packet_number=2, high_voltage_code=3))]):
            b.send(*setup, T1_GET_STIM_STATUS)
            reply = b.last()
            assert isinstance(reply, p.GetStimStatusAck)
            statuses.append((int(reply.stim_status), reply.high_voltage))
        assert statuses == [(0, 1), (2, 6), (3, 6), (0, 1), (1, 1), (1, 3)]

    run(body)


def test_an_update_with_mask_0_stops_output_and_falls_back_to_initialised():
    async def body(b: Bench) -> None:
        await running(b)
        b.send(update(9, {}))
        assert b.results()[-1] == 0 and b.p24.stim_status == MI
        assert (b.ma(1), b.ma(2)) == (0.0, 0.0)

    run(body)


def test_a_channel_left_out_of_an_update_stops_and_the_other_runs_on():
    async def body(b: Bench) -> None:
        await running(b)
        b.send(T6_ML_UPDATE)
        assert (b.ma(1), b.ma(2)) == (20.0, 0.0)
        b.send(get_data(3))
        data = b.last()
        assert isinstance(data, p.MlGetCurrentDataAck) and data.active_mask == 0x01

    run(body)


# --- range checks (docs/protocols/sciencemode4.md §8)
# ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "request_wire",
    [
        frame(5, 32, H("01 10 00 00") + H("0C 85 50 00 0C 84 10 00")),  # period code 0
        frame(5, 32, H("01 10 FF FE") + H("0C 85 50 00 0C 84 10 00")),  # 16383.5 ms
        frame(5, 32, H("01 10 00 64") + H("0C 88 C4 00 0C 81 DC 00")),  # ±131 mA (codes 562/38)
        frame(5, 32, H("01 00 00 64") + H("0C 89 64 00")),  # code 601: not even a wire value
        update(5, {1: p.MlChannelConfig((p.Point.of(440, 10),), p.Period(1))}),  # load 1000
        update(5, {ch: block(10, 1.0, 200) for ch in (1, 2, 3)}),  # load 460·3 > 1000
        frame(5, 32, H("03 00 00 64 0C 85 50 00")),  # mask names 2 channels, 1 block
        frame(5, 32, b""),  # no mask
    ],
)
def test_out_of_range_updates_get_result_2_and_change_nothing(request_wire):
    async def body(b: Bench) -> None:
        b.send(T4_ML_INIT, request_wire)
        assert b.raw[-1] == A6  # Ml_update_ack pn 5: parameter error
        assert b.p24.stim_status == MI and b.ma(1) == 0.0

    run(body)


def test_the_device_accepts_the_edges_of_its_ranges():
    async def body(b: Bench) -> None:
        b.send(T4_ML_INIT, update(5, {1: p.MlChannelConfig(
            (p.Point.of(100, 130), p.Point.of(100, -130)), p.Period(32766))}))
        assert b.raw[-1] == A5
        b.send(update(5, {1: p.MlChannelConfig((p.Point.of(439, 10),), p.Period(1))}))
        assert b.raw[-1] == A5

    run(body)


def test_wrong_lengths_get_result_2_or_1_where_the_ack_has_no_2():
    async def body(b: Bench) -> None:
        b.send(frame(1, 30, b"\x01\x00"), frame(2, 36, b""), frame(3, 62, b"\x00"),
               frame(4, 34, b"\x00"), frame(5, 52, b"\x00"))
        assert b.results() == [2, 7, 1, 1, 1]  # 36 before Ml_init: not initialised first
        b.send(T4_ML_INIT, frame(6, 36, b""))
        assert b.results()[-1] == 2
        assert b.p24.stim_status == MI

    run(body)


def test_ll_init_high_voltage_code_7_and_pulses_over_130_ma_are_parameter_errors():
    async def body(b: Bench) -> None:
        b.send(p.encode_message(p.LlInit(packet_number=1, high_voltage_code=7)))
        assert b.results()[-1] == 2 and b.p24.stim_status == N
        b.send(T13_LL_INIT, p.encode_message(p.LlChannelConfig(
            packet_number=2, execute=True, connector=1, channel_in_connector=2,
            points=(p.Point.of(100, 130.5),))))
        ack = b.last()
        assert isinstance(ack, p.LlChannelConfigAck) and ack.result == 2
        assert (ack.connector, ack.channel_in_connector) == (1, 2)

    run(body)


# --- the 2 s mid-level timeout (docs/protocols/sciencemode4.md §9)
# ---------------------------------------------------------------


def test_silence_stops_output_exactly_2_s_after_the_last_update_and_update_restarts():
    async def body(b: Bench) -> None:
        await running(b)
        t0 = b.now()
        await asyncio.sleep(1.99)
        assert b.ma(1) == 20.0
        await asyncio.sleep(0.02)
        assert (b.ma(1), b.ma(2)) == (0.0, 0.0)
        assert b.p24.stim_status == MI and len(b.raw) == 2  # no frame on timeout
        assert b.device.intervals(1)["t1_s"][-1] == pytest.approx(t0 + ML_TIMEOUT_S, abs=1e-9)
        b.send(T10_GET_DATA)
        data = b.last()
        assert isinstance(data, p.MlGetCurrentDataAck)
        assert (data.result, data.active_mask, data.channel_states) == (0, 0, (0,) * 8)
        b.send(T6_ML_UPDATE)
        assert b.p24.stim_status == MR and b.ma(1) == 20.0

    b = run(body)
    assert len(b.raw) == 4 and any("timeout" in line for line in b.log)


def test_get_current_data_keeps_output_alive_and_general_commands_do_not():
    async def body(b: Bench) -> None:
        await running(b)
        for pn in range(10):
            await asyncio.sleep(1.5)
            b.send(get_data(pn))
        assert b.ma(1) == 20.0 and b.p24.stim_status == MR
        for _ in range(3):
            await asyncio.sleep(0.9)
            b.send(T1_GET_STIM_STATUS, T2_GET_DEVICE_ID)
        assert b.ma(1) == 0.0 and b.p24.stim_status == MI

    run(body)


def test_a_refused_data_selection_is_no_keep_alive():
    async def body(b: Bench) -> None:
        await running(b)
        await asyncio.sleep(1.5)
        b.send(get_data(1, selection=5))
        reply = b.last()
        assert reply == p.MlGetCurrentDataAck.refusal(1, Result.PARAMETER_ERROR, 5)
        await asyncio.sleep(0.6)
        assert b.ma(1) == 0.0

    run(body)


# --- output model ---------------------------------------------------------------------------------


def test_ramp_pulses_rise_linearly_then_full_current_per_channel_period():
    async def body(b: Bench) -> None:
        b.send(T4_ML_INIT, T8_ML_UPDATE_EXAMPLE)
        await asyncio.sleep(0.5)

    b = run(body)
    ch1 = b.device.intervals(1)
    ch2 = b.device.intervals(2)
    assert list(ch1["amplitude_ma"][:4]) == [5.0, 10.0, 15.0, 20.0]  # 20 mA, ramp 3
    assert list(ch2["amplitude_ma"][:4]) == [2.5, 5.0, 7.5, 10.0]  # 10 mA, ramp 3
    assert list(ch1["t0_s"][1:4] - ch1["t0_s"][0]) == pytest.approx([0.02, 0.04, 0.06])
    assert list(ch2["t0_s"][1:4] - ch2["t0_s"][0]) == pytest.approx([0.01, 0.02, 0.03])
    assert ch1["frequency_hz"][3] == 50.0 and ch2["frequency_hz"][3] == 100.0
    assert ch1["pulse_width_us"][3] == 200.0 and ch2["pulse_width_us"][3] == 100.0


def test_a_changed_pattern_applies_from_the_channels_next_period_without_a_new_ramp():
    async def body(b: Bench) -> None:
        b.send(T4_ML_INIT, update(1, {1: block(20, ramp=2)}))
        t0 = b.now()
        await asyncio.sleep(0.010)
        b.send(update(2, {1: block(30, period_ms=40)}))
        assert b.ma(1) == pytest.approx(20 / 3)
        await asyncio.sleep(0.016)  # past t0 + 25 ms: second pulse, at 2/3 of the new 30 mA
        assert b.ma(1) == pytest.approx(20.0)
        await asyncio.sleep(0.040)  # third pulse at t0 + 65 ms: full
        assert b.ma(1) == 30.0
        track = b.device.intervals(1)
        assert list(track["t0_s"][:3] - t0) == pytest.approx([0, 0.025, 0.065])

    run(body)


def test_delivered_pulses_follow_the_period():
    async def body(b: Bench) -> None:
        b.send(T4_ML_INIT, T9_ML_UPDATE_CH5)
        await asyncio.sleep(1.0)
        b.send(T12_ML_STOP)

    b = run(body)
    pulses = Recorder(b.device).pulses(5)
    assert len(pulses) == 40  # 25 ms period for 1 s
    assert set(pulses["amplitude_ma"]) == {24.5}


# --- channel errors (docs/protocols/sciencemode4.md §9)
# --------------------------------------------------------------------------


def test_electrode_off_stops_only_its_channel_and_is_reported_as_the_spec_frame():
    async def body(b: Bench) -> None:
        await running(b)
        b.device.electrode_off(2)
        assert (b.ma(1), b.ma(2)) == (20.0, 0.0)
        b.send(T10_GET_DATA)
        assert b.raw[-1] == A9  # result 10, ch1 active, ch2 electrode error
        b.send(T10_GET_DATA)
        assert b.raw[-1] == A9  # the state persists …
        b.device.electrode_on(2)
        b.send(T7_ML_UPDATE_2CH, T10_GET_DATA)
        assert b.raw[-1] == A8  # … until the next Ml_update

    run(body)


def test_with_stop_all_every_channel_stops_and_the_device_is_initialised_again():
    async def body(b: Bench) -> None:
        await running(b, init=T5_ML_INIT_STOP_ALL)
        b.device.electrode_off(2)
        assert (b.ma(1), b.ma(2)) == (0.0, 0.0)
        assert b.p24.stim_status == MI
        b.send(T10_GET_DATA)
        data = b.last()
        assert isinstance(data, p.MlGetCurrentDataAck)
        assert (data.result, data.active_mask) == (Result.ELECTRODE_ERROR, 0)
        assert data.channel_states[:2] == (ChannelState.OK, ChannelState.ELECTRODE_ERROR)
        b.send(T4_ML_INIT, T10_GET_DATA)
        assert b.last() == p.MlGetCurrentDataAck(packet_number=7, result=Result.OK)  # cleared

    run(body)


def test_a_pad_without_load_fails_its_channel_at_start():
    async def body(b: Bench) -> None:
        b.device.electrode_off(1)
        b.send(T4_ML_INIT, update(5, {1: block(20), 2: block(20)}))
        assert b.raw[-1] == A5  # the update itself is accepted
        assert (b.ma(1), b.ma(2)) == (0.0, 20.0)
        b.send(get_data(1))
        data = b.last()
        assert isinstance(data, p.MlGetCurrentDataAck)
        assert (data.result, data.active_mask) == (Result.ELECTRODE_ERROR, 0x02)

    run(body)


def test_too_little_voltage_for_the_current_is_pulse_low_current():
    async def body(b: Bench) -> None:
        b.send(T4_ML_INIT, update(1, {3: block(130)}))  # 130 mA · 2 kΩ = 260 V > 150 V
        b.send(get_data(2))
        data = b.last()
        assert isinstance(data, p.MlGetCurrentDataAck)
        assert data.result == Result.PULSE_LOW_CURRENT
        assert data.channel_states[2] == ChannelState.PULSE_LOW_CURRENT

    run(body, Bench(impedance_ohm=2000.0))


def test_injected_errors_report_the_lowest_faulty_channels_code():
    async def body(b: Bench) -> None:
        b.send(T4_ML_INIT, update(1, {ch: block(10) for ch in (3, 5, 6)}))
        b.p24.channel_error(6, ChannelState.PULSE_LOW_CURRENT)
        b.p24.channel_error(5, ChannelState.PULSE_TIMEOUT)
        b.send(get_data(2))
        data = b.last()
        assert isinstance(data, p.MlGetCurrentDataAck)
        assert (data.result, data.active_mask) == (Result.PULSE_TIMEOUT, 0x04)
        assert data.channel_states[4:6] == (2, 3)
        with pytest.raises(InputError):
            b.p24.channel_error(9, ChannelState.PULSE_TIMEOUT)

    run(body)


def test_legacy_data_selections_2_and_3():
    async def body(b: Bench) -> None:
        b.send(T4_ML_INIT, update(1, {ch: block(10) for ch in (1, 2, 6)}))
        b.device.electrode_off(6)
        b.send(get_data(2, selection=2), get_data(3, selection=3))
        two, three = b.replies[-2:]
        assert len(b.raw[-2]) == 15 and len(b.raw[-1]) == 16
        assert two == p.MlGetCurrentDataLegacyAck(packet_number=2, result=Result.ELECTRODE_ERROR,
                                                  data_selection=2, running=True,
                                                  electrode_error_mask=0)
        assert three == p.MlGetCurrentDataLegacyAck(
            packet_number=3, result=Result.ELECTRODE_ERROR, data_selection=3, running=True,
            electrode_error_mask=0x20)

    run(body)


# --- low level (docs/protocols/sciencemode4.md §7)
# -------------------------------------------------------------------------------


def ll_pulse(pn: int, channel: int, current_ma: float = 10.0, width_us: int = 100) -> bytes:
    connector, within = p.connector_from_channel(channel)
    return p.encode_message(p.LlChannelConfig(
        packet_number=pn, execute=True, connector=connector, channel_in_connector=within,
        points=(p.Point.of(width_us, current_ma), p.Point.of(width_us, -current_ma))))


def test_buffered_pulses_run_one_after_the_other_and_the_eleventh_is_refused():
    async def body(b: Bench) -> None:
        b.send(T13_LL_INIT)
        b.send(*[ll_pulse(pn, 1 + pn % 8) for pn in range(1, 12)])
        assert b.results() == [0, 2]  # Ll_init, then the 11th config at once
        await asyncio.sleep(0.00199)
        assert len(b.raw) == 11  # 9 pulses of 200 µs done
        await asyncio.sleep(0.00002)
        acks = [m for m in b.replies if isinstance(m, p.LlChannelConfigAck)]
        assert [a.packet_number for a in acks] == [11, *range(1, 11)]
        assert [a.channel for a in acks[1:]] == [1 + pn % 8 for pn in range(1, 11)]

    run(body)


def test_low_level_without_voltage_or_load_reports_the_pulse_as_failed():
    async def body(b: Bench) -> None:
        b.send(p.encode_message(p.LlInit(packet_number=1, high_voltage_code=1)), ll_pulse(2, 1))
        await asyncio.sleep(0.001)
        assert b.results()[-1] == Result.PULSE_LOW_CURRENT and b.device.intervals(1).size <= 1
        b.send(T13_LL_INIT)
        b.device.electrode_off(3)
        b.send(ll_pulse(3, 3))
        await asyncio.sleep(0.001)
        assert b.results()[-1] == Result.ELECTRODE_ERROR

    run(body)


def test_config_without_execute_is_acked_at_once_and_measurement_acks_are_273_bytes():
    async def body(b: Bench) -> None:
        b.send(p.encode_message(p.LlInit(packet_number=1,
                                         measurement=p.MeasurementType.STIMULATION_CURRENT)))
        b.send(p.encode_message(p.LlChannelConfig(packet_number=2, execute=False, connector=0,
                                                  channel_in_connector=0, points=())))
        assert len(b.raw[-1]) == 273 and b.results()[-1] == 0
        b.send(ll_pulse(3, 5))
        await asyncio.sleep(0.001)
        ack = b.last()
        assert isinstance(ack, p.LlChannelConfigAck) and len(ack.samples) == 128
        assert ack.measurement == p.MeasurementType.STIMULATION_CURRENT and ack.channel == 5

    run(body)


# --- fault hooks ----------------------------------------------------------------------------------


def test_busy_answers_21_to_all_but_the_stops_which_always_go_through():
    async def body(b: Bench) -> None:
        await running(b)
        b.p24.busy = True
        b.send(T10_GET_DATA, T1_GET_STIM_STATUS, T6_ML_UPDATE, T12_ML_STOP)
        assert b.results()[-4:] == [21, 21, 21, 0]
        assert len(b.raw[-4]) == 19 and len(b.raw[-3]) == 15  # the success layouts
        assert b.ma(1) == 0.0 and b.p24.stim_status == N

    run(body)


def test_dropped_and_late_replies():
    async def body(b: Bench) -> None:
        b.p24.drop_replies = True
        b.send(T1_GET_STIM_STATUS, T4_ML_INIT)
        assert b.raw == [] and b.p24.replies_dropped == 2
        assert b.p24.stim_status == MI  # the commands were executed
        b.p24.drop_replies = False
        b.p24.reply_extra_delay_s = 0.3
        b.send(T1_GET_STIM_STATUS)
        await asyncio.sleep(0.29)
        assert b.raw == []
        await asyncio.sleep(0.02)
        assert len(b.raw) == 1

    run(body)


def test_reset_command_acks_then_turns_everything_off():
    async def body(b: Bench) -> None:
        await running(b)
        b.send(T16_RESET)
        assert b.last() == p.ResetAck(packet_number=12, result=Result.OK)
        assert (b.ma(1), b.p24.stim_status, b.p24.high_voltage_code) == (0.0, N, 1)
        b.send(T10_GET_DATA)
        assert b.results()[-1] == 7

    run(body)


def test_fault_plan_on_the_p24_electrode_busy_reset_and_unplug():
    async def body(b: Bench) -> None:
        loop = asyncio.get_running_loop()
        plan = FaultPlan([Fault("electrode_off", 0.5, channel=1, duration_s=1.0),
                          Fault("busy", 0.6, duration_s=0.2),
                          Fault("late_acks", 0.9, duration_s=0.1, value=0.05),
                          Fault("device_reset", 1.2), Fault("disconnect", 1.8)])
        armed = plan.schedule(loop, b.p24.faults)
        await running(b)
        await asyncio.sleep(0.55)
        assert (b.ma(1), b.ma(2)) == (0.0, 20.0)
        await asyncio.sleep(0.1)  # 0.65 s: busy
        b.send(T10_GET_DATA)
        assert b.results()[-1] == 21
        await asyncio.sleep(0.3)  # 0.95 s: late acks
        count = len(b.raw)
        b.send(T10_GET_DATA)
        assert len(b.raw) == count
        await asyncio.sleep(0.06)
        assert b.last() == p.MlGetCurrentDataAck(packet_number=7, result=Result.ELECTRODE_ERROR,
                                                 active_mask=0x02, channel_states=(1,) + (0,) * 7)
        await asyncio.sleep(0.2)  # 1.21 s: reset
        assert b.p24.stim_status == N and b.ma(2) == 0.0
        await asyncio.sleep(0.6)  # 1.81 s: unplugged
        count = len(b.raw)
        b.send(T1_GET_STIM_STATUS)
        assert not b.p24.powered and len(b.raw) == count
        armed.cancel()

    run(body)


def test_power_off_stops_output_and_silences_the_device():
    async def body(b: Bench) -> None:
        await running(b)
        b.p24.power_off()
        b.send(T1_GET_STIM_STATUS)
        await asyncio.sleep(1.0)
        assert b.ma(1) == 0.0 and len(b.raw) == 2 and b.raw[0] == A4

    run(body)


def test_identity_and_options_are_checked():
    with pytest.raises(InputError):
        P24Config(device_id=b"short")
    with pytest.raises(InputError):
        P24Config(reply_delay_s=-1)
    with pytest.raises(InputError):
        P24(SimulatedStimulator(), lambda _: None)


# --- any input ------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=40), st.sampled_from(
    [T1_GET_STIM_STATUS, T10_GET_DATA, T12_ML_STOP, T13_LL_INIT, T14_LL_CONFIG, T15_LL_STOP,
     T16_RESET, T5_ML_INIT_STOP_ALL])), max_size=12))
def test_any_bytes_are_safe_and_every_reply_is_one_decodable_frame(chunks):
    async def body(b: Bench) -> None:
        for chunk in chunks:
            b.send(chunk)
            await asyncio.sleep(0.001)
        # no Ml_update among the inputs: no mid-level output, ever
        assert all(b.device.intervals(ch)["amplitude_ma"].max(initial=0) <= 20.0
                   for ch in range(1, 9))

    b = run(body)
    for wire in b.raw:
        assert len(wire) >= 13
        message = p.decode_message(wire)
        assert message.direction is p.Direction.DEVICE_TO_HOST


def test_pty_factory_builds_a_p24_and_refuses_options_it_cannot_honour():
    from emsctl.simulator.devices.sciencemode4_pty import pty_device
    from emsctl.simulator.pty import PtyDeviceOptions

    def nothing(*_: object) -> None:
        return None

    served = pty_device(PtyDeviceOptions(impedance_ohm=800.0), nothing, nothing, nothing)
    device = served.p24
    assert isinstance(device, P24) and device.device.body.load(1).impedance_ohm == 800.0
    for options in (PtyDeviceOptions(watchdog_s=1.0), PtyDeviceOptions(profile="lenient"),
                    PtyDeviceOptions(extras={"x": "1"})):
        with pytest.raises(InputError):
            pty_device(options, nothing, nothing, nothing)
