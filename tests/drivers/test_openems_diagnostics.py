"""openEMSstim debug output (docs/protocols/openemsstim.md §2, §7, §10): emitted by the emulator,
tagged by the host."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emsctl.drivers.openems.protocol import (
    DebugKind,
    DebugLine,
    DebugLineParser,
    encode_debug_line,
    parse_debug_line,
)


def test_setup_banner_is_the_spec_text_with_crlf():
    assert encode_debug_line(DebugKind.SETUP_DONE) == b"SETUP DONE (LED 13 WILL BE ON)\r\n"


def test_single_char_error_is_the_spec_text_with_crlf():
    assert (
        encode_debug_line(DebugKind.SINGLE_CHAR_UNKNOWN)
        == b"ERROR: SINGLE-CHAR Command Unknown\r\n"
    )


def test_unknown_command_line_carries_the_command():
    assert encode_debug_line(DebugKind.UNKNOWN_COMMAND, b"C0I100T1000") == (
        b"Unknown command: C0I100T1000\r\n"
    )


def test_setup_banner_is_found_amid_free_form_text():
    output = b"BLE init...\r\nsome \xff noise\r\n" + encode_debug_line(DebugKind.SETUP_DONE)
    kinds = [line.kind for line in DebugLineParser().feed(output)]
    assert kinds == [DebugKind.OTHER, DebugKind.OTHER, DebugKind.SETUP_DONE]


@pytest.mark.parametrize("kind", [DebugKind.HEX_ECHO, DebugKind.UNKNOWN_COMMAND])
@pytest.mark.parametrize("command", [b"C0I100T1000G", b'ECAQ0"80S', b"C0I100T1000\xff", b""])
def test_prefixed_line_round_trips_its_command(kind, command):
    [line] = DebugLineParser().feed(encode_debug_line(kind, command))
    assert line.kind is kind
    assert line.payload == command


def test_blank_lines_are_skipped_and_partial_line_waits():
    parser = DebugLineParser()
    assert parser.feed(b"\r\n\r\n  \r\nSETUP DO") == []
    assert parser.pending == b"SETUP DO"
    assert parser.feed(b"NE (LED 13 WILL BE ON)\r\n") == [
        DebugLine(DebugKind.SETUP_DONE, b"SETUP DONE (LED 13 WILL BE ON)")
    ]


def test_text_that_only_resembles_a_known_line_is_other():
    assert parse_debug_line(b"SETUP DONE").kind is DebugKind.OTHER
    assert parse_debug_line(b"Unknown command:X").kind is DebugKind.OTHER


@given(st.binary(max_size=300))
def test_random_device_output_never_raises(data):
    lines = DebugLineParser().feed(data)
    assert len(lines) <= data.count(b"\n")
    assert all(line.text == line.text.strip() and line.text for line in lines)
