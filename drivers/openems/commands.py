"""openEMSstim command grammar: host encoders and the firmware's command parser
(docs/protocols/openemsstim.md §4).

Host side: :class:`ActionCommand` and :data:`SHUTDOWN`, encoded in the plain form (the BLE
characteristic value) or the serial WV form; the stop sequence of docs/protocols/openemsstim.md §8.
Device side: :func:`parse_command` returns what the firmware makes of a decoded command, quirks
included: a field letter without digits is −1 (and the firmware uses it), values are 16-bit integers
that wrap (``T40000`` is −25536, ``C65536`` is channel 0), option values are read like C's ``atol``
(``OMA[0, 80]`` works), and the firmware's string searches stop at a NUL byte.

Pure: no I/O, no clock. The device-side parser must never raise on received bytes; only host
values out of range raise :class:`~emsctl.errors.ProtocolError`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from emsctl.drivers.openems.intensity import (
    MAX_INTENSITY_PCT,
    firmware_option_steps,
    to_int16,
)
from emsctl.errors import ProtocolError

__all__ = [
    "CHANNELS",
    "HOST_WV_HANDLE",
    "INITIAL_ON_TIME_MS",
    "MAX_ON_TIME_MS",
    "SHUTDOWN",
    "SHUTDOWN_CHANNEL",
    "ActionCommand",
    "CalibrationOption",
    "Command",
    "HostCommand",
    "InertOption",
    "ParsedAction",
    "ShutdownCommand",
    "UnknownCommand",
    "WindowBound",
    "encode_ble",
    "encode_option_plain",
    "encode_serial",
    "parse_command",
    "stop_sequence",
]

CHANNELS = (0, 1)  # zero-based; the UI numbers them 1 and 2
# any channel outside 0-1 shuts down all; docs/protocols/openemsstim.md §8 uses 9
SHUTDOWN_CHANNEL = 9
MAX_ON_TIME_MS = 5_000  # the firmware clamps T to this
INITIAL_ON_TIME_MS = 1  # a channel's on-time before any T was received
HOST_WV_HANDLE = b"0018"  # [emsctl rule] the handle of the official Python example
NO_DIGITS = -1  # what the firmware's number parser returns for a letter without digits


def _check_int(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProtocolError(f"{name} must be an integer in {low}-{high}, got {value!r}")


@dataclass(frozen=True, slots=True)
class ActionCommand:
    """An action the host sends: always all four fields, in the order C, I, T, G
    (docs/protocols/openemsstim.md §4.1).

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
    """``C9G``: the out-of-range channel shuts down all channels and activates nothing
    (docs/protocols/openemsstim.md §8)."""


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
    """Encode a command as the serial line ``WV,0018,<UPPERCASE HEX>.\\n``
    (docs/protocols/openemsstim.md §3).

    The WV form works on both firmware generations; the ``.`` is mandatory because the
    firmware drops the final character.

    Raises:
        ProtocolError: if ``command`` is not a host command.
    """
    hex_text = encode_ble(command).hex().upper().encode("ascii")
    return b"WV," + HOST_WV_HANDLE + b"," + hex_text + b".\n"


def stop_sequence(active_channels: Iterable[int]) -> tuple[HostCommand, ...]:
    """The commands of docs/protocols/openemsstim.md §8: ``C<ch>I0T0G`` per active channel, then
    ``C9G``.

    Args:
        active_channels: Zero-based channels that were active (duplicates are ignored).

    Returns:
        The commands in sending order.

    Raises:
        ProtocolError: if a channel is not 0 or 1.
    """
    stops = [ActionCommand(ch, 0, 0) for ch in sorted(set(active_channels))]
    return (*stops, SHUTDOWN)


