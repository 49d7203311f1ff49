"""ScienceMode4 mid-level messages: the device generates each channel's pulse train.

Ml_init (30) enters the level, Ml_update (32) starts or replaces the complete stimulation (a
channel missing from the enable mask is switched off), Ml_get_current_data (36) reports active
channels and channel errors and is also the keep-alive, Ml_stop (34) leaves the level
(``docs/protocols/sciencemode4.md`` §6). Each ack is command + 1.

Pure: no I/O, no clock; wire ranges only (device limits are checked by the emulator).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self

from ...errors import ProtocolError
from .fields import (
    CHANNEL_COUNT,
    ChannelState,
    Result,
    channel_mask,
    channels_in_mask,
    check_int,
    expect_len,
    to_enum,
)
from .messages import AckBase, Command, Direction, MessageBase, decode_result
from .pulses import MlChannelConfig

__all__ = [
    "ALL_CHANNEL_ERRORS",
    "LEGACY_SELECTIONS",
    "MlGetCurrentData",
    "MlGetCurrentDataAck",
    "MlGetCurrentDataLegacyAck",
    "MlInit",
    "MlInitAck",
    "MlStop",
    "MlStopAck",
    "MlUpdate",
    "MlUpdateAck",
    "decode_current_data_ack",
]

ALL_CHANNEL_ERRORS = 4
"""The data selection "all errors of all channels", the only one the P24 documents."""
LEGACY_SELECTIONS = frozenset({2, 3})
"""Selections of older devices: a stimulation-running bit and electrode-error bits."""
_NO_STATES = (ChannelState.OK,) * CHANNEL_COUNT
_LEGACY_STATUS_BYTES = {2: 1, 3: 2}


@dataclass(frozen=True, kw_only=True)
class MlInit(MessageBase):
    """Enter mid level and switch the high voltage on (30)."""

    command = Command.ML_INIT
    direction = Direction.HOST_TO_DEVICE
    stop_all_on_error: bool
    """Data bit 0: on a channel error stop every channel (True) or only that one (False)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.stop_all_on_error, bool):
            raise ProtocolError(f"stop_all_on_error must be a bool, not "
                                f"{self.stop_all_on_error!r}")

    def data(self) -> bytes:
        """One byte: bit 0 = stop all on error; bits 7–1 are 0."""
        return bytes((int(self.stop_all_on_error),))

    @classmethod
    def from_data(cls, packet_number: int, data: bytes) -> Self:
        """Build from one byte; bits 7–1 are ignored (as the device ignores them)."""
        expect_len(data, 1)
        return cls(packet_number=packet_number, stop_all_on_error=bool(data[0] & 1))


@dataclass(frozen=True, kw_only=True)
class MlInitAck(AckBase):
    """Answer to MlInit (31)."""

    command = Command.ML_INIT_ACK


