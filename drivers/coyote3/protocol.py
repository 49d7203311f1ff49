"""Pure codec for the DG-LAB Coyote V3 BLE protocol (spec: ``docs/protocols/coyote3.md``).

This is the one import path for everything protocol-level about the Coyote V3: it encodes and
decodes the frames B0 (host → device, strength and 100 ms of waveform), BF (host → device, soft
limits and balances) and B1 (device → host, strength report), in both directions, because the
host driver and the bundled device emulator share it. It re-exports the wire types and constants
(:mod:`.frames`), the frequency-byte scale (:mod:`.frequency`) and the behaviour rules
(:mod:`.rules`).

Frames have no checksum, no escaping and fixed lengths; byte 0 is the head. Decoders raise
:class:`~emsctl.errors.ProtocolError` for anything that is not a well-formed frame, and no other
exception for any byte string.

This module must never do I/O, read a clock, start a thread or import bleak.
"""

from __future__ import annotations

from emsctl.drivers.coyote3.frames import (
    ADVERTISED_NAME,
    ADVERTISED_NAME_PREFIX,
    B0_LENGTH,
    B1_LENGTH,
    BALANCE_MAX,
    BATTERY_CHARACTERISTIC_UUID,
    BATTERY_PCT_MAX,
    BATTERY_SERVICE_UUID,
    BE_LENGTH,
    BF_LENGTH,
    FRAME_DURATION_MS,
    HEAD_B0,
    HEAD_B1,
    HEAD_BE,
    HEAD_BF,
    INTENSITY_MAX,
    NOTIFY_CHARACTERISTIC_UUID,
    SEQUENCE_MAX,
    SERVICE_UUID,
    SLOT_DURATION_MS,
    SLOTS_PER_FRAME,
    STRENGTH_STEPS_MAX,
    WRITE_CHARACTERISTIC_UUID,
    B0Frame,
    BfFrame,
    ChannelWaveform,
    StrengthChange,
    StrengthMode,
    StrengthReport,
    is_coyote3_name,
    uuid_from_short,
)
from emsctl.drivers.coyote3.frequency import (
    FREQUENCY_CODE_MAX,
    FREQUENCY_CODE_MIN,
    FREQUENCY_HZ_MAX,
    FREQUENCY_HZ_MIN,
    PERIOD_MS_MAX,
    PERIOD_MS_MIN,
    frequency_code_from_hz,
    frequency_code_from_period_ms,
    frequency_hz_from_code,
    frequency_hz_from_period_ms,
    is_valid_frequency_code,
    period_bin_width_ms,
    period_ms_from_frequency_code,
    period_ms_from_frequency_hz,
    require_int,
)
from emsctl.drivers.coyote3.rules import (
    LimitUpdate,
    StrengthUpdate,
    apply_b0_strengths,
    apply_bf_limits,
    apply_strength_change,
    channel_emits,
    check_host_b0,
    check_host_bf,
    effective_strength_value,
    next_sequence,
    stop_frame,
    updated_soft_limit,
    wheel_step,
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
    "FRAME_DURATION_MS",
    "FREQUENCY_CODE_MAX",
    "FREQUENCY_CODE_MIN",
    "FREQUENCY_HZ_MAX",
    "FREQUENCY_HZ_MIN",
    "HEAD_B0",
    "HEAD_B1",
    "HEAD_BE",
    "HEAD_BF",
    "INTENSITY_MAX",
    "NOTIFY_CHARACTERISTIC_UUID",
    "PERIOD_MS_MAX",
    "PERIOD_MS_MIN",
    "SEQUENCE_MAX",
    "SERVICE_UUID",
    "SLOTS_PER_FRAME",
    "SLOT_DURATION_MS",
    "STRENGTH_STEPS_MAX",
    "WRITE_CHARACTERISTIC_UUID",
    "B0Frame",
    "BfFrame",
    "BytesLike",
    "ChannelWaveform",
    "LimitUpdate",
    "StrengthChange",
    "StrengthMode",
    "StrengthReport",
    "StrengthUpdate",
    "apply_b0_strengths",
    "apply_bf_limits",
    "apply_strength_change",
    "channel_emits",
    "check_host_b0",
    "check_host_bf",
    "decode_b0",
    "decode_b1",
    "decode_battery_level",
    "decode_bf",
    "decode_command",
    "decode_notification",
    "effective_strength_value",
    "encode_b0",
    "encode_b1",
    "encode_battery_level",
    "encode_bf",
    "frequency_code_from_hz",
    "frequency_code_from_period_ms",
    "frequency_hz_from_code",
    "frequency_hz_from_period_ms",
    "is_coyote3_name",
    "is_valid_frequency_code",
    "next_sequence",
    "period_bin_width_ms",
    "period_ms_from_frequency_code",
    "period_ms_from_frequency_hz",
    "stop_frame",
    "updated_soft_limit",
    "uuid_from_short",
    "wheel_step",
]

