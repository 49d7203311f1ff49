"""ScienceMode4 (Hasomed P24) codec: messages ⇄ payloads ⇄ wire frames, both directions.

This is the one import for a host driver and the emulated device. It re-exports the framing
(:mod:`.framing`, :mod:`.stream`), the field and pulse encodings (:mod:`.fields`, :mod:`.pulses`)
and the messages (:mod:`.messages`, :mod:`.mid_level`, :mod:`.low_level`), and adds the dispatch
between payloads and message types. It follows ``docs/protocols/sciencemode4.md``, whose
docs/protocols/sciencemode4.md §12 test vectors pin it byte for byte.

It is pure: it must never do I/O, read a clock, start a thread or keep session state (packet
counters and level state belong to the driver and the emulator). Values out of range and
undecodable input raise :class:`~emsctl.errors.ProtocolError`; only
:meth:`FrameDecoder.feed` never raises, because it runs on raw bytes from a link.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeAlias, cast

from ...errors import ProtocolError
from .fields import (
    CHANNEL_COUNT,
    HIGH_VOLTAGE_150V,
    HIGH_VOLTAGE_OFF,
    ChannelState,
    HashType,
    MeasurementType,
    Result,
    StimStatus,
    channel_from_connector,
    channel_mask,
    channels_in_mask,
    connector_from_channel,
)
from .framing import (
    MAX_FRAME_LEN,
    MAX_PACKET_NUMBER,
    command_prefix,
    crc16_xmodem,
    encode_frame,
    frame_from_stuffed,
    split_prefix,
    stuff,
    unstuff,
)
from .low_level import (
    MAX_HIGH_VOLTAGE_CODE,
    MEASUREMENT_SAMPLES,
    LlChannelConfig,
    LlChannelConfigAck,
    LlInit,
    LlInitAck,
    LlStop,
    LlStopAck,
)
from .messages import (
    DEVICE_ID_LEN,
    HOST_COMMANDS,
    AckBase,
    Command,
    Direction,
    GeneralError,
    GetDeviceId,
    GetDeviceIdAck,
    GetExtendedVersion,
    GetExtendedVersionAck,
    GetStimStatus,
    GetStimStatusAck,
    MessageBase,
    Reset,
    ResetAck,
    UnknownCommand,
)
from .mid_level import (
    ALL_CHANNEL_ERRORS,
    LEGACY_SELECTIONS,
    MlGetCurrentData,
    MlGetCurrentDataAck,
    MlGetCurrentDataLegacyAck,
    MlInit,
    MlInitAck,
    MlStop,
    MlStopAck,
    MlUpdate,
    MlUpdateAck,
    decode_current_data_ack,
)
from .pulses import (
    CURRENT_CODE_MAX,
    CURRENT_CODE_ZERO,
    MAX_PERIOD_CODE,
    MAX_POINT_DURATION_US,
    MAX_POINTS,
    MAX_RAMP_PULSES,
    MlChannelConfig,
    Period,
    Point,
    current_code_from_ma,
    current_ma_from_code,
)
from .stream import BadFrame, BadFrameReason, Frame, FrameDecoder, unwrap_frame

__all__ = [
    "ALL_CHANNEL_ERRORS",
    "CHANNEL_COUNT",
    "CURRENT_CODE_MAX",
    "CURRENT_CODE_ZERO",
    "DEVICE_ID_LEN",
    "HIGH_VOLTAGE_150V",
    "HIGH_VOLTAGE_OFF",
    "HOST_COMMANDS",
    "LEGACY_SELECTIONS",
    "MAX_FRAME_LEN",
    "MAX_HIGH_VOLTAGE_CODE",
    "MAX_PACKET_NUMBER",
    "MAX_PERIOD_CODE",
    "MAX_POINTS",
    "MAX_POINT_DURATION_US",
    "MAX_RAMP_PULSES",
    "MEASUREMENT_SAMPLES",
    "Ack",
    "AckBase",
    "BadFrame",
    "BadFrameReason",
    "ChannelState",
    "Command",
    "Direction",
    "Frame",
    "FrameDecoder",
    "GeneralError",
    "GetDeviceId",
    "GetDeviceIdAck",
    "GetExtendedVersion",
    "GetExtendedVersionAck",
    "GetStimStatus",
    "GetStimStatusAck",
    "HashType",
    "LlChannelConfig",
    "LlChannelConfigAck",
    "LlInit",
    "LlInitAck",
    "LlStop",
    "LlStopAck",
    "MeasurementType",
    "Message",
    "MessageBase",
    "MessageDecodeError",
    "MlChannelConfig",
    "MlGetCurrentData",
    "MlGetCurrentDataAck",
    "MlGetCurrentDataLegacyAck",
    "MlInit",
    "MlInitAck",
    "MlStop",
    "MlStopAck",
    "MlUpdate",
    "MlUpdateAck",
    "Period",
    "Point",
    "Request",
    "Reset",
    "ResetAck",
    "Result",
    "StimStatus",
    "UnknownCommand",
    "UnknownCommandError",
    "acknowledges",
    "channel_from_connector",
    "channel_mask",
    "channels_in_mask",
    "command_prefix",
    "connector_from_channel",
    "crc16_xmodem",
    "current_code_from_ma",
    "current_ma_from_code",
    "decode_frame",
    "decode_message",
    "decode_request",
    "encode_frame",
    "encode_message",
    "encode_payload",
    "frame_from_stuffed",
    "ok_ack",
    "refusal",
    "split_prefix",
    "stuff",
    "unstuff",
    "unwrap_frame",
    "usual_ack",
]

Request: TypeAlias = (
    GetStimStatus | GetDeviceId | GetExtendedVersion | Reset
    | MlInit | MlUpdate | MlGetCurrentData | MlStop
    | LlInit | LlChannelConfig | LlStop
)
"""Every host → device message."""
Ack: TypeAlias = (
    GetStimStatusAck | GetDeviceIdAck | GetExtendedVersionAck | ResetAck
    | GeneralError | UnknownCommand
    | MlInitAck | MlUpdateAck | MlGetCurrentDataAck | MlGetCurrentDataLegacyAck | MlStopAck
    | LlInitAck | LlChannelConfigAck | LlStopAck
)
"""Every device → host message (the P24 sends nothing but these replies)."""
Message: TypeAlias = Request | Ack
"""Every message type this codec knows; :func:`decode_frame` returns one of them."""

_PLAIN_TYPES: tuple[type[Message], ...] = (
    GetStimStatus, GetStimStatusAck, GetDeviceId, GetDeviceIdAck, GetExtendedVersion,
    GetExtendedVersionAck, Reset, ResetAck, GeneralError, UnknownCommand,
    MlInit, MlInitAck, MlUpdate, MlUpdateAck, MlGetCurrentData, MlStop, MlStopAck,
    LlInit, LlInitAck, LlChannelConfig, LlChannelConfigAck, LlStop, LlStopAck,
)
_DECODERS: dict[int, Callable[[int, bytes], Message]] = {
    cls.command: cls.from_data for cls in _PLAIN_TYPES
}
_DECODERS[Command.ML_GET_CURRENT_DATA_ACK] = decode_current_data_ack

_REQUEST_TYPES = (GetStimStatus, GetDeviceId, GetExtendedVersion, Reset, MlInit, MlUpdate,
                  MlGetCurrentData, MlStop, LlInit, LlChannelConfig, LlStop)
_ACK_TYPES: dict[int, type[AckBase]] = {
    Command.GET_STIM_STATUS: GetStimStatusAck,
    Command.GET_DEVICE_ID: GetDeviceIdAck,
    Command.GET_EXTENDED_VERSION: GetExtendedVersionAck,
    Command.RESET: ResetAck,
    Command.ML_INIT: MlInitAck,
    Command.ML_UPDATE: MlUpdateAck,
    Command.ML_GET_CURRENT_DATA: MlGetCurrentDataAck,
    Command.ML_STOP: MlStopAck,
    Command.LL_INIT: LlInitAck,
    Command.LL_CHANNEL_CONFIG: LlChannelConfigAck,
    Command.LL_STOP: LlStopAck,
}
assert set(_ACK_TYPES) == HOST_COMMANDS


class MessageDecodeError(ProtocolError):
    """A payload that framed correctly but is not a valid message.

    A device answers it with the command's ack and result 2 (parameter error), so the error
    carries what it needs to echo.

    Attributes:
        packet_number: the prefix's packet number, or ``None`` without a whole prefix.
        command: the prefix's command number, or ``None`` without a whole prefix.
    """

    def __init__(self, message: str, packet_number: int | None, command: int | None) -> None:
        """Create the error with the prefix fields that could be read."""
        super().__init__(message)
        self.packet_number = packet_number
        self.command = command


class UnknownCommandError(MessageDecodeError):
    """A command number this codec does not know: a device answers Unknown_cmd (67)."""


def encode_payload(message: MessageBase) -> bytes:
    """The unstuffed payload of a message: the 2-byte command prefix, then its data."""
    return command_prefix(message.packet_number, message.command) + message.data()


def encode_message(message: MessageBase) -> bytes:
    """The complete wire frame of a message, start to stop byte.

    Raises:
        ProtocolError: a frame over 1200 wire bytes (no valid message is that long).
    """
    return encode_frame(encode_payload(message))


def decode_frame(payload: bytes) -> Message:
    """Decode the payload of a good frame (:attr:`Frame.payload`) into its message.

    Raises:
        UnknownCommandError: a command number that is not in the tables of
        docs/protocols/sciencemode4.md §4 (including the
            vendor library's other commands, the I24's dyscom commands, and 37/38 from a host).
        MessageDecodeError: fewer than two prefix bytes, a wrong data length, or a value out
            of range.
    """
    try:
        packet_number, command, data = split_prefix(payload)
    except ProtocolError as exc:
        raise MessageDecodeError(str(exc), None, None) from exc
    decoder = _DECODERS.get(command)
    if decoder is None:
        raise UnknownCommandError(f"unknown command {command}", packet_number, command)
    try:
        return decoder(packet_number, data)
    except ProtocolError as exc:
        name = Command(command).name
        raise MessageDecodeError(f"bad {name}: {exc}", packet_number, command) from exc


def decode_request(payload: bytes) -> Request:
    """Decode the payload of a good frame as a host → device request (a device's view).

    Raises:
        UnknownCommandError: a command number that is not a host command of
        docs/protocols/sciencemode4.md §4 (acks sent by
            a host included).
        MessageDecodeError: fewer than two prefix bytes, a wrong data length, or a value out
            of range.
    """
    message = decode_frame(payload)
    if not isinstance(message, _REQUEST_TYPES):
        raise UnknownCommandError(f"command {message.command} is not a request",
                                  message.packet_number, message.command)
    return message


def decode_message(wire: bytes) -> Message:
    """Decode exactly one complete wire frame into its message.

    Raises:
        ProtocolError: the bytes are not one valid frame, or its payload is no valid message.
    """
    return decode_frame(unwrap_frame(wire))


def acknowledges(reply: Message, request: Message) -> bool:
    """Whether a reply is the ack of a request: command + 1 and the same packet number."""
    return reply.command == request.command + 1 and reply.packet_number == request.packet_number


def refusal(command: int, packet_number: int, result: Result) -> AckBase:
    """The ack of host command ``command`` with ``result`` and every other field zero.

    This is the reply to a request whose frame failed its LEN or CRC check (result 1) or whose
    data could not be decoded (result 2): the success layout, zero-filled.

    Raises:
        ProtocolError: ``command`` is not one of the host commands of
        docs/protocols/sciencemode4.md §4.
    """
    ack_type = _ACK_TYPES.get(command)
    if ack_type is None:
        raise ProtocolError(f"command {command} is not a host command of the P24")
    return ack_type.refusal(packet_number, result)


def ok_ack(command: int, packet_number: int) -> Ack | None:
    """The ack of host command ``command`` when it succeeds, if that ack carries nothing but
    its result byte; None when it carries data (or ``command`` is no host command)."""
    ack_type = _ACK_TYPES.get(command)
    if ack_type is None or ack_type.data is not AckBase.data:
        return None
    return cast(Ack, ack_type(packet_number=packet_number, result=Result.OK))  # _ACK_TYPES ⊂ Ack


@functools.cache
def usual_ack(command: int, packet_number: int) -> tuple[bytes, Ack] | None:
    """:func:`ok_ack` and its wire frame, built once per command and packet number (a host
    notes it for every request it waits on)."""
    ack = ok_ack(command, packet_number)
    return None if ack is None else (encode_message(ack), ack)