@dataclass(frozen=True, kw_only=True)
class MlUpdate(MessageBase):
    """Start or replace the whole stimulation (32): the enable mask and one block per channel."""

    command = Command.ML_UPDATE
    direction = Direction.HOST_TO_DEVICE
    channels: tuple[MlChannelConfig | None, ...]
    """Eight entries, channel 1 first; None = channel off (not in the enable mask)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        channels = self.channels
        if not isinstance(channels, tuple) or len(channels) != CHANNEL_COUNT:
            raise ProtocolError(f"channels must be a tuple of {CHANNEL_COUNT} entries")
        for config in channels:
            if config is not None and not isinstance(config, MlChannelConfig):
                raise ProtocolError(f"a channel entry must be MlChannelConfig or None, "
                                    f"not {config!r}")

    @classmethod
    def of(cls, packet_number: int, configs: Mapping[int, MlChannelConfig]) -> Self:
        """An update from ``{channel number 1–8: block}``; other channels are off.

        Raises:
            ProtocolError: a channel outside 1–8, or a bad field.
        """
        channel_mask(configs)  # checks the channel numbers
        return cls(packet_number=packet_number,
                   channels=tuple(configs.get(ch) for ch in range(1, CHANNEL_COUNT + 1)))

    @property
    def enable_mask(self) -> int:
        """Bit 0 = channel 1 … bit 7 = channel 8."""
        return channel_mask(ch for ch, config in enumerate(self.channels, 1) if config is not None)

    @property
    def enabled(self) -> dict[int, MlChannelConfig]:
        """``{channel number: block}`` of every enabled channel, in channel order."""
        return {ch: config for ch, config in enumerate(self.channels, 1) if config is not None}

    def data(self) -> bytes:
        """Enable mask, then the block of each enabled channel in increasing channel order."""
        return bytes((self.enable_mask,)) + b"".join(
            config.encode() for config in self.channels if config is not None)

    @classmethod
    def from_data(cls, packet_number: int, data: bytes) -> Self:
        """Build from the mask and exactly its blocks.

        Raises:
            ProtocolError: no mask, a block cut short, bytes left over, or a field out of range.
        """
        if not data:
            raise ProtocolError("Ml_update needs at least the enable mask")
        configs: dict[int, MlChannelConfig] = {}
        offset = 1
        for channel in channels_in_mask(data[0]):
            configs[channel], offset = MlChannelConfig.decode_from(data, offset)
        if offset != len(data):
            raise ProtocolError(f"Ml_update has {len(data) - offset} bytes after its last block")
        return cls.of(packet_number, configs)


@dataclass(frozen=True, kw_only=True)
class MlUpdateAck(AckBase):
    """Answer to MlUpdate (33)."""

    command = Command.ML_UPDATE_ACK


@dataclass(frozen=True, kw_only=True)
class MlGetCurrentData(MessageBase):
    """Query of active channels and channel errors (36); also the mid-level keep-alive."""

    command = Command.ML_GET_CURRENT_DATA
    direction = Direction.HOST_TO_DEVICE
    data_selection: int = ALL_CHANNEL_ERRORS
    """4 on the P24; the wire carries any byte (the device refuses others)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("data_selection", self.data_selection, 0, 0xFF)

    def data(self) -> bytes:
        """The selection byte."""
        return bytes((self.data_selection,))

    @classmethod
    def from_data(cls, packet_number: int, data: bytes) -> Self:
        """Build from the selection byte."""
        expect_len(data, 1)
        return cls(packet_number=packet_number, data_selection=data[0])


