"""ScienceMode4 messages: command numbers, the message bases, and the general-layer messages.

Each message knows its command number and how to turn its fields into command data and back
(``docs/protocols/sciencemode4.md`` §4–§5). Constructing a message validates every field against
its wire range, so an instance can always be encoded; the device's own limits and the result
each state gives are policy for the emulator and the host, not checked here. The mid-level
messages are in :mod:`.mid_level`, the low-level ones in :mod:`.low_level`.

Every ack is its request's command + 1, echoes the request's packet number, and starts with a
result byte (docs/protocols/sciencemode4.md §8). An ack with a non-zero result keeps the full
success layout with every other field zero (:meth:`AckBase.refusal`): clients index into it.

Pure: no I/O, no clock, no silent clamping.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Self

from ...errors import ProtocolError
from ..sciencemode.fields import Direction
from .fields import (
    HashType,
    Result,
    StimStatus,
    check_int,
    expect_len,
    to_enum,
)
from .framing import MAX_PACKET_NUMBER

__all__ = [
    "DEVICE_ID_LEN",
    "HOST_COMMANDS",
    "AckBase",
    "Command",
    "Direction",
    "GeneralError",
    "GetDeviceId",
    "GetDeviceIdAck",
    "GetExtendedVersion",
    "GetExtendedVersionAck",
    "GetStimStatus",
    "GetStimStatusAck",
    "MessageBase",
    "Reset",
    "ResetAck",
    "UnknownCommand",
    "coerce_enum",
    "decode_result",
]

DEVICE_ID_LEN = 10
"""Get_device_id_ack carries 10 ASCII characters without a terminator."""


class Command(IntEnum):
    """Command numbers of the P24 [docs/protocols/sciencemode4.md §4]. An ack is always its
    request's number + 1."""

    LL_INIT = 0
    LL_INIT_ACK = 1
    LL_CHANNEL_CONFIG = 2
    LL_CHANNEL_CONFIG_ACK = 3
    LL_STOP = 4
    LL_STOP_ACK = 5
    ML_INIT = 30
    ML_INIT_ACK = 31
    ML_UPDATE = 32
    ML_UPDATE_ACK = 33
    ML_STOP = 34
    ML_STOP_ACK = 35
    ML_GET_CURRENT_DATA = 36
    """36, not the 37 one vendor table prints: every library used with real devices sends 36."""
    ML_GET_CURRENT_DATA_ACK = 37
    GET_DEVICE_ID = 52
    GET_DEVICE_ID_ACK = 53
    RESET = 58
    RESET_ACK = 59
    GET_STIM_STATUS = 62
    GET_STIM_STATUS_ACK = 63
    GENERAL_ERROR = 66
    UNKNOWN_COMMAND = 67
    GET_EXTENDED_VERSION = 68
    GET_EXTENDED_VERSION_ACK = 69


HOST_COMMANDS: frozenset[int] = frozenset({
    Command.LL_INIT, Command.LL_CHANNEL_CONFIG, Command.LL_STOP, Command.ML_INIT,
    Command.ML_UPDATE, Command.ML_STOP, Command.ML_GET_CURRENT_DATA, Command.GET_DEVICE_ID,
    Command.RESET, Command.GET_STIM_STATUS, Command.GET_EXTENDED_VERSION})
"""The requests a P24 executes; each is answered by command + 1."""


def coerce_enum(obj: object, name: str, enum: type[IntEnum]) -> None:
    """Replace an int field of a frozen dataclass by its enum member, checking the value."""
    object.__setattr__(obj, name, to_enum(enum, getattr(obj, name), name))


def decode_result(byte: int) -> Result:
    """The :class:`Result` of a result byte.

    Raises:
        ProtocolError: a value that is no result code (above 28).
    """
    return to_enum(Result, byte, "result")


