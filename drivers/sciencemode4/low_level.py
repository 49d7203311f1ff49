"""ScienceMode4 low-level messages: the host triggers every single pulse.

Ll_init (0) enters the level with a measurement type and a high-voltage code, each
Ll_channel_config (2) asks for one pulse on one channel (acknowledged after the pulse has run),
Ll_stop (4) leaves the level (``docs/protocols/sciencemode4.md`` §7). A channel is addressed as
connector (0 yellow, 1 green) and channel 0–3 within it.

Pure: no I/O, no clock; wire ranges only (device limits are checked by the emulator).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from ...errors import ProtocolError
from .fields import (
    CHANNELS_PER_CONNECTOR,
    MeasurementType,
    Result,
    channel_from_connector,
    check_int,
    expect_len,
    to_enum,
)
from .messages import AckBase, Command, Direction, MessageBase, coerce_enum, decode_result
from .pulses import POINT_LEN, Point, check_points, decode_points, encode_points

__all__ = [
    "MAX_HIGH_VOLTAGE_CODE",
    "MEASUREMENT_SAMPLES",
    "LlChannelConfig",
    "LlChannelConfigAck",
    "LlInit",
    "LlInitAck",
    "LlStop",
    "LlStopAck",
]

MAX_HIGH_VOLTAGE_CODE = 7
"""Ll_init bits 3–1 carry 0–7: 0 standard (150 V on), 1 off, 2–6 legacy 30–150 V; 7 is refused."""
MEASUREMENT_SAMPLES = 128
"""Samples in a Ll_channel_config_ack with a measurement."""


@dataclass(frozen=True, kw_only=True)
class LlInit(MessageBase):
    """Enter low level (0)."""

    command = Command.LL_INIT
    direction = Direction.HOST_TO_DEVICE
    measurement: MeasurementType = MeasurementType.NONE
    high_voltage_code: int = 0
    """0 = standard (150 V, on), 1 = off, 2–6 = legacy codes; the wire carries 0–7."""

    def __post_init__(self) -> None:
        super().__post_init__()
        coerce_enum(self, "measurement", MeasurementType)
        check_int("high_voltage_code", self.high_voltage_code, 0, MAX_HIGH_VOLTAGE_CODE)

    def data(self) -> bytes:
        """One byte: bits 6–4 measurement, bits 3–1 high voltage, bits 7 and 0 are 0."""
        return bytes(((self.measurement << 4) | (self.high_voltage_code << 1),))

    @classmethod
    def from_data(cls, packet_number: int, data: bytes) -> Self:
        """Build from one byte; the reserved bits 7 and 0 are ignored.

        Raises:
            ProtocolError: a measurement type above 3.
        """
        expect_len(data, 1)
        return cls(packet_number=packet_number,
                   measurement=to_enum(MeasurementType, data[0] >> 4 & 0x07, "measurement"),
                   high_voltage_code=data[0] >> 1 & 0x07)


@dataclass(frozen=True, kw_only=True)
class LlInitAck(AckBase):
    """Answer to LlInit (1)."""

    command = Command.LL_INIT_ACK


@dataclass(frozen=True, kw_only=True)
class LlChannelConfig(MessageBase):
    """One pulse on one channel (2).

    Without ``execute`` the points may be left out (one data byte); with it they are required.
    """

    command = Command.LL_CHANNEL_CONFIG
    direction = Direction.HOST_TO_DEVICE
    execute: bool
    """Bit 7: run the pulse."""
    connector: int
    """Bit 4: 0 yellow (channels 1–4), 1 green (channels 5–8)."""
    channel_in_connector: int
    """Bits 6–5: 0–3."""
    points: tuple[Point, ...]
    """1–16 points, or none at all when ``execute`` is False."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.execute, bool):
            raise ProtocolError(f"execute must be a bool, not {self.execute!r}")
        check_int("connector", self.connector, 0, 1)
        check_int("channel_in_connector", self.channel_in_connector, 0,
                  CHANNELS_PER_CONNECTOR - 1)
        if self.points != () or self.execute:
            check_points(self.points)

    @property
    def channel(self) -> int:
        """The channel number 1–8 (``connector·4 + channel + 1``)."""
        return channel_from_connector(self.connector, self.channel_in_connector)

    def data(self) -> bytes:
        """The address byte (bits 3–0 = n − 1), then the points."""
        count = max(len(self.points), 1) - 1
        head = ((int(self.execute) << 7) | (self.channel_in_connector << 5)
                | (self.connector << 4) | count)
        return bytes((head,)) + encode_points(self.points)

    @classmethod
    def from_data(cls, packet_number: int, data: bytes) -> Self:
        """Build from the address byte and 0 (without execute) or n points.

        Raises:
            ProtocolError: a length that fits neither form, or a point out of range.
        """
        if not data:
            raise ProtocolError("Ll_channel_config needs its address byte")
        head = data[0]
        execute = bool(head & 0x80)
        count = (head & 0x0F) + 1
        if len(data) == 1 and not execute:
            points: tuple[Point, ...] = ()
        else:
            expect_len(data, 1 + POINT_LEN * count)
            points = decode_points(data[1:])
        return cls(packet_number=packet_number, execute=execute, connector=head >> 4 & 1,
                   channel_in_connector=head >> 5 & 0x03, points=points)


