"""Field encodings of ScienceMode2 (Hasomed RehaStim2): codes, enums, masks, interval conversions.

Everything here maps one physical quantity or one protocol enum to the numbers that travel on the
wire, following ``docs/protocols/sciencemode2.md`` §4 and §12. It is pure: it must never do I/O,
read a clock, keep state or clamp silently. A value outside the range the spec allows raises
:class:`~emsctl.errors.ProtocolError`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from enum import IntEnum

from emsctl.errors import ProtocolError

__all__ = [
    "CHANNEL_COUNT",
    "MAX_CURRENT_MA",
    "MAX_INTER_PULSE_INTERVAL_CODE",
    "MAX_LOW_FREQUENCY_FACTOR",
    "MAX_MAIN_INTERVAL_CODE",
    "MAX_PULSE_WIDTH_US",
    "MIN_INTER_PULSE_INTERVAL_CODE",
    "MIN_MAIN_INTERVAL_CODE",
    "ONE_SHOT_MAIN_INTERVAL_CODE",
    "ChannelExecution",
    "PulseGroup",
    "Result",
    "StimulationErrorCode",
    "StimulationMode",
    "channel_mask",
    "channels_in_mask",
    "frequency_hz_from_main_interval_code",
    "from_signed_byte",
    "inter_pulse_interval_code_from_ms",
    "inter_pulse_interval_ms_from_code",
    "main_interval_code_from_frequency_hz",
    "main_interval_code_from_period_ms",
    "period_ms_from_main_interval_code",
    "to_signed_byte",
]

CHANNEL_COUNT = 8
"""Channels 1–8: module A drives 1–4, module B drives 5–8 [SM2 §1.2]."""
MAX_PULSE_WIDTH_US = 500
MAX_CURRENT_MA = 130
MAX_LOW_FREQUENCY_FACTOR = 7
ONE_SHOT_MAIN_INTERVAL_CODE = 0
"""t1 code 0 does not mean 1 ms: it selects one-shot mode."""
MIN_MAIN_INTERVAL_CODE = 14
"""Firmware minimum for t1: 8 ms. Codes 1–13 exist on the wire but are below it."""
MAX_MAIN_INTERVAL_CODE = 2048
"""t1 = 1025 ms."""
MIN_INTER_PULSE_INTERVAL_CODE = 13
"""Firmware minimum for t2: 8 ms. Codes 0–12 exist on the wire but are below it."""
MAX_INTER_PULSE_INTERVAL_CODE = 255
"""t2 = 129 ms."""


class Result(IntEnum):
    """Result byte of an ack (signed 8-bit on the wire) [SM2 §3, §4]."""

    OK = 0
    TRANSFER_ERROR = -1
    """LEN or CRC mismatch in the command this acks."""
    PARAMETER_ERROR = -2
    WRONG_MODE = -3
    MOTOMED_CONNECTION_ERROR = -4
    INCOMPATIBLE_VERSION = -5
    BUSY = -8


class StimulationErrorCode(IntEnum):
    """Error byte of an unsolicited StimulationError (38) [SM2 §4.3]."""

    EMERGENCY_SWITCH = -1
    """Emergency switch pressed or not connected."""
    ELECTRODE_ERROR = -2
    STIMULATION_MODULE_ERROR = -3


class StimulationMode(IntEnum):
    """Mode reported by GetStimulationModeAck [SM2 §4.1]."""

    START = 0
    INITIALISED = 1
    STARTED = 2


class PulseGroup(IntEnum):
    """Pulses per period on one channel; doublets and triplets are spaced by t2."""

    SINGLE = 0
    DOUBLET = 1
    TRIPLET = 2


class ChannelExecution(IntEnum):
    """Channel slot timing in channel list mode."""

    FIXED_SLOTS = 0
    """Each active channel gets a fixed 1.5 ms slot."""
    AS_FAST_AS_POSSIBLE = 1
    """Documented by the vendor as not implemented."""


def to_signed_byte(value: int) -> int:
    """Encode a signed 8-bit value (−128…127) as the unsigned byte sent on the wire.

    Raises:
        ProtocolError: if the value does not fit in a signed byte.
    """
    if not -128 <= value <= 127:
        raise ProtocolError(f"{value} does not fit in a signed byte")
    return value & 0xFF


def from_signed_byte(byte: int) -> int:
    """Decode an unsigned wire byte (0–255) as a signed 8-bit value (0xFF → −1).

    Raises:
        ProtocolError: if the value is not a byte.
    """
    if not 0 <= byte <= 0xFF:
        raise ProtocolError(f"{byte} is not a byte")
    return byte - 0x100 if byte >= 0x80 else byte


def channel_mask(channels: Iterable[int]) -> int:
    """Bit mask of one-based channel numbers: channel 1 is bit 0, channel 8 is bit 7.

    Raises:
        ProtocolError: if a channel is outside 1–8.
    """
    mask = 0
    for channel in channels:
        if not 1 <= channel <= CHANNEL_COUNT:
            raise ProtocolError(f"channel {channel} is outside 1–{CHANNEL_COUNT}")
        mask |= 1 << (channel - 1)
    return mask


def channels_in_mask(mask: int) -> tuple[int, ...]:
    """One-based channel numbers set in a mask, in increasing order (the wire order of Start).

    Raises:
        ProtocolError: if the mask is not a byte.
    """
    if not 0 <= mask <= 0xFF:
        raise ProtocolError(f"channel mask {mask} is not a byte")
    return tuple(bit + 1 for bit in range(CHANNEL_COUNT) if mask >> bit & 1)


def _round_half_up(value: float) -> int:
    # The spec says "round" without a tie rule; ties go to the larger code, i.e. the longer
    # interval and the lower frequency, which is the safer side.
    return math.floor(value + 0.5)


def _finite_positive(value: float, name: str) -> float:
    if not math.isfinite(value) or value <= 0:
        raise ProtocolError(f"{name} must be a finite positive number, not {value!r}")
    return value


def main_interval_code_from_period_ms(period_ms: float) -> int:
    """Main interval code for a stimulation period t1: code = round((t1 − 1)·2)
    (docs/protocols/sciencemode2.md §12).

    Args:
        period_ms: the period t1 between pulse lists, in milliseconds.

    Returns:
        The t1 code, within 14–2048 (8–1025 ms). Exact ties round to the longer period.

    Raises:
        ProtocolError: if the period is not finite and positive, or codes outside 14–2048.
    """
    code = _round_half_up((_finite_positive(period_ms, "period_ms") - 1.0) * 2.0)
    if not MIN_MAIN_INTERVAL_CODE <= code <= MAX_MAIN_INTERVAL_CODE:
        raise ProtocolError(f"a period of {period_ms} ms is outside 8–1025 ms (t1 code {code})")
    return code


def main_interval_code_from_frequency_hz(frequency_hz: float) -> int:
    """Main interval code for a stimulation frequency: t1 = 1000 / f ms
    (docs/protocols/sciencemode2.md §12).

    Raises:
        ProtocolError: if the frequency is not finite and positive, or is outside ≈ 0.98–125 Hz.
    """
    period_ms = 1000.0 / _finite_positive(frequency_hz, "frequency_hz")
    try:
        return main_interval_code_from_period_ms(period_ms)
    except ProtocolError:
        raise ProtocolError(f"{frequency_hz} Hz is outside the t1 range 8–1025 ms") from None


def period_ms_from_main_interval_code(code: int) -> float:
    """Period t1 = code·0.5 + 1 ms of a main interval code 1–2048.

    Raises:
        ProtocolError: for code 0 (one-shot mode has no period) or a code above 2048.
    """
    if code == ONE_SHOT_MAIN_INTERVAL_CODE:
        raise ProtocolError("t1 code 0 selects one-shot mode and has no period")
    if not 0 < code <= MAX_MAIN_INTERVAL_CODE:
        raise ProtocolError(f"t1 code {code} is outside 0–{MAX_MAIN_INTERVAL_CODE}")
    return code * 0.5 + 1.0


def frequency_hz_from_main_interval_code(code: int) -> float:
    """Actual frequency 1000 / (code/2 + 1) Hz of a main interval code 1–2048.

    Raises:
        ProtocolError: for code 0 (one-shot mode) or a code above 2048.
    """
    return 1000.0 / period_ms_from_main_interval_code(code)


def inter_pulse_interval_code_from_ms(interval_ms: float) -> int:
    """Inter-pulse interval code for the spacing t2 inside a doublet or triplet.

    The coding is t2 = code·0.5 + 1.5 ms; rounding follows the t1 rule of
    docs/protocols/sciencemode2.md §12.

    Args:
        interval_ms: the spacing t2 in milliseconds.

    Returns:
        The t2 code, within 13–255 (8–129 ms).

    Raises:
        ProtocolError: if the interval is not finite and positive, or codes outside 13–255.
    """
    code = _round_half_up((_finite_positive(interval_ms, "interval_ms") - 1.5) * 2.0)
    if not MIN_INTER_PULSE_INTERVAL_CODE <= code <= MAX_INTER_PULSE_INTERVAL_CODE:
        raise ProtocolError(f"an inter-pulse interval of {interval_ms} ms is outside 8–129 ms")
    return code


def inter_pulse_interval_ms_from_code(code: int) -> float:
    """Spacing t2 = code·0.5 + 1.5 ms of an inter-pulse interval code 0–255.

    Raises:
        ProtocolError: if the code is not a byte.
    """
    if not 0 <= code <= MAX_INTER_PULSE_INTERVAL_CODE:
        raise ProtocolError(f"t2 code {code} is outside 0–{MAX_INTER_PULSE_INTERVAL_CODE}")
    return code * 0.5 + 1.5