@dataclass(frozen=True, kw_only=True)
class MessageBase:
    """Fields and encoding shared by every message."""

    command: ClassVar[Command]
    direction: ClassVar[Direction]
    packet_number: int
    """0–63. Requests use the host's counter; acks echo the request's number."""

    def __post_init__(self) -> None:
        check_int("packet_number", self.packet_number, 0, MAX_PACKET_NUMBER)

    def data(self) -> bytes:
        """The unstuffed command data after the 2-byte prefix."""
        return b""

    @classmethod
    def from_data(cls, packet_number: int, data: bytes) -> Self:
        """Build the message from its packet number and command data.

        Raises:
            ProtocolError: the data has the wrong length or a value out of range.
        """
        expect_len(data, 0)
        return cls(packet_number=packet_number)


@dataclass(frozen=True, kw_only=True)
class AckBase(MessageBase):
    """An ack; this base carries only the result byte."""

    direction: ClassVar[Direction] = Direction.DEVICE_TO_HOST
    result: Result

    def __post_init__(self) -> None:
        super().__post_init__()
        coerce_enum(self, "result", Result)

    def data(self) -> bytes:
        """The result byte."""
        return bytes((self.result,))

    @classmethod
    def from_data(cls, packet_number: int, data: bytes) -> Self:
        """Build the ack from its result byte."""
        expect_len(data, 1)
        return cls(packet_number=packet_number, result=decode_result(data[0]))

    @classmethod
    def refusal(cls, packet_number: int, result: Result) -> Self:
        """This ack with ``result`` and every other field zero (the success layout)."""
        return cls(packet_number=packet_number, result=result)


# --- general layer (docs/protocols/sciencemode4.md §5)
# --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class GetStimStatus(MessageBase):
    """Query of the level state and the high voltage (62)."""

    command = Command.GET_STIM_STATUS
    direction = Direction.HOST_TO_DEVICE


@dataclass(frozen=True, kw_only=True)
class GetStimStatusAck(AckBase):
    """Answer to GetStimStatus (63): the level state and the high-voltage code."""

    command = Command.GET_STIM_STATUS_ACK
    stim_status: StimStatus
    high_voltage: int
    """A voltage code, not a boolean: 1 = off, 6 = 150 V on (0 only in a refusal)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        coerce_enum(self, "stim_status", StimStatus)
        check_int("high_voltage", self.high_voltage, 0, 0xFF)

    def data(self) -> bytes:
        """Result, stim status, high-voltage code."""
        return bytes((self.result, self.stim_status, self.high_voltage))

    @classmethod
    def from_data(cls, packet_number: int, data: bytes) -> Self:
        """Build the ack from its 3 data bytes."""
        expect_len(data, 3)
        return cls(packet_number=packet_number, result=decode_result(data[0]),
                   stim_status=to_enum(StimStatus, data[1], "stim_status"),
                   high_voltage=data[2])

    @classmethod
    def refusal(cls, packet_number: int, result: Result) -> Self:
        """Result, then status 0 and voltage code 0."""
        return cls(packet_number=packet_number, result=result, stim_status=StimStatus.NONE,
                   high_voltage=0)


@dataclass(frozen=True, kw_only=True)
class GetDeviceId(MessageBase):
    """Query of the device id (52)."""

    command = Command.GET_DEVICE_ID
    direction = Direction.HOST_TO_DEVICE


@dataclass(frozen=True, kw_only=True)
class GetDeviceIdAck(AckBase):
    """Answer to GetDeviceId (53): 10 bytes of id, no terminator."""

    command = Command.GET_DEVICE_ID_ACK
    device_id: bytes
    """Exactly 10 bytes; ASCII by the documentation, opaque to the host (see :attr:`text`)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.device_id, bytes) or len(self.device_id) != DEVICE_ID_LEN:
            raise ProtocolError(f"device_id must be {DEVICE_ID_LEN} bytes, "
                                f"not {self.device_id!r}")

    @property
    def text(self) -> str:
        """The id as text (non-ASCII bytes replaced)."""
        return self.device_id.decode("ascii", errors="replace")

    def data(self) -> bytes:
        """Result, then the 10 id bytes."""
        return bytes((self.result,)) + self.device_id

    @classmethod
    def from_data(cls, packet_number: int, data: bytes) -> Self:
        """Build the ack from its 11 data bytes."""
        expect_len(data, 1 + DEVICE_ID_LEN)
        return cls(packet_number=packet_number, result=decode_result(data[0]),
                   device_id=data[1:])

    @classmethod
    def refusal(cls, packet_number: int, result: Result) -> Self:
        """Result, then 10 zero bytes."""
        return cls(packet_number=packet_number, result=result, device_id=bytes(DEVICE_ID_LEN))


