"""Device-agnostic setpoints → ScienceMode2 channel-list parameters
(docs/protocols/sciencemode2.md §12), and capabilities.

One global frequency (the main interval t1; every active channel must ask for the same code),
per-channel pulse width (integer µs, floored, never 1–19) and current (even mA, floored: the
hardware steps in 2 mA, so output never exceeds the request), and the active channel mask, which
only grows within a connection (adding a channel needs a re-Init;
docs/protocols/sciencemode2.md §12). Pure: no I/O, no clock, no session state beyond the arguments.
It must never round anything up.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from functools import lru_cache

from ...contract import Capabilities, ChannelSetpoint
from ...errors import InputError, ProtocolError
from ..sciencemode.rates import grid_rate_ratio
from . import protocol as p

__all__ = [
    "AMPLITUDE_STEP_MA",
    "FREQUENCY_MAX_HZ",
    "FREQUENCY_MIN_HZ",
    "TELEMETRY",
    "UPDATE_PERIOD_S",
    "ListOutput",
    "capabilities",
    "delivered_frequency_hz",
    "largest_rate_ratio",
    "plan_output",
]

#: The hardware current step [UM; SM2-RM].
AMPLITUDE_STEP_MA = 2.0
#: t1 code 2048 = 1025 ms.
FREQUENCY_MIN_HZ = 1000.0 / 1025.0
#: The emsctl profile default cap for 8 channels [SM2 Table 1].
FREQUENCY_MAX_HZ = 50.0
#: How often the session may send a changed command (at most one outstanding;
#: docs/protocols/sciencemode2.md §6).
UPDATE_PERIOD_S = 0.1
#: The host-enforced lease; the device's own watchdog is a fixed 1.2 s link-loss lease.
MAX_LEASE_S = 1.0
TELEMETRY = frozenset({"connected", "ack", "stopped", "device_error", "device_reset",
                       "link_lost"})
_TINY = 1e-9


def capabilities() -> Capabilities:
    """What a RehaStim2 can do through ScienceMode2
    (docs/protocols/sciencemode2.md §2, §4, §6, §12)."""
    return Capabilities(
        model="Hasomed RehaStim2 (ScienceMode2)", channels=p.CHANNEL_COUNT,
        amplitude_max_ma=float(p.MAX_CURRENT_MA), amplitude_step_ma=AMPLITUDE_STEP_MA,
        pulse_width_min_us=20.0, pulse_width_max_us=float(p.MAX_PULSE_WIDTH_US),
        frequency_min_hz=FREQUENCY_MIN_HZ, frequency_max_hz=FREQUENCY_MAX_HZ,
        frequency_per_channel=False, update_period_s=UPDATE_PERIOD_S, max_lease_s=MAX_LEASE_S,
        has_output_watchdog=True, telemetry=TELEMETRY, bursts=False,
        rate_ratio=largest_rate_ratio,
    )


def delivered_frequency_hz(frequency_hz: float) -> float:
    """The rate of the main interval code a frequency becomes: t1 in 0.5 ms steps, the nearest
    to 1000 / f (docs/protocols/sciencemode2.md §12).

    Raises:
        ProtocolError: a frequency outside ≈ 0.98–125 Hz.
    """
    return p.frequency_hz_from_main_interval_code(p.main_interval_code_from_frequency_hz(
        frequency_hz))


def largest_rate_ratio(low_hz: float, high_hz: float) -> float:
    """The most the RehaStim2 makes a rate asked in ``low_hz``–``high_hz`` faster, as a ratio
    (exact for one rate): its periods are on a 0.5 ms grid."""
    return grid_rate_ratio(low_hz, high_hz, delivered_frequency_hz)


@dataclass(frozen=True)
class ListOutput:
    """What the device must run: t1 code, active mask, one setting per masked channel."""

    main_interval_code: int
    active_mask: int
    settings: tuple[p.ChannelSettings, ...]

    @property
    def frequency_hz(self) -> float:
        """The frequency the device actually runs at."""
        return p.frequency_hz_from_main_interval_code(self.main_interval_code)

    @functools.cached_property
    def _start_data(self) -> bytes:
        return p.StartChannelListMode(packet_number=0, channel_settings=self.settings).data()

    def start_frame(self, packet_number: int) -> bytes:
        """The StartChannelListMode frame of this list with ``packet_number``: the same bytes
        as ``p.encode_message`` of the message (its data is built and checked once)."""
        return p.encode_frame(bytes((packet_number, p.Command.START_CHANNEL_LIST_MODE))
                              + self._start_data)

    def describe(self) -> str:
        """One line for telemetry: frequency and each masked channel's current and width."""
        return f"{self.frequency_hz:.2f} Hz, " + ", ".join(
            f"ch{ch} {s.current_ma} mA {s.pulse_width_us} µs" for ch, s in
            zip(p.channels_in_mask(self.active_mask), self.settings, strict=True))


@lru_cache(maxsize=256)
def plan_output(setpoints: tuple[ChannelSetpoint, ...], mask: int) -> ListOutput | None:
    """Map checked setpoints (one per channel) to channel-list parameters.

    Args:
        setpoints: eight setpoints, already checked against :func:`capabilities` (cached:
            a session repeats the same setpoints as its heartbeat).
        mask: channels already in the device's active mask (it only grows).

    Returns:
        None when no channel has output (the caller stops the list); else the list.

    Raises:
        InputError: active channels ask for different frequencies (one global t1), a pulse
            width of 1–19 µs, or a value the wire cannot carry.
    """
    if len(setpoints) != p.CHANNEL_COUNT:
        raise InputError(f"ScienceMode2 takes {p.CHANNEL_COUNT} setpoints, got {len(setpoints)}")
    codes: dict[int, list[int]] = {}
    currents: dict[int, tuple[int, int]] = {}
    for channel, sp in enumerate(setpoints, start=1):
        current_ma = math.floor(sp.amplitude_ma / AMPLITUDE_STEP_MA + _TINY) * 2
        width_us = math.floor(sp.pulse_width_us + _TINY)
        if current_ma <= 0 or width_us <= 0:
            continue
        if sp.burst_rate_hz > 0:
            raise InputError(f"channel {channel}: ScienceMode2 cannot time bursts")
        if width_us < 20:
            raise InputError(f"channel {channel}: {sp.pulse_width_us:g} µs would be raised to "
                             "20 µs by the device; widths of 1–19 µs are refused "
                             "(docs/protocols/sciencemode2.md §12)")
        try:
            code = p.main_interval_code_from_frequency_hz(sp.frequency_hz)
        except ProtocolError as exc:
            raise InputError(f"channel {channel}: {exc}") from exc
        codes.setdefault(code, []).append(channel)
        currents[channel] = (width_us, min(current_ma, p.MAX_CURRENT_MA))
    if not currents:
        return None
    if len(codes) > 1:
        shown = "; ".join(f"{p.frequency_hz_from_main_interval_code(c):.2f} Hz on channel(s) "
                          f"{', '.join(map(str, chs))}" for c, chs in sorted(codes.items()))
        raise InputError(f"ScienceMode2 runs every channel at one frequency, asked for {shown}")
    active_mask = mask | p.channel_mask(currents)
    settings = tuple(p.ChannelSettings(p.PulseGroup.SINGLE, *currents.get(ch, (0, 0)))
                     for ch in p.channels_in_mask(active_mask))
    return ListOutput(next(iter(codes)), active_mask, settings)
