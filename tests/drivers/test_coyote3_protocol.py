"""Coyote V3 codec: the spec's test vectors byte for byte, round-trip properties, robustness.

Every expected frame below is written out from the spec (docs/protocols/coyote3.md §13), never
computed with the code under test.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emsctl.drivers.coyote3 import protocol as p
from emsctl.drivers.coyote3.protocol import (
    B0Frame,
    BfFrame,
    ChannelWaveform,
    StrengthChange,
    StrengthMode,
    StrengthReport,
)
from emsctl.errors import ProtocolError

K, ADD, SUB, SET = StrengthMode.KEEP, StrengthMode.ADD, StrengthMode.SUBTRACT, StrengthMode.SET


def wave(codes: tuple[int, ...], intensities: tuple[int, ...]) -> ChannelWaveform:
    return ChannelWaveform(tuple(codes), tuple(intensities))  # type: ignore[arg-type]


def b0(seq, a, b, wave_a, wave_b) -> B0Frame:
    return B0Frame(seq, StrengthChange(*a), StrengthChange(*b), wave(*wave_a), wave(*wave_b))


QUIET = ChannelWaveform.steady(period_ms=10, intensity=0)
SILENT_B = ((0, 0, 0, 0), (0, 0, 0, 101))  # the vendor's "drive only A" padding: B invalid
A_ROW1 = ((10, 10, 10, 10), (0, 10, 20, 30))
A_ROW2 = ((15, 15, 15, 15), (40, 50, 60, 70))
A_ROW3 = ((30, 30, 30, 30), (80, 90, 100, 100))
A_ROW4 = ((40, 60, 80, 100), (100, 90, 90, 90))

# (hex, expected frame, channel A valid, channel B valid)
B0_VECTORS = [
    ("B00000000A0A0A0A000A141E0000000000000065", b0(0, (K, 0), (K, 0), A_ROW1, SILENT_B), 1, 0),
    ("B00000000F0F0F0F28323C460000000000000065", b0(0, (K, 0), (K, 0), A_ROW2, SILENT_B), 1, 0),
    ("B00000001E1E1E1E505A64640000000000000065", b0(0, (K, 0), (K, 0), A_ROW3, SILENT_B), 1, 0),
    ("B0000000283C5064645A5A5A0000000000000065", b0(0, (K, 0), (K, 0), A_ROW4, SILENT_B), 1, 0),
    ("B00405000A0A0A0A000A141E0000000000000065", b0(0, (ADD, 5), (K, 0), A_ROW1, SILENT_B), 1, 0),
    ("B0140A00283C5064645A5A5A0000000000000065", b0(1, (ADD, 10), (K, 0), A_ROW4, SILENT_B), 1, 0),
    (
        "B00000000A0A0A0A000A141E0A0A0A0A00000000",
        b0(0, (K, 0), (K, 0), A_ROW1, ((10, 10, 10, 10), (0, 0, 0, 0))),
        1,
        1,
    ),
    (
        "B00000000F0F0F0F28323C460A0A0A0A0A0A0A0A",
        b0(0, (K, 0), (K, 0), A_ROW2, ((10, 10, 10, 10), (10, 10, 10, 10))),
        1,
        1,
    ),
    (
        "B00000001E1E1E1E505A64640A0A0A0A0000000A",
        b0(0, (K, 0), (K, 0), A_ROW3, ((10, 10, 10, 10), (0, 0, 0, 10))),
        1,
        1,
    ),
    (
        "B0000000283C5064005A5A5A0A0A0A0A0000000A",
        b0(0, (K, 0), (K, 0), (A_ROW4[0], (0, 90, 90, 90)), ((10, 10, 10, 10), (0, 0, 0, 10))),
        1,
        1,
    ),
    (
        "B01F00000A0A0A0A000000000A0A0A0A00000000",
        b0(1, (SET, 0), (SET, 0), ((10,) * 4, (0,) * 4), ((10,) * 4, (0,) * 4)),
        1,
        1,
    ),
    (
        "B03C2800141414143C3C3C3C0A0A0A0A00000065",
        b0(3, (SET, 40), (K, 0), ((20,) * 4, (60,) * 4), ((10,) * 4, (0, 0, 0, 101))),
        1,
        0,
    ),
    (
        "B02801000A0A0A0A323232320A0A0A0A00000065",
        b0(2, (SUB, 1), (K, 0), ((10,) * 4, (50,) * 4), ((10,) * 4, (0, 0, 0, 101))),
        1,
        0,
    ),
    (
        "B04F141E69696969282828282828282846464646",
        b0(4, (SET, 20), (SET, 30), ((105,) * 4, (40,) * 4), ((40,) * 4, (70,) * 4)),
        1,
        1,
    ),
    (
        "B0000000141414143C3C3C3C141414143C3C3C3C",
        b0(0, (K, 0), (K, 0), ((20,) * 4, (60,) * 4), ((20,) * 4, (60,) * 4)),
        1,
        1,
    ),
]
VENDOR_B0_HEX = {row[0] for row in B0_VECTORS[:10]}


@pytest.mark.parametrize(("hex_frame", "frame", "valid_a", "valid_b"), B0_VECTORS)
def test_b0_vector_encodes_and_decodes_byte_for_byte(hex_frame, frame, valid_a, valid_b):
    assert p.encode_b0(frame) == bytes.fromhex(hex_frame)
    assert p.decode_b0(bytes.fromhex(hex_frame)) == frame
    assert p.decode_command(bytes.fromhex(hex_frame)) == frame
    assert frame.waveform_a.is_valid is bool(valid_a)
    assert frame.waveform_b.is_valid is bool(valid_b)


@pytest.mark.parametrize(
    ("factory", "hex_frame"),
    [
        (
            lambda: B0Frame(
                3,
                StrengthChange.set_to(40),
                StrengthChange.keep(),
                ChannelWaveform.from_frequency_hz(frequency_hz=50, intensity=60),
                wave((10,) * 4, (0, 0, 0, 101)),
            ),
            "B03C2800141414143C3C3C3C0A0A0A0A00000065",
        ),
        (
            lambda: B0Frame(
                2,
                StrengthChange.subtract(1),
                StrengthChange.keep(),
                ChannelWaveform.steady(period_ms=10, intensity=50),
                wave((10,) * 4, (0, 0, 0, 101)),
            ),
            "B02801000A0A0A0A323232320A0A0A0A00000065",
        ),
        (
            lambda: B0Frame(
                4,
                StrengthChange.set_to(20),
                StrengthChange.set_to(30),
                ChannelWaveform.from_frequency_hz(frequency_hz=8, intensity=40),
                ChannelWaveform.from_frequency_hz(frequency_hz=25, intensity=70),
            ),
            "B04F141E69696969282828282828282846464646",
        ),
        (
            lambda: B0Frame(
                1,
                StrengthChange.add(10),
                StrengthChange.keep(),
                ChannelWaveform.from_slots([40, 60, 80, 100], [100, 90, 90, 90]),
                wave((0,) * 4, (0, 0, 0, 101)),
            ),
            "B0140A00283C5064645A5A5A0000000000000065",
        ),
        (lambda: p.stop_frame(1), "B01F00000A0A0A0A000000000A0A0A0A00000000"),
    ],
)
def test_host_factories_build_the_spec_frames(factory, hex_frame):
    assert p.encode_b0(factory()) == bytes.fromhex(hex_frame)


@pytest.mark.parametrize(
    ("half_hex", "period_ms", "intensity"),
    [("0A0A0A0A00000000", 10, 0), ("0A0A0A0A64646464", 10, 100), ("151515155C5C5C5C", 21, 92)],
)
def test_example_channel_halves_are_steady_waveforms(half_hex, period_ms, intensity):
    half = bytes.fromhex(half_hex)
    frame = p.decode_b0(b"\xb0\x00\x00\x00" + half + half)
    expected = ChannelWaveform.steady(period_ms=period_ms, intensity=intensity)
    assert frame.waveform_a == frame.waveform_b == expected
    assert expected.is_valid


@pytest.mark.parametrize(
    ("hex_frame", "frame"),
    [
        ("BF3C3C80808080", BfFrame(60, 60, 128, 128, 128, 128)),
        ("BF961E00000000", BfFrame(150, 30, 0, 0, 0, 0)),
    ],
)
def test_bf_vector_encodes_and_decodes_byte_for_byte(hex_frame, frame):
    assert p.encode_bf(frame) == bytes.fromhex(hex_frame)
    assert p.decode_bf(bytes.fromhex(hex_frame)) == frame
    assert p.decode_command(bytes.fromhex(hex_frame)) == frame


@pytest.mark.parametrize(
    ("hex_frame", "report"),
    [
        ("B1053C00", StrengthReport(5, 60, 0)),
        ("B1000B00", StrengthReport(0, 11, 0)),
        ("B1011900", StrengthReport(1, 25, 0)),
        ("B102961E", StrengthReport(2, 150, 30)),
        ("B1010000", StrengthReport(1, 0, 0)),
    ],
)
def test_b1_vector_encodes_and_decodes_byte_for_byte(hex_frame, report):
    assert p.encode_b1(report) == bytes.fromhex(hex_frame)
    assert p.decode_b1(bytes.fromhex(hex_frame)) == report
    assert p.decode_notification(bytes.fromhex(hex_frame)) == report


def test_gatt_uuids_are_the_spec_short_uuids_on_the_base_uuid():
    assert p.SERVICE_UUID == "0000180c-0000-1000-8000-00805f9b34fb"
    assert p.WRITE_CHARACTERISTIC_UUID == "0000150a-0000-1000-8000-00805f9b34fb"
    assert p.NOTIFY_CHARACTERISTIC_UUID == "0000150b-0000-1000-8000-00805f9b34fb"
    assert p.BATTERY_SERVICE_UUID == "0000180a-0000-1000-8000-00805f9b34fb"
    assert p.BATTERY_CHARACTERISTIC_UUID == "00001500-0000-1000-8000-00805f9b34fb"


@pytest.mark.parametrize(
    ("name", "matches"),
    [("47L121000", True), ("47L121999", True), ("47L120100", False), ("47", False), (None, False)],
)
def test_only_the_pulse_host_name_or_its_prefix_matches(name, matches):
    assert p.is_coyote3_name(name) is matches


# --- strength rules (docs/protocols/coyote3.md §4, §6, §13 "strength transitions")
# --------------------------------

NIBBLE_CASES = [(0b0000, 10, 10), (0b0100, 15, 10), (0b0010, 10, 2), (0b0011, 10, 8)]
NIBBLE_CASES += [(0b0110, 15, 2), (0b1101, 5, 18)]


@pytest.mark.parametrize(("nibble", "want_a", "want_b"), NIBBLE_CASES)
def test_interpretation_nibble_applies_to_both_channels_as_in_vendor_examples(
    nibble, want_a, want_b
):
    frame = p.decode_b0(bytes([0xB0, 0x10 | nibble, 5, 8]) + bytes.fromhex("0A" * 4 + "00" * 4) * 2)
    update = p.apply_b0_strengths(frame, strengths_steps=(10, 10), limits_steps=(200, 200))
    assert (update.strength_a_steps, update.strength_b_steps) == (want_a, want_b)


@pytest.mark.parametrize(
    ("mode", "value", "want"),
    [
        (ADD, 195, 200),
        (SUB, 20, 0),
        (ADD, 201, 10),
        (SET, 201, 0),
        (SUB, 201, 10),
        (K, 50, 10),
        (SET, 200, 200),  # 200 itself is a value, not "above 200"
        (SUB, 200, 0),
        (SET, 255, 0),
    ],
)
def test_strength_saturates_and_a_value_above_200_acts_as_zero(mode, value, want):
    assert p.apply_strength_change(10, StrengthChange(mode, value), limit_steps=200) == want


def test_soft_limits_cap_an_absolute_set_and_the_report_carries_the_sequence():
    frame = B0Frame(
        2,
        StrengthChange.set_to(180),
        StrengthChange.set_to(40),
        ChannelWaveform.steady(period_ms=10, intensity=0),
        ChannelWaveform.steady(period_ms=10, intensity=0),
    )
    update = p.apply_b0_strengths(frame, strengths_steps=(0, 0), limits_steps=(150, 30))
    assert (update.strength_a_steps, update.strength_b_steps) == (150, 30)
    assert update.report is not None
    assert p.encode_b1(update.report) == bytes.fromhex("B102961E")


def test_vendor_example_seq0_change_applies_but_is_not_reported_then_seq1_is():
    first = p.decode_b0(bytes.fromhex("B00405000A0A0A0A000A141E0000000000000065"))
    update = p.apply_b0_strengths(first, strengths_steps=(10, 0), limits_steps=(200, 200))
    assert (update.strength_a_steps, update.report) == (15, None)
    second = p.decode_b0(bytes.fromhex("B0140A00283C5064645A5A5A0000000000000065"))
    update = p.apply_b0_strengths(second, strengths_steps=(15, 0), limits_steps=(200, 200))
    assert update.report is not None
    assert p.encode_b1(update.report) == bytes.fromhex("B1011900")


def test_stop_frame_is_reported_only_if_something_changed():
    stop = p.stop_frame(1)
    changed = p.apply_b0_strengths(stop, strengths_steps=(7, 0), limits_steps=(200, 200))
    assert changed.report is not None
    assert p.encode_b1(changed.report) == bytes.fromhex("B1010000")
    already = p.apply_b0_strengths(stop, strengths_steps=(0, 0), limits_steps=(200, 200))
    assert already.report is None


def test_repeated_absolute_set_is_idempotent_and_reported_once():
    frame = B0Frame(1, StrengthChange.set_to(30), StrengthChange.keep(), *[QUIET] * 2)
    first = p.apply_b0_strengths(frame, strengths_steps=(0, 0), limits_steps=(200, 200))
    again = p.apply_b0_strengths(frame, strengths_steps=(30, 0), limits_steps=(200, 200))
    assert first.report == StrengthReport(1, 30, 0)
    assert (again.strength_a_steps, again.report) == (30, None)


def test_ack_unchanged_answers_an_unchanging_change_request_but_never_a_keep_frame():
    set_frame = p.stop_frame(5)
    update = p.apply_b0_strengths(
        set_frame, strengths_steps=(0, 0), limits_steps=(200, 200), ack_unchanged=True
    )
    assert update.report == StrengthReport(5, 0, 0)
    keep = B0Frame(5, StrengthChange.keep(), StrengthChange.keep(), *[set_frame.waveform_a] * 2)
    update = p.apply_b0_strengths(
        keep, strengths_steps=(3, 4), limits_steps=(200, 200), ack_unchanged=True
    )
    assert update.report is None


strength_steps = st.integers(0, 200)
byte = st.integers(0, 255)
changes = st.builds(StrengthChange, st.sampled_from(StrengthMode), byte)


@given(strength_steps, changes, strength_steps)
def test_any_strength_change_stays_within_zero_and_the_soft_limit(current, change, limit):
    result = p.apply_strength_change(min(current, limit), change, limit_steps=limit)
    assert 0 <= result <= limit


@given(strength_steps, strength_steps, byte, byte)
def test_bf_limit_above_200_keeps_the_limit_and_strength_never_rises(strength, limit, new_a, new_b):
    strength = min(strength, limit)
    frame = BfFrame(new_a, new_b, 1, 2, 3, 4)
    update = p.apply_bf_limits(
        frame, strengths_steps=(strength, strength), limits_steps=(limit, limit)
    )
    assert update.limit_a_steps == (new_a if new_a <= 200 else limit)
    assert update.limit_b_steps == (new_b if new_b <= 200 else limit)
    assert update.strength_a_steps == min(strength, update.limit_a_steps)
    assert update.strength_b_steps == min(strength, update.limit_b_steps)
    lowered = (update.strength_a_steps, update.strength_b_steps) != (strength, strength)
    expected = StrengthReport(0, update.strength_a_steps, update.strength_b_steps)
    assert update.report == (expected if lowered else None)


def test_wheel_step_up_from_10_is_reported_as_b1000b00():
    strength = p.wheel_step(10, up=True, limit_steps=200)
    assert p.encode_b1(StrengthReport(0, strength, 0)) == bytes.fromhex("B1000B00")


@pytest.mark.parametrize(
    ("strength", "up", "limit", "want"), [(30, True, 30, 30), (0, False, 200, 0), (5, False, 9, 4)]
)
def test_wheel_step_is_clamped_to_zero_and_the_soft_limit(strength, up, limit, want):
    assert p.wheel_step(strength, up=up, limit_steps=limit) == want


# --- waveform validity and output (docs/protocols/coyote3.md §4, §7, §12)
# ----------------------------------------

valid_codes = st.integers(10, 240)
valid_intensities = st.integers(0, 100)
valid_waves = st.builds(
    ChannelWaveform,
    st.tuples(valid_codes, valid_codes, valid_codes, valid_codes),
    st.tuples(valid_intensities, valid_intensities, valid_intensities, valid_intensities),
)


@given(
    valid_waves,
    st.integers(0, 7),
    st.one_of(st.integers(0, 9), st.integers(241, 255)),
    st.integers(101, 255),
)
def test_one_out_of_range_byte_silences_the_whole_channel(waveform, index, bad_code, bad_level):
    assert waveform.is_valid
    codes, levels = list(waveform.frequency_codes), list(waveform.intensities)
    if index < 4:
        codes[index] = bad_code
    else:
        levels[index - 4] = bad_level
    broken = wave(tuple(codes), tuple(levels))
    assert not broken.is_valid
    assert not any(p.channel_emits(200, broken, slot) for slot in range(4))


def test_frequency_byte_zero_padding_silences_the_channel():
    assert not wave((10, 10, 10, 0), (50, 50, 50, 50)).is_valid


def test_channel_emits_only_with_strength_valid_waveform_and_slot_intensity():
    waveform = ChannelWaveform.from_slots([10, 10, 10, 10], [0, 10, 20, 30])
    assert [p.channel_emits(1, waveform, slot) for slot in range(4)] == [False, True, True, True]
    assert not any(p.channel_emits(0, waveform, slot) for slot in range(4))


# --- frequency byte (docs/protocols/coyote3.md §4, §13 "frequency byte")
# ------------------------------------------


PERIOD_TO_CODE = [(10, 10), (20, 20), (50, 50), (100, 100), (110, 102), (150, 110), (680, 208)]
PERIOD_TO_CODE += [(750, 215), (1000, 240), (650, 205), (600, 200), (125, 105)]
PERIOD_TO_CODE += zip(
    [1000, 500, 333, 250, 200, 166, 142, 125, 111, 100],
    [240, 180, 146, 130, 120, 113, 108, 105, 102, 100],
    strict=True,
)
PERIOD_TO_CODE += zip(
    range(100, 1001, 100), [100, 120, 140, 160, 180, 200, 210, 220, 230, 240], strict=True
)


@pytest.mark.parametrize(("period_ms", "code"), PERIOD_TO_CODE)
def test_period_encodes_to_the_spec_frequency_byte(period_ms, code):
    assert p.frequency_code_from_period_ms(period_ms) == code


def test_formula_governs_650ms_so_204_decodes_to_640_and_205_to_650():
    assert p.period_ms_from_frequency_code(204) == 640
    assert p.period_ms_from_frequency_code(205) == 650


def test_every_valid_code_decodes_to_a_period_that_encodes_back_to_it():
    periods = [p.period_ms_from_frequency_code(code) for code in range(10, 241)]
    assert [p.frequency_code_from_period_ms(period) for period in periods] == list(range(10, 241))
    assert periods == sorted(set(periods)), "decoding must be strictly increasing"
    assert (periods[0], periods[-1]) == (10, 1000)


def test_every_period_rounds_down_within_its_bin_width_and_encoding_is_monotonic():
    codes = []
    for period_ms in range(10, 1001):
        code = p.frequency_code_from_period_ms(period_ms)
        error_ms = period_ms - p.period_ms_from_frequency_code(code)
        bound_ms = 1 if period_ms <= 100 else 5 if period_ms < 600 else 10
        assert 0 <= error_ms < bound_ms, period_ms
        assert error_ms < p.period_bin_width_ms(period_ms)
        codes.append(code)
    assert codes == sorted(codes)


@given(st.floats(1.0, 100.0))
def test_hz_maps_to_the_nearest_whole_ms_period_within_range(frequency_hz):
    period_ms = p.period_ms_from_frequency_hz(frequency_hz)
    assert 10 <= period_ms <= 1000
    assert abs(1000.0 / frequency_hz - period_ms) <= 0.5
    played_hz = p.frequency_hz_from_code(p.frequency_code_from_hz(frequency_hz))
    assert played_hz >= 1000.0 / period_ms  # the bin's lower edge: never a slower rate


@given(st.floats(1.0, 100.0), st.floats(1.0, 100.0))
def test_frequency_code_is_monotonic_non_increasing_in_hz(f1, f2):
    low, high = sorted((f1, f2))
    assert p.frequency_code_from_hz(low) >= p.frequency_code_from_hz(high)


@pytest.mark.parametrize(("frequency_hz", "period_ms"), [(100, 10), (1, 1000), (8, 125), (80, 13)])
def test_hz_to_period_rounds_half_up(frequency_hz, period_ms):
    assert p.period_ms_from_frequency_hz(frequency_hz) == period_ms
    assert p.frequency_hz_from_period_ms(period_ms) == pytest.approx(1000 / period_ms)


@pytest.mark.parametrize("period_ms", [9, 1001, 0, -10, True, 12.0])
def test_period_outside_10_to_1000_is_rejected_never_mapped_to_100hz(period_ms):
    with pytest.raises(ProtocolError):
        p.frequency_code_from_period_ms(period_ms)


@pytest.mark.parametrize("frequency_hz", [0.99, 100.01, 0, -5, math.nan, math.inf, True])
def test_frequency_outside_1_to_100_hz_is_rejected(frequency_hz):
    with pytest.raises(ProtocolError):
        p.period_ms_from_frequency_hz(frequency_hz)


@pytest.mark.parametrize("code", [0, 9, 241, 255])
def test_decoding_an_invalid_frequency_byte_is_rejected(code):
    with pytest.raises(ProtocolError):
        p.period_ms_from_frequency_code(code)


# --- sequence numbers and host rules (docs/protocols/coyote3.md §9, §10, §12)
# ------------------------------------


def test_sequence_rotates_through_1_to_15_and_never_yields_0():
    seen, seq = [], 0
    for _ in range(30):
        seq = p.next_sequence(seq)
        seen.append(seq)
    assert seen == list(range(1, 16)) * 2


@pytest.mark.parametrize(("hex_frame", "frame", "valid_a", "valid_b"), B0_VECTORS)
def test_host_check_accepts_computed_frames_and_rejects_zero_padding_or_seq0_changes(
    hex_frame, frame, valid_a, valid_b
):
    zero_padded = 0 in frame.waveform_a.frequency_codes + frame.waveform_b.frequency_codes
    seq0_change = frame.sequence == 0 and frame.changes_strength
    if zero_padded or seq0_change:
        assert hex_frame in VENDOR_B0_HEX
        with pytest.raises(ProtocolError):
            p.check_host_b0(frame)
    else:
        p.check_host_b0(frame)


def test_host_check_rejects_a_strength_value_above_200():
    good = p.stop_frame(1)
    bad = B0Frame(1, StrengthChange(SET, 201), good.change_b, good.waveform_a, good.waveform_b)
    with pytest.raises(ProtocolError, match="0–200"):
        p.check_host_b0(bad)


def test_host_bf_check_rejects_a_limit_that_would_leave_the_old_one_in_place():
    p.check_host_bf(BfFrame(200, 0, 0, 0, 0, 0))
    with pytest.raises(ProtocolError):
        p.check_host_bf(BfFrame(60, 201, 128, 128, 128, 128))


@pytest.mark.parametrize(
    "build",
    [
        lambda: StrengthChange.set_to(201),
        lambda: StrengthChange.add(-1),
        lambda: StrengthChange(4, 0),
        lambda: StrengthChange(SET, 256),
        lambda: ChannelWaveform.steady(period_ms=1001, intensity=0),
        lambda: ChannelWaveform.steady(period_ms=10, intensity=101),
        lambda: ChannelWaveform.from_slots([10, 10, 10], [0, 0, 0]),
        lambda: ChannelWaveform.from_frequency_hz(frequency_hz=120, intensity=0),
        lambda: ChannelWaveform((10, 10, 10, 256), (0, 0, 0, 0)),
        lambda: ChannelWaveform("abcd", (0, 0, 0, 0)),  # type: ignore[arg-type]
        lambda: B0Frame(16, StrengthChange.keep(), StrengthChange.keep(), *[QUIET] * 2),
        lambda: BfFrame(0, 0, 0, 0, 0, -1),
        lambda: StrengthReport(16, 0, 0),
        lambda: StrengthReport(0, 201, 0),
        lambda: p.stop_frame(0),
        lambda: p.next_sequence(16),
        lambda: p.apply_strength_change(201, StrengthChange.keep(), limit_steps=200),
        lambda: p.encode_battery_level(101),
    ],
)
def test_out_of_range_values_raise_protocol_error(build):
    with pytest.raises(ProtocolError):
        build()


def test_battery_level_is_one_byte_0_to_100():
    assert p.decode_battery_level(p.encode_battery_level(87)) == 87
    for raw in (b"", b"\x10\x10", b"\x65"):
        with pytest.raises(ProtocolError):
            p.decode_battery_level(raw)


# --- robustness (docs/protocols/coyote3.md §3, §12)
# ----------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        bytes.fromhex("B0000000"),
        bytes.fromhex("B00000000A0A0A0A000A141E00000000000000"),  # 19 bytes
        bytes.fromhex("B00000000A0A0A0A000A141E000000000000006500"),  # 21 bytes
        bytes.fromhex("BF3C3C808080"),
        bytes.fromhex("BF3C3C8080808000"),
        bytes.fromhex("B1053C00"),  # a device frame written to the device
        bytes.fromhex("BE3C3C80808080"),
        bytes.fromhex("A00000000A0A0A0A000A141E0000000000000065"),
    ],
)
def test_short_long_or_unknown_writes_are_protocol_errors(raw):
    with pytest.raises(ProtocolError):
        p.decode_command(raw)


def test_notifications_with_another_head_are_ignored():
    assert p.decode_notification(bytes.fromhex("BE3C3C80808080")) is None
    assert p.decode_notification(b"\x00") is None


def test_a_b1_longer_than_4_bytes_uses_its_first_4():
    assert p.decode_notification(bytes.fromhex("B1053C00FFFF")) == StrengthReport(5, 60, 0)


@pytest.mark.parametrize("raw", [b"", b"\xb1", bytes.fromhex("B1053C"), bytes.fromhex("B1103C00")])
def test_empty_short_or_bad_sequence_b1_is_a_protocol_error(raw):
    with pytest.raises(ProtocolError):
        p.decode_notification(raw)


def test_b1_reporting_a_strength_above_200_is_a_protocol_error_not_ignored():
    with pytest.raises(ProtocolError):
        p.decode_notification(bytes.fromhex("B101C900"))


def test_decoders_accept_bytearray_and_memoryview():
    raw = bytes.fromhex("B04F141E69696969282828282828282846464646")
    assert p.decode_command(bytearray(raw)) == p.decode_command(memoryview(raw))


@given(st.binary(max_size=40))
def test_random_writes_decode_or_raise_protocol_error_only(raw):
    try:
        frame = p.decode_command(raw)
    except ProtocolError:
        return
    encoded = p.encode_b0(frame) if isinstance(frame, B0Frame) else p.encode_bf(frame)
    assert encoded == raw


@given(st.binary(max_size=40))
def test_random_notifications_decode_ignore_or_raise_protocol_error_only(raw):
    try:
        report = p.decode_notification(raw)
    except ProtocolError:
        return
    if report is not None:
        assert p.encode_b1(report) == raw[:4]


@given(st.binary(min_size=19, max_size=19))
def test_every_20_byte_b0_frame_decodes_and_re_encodes_identically(tail):
    raw = b"\xb0" + tail
    assert p.encode_b0(p.decode_b0(raw)) == raw


@given(st.binary(min_size=6, max_size=6))
def test_every_7_byte_bf_frame_decodes_and_re_encodes_identically(tail):
    raw = b"\xbf" + tail
    assert p.encode_bf(p.decode_bf(raw)) == raw


# --- round trips (encode → decode is the identity) -------------------------------------------

byte_quartets = st.tuples(byte, byte, byte, byte)
any_waves = st.builds(ChannelWaveform, byte_quartets, byte_quartets)
b0_frames = st.builds(B0Frame, st.integers(0, 15), changes, changes, any_waves, any_waves)
bf_frames = st.builds(BfFrame, byte, byte, byte, byte, byte, byte)
b1_reports = st.builds(StrengthReport, st.integers(0, 15), strength_steps, strength_steps)


@given(b0_frames)
def test_b0_round_trips(frame):
    raw = p.encode_b0(frame)
    assert len(raw) == 20
    assert p.decode_b0(raw) == frame


@given(bf_frames)
def test_bf_round_trips(frame):
    raw = p.encode_bf(frame)
    assert len(raw) == 7
    assert p.decode_bf(raw) == frame


@given(b1_reports)
def test_b1_round_trips(report):
    raw = p.encode_b1(report)
    assert len(raw) == 4
    assert p.decode_b1(raw) == report


@given(st.integers(0, 100))
def test_battery_level_round_trips(battery_pct):
    assert p.decode_battery_level(p.encode_battery_level(battery_pct)) == battery_pct


# --- purity ------------------------------------------------------------------------------------


def test_protocol_imports_no_io_clock_thread_or_bleak_module():
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import emsctl.drivers.coyote3.protocol\n"
        "new = set(sys.modules) - before\n"
        "bad = {'bleak', 'asyncio', 'threading', 'socket', 'serial', 'time'} & new\n"
        "print(sorted(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_public_names_are_all_exported():
    assert sorted(p.__all__) == sorted(set(p.__all__))
    for name in p.__all__:
        assert hasattr(p, name), name
