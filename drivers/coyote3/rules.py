"""Coyote V3 behaviour as pure functions: what the device does with a frame, what a host may send.

Device side (used by the emulator, and by tests that model the device):

- how a strength instruction changes a channel's strength (saturation at 0 and at the soft limit,
  a value byte above 200 acting as 0), and when a B1 report is due;
- how a BF frame updates the soft limits and lowers a strength above a new limit;
- the wheel step; whether a channel emits pulses in a given slot.

Host side (used by the driver before it writes):

- the sequence-number rotation 1–15;
- the stop frame of docs/protocols/coyote3.md §10;
- ``check_host_b0`` / ``check_host_bf``: the emsctl rules a host frame must meet.

This module is pure: no I/O, no clock, no state of its own. Callers pass the state in and get the
new state back. It must never decide timing (that belongs to the emulator's clock).
"""

from __future__ import annotations

from dataclasses import dataclass

from emsctl.drivers.coyote3.frames import (
    SEQUENCE_MAX,
    SLOTS_PER_FRAME,
    STRENGTH_STEPS_MAX,
    B0Frame,
    BfFrame,
    ChannelWaveform,
    StrengthChange,
    StrengthMode,
    StrengthReport,
)
from emsctl.drivers.coyote3.frequency import is_valid_frequency_code, require_int
from emsctl.errors import ProtocolError

__all__ = [
    "LimitUpdate",
    "StrengthUpdate",
    "apply_b0_strengths",
    "apply_bf_limits",
    "apply_strength_change",
    "channel_emits",
    "check_host_b0",
    "check_host_bf",
    "effective_strength_value",
    "next_sequence",
    "stop_frame",
    "updated_soft_limit",
    "wheel_step",
]


def _strength(name: str, value: int) -> int:
    return require_int(name, value, 0, STRENGTH_STEPS_MAX)


def effective_strength_value(value_steps: int) -> int:
    """Return the value the device uses for a B0 strength value byte.

    Args:
        value_steps: Raw value byte, 0–255.

    Returns:
        The byte itself if it is 0–200; 0 if it is above 200.

    Raises:
        ProtocolError: If ``value_steps`` is not a byte.
    """
    value_steps = require_int("value_steps", value_steps, 0, 0xFF)
    return value_steps if value_steps <= STRENGTH_STEPS_MAX else 0


def apply_strength_change(strength_steps: int, change: StrengthChange, *, limit_steps: int) -> int:
    """Apply one channel's B0 strength instruction, as the device does.

    The result saturates at 0 and at ``min(200, limit_steps)``; a value byte above 200 acts as 0.

    Args:
        strength_steps: The channel's current strength, 0–200.
        change: The instruction from the frame.
        limit_steps: The channel's soft limit, 0–200.

    Returns:
        The new strength, 0–``limit_steps``.

    Raises:
        ProtocolError: If ``strength_steps`` or ``limit_steps`` is outside 0–200.
    """
    current = _strength("strength_steps", strength_steps)
    ceiling = _strength("limit_steps", limit_steps)
    value = effective_strength_value(change.value_steps)
    if change.mode is StrengthMode.ADD:
        target = current + value
    elif change.mode is StrengthMode.SUBTRACT:
        target = current - value
    elif change.mode is StrengthMode.SET:
        target = value
    else:
        target = current
    return max(0, min(ceiling, target))


@dataclass(frozen=True, slots=True)
class StrengthUpdate:
    """The device's strengths after a B0, and the B1 it sends (or None).

    Attributes:
        strength_a_steps: New strength of channel A.
        strength_b_steps: New strength of channel B.
        report: The B1 to notify, or None when no report is due.
    """

    strength_a_steps: int
    strength_b_steps: int
    report: StrengthReport | None


