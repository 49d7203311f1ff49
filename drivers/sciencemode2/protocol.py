"""ScienceMode2 (Hasomed RehaStim2) codec: messages ⇄ payloads ⇄ wire frames, both directions.

This is the one import for the host driver and the emulated device. It re-exports the framing
(:mod:`.framing`), the field encodings (:mod:`.fields`) and the messages (:mod:`.messages`,
:mod:`.channel_list`), and adds the dispatch between payloads and message types. It follows
``docs/protocols/sciencemode2.md``, whose docs/protocols/sciencemode2.md §11 test vectors pin it
byte for byte.

It is pure: it must never do I/O, read a clock, start a thread or keep session state (packet
counters, the active channel mask, stimulation mode belong to the driver and the emulator).
Values out of range and undecodable input raise :class:`~emsctl.errors.ProtocolError`; only
:meth:`FrameDecoder.feed` never raises, because it runs on raw bytes from a link.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeAlias

from emsctl.drivers.sciencemode2.channel_list import (
    ChannelSettings,
    InitChannelListMode,
    InitChannelListModeAck,
    SinglePulse,
    SinglePulseAck,
    StartChannelListMode,
    StartChannelListModeAck,
    StopChannelListMode,
    StopChannelListModeAck,
)
from emsctl.drivers.sciencemode2.fields import (
    CHANNEL_COUNT,
    MAX_CURRENT_MA,
    MAX_INTER_PULSE_INTERVAL_CODE,
    MAX_LOW_FREQUENCY_FACTOR,
    MAX_MAIN_INTERVAL_CODE,
    MAX_PULSE_WIDTH_US,
    MIN_INTER_PULSE_INTERVAL_CODE,
    MIN_MAIN_INTERVAL_CODE,
    ONE_SHOT_MAIN_INTERVAL_CODE,
    ChannelExecution,
    PulseGroup,
    Result,
    StimulationErrorCode,
    StimulationMode,
    channel_mask,
    channels_in_mask,
    frequency_hz_from_main_interval_code,
    from_signed_byte,
    inter_pulse_interval_code_from_ms,
    inter_pulse_interval_ms_from_code,
    main_interval_code_from_frequency_hz,
    main_interval_code_from_period_ms,
    period_ms_from_main_interval_code,
    to_signed_byte,
)
from emsctl.drivers.sciencemode2.framing import (
    MAX_PAYLOAD_LEN,
    BadFrame,
    BadFrameReason,
    Frame,
    FrameDecoder,
    crc8,
    encode_frame,
    stuff,
    unstuff,
    unwrap_frame,
)
from emsctl.drivers.sciencemode2.messages import (
    Command,
    Direction,
    GetStimulationMode,
    GetStimulationModeAck,
    Init,
    InitAck,
    StimulationError,
    UnknownCommand,
    Watchdog,
)
from emsctl.errors import ProtocolError

__all__ = [
    "CHANNEL_COUNT",
    "MAX_CURRENT_MA",
    "MAX_INTER_PULSE_INTERVAL_CODE",
    "MAX_LOW_FREQUENCY_FACTOR",
    "MAX_MAIN_INTERVAL_CODE",
    "MAX_PAYLOAD_LEN",
    "MAX_PULSE_WIDTH_US",
    "MIN_INTER_PULSE_INTERVAL_CODE",
    "MIN_MAIN_INTERVAL_CODE",
    "ONE_SHOT_MAIN_INTERVAL_CODE",
    "BadFrame",
    "BadFrameReason",
    "ChannelExecution",
    "ChannelSettings",
    "Command",
    "Direction",
    "Frame",
    "FrameDecoder",
    "GetStimulationMode",
    "GetStimulationModeAck",
    "Init",
    "InitAck",
    "InitChannelListMode",
    "InitChannelListModeAck",
    "Message",
    "MessageDecodeError",
    "PulseGroup",
    "Result",
    "SinglePulse",
    "SinglePulseAck",
    "StartChannelListMode",
    "StartChannelListModeAck",
    "StimulationError",
    "StimulationErrorCode",
    "StimulationMode",
    "StopChannelListMode",
    "StopChannelListModeAck",
    "UnknownCommand",
    "UnknownCommandError",
    "Watchdog",
    "acknowledges",
    "channel_mask",
    "channels_in_mask",
    "crc8",
    "decode_frame",
    "decode_message",
    "encode_frame",
    "encode_message",
    "encode_payload",
    "frequency_hz_from_main_interval_code",
    "from_signed_byte",
    "inter_pulse_interval_code_from_ms",
    "inter_pulse_interval_ms_from_code",
    "is_motomed_command",
    "main_interval_code_from_frequency_hz",
    "main_interval_code_from_period_ms",
    "ok_ack",
    "period_ms_from_main_interval_code",
    "stuff",
    "to_signed_byte",
    "unstuff",
    "unwrap_frame",
    "usual_ack",
]

Message: TypeAlias = (
    Init
    | InitAck
    | UnknownCommand
    | Watchdog
    | GetStimulationMode
    | GetStimulationModeAck
    | InitChannelListMode
    | InitChannelListModeAck
    | StartChannelListMode
    | StartChannelListModeAck
    | StopChannelListMode
    | StopChannelListModeAck
    | SinglePulse
    | SinglePulseAck
    | StimulationError
)
"""Every message type this codec knows; :func:`decode_frame` returns one of them."""

_MESSAGE_TYPES: tuple[type[Message], ...] = (
    Init,
    InitAck,
    UnknownCommand,
    Watchdog,
    GetStimulationMode,
    GetStimulationModeAck,
    InitChannelListMode,
    InitChannelListModeAck,
    StartChannelListMode,
    StartChannelListModeAck,
    StopChannelListMode,
    StopChannelListModeAck,
    SinglePulse,
    SinglePulseAck,
    StimulationError,
)
_DECODERS: dict[int, Callable[[int, bytes], Message]] = {
    cls.command: cls.from_data for cls in _MESSAGE_TYPES
}
_MOTOMED_COMMANDS = frozenset({12, 13, *range(50, 91)})


class MessageDecodeError(ProtocolError):
    """A payload that framed correctly but is not a valid message.

    A device answers it with the command's ack and result −2 (docs/protocols/sciencemode2.md §5), so
    the error carries what it needs to echo.

    Attributes:
        packet_number: payload byte 0, or ``None`` if the payload is empty.
        command: payload byte 1, or ``None`` if the payload is shorter than 2 bytes.
    """

    def __init__(self, message: str, packet_number: int | None, command: int | None) -> None:
        """Create the error with the header bytes that could be read."""
        super().__init__(message)
        self.packet_number = packet_number
        self.command = command


class UnknownCommandError(MessageDecodeError):
    """A command number outside the stimulation commands: a device answers UnknownCommand."""


def is_motomed_command(command: int) -> bool:
    """Whether a command belongs to the MOTOmed set (12/13, 50–90), outside emsctl's scope."""
    return command in _MOTOMED_COMMANDS


