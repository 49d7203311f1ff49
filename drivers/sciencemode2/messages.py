"""ScienceMode2 messages: the base of every message, plus connection and status messages.

This module holds the shared base (command numbers, validation helpers, :class:`MessageBase`,
:class:`AckBase`) and the connection and status messages; the channel list commands are in
:mod:`.channel_list`. Each message knows its command number and how to turn its fields into
payload data and back (``docs/protocols/sciencemode2.md`` §4). Constructing a message
validates every field against the wire ranges of the spec, so an instance can always be encoded.
Firmware minimums and the host's own rules (docs/protocols/sciencemode2.md §5, §12) are policy for
the driver and the emulator, not checked here.

This module is pure: it must never do I/O, read a clock or clamp a value silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Self, TypeVar

from emsctl.drivers.sciencemode2.fields import (
    Result,
    StimulationErrorCode,
    StimulationMode,
    from_signed_byte,
    to_signed_byte,
)
from emsctl.errors import ProtocolError

from ..sciencemode.fields import Direction, check_int, expect_len

__all__ = [
    "AckBase",
    "Command",
    "Direction",
    "GetStimulationMode",
    "GetStimulationModeAck",
    "Init",
    "InitAck",
    "MessageBase",
    "StimulationError",
    "UnknownCommand",
    "Watchdog",
    "check_int",
    "coerce_enum",
    "expect_len",
    "to_enum",
]


class Command(IntEnum):
    """Command numbers [SM2 §3.3]. An ack is always its request's number + 1."""

    INIT = 1
    INIT_ACK = 2
    UNKNOWN_COMMAND = 3
    WATCHDOG = 4
    GET_STIMULATION_MODE = 10
    GET_STIMULATION_MODE_ACK = 11
    INIT_CHANNEL_LIST_MODE = 30
    INIT_CHANNEL_LIST_MODE_ACK = 31
    START_CHANNEL_LIST_MODE = 32
    START_CHANNEL_LIST_MODE_ACK = 33
    STOP_CHANNEL_LIST_MODE = 34
    STOP_CHANNEL_LIST_MODE_ACK = 35
    SINGLE_PULSE = 36
    SINGLE_PULSE_ACK = 37
    STIMULATION_ERROR = 38


_E = TypeVar("_E", bound=IntEnum)


def to_enum(enum: type[_E], value: int, name: str) -> _E:
    """The enum member for a value, or ProtocolError naming the field."""
    try:
        return enum(value)
    except ValueError:
        raise ProtocolError(f"{name} {value!r} is not a valid {enum.__name__}") from None


def coerce_enum(
    obj: object, name: str, enum: type[IntEnum], allowed: frozenset[int] = frozenset()
) -> None:
    """Replace an int field of a frozen dataclass by its enum member, checking the value."""
    member = to_enum(enum, getattr(obj, name), name)
    if allowed and member not in allowed:
        raise ProtocolError(f"{name} {member.name} ({member.value}) is not allowed here")
    object.__setattr__(obj, name, member)


@dataclass(frozen=True, kw_only=True)
class MessageBase:
    """Fields and encoding shared by every message."""

    command: ClassVar[Command]
    direction: ClassVar[Direction]
    packet_number: int
    """0–255. Requests use the host's counter; acks echo the request's number."""

    def __post_init__(self) -> None:
        check_int("packet_number", self.packet_number, 0, 0xFF)

    def data(self) -> bytes:
        """The command data, payload offset 7 onwards in the spec's numbering (unstuffed)."""
        return b""

    @classmethod
    def from_data(cls, packet_number: int, data: bytes) -> Self:
        """Build the message from its packet number and command data.

        Raises:
            ProtocolError: if the data has the wrong length or a value out of range.
        """
        expect_len(data, 0)
        return cls(packet_number=packet_number)


_ANY_ACK_RESULTS = frozenset(
    {Result.OK, Result.TRANSFER_ERROR, Result.PARAMETER_ERROR, Result.WRONG_MODE, Result.BUSY}
)


@dataclass(frozen=True, kw_only=True)
class AckBase(MessageBase):
    """An ack whose only data is a result byte."""

    allowed_results: ClassVar[frozenset[int]] = _ANY_ACK_RESULTS
    direction: ClassVar[Direction] = Direction.DEVICE_TO_HOST
    result: Result

    def __post_init__(self) -> None:
        super().__post_init__()
        coerce_enum(self, "result", Result, self.allowed_results)

    def data(self) -> bytes:
        """The result as a signed byte."""
        return bytes((to_signed_byte(self.result),))

    @classmethod
    def from_data(cls, packet_number: int, data: bytes) -> Self:
        """Build the ack from its result byte."""
        expect_len(data, 1)
        result = to_enum(Result, from_signed_byte(data[0]), "result")
        return cls(packet_number=packet_number, result=result)


