"""openEMSstim codec: the spec's test vectors byte for byte, its rules, and property tests.

Spec: docs/protocols/openemsstim.md (section numbers in the comments).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emsctl.drivers.openems.protocol import (
    BLE_CHARACTERISTIC_UUID,
    BLE_SERVICE_UUID,
    CONNECTION_END_LINE,
    SHUTDOWN,
    ActionCommand,
    BlankLine,
    CalibrationOption,
    CalibrationWindow,
    ConnectionEnd,
    Firmware,
    InertOption,
    LineParser,
    ParsedAction,
    SingleCharAction,
    SingleCharCommand,
    UnknownCommand,
    WindowBound,
    classify_line,
    decode_wv_hex,
    decode_wv_line,
    encode_ble,
    encode_option_plain,
    encode_serial,
    intensity_pct_to_wiper_steps,
    option_pct_to_window_steps,
    parse_command,
    rn4020_line,
    stop_sequence,
    wiper_steps_to_intensity_pct,
)
from emsctl.errors import ProtocolError

actions = st.builds(
    ActionCommand,
    channel=st.integers(0, 1),
    intensity_pct=st.integers(0, 100),
    on_time_ms=st.integers(0, 5000),
)
host_commands = st.one_of(actions, st.just(SHUTDOWN))
firmwares = st.sampled_from(Firmware)

# --- docs/protocols/openemsstim.md §11 test vectors
# ---------------------------------------------------------------------

WV_VECTORS = [
    (ActionCommand(0, 100, 1000), b"C0I100T1000G", b"WV,0018,433049313030543130303047."),
    (ActionCommand(1, 100, 1000), b"C1I100T1000G", b"WV,0018,433149313030543130303047."),
    (ActionCommand(0, 0, 0), b"C0I0T0G", b"WV,0018,43304930543047."),
    (ActionCommand(1, 0, 0), b"C1I0T0G", b"WV,0018,43314930543047."),
    (SHUTDOWN, b"C9G", b"WV,0018,433947."),
    (ActionCommand(0, 40, 1000), b"C0I40T1000G", b"WV,0018,4330493430543130303047."),
    (ActionCommand(1, 75, 500), b"C1I75T500G", b"WV,0018,43314937355435303047."),
    (ActionCommand(0, 100, 5000), b"C0I100T5000G", b"WV,0018,433049313030543530303047."),
]


@pytest.mark.parametrize(("command", "plain", "wire"), WV_VECTORS)
def test_serial_encoding_matches_spec_vector(command, plain, wire):
    assert encode_serial(command) == wire + b"\n"
    assert encode_ble(command) == plain


@pytest.mark.parametrize(("command", "plain", "wire"), WV_VECTORS)
def test_spec_vector_decodes_back_to_its_command(command, plain, wire):
    parsed = classify_line(wire)
    assert parsed == parse_command(plain)
    assert isinstance(parsed, ParsedAction)
    assert parsed.to_command() == command


@pytest.mark.parametrize(
    ("command", "payload_hex"),
    [
        (ActionCommand(0, 100, 1000), "43 30 49 31 30 30 54 31 30 30 30 47"),
        (ActionCommand(0, 0, 0), "43 30 49 30 54 30 47"),
        (SHUTDOWN, "43 39 47"),
    ],
)
def test_ble_payload_matches_spec_bytes(command, payload_hex):
    assert encode_ble(command) == bytes.fromhex(payload_hex)


@pytest.mark.parametrize(
    ("command", "length"), [(ActionCommand(0, 40, 1000), 32), (ActionCommand(0, 100, 5000), 34)]
)
def test_serial_line_length_with_newline_matches_spec(command, length):
    assert len(encode_serial(command)) == length


def test_guide_example_c1i0t50g_closes_channel_at_wiper_201_for_50_ms():
    parsed = parse_command(b"C1I0T50G")
    assert parsed == ParsedAction(channel=1, intensity_pct=0, on_time_ms=50)
    assert parsed.activates
    assert intensity_pct_to_wiper_steps(parsed.intensity_pct) == 201


def test_guide_example_on_time_7000_is_clamped_to_5000():
    parsed = parse_command(b"C0I50T7000G")
    assert parsed == ParsedAction(channel=0, intensity_pct=50, on_time_ms=7000)
    assert parsed.effective_on_time_ms == 5000


def test_stop_sequence_is_stop_idiom_per_active_channel_then_c9g():
    sequence = stop_sequence([1, 0, 1])
    assert [encode_ble(c) for c in sequence] == [b"C0I0T0G", b"C1I0T0G", b"C9G"]
    assert stop_sequence([]) == (SHUTDOWN,)


def test_wv_line_without_dot_loses_last_digit_ends_in_ff_and_is_ignored():
    parsed = classify_line(b"WV,0018,433049313030543130303047")
    assert parsed == UnknownCommand(b"C0I100T1000\xff")


def test_option_in_wv_form_is_corrupted_into_unknown_command():
    assert classify_line(b"WV,0018,4F4D415B302C38305D.") == UnknownCommand(b'ECAQ0"80S')


@pytest.mark.parametrize(
    ("intensity_pct", "wiper_steps"),
    [(0, 201), (1, 200), (10, 186), (25, 162), (50, 122), (75, 82), (99, 43), (100, 42),
     (101, 40), (102, 38), (150, 0), (151, 0), (205, 0)],
)  # fmt: skip
def test_intensity_to_wiper_matches_spec_table_for_default_window(intensity_pct, wiper_steps):
    assert intensity_pct_to_wiper_steps(intensity_pct) == wiper_steps


def test_uuids_are_the_ascii_names_in_hex():
    assert bytes.fromhex(BLE_SERVICE_UUID.replace("-", "")) == b"EMS-Service-BLE1"
    assert bytes.fromhex(BLE_CHARACTERISTIC_UUID.replace("-", "")) == b"EMS-Steuerung-CH"


# --- docs/protocols/openemsstim.md §5 table: what the firmware makes of each input
# ---------------------------------------


def test_full_intensity_action_sets_wiper_42_and_activates():
    parsed = parse_command(b"C0I100T1000G")
    assert parsed.activates
    assert intensity_pct_to_wiper_steps(parsed.intensity_pct) == 42


@pytest.mark.parametrize("text", [b"C9G", b"G", b"C2G", b"C10G"])
def test_channel_other_than_0_or_1_or_bare_g_shuts_down_all(text):
    parsed = parse_command(text)
    assert isinstance(parsed, ParsedAction)
    assert not parsed.activates
    assert not parsed.has_undefined_effect


def test_action_without_g_is_unknown_command():
    assert parse_command(b"C0I100T1000") == UnknownCommand(b"C0I100T1000")


def test_action_without_t_leaves_on_time_absent():
    assert parse_command(b"C0I20G").effective_on_time_ms is None


@pytest.mark.parametrize("firmware", list(Firmware))
def test_connection_end_line_shuts_down_on_both_firmwares(firmware):
    assert LineParser(firmware).feed(CONNECTION_END_LINE) == [ConnectionEnd()]
    assert classify_line(b"Connection End\r", firmware) == ConnectionEnd()


@pytest.mark.parametrize("line", [b"connection end", b"Connection End!", b"Connection  End"])
def test_only_the_exact_connection_end_text_shuts_down(line):
    assert classify_line(line) == SingleCharCommand(line[:1], SingleCharAction.UNKNOWN, None)


# --- docs/protocols/openemsstim.md §4.1 grammar rules
# --------------------------------------------------------------------


def test_field_value_is_digit_run_after_first_occurrence_of_its_letter():
    assert parse_command(b"C0I10I20T5T9G") == ParsedAction(0, 10, 5)


def test_fields_may_come_in_any_order_and_amid_other_bytes():
    assert parse_command(b"xT50\xffI3zC1G") == ParsedAction(1, 3, 50)


def test_letter_without_digits_is_minus_one_not_absent():
    parsed = parse_command(b"CI5G")
    assert parsed == ParsedAction(-1, 5, None)
    assert parsed.has_undefined_effect  # I without a channel indexes channel -1


def test_letters_are_case_sensitive():
    assert parse_command(b"c0i5t5g") == UnknownCommand(b"c0i5t5g")


def test_intensity_above_100_is_kept_and_flagged_not_clamped():
    parsed = parse_command(b"C0I150T100G")
    assert parsed.intensity_pct == 150
    assert parsed.exceeds_intensity_limit
    assert not parse_command(b"C0I100T100G").exceeds_intensity_limit


def test_huge_digit_runs_wrap_to_16_bits_and_leading_zeros_do_not_count():
    assert parse_command(b"C0I" + b"9" * 5000 + b"T1G").intensity_pct == -1
    assert parse_command(b"C0I" + b"0" * 5000 + b"7T1G").intensity_pct == 7
    assert parse_command(b"C0I2147483648T1G").intensity_pct == 0  # 2^31 ≡ 0 (mod 2^16)
    assert parse_command(b"C0I2147483647T1G").intensity_pct == -1


@pytest.mark.parametrize(
    "text", [b"G", b"C5G", b"C0I50G", b"C0T50G", b"C9I0G", b"C0I101T5G", b"C0I5T5001G"]
)
def test_to_command_rejects_what_the_host_never_sends(text):
    with pytest.raises(ProtocolError):
        parse_command(text).to_command()


# --- docs/protocols/openemsstim.md §3 line processing
# -------------------------------------------------------------------


def test_hex_letters_a_to_f_decode_to_0_to_5():
    assert decode_wv_hex(b"0A1B2C3D4E5F") == bytes([0x00, 0x11, 0x22, 0x33, 0x44, 0x55])


@pytest.mark.parametrize("pair", [b"4a", b"a4", b"4G", b"G4", b"  ", b"\xff0"])
def test_any_other_hex_character_yields_ff(pair):
    assert decode_wv_hex(pair) == b"\xff"


def test_lone_final_hex_character_yields_ff():
    assert decode_wv_hex(b"433") == b"C\xff"


def test_wv_line_takes_text_after_last_comma_minus_final_character():
    assert decode_wv_line(b"WV,00,18,433947.") == b"C9G"
    assert decode_wv_line(b"WV433947X") == decode_wv_hex(b"WV433947")


@given(actions, st.binary().map(lambda b: b.replace(b"\n", b"")), firmwares)
def test_any_handle_and_lowercase_hex_still_decode_action(command, handle, firmware):
    hex_text = encode_ble(command).hex().lower().encode()
    parsed = classify_line(b"WV," + handle + b"," + hex_text + b".", firmware)
    assert parsed.to_command() == command


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b" \t\r\n"])
def test_surrounding_whitespace_and_crlf_are_trimmed(ending):
    line = b"  " + encode_serial(ActionCommand(1, 20, 300)).rstrip(b"\n") + ending
    assert LineParser().feed(line) == [ParsedAction(1, 20, 300)]


@pytest.mark.parametrize("line", [b"", b"\r", b" \t "])
def test_line_blank_after_trimming_changes_nothing(line):
    assert classify_line(line) == BlankLine()


def test_line_containing_newline_is_rejected_by_classify_line():
    with pytest.raises(ProtocolError):
        classify_line(b"C0\nG")


@pytest.mark.parametrize(
    ("line", "action", "channel"),
    [
        (b"1", SingleCharAction.TOGGLE_RELAYS, 0),
        (b"2xyz", SingleCharAction.TOGGLE_RELAYS, 1),
        (b"q", SingleCharAction.WIPER_DOWN, 0),
        (b"w", SingleCharAction.WIPER_DOWN, 1),
        (b"a", SingleCharAction.WIPER_UP, 0),
        (b"s", SingleCharAction.WIPER_UP, 1),
        (b"C0I100T1000G", SingleCharAction.UNKNOWN, None),
        (b"OMA[0,80]", SingleCharAction.UNKNOWN, None),
    ],
)
def test_current_firmware_sends_plain_text_to_single_char_handler(line, action, channel):
    parsed = classify_line(line, Firmware.CURRENT)
    assert parsed == SingleCharCommand(line[:1], action, channel)
    assert parsed.unsafe == (action is not SingleCharAction.UNKNOWN)


def test_lowercase_wv_prefix_is_not_wv_but_test_key_w():
    parsed = classify_line(b"wv,0018,433947.")
    assert parsed == SingleCharCommand(b"w", SingleCharAction.WIPER_DOWN, 1)


def test_legacy_firmware_executes_plain_text_action():
    assert LineParser(Firmware.LEGACY).feed(b"C1I75T500G\r\n") == [ParsedAction(1, 75, 500)]


@pytest.mark.parametrize(
    ("text", "option", "window_steps"),
    [
        (b"OMA[0,80]", CalibrationOption(WindowBound.MAX, 0, 80), 204),
        (b"OMI[1,20]", CalibrationOption(WindowBound.MIN, 1, 20), 51),
        (b"OMA[0,50]", CalibrationOption(WindowBound.MAX, 0, 50), 128),
        (b"OMI[0,100]", CalibrationOption(WindowBound.MIN, 0, 100), 255),
    ],
)
def test_legacy_firmware_parses_calibration_option(text, option, window_steps):
    parsed = classify_line(text, Firmware.LEGACY)
    assert parsed == option
    assert parsed.window_steps == window_steps
    assert encode_option_plain(option) == text + b"\n"


@pytest.mark.parametrize("text", [b"OMA[0,80", b"OMX[0,80]", b"OMA[2,80]"])
def test_option_the_handler_cannot_use_is_ignored_silently(text):
    assert parse_command(text) == InertOption(text)


@pytest.mark.parametrize("text", [b"XMA[0,80]", b"MA[0,80]", b" OMA[0,80]"])
def test_text_that_does_not_start_with_o_is_unknown_command(text):
    assert parse_command(text) == UnknownCommand(text)


def test_rn4020_turns_a_write_into_wv_line_with_handle_001c():
    line = rn4020_line(b"C0I100T1000G")
    assert line == b"WV,001C,433049313030543130303047."
    assert classify_line(line) == ParsedAction(0, 100, 1000)


@pytest.mark.parametrize("value", [b"", b"C" * 33])
def test_rn4020_rejects_write_outside_characteristic_length(value):
    with pytest.raises(ProtocolError):
        rn4020_line(value)


def test_line_without_newline_is_processed_only_at_read_timeout():
    parser = LineParser()
    assert parser.feed(b"WV,0018,433947.") == []
    assert parser.pending == b"WV,0018,433947."
    assert parser.on_read_timeout() == [ParsedAction(9, None, None)]
    assert parser.pending == b""
    assert parser.on_read_timeout() == []


# --- host commands ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "intensity_pct", "on_time_ms"),
    [(-1, 0, 0), (2, 0, 0), (9, 0, 0), (0, -1, 0), (0, 101, 0), (0, 0, -1), (0, 0, 5001),
     (True, 0, 0), (0, 50.0, 0), (0, 0, "10")],
)  # fmt: skip
def test_action_command_rejects_values_out_of_range(channel, intensity_pct, on_time_ms):
    with pytest.raises(ProtocolError):
        ActionCommand(channel, intensity_pct, on_time_ms)


@pytest.mark.parametrize("channels", [[2], [0, -1]])
def test_stop_sequence_rejects_invalid_channel(channels):
    with pytest.raises(ProtocolError):
        stop_sequence(channels)


@given(host_commands)
def test_serial_form_is_wv_0018_uppercase_hex_dot_newline(command):
    assert re.fullmatch(rb"WV,0018,(?:[0-9A-F]{2})+\.\n", encode_serial(command))


@given(host_commands)
def test_host_line_never_reaches_single_char_handler(command):
    line = encode_serial(command)
    assert line[:1] not in b"12qwas"
    assert isinstance(classify_line(line.rstrip(b"\n"), Firmware.CURRENT), ParsedAction)


# --- round trips over both transport forms ------------------------------------------------------


@given(host_commands, firmwares)
def test_serial_form_round_trips_on_both_firmwares(command, firmware):
    assert [p.to_command() for p in LineParser(firmware).feed(encode_serial(command))] == [command]


@given(host_commands, firmwares)
def test_ble_write_round_trips_through_rn4020_line(command, firmware):
    assert classify_line(rn4020_line(encode_ble(command)), firmware).to_command() == command


@given(actions)
def test_plain_form_parses_to_the_same_fields(command):
    expected = ParsedAction(command.channel, command.intensity_pct, command.on_time_ms)
    assert parse_command(encode_ble(command)) == expected
    assert LineParser(Firmware.LEGACY).feed(encode_ble(command) + b"\n") == [expected]


# --- docs/protocols/openemsstim.md §10 robustness
# -------------------------------------------------------------------------


@given(st.binary(max_size=300), firmwares)
def test_random_bytes_never_raise_and_each_newline_yields_one_item(data, firmware):
    parser = LineParser(firmware)
    items = parser.feed(data)
    assert len(items) == data.count(b"\n")
    items += parser.on_read_timeout()
    assert len(items) == data.count(b"\n") + (not data.endswith(b"\n") and len(data) > 0)


@given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=10), firmwares)
def test_chunking_does_not_change_what_is_parsed(data, cuts, firmware):
    whole = LineParser(firmware).feed(data)
    parser, items, start = LineParser(firmware), [], 0
    for cut in sorted(cuts):
        items += parser.feed(data[start:cut])
        start = max(start, cut)
    items += parser.feed(data[start:])
    assert items == whole


garbage_lines = st.binary(max_size=40).map(lambda b: b.replace(b"\n", b""))


@given(st.lists(st.one_of(host_commands, garbage_lines), max_size=12), firmwares)
def test_valid_commands_interleaved_with_garbage_lines_are_recovered(stream, firmware):
    wire = b"".join(
        item + b"\n" if isinstance(item, bytes) else encode_serial(item) for item in stream
    )
    items = LineParser(firmware).feed(wire)
    assert len(items) == len(stream)
    for sent, received in zip(stream, items, strict=True):
        if not isinstance(sent, bytes):
            assert received.to_command() == sent


@given(garbage_lines, host_commands)
def test_command_after_unterminated_garbage_is_recovered_after_read_timeout(garbage, command):
    parser = LineParser()
    parser.feed(garbage)
    parser.on_read_timeout()
    assert [p.to_command() for p in parser.feed(encode_serial(command))] == [command]


# --- docs/protocols/openemsstim.md §4.2 / §4.3 intensity and calibration
# -------------------------------------------------


def test_every_intensity_0_to_100_has_a_distinct_wiper_and_maps_back():
    wipers = [intensity_pct_to_wiper_steps(i) for i in range(101)]
    assert len(set(wipers)) == 101
    assert [wiper_steps_to_intensity_pct(w) for w in wipers] == list(range(101))


def test_wiper_no_intensity_reaches_maps_to_none():
    assert wiper_steps_to_intensity_pct(199) is None  # between I=1 (200) and I=2 (198)
    assert wiper_steps_to_intensity_pct(255) is None


@given(st.integers(0, 10**6), st.integers(0, 255), st.integers(0, 255))
def test_wiper_stays_in_0_to_255_and_never_rises_with_intensity(intensity_pct, low, high):
    window = CalibrationWindow(low, high)
    wiper = intensity_pct_to_wiper_steps(intensity_pct, window)
    assert 0 <= wiper <= 255
    # monotonic while the firmware's 16-bit product (high − low)·I does not wrap
    if low <= high and (high - low) * intensity_pct <= 32767:
        assert intensity_pct_to_wiper_steps(intensity_pct + 1, window) <= wiper


def test_custom_window_shifts_the_mapping():
    window = CalibrationWindow(min_steps=0, max_steps=255)
    assert intensity_pct_to_wiper_steps(1, window) == 255
    assert intensity_pct_to_wiper_steps(101, window) == 0


@pytest.mark.parametrize("bad", [(-1, 215), (55, 256)])
def test_calibration_window_rejects_bounds_outside_0_to_255(bad):
    with pytest.raises(ProtocolError):
        CalibrationWindow(*bad)


@pytest.mark.parametrize(
    ("call", "value"),
    [
        (intensity_pct_to_wiper_steps, -1),
        (wiper_steps_to_intensity_pct, -1),
        (wiper_steps_to_intensity_pct, 256),
        (option_pct_to_window_steps, -1),
    ],
)
def test_intensity_helpers_reject_out_of_range_input(call, value):
    with pytest.raises(ProtocolError):
        call(value)


def test_codec_imports_no_serial_or_ble_library():
    code = (
        "import sys, emsctl.drivers.openems.protocol; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'serial', 'bleak'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
