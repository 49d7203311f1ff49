"""Pure codec for openEMSstim / "Let Your Body Move" (serial and BLE via RN4020).

Implements ``../shared/protocols/openemsstim.md`` in both directions:

* host side: action commands encoded in the WV form every firmware accepts over serial
  (``WV,0018,<HEX>.\\n``) and the plain form written to the BLE characteristic (§3, §4.1),
  plus the stop sequence of §8;
* device side: the firmware's line processing (trimming, the WV hex quirk, ``Connection End``,
  the single-character test handler, legacy plain text) as :func:`classify_line` and the
  incremental :class:`LineParser`, returning frozen dataclasses an emulator acts on;
* the intensity ↔ potentiometer mapping (§4.2) and the calibration options (§4.3).

Device replies do not exist (§2); the diagnostic lines of the firmware's debug output live in
:mod:`emsctl.drivers.openems.diagnostics`.

This module must never do I/O, read a clock, start threads or import pyserial/bleak: timing
(the 50 ms read timeout, on-time expiry) belongs to the caller, which tells
:meth:`LineParser.on_read_timeout` when the firmware's read timeout would have expired.
Device-side parsers never raise on received bytes: they classify them the way the firmware
would. :class:`~emsctl.errors.ProtocolError` is raised only for host values out of range and
for misuse of the API.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ...errors import ProtocolError

__all__ = [
    "BLE_CHARACTERISTIC_UUID",
    "BLE_MAX_VALUE_LEN",
    "BLE_SERVICE_UUID",
    "CONNECTION_END",
    "CONNECTION_END_LINE",
    "DEFAULT_WINDOW",
    "HOST_WV_HANDLE",
    "INITIAL_ON_TIME_MS",
    "MAX_INTENSITY_PCT",
    "MAX_ON_TIME_MS",
    "RN4020_WV_HANDLE",
    "SERIAL_BAUDRATE",
    "SHUTDOWN",
    "SHUTDOWN_CHANNEL",
    "ActionCommand",
    "BlankLine",
    "CalibrationOption",
    "CalibrationWindow",
    "Command",
    "ConnectionEnd",
    "DeviceInput",
    "Firmware",
    "HostCommand",
    "LineParser",
    "ParsedAction",
    "ShutdownCommand",
    "SingleCharAction",
    "SingleCharCommand",
    "UnknownCommand",
    "WindowBound",
    "classify_line",
    "decode_wv_hex",
    "decode_wv_line",
    "encode_ble",
    "encode_option_plain",
    "encode_serial",
    "intensity_pct_to_wiper_steps",
    "option_pct_to_window_steps",
    "parse_command",
    "rn4020_line",
    "stop_sequence",
    "wiper_steps_to_intensity_pct",
]

SERIAL_BAUDRATE = 19_200
BLE_SERVICE_UUID = "454d532d-5365-7276-6963-652d424c4531"  # ASCII "EMS-Service-BLE1"
BLE_CHARACTERISTIC_UUID = "454d532d-5374-6575-6572-756e672d4348"  # ASCII "EMS-Steuerung-CH"
BLE_MAX_VALUE_LEN = 32
HOST_WV_HANDLE = b"0018"  # [emsctl rule] the handle of the official Python example
RN4020_WV_HANDLE = b"001C"  # what the RN4020 reports for a characteristic write
CHANNELS = (0, 1)
SHUTDOWN_CHANNEL = 9  # any channel outside 0-1 shuts down all; §8 uses 9
MAX_INTENSITY_PCT = 100
MAX_ON_TIME_MS = 5_000
INITIAL_ON_TIME_MS = 1
CONNECTION_END = b"Connection End"
CONNECTION_END_LINE = CONNECTION_END + b"\n"
WIPER_MAX_STEPS = 255
# [emsctl rule] The spec does not define integer overflow; digit runs saturate at int32 max,
# which gives the same device effect as the exact value (C shuts down, T clamps, I maxes out).
_INT32_MAX = 2**31 - 1


class Firmware(enum.Enum):
    """Firmware generation, which decides what a plain-text line does (§3)."""

    CURRENT = "current"  # since 2017-01-24: plain text goes to the single-character handler
    LEGACY = "legacy"  # 2016-07-11 to 2017-01-23: plain text is a command


# --- intensity and calibration (§4.2, §4.3) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class CalibrationWindow:
    """Per-channel calibration window in potentiometer steps (default 55/215).

    The firmware does not order the bounds, so neither does this class.

    Raises:
        ProtocolError: if a bound is outside 0-255.
    """

    min_steps: int = 55
    max_steps: int = 215

    def __post_init__(self) -> None:
        for steps in (self.min_steps, self.max_steps):
            if not 0 <= steps <= WIPER_MAX_STEPS:
                raise ProtocolError(f"calibration bound {steps} is outside 0-255 steps")


DEFAULT_WINDOW = CalibrationWindow()


def _trunc_div(numerator: int, denominator: int) -> int:
    """Integer division truncating toward zero, like C's float-to-int conversion."""
    quotient = abs(numerator) // abs(denominator)
    return quotient if (numerator >= 0) == (denominator > 0) else -quotient