# --- device-side command parsing (docs/protocols/openemsstim.md §4)
# --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedAction:
    """An action as the firmware parses it.

    ``None``: the letter is absent, so the firmware leaves that setting alone (and ``C`` is then
    −1). A letter without digits is −1 (:data:`NO_DIGITS`), which the firmware *uses*: ``I``
    −1 sets wiper 202, ``T`` −1 an on-time that has already run out. Values are the board's
    16-bit ``int``: ``intensity_pct`` may exceed 100 or be negative, ``on_time_ms`` exceed 5000
    or be negative (``T40000`` is −25536).
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
        """The on-time the firmware stores: T capped at 5000 (a negative T passes the cap), or
        None if T is absent."""
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

    @property
    def negative_values(self) -> tuple[str, ...]:
        """The fields whose value is negative (no digits, or a wrapped int16): the host never
        sends these, and the firmware uses them."""
        fields = (("C", self.channel), ("I", self.intensity_pct), ("T", self.on_time_ms))
        return tuple(name for name, value in fields if value is not None and value < 0)

    def to_command(self) -> HostCommand:
        """Return the host command this is the canonical parse of.

        Raises:
            ProtocolError: if no host command parses to this action (a field missing or out of
                range, a bare ``G``, a shutdown through a channel other than 9).
        """
        channel, intensity_pct, on_time_ms = self.channel, self.intensity_pct, self.on_time_ms
        if channel == SHUTDOWN_CHANNEL and intensity_pct is None and on_time_ms is None:
            return SHUTDOWN
        if channel is not None and intensity_pct is not None and on_time_ms is not None:
            return ActionCommand(channel, intensity_pct, on_time_ms)
        raise ProtocolError(f"not a command the host sends: {self!r}")


class WindowBound(enum.Enum):
    """Which calibration bound an option sets."""

    MAX = "OMA"
    MIN = "OMI"


@dataclass(frozen=True, slots=True)
class CalibrationOption:
    """``OMA[<ch>,<pct>]`` or ``OMI[<ch>,<pct>]`` (docs/protocols/openemsstim.md §4.3); effective
    only as legacy plain text.

    As the firmware reads it: the channel (0 or 1; any other makes the line an
    :class:`InertOption`) and the percentage as 16-bit integers.
    """

    bound: WindowBound
    channel: int
    pct: int

    @property
    def window_steps(self) -> int:
        """The bound the firmware stores: trunc(255·pct/100 + 0.5) with a 16-bit product, so
        it may exceed 255 or, from pct 129, wrap negative (:func:`.firmware_option_steps`)."""
        return firmware_option_steps(self.pct)


@dataclass(frozen=True, slots=True)
class InertOption:
    """A command that starts with ``O`` and has no ``G``, but sets nothing: another option
    letter, no ``[``/``,``/``]`` in order, or a channel other than 0 or 1. The firmware's
    option handler ignores it without printing anything."""

    text: bytes


@dataclass(frozen=True, slots=True)
class UnknownCommand:
    """A command with no ``G`` that is not an option: the firmware prints
    ``Unknown command: …`` and changes nothing."""

    text: bytes


Command = ParsedAction | CalibrationOption | InertOption | UnknownCommand

_C_SPACE = b" \t\n\v\f\r"  # what C's isspace() skips before a number


def _digit_run_int16(digits: bytes) -> int:
    """A decimal digit run as the firmware's ``(int) String::toInt()`` gives it.

    ``toInt`` is ``atol``, which accumulates in 32 bits without an overflow check, and the cast
    keeps the low 16 bits: both wraps together are the exact value modulo 2^16. Computed digit
    by digit, so a run of any length costs no big-number conversion.
    """
    value = 0
    for digit in digits:
        value = (value * 10 + digit - 0x30) & 0xFFFF
    return to_int16(value)


def _atol_int16(text: bytes) -> int:
    """``(int) atol(text)``: C spaces skipped, an optional sign, the digits that follow (none:
    0), wrapped to 16 bits."""
    rest = text.lstrip(_C_SPACE)
    sign = -1 if rest[:1] == b"-" else 1
    if rest[:1] in (b"-", b"+"):
        rest = rest[1:]
    end = 0
    while end < len(rest) and 0x30 <= rest[end] <= 0x39:
        end += 1
    return to_int16(sign * _digit_run_int16(rest[:end]))


def _field(text: bytes, letter: bytes) -> int | None:
    """The value after the first ``letter``: None if the letter is absent, −1 if no digit
    follows it, else the digit run as a 16-bit ``int``."""
    start = text.find(letter)
    if start < 0:
        return None
    end = start + 1
    while end < len(text) and 0x30 <= text[end] <= 0x39:
        end += 1
    return NO_DIGITS if end == start + 1 else _digit_run_int16(text[start + 1 : end])


def _option(text: bytes) -> CalibrationOption | InertOption:
    """What the firmware's option handler makes of a command that starts with ``O``."""
    kind = text[1:3]
    if kind not in (b"MA", b"MI"):
        return InertOption(text)
    left, right = text.find(b"["), text.rfind(b"]")
    separator = text.find(b",", left + 1)
    if not (left != -1 and right != -1 and separator != -1 and left < separator < right):
        return InertOption(text)
    channel = _atol_int16(text[left + 1 : separator])
    if channel not in CHANNELS:
        return InertOption(text)
    bound = WindowBound.MAX if kind == b"MA" else WindowBound.MIN
    return CalibrationOption(bound, channel, _atol_int16(text[separator + 1 : right]))


def parse_command(text: bytes) -> Command:
    """Parse a command as the firmware does (docs/protocols/openemsstim.md §4); never raises on any
    input.

    The firmware keeps the command in an Arduino ``String`` and searches it with ``strchr``,
    so nothing after a NUL byte is seen. Any text containing ``G`` is an action; each field is
    found by the first occurrence of its letter. Otherwise text starting with ``O`` goes to the
    option handler, which reads ``[<ch>,<pct>]`` with ``atol`` (spaces and a sign allowed) and
    ignores anything it cannot use without a word; anything else is unknown.
    """
    seen = text.split(b"\0", 1)[0]
    if b"G" in seen:
        return ParsedAction(_field(seen, b"C"), _field(seen, b"I"), _field(seen, b"T"))
    if seen[:1] == b"O":
        return _option(seen)
    return UnknownCommand(text)


def encode_option_plain(option: CalibrationOption) -> bytes:
    """Encode an option as plain text with ``\\n``, for emulator tests only.

    The host never sends options (docs/protocols/openemsstim.md §4.3): on current firmware they
    reach the test handler.
    """
    return f"{option.bound.value}[{option.channel},{option.pct}]\n".encode("ascii")
