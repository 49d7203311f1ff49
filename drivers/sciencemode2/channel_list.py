"""ScienceMode2 channel list mode: InitChannelListMode, Start/Stop, SinglePulse and their acks.

These are the commands that make output (``docs/protocols/sciencemode2.md`` §4). Constructing
one validates the wire ranges (N ≤ 7, t1 code ≤ 2048, pulse group ≤ 2, pulse width ≤ 500 µs,
current ≤ 130 mA, channel index ≤ 7). It must never clamp, do I/O or read a clock; firmware
minimums (t1, t2 ≥ 8 ms), t1 ≥ nPgr·t2 and the host's rules of docs/protocols/sciencemode2.md §12
(no pulse width 1–19 µs, low-frequency mask within the active mask) are policy for the driver and
the emulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from emsctl.drivers.sciencemode2.fields import (
    CHANNEL_COUNT,
    MAX_CURRENT_MA,
    MAX_LOW_FREQUENCY_FACTOR,
    MAX_MAIN_INTERVAL_CODE,
    MAX_PULSE_WIDTH_US,
    ONE_SHOT_MAIN_INTERVAL_CODE,
    ChannelExecution,
    PulseGroup,
    Result,
    channels_in_mask,
    inter_pulse_interval_ms_from_code,
    period_ms_from_main_interval_code,
)
from emsctl.drivers.sciencemode2.messages import (
    AckBase,
    Command,
    Direction,
    MessageBase,
    check_int,
    coerce_enum,
    expect_len,
    to_enum,
)
from emsctl.errors import ProtocolError

__all__ = [
    "ChannelSettings",
    "InitChannelListMode",
    "InitChannelListModeAck",
    "SinglePulse",
    "SinglePulseAck",
    "StartChannelListMode",
    "StartChannelListModeAck",
    "StopChannelListMode",
    "StopChannelListModeAck",
]


@dataclass(frozen=True, kw_only=True)
class InitChannelListMode(MessageBase):
    """Configure channel list mode (30): channels, intervals, low-frequency channels.

    Intervals are carried as wire codes, because a device must see codes below the firmware
    minimums as sent; convert with the functions in :mod:`.fields`.
    """

    command = Command.INIT_CHANNEL_LIST_MODE
    direction = Direction.HOST_TO_DEVICE
    low_frequency_factor: int
    """N, 0–7: channels in the low-frequency mask run at f_main / (N + 1)."""
    active_channel_mask: int
    """Bit 0 = channel 1 … bit 7 = channel 8."""
    low_frequency_channel_mask: int
    """Same layout; the host sends a subset of the active mask, and 0 when N = 0."""
    inter_pulse_interval_code: int
    """t2 code, 0–255: t2 = code·0.5 + 1.5 ms (firmware minimum 13 = 8 ms)."""
    main_interval_code: int
    """t1 code, 0–2048: t1 = code·0.5 + 1 ms; 0 selects one-shot mode (firmware min 14 = 8 ms)."""
    channel_execution: ChannelExecution = ChannelExecution.FIXED_SLOTS

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("low_frequency_factor", self.low_frequency_factor, 0, MAX_LOW_FREQUENCY_FACTOR)
        check_int("active_channel_mask", self.active_channel_mask, 0, 0xFF)
        check_int("low_frequency_channel_mask", self.low_frequency_channel_mask, 0, 0xFF)
        check_int("inter_pulse_interval_code", self.inter_pulse_interval_code, 0, 0xFF)
        check_int("main_interval_code", self.main_interval_code, 0, MAX_MAIN_INTERVAL_CODE)
        coerce_enum(self, "channel_execution", ChannelExecution)

    @property
    def active_channels(self) -> tuple[int, ...]:
        """One-based numbers of the active channels, in wire order."""
        return channels_in_mask(self.active_channel_mask)

    @property
    def low_frequency_channels(self) -> tuple[int, ...]:
        """One-based numbers of the channels in the low-frequency mask."""
        return channels_in_mask(self.low_frequency_channel_mask)

    @property
    def is_one_shot(self) -> bool:
        """Whether t1 code 0 selects one-shot mode."""
        return self.main_interval_code == ONE_SHOT_MAIN_INTERVAL_CODE

    @property
    def main_interval_ms(self) -> float | None:
        """t1 in milliseconds, or ``None`` in one-shot mode."""
        if self.is_one_shot:
            return None
        return period_ms_from_main_interval_code(self.main_interval_code)

    @property
    def inter_pulse_interval_ms(self) -> float:
        """t2 in milliseconds."""
        return inter_pulse_interval_ms_from_code(self.inter_pulse_interval_code)

    def data(self) -> bytes:
        """Seven bytes: N, masks, t2 code, t1 code MSB and LSB, channel execution."""
        return bytes(
            (
                self.low_frequency_factor,
                self.active_channel_mask,
                self.low_frequency_channel_mask,
                self.inter_pulse_interval_code,
                self.main_interval_code >> 8,
                self.main_interval_code & 0xFF,
                self.channel_execution,
            )
        )

    @classmethod
    def from_data(cls, packet_number: int, data: bytes) -> Self:
        """Build the command from its seven data bytes."""
        expect_len(data, 7)
        return cls(
            packet_number=packet_number,
            low_frequency_factor=data[0],
            active_channel_mask=data[1],
            low_frequency_channel_mask=data[2],
            inter_pulse_interval_code=data[3],
            main_interval_code=data[4] << 8 | data[5],
            channel_execution=to_enum(ChannelExecution, data[6], "channel_execution"),
        )


@dataclass(frozen=True, kw_only=True)
class InitChannelListModeAck(AckBase):
    """Answer to InitChannelListMode (31): 0, −1, −2, −3 or −8."""

    command = Command.INIT_CHANNEL_LIST_MODE_ACK


@dataclass(frozen=True)
class ChannelSettings:
    """Output of one active channel in StartChannelListMode (4 bytes on the wire)."""

    pulse_group: PulseGroup
    pulse_width_us: int
    """0–500 µs. The device raises 1–19 to 20; the host driver must not send them
    (docs/protocols/sciencemode2.md §12)."""
    current_ma: int
    """0–130 mA, integer."""

    def __post_init__(self) -> None:
        coerce_enum(self, "pulse_group", PulseGroup)
        check_int("pulse_width_us", self.pulse_width_us, 0, MAX_PULSE_WIDTH_US)
        check_int("current_ma", self.current_ma, 0, MAX_CURRENT_MA)

    def data(self) -> bytes:
        """Pulse group, pulse width MSB and LSB, current."""
        width = self.pulse_width_us
        return bytes((self.pulse_group, width >> 8, width & 0xFF, self.current_ma))

    @classmethod
    def from_data(cls, data: bytes) -> Self:
        """Build the settings from their four bytes."""
        expect_len(data, 4)
        group = to_enum(PulseGroup, data[0], "pulse_group")
        return cls(pulse_group=group, pulse_width_us=data[1] << 8 | data[2], current_ma=data[3])


@dataclass(frozen=True, kw_only=True)
class StartChannelListMode(MessageBase):
    """Start output, or update it while running (32).

    The wire carries no channel numbers: the settings belong to the active channels of the last
    InitChannelListMode, in increasing channel order, one per active channel.
    """

    command = Command.START_CHANNEL_LIST_MODE
    direction = Direction.HOST_TO_DEVICE
    channel_settings: tuple[ChannelSettings, ...]

    def __post_init__(self) -> None:
        super().__post_init__()
        settings = tuple(self.channel_settings)
        if len(settings) > CHANNEL_COUNT:
            raise ProtocolError(f"at most {CHANNEL_COUNT} channels, not {len(settings)}")
        if not all(isinstance(item, ChannelSettings) for item in settings):
            raise ProtocolError("channel_settings must hold ChannelSettings items")
        object.__setattr__(self, "channel_settings", settings)

    def data(self) -> bytes:
        """Four bytes per active channel."""
        return b"".join(item.data() for item in self.channel_settings)

    @classmethod
    def from_data(cls, packet_number: int, data: bytes) -> Self:
        """Build the command from 4 bytes per channel."""
        if len(data) % 4 or len(data) > 4 * CHANNEL_COUNT:
            raise ProtocolError(f"expected 4 data bytes per channel, up to 8, got {len(data)}")
        settings = tuple(ChannelSettings.from_data(data[i : i + 4]) for i in range(0, len(data), 4))
        return cls(packet_number=packet_number, channel_settings=settings)


@dataclass(frozen=True, kw_only=True)
class StartChannelListModeAck(AckBase):
    """Answer to StartChannelListMode (33): 0, −1, −2, −3 or −8."""

    command = Command.START_CHANNEL_LIST_MODE_ACK


@dataclass(frozen=True, kw_only=True)
class StopChannelListMode(MessageBase):
    """Stop output and return to mode 0 (34). Harmless in mode 0."""

    command = Command.STOP_CHANNEL_LIST_MODE
    direction = Direction.HOST_TO_DEVICE


@dataclass(frozen=True, kw_only=True)
class StopChannelListModeAck(AckBase):
    """Answer to StopChannelListMode (35): 0 or −1 only."""

    command = Command.STOP_CHANNEL_LIST_MODE_ACK
    allowed_results = frozenset({Result.OK, Result.TRANSFER_ERROR})


@dataclass(frozen=True, kw_only=True)
class SinglePulse(MessageBase):
    """One pulse now, on one channel, in mode 0 (36)."""

    command = Command.SINGLE_PULSE
    direction = Direction.HOST_TO_DEVICE
    channel_index: int
    """Zero-based: 0 = channel 1 … 7 = channel 8."""
    pulse_width_us: int
    """0–500 µs."""
    current_ma: int
    """0–130 mA."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("channel_index", self.channel_index, 0, CHANNEL_COUNT - 1)
        check_int("pulse_width_us", self.pulse_width_us, 0, MAX_PULSE_WIDTH_US)
        check_int("current_ma", self.current_ma, 0, MAX_CURRENT_MA)

    def data(self) -> bytes:
        """Channel index, pulse width MSB and LSB, current."""
        width = self.pulse_width_us
        return bytes((self.channel_index, width >> 8, width & 0xFF, self.current_ma))

    @classmethod
    def from_data(cls, packet_number: int, data: bytes) -> Self:
        """Build the command from its four data bytes."""
        expect_len(data, 4)
        return cls(
            packet_number=packet_number,
            channel_index=data[0],
            pulse_width_us=data[1] << 8 | data[2],
            current_ma=data[3],
        )


@dataclass(frozen=True, kw_only=True)
class SinglePulseAck(AckBase):
    """Answer to SinglePulse (37): 0, −1, −2, −3 or −8."""

    command = Command.SINGLE_PULSE_ACK
