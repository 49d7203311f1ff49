"""ScienceMode2 codec: docs/protocols/sciencemode2.md §11 test vectors byte for byte, field
encodings, robustness, properties.

Every expected frame below is copied from the spec (docs/protocols/sciencemode2.md §11), never
computed with the code under test; the CRC and LEN columns are checked on the raw bytes too.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emsctl.drivers.sciencemode2 import protocol as p
from emsctl.drivers.sciencemode2.protocol import (
    BadFrame,
    BadFrameReason,
    ChannelExecution,
    ChannelSettings,
    Direction,
    Frame,
    FrameDecoder,
    GetStimulationMode,
    GetStimulationModeAck,
    Init,
    InitAck,
    InitChannelListMode,
    InitChannelListModeAck,
    MessageDecodeError,
    PulseGroup,
    Result,
    SinglePulse,
    SinglePulseAck,
    StartChannelListMode,
    StartChannelListModeAck,
    StimulationError,
    StimulationErrorCode,
    StimulationMode,
    StopChannelListMode,
    StopChannelListModeAck,
    UnknownCommand,
    UnknownCommandError,
    Watchdog,
)
from emsctl.errors import ProtocolError

S, D = PulseGroup.SINGLE, PulseGroup.DOUBLET


def start(pn: int, *channels: tuple[PulseGroup, int, int]) -> StartChannelListMode:
    settings = tuple(ChannelSettings(g, w, c) for g, w, c in channels)
    return StartChannelListMode(packet_number=pn, channel_settings=settings)


def init_clm(
    pn: int, active: int, lf: int = 0, *, n: int = 0, t2: int = 13, t1: int
) -> InitChannelListMode:
    return InitChannelListMode(
        packet_number=pn,
        low_frequency_factor=n,
        active_channel_mask=active,
        low_frequency_channel_mask=lf,
        inter_pulse_interval_code=t2,
        main_interval_code=t1,
        channel_execution=ChannelExecution.FIXED_SLOTS,
    )


# (wire hex, message, logical CRC, LEN) for every docs/protocols/sciencemode2.md §11 row our encoder
# must produce exactly.
VECTORS: list[tuple[str, p.Message, int, int]] = [
    ("F0 81 47 81 56 00 01 01 0F", Init(packet_number=0, protocol_version=1), 0x12, 3),
    ("F0 81 C3 81 51 81 5A 01 01 0F", Init(packet_number=15, protocol_version=1), 0x96, 4),
    ("F0 81 7F 81 56 00 02 00 0F", InitAck(packet_number=0, result=Result.OK), 0x2A, 3),
    (
        "F0 81 90 81 56 00 02 FB 0F",
        InitAck(packet_number=0, result=Result.INCOMPATIBLE_VERSION),
        0xC5,
        3,
    ),
    ("F0 81 49 81 57 00 04 0F", Watchdog(packet_number=0), 0x1C, 2),
    ("F0 81 0F 81 57 DC 04 0F", Watchdog(packet_number=220), 0x5A, 2),
    ("F0 81 F0 81 57 C4 04 0F", Watchdog(packet_number=196), 0xA5, 2),
    ("F0 81 81 81 57 86 04 0F", Watchdog(packet_number=134), 0xD4, 2),
    ("F0 81 EC 81 5C 00 1E 00 03 00 0D 00 30 00 0F", init_clm(0, 0x03, t1=48), 0xB9, 9),
    (
        "F0 81 83 81 5F 09 1E 01 FF 81 A5 0D 00 26 00 0F",
        init_clm(9, 0xFF, 0xF0, n=1, t1=38),
        0xD6,
        10,
    ),
    ("F0 81 86 81 5C 08 1E 00 01 00 0D 00 00 00 0F", init_clm(8, 0x01, t1=0), 0xD3, 9),
    ("F0 81 25 81 5C 0A 1E 00 01 00 0D 08 00 00 0F", init_clm(10, 0x01, t1=2048), 0x70, 9),
    (
        "F0 81 A1 81 5F 01 20 00 01 2C 14 01 00 C8 10 0F",
        start(1, (S, 300, 20), (D, 200, 16)),
        0xF4,
        10,
    ),
    (
        "F0 81 C4 81 5F 02 20 00 01 2C 1E 01 00 C8 10 0F",
        start(2, (S, 300, 30), (D, 200, 16)),
        0x91,
        10,
    ),
    (
        "F0 81 73 81 5F 06 20 00 01 2C 00 01 00 C8 00 0F",
        start(6, (S, 300, 0), (D, 200, 0)),
        0x26,
        10,
    ),
    ("F0 81 35 81 5D 04 20 00 00 81 A5 81 5A 0F", start(4, (S, 240, 15)), 0x60, 8),
    ("F0 81 17 81 53 01 20 00 01 2C 0A 0F", start(1, (S, 300, 10)), 0x42, 6),
    ("F0 81 BB 81 57 00 22 0F", StopChannelListMode(packet_number=0), 0xEE, 2),
    ("F0 81 D0 81 57 07 22 0F", StopChannelListMode(packet_number=7), 0x85, 2),
    (
        "F0 81 09 81 53 03 24 00 00 FA 1E 0F",
        SinglePulse(packet_number=3, channel_index=0, pulse_width_us=250, current_ma=30),
        0x5C,
        6,
    ),
    (
        "F0 81 82 81 52 05 24 00 00 81 D4 14 0F",
        SinglePulse(packet_number=5, channel_index=0, pulse_width_us=129, current_ma=20),
        0xD7,
        7,
    ),
    ("F0 81 49 81 57 02 0A 0F", GetStimulationMode(packet_number=2), 0x1C, 2),
    (
        "F0 81 9B 81 51 02 0B 00 02 0F",
        GetStimulationModeAck(packet_number=2, result=Result.OK, mode=StimulationMode.STARTED),
        0xCE,
        4,
    ),
    (
        "F0 81 99 81 56 03 0B F8 0F",
        GetStimulationModeAck(packet_number=3, result=Result.BUSY, mode=None),
        0xCC,
        3,
    ),
    (
        "F0 81 C1 81 56 00 1F 00 0F",
        InitChannelListModeAck(packet_number=0, result=Result.OK),
        0x94,
        3,
    ),
    (
        "F0 81 35 81 56 00 1F FE 0F",
        InitChannelListModeAck(packet_number=0, result=Result.PARAMETER_ERROR),
        0x60,
        3,
    ),
    (
        "F0 81 85 81 56 01 21 00 0F",
        StartChannelListModeAck(packet_number=1, result=Result.OK),
        0xD0,
        3,
    ),
    (
        "F0 81 78 81 56 01 21 FD 0F",
        StartChannelListModeAck(packet_number=1, result=Result.WRONG_MODE),
        0x2D,
        3,
    ),
    (
        "F0 81 76 81 56 01 21 FF 0F",
        StartChannelListModeAck(packet_number=1, result=Result.TRANSFER_ERROR),
        0x23,
        3,
    ),
    (
        "F0 81 D2 81 56 07 23 00 0F",
        StopChannelListModeAck(packet_number=7, result=Result.OK),
        0x87,
        3,
    ),
    ("F0 81 07 81 56 03 25 00 0F", SinglePulseAck(packet_number=3, result=Result.OK), 0x52, 3),
    (
        "F0 81 B1 81 56 05 26 FE 0F",
        StimulationError(packet_number=5, error=StimulationErrorCode.ELECTRODE_ERROR),
        0xE4,
        3,
    ),
    (
        "F0 81 76 81 56 00 26 FF 0F",
        StimulationError(packet_number=0, error=StimulationErrorCode.EMERGENCY_SWITCH),
        0x23,
        3,
    ),
    ("F0 81 26 81 56 02 03 5F 0F", UnknownCommand(packet_number=2, received_command=0x5F), 0x73, 3),
]
# docs/protocols/sciencemode2.md §11 rows that only a tolerant receiver meets: (wire hex, logical
# CRC, LEN).
TOLERANT_ESCAPE_0A = ("F0 81 27 81 52 01 20 00 01 2C 81 5F 0F", 0x72, 7)
XORED_GET_MODE = ("F0 81 E5 81 57 02 5F 0F", 0xB0, 2)

ALL_WIRES = [bytes.fromhex(h) for h, *_ in VECTORS]
VECTOR_IDS = [f"{type(m).__name__}-{i}" for i, (_, m, *_) in enumerate(VECTORS)]


# --- docs/protocols/sciencemode2.md §11 test vectors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("wire_hex", "message", "crc", "length"), VECTORS, ids=VECTOR_IDS)
def test_encoder_produces_every_spec_vector_byte_for_byte(wire_hex, message, crc, length):
    assert p.encode_message(message) == bytes.fromhex(wire_hex)


@pytest.mark.parametrize(("wire_hex", "message", "crc", "length"), VECTORS, ids=VECTOR_IDS)
def test_decoder_reads_every_spec_vector_as_its_message(wire_hex, message, crc, length):
    assert p.decode_message(bytes.fromhex(wire_hex)) == message


@pytest.mark.parametrize(
    ("wire_hex", "crc", "length"),
    [(h, c, n) for h, _, c, n in VECTORS] + [TOLERANT_ESCAPE_0A, XORED_GET_MODE],
)
def test_header_carries_crc8_and_len_of_the_stuffed_bytes_xor_0x55(wire_hex, crc, length):
    wire = bytes.fromhex(wire_hex)
    body = wire[5:-1]
    assert (wire[2] ^ 0x55, wire[4] ^ 0x55) == (crc, length)
    assert (p.crc8(body), len(body)) == (crc, length)


def test_tolerant_receiver_unescapes_0x0a_and_checks_crc_over_bytes_as_received():
    wire = bytes.fromhex(TOLERANT_ESCAPE_0A[0])
    assert p.decode_message(wire) == start(1, (S, 300, 10))


def test_command_xored_in_place_is_an_unknown_command_with_its_packet_number():
    payload = p.unwrap_frame(bytes.fromhex(XORED_GET_MODE[0]))
    assert payload == bytes((0x02, 0x5F))
    with pytest.raises(UnknownCommandError) as info:
        p.decode_frame(payload)
    assert (info.value.packet_number, info.value.command) == (2, 0x5F)


def test_crc8_is_smbus_with_check_value_f4():
    assert p.crc8(b"123456789") == 0xF4


def test_stuffing_escapes_exactly_start_stop_and_escape_bytes():
    assert p.stuff(bytes((0xF0, 0x0F, 0x81, 0x55, 0x0A, 0xA5))) == bytes.fromhex(
        "81 A5 81 5A 81 D4 55 0A A5"
    )


@pytest.mark.parametrize(
    ("period_ms", "code"), [(8, 14), (20, 38), (25, 48), (1025, 2048)], ids=str
)
def test_main_interval_codes_of_the_spec(period_ms, code):
    assert p.main_interval_code_from_period_ms(period_ms) == code
    assert p.period_ms_from_main_interval_code(code) == period_ms


def test_inter_pulse_interval_8_ms_is_code_13():
    assert p.inter_pulse_interval_code_from_ms(8) == 13
    assert p.inter_pulse_interval_ms_from_code(13) == 8.0


# --- field encodings ----------------------------------------------------------------------------


@pytest.mark.parametrize(("frequency_hz", "code"), [(40, 48), (50, 38), (125, 14)], ids=str)
def test_frequency_maps_to_main_interval_code(frequency_hz, code):
    assert p.main_interval_code_from_frequency_hz(frequency_hz) == code


def test_actual_frequency_of_a_rounded_code_follows_the_spec_formula():
    code = p.main_interval_code_from_frequency_hz(3)  # t1 = 333.33 ms → 664.67 → 665
    assert code == 665
    assert p.frequency_hz_from_main_interval_code(code) == pytest.approx(1000 / 333.5)


def test_main_interval_rounding_ties_go_to_the_longer_period():
    assert p.main_interval_code_from_period_ms(8.25) == 15  # (8.25 − 1)·2 = 14.5


@pytest.mark.parametrize("period_ms", [7.74, 1025.3, 0, -20, math.nan, math.inf])
def test_period_outside_firmware_range_is_rejected(period_ms):
    with pytest.raises(ProtocolError):
        p.main_interval_code_from_period_ms(period_ms)


def test_frequency_just_above_125_hz_rounds_into_range_at_125_hz():
    assert p.main_interval_code_from_frequency_hz(126) == 14  # (7.94 − 1)·2 = 13.9 → 14


@pytest.mark.parametrize("frequency_hz", [130, 0.97, 0, -5, math.nan, math.inf])
def test_frequency_outside_8_to_1025_ms_is_rejected(frequency_hz):
    with pytest.raises(ProtocolError):
        p.main_interval_code_from_frequency_hz(frequency_hz)


def test_inter_pulse_interval_of_2_ms_is_below_the_firmware_minimum():
    with pytest.raises(ProtocolError):
        p.inter_pulse_interval_code_from_ms(2)
    with pytest.raises(ProtocolError):
        p.inter_pulse_interval_code_from_ms(129.5)
    assert p.inter_pulse_interval_code_from_ms(129) == 255


def test_main_interval_code_zero_is_one_shot_and_has_no_period():
    with pytest.raises(ProtocolError):
        p.period_ms_from_main_interval_code(0)
    message = init_clm(0, 1, t1=0)
    assert message.is_one_shot
    assert message.main_interval_ms is None
    assert init_clm(0, 1, t1=48).main_interval_ms == 25.0


def test_channel_mask_bit0_is_channel_1_and_bit7_is_channel_8():
    assert p.channel_mask([1, 2]) == 0x03
    assert p.channel_mask([5, 6, 7, 8]) == 0xF0
    assert p.channels_in_mask(0xF0) == (5, 6, 7, 8)
    assert init_clm(9, 0xFF, 0xF0, n=1, t1=38).low_frequency_channels == (5, 6, 7, 8)
    for bad in (0, 9):
        with pytest.raises(ProtocolError):
            p.channel_mask([bad])


def test_results_are_signed_bytes_with_the_spec_values():
    assert {r.name: r.value for r in Result} == {
        "OK": 0,
        "TRANSFER_ERROR": -1,
        "PARAMETER_ERROR": -2,
        "WRONG_MODE": -3,
        "MOTOMED_CONNECTION_ERROR": -4,
        "INCOMPATIBLE_VERSION": -5,
        "BUSY": -8,
    }
    assert [p.to_signed_byte(v) for v in (-1, -2, -3, -5, -8)] == [0xFF, 0xFE, 0xFD, 0xFB, 0xF8]
    assert p.from_signed_byte(0xF8) == -8
    assert p.from_signed_byte(0x7F) == 127


def test_command_ids_follow_the_command_list_not_the_misprinted_tables():
    assert StartChannelListModeAck.command == 33
    assert StimulationError.command == 38
    assert [m.command for m in (Init, InitAck, UnknownCommand, Watchdog)] == [1, 2, 3, 4]


def test_directions_of_messages():
    assert InitAck.direction is Direction.HOST_TO_DEVICE
    assert Init.direction is Direction.DEVICE_TO_HOST
    assert StartChannelListMode.direction is Direction.HOST_TO_DEVICE
    assert StartChannelListModeAck.direction is Direction.DEVICE_TO_HOST


# --- message validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: Watchdog(packet_number=256),
        lambda: Watchdog(packet_number=-1),
        lambda: Watchdog(packet_number=True),
        lambda: ChannelSettings(S, 501, 10),
        lambda: ChannelSettings(S, 300, 131),
        lambda: ChannelSettings(3, 300, 10),  # pulse group 3
        lambda: SinglePulse(packet_number=0, channel_index=8, pulse_width_us=100, current_ma=1),
        lambda: init_clm(0, 1, n=8, t1=48),  # N = 8
        lambda: init_clm(0, 1, t1=2049),
        lambda: init_clm(0, 256, t1=48),
        lambda: StopChannelListModeAck(packet_number=0, result=Result.PARAMETER_ERROR),
        lambda: InitAck(packet_number=0, result=Result.TRANSFER_ERROR),
        lambda: StartChannelListModeAck(packet_number=0, result=Result.MOTOMED_CONNECTION_ERROR),
        lambda: GetStimulationModeAck(packet_number=0, result=Result.OK, mode=None),
        lambda: GetStimulationModeAck(packet_number=0, result=Result.BUSY, mode=0),
        lambda: StimulationError(packet_number=0, error=-4),
        lambda: start(0, *[(S, 100, 10)] * 9),
    ],
)
def test_values_outside_the_spec_ranges_raise_protocol_error(build):
    with pytest.raises(ProtocolError):
        build()


def test_protocol_error_is_a_value_error():
    with pytest.raises(ValueError, match="current_ma"):
        ChannelSettings(S, 300, 131)


def test_codec_carries_pulse_widths_below_20_us_for_the_device_to_raise():
    assert ChannelSettings(S, 1, 10).pulse_width_us == 1


def test_codec_carries_interval_codes_below_firmware_minimums_for_the_device_to_judge():
    message = p.decode_message(p.encode_message(init_clm(0, 1, t2=4, t1=13)))
    assert isinstance(message, InitChannelListMode)
    assert (message.inter_pulse_interval_code, message.main_interval_code) == (4, 13)


def test_plain_ints_become_enum_members():
    ack = GetStimulationModeAck(packet_number=0, result=0, mode=1)  # type: ignore[arg-type]
    assert ack.result is Result.OK
    assert ack.mode is StimulationMode.INITIALISED


# --- payload decoding ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload_hex", "command"),
    [
        ("05 04 00", 4),  # Watchdog has no data
        ("05 22 00", 34),  # Stop has no data
        ("05 0A 00", 10),
        ("05 1E 00 01 00 0D 00 30", 30),  # InitCLM with 6 bytes instead of 7
        ("05 20 00 01 2C 0A 00", 32),  # Start: not a multiple of 4
        ("05 20" + " 00 00 64 0A" * 9, 32),  # Start: 9 channels
        ("05 24 00 00 FA", 36),  # SinglePulse with 3 bytes
        ("05 24 08 00 FA 1E", 36),  # channel index 8
        ("05 20 00 01 F5 0A", 32),  # 501 µs
        ("05 20 00 00 64 83", 32),  # 131 mA
        ("05 20 03 00 64 0A", 32),  # pulse group 3
        ("05 1E 08 01 00 0D 00 30 00", 30),  # N = 8
        ("05 1E 00 01 00 0D 08 01 00", 30),  # t1 code 2049
        ("05 1E 00 01 00 0D 00 30 02", 30),  # channel execution 2
        ("05 23 FE", 35),  # Stop ack only 0 or −1
        ("05 21 FA", 33),  # −6 is no result
        ("05 0B 00", 11),  # result 0 needs a mode byte
        ("05 0B 00 03", 11),  # mode 3
        ("05 26 FC", 38),  # stimulation error −4
        ("05 02", 2),  # InitAck without result
    ],
)
def test_malformed_data_raises_decode_error_carrying_packet_number_and_command(
    payload_hex, command
):
    with pytest.raises(MessageDecodeError) as info:
        p.decode_frame(bytes.fromhex(payload_hex))
    assert not isinstance(info.value, UnknownCommandError)
    assert (info.value.packet_number, info.value.command) == (5, command)


@pytest.mark.parametrize("command", [0, 5, 12, 13, 50, 58, 90, 39, 0x5F, 255])
def test_unknown_and_motomed_commands_raise_unknown_command_error(command):
    with pytest.raises(UnknownCommandError) as info:
        p.decode_frame(bytes((7, command)))
    assert info.value.command == command


def test_motomed_command_set_is_12_13_and_50_to_90():
    assert [c for c in range(256) if p.is_motomed_command(c)] == [12, 13, *range(50, 91)]


def test_payload_without_command_raises_decode_error():
    with pytest.raises(MessageDecodeError):
        p.decode_frame(b"\x05")


def test_short_get_mode_ack_form_is_accepted_even_with_a_stray_mode_byte():
    message = p.decode_frame(bytes.fromhex("03 0B F8 02"))
    assert message == GetStimulationModeAck(packet_number=3, result=Result.BUSY, mode=None)


def test_ack_matches_request_by_command_plus_one_and_packet_number():
    request = StartChannelListMode(packet_number=4, channel_settings=())
    assert p.acknowledges(StartChannelListModeAck(packet_number=4, result=Result.OK), request)
    assert not p.acknowledges(StartChannelListModeAck(packet_number=5, result=Result.OK), request)
    assert not p.acknowledges(StopChannelListModeAck(packet_number=4, result=Result.OK), request)
    assert p.acknowledges(
        InitAck(packet_number=9, result=0), Init(packet_number=9, protocol_version=1)
    )


# --- framing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 63])
def test_encode_frame_rejects_payloads_without_header_or_over_62_bytes(size):
    with pytest.raises(ProtocolError):
        p.encode_frame(bytes(size))


@pytest.mark.parametrize(
    "wire_hex",
    [
        "00 F0 81 49 81 57 00 04 0F",  # leading byte
        "F0 81 49 81 57 00 04 0F 00",  # trailing byte
        "F0 81 49 81 57 00 04 0F F0 81 49 81 57 00 04 0F",  # two frames
        "F0 81 49 81 57 00 04",  # no stop byte
        "F0 81 48 81 57 00 04 0F",  # bad CRC
    ],
)
def test_unwrap_frame_accepts_exactly_one_valid_frame(wire_hex):
    with pytest.raises(ProtocolError):
        p.unwrap_frame(bytes.fromhex(wire_hex))


@pytest.mark.parametrize("stuffed_hex", ["00 81", "00 F0 01", "0F"])
def test_unstuff_rejects_lone_escape_and_bare_frame_bytes(stuffed_hex):
    with pytest.raises(ProtocolError):
        p.unstuff(bytes.fromhex(stuffed_hex))


# --- streaming decoder: docs/protocols/sciencemode2.md §3 receiver algorithm and
# docs/protocols/sciencemode2.md §10 robustness --------------------------------


def feed_bytewise(decoder: FrameDecoder, data: bytes) -> list[Frame | BadFrame]:
    return [item for i in range(len(data)) for item in decoder.feed(data[i : i + 1])]


def good_payloads(items: list[Frame | BadFrame]) -> list[bytes]:
    return [item.payload for item in items if isinstance(item, Frame)]


def test_every_vector_decodes_when_fed_one_byte_at_a_time():
    decoder = FrameDecoder()
    items = feed_bytewise(decoder, b"".join(ALL_WIRES))
    assert [p.decode_frame(item.payload) for item in items] == [m for _, m, *_ in VECTORS]
    assert (decoder.frames, decoder.bad_frames, decoder.in_frame) == (len(VECTORS), 0, False)


def test_header_byte_that_is_raw_start_stop_or_escape_is_consumed_as_a_pair():
    # Watchdog pn 0..255 covers every CRC, including 0x5A/0xA5/0xD4 → raw 0F/F0/81.
    stream = b"".join(p.encode_message(Watchdog(packet_number=n)) for n in range(256))
    items = feed_bytewise(FrameDecoder(), stream)
    assert [p.decode_frame(x).packet_number for x in good_payloads(items)] == list(range(256))
    assert len(items) == 256


def test_garbage_before_a_frame_is_skipped_and_counted():
    decoder = FrameDecoder()
    items = decoder.feed(bytes.fromhex("00 0F 81 55 0F") + ALL_WIRES[0])
    assert items == [Frame(p.encode_payload(VECTORS[0][1]), ALL_WIRES[0])]
    assert decoder.discarded_bytes == 5


@pytest.mark.parametrize("cut_wire", range(len(ALL_WIRES)), ids=VECTOR_IDS)
def test_next_frame_is_recovered_after_a_frame_cut_at_any_point(cut_wire):
    # A cut right after an escape byte makes the next frame's F0 look like an escaped value.
    whole = ALL_WIRES[cut_wire]
    follower = ALL_WIRES[(cut_wire + 1) % len(ALL_WIRES)]
    for cut in range(1, len(whole)):
        decoder = FrameDecoder()
        items = decoder.feed(whole[:cut] + follower)
        assert items[-1] == Frame(p.unwrap_frame(follower), follower), cut
        assert decoder.bad_frames >= 1


def test_bare_start_byte_inside_a_frame_restarts_it():
    wire = ALL_WIRES[0]
    items = FrameDecoder().feed(wire[:7] + wire)
    assert items[0] == BadFrame(BadFrameReason.INTERRUPTED, wire[:7])
    assert isinstance(items[1], Frame)
    assert len(items) == 2


def test_checksum_mismatch_is_reported_with_the_payload_to_echo():
    wire = bytearray(bytes.fromhex("F0 81 A1 81 5F 01 20 00 01 2C 14 01 00 C8 10 0F"))
    wire[10] = 0x15  # 21 mA instead of 20
    [item] = FrameDecoder().feed(bytes(wire))
    assert isinstance(item, BadFrame)
    assert item.reason is BadFrameReason.CHECKSUM_MISMATCH
    assert item.payload is not None
    assert (item.payload[0], item.payload[1]) == (1, 32)


def test_length_mismatch_is_reported_with_the_payload_to_echo():
    [item] = FrameDecoder().feed(bytes.fromhex("F0 81 49 81 56 00 04 0F"))  # LEN 3, 2 bytes
    assert item == BadFrame(
        BadFrameReason.LENGTH_MISMATCH, bytes.fromhex("F0 81 49 81 56 00 04 0F"), b"\x00\x04"
    )


def test_header_value_not_sent_as_escaped_pair_is_a_malformed_header():
    [item] = FrameDecoder().feed(bytes.fromhex("F0 1C 81 57 00 04 0F"))
    assert isinstance(item, BadFrame)
    assert item.reason is BadFrameReason.MALFORMED_HEADER


def test_oversized_frame_is_dropped_and_the_decoder_resynchronises():
    decoder = FrameDecoder()
    junk = bytes.fromhex("F0 81 00 81 00") + bytes(200)
    items = decoder.feed(junk + ALL_WIRES[4])
    assert [type(i) for i in items] == [BadFrame, Frame]
    assert isinstance(items[0], BadFrame)
    assert items[0].reason is BadFrameReason.OVERSIZED
    assert len(items[0].wire) == 5 + 124 + 1
    assert p.decode_frame(items[1].payload) == Watchdog(packet_number=0)


def test_frame_with_empty_payload_is_too_short():
    [item] = FrameDecoder().feed(bytes.fromhex("F0 81 55 81 55 0F"))  # CRC 0, LEN 0
    assert isinstance(item, BadFrame)
    assert item.reason is BadFrameReason.TOO_SHORT


def test_any_escaped_value_is_unescaped_with_crc_over_the_received_bytes():
    body = bytes.fromhex("81 55 81 51")  # pn 0x00 and command 0x04, both needlessly escaped
    wire = bytes((0xF0, 0x81, p.crc8(body) ^ 0x55, 0x81, len(body) ^ 0x55)) + body + b"\x0f"
    [item] = FrameDecoder().feed(wire)
    assert isinstance(item, Frame)
    assert p.decode_frame(item.payload) == Watchdog(packet_number=0)


def test_empty_feed_returns_nothing_and_keeps_a_partial_frame():
    decoder = FrameDecoder()
    assert decoder.feed(ALL_WIRES[0][:4]) == []
    assert decoder.feed(b"") == []
    assert decoder.in_frame
    assert good_payloads(decoder.feed(ALL_WIRES[0][4:])) == [bytes.fromhex("00 01 01")]


# --- properties ---------------------------------------------------------------------------------

pns = st.integers(0, 255)
ANY_ACK = [Result.OK, Result.TRANSFER_ERROR, Result.PARAMETER_ERROR, Result.WRONG_MODE, Result.BUSY]
channel_settings = st.builds(
    ChannelSettings,
    pulse_group=st.sampled_from(PulseGroup),
    pulse_width_us=st.integers(0, 500),
    current_ma=st.integers(0, 130),
)
messages: st.SearchStrategy[p.Message] = st.one_of(
    st.builds(Init, packet_number=pns, protocol_version=st.integers(0, 255)),
    st.builds(InitAck, packet_number=pns, result=st.sampled_from([0, -5]).map(Result)),
    st.builds(UnknownCommand, packet_number=pns, received_command=st.integers(0, 255)),
    st.builds(Watchdog, packet_number=pns),
    st.builds(GetStimulationMode, packet_number=pns),
    st.builds(
        GetStimulationModeAck,
        packet_number=pns,
        result=st.just(Result.OK),
        mode=st.sampled_from(StimulationMode),
    ),
    st.builds(
        GetStimulationModeAck,
        packet_number=pns,
        result=st.sampled_from([Result.TRANSFER_ERROR, Result.BUSY]),
        mode=st.none(),
    ),
    st.builds(
        InitChannelListMode,
        packet_number=pns,
        low_frequency_factor=st.integers(0, 7),
        active_channel_mask=st.integers(0, 255),
        low_frequency_channel_mask=st.integers(0, 255),
        inter_pulse_interval_code=st.integers(0, 255),
        main_interval_code=st.integers(0, 2048),
        channel_execution=st.sampled_from(ChannelExecution),
    ),
    st.builds(InitChannelListModeAck, packet_number=pns, result=st.sampled_from(ANY_ACK)),
    st.builds(
        StartChannelListMode,
        packet_number=pns,
        channel_settings=st.lists(channel_settings, max_size=8).map(tuple),
    ),
    st.builds(StartChannelListModeAck, packet_number=pns, result=st.sampled_from(ANY_ACK)),
    st.builds(StopChannelListMode, packet_number=pns),
    st.builds(
        StopChannelListModeAck,
        packet_number=pns,
        result=st.sampled_from([Result.OK, Result.TRANSFER_ERROR]),
    ),
    st.builds(
        SinglePulse,
        packet_number=pns,
        channel_index=st.integers(0, 7),
        pulse_width_us=st.integers(0, 500),
        current_ma=st.integers(0, 130),
    ),
    st.builds(SinglePulseAck, packet_number=pns, result=st.sampled_from(ANY_ACK)),
    st.builds(StimulationError, packet_number=pns, error=st.sampled_from(StimulationErrorCode)),
)
# Garbage that does not end in 0x81: an unpaired escape byte right before a frame turns its F0
# into an escaped value. The decoder recovers from that by re-scanning (tested above with every
# cut point), but a random prefix can then forge a frame with a 2^-16 chance, which is a limit of
# an 8-bit CRC and would make this property flaky.
def _holds_no_frame(junk: bytes) -> bool:
    """Garbage that is (or contains) a whole valid frame is not garbage but a message."""
    return not good_payloads(FrameDecoder().feed(junk))


garbage = (st.binary(max_size=40).filter(lambda b: not b.endswith(b"\x81"))
           .filter(_holds_no_frame))


@given(messages)
def test_every_message_round_trips_through_encode_and_decode(message):
    assert p.decode_message(p.encode_message(message)) == message


@given(st.binary(min_size=2, max_size=62))
def test_every_payload_round_trips_and_frame_bytes_appear_only_where_allowed(payload):
    wire = p.encode_frame(payload)
    assert p.unwrap_frame(wire) == payload
    # Only the escaped header values may be raw F0/0F/81 besides the start and stop bytes.
    inner = wire[5:-1]
    assert 0xF0 not in inner
    assert 0x0F not in inner
    assert wire[0] == 0xF0
    assert wire[-1] == 0x0F
    assert (wire[1], wire[3]) == (0x81, 0x81)


@given(st.lists(st.tuples(garbage, messages), min_size=1, max_size=6), garbage, st.data())
def test_decoder_recovers_every_frame_among_garbage_and_random_splits(pairs, tail, data):
    stream = b"".join(junk + p.encode_message(m) for junk, m in pairs) + tail
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    decoder = FrameDecoder()
    items = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        items += decoder.feed(stream[a:b])
    assert [p.decode_frame(x) for x in good_payloads(items)] == [m for _, m in pairs]


@given(st.binary(max_size=300), messages)
def test_after_any_bytes_a_frame_behind_one_non_escape_byte_is_recovered(junk, message):
    decoder = FrameDecoder()
    wire = p.encode_message(message)
    items = decoder.feed(junk) + decoder.feed(b"\x00" + wire)
    assert items[-1] == Frame(p.encode_payload(message), wire)
    assert decoder.frames + decoder.bad_frames == len(items)


@given(st.binary(max_size=600))
def test_feed_never_raises_and_holds_at_most_one_frame_of_bytes(junk):
    decoder = FrameDecoder()
    items = decoder.feed(junk)
    assert all(len(item.wire) <= 130 for item in items)
    assert decoder.frames + decoder.bad_frames == len(items)


@given(st.lists(st.tuples(st.integers(0, 126), st.integers(0, 500)), min_size=1, max_size=8),
       st.integers(0, 255))
def test_a_channel_lists_start_frame_is_the_codecs_frame_of_the_message(channels, pn):
    from emsctl.drivers.sciencemode2.mapping import ListOutput

    settings = tuple(p.ChannelSettings(p.PulseGroup.SINGLE, width, current - current % 2)
                     for current, width in channels)
    output = ListOutput(29, (1 << len(settings)) - 1, settings)
    message = p.StartChannelListMode(packet_number=pn, channel_settings=settings)
    assert output.start_frame(pn) == p.encode_message(message)
    assert output.start_frame(pn) == output.start_frame(pn)  # the data is kept, not changed