def intensity_pct_to_wiper_steps(
    intensity_pct: int, window: CalibrationWindow = DEFAULT_WINDOW
) -> int:
    """Map an intensity to the wiper position the firmware writes (§4.2).

    ``level = trunc((max - min)·(I - 1)/100 + 0.5) + min`` clamped to 0-255, wiper = 255 - level.
    Computed exactly; I above 100 follows the formula, as the firmware does not clamp it.

    Args:
        intensity_pct: The ``I`` field, 0 or more.
        window: The channel's calibration window.

    Returns:
        Wiper position in steps: 255 passes nothing, 0 passes the stimulator unattenuated.

    Raises:
        ProtocolError: if ``intensity_pct`` is negative (no digit string can express that).
    """
    if intensity_pct < 0:
        raise ProtocolError(f"intensity {intensity_pct} % is negative")
    span = window.max_steps - window.min_steps
    # trunc(span·(I-1)/100 + 1/2) == trunc((2·span·(I-1) + 100) / 200), without float error.
    level = _trunc_div(2 * span * (intensity_pct - 1) + 100, 200) + window.min_steps
    return WIPER_MAX_STEPS - min(max(level, 0), WIPER_MAX_STEPS)


def wiper_steps_to_intensity_pct(
    wiper_steps: int, window: CalibrationWindow = DEFAULT_WINDOW
) -> int | None:
    """Return the smallest intensity 0-100 that the firmware maps to ``wiper_steps``.

    Args:
        wiper_steps: Wiper position, 0-255.
        window: The channel's calibration window.

    Returns:
        The intensity in percent, or None if no intensity in 0-100 yields this wiper (for
        example after the test handler moved the wiper by one step).

    Raises:
        ProtocolError: if ``wiper_steps`` is outside 0-255.
    """
    if not 0 <= wiper_steps <= WIPER_MAX_STEPS:
        raise ProtocolError(f"wiper position {wiper_steps} is outside 0-255 steps")
    for intensity_pct in range(MAX_INTENSITY_PCT + 1):
        if intensity_pct_to_wiper_steps(intensity_pct, window) == wiper_steps:
            return intensity_pct
    return None


def option_pct_to_window_steps(pct: int) -> int:
    """Convert an ``OMA``/``OMI`` percentage to steps: trunc(255·pct/100 + 0.5) (§4.3).

    Raises:
        ProtocolError: if ``pct`` is negative.
    """
    if pct < 0:
        raise ProtocolError(f"calibration percentage {pct} is negative")
    return (2 * WIPER_MAX_STEPS * pct + 100) // 200


# --- host commands and encoders (§3, §4.1, §8) ---------------------------------------------


