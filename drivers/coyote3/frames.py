"""Coyote V3 wire vocabulary: GATT UUIDs, frame constants and the typed frames B0, BF and B1.

The dataclasses are the *wire truth*: every field holds what a byte on the air can hold, so that
every structurally well-formed frame (right head, right length) can be represented, including
the out-of-range values whose device behaviour the spec defines (a strength value above 200 acts
as 0, a BF limit above 200 leaves the limit unchanged, a frequency byte outside 10–240 or an
intensity above 100 silences the channel). Their constructors reject only what no byte can hold
(negative numbers, values above 255, a sequence number above 15).

The *strict* factories (``StrengthChange.set_to``, ``ChannelWaveform.steady`` …) are what a host
builds frames with: they accept only values in the documented ranges and raise otherwise.

This module is pure: no I/O, no clock, no bleak. It must never clamp a value silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from enum import IntEnum

from emsctl.drivers.coyote3.frequency import (
    FREQUENCY_CODE_MAX,
    FREQUENCY_CODE_MIN,
    PERIOD_MS_MAX,
    frequency_code_from_hz,
    frequency_code_from_period_ms,
    require_int,
)
from emsctl.errors import ProtocolError

__all__ = [
    "ADVERTISED_NAME",
    "ADVERTISED_NAME_PREFIX",
    "B0_LENGTH",
    "B1_LENGTH",
    "BALANCE_MAX",
    "BATTERY_CHARACTERISTIC_UUID",
    "BATTERY_PCT_MAX",
    "BATTERY_SERVICE_UUID",
    "BE_LENGTH",
    "BF_LENGTH",
    "BYTE_MAX",
    "FRAME_DURATION_MS",
    "HEAD_B0",
    "HEAD_B1",
    "HEAD_BE",
    "HEAD_BF",
    "INTENSITY_MAX",
    "NOTIFY_CHARACTERISTIC_UUID",
    "SEQUENCE_MAX",
    "SERVICE_UUID",
    "SLOTS_PER_FRAME",
    "SLOT_DURATION_MS",
    "STRENGTH_STEPS_MAX",
    "WRITE_CHARACTERISTIC_UUID",
    "B0Frame",
    "BfFrame",
    "ChannelWaveform",
    "StrengthChange",
    "StrengthMode",
    "StrengthReport",
    "is_coyote3_name",
    "uuid_from_short",
]


def uuid_from_short(short_uuid: int) -> str:
    """Expand a 16-bit UUID onto the Bluetooth base UUID, lower case as bleak reports it.

    Args:
        short_uuid: The 16-bit assigned number, 0x0000–0xFFFF.

    Returns:
        The 128-bit UUID string ``0000xxxx-0000-1000-8000-00805f9b34fb``.

    Raises:
        ProtocolError: If ``short_uuid`` is not within 0x0000–0xFFFF.
    """
    short_uuid = require_int("short_uuid", short_uuid, 0, 0xFFFF)
    return f"0000{short_uuid:04x}-0000-1000-8000-00805f9b34fb"


SERVICE_UUID = uuid_from_short(0x180C)
"""Primary service that carries the command and reply characteristics."""
WRITE_CHARACTERISTIC_UUID = uuid_from_short(0x150A)
"""Host → device: B0 and BF, written without response (the emulator also accepts requests)."""
NOTIFY_CHARACTERISTIC_UUID = uuid_from_short(0x150B)
"""Device → host: B1 notifications; subscribe right after connecting."""
BATTERY_SERVICE_UUID = uuid_from_short(0x180A)
"""Vendor battery service (not the SIG Device Information service despite the number)."""
BATTERY_CHARACTERISTIC_UUID = uuid_from_short(0x1500)
"""Battery level: read and notify, 1 byte, 0–100 %."""

ADVERTISED_NAME = "47L121000"
"""Advertised name of the Coyote V3 pulse host."""
ADVERTISED_NAME_PREFIX = "47L121"
"""Name prefix emsctl accepts (``47L120100`` is a sensor, a different product)."""

HEAD_B0 = 0xB0
HEAD_BF = 0xBF
HEAD_B1 = 0xB1
HEAD_BE = 0xBE
B0_LENGTH = 20
BF_LENGTH = 7
B1_LENGTH = 4
BE_LENGTH = 7

BYTE_MAX = 0xFF
SEQUENCE_MAX = 15
"""Sequence numbers fill 4 bits; 0 means "do not report this change"."""
STRENGTH_STEPS_MAX = 200
"""Absolute strength range is 0–200 device steps (voltage, not mA)."""
INTENSITY_MAX = 100
"""Waveform intensity (relative pulse width, no unit) is valid within 0–100."""
BALANCE_MAX = 255
BATTERY_PCT_MAX = 100
SLOTS_PER_FRAME = 4
SLOT_DURATION_MS = 25
FRAME_DURATION_MS = SLOTS_PER_FRAME * SLOT_DURATION_MS

Quartet = tuple[int, int, int, int]


def is_coyote3_name(name: str | None) -> bool:
    """Tell whether an advertised name is a Coyote V3 pulse host.

    Args:
        name: The advertised local name, or None if the advertisement had none.

    Returns:
        True for the exact name ``47L121000`` or any name starting with ``47L121``.
    """
    return name is not None and name.startswith(ADVERTISED_NAME_PREFIX)


def _quartet(name: str, values: Sequence[int], high: int) -> Quartet:
    if (
        not isinstance(values, Sequence)
        or isinstance(values, str)
        or len(values) != SLOTS_PER_FRAME
    ):
        raise ProtocolError(f"{name} must hold exactly {SLOTS_PER_FRAME} values, got {values!r}")
    a, b, c, d = (require_int(name, value, 0, high) for value in values)
    return (a, b, c, d)


class StrengthMode(IntEnum):
    """How a B0 strength value byte is interpreted (2 bits per channel)."""

    KEEP = 0b00
    """No change; the value byte is ignored."""
    ADD = 0b01
    """Add the value to the strength."""
    SUBTRACT = 0b10
    """Subtract the value from the strength."""
    SET = 0b11
    """Set the strength to the value."""


@dataclass(frozen=True, slots=True)
class StrengthChange:
    """One channel's strength instruction in a B0 frame.

    Attributes:
        mode: How ``value_steps`` is interpreted.
        value_steps: The raw value byte, 0–255. The device treats a value above 200 as 0.
    """

    mode: StrengthMode
    value_steps: int = 0

    def __post_init__(self) -> None:
        try:
            mode = StrengthMode(self.mode)
        except ValueError:
            raise ProtocolError(f"strength mode must be 0–3, got {self.mode!r}") from None
        object.__setattr__(self, "mode", mode)
        value = require_int("strength value_steps", self.value_steps, 0, BYTE_MAX)
        object.__setattr__(self, "value_steps", value)

    @classmethod
    def keep(cls) -> StrengthChange:
        """Leave the strength as it is (value byte 0)."""
        return cls(StrengthMode.KEEP, 0)

    @classmethod
    def set_to(cls, strength_steps: int) -> StrengthChange:
        """Set the strength absolutely (idempotent if a frame is lost).

        Raises:
            ProtocolError: If ``strength_steps`` is not within 0–200.
        """
        return cls(
            StrengthMode.SET, require_int("strength_steps", strength_steps, 0, STRENGTH_STEPS_MAX)
        )

    @classmethod
    def add(cls, delta_steps: int) -> StrengthChange:
        """Raise the strength by ``delta_steps`` (the device saturates at its limit).

        Raises:
            ProtocolError: If ``delta_steps`` is not within 0–200.
        """
        return cls(StrengthMode.ADD, require_int("delta_steps", delta_steps, 0, STRENGTH_STEPS_MAX))

    @classmethod
    def subtract(cls, delta_steps: int) -> StrengthChange:
        """Lower the strength by ``delta_steps`` (the device saturates at 0).

        Raises:
            ProtocolError: If ``delta_steps`` is not within 0–200.
        """
        return cls(
            StrengthMode.SUBTRACT, require_int("delta_steps", delta_steps, 0, STRENGTH_STEPS_MAX)
        )


@dataclass(frozen=True, slots=True)
class ChannelWaveform:
    """100 ms of one channel's waveform: four 25 ms slots of (frequency byte, intensity).

    Attributes:
        frequency_codes: Raw frequency byte per slot, 0–255; valid only within 10–240.
        intensities: Raw waveform intensity per slot, 0–255; valid only within 0–100.
    """

    frequency_codes: Quartet
    intensities: Quartet

    def __post_init__(self) -> None:
        codes = _quartet("frequency_codes", self.frequency_codes, BYTE_MAX)
        object.__setattr__(self, "frequency_codes", codes)
        object.__setattr__(self, "intensities", _quartet("intensities", self.intensities, BYTE_MAX))

    @property
    def is_valid(self) -> bool:
        """True if the device plays this waveform; False if it silences the channel for the frame.

        Any frequency byte outside 10–240 or any intensity above 100 invalidates all four slots.
        """
        return all(
            FREQUENCY_CODE_MIN <= code <= FREQUENCY_CODE_MAX for code in self.frequency_codes
        ) and all(intensity <= INTENSITY_MAX for intensity in self.intensities)

    @classmethod
    def from_slots(cls, periods_ms: Sequence[int], intensities: Sequence[int]) -> ChannelWaveform:
        """Build a valid waveform from four periods and four intensities.

        Args:
            periods_ms: Pulse period per slot, 10–1000 ms (rounded down to the code's bin).
            intensities: Waveform intensity per slot, 0–100.

        Raises:
            ProtocolError: If a list does not hold 4 values or a value is out of range.
        """
        periods = _quartet("periods_ms", periods_ms, PERIOD_MS_MAX)
        a, b, c, d = (frequency_code_from_period_ms(period_ms) for period_ms in periods)
        return cls((a, b, c, d), _quartet("intensities", intensities, INTENSITY_MAX))

    @classmethod
    def steady(cls, *, period_ms: int, intensity: int) -> ChannelWaveform:
        """Build a valid waveform with the same period and intensity in all four slots.

        Raises:
            ProtocolError: If ``period_ms`` is not within 10–1000 or ``intensity`` within 0–100.
        """
        code = frequency_code_from_period_ms(period_ms)
        level = require_int("intensity", intensity, 0, INTENSITY_MAX)
        return cls((code, code, code, code), (level, level, level, level))

    @classmethod
    def from_frequency_hz(cls, *, frequency_hz: float, intensity: int) -> ChannelWaveform:
        """Build a steady waveform from a pulse rate (period = round(1000 / f) ms).

        Raises:
            ProtocolError: If ``frequency_hz`` is not within 1–100 Hz or ``intensity`` 0–100.
        """
        code = frequency_code_from_hz(frequency_hz)
        level = require_int("intensity", intensity, 0, INTENSITY_MAX)
        return cls((code, code, code, code), (level, level, level, level))


@dataclass(frozen=True, slots=True)
class B0Frame:
    """Host → device, every 100 ms: strength instructions and waveform for both channels.

    Attributes:
        sequence: 0–15. A change made with sequence > 0 is answered by a B1 with this number.
        change_a: Strength instruction for channel A (emsctl channel 1).
        change_b: Strength instruction for channel B (emsctl channel 2).
        waveform_a: Next 100 ms of channel A's waveform.
        waveform_b: Next 100 ms of channel B's waveform.
    """

    sequence: int
    change_a: StrengthChange
    change_b: StrengthChange
    waveform_a: ChannelWaveform
    waveform_b: ChannelWaveform

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "sequence", require_int("sequence", self.sequence, 0, SEQUENCE_MAX)
        )
        for name in ("change_a", "change_b"):
            if not isinstance(getattr(self, name), StrengthChange):
                raise ProtocolError(f"{name} must be a StrengthChange")
        for name in ("waveform_a", "waveform_b"):
            if not isinstance(getattr(self, name), ChannelWaveform):
                raise ProtocolError(f"{name} must be a ChannelWaveform")

    @property
    def changes_strength(self) -> bool:
        """True if either channel's instruction is not ``KEEP``."""
        return (
            self.change_a.mode is not StrengthMode.KEEP
            or self.change_b.mode is not StrengthMode.KEEP
        )


@dataclass(frozen=True, slots=True)
class BfFrame:
    """Host → device: soft limits and balance parameters (persisted by the device).

    Attributes:
        limit_a_steps: Soft limit of channel A, 0–200; a byte above 200 leaves it unchanged.
        limit_b_steps: Soft limit of channel B, 0–200; a byte above 200 leaves it unchanged.
        frequency_balance_a: Balance 1 of channel A, 0–255.
        frequency_balance_b: Balance 1 of channel B, 0–255.
        intensity_balance_a: Balance 2 of channel A, 0–255.
        intensity_balance_b: Balance 2 of channel B, 0–255.
    """

    limit_a_steps: int
    limit_b_steps: int
    frequency_balance_a: int
    frequency_balance_b: int
    intensity_balance_a: int
    intensity_balance_b: int

    def __post_init__(self) -> None:
        for field in fields(self):
            name = field.name
            object.__setattr__(self, name, require_int(name, getattr(self, name), 0, BYTE_MAX))


@dataclass(frozen=True, slots=True)
class StrengthReport:
    """Device → host (B1): the current strength of both channels.

    Attributes:
        sequence: Sequence number of the B0 that caused the change; 0 for the wheel or BF.
        strength_a_steps: Strength of channel A, 0–200.
        strength_b_steps: Strength of channel B, 0–200.
    """

    sequence: int
    strength_a_steps: int
    strength_b_steps: int

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "sequence", require_int("sequence", self.sequence, 0, SEQUENCE_MAX)
        )
        for name in ("strength_a_steps", "strength_b_steps"):
            value = require_int(name, getattr(self, name), 0, STRENGTH_STEPS_MAX)
            object.__setattr__(self, name, value)
