"""openEMSstim line processing, as the firmware reads its serial ports
(docs/protocols/openemsstim.md §2, §3, §4.4).

:func:`classify_line` turns one received line into what the firmware acts on: a WV line is
hex-decoded with the firmware's quirk and parsed as a command, ``Connection End`` shuts down,
and other text goes to the single-character test handler (current firmware) or is a plain
command (legacy firmware). :class:`LineParser` splits a byte stream into such lines;
:func:`rn4020_line` is what the BLE module hands the microcontroller for a write.

Pure: no I/O, no clock, no threads. The caller owns time and reports the 50 ms read timeout
through :meth:`LineParser.on_read_timeout`. Nothing here may raise on received bytes.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass

from emsctl.drivers.openems.commands import Command, parse_command
from emsctl.errors import ProtocolError

__all__ = [
    "BLE_CHARACTERISTIC_UUID",
    "BLE_MAX_VALUE_LEN",
    "BLE_SERVICE_UUID",
    "CONNECTION_END",
    "CONNECTION_END_LINE",
    "RN4020_WV_HANDLE",
    "SERIAL_BAUDRATE",
    "BlankLine",
    "ConnectionEnd",
    "DeviceInput",
    "Firmware",
    "LineParser",
    "SingleCharAction",
    "SingleCharCommand",
    "classify_line",
    "decode_wv_hex",
    "decode_wv_line",
    "rn4020_line",
]

SERIAL_BAUDRATE = 19_200  # 8N1, no flow control
BLE_SERVICE_UUID = "454d532d-5365-7276-6963-652d424c4531"  # ASCII "EMS-Service-BLE1"
BLE_CHARACTERISTIC_UUID = "454d532d-5374-6575-6572-756e672d4348"  # ASCII "EMS-Steuerung-CH"
BLE_MAX_VALUE_LEN = 32
RN4020_WV_HANDLE = b"001C"  # what the RN4020 reports for a characteristic write
CONNECTION_END = b"Connection End"
CONNECTION_END_LINE = CONNECTION_END + b"\n"


class Firmware(enum.Enum):
    """Firmware generation, which decides what a plain-text line does
    (docs/protocols/openemsstim.md §3)."""

    CURRENT = "current"  # since 2017-01-24: plain text goes to the single-character handler
    LEGACY = "legacy"  # 2016-07-11 to 2017-01-23: plain text is a command


@dataclass(frozen=True, slots=True)
class ConnectionEnd:
    """The line ``Connection End``: all channels shut down."""


@dataclass(frozen=True, slots=True)
class BlankLine:
    """A line that is empty after trimming. The spec is silent; it changes no state."""


class SingleCharAction(enum.Enum):
    """What the current firmware's single-character test handler does
    (docs/protocols/openemsstim.md §4.4)."""

    TOGGLE_RELAYS = "toggle_relays"  # no on-time: stays on until toggled or shut down
    WIPER_DOWN = "wiper_down"  # one step more signal
    WIPER_UP = "wiper_up"  # one step less signal
    UNKNOWN = "unknown"  # prints ERROR: SINGLE-CHAR Command Unknown


_SINGLE_CHAR_TABLE: dict[bytes, tuple[SingleCharAction, int]] = {
    b"1": (SingleCharAction.TOGGLE_RELAYS, 0),
    b"2": (SingleCharAction.TOGGLE_RELAYS, 1),
    b"q": (SingleCharAction.WIPER_DOWN, 0),
    b"w": (SingleCharAction.WIPER_DOWN, 1),
    b"a": (SingleCharAction.WIPER_UP, 0),
    b"s": (SingleCharAction.WIPER_UP, 1),
}


@dataclass(frozen=True, slots=True)
class SingleCharCommand:
    """A plain-text line on current firmware; only its first byte counts
    (docs/protocols/openemsstim.md §4.4).

    Attributes:
        key: The first byte of the trimmed line.
        action: What the handler does with it.
        channel: Zero-based channel (key ``1`` → 0), None for ``UNKNOWN``.
    """

    key: bytes
    action: SingleCharAction
    channel: int | None

    @property
    def unsafe(self) -> bool:
        """True for every key that changes output; the host must never send these."""
        return self.action is not SingleCharAction.UNKNOWN


DeviceInput = Command | SingleCharCommand | ConnectionEnd | BlankLine


def _nibble(char: int) -> int | None:
    if 0x30 <= char <= 0x39:
        return char - 0x30
    if 0x41 <= char <= 0x46:
        return char - 0x41  # the firmware quirk: A-F decode to 0-5
    return None


def decode_wv_hex(hex_text: bytes) -> bytes:
    """Decode hex the way the firmware does (docs/protocols/openemsstim.md §3): two characters per
    byte.

    ``A``-``F`` decode to 0-5; any other non-digit (lowercase included) makes the byte 0xFF,
    and so does a lone final character.
    """
    out = bytearray()
    for i in range(0, len(hex_text), 2):
        high, low = _nibble(hex_text[i]), None
        if i + 1 < len(hex_text):
            low = _nibble(hex_text[i + 1])
        out.append(0xFF if high is None or low is None else high * 16 + low)
    return bytes(out)


def decode_wv_line(line: bytes) -> bytes:
    """Extract and decode the command of a trimmed ``WV`` line (docs/protocols/openemsstim.md §3).

    Takes the text after the last comma (the whole line if there is none), drops its final
    character and decodes the rest; the handle is ignored.
    """
    value = line[line.rfind(b",") + 1 :]
    return decode_wv_hex(value[:-1])


def classify_line(line: bytes, firmware: Firmware = Firmware.CURRENT) -> DeviceInput:
    """Process one received line as the firmware does (docs/protocols/openemsstim.md §3); never
    raises on line content.

    Args:
        line: The line without its ``\\n``; surrounding whitespace is trimmed here.
        firmware: Which generation decides what plain text does.

    Returns:
        What the firmware would act on.

    Raises:
        ProtocolError: if ``line`` contains ``\\n`` (it is not one line).
    """
    if b"\n" in line:
        raise ProtocolError("a line must not contain a newline")
    # bytes.strip() trims exactly C isspace(), like String::trim()
    return _classify_trimmed(bytes(line.strip()), firmware)


@functools.lru_cache(maxsize=256)  # a session repeats the same few lines (its heartbeats)
def _classify_trimmed(trimmed: bytes, firmware: Firmware) -> DeviceInput:
    if trimmed.startswith(b"WV"):
        return parse_command(decode_wv_line(trimmed))
    if trimmed == CONNECTION_END:
        return ConnectionEnd()
    if not trimmed:
        return BlankLine()
    if firmware is Firmware.LEGACY:
        return parse_command(trimmed)
    key = trimmed[:1]
    action, channel = _SINGLE_CHAR_TABLE.get(key, (SingleCharAction.UNKNOWN, None))
    return SingleCharCommand(key, action, channel)


def rn4020_line(value: bytes) -> bytes:
    """The line the RN4020 passes to the microcontroller for a characteristic write
    (docs/protocols/openemsstim.md §2).

    Returns ``WV,001C,<UPPERCASE HEX>.`` without terminator, ready for :func:`classify_line`.

    Raises:
        ProtocolError: if ``value`` is empty or longer than the characteristic's 32 bytes.
    """
    if not 1 <= len(value) <= BLE_MAX_VALUE_LEN:
        raise ProtocolError(f"BLE write of {len(value)} bytes; the characteristic takes 1-32")
    return b"WV," + RN4020_WV_HANDLE + b"," + value.hex().upper().encode("ascii") + b"."


class LineParser:
    """Incremental line processor for host-to-device bytes, as the firmware reads them.

    ``\\n`` ends a line; a partial line is processed when the caller reports the 50 ms read
    timeout through :meth:`on_read_timeout`. Every completed line yields exactly one item.
    """

    def __init__(self, firmware: Firmware = Firmware.CURRENT) -> None:
        """Create a parser for ``firmware`` with an empty buffer."""
        self._firmware = firmware
        self._pending = bytearray()

    @property
    def pending(self) -> bytes:
        """Bytes received since the last complete line."""
        return bytes(self._pending)

    def feed(self, data: bytes) -> list[DeviceInput]:
        """Add received bytes; return one item per line they complete, in order."""
        self._pending += data
        if b"\n" not in data:
            return []
        *lines, rest = bytes(self._pending).split(b"\n")
        self._pending = bytearray(rest)
        return [classify_line(line, self._firmware) for line in lines]

    def on_read_timeout(self) -> list[DeviceInput]:
        """Process the partial line, as the firmware does when its read times out.

        Returns:
            One item if bytes were pending, else none.
        """
        if not self._pending:
            return []
        line = bytes(self._pending)
        self._pending.clear()
        return [classify_line(line, self._firmware)]