@dataclass(frozen=True, kw_only=True)
class MlGetCurrentDataAck(AckBase):
    """Answer to MlGetCurrentData with selection 4 (37); the same 7-byte layout, zero after the
    echo, answers a selection the device does not know."""

    command = Command.ML_GET_CURRENT_DATA_ACK
    data_selection: int = ALL_CHANNEL_ERRORS
    """The request's selection, echoed (never 2 or 3: see :class:`MlGetCurrentDataLegacyAck`)."""
    active_mask: int = 0
    """Bit i = 1 ⇔ channel i + 1 is stimulating."""
    channel_states: tuple[ChannelState, ...] = _NO_STATES
    """Eight states, channel 1 first."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("data_selection", self.data_selection, 0, 0xFF)
        if self.data_selection in LEGACY_SELECTIONS:
            raise ProtocolError("selections 2 and 3 are answered by MlGetCurrentDataLegacyAck")
        check_int("active_mask", self.active_mask, 0, 0xFF)
        states = self.channel_states
        if not isinstance(states, tuple) or len(states) != CHANNEL_COUNT:
            raise ProtocolError(f"channel_states must be a tuple of {CHANNEL_COUNT} states")
        object.__setattr__(self, "channel_states",
                           tuple(to_enum(ChannelState, s, "channel state") for s in states))

    def data(self) -> bytes:
        """Result, selection, active mask, 4 bytes of nibbles (channel 1 = low nibble of the
        first)."""
        s = self.channel_states
        nibbles = bytes(s[i] | (s[i + 1] << 4) for i in range(0, CHANNEL_COUNT, 2))
        return bytes((self.result, self.data_selection, self.active_mask)) + nibbles

    @classmethod
    def from_data(cls, packet_number: int, data: bytes) -> Self:
        """Build from the 7 data bytes.

        Raises:
            ProtocolError: a wrong length, or a channel state above 3.
        """
        expect_len(data, 7)
        states = [to_enum(ChannelState, byte >> shift & 0x0F, "channel state")
                  for byte in data[3:7] for shift in (0, 4)]
        return cls(packet_number=packet_number, result=decode_result(data[0]),
                   data_selection=data[1], active_mask=data[2], channel_states=tuple(states))

    @classmethod
    def refusal(cls, packet_number: int, result: Result,
                data_selection: int = ALL_CHANNEL_ERRORS) -> Self:
        """Result, the selection echoed (4 by default), and five zero bytes."""
        return cls(packet_number=packet_number, result=result, data_selection=data_selection)

    @property
    def active_channels(self) -> tuple[int, ...]:
        """Channel numbers whose active bit is set."""
        return channels_in_mask(self.active_mask)


@dataclass(frozen=True, kw_only=True)
class MlGetCurrentDataLegacyAck(AckBase):
    """Answer to MlGetCurrentData with an older device's selection 2 or 3 (37).

    Selection 2 has one byte after the echo: bit 4 = stimulation running, bits 3–0 = electrode
    error of channels 1–4. Selection 3 adds a second byte of the same layout for channels 5–8.
    """

    command = Command.ML_GET_CURRENT_DATA_ACK
    data_selection: int
    running: bool
    electrode_error_mask: int
    """Bit i = 1 ⇔ electrode error on channel i + 1 (only bits 0–3 for selection 2)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.data_selection not in LEGACY_SELECTIONS:
            raise ProtocolError(f"legacy selection must be 2 or 3, not {self.data_selection!r}")
        if not isinstance(self.running, bool):
            raise ProtocolError(f"running must be a bool, not {self.running!r}")
        high = 0x0F if self.data_selection == 2 else 0xFF
        check_int("electrode_error_mask", self.electrode_error_mask, 0, high)

    def data(self) -> bytes:
        """Result, selection, then one status byte per four channels."""
        running = 0x10 if self.running else 0
        status = [running | (self.electrode_error_mask >> (4 * i) & 0x0F)
                  for i in range(_LEGACY_STATUS_BYTES[self.data_selection])]
        return bytes((self.result, self.data_selection, *status))

    @classmethod
    def from_data(cls, packet_number: int, data: bytes) -> Self:
        """Build from 3 (selection 2) or 4 (selection 3) data bytes; the running bit is read
        from the first status byte, bits 7–5 are ignored."""
        if len(data) < 2 or data[1] not in LEGACY_SELECTIONS:
            raise ProtocolError("not a legacy Ml_get_current_data_ack")
        count = _LEGACY_STATUS_BYTES[data[1]]
        expect_len(data, 2 + count)
        mask = sum((data[2 + i] & 0x0F) << (4 * i) for i in range(count))
        return cls(packet_number=packet_number, result=decode_result(data[0]),
                   data_selection=data[1], running=bool(data[2] & 0x10),
                   electrode_error_mask=mask)


def decode_current_data_ack(packet_number: int,
                            data: bytes) -> MlGetCurrentDataAck | MlGetCurrentDataLegacyAck:
    """Decode ack 37 in the layout its echoed selection names.

    Raises:
        ProtocolError: a wrong length or a value out of range.
    """
    if len(data) >= 2 and data[1] in LEGACY_SELECTIONS:
        return MlGetCurrentDataLegacyAck.from_data(packet_number, data)
    return MlGetCurrentDataAck.from_data(packet_number, data)


@dataclass(frozen=True, kw_only=True)
class MlStop(MessageBase):
    """Stop stimulation, leave mid level, high voltage off (34)."""

    command = Command.ML_STOP
    direction = Direction.HOST_TO_DEVICE


@dataclass(frozen=True, kw_only=True)
class MlStopAck(AckBase):
    """Answer to MlStop (35)."""

    command = Command.ML_STOP_ACK