@dataclass(frozen=True, kw_only=True)
class LlChannelConfigAck(AckBase):
    """Answer to LlChannelConfig (3), sent after the pulse has run.

    Without a measurement it has 3 data bytes (a 15-byte frame); with one, the sampling time
    and 128 samples follow.
    """

    command = Command.LL_CHANNEL_CONFIG_ACK
    connector: int = 0
    channel_in_connector: int = 0
    measurement: MeasurementType = MeasurementType.NONE
    """The measurement type set by Ll_init, echoed."""
    sampling_time_us: int = 0
    """0–65535; only with a measurement."""
    samples: tuple[int, ...] = ()
    """128 u16 samples with a measurement, none without; units depend on the type."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("connector", self.connector, 0, 1)
        check_int("channel_in_connector", self.channel_in_connector, 0,
                  CHANNELS_PER_CONNECTOR - 1)
        coerce_enum(self, "measurement", MeasurementType)
        check_int("sampling_time_us", self.sampling_time_us, 0, 0xFFFF)
        if not isinstance(self.samples, tuple):
            raise ProtocolError("samples must be a tuple")
        if self.measurement == MeasurementType.NONE:
            if self.samples or self.sampling_time_us:
                raise ProtocolError("an ack without a measurement has no samples")
        elif len(self.samples) != MEASUREMENT_SAMPLES:
            raise ProtocolError(f"a measurement has {MEASUREMENT_SAMPLES} samples, "
                                f"not {len(self.samples)}")
        for sample in self.samples:
            check_int("sample", sample, 0, 0xFFFF)

    @property
    def channel(self) -> int:
        """The channel number 1–8."""
        return channel_from_connector(self.connector, self.channel_in_connector)

    def data(self) -> bytes:
        """Result, connector << 4 | channel, measurement, [sampling time, samples]."""
        head = bytes((self.result, (self.connector << 4) | self.channel_in_connector,
                      self.measurement))
        if self.measurement == MeasurementType.NONE:
            return head
        return head + b"".join(v.to_bytes(2, "big")
                               for v in (self.sampling_time_us, *self.samples))

    @classmethod
    def from_data(cls, packet_number: int, data: bytes) -> Self:
        """Build from 3 data bytes, or 3 + 2 + 256 with a measurement.

        Raises:
            ProtocolError: a wrong length, a bad address or a measurement type above 3.
        """
        if len(data) < 3:
            raise ProtocolError(f"expected at least 3 data bytes, got {len(data)}")
        measurement = to_enum(MeasurementType, data[2], "measurement")
        if data[1] >> 4 > 1 or data[1] & 0x0F >= CHANNELS_PER_CONNECTOR:
            raise ProtocolError(f"channel address 0x{data[1]:02X} is out of range")
        values: tuple[int, ...] = (0,)
        if measurement == MeasurementType.NONE:
            expect_len(data, 3)
        else:
            expect_len(data, 3 + 2 * (1 + MEASUREMENT_SAMPLES))
            values = tuple(int.from_bytes(data[i:i + 2], "big") for i in range(3, len(data), 2))
        return cls(packet_number=packet_number, result=decode_result(data[0]),
                   connector=data[1] >> 4, channel_in_connector=data[1] & 0x0F,
                   measurement=measurement, sampling_time_us=values[0], samples=values[1:])

    @classmethod
    def refusal(cls, packet_number: int, result: Result, connector: int = 0,
                channel_in_connector: int = 0) -> Self:
        """Result, the channel address (0 by default) and no measurement."""
        return cls(packet_number=packet_number, result=result, connector=connector,
                   channel_in_connector=channel_in_connector)


@dataclass(frozen=True, kw_only=True)
class LlStop(MessageBase):
    """Leave low level, high voltage off (4)."""

    command = Command.LL_STOP
    direction = Direction.HOST_TO_DEVICE


@dataclass(frozen=True, kw_only=True)
class LlStopAck(AckBase):
    """Answer to LlStop (5)."""

    command = Command.LL_STOP_ACK