@dataclass(frozen=True, kw_only=True)
class GetExtendedVersion(MessageBase):
    """Query of the firmware and protocol versions (68)."""

    command = Command.GET_EXTENDED_VERSION
    direction = Direction.HOST_TO_DEVICE


def _check_version(name: str, version: object) -> None:
    if not isinstance(version, tuple) or len(version) != 3:
        raise ProtocolError(f"{name} must be (major, minor, revision), not {version!r}")
    for part in version:
        check_int(name, part, 0, 0xFF)


@dataclass(frozen=True, kw_only=True)
class GetExtendedVersionAck(AckBase):
    """Answer to GetExtendedVersion (69)."""

    command = Command.GET_EXTENDED_VERSION_ACK
    firmware_version: tuple[int, int, int]
    sciencemode_version: tuple[int, int, int]
    firmware_hash: int
    """The first 4 bytes of the firmware hash, as a u32."""
    hash_type: HashType
    hash_valid: bool

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_version("firmware_version", self.firmware_version)
        _check_version("sciencemode_version", self.sciencemode_version)
        check_int("firmware_hash", self.firmware_hash, 0, 0xFFFF_FFFF)
        coerce_enum(self, "hash_type", HashType)
        if not isinstance(self.hash_valid, bool):
            raise ProtocolError(f"hash_valid must be a bool, not {self.hash_valid!r}")

    def data(self) -> bytes:
        """Result, firmware x.y.z, ScienceMode x.y.z, hash u32, hash type, hash valid."""
        return (bytes((self.result, *self.firmware_version, *self.sciencemode_version))
                + self.firmware_hash.to_bytes(4, "big")
                + bytes((self.hash_type, int(self.hash_valid))))

    @classmethod
    def from_data(cls, packet_number: int, data: bytes) -> Self:
        """Build the ack from its 13 data bytes.

        Raises:
            ProtocolError: a hash type above 3 or a validity byte other than 0/1.
        """
        expect_len(data, 13)
        if data[12] > 1:
            raise ProtocolError(f"hash valid must be 0 or 1, not {data[12]}")
        return cls(packet_number=packet_number, result=decode_result(data[0]),
                   firmware_version=(data[1], data[2], data[3]),
                   sciencemode_version=(data[4], data[5], data[6]),
                   firmware_hash=int.from_bytes(data[7:11], "big"),
                   hash_type=to_enum(HashType, data[11], "hash_type"),
                   hash_valid=bool(data[12]))

    @classmethod
    def refusal(cls, packet_number: int, result: Result) -> Self:
        """Result, then every field zero."""
        return cls(packet_number=packet_number, result=result, firmware_version=(0, 0, 0),
                   sciencemode_version=(0, 0, 0), firmware_hash=0, hash_type=HashType.NONE,
                   hash_valid=False)


@dataclass(frozen=True, kw_only=True)
class Reset(MessageBase):
    """Restart the device (58); the ack may not arrive before it restarts."""

    command = Command.RESET
    direction = Direction.HOST_TO_DEVICE


@dataclass(frozen=True, kw_only=True)
class ResetAck(AckBase):
    """Answer to Reset (59)."""

    command = Command.RESET_ACK


@dataclass(frozen=True, kw_only=True)
class GeneralError(AckBase):
    """The device's reply to a frame it could not take (66); echoes the packet number."""

    command = Command.GENERAL_ERROR


@dataclass(frozen=True, kw_only=True)
class UnknownCommand(AckBase):
    """The device's reply to a command number it does not execute (67); data 11."""

    command = Command.UNKNOWN_COMMAND
    result: Result = Result.INVALID_COMMAND