@dataclass(frozen=True, kw_only=True)
class Init(MessageBase):
    """Sent by the device every 500 ms until it gets an InitAck (1)."""

    command = Command.INIT
    direction = Direction.DEVICE_TO_HOST
    protocol_version: int
    """0–255. The spec gives no value; the emulator sends 1 and the host does not reject others."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("protocol_version", self.protocol_version, 0, 0xFF)

    def data(self) -> bytes:
        """The protocol version byte."""
        return bytes((self.protocol_version,))

    @classmethod
    def from_data(cls, packet_number: int, data: bytes) -> Self:
        """Build an Init from its version byte."""
        expect_len(data, 1)
        return cls(packet_number=packet_number, protocol_version=data[0])


@dataclass(frozen=True, kw_only=True)
class InitAck(AckBase):
    """The host's answer to Init, echoing its packet number (2). Result 0 or −5 only."""

    command = Command.INIT_ACK
    direction = Direction.HOST_TO_DEVICE
    allowed_results = frozenset({Result.OK, Result.INCOMPATIBLE_VERSION})


@dataclass(frozen=True, kw_only=True)
class UnknownCommand(MessageBase):
    """The device's reply to a command number it does not know (3)."""

    command = Command.UNKNOWN_COMMAND
    direction = Direction.DEVICE_TO_HOST
    received_command: int
    """The command byte received, echoed (0–255)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("received_command", self.received_command, 0, 0xFF)

    def data(self) -> bytes:
        """The echoed command byte."""
        return bytes((self.received_command,))

    @classmethod
    def from_data(cls, packet_number: int, data: bytes) -> Self:
        """Build the reply from its echoed command byte."""
        expect_len(data, 1)
        return cls(packet_number=packet_number, received_command=data[0])


@dataclass(frozen=True, kw_only=True)
class Watchdog(MessageBase):
    """Keep-alive from the host (4). Never acknowledged."""

    command = Command.WATCHDOG
    direction = Direction.HOST_TO_DEVICE


@dataclass(frozen=True, kw_only=True)
class GetStimulationMode(MessageBase):
    """Query of the device's stimulation mode (10)."""

    command = Command.GET_STIMULATION_MODE
    direction = Direction.HOST_TO_DEVICE


@dataclass(frozen=True, kw_only=True)
class GetStimulationModeAck(AckBase):
    """Answer to GetStimulationMode (11): result 0 with a mode, or −1/−8 without one."""

    command = Command.GET_STIMULATION_MODE_ACK
    allowed_results = frozenset({Result.OK, Result.TRANSFER_ERROR, Result.BUSY})
    mode: StimulationMode | None
    """The mode; present exactly when the result is 0 (the short form has no mode byte)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.result == Result.OK) != (self.mode is not None):
            raise ProtocolError("a GetStimulationModeAck has a mode exactly when its result is 0")
        if self.mode is not None:
            coerce_enum(self, "mode", StimulationMode)

    def data(self) -> bytes:
        """Result byte, then the mode byte when the result is 0."""
        mode = b"" if self.mode is None else bytes((self.mode,))
        return super().data() + mode

    @classmethod
    def from_data(cls, packet_number: int, data: bytes) -> Self:
        """Build the ack; a mode byte after a non-zero result is tolerated and ignored."""
        if not 1 <= len(data) <= 2:
            raise ProtocolError(f"expected 1 or 2 data bytes, got {len(data)}")
        result = to_enum(Result, from_signed_byte(data[0]), "result")
        if result != Result.OK:
            return cls(packet_number=packet_number, result=result, mode=None)
        expect_len(data, 2)
        mode = to_enum(StimulationMode, data[1], "mode")
        return cls(packet_number=packet_number, result=result, mode=mode)


@dataclass(frozen=True, kw_only=True)
class StimulationError(MessageBase):
    """Unsolicited (38): output has stopped and the mode is 0; the link stays connected."""

    command = Command.STIMULATION_ERROR
    direction = Direction.DEVICE_TO_HOST
    error: StimulationErrorCode
    """Carried with the device's own packet number."""

    def __post_init__(self) -> None:
        super().__post_init__()
        coerce_enum(self, "error", StimulationErrorCode)

    def data(self) -> bytes:
        """The error code as a signed byte."""
        return bytes((to_signed_byte(self.error),))

    @classmethod
    def from_data(cls, packet_number: int, data: bytes) -> Self:
        """Build the message from its error byte."""
        expect_len(data, 1)
        error = to_enum(StimulationErrorCode, from_signed_byte(data[0]), "error")
        return cls(packet_number=packet_number, error=error)