BytesLike = bytes | bytearray | memoryview
"""What a decoder accepts: the payload of one ATT write or notification."""


def _as_bytes(data: BytesLike) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    return bytes(data)


def _expect(raw: bytes, head: int, length: int, name: str) -> None:
    if not raw:
        raise ProtocolError(f"empty {name} frame")
    if raw[0] != head:
        raise ProtocolError(f"not a {name} frame: head 0x{raw[0]:02X}, expected 0x{head:02X}")
    if len(raw) != length:
        raise ProtocolError(f"{name} frame must be {length} bytes, got {len(raw)}")


def encode_b0(frame: B0Frame) -> bytes:
    """Encode a B0 frame to its 20 bytes, exactly as the dataclass says.

    Host policy is not applied here; call :func:`check_host_b0` first on the host side.

    Args:
        frame: The frame.

    Returns:
        ``B0``, sequence and modes, value A, value B, 4 codes A, 4 intensities A, 4 codes B,
        4 intensities B.
    """
    control = (frame.sequence << 4) | (frame.change_a.mode << 2) | frame.change_b.mode
    return bytes(
        (
            HEAD_B0,
            control,
            frame.change_a.value_steps,
            frame.change_b.value_steps,
            *frame.waveform_a.frequency_codes,
            *frame.waveform_a.intensities,
            *frame.waveform_b.frequency_codes,
            *frame.waveform_b.intensities,
        )
    )


def decode_b0(data: BytesLike) -> B0Frame:
    """Decode a 20-byte B0 frame; every such frame decodes, valid waveform or not.

    Args:
        data: The written bytes.

    Returns:
        The frame, with raw values (use :attr:`ChannelWaveform.is_valid` and
        :func:`effective_strength_value` for their meaning).

    Raises:
        ProtocolError: If the head is not ``B0`` or the length is not 20.
    """
    raw = _as_bytes(data)
    _expect(raw, HEAD_B0, B0_LENGTH, "B0")
    control = raw[1]

    def waveform(start: int) -> ChannelWaveform:
        c = raw[start : start + 4]
        i = raw[start + 4 : start + 8]
        return ChannelWaveform((c[0], c[1], c[2], c[3]), (i[0], i[1], i[2], i[3]))

    return B0Frame(
        sequence=control >> 4,
        change_a=StrengthChange(StrengthMode((control >> 2) & 0b11), raw[2]),
        change_b=StrengthChange(StrengthMode(control & 0b11), raw[3]),
        waveform_a=waveform(4),
        waveform_b=waveform(12),
    )


def encode_bf(frame: BfFrame) -> bytes:
    """Encode a BF frame to its 7 bytes.

    Host policy is not applied here; call :func:`check_host_bf` first on the host side.

    Args:
        frame: The frame.

    Returns:
        ``BF``, limit A, limit B, frequency balance A, B, intensity balance A, B.
    """
    return bytes(
        (
            HEAD_BF,
            frame.limit_a_steps,
            frame.limit_b_steps,
            frame.frequency_balance_a,
            frame.frequency_balance_b,
            frame.intensity_balance_a,
            frame.intensity_balance_b,
        )
    )


