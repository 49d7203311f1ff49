"""openEMSstim command grammar: host encoders and the firmware's command parser (spec §4).

Host side: :class:`ActionCommand` and :data:`SHUTDOWN`, encoded in the plain form (the BLE
characteristic value) or the serial WV form; the stop sequence of §8. Device side:
:func:`parse_command` returns what the firmware makes of a decoded command, raw values included.

Pure: no I/O, no clock. The device-side parser must never raise on received bytes; only host
values out of range raise :class:`~emsctl.errors.ProtocolError`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

from emsctl.drivers.openems.intensity import MAX_INTENSITY_PCT, option_pct_to_window_steps
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
SHUTDOWN_CHANNEL = 9  # any channel outside 0-1 shuts down all; §8 uses 9
MAX_ON_TIME_MS = 5_000  # the firmware clamps T to this
INITIAL_ON_TIME_MS = 1  # a channel's on-time before any T was received
HOST_WV_HANDLE = b"0018"  # [emsctl rule] the handle of the official Python example
# [emsctl rule] The spec does not define integer overflow; digit runs saturate at int32 max,
# which gives the same device effect as the exact value (C shuts down, T clamps, I maxes out).
_INT32_MAX = 2**31 - 1


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


def _digits_value(digits: bytes) -> int:
    """The value of a non-empty decimal digit run, saturated at int32 max."""
    significant = digits.lstrip(b"0")
    if len(significant) > len(str(_INT32_MAX)):
        return _INT32_MAX  # also keeps int() away from Python's 4300-digit conversion limit
    return min(int(significant or b"0"), _INT32_MAX)


def _field(text: bytes, letter: bytes) -> int | None:
    """The digit run after the first ``letter``; None (the firmware's −1) if absent or empty."""
    start = text.find(letter)
    if start < 0:
        return None
    end = start + 1
    while end < len(text) and 0x30 <= text[end] <= 0x39:
        end += 1
    return None if end == start + 1 else _digits_value(text[start + 1 : end])


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
    return CalibrationOption(bound, _digits_value(match[2]), _digits_value(match[3]))


def encode_option_plain(option: CalibrationOption) -> bytes:
    """Encode an option as plain text with ``\\n``, for emulator tests only.

    The host never sends options (§4.3): on current firmware they reach the test handler.
    """
    return f"{option.bound.value}[{option.channel},{option.pct}]\n".encode("ascii")
