"""The emulated P24's mid-level pulse generators, driving a :class:`SimulatedStimulator`.

Each enabled channel runs its own pulse train with its own period
(``docs/protocols/sciencemode4.md`` §6, §9): the first pulse comes when the channel is enabled; a
changed block applies from the channel's next period (a pending change waits for that boundary);
the start ramp runs only when a channel goes from disabled to enabled, pulse k (1-based) of a
ramp of r pulses at k/(r + 1) of the programmed currents. Every output is held on the model with
a lease that ends at the mid-level keep-alive deadline, so the record shows output zeroed exactly
when the 2 s timeout expires.

A P24 pulse is 1–16 points; the model knows a biphasic pulse of amplitude and phase width. The
first phase is the run of points with the sign of the first non-zero point: its largest current
is the amplitude, its charge divided by that amplitude the phase width. Points shorter than
10 µs count as 10 µs, as the device executes them.

Runs on the running asyncio loop; never reads the wall clock or does I/O.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass

from ...contract import ZERO, ChannelSetpoint
from ...drivers.sciencemode4.protocol import MlChannelConfig, Point
from ..model import SimulatedStimulator

__all__ = ["MIN_EXECUTED_US", "PulseTrains", "executed_duration_s", "pulse_setpoint"]

MIN_EXECUTED_US = 10
"""The device executes shorter points as 10 µs."""
_EPS = 1e-9
_STOP_LEASE_S = 1.0  # any positive lease: a zero setpoint has no deadline


def executed_duration_s(points: tuple[Point, ...]) -> float:
    """How long a pulse takes: Σ point durations, each at least 10 µs."""
    return sum(max(point.duration_us, MIN_EXECUTED_US) for point in points) / 1e6


def pulse_setpoint(points: tuple[Point, ...], frequency_hz: float,
                   scale: float = 1.0) -> ChannelSetpoint:
    """The model's setpoint for a pulse of points repeated at ``frequency_hz``.

    Args:
        points: the pulse.
        frequency_hz: the pulse rate.
        scale: the ramp factor applied to every current (1 = full).

    Returns:
        Amplitude = the largest current of the first phase (times ``scale``), width = that
        phase's charge over its largest current; :data:`ZERO` for a pulse without current.
    """
    first = next((p.current_code - 300 for p in points if p.current_code != 300), 0)
    if first == 0 or scale <= 0:
        return ZERO
    phase = [(abs(p.current_ma), max(p.duration_us, MIN_EXECUTED_US)) for p in points
             if (p.current_code - 300) * first > 0]
    peak_ma = max(current for current, _ in phase)
    width_us = sum(current * duration for current, duration in phase) / peak_ma
    return ChannelSetpoint(peak_ma * scale, frequency_hz, width_us)


@dataclass
class _Train:
    """One running channel: its block, a known pulse (anchor) and a change waiting."""

    config: MlChannelConfig
    anchor_s: float
    anchor_index: int
    ramp_pulses: int
    pending: MlChannelConfig | None = None
    handle: asyncio.TimerHandle | None = None

    @property
    def period_s(self) -> float:
        return self.config.period.period_ms / 1000.0

    def index_at(self, t_s: float) -> int:
        return self.anchor_index + round((t_s - self.anchor_s) / self.period_s)

    def next_boundary_s(self, now_s: float) -> float:
        steps = math.ceil((now_s - self.anchor_s) / self.period_s - _EPS)
        return self.anchor_s + max(steps, 0) * self.period_s


OutputHook = Callable[[int, ChannelSetpoint], None]
"""hook(channel, setpoint) after a channel's output changed (for the compliance check)."""


class PulseTrains:
    """The pulse generators of every channel of one emulated P24.

    Args:
        device: the output stage.
        on_output: called after each output change of a running channel.

    Attributes:
        lease_end_s: loop time when every output ends unless renewed (the keep-alive deadline);
            None while nothing may run.
    """

    def __init__(self, device: SimulatedStimulator, on_output: OutputHook | None = None) -> None:
        self.device = device
        self.lease_end_s: float | None = None
        self._on_output = on_output
        self._trains: dict[int, _Train] = {}

    @property
    def active_mask(self) -> int:
        """Bit i set ⇔ channel i + 1 is running."""
        return sum(1 << (channel - 1) for channel in self._trains)

    def running(self, channel: int) -> bool:
        """Whether ``channel`` has a pulse train."""
        return channel in self._trains

    def config(self, channel: int) -> MlChannelConfig | None:
        """The block ``channel`` runs (or will run at its next period), or None."""
        train = self._trains.get(channel)
        if train is None:
            return None
        return train.pending or train.config

    def set(self, channel: int, config: MlChannelConfig) -> None:
        """Start ``channel`` now (with its ramp), or replace its block from its next period."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        train = self._trains.get(channel)
        if train is None:
            self._trains[channel] = _Train(config, now, 0, config.ramp_pulses)
            self._tick(channel)
            return
        train.pending = None if config == train.config else config
        if train.pending is not None:
            if train.handle is not None:
                train.handle.cancel()
            train.handle = loop.call_at(train.next_boundary_s(now), self._tick, channel)

    def stop(self, channel: int) -> None:
        """Stop ``channel`` now: output zero, no further pulses."""
        train = self._trains.pop(channel, None)
        if train is None:
            return
        if train.handle is not None:
            train.handle.cancel()
        if self.device.connected:
            self.device.set_outputs({channel: ZERO}, _STOP_LEASE_S)

    def stop_all(self) -> None:
        """Stop every channel now (and zero the whole output stage)."""
        for train in self._trains.values():
            if train.handle is not None:
                train.handle.cancel()
        self._trains.clear()
        self.device.stop()

    def renew(self, lease_end_s: float) -> None:
        """Move the keep-alive deadline; running outputs now end there."""
        self.lease_end_s = lease_end_s
        if self._trains and self.device.connected:
            lease_s = lease_end_s - asyncio.get_running_loop().time()
            if lease_s > 0:
                self.device.keep_alive(lease_s)

    def _tick(self, channel: int) -> None:
        """A period boundary of ``channel``: apply a pending block, step the ramp."""
        train = self._trains.get(channel)
        if train is None:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        train.handle = None
        index = train.index_at(now)
        if train.pending is not None:
            train.config, train.pending = train.pending, None
            train.anchor_s, train.anchor_index = now, index
        scale = min(1.0, (index + 1) / (train.ramp_pulses + 1))
        config = train.config
        setpoint = pulse_setpoint(config.points, 1000.0 / config.period.period_ms, scale)
        if scale < 1.0:  # still ramping: the next pulse has a higher current
            next_s = train.anchor_s + (index + 1 - train.anchor_index) * train.period_s
            train.handle = loop.call_at(next_s, self._tick, channel)
        lease_s = (self.lease_end_s or now) - now
        if lease_s <= 0 or not self.device.connected:
            return  # the keep-alive deadline has passed: the timeout stops this channel
        self.device.set_outputs({channel: setpoint}, lease_s)
        if self._on_output is not None:
            self._on_output(channel, setpoint)  # may stop this channel; touch nothing after
