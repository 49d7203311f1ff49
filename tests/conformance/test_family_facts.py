"""Each family's reading of the wire, on hand-made byte sequences: what counts as a second
command while one is outstanding, and until when the host asked for output. These are the
judgements the conformance steps make; here they are shown to fail where they must."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from emsctl.drivers.coyote3.conformance import FAMILY as COYOTE
from emsctl.drivers.coyote3.stream import ChannelWave, b0_bytes
from emsctl.drivers.coyote3.strength import PendingChange
from emsctl.drivers.openems.conformance import FAMILY as OPENEMS
from emsctl.drivers.sciencemode2 import protocol as p
from emsctl.drivers.sciencemode2.conformance import FAMILY as SM2
from emsctl.wiretap import DEVICE_TO_HOST, HOST_TO_DEVICE, WireEvent

NO_RUN: Any = SimpleNamespace(probe=None)  # the families fall back to the protocol's timeouts


def _events(*items: tuple[float, str, bytes] | tuple[float, str, bytes, str, float]) -> list[
        WireEvent]:
    out = []
    for index, item in enumerate(items):
        t_s, direction, data = item[:3]
        channel = str(item[3]) if len(item) > 3 else ""
        duration = float(item[4]) if len(item) > 4 else None  # type: ignore[misc]
        out.append(WireEvent(index, 0, t_s, direction, data, channel, "", duration))
    return out


def _sm2(message: p.Message) -> bytes:
    return p.encode_message(message)


INIT_CLM = _sm2(p.InitChannelListMode(packet_number=1, low_frequency_factor=0,
                                      active_channel_mask=1, low_frequency_channel_mask=0,
                                      inter_pulse_interval_code=13, main_interval_code=98))
INIT_CLM_ACK = _sm2(p.InitChannelListModeAck(packet_number=1, result=p.Result.OK))
START = _sm2(p.StartChannelListMode(packet_number=2, channel_settings=(
    p.ChannelSettings(pulse_group=p.PulseGroup.SINGLE, pulse_width_us=100, current_ma=2),)))
STOP = _sm2(p.StopChannelListMode(packet_number=3))
RESET = _sm2(p.Init(packet_number=9, protocol_version=1))


def test_sm2_a_start_before_the_init_ack_is_a_second_command_outstanding() -> None:
    problems = SM2.outstanding_problems(_events(
        (0.0, HOST_TO_DEVICE, INIT_CLM), (0.001, HOST_TO_DEVICE, START)), NO_RUN)
    assert len(problems) == 1 and "StartChannelListMode pn 2" in problems[0]


def test_sm2_after_the_ack_or_the_timeout_or_for_a_stop_it_is_not() -> None:
    assert SM2.outstanding_problems(_events(
        (0.0, HOST_TO_DEVICE, INIT_CLM), (0.0005, DEVICE_TO_HOST, INIT_CLM_ACK),
        (0.001, HOST_TO_DEVICE, START)), NO_RUN) == []
    assert SM2.outstanding_problems(_events(
        (0.0, HOST_TO_DEVICE, INIT_CLM), (0.25, HOST_TO_DEVICE, START)), NO_RUN) == []
    assert SM2.outstanding_problems(_events(
        (0.0, HOST_TO_DEVICE, INIT_CLM), (0.001, HOST_TO_DEVICE, STOP)), NO_RUN) == []


def test_sm2_output_runs_from_a_start_with_current_to_a_stop_or_a_device_reset() -> None:
    assert SM2.output_requested_until(_events((0.0, HOST_TO_DEVICE, INIT_CLM))) is None
    assert SM2.output_requested_until(_events(
        (0.0, HOST_TO_DEVICE, START), (0.3, HOST_TO_DEVICE, STOP))) == 0.3
    assert SM2.output_requested_until(_events(
        (0.0, HOST_TO_DEVICE, START), (1.2, DEVICE_TO_HOST, RESET))) == 1.2
    assert SM2.output_requested_until(_events((0.0, HOST_TO_DEVICE, START))) == float("inf")


def _b0(sequence: int, a: int, intensity: int = 50) -> bytes:
    wave = ChannelWave(20, intensity) if intensity else None
    return b0_bytes(PendingChange(sequence, (a, 0), 0.0), (wave, None), 4)


def test_coyote_a_second_increase_while_one_is_unconfirmed_is_outstanding() -> None:
    problems = COYOTE.outstanding_problems(_events(
        (0.0, HOST_TO_DEVICE, _b0(1, 1)), (0.1, HOST_TO_DEVICE, _b0(2, 2))), NO_RUN)
    assert len(problems) == 1 and "seq 2" in problems[0]


def test_coyote_a_decrease_or_a_change_after_its_b1_is_not() -> None:
    b1 = bytes((0xB1, 1, 1, 0))
    assert COYOTE.outstanding_problems(_events(
        (0.0, HOST_TO_DEVICE, _b0(1, 2)), (0.1, HOST_TO_DEVICE, _b0(2, 0, 0))), NO_RUN) == []
    assert COYOTE.outstanding_problems(_events(
        (0.0, HOST_TO_DEVICE, _b0(1, 1)), (0.02, DEVICE_TO_HOST, b1),
        (0.1, HOST_TO_DEVICE, _b0(2, 2))), NO_RUN) == []


def test_coyote_output_ends_with_the_last_slot_asked_for() -> None:
    until = COYOTE.output_requested_until(_events((0.0, HOST_TO_DEVICE, _b0(1, 1)),
                                                  (0.1, HOST_TO_DEVICE, _b0(2, 0, 0))))
    assert until == 0.1
    assert COYOTE.is_stop("", _b0(2, 0, 0)) and not COYOTE.is_stop("", _b0(1, 1))


def test_openems_a_ble_write_before_the_last_one_completed_is_outstanding() -> None:
    uuid = "454d532d-5374-6575-6572-756e672d4348"
    problems = OPENEMS.outstanding_problems(_events(
        (0.0, HOST_TO_DEVICE, b"C9G", uuid, 0.05), (0.01, HOST_TO_DEVICE, b"C9G", uuid, 0.05)),
        NO_RUN)
    assert len(problems) == 1
    assert OPENEMS.outstanding_problems(_events(
        (0.0, HOST_TO_DEVICE, b"C9G", uuid, 0.05), (0.06, HOST_TO_DEVICE, b"C9G", uuid, 0.05)),
        NO_RUN) == []


def test_openems_an_action_closer_than_50_ms_is_outstanding_and_the_on_time_is_the_output() -> None:
    events = _events((0.0, HOST_TO_DEVICE, b"WV,0018,433947.\n"),
                     (0.01, HOST_TO_DEVICE, b"WV,0018,4330493430543130303047.\n"))
    assert len(OPENEMS.outstanding_problems(events, NO_RUN)) == 1
    assert OPENEMS.output_requested_until(events) == 0.01 + 1.0
    assert OPENEMS.is_stop("", b"WV,0018,433947.\n")


def _sm4(message: object) -> bytes:
    from emsctl.drivers.sciencemode4 import protocol as p4

    assert isinstance(message, p4.MessageBase)
    return p4.encode_message(message)


def _p24_frames() -> dict[str, bytes]:
    from emsctl.drivers.sciencemode4 import protocol as p4

    block = p4.MlChannelConfig(points=(p4.Point.of(100, 0.5), p4.Point.of(100, -0.5)),
                               period=p4.Period(code=100))
    return {
        "update": _sm4(p4.MlUpdate.of(1, {1: block})),
        "update_ack": _sm4(p4.MlUpdateAck(packet_number=1, result=p4.Result.OK)),
        "poll": _sm4(p4.MlGetCurrentData(packet_number=2)),
        "stop": _sm4(p4.MlStop(packet_number=3)),
        "off": _sm4(p4.MlUpdate.of(4, {})),
        "electrode": _sm4(p4.MlGetCurrentDataAck(
            packet_number=2, result=p4.Result.ELECTRODE_ERROR,
            channel_states=(p4.ChannelState.ELECTRODE_ERROR,) + (p4.ChannelState.OK,) * 7)),
        "not_running": _sm4(p4.GetStimStatusAck(
            packet_number=5, result=p4.Result.OK, stim_status=p4.StimStatus.MID_LEVEL_INITIALISED,
            high_voltage=p4.HIGH_VOLTAGE_150V)),
    }


def test_p24_a_poll_before_the_update_ack_is_a_second_command_outstanding() -> None:
    from emsctl.drivers.sciencemode4.conformance import FAMILY as P24

    f = _p24_frames()
    problems = P24.outstanding_problems(_events(
        (0.0, HOST_TO_DEVICE, f["update"]), (0.001, HOST_TO_DEVICE, f["poll"])), NO_RUN)
    assert len(problems) == 1 and "MlGetCurrentData pn 2" in problems[0]


def test_p24_after_the_ack_or_the_timeout_or_for_ml_stop_it_is_not() -> None:
    from emsctl.drivers.sciencemode4.conformance import FAMILY as P24

    f = _p24_frames()
    assert P24.outstanding_problems(_events(
        (0.0, HOST_TO_DEVICE, f["update"]), (0.0005, DEVICE_TO_HOST, f["update_ack"]),
        (0.001, HOST_TO_DEVICE, f["poll"])), NO_RUN) == []
    assert P24.outstanding_problems(_events(
        (0.0, HOST_TO_DEVICE, f["update"]), (0.25, HOST_TO_DEVICE, f["poll"])), NO_RUN) == []
    assert P24.outstanding_problems(_events(
        (0.0, HOST_TO_DEVICE, f["update"]), (0.001, HOST_TO_DEVICE, f["stop"])), NO_RUN) == []


def test_p24_output_runs_from_an_update_to_a_stop_or_the_device_saying_it_stopped() -> None:
    from emsctl.drivers.sciencemode4.conformance import FAMILY as P24

    f = _p24_frames()
    assert P24.output_requested_until(_events((0.0, HOST_TO_DEVICE, f["poll"]))) is None
    assert P24.output_requested_until(_events(
        (0.0, HOST_TO_DEVICE, f["update"]), (0.3, HOST_TO_DEVICE, f["stop"]))) == 0.3
    assert P24.output_requested_until(_events(
        (0.0, HOST_TO_DEVICE, f["update"]), (0.2, HOST_TO_DEVICE, f["off"]))) == 0.2
    assert P24.output_requested_until(_events(
        (0.0, HOST_TO_DEVICE, f["update"]), (0.1, DEVICE_TO_HOST, f["electrode"]))) == 0.1
    assert P24.output_requested_until(_events(
        (0.0, HOST_TO_DEVICE, f["update"]), (2.0, DEVICE_TO_HOST, f["not_running"]))) == 2.0
    assert P24.output_requested_until(_events((0.0, HOST_TO_DEVICE, f["update"]))) == float("inf")
    assert P24.is_stop("", f["stop"]) and not P24.is_stop("", f["update"])
    assert P24.is_race_trigger("", f["update"]) and not P24.is_race_trigger("", f["off"])


def test_p24_frames_are_split_whole_even_with_a_raw_0f_in_the_header() -> None:
    from emsctl.drivers.sciencemode4.conformance import FrameSplitter

    # vector A16: a Ml_get_current_data_ack whose header CRC byte is a raw 0F
    a16 = bytes.fromhex("F0815581468 1A7810F082500040300000000 0F".replace(" ", ""))
    t1 = bytes.fromhex("F0815581598 14E810C043E0F".replace(" ", ""))
    splitter = FrameSplitter()
    stream = b"\x00" + a16 + t1
    units = [u for i in range(len(stream)) for u in splitter.feed(stream[i:i + 1])]
    assert units == [b"\x00", a16, t1]