def apply_b0_strengths(
    frame: B0Frame,
    *,
    strengths_steps: tuple[int, int],
    limits_steps: tuple[int, int],
    ack_unchanged: bool = False,
) -> StrengthUpdate:
    """Apply both strength instructions of a B0 and decide on the B1 report
    (docs/protocols/coyote3.md §6, §7).

    Strengths apply whatever the waveform validity. A B1 carrying the frame's sequence is due when
    a strength changed and the sequence is > 0. With ``ack_unchanged`` (not the default, which
    follows the vendor example), a frame with sequence > 0 that asks for a change but changes
    nothing is also answered.

    Args:
        frame: The received frame.
        strengths_steps: Current strengths (A, B), each 0–200.
        limits_steps: Soft limits (A, B), each 0–200.
        ack_unchanged: Answer change requests that left both strengths as they were.

    Returns:
        The new strengths and the report to send, if any.

    Raises:
        ProtocolError: If a strength or limit is outside 0–200.
    """
    before_a, before_b = strengths_steps
    limit_a, limit_b = limits_steps
    after_a = apply_strength_change(before_a, frame.change_a, limit_steps=limit_a)
    after_b = apply_strength_change(before_b, frame.change_b, limit_steps=limit_b)
    changed = (after_a, after_b) != (before_a, before_b)
    due = frame.sequence > 0 and (changed or (ack_unchanged and frame.changes_strength))
    report = StrengthReport(frame.sequence, after_a, after_b) if due else None
    return StrengthUpdate(after_a, after_b, report)


def updated_soft_limit(limit_steps: int, limit_value: int) -> int:
    """Return a channel's soft limit after a BF limit byte.

    Args:
        limit_steps: The current soft limit, 0–200.
        limit_value: The BF limit byte, 0–255.

    Returns:
        ``limit_value`` if it is ≤ 200, else the unchanged ``limit_steps``.

    Raises:
        ProtocolError: If ``limit_steps`` is outside 0–200 or ``limit_value`` is not a byte.
    """
    current = _strength("limit_steps", limit_steps)
    value = require_int("limit_value", limit_value, 0, 0xFF)
    return value if value <= STRENGTH_STEPS_MAX else current


@dataclass(frozen=True, slots=True)
class LimitUpdate:
    """The device's limits and strengths after a BF, and the B1 it sends (or None).

    Attributes:
        limit_a_steps: New soft limit of channel A.
        limit_b_steps: New soft limit of channel B.
        strength_a_steps: Strength of channel A, lowered to its limit if it was above.
        strength_b_steps: Strength of channel B, lowered to its limit if it was above.
        report: A B1 with sequence 0 if a strength was lowered, else None.
    """

    limit_a_steps: int
    limit_b_steps: int
    strength_a_steps: int
    strength_b_steps: int
    report: StrengthReport | None


def apply_bf_limits(
    frame: BfFrame, *, strengths_steps: tuple[int, int], limits_steps: tuple[int, int]
) -> LimitUpdate:
    """Apply the limits of a BF frame (docs/protocols/coyote3.md §5, emsctl rule on lowering the
    strength).

    Balances are not state that this function changes; the caller stores them from the frame.

    Args:
        frame: The received frame.
        strengths_steps: Current strengths (A, B), each 0–200.
        limits_steps: Current soft limits (A, B), each 0–200.

    Returns:
        The new limits and strengths, and a B1 with sequence 0 if a strength was lowered.

    Raises:
        ProtocolError: If a strength or limit is outside 0–200.
    """
    before_a = _strength("strength_a_steps", strengths_steps[0])
    before_b = _strength("strength_b_steps", strengths_steps[1])
    limit_a = updated_soft_limit(limits_steps[0], frame.limit_a_steps)
    limit_b = updated_soft_limit(limits_steps[1], frame.limit_b_steps)
    after_a, after_b = min(before_a, limit_a), min(before_b, limit_b)
    lowered = (after_a, after_b) != (before_a, before_b)
    report = StrengthReport(0, after_a, after_b) if lowered else None
    return LimitUpdate(limit_a, limit_b, after_a, after_b, report)


def wheel_step(strength_steps: int, *, up: bool, limit_steps: int) -> int:
    """Return a channel's strength after one step of the physical wheel (reported with seq 0).

    Args:
        strength_steps: Current strength, 0–200.
        up: True for one step up, False for one step down.
        limit_steps: The channel's soft limit, 0–200.

    Returns:
        ``strength_steps ± 1`` clamped to ``[0, limit_steps]``.

    Raises:
        ProtocolError: If ``strength_steps`` or ``limit_steps`` is outside 0–200.
    """
    current = _strength("strength_steps", strength_steps)
    ceiling = _strength("limit_steps", limit_steps)
    return max(0, min(ceiling, current + (1 if up else -1)))