def encode_payload(message: Message) -> bytes:
    """The unstuffed payload of a message: packet number, command, data."""
    return bytes((message.packet_number, message.command)) + message.data()


def encode_message(message: Message) -> bytes:
    """The complete wire frame of a message, start to stop byte."""
    return encode_frame(encode_payload(message))


def decode_frame(payload: bytes) -> Message:
    """Decode the payload of a good frame (see :class:`Frame`) into its message.

    Args:
        payload: the unstuffed packet number, command and data.

    Raises:
        UnknownCommandError: if the command number is not one of the stimulation commands
            (including MOTOmed commands and the 0x5F of clients that XOR it in place).
        MessageDecodeError: if the data has the wrong length or a value out of range.
    """
    packet_number = payload[0] if payload else None
    command = payload[1] if len(payload) > 1 else None
    if packet_number is None or command is None:
        raise MessageDecodeError(
            f"a payload needs a packet number and a command, got {payload.hex(' ')!r}",
            packet_number,
            command,
        )
    decoder = _DECODERS.get(command)
    if decoder is None:
        raise UnknownCommandError(f"unknown command {command}", packet_number, command)
    try:
        return decoder(packet_number, payload[2:])
    except ProtocolError as exc:
        name = Command(command).name
        raise MessageDecodeError(f"bad {name}: {exc}", packet_number, command) from exc


def decode_message(wire: bytes) -> Message:
    """Decode exactly one complete wire frame into its message.

    Raises:
        ProtocolError: if the bytes are not one valid frame, or its payload is no valid message.
    """
    return decode_frame(unwrap_frame(wire))


#: host command → its ack, when that ack carries nothing but its result byte
_RESULT_ONLY_ACKS: dict[int, type[InitChannelListModeAck | StartChannelListModeAck
                                  | StopChannelListModeAck | SinglePulseAck]] = {
    Command.INIT_CHANNEL_LIST_MODE: InitChannelListModeAck,
    Command.START_CHANNEL_LIST_MODE: StartChannelListModeAck,
    Command.STOP_CHANNEL_LIST_MODE: StopChannelListModeAck,
    Command.SINGLE_PULSE: SinglePulseAck,
}


def ok_ack(command: int, packet_number: int) -> Message | None:
    """The ack of host command ``command`` when it succeeds, if that ack carries nothing but
    its result byte; None otherwise."""
    ack_type = _RESULT_ONLY_ACKS.get(command)
    return None if ack_type is None else ack_type(packet_number=packet_number, result=Result.OK)


@functools.cache
def usual_ack(command: int, packet_number: int) -> tuple[bytes, Message] | None:
    """:func:`ok_ack` and its wire frame, built once per command and packet number (a host
    notes it for every request it waits on)."""
    ack = ok_ack(command, packet_number)
    return None if ack is None else (encode_message(ack), ack)


def acknowledges(reply: Message, request: Message) -> bool:
    """Whether a reply is the ack of a request: command + 1 and the same packet number
    (docs/protocols/sciencemode2.md §7)."""
    return reply.command == request.command + 1 and reply.packet_number == request.packet_number