def decode_bf(data: BytesLike) -> BfFrame:
    """Decode a 7-byte BF frame; every such frame decodes.

    Args:
        data: The written bytes.

    Returns:
        The frame, with raw limit bytes (above 200 means "leave unchanged").

    Raises:
        ProtocolError: If the head is not ``BF`` or the length is not 7.
    """
    raw = _as_bytes(data)
    _expect(raw, HEAD_BF, BF_LENGTH, "BF")
    return BfFrame(raw[1], raw[2], raw[3], raw[4], raw[5], raw[6])


def encode_b1(report: StrengthReport) -> bytes:
    """Encode a strength report to its 4 bytes (device side).

    Args:
        report: The report.

    Returns:
        ``B1``, sequence, strength A, strength B.
    """
    return bytes((HEAD_B1, report.sequence, report.strength_a_steps, report.strength_b_steps))


def decode_b1(data: BytesLike) -> StrengthReport:
    """Decode a B1 notification (host side).

    Per docs/protocols/coyote3.md §12 a B1 longer than 4 bytes is accepted and only its first 4
    bytes are used.

    Args:
        data: The notified bytes.

    Returns:
        The report.

    Raises:
        ProtocolError: If the head is not ``B1``, it is shorter than 4 bytes, the sequence byte
            is above 15 or a strength is above 200.
    """
    raw = _as_bytes(data)
    if len(raw) > B1_LENGTH:
        raw = raw[:B1_LENGTH]
    _expect(raw, HEAD_B1, B1_LENGTH, "B1")
    return StrengthReport(raw[1], raw[2], raw[3])


def decode_command(data: BytesLike) -> B0Frame | BfFrame:
    """Decode one host write (device side): a B0 or a BF.

    The emulator ignores, without answering, any write for which this raises.

    Args:
        data: The written bytes.

    Returns:
        The decoded frame.

    Raises:
        ProtocolError: If the write is empty, has another head, or has the wrong length.
    """
    raw = _as_bytes(data)
    if not raw:
        raise ProtocolError("empty write")
    if raw[0] == HEAD_B0:
        return decode_b0(raw)
    if raw[0] == HEAD_BF:
        return decode_bf(raw)
    raise ProtocolError(f"unknown command head 0x{raw[0]:02X}")


def decode_notification(data: BytesLike) -> StrengthReport | None:
    """Decode one notification of characteristic 0x150B (host side).

    Args:
        data: The notified bytes.

    Returns:
        The strength report for a B1; None for any other head (such as the deprecated BE echo),
        which the host ignores.

    Raises:
        ProtocolError: If the notification is empty or is a malformed B1. A malformed B1 is a
            fault for the driver, not something to skip: it may hide a strength change.
    """
    raw = _as_bytes(data)
    if not raw:
        raise ProtocolError("empty notification")
    if raw[0] != HEAD_B1:
        return None
    return decode_b1(raw)


def encode_battery_level(battery_pct: int) -> bytes:
    """Encode a battery level for characteristic 0x1500 (device side).

    Args:
        battery_pct: Battery level in percent, 0–100.

    Returns:
        One byte.

    Raises:
        ProtocolError: If ``battery_pct`` is outside 0–100.
    """
    return bytes((require_int("battery_pct", battery_pct, 0, BATTERY_PCT_MAX),))


def decode_battery_level(data: BytesLike) -> int:
    """Decode the battery characteristic 0x1500 (host side).

    Args:
        data: The value read or notified.

    Returns:
        Battery level in percent, 0–100.

    Raises:
        ProtocolError: If the value is not exactly one byte within 0–100.
    """
    raw = _as_bytes(data)
    if len(raw) != 1:
        raise ProtocolError(f"battery level must be 1 byte, got {len(raw)}")
    return require_int("battery_pct", raw[0], 0, BATTERY_PCT_MAX)