def _check_int(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProtocolError(f"{name} must be an integer in {low}-{high}, got {value!r}")


@dataclass(frozen=True, slots=True)
class ActionCommand:
    """An action the host sends: always all four fields, in the order C, I, T, G (§4.1).

    Attributes:
        channel: Zero-based channel, 0 or 1 (the UI's channels 1 and 2).
        intensity_pct: Percent of the calibration window, 0-100. ``0`` is *not* off.
        on_time_ms: Lease in ms, 0-5000; ``0`` ends the activation at once.

    Raises:
        ProtocolError: if a field is out of range.
    """

    channel: int
    intensity_pct: int
    on_time_ms: int

    def __post_init__(self) -> None:
        _check_int("channel", self.channel, CHANNELS[0], CHANNELS[-1])
        _check_int("intensity_pct", self.intensity_pct, 0, MAX_INTENSITY_PCT)
        _check_int("on_time_ms", self.on_time_ms, 0, MAX_ON_TIME_MS)


@dataclass(frozen=True, slots=True)
class ShutdownCommand:
    """``C9G``: the out-of-range channel shuts down all channels and activates nothing (§8)."""


SHUTDOWN = ShutdownCommand()
HostCommand = ActionCommand | ShutdownCommand


def encode_ble(command: HostCommand) -> bytes:
    """Encode a command in plain form: the BLE characteristic value, no terminator.

    Raises:
        ProtocolError: if ``command`` is not a host command.
    """
    if isinstance(command, ActionCommand):
        text = f"C{command.channel}I{command.intensity_pct}T{command.on_time_ms}G"
    elif isinstance(command, ShutdownCommand):
        text = f"C{SHUTDOWN_CHANNEL}G"
    else:
        raise ProtocolError(f"not an openEMSstim host command: {command!r}")
    return text.encode("ascii")


def encode_serial(command: HostCommand) -> bytes:
    """Encode a command as the serial line ``WV,0018,<UPPERCASE HEX>.\\n`` (§3).

    The WV form works on both firmware generations; the ``.`` is mandatory because the
    firmware drops the final character.

    Raises:
        ProtocolError: if ``command`` is not a host command.
    """
    hex_text = encode_ble(command).hex().upper().encode("ascii")
    return b"WV," + HOST_WV_HANDLE + b"," + hex_text + b".\n"


def stop_sequence(active_channels: Iterable[int]) -> tuple[HostCommand, ...]:
    """The commands of §8: ``C<ch>I0T0G`` per active channel, then ``C9G``.

    Args:
        active_channels: Zero-based channels that were active (duplicates are ignored).

    Returns:
        The commands in sending order.

    Raises:
        ProtocolError: if a channel is not 0 or 1.
    """
    stops = [ActionCommand(ch, 0, 0) for ch in sorted(set(active_channels))]
    return (*stops, SHUTDOWN)


# --- device-side command parsing (§4) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedAction:
    """An action as the firmware parses it; ``None`` is the firmware's −1 (field absent).

    Values are raw: ``intensity_pct`` may exceed 100 and ``on_time_ms`` 5000.
    """

    channel: int | None
    intensity_pct: int | None
    on_time_ms: int | None

    @property
    def activates(self) -> bool:
        """True if the channel is 0 or 1; otherwise the action shuts down all channels."""
        return self.channel in CHANNELS

    @property
    def effective_on_time_ms(self) -> int | None:
        """The on-time the firmware stores: T clamped to 5000, or None if T is absent."""
        return None if self.on_time_ms is None else min(self.on_time_ms, MAX_ON_TIME_MS)

    @property
    def has_undefined_effect(self) -> bool:
        """True if I or T is present without a valid channel: the firmware indexes out of range."""
        has_parameters = self.intensity_pct is not None or self.on_time_ms is not None
        return has_parameters and not self.activates

    @property
    def exceeds_intensity_limit(self) -> bool:
        """True if I > 100: the firmware follows the formula; an emulator logs it as unsafe."""
        return self.intensity_pct is not None and self.intensity_pct > MAX_INTENSITY_PCT

    def to_command(self) -> HostCommand:
        """Return the host command this is the canonical parse of.

        Raises:
            ProtocolError: if no host command parses to this action (a field missing or out of
                range, a bare ``G``, a shutdown through a channel other than 9).
        """
        if self.intensity_pct is None and self.on_time_ms is None:
            if self.channel == SHUTDOWN_CHANNEL:
                return SHUTDOWN
        elif self.channel is not None and self.intensity_pct is not None:
            if self.on_time_ms is not None:
                return ActionCommand(self.channel, self.intensity_pct, self.on_time_ms)
        raise ProtocolError(f"not a command the host sends: {self!r}")


class WindowBound(enum.Enum):
    """Which calibration bound an option sets."""

    MAX = "OMA"
    MIN = "OMI"


@dataclass(frozen=True, slots=True)
class CalibrationOption:
    """``OMA[<ch>,<pct>]`` or ``OMI[<ch>,<pct>]`` (§4.3); effective only as legacy plain text.

    Values are raw; an emulator decides what an out-of-range channel or percentage does.
    """

    bound: WindowBound
    channel: int
    pct: int

    @property
    def window_steps(self) -> int:
        """The bound in potentiometer steps, trunc(255·pct/100 + 0.5) (may exceed 255)."""
        return option_pct_to_window_steps(self.pct)


@dataclass(frozen=True, slots=True)
class UnknownCommand:
    """A command with no ``G`` that is not an option: the firmware prints
    ``Unknown command: …`` and changes nothing."""

    text: bytes


Command = ParsedAction | CalibrationOption | UnknownCommand

_OPTION_RE = re.compile(rb"OM([AI])\[(\d+),(\d+)\]")


def _field(text: bytes, letter: bytes) -> int | None:
    """The digit run after the first ``letter``; None (the firmware's −1) if absent or empty."""
    start = text.find(letter)
    if start < 0:
        return None
    end = start + 1
    while end < len(text) and 0x30 <= text[end] <= 0x39:
        end += 1
    digits = text[start + 1 : end].lstrip(b"0")
    if end == start + 1:
        return None
    if len(digits) > len(str(_INT32_MAX)):
        return _INT32_MAX
    return min(int(digits or b"0"), _INT32_MAX)


def parse_command(text: bytes) -> Command:
    """Parse a command as the firmware does (§4); never raises on any input.

    Any text containing ``G`` is an action; each field is found by the first occurrence of its
    letter. Otherwise an exact ``OMA[<ch>,<pct>]``/``OMI[...]`` is an option; anything else is
    unknown.
    """
    if b"G" in text:
        return ParsedAction(_field(text, b"C"), _field(text, b"I"), _field(text, b"T"))
    match = _OPTION_RE.fullmatch(text)
    if match is None:
        return UnknownCommand(text)
    bound = WindowBound.MAX if match[1] == b"A" else WindowBound.MIN
    channel = _field(b"C" + match[2], b"C")
    pct = _field(b"C" + match[3], b"C")
    assert channel is not None and pct is not None  # the regex guarantees digits
    return CalibrationOption(bound, channel, pct)


def encode_option_plain(option: CalibrationOption) -> bytes:
    """Encode an option as plain text with ``\\n``, for emulator tests only.

    The host never sends options (§4.3): on current firmware they reach the test handler.
    """
    return f"{option.bound.value}[{option.channel},{option.pct}]\n".encode("ascii")


# --- device-side line processing (§3, §4.4) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectionEnd:
    """The line ``Connection End``: all channels shut down."""


@dataclass(frozen=True, slots=True)
class BlankLine:
    """A line that is empty after trimming. The spec is silent; it changes no state."""


class SingleCharAction(enum.Enum):
    """What the current firmware's single-character test handler does (§4.4)."""

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
    """A plain-text line on current firmware; only its first byte counts (§4.4).

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
    """Decode hex the way the firmware does (§3): two characters per byte.

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
    """Extract and decode the command of a trimmed ``WV`` line (§3).

    Takes the text after the last comma (the whole line if there is none), drops its final
    character and decodes the rest; the handle is ignored.
    """
    value = line[line.rfind(b",") + 1 :]
    return decode_wv_hex(value[:-1])


def classify_line(line: bytes, firmware: Firmware = Firmware.CURRENT) -> DeviceInput:
    """Process one received line as the firmware does (§3); never raises on line content.

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
    trimmed = line.strip()  # bytes.strip() trims exactly C isspace(), like String::trim()
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
    """The line the RN4020 passes to the microcontroller for a characteristic write (§2).

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
