"""Building the B0 frames the host streams every 100 ms, from setpoints already in device units.

A channel's next 100 ms is a :class:`ChannelWave` (frequency byte and waveform intensity, the
same in all four 25 ms slots) or silence. Silence keeps a valid frequency byte with intensity 0:
the host never pads with frequency byte 0, which the device reads as an invalid frame
(docs/protocols/coyote3.md §12). When the host's lease ends inside the frame, the slots after it
carry intensity 0 (docs/protocols/coyote3.md §14: the lease has 25 ms granularity). The strength
part is either ``KEEP`` or an absolute set of both channels with the pending change's sequence.

Frames are checked with :func:`check_host_b0` and encoded once per distinct content (a small
cache: a steady program sends the same bytes for minutes). Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .frames import SLOT_DURATION_MS, SLOTS_PER_FRAME, B0Frame, ChannelWaveform, StrengthChange
from .protocol import encode_b0
from .rules import check_host_b0
from .strength import PendingChange

__all__ = ["QUIET_CODE", "ChannelWave", "b0_bytes", "slots_before"]

#: Frequency byte of a silent channel (period 10 ms): valid, so the frame stays valid.
QUIET_CODE = 10


@dataclass(frozen=True, slots=True)
class ChannelWave:
    """One channel's steady waveform: a frequency byte 10–240 and an intensity 1–100."""

    frequency_code: int
    intensity: int


def slots_before(deadline_s: float, now_s: float) -> int:
    """How many 25 ms slots of a frame sent at ``now_s`` start before ``deadline_s`` (0–4)."""
    remaining_ms = (deadline_s - now_s) * 1000.0
    if remaining_ms <= 0:
        return 0
    slots = -int(-remaining_ms // SLOT_DURATION_MS)  # ceil
    return min(SLOTS_PER_FRAME, slots)


def b0_bytes(change: PendingChange | None, waves: tuple[ChannelWave | None, ChannelWave | None],
             slots_on: int) -> bytes:
    """Encode the frame: ``change`` (or KEEP), and each channel's wave for ``slots_on`` slots.

    Raises:
        ProtocolError: a wave or change outside the device's ranges (a driver bug).
    """
    if change is None:
        return _encode(0, None, None, waves, slots_on)
    return _encode(change.sequence, change.values[0], change.values[1], waves, slots_on)


@lru_cache(maxsize=4096)
def _encode(sequence: int, set_a: int | None, set_b: int | None,
            waves: tuple[ChannelWave | None, ChannelWave | None], slots_on: int) -> bytes:
    if set_a is None or set_b is None:
        change_a = change_b = StrengthChange.keep()
    else:
        change_a, change_b = StrengthChange.set_to(set_a), StrengthChange.set_to(set_b)
    frame = B0Frame(sequence, change_a, change_b, _waveform(waves[0], slots_on),
                    _waveform(waves[1], slots_on))
    check_host_b0(frame)
    return encode_b0(frame)


def _waveform(wave: ChannelWave | None, slots_on: int) -> ChannelWaveform:
    if wave is None or slots_on <= 0:
        code = QUIET_CODE if wave is None else wave.frequency_code
        return ChannelWaveform((code,) * 4, (0, 0, 0, 0))
    levels = tuple(wave.intensity if k < slots_on else 0 for k in range(SLOTS_PER_FRAME))
    return ChannelWaveform((wave.frequency_code,) * 4, (levels[0], levels[1], levels[2], levels[3]))