def channel_emits(strength_steps: int, waveform: ChannelWaveform, slot: int) -> bool:
    """Tell whether a channel delivers pulses while ``slot`` of ``waveform`` plays.

    All three must hold: strength > 0, the waveform is valid, and the slot's intensity is > 0.

    Args:
        strength_steps: The channel's strength, 0–200.
        waveform: The frame's waveform for the channel.
        slot: Slot index, 0–3.

    Returns:
        True if pulses are delivered.

    Raises:
        ProtocolError: If ``strength_steps`` is outside 0–200 or ``slot`` outside 0–3.
    """
    strength = _strength("strength_steps", strength_steps)
    index = require_int("slot", slot, 0, SLOTS_PER_FRAME - 1)
    return strength > 0 and waveform.is_valid and waveform.intensities[index] > 0


def next_sequence(sequence: int) -> int:
    """Return the next host sequence number: 1, 2, …, 15, 1, … (0 is never produced).

    Args:
        sequence: The last sequence used, 0–15 (0 before the first change).

    Returns:
        The next sequence, 1–15.

    Raises:
        ProtocolError: If ``sequence`` is outside 0–15.
    """
    return require_int("sequence", sequence, 0, SEQUENCE_MAX) % SEQUENCE_MAX + 1


_STOP_PERIOD_MS = 10


def stop_frame(sequence: int) -> B0Frame:
    """Build the stop frame of docs/protocols/coyote3.md §10: set both strengths to 0, intensity 0
    on both channels.

    Both waveforms keep a valid frequency byte (period 10 ms) so that the frame is valid.

    Args:
        sequence: A fresh sequence number, 1–15, so that the device confirms with B1.

    Returns:
        The frame; encoded with sequence 1 it is ``B01F00000A0A0A0A000000000A0A0A0A00000000``.

    Raises:
        ProtocolError: If ``sequence`` is outside 1–15.
    """
    sequence = require_int("sequence", sequence, 1, SEQUENCE_MAX)
    quiet = ChannelWaveform.steady(period_ms=_STOP_PERIOD_MS, intensity=0)
    zero = StrengthChange.set_to(0)
    return B0Frame(sequence, zero, zero, quiet, quiet)


def check_host_b0(frame: B0Frame) -> None:
    """Check the emsctl rules for a B0 a host may send.

    - A strength change uses sequence > 0 (a change with sequence 0 is never confirmed).
    - A strength value with a mode other than ``KEEP`` is 0–200 (above 200 the device reads 0).
    - Every frequency byte is 10–240: unused slots are padded by repeating a valid pair, never
      with 0. (An intensity above 100 to silence a channel on purpose is allowed.)

    Args:
        frame: The frame about to be sent.

    Raises:
        ProtocolError: Naming the first rule the frame breaks.
    """
    if frame.changes_strength and frame.sequence == 0:
        raise ProtocolError("a B0 that changes a strength must use sequence 1–15, not 0")
    for channel, change, waveform in (
        ("A", frame.change_a, frame.waveform_a),
        ("B", frame.change_b, frame.waveform_b),
    ):
        if change.mode is not StrengthMode.KEEP and change.value_steps > STRENGTH_STEPS_MAX:
            raise ProtocolError(
                f"channel {channel} strength value must be 0–200, got {change.value_steps}"
            )
        if not all(is_valid_frequency_code(code) for code in waveform.frequency_codes):
            raise ProtocolError(
                f"channel {channel} frequency bytes must be 10–240, got {waveform.frequency_codes}"
            )


def check_host_bf(frame: BfFrame) -> None:
    """Check the emsctl rule for a BF a host may send: both limits are 0–200.

    A limit byte above 200 would leave the device's persisted limit unchanged, whatever it is.

    Args:
        frame: The frame about to be sent.

    Raises:
        ProtocolError: If a limit is above 200.
    """
    for channel, limit in (("A", frame.limit_a_steps), ("B", frame.limit_b_steps)):
        if limit > STRENGTH_STEPS_MAX:
            raise ProtocolError(f"channel {channel} soft limit must be 0–200, got {limit}")
