"""Field encodings of ScienceMode4 (Hasomed P24): result codes, states, enums, channel addressing.

Everything here maps one protocol enum or one addressing rule to the numbers on the wire,
following ``docs/protocols/sciencemode4.md`` §2 and §5–§8, plus the small validation helpers the
message modules share. Pulse points and periods are in :mod:`.pulses`. Pure: no I/O, no clock,
no state, no silent clamping; a value outside its wire range raises
:class:`~emsctl.errors.ProtocolError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum
from typing import TypeVar

from ...errors import ProtocolError
from ..sciencemode.fields import check_int, expect_len

__all__ = [
    "CHANNELS_PER_CONNECTOR",
    "CHANNEL_COUNT",
    "HIGH_VOLTAGE_150V",
    "HIGH_VOLTAGE_OFF",
    "MAX_RESULT",
    "ChannelState",
    "HashType",
    "MeasurementType",
    "Result",
    "StimStatus",
    "channel_from_connector",
    "channel_mask",
    "channels_in_mask",
    "check_int",
    "connector_from_channel",
    "expect_len",
    "to_enum",
]

CHANNEL_COUNT = 8
"""Channels 1–8: the yellow socket drives 1–4, the green socket 5–8
[docs/protocols/sciencemode4.md §2]."""
CHANNELS_PER_CONNECTOR = 4
HIGH_VOLTAGE_OFF = 1
"""Get_stim_status byte 2: high voltage off."""
HIGH_VOLTAGE_150V = 6
"""Get_stim_status byte 2: 150 V on (codes 2–6 step 30 V; 6 is the standard)."""


class Result(IntEnum):
    """The result byte that starts every ack [docs/protocols/sciencemode4.md §8]; names follow the
    vendor's C library.

    The P24 documents 0, 1, 2, 7, 10, 16 and 28 (and 11 as the data of Unknown_cmd; 3 in the
    low-level ack). The rest exist in the vendor library for other devices. No result is above
    28: a third-party client fails on such a value while decoding.
    """

    OK = 0
    TRANSFER_ERROR = 1
    """Checksum and/or length did not match."""
    PARAMETER_ERROR = 2
    """A value out of range, or too few parameters."""
    PROTOCOL_ERROR = 3
    """In Ll_channel_config_ack: "timeout stimulation"."""
    UC_STIM_TIMEOUT_ERROR = 4
    EMG_TIMEOUT_ERROR = 5
    EMG_REGISTER_ERROR = 6
    NOT_INITIALISED = 7
    """This level is not initialised, or another level is."""
    HV_ERROR = 8
    DEMUX_TIMEOUT_ERROR = 9
    ELECTRODE_ERROR = 10
    INVALID_COMMAND = 11
    """The data of Unknown_cmd."""
    DEMUX_PARAMETER_ERROR = 12
    DEMUX_NOT_INITIALISED_ERROR = 13
    DEMUX_TRANSFER_ERROR = 14
    DEMUX_UNKNOWN_ACK_ERROR = 15
    PULSE_TIMEOUT = 16
    """The period load is not achievable: reduce period load or pulse width."""
    FUEL_GAUGE_ERROR = 17
    LIVE_SIGNAL_ERROR = 18
    FILE_TRANSMISSION_TIMEOUT = 19
    FILE_NOT_FOUND = 20
    BUSY = 21
    FILE_ERROR = 22
    FLASH_ERASE_ERROR = 23
    FLASH_WRITE_ERROR = 24
    UNKNOWN_CONTROLLER_ERROR = 25
    FIRMWARE_TOO_LARGE_ERROR = 26
    FUEL_GAUGE_NOT_PROGRAMMED = 27
    PULSE_LOW_CURRENT = 28
    """The voltage is too low for the requested current."""


MAX_RESULT = max(Result)


class StimStatus(IntEnum):
    """Get_stim_status byte 1, also the state of the device's level state machine
    [docs/protocols/sciencemode4.md §9]."""

    NONE = 0
    """No level initialised."""
    LOW_LEVEL = 1
    MID_LEVEL_INITIALISED = 2
    MID_LEVEL_RUNNING = 3


class ChannelState(IntEnum):
    """The 4-bit state of one channel in Ml_get_current_data_ack
    [docs/protocols/sciencemode4.md §6]."""

    OK = 0
    ELECTRODE_ERROR = 1
    PULSE_TIMEOUT = 2
    """The period is not achievable."""
    PULSE_LOW_CURRENT = 3
    """The voltage is insufficient."""

    @property
    def result(self) -> Result:
        """The ack result that reports this state (OK for OK)."""
        return _STATE_RESULTS[self]


_STATE_RESULTS = {
    ChannelState.OK: Result.OK,
    ChannelState.ELECTRODE_ERROR: Result.ELECTRODE_ERROR,
    ChannelState.PULSE_TIMEOUT: Result.PULSE_TIMEOUT,
    ChannelState.PULSE_LOW_CURRENT: Result.PULSE_LOW_CURRENT,
}


class HashType(IntEnum):
    """What the firmware hash of Get_extended_version_ack is [docs/protocols/sciencemode4.md §5]."""

    NONE = 0
    GIT = 1
    ELF_MD5 = 2
    ELF_SHA256 = 3


class MeasurementType(IntEnum):
    """Ll_init bits 6–4: what the device samples during each low-level pulse
    [docs/protocols/sciencemode4.md §7]."""

    NONE = 0
    STIMULATION_CURRENT = 1
    STIMULATION_VOLTAGE = 2
    HIGH_VOLTAGE_SOURCE = 3


_E = TypeVar("_E", bound=IntEnum)


def to_enum(enum: type[_E], value: object, name: str) -> _E:
    """The enum member for a value, or ProtocolError naming the field (bools are refused)."""
    if type(value) is enum:  # already a member (a decoded field handed on): nothing to check
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"{name} must be an integer, not {value!r}")
    try:
        return enum(value)
    except ValueError:
        raise ProtocolError(f"{name} {value!r} is not a valid {enum.__name__}") from None


def channel_mask(channels: Iterable[int]) -> int:
    """Bit mask of channel numbers: channel 1 is bit 0, channel 8 is bit 7.

    Raises:
        ProtocolError: a channel outside 1–8.
    """
    mask = 0
    for channel in channels:
        check_int("channel", channel, 1, CHANNEL_COUNT)
        mask |= 1 << (channel - 1)
    return mask


def channels_in_mask(mask: int) -> tuple[int, ...]:
    """Channel numbers set in a mask, in increasing order (the wire order of Ml_update).

    Raises:
        ProtocolError: a mask that is not a byte.
    """
    check_int("channel mask", mask, 0, 0xFF)
    return tuple(bit + 1 for bit in range(CHANNEL_COUNT) if mask >> bit & 1)


def channel_from_connector(connector: int, channel_in_connector: int) -> int:
    """Channel number 1–8 of a low-level address: ``connector·4 + channel + 1``.

    Args:
        connector: 0 = yellow socket, 1 = green socket.
        channel_in_connector: 0–3 within the socket.

    Raises:
        ProtocolError: a connector outside 0–1 or a channel outside 0–3.
    """
    check_int("connector", connector, 0, 1)
    check_int("channel_in_connector", channel_in_connector, 0, CHANNELS_PER_CONNECTOR - 1)
    return connector * CHANNELS_PER_CONNECTOR + channel_in_connector + 1


def connector_from_channel(channel: int) -> tuple[int, int]:
    """(connector, channel within it) of a channel number 1–8; the inverse of
    :func:`channel_from_connector`.

    Raises:
        ProtocolError: a channel outside 1–8.
    """
    check_int("channel", channel, 1, CHANNEL_COUNT)
    return divmod(channel - 1, CHANNELS_PER_CONNECTOR)
