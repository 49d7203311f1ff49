"""A discrete-event stimulator: piecewise-constant channel outputs, device-side limits, a watchdog.

:class:`SimulatedStimulator` is the device every emulation drives: the ``sim`` driver calls it
directly, the protocol emulations (ScienceMode2, Coyote, openEMS) decode bytes into the same
calls. Its state at time ``t`` follows only from the calls made before ``t``:

* ``set_outputs(setpoints, lease_s)`` holds each channel's amplitude, frequency and pulse width
  from the loop's current time until the next change or until ``t_command + lease`` — the
  device's own watchdog (L21), which zeroes the channel *exactly* at that instant (a timer on the
  loop makes it visible to listeners; :meth:`outputs_at` and the intervals never depend on when
  that timer actually ran).
* Setpoints beyond the device's own limits are refused the way a real device refuses them: a
  ``device_error`` event and every output at zero.
* ``stop()``, ``reset()`` and (if the device notices it) ``disconnect()`` zero every channel
  at once.
* What flows into the body is limited by the electrode load (:mod:`.body`): compliance voltage,
  lifting or detached pads; the no-load flag of L12 is reported as ``electrode_off``.
* A faulty output stage (:meth:`set_current_error`, the ``wrong_current`` fault) acknowledges
  every setting but applies ``factor`` × the set current. Like a device that measures its own
  output, the model then reports each applied amplitude that differs from the one set as a
  ``strength`` event; an emulation whose protocol reports strength shows it the same way
  (:meth:`applied_ma`).

Everything runs on the running asyncio loop (``loop.time()``, ``loop.call_at``): no threads, so it
works the same under :class:`~emsctl.clock.RealClock` and :class:`~emsctl.clock.VirtualClock`.
Mutating methods must be called from code running on that loop. This module must never read the
wall clock, sleep, or do I/O.

Channels are numbered from 1.
"""

from __future__ import annotations

import asyncio
import math
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from ..contract import ChannelSetpoint
from ..errors import InputError, LinkLostError
from .body import BodyModel

__all__ = [
    "INTERVAL_DTYPE",
    "OFF",
    "ChannelOutput",
    "DeviceEvent",
    "DeviceEventKind",
    "DeviceSpec",
    "SimulatedStimulator",
]

#: One row per piecewise-constant stretch of a channel's output.
INTERVAL_DTYPE = np.dtype([("t0_s", "f8"), ("t1_s", "f8"), ("amplitude_ma", "f8"),
                           ("delivered_ma", "f8"), ("frequency_hz", "f8"),
                           ("pulse_width_us", "f8"), ("burst_rate_hz", "f8"),
                           ("burst_pulses", "i4")])

_TOLERANCE = 1e-9

DeviceEventKind = Literal["electrode_off", "electrode_ok", "battery", "device_error",
                          "device_reset", "strength", "watchdog", "connected", "disconnected"]


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """What the simulated hardware can do and how it behaves.

    Attributes:
        channels: number of output channels.
        amplitude_max_ma: largest current the device accepts.
        frequency_min_hz: lowest pulse rate accepted for an active channel.
        frequency_max_hz: highest pulse rate accepted.
        pulse_width_min_us: shortest phase width accepted for an active channel.
        pulse_width_max_us: longest phase width accepted.
        watchdog_s: the longest the device holds an output without a new command (L21);
            longer leases are shortened to it.
        compliance_v: the device's compliance voltage (L5).
        zero_on_disconnect: True if the device notices a lost link and zeroes at once; False
            models the worst case (a pulled serial cable) where only the watchdog saves you.
        phase2_amplitude_ratio: second (negative) phase amplitude over the first; 1 is symmetric.
        phase2_width_ratio: second phase width over the first; 1 is symmetric.

    Raises:
        InputError: an inconsistent or non-positive figure, or compliance over 150 V (L5).
    """

    channels: int = 4
    amplitude_max_ma: float = 100.0
    frequency_min_hz: float = 1.0
    frequency_max_hz: float = 200.0
    pulse_width_min_us: float = 20.0
    pulse_width_max_us: float = 1000.0
    watchdog_s: float = 1.0
    compliance_v: float = 100.0
    zero_on_disconnect: bool = True
    phase2_amplitude_ratio: float = 1.0
    phase2_width_ratio: float = 1.0

    def __post_init__(self) -> None:
        figures = (self.amplitude_max_ma, self.frequency_min_hz, self.frequency_max_hz,
                   self.pulse_width_min_us, self.pulse_width_max_us, self.watchdog_s,
                   self.compliance_v, self.phase2_amplitude_ratio, self.phase2_width_ratio)
        if self.channels < 1 or not all(math.isfinite(v) and v > 0 for v in figures):
            raise InputError(f"device spec needs positive, finite figures: {self}")
        if (self.frequency_min_hz > self.frequency_max_hz
                or self.pulse_width_min_us > self.pulse_width_max_us):
            raise InputError("device spec has a minimum above its maximum")
        if self.compliance_v > 150.0:  # L5: refuse a device that declares more than 150 V
            raise InputError(f"compliance {self.compliance_v:g} V is over the 150 V ceiling (L5)")


@dataclass(frozen=True, slots=True)
class ChannelOutput:
    """What one channel does: the set pulse parameters and the current that actually flows."""

    amplitude_ma: float
    frequency_hz: float
    pulse_width_us: float
    delivered_ma: float
    #: Device-timed bursts: ``burst_pulses`` pulses at ``frequency_hz``, ``burst_rate_hz`` a
    #: second (0 = continuous).
    burst_rate_hz: float = 0.0
    burst_pulses: int = 0

    @property
    def is_on(self) -> bool:
        """True while the channel's pulse generator runs (set amplitude above 0)."""
        return self.amplitude_ma > 0


OFF = ChannelOutput(0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """Something the device reports on its own. ``t_s`` is loop time when it happened."""

    kind: DeviceEventKind
    t_s: float
    channel: int | None = None
    value: float | None = None
    message: str = ""


@dataclass(slots=True)
class _Track:
    """One channel's change points and its pending watchdog deadline."""

    times_s: list[float] = field(default_factory=list)
    outputs: list[ChannelOutput] = field(default_factory=list)
    deadline_s: float | None = None
    handle: asyncio.TimerHandle | None = None


class SimulatedStimulator:
    """An N-channel stimulator with device-side limits, a watchdog and an electrode load.

    Args:
        spec: the device's figures; defaults to ``DeviceSpec()``.
        body: the load on each channel; defaults to 1 kΩ on every channel.
        battery_pct: initial battery charge.

    Raises:
        InputError: ``body`` has a different channel count than ``spec``.
    """

    def __init__(self, spec: DeviceSpec | None = None, body: BodyModel | None = None, *,
                 battery_pct: float = 100.0) -> None:
        self.spec = spec or DeviceSpec()
        self.body = body or BodyModel(self.spec.channels)
        if self.body.channels != self.spec.channels:
            raise InputError(f"body has {self.body.channels} channels, device "
                             f"{self.spec.channels}")
        self.battery_pct = battery_pct
        #: Loop time of the first call; intervals start here. None until then.
        self.t_start_s: float | None = None
        self._tracks = [_Track() for _ in range(self.spec.channels)]
        self._no_load = [self.body.load(c).no_load for c in self.channels]
        self._listeners: list[Callable[[DeviceEvent], None]] = []
        #: Per channel, the factor a faulty output stage applies to the set current (None: none).
        self._current_factor: list[float | None] = [None] * self.spec.channels
        #: Per channel, the amplitude last set by a command (what the faulty stage distorts).
        self._set_amplitude_ma: list[float] = [0.0] * self.spec.channels
        self._connected = True
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ observers

    @property
    def channels(self) -> range:
        """The channel numbers, 1…N."""
        return range(1, self.spec.channels + 1)

    @property
    def connected(self) -> bool:
        """False after :meth:`disconnect` until :meth:`connect`."""
        return self._connected

    def add_listener(self, listener: Callable[[DeviceEvent], None]) -> None:
        """Call ``listener`` with every :class:`DeviceEvent`, on the loop."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[DeviceEvent], None]) -> None:
        """Stop calling ``listener``; unknown listeners are ignored."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def outputs_at(self, t_s: float) -> tuple[ChannelOutput, ...]:
        """Every channel's output at loop time ``t_s``, from the commands received before it."""
        return tuple(self._output_at(track, t_s) for track in self._tracks)

    def output_now(self) -> tuple[ChannelOutput, ...]:
        """Every channel's output at the running loop's current time."""
        return self.outputs_at(asyncio.get_running_loop().time())

    def lease_deadline_s(self, channel: int) -> float | None:
        """When the watchdog will zero ``channel`` unless renewed; None when it is off.

        Raises:
            InputError: no such channel.
        """
        return self._track(channel).deadline_s

    def intervals(self, channel: int, until_s: float | None = None) -> npt.NDArray[np.void]:
        """The channel's piecewise-constant output as rows of :data:`INTERVAL_DTYPE`.

        Args:
            channel: channel number.
            until_s: cut the last interval here; by default the record ends when the last known
                output ends (its pending watchdog deadline included), so it is complete.

        Raises:
            InputError: no such channel.
        """
        track = self._track(channel)
        times = list(track.times_s)
        outputs = list(track.outputs)
        if track.deadline_s is not None:
            times.append(track.deadline_s)
            outputs.append(OFF)
        if not times:
            return np.zeros(0, INTERVAL_DTYPE)
        end_s = times[-1] if until_s is None else until_s
        out = np.zeros(len(times), INTERVAL_DTYPE)
        out["t0_s"] = times
        out["t1_s"] = np.minimum(np.append(times[1:], max(end_s, times[-1])), end_s)
        out["amplitude_ma"] = [o.amplitude_ma for o in outputs]
        out["delivered_ma"] = [o.delivered_ma for o in outputs]
        out["frequency_hz"] = [o.frequency_hz for o in outputs]
        out["pulse_width_us"] = [o.pulse_width_us for o in outputs]
        out["burst_rate_hz"] = [o.burst_rate_hz for o in outputs]
        out["burst_pulses"] = [o.burst_pulses for o in outputs]
        return out[out["t1_s"] > out["t0_s"]]

    # ------------------------------------------------------------------ commands

    def set_outputs(self, setpoints: Sequence[ChannelSetpoint] | Mapping[int, ChannelSetpoint],
                    lease_s: float) -> bool:
        """Hold ``setpoints`` from now for ``lease_s`` (at most the watchdog period).

        A sequence sets every channel in order; a mapping ``{channel: setpoint}`` sets only
        those. Amplitude 0 turns a channel off (its frequency and width are then ignored).

        Returns:
            True if accepted; False if refused — then a ``device_error`` event was reported and
            every output is zero.

        Raises:
            InputError: a sequence of the wrong length or an unknown channel (a caller bug).
            LinkLostError: the device is disconnected; nothing can reach it.
        """
        now = self._begin()
        if not self._connected:
            raise LinkLostError("the simulated device is disconnected")
        items = self._items(setpoints)
        problem = self._refusal(items, lease_s)
        if problem is not None:
            channel, message = problem
            self._zero_all(now)
            self._notify(DeviceEvent("device_error", now, channel, message=message))
            return False
        lease_s = min(lease_s, self.spec.watchdog_s)
        for channel, sp in items:
            self._set_amplitude_ma[channel - 1] = max(sp.amplitude_ma, 0.0)
            if sp.amplitude_ma <= 0:
                self._set(channel, now, OFF, None)
                continue
            load = self.body.load(channel)
            applied_ma = self.applied_ma(channel, sp.amplitude_ma)
            output = ChannelOutput(applied_ma, sp.frequency_hz, sp.pulse_width_us,
                                   load.delivered_ma(applied_ma, self.spec.compliance_v),
                                   sp.burst_rate_hz, sp.burst_pulses)
            self._settle(channel, now)
            before = self._track(channel).outputs[-1].amplitude_ma
            self._set(channel, now, output, now + lease_s)
            if applied_ma not in (sp.amplitude_ma, before):
                self._notify(DeviceEvent("strength", now, channel, applied_ma,
                                         f"applied {applied_ma:g} mA, set {sp.amplitude_ma:g} mA"))
        return True

    def keep_alive(self, lease_s: float) -> bool:
        """Renew the watchdog of every active channel without changing its output.

        Returns:
            False (and nothing renewed) for a lease that is not finite and positive.

        Raises:
            LinkLostError: the device is disconnected.
        """
        now = self._begin()
        if not self._connected:
            raise LinkLostError("the simulated device is disconnected")
        if not (math.isfinite(lease_s) and lease_s > 0):
            return False
        for channel in self.channels:
            self._settle(channel, now)
            track = self._track(channel)
            if track.deadline_s is not None:
                self._arm(channel, now + min(lease_s, self.spec.watchdog_s))
        return True

    def stop(self) -> None:
        """Zero every channel now and disarm the watchdog. Works even while disconnected."""
        self._zero_all(self._begin())

    def reset(self) -> None:
        """The device resets (brown-out, button): every output at zero, a ``device_reset`` event."""
        now = self._begin()
        self._zero_all(now)
        self._notify(DeviceEvent("device_reset", now, message="device reset; outputs at 0"))

    def disconnect(self) -> None:
        """The link goes away. The device zeroes at once only if ``spec.zero_on_disconnect``;
        otherwise its outputs run on until each channel's watchdog deadline."""
        now = self._begin()
        self._connected = False
        if self.spec.zero_on_disconnect:
            self._zero_all(now)
        self._notify(DeviceEvent("disconnected", now))

    def connect(self) -> None:
        """The link is (re)established; outputs are unchanged. Idempotent."""
        now = self._begin()
        if not self._connected:
            self._connected = True
            self._notify(DeviceEvent("connected", now))

    def set_battery(self, battery_pct: float) -> None:
        """The battery charge changed; reported as a ``battery`` event.

        Raises:
            InputError: a charge outside 0–100 %.
        """
        if not 0 <= battery_pct <= 100:
            raise InputError(f"battery charge {battery_pct} % is outside 0–100 %")
        now = self._begin()
        self.battery_pct = battery_pct
        self._notify(DeviceEvent("battery", now, value=battery_pct))

    def change_strength(self, channel: int, amplitude_ma: float) -> None:
        """Someone turned the strength on the device itself: an active channel's amplitude
        becomes ``amplitude_ma`` (clipped to the device maximum; 0 turns it off), the lease is
        unchanged, and a ``strength`` event reports it.

        Raises:
            InputError: no such channel, or a negative or non-finite amplitude.
        """
        if not (math.isfinite(amplitude_ma) and amplitude_ma >= 0):
            raise InputError(f"strength must be finite and non-negative, got {amplitude_ma}")
        now = self._begin()
        self._settle(channel, now)
        track = self._track(channel)
        current = track.outputs[-1]
        amplitude_ma = min(amplitude_ma, self.spec.amplitude_max_ma)
        if current.is_on and amplitude_ma > 0:
            delivered = self.body.load(channel).delivered_ma(amplitude_ma, self.spec.compliance_v)
            self._set(channel, now, replace(current, amplitude_ma=amplitude_ma,
                                            delivered_ma=delivered), track.deadline_s)
        elif current.is_on:
            self._set(channel, now, OFF, None)
        self._notify(DeviceEvent("strength", now, channel, self._track(channel).outputs[-1]
                                 .amplitude_ma))

    def applied_ma(self, channel: int, amplitude_ma: float) -> float:
        """The current a setting of ``amplitude_ma`` on ``channel`` actually applies: the same,
        or ``factor`` × it (at most the device maximum) while :meth:`set_current_error` is on.

        Raises:
            InputError: no such channel.
        """
        self._track(channel)
        factor = self._current_factor[channel - 1]
        if factor is None or amplitude_ma <= 0:
            return amplitude_ma
        return min(amplitude_ma * factor, self.spec.amplitude_max_ma)

    def set_current_error(self, factor: float | None, channel: int | None = None) -> None:
        """The output stage of ``channel`` (None: all) goes wrong: it still acknowledges every
        setting but applies ``factor`` × the set current from now on; None repairs it. Active
        outputs change at once, and each change is reported as a ``strength`` event.

        Raises:
            InputError: no such channel, or a factor that is not finite and ≥ 0.
        """
        if factor is not None and not (math.isfinite(factor) and factor >= 0):
            raise InputError(f"current factor must be finite and ≥ 0, got {factor}")
        now = self._begin()
        targets = list(self.channels) if channel is None else [channel]
        for c in targets:
            self._track(c)
        for c in targets:
            self._settle(c, now)
            track = self._track(c)
            current = track.outputs[-1]
            set_ma = self._set_amplitude_ma[c - 1]
            self._current_factor[c - 1] = factor
            if not current.is_on:
                continue
            applied_ma = self.applied_ma(c, set_ma)
            if applied_ma == current.amplitude_ma:
                continue
            delivered = self.body.load(c).delivered_ma(applied_ma, self.spec.compliance_v)
            self._set(c, now, replace(current, amplitude_ma=applied_ma, delivered_ma=delivered),
                      track.deadline_s)
            self._notify(DeviceEvent("strength", now, c, applied_ma,
                                     f"applied {applied_ma:g} mA, set {set_ma:g} mA"))

    # ------------------------------------------------------------------ the body

    def set_impedance(self, impedance_ohm: float, channel: int | None = None) -> None:
        """The electrode–skin impedance of ``channel`` (None: all) changes.

        Raises:
            InputError: no such channel, or an impedance that is not finite and positive.
        """
        self._body_change(channel, lambda c: self.body.set_impedance(c, impedance_ohm))

    def electrode_off(self, channel: int | None = None) -> None:
        """The pad of ``channel`` (None: all) falls off: an open circuit.

        Raises:
            InputError: no such channel.
        """
        self._body_change(channel, self.body.detach)

    def electrode_on(self, channel: int | None = None) -> None:
        """The pad of ``channel`` (None: all) is back on; its impedance is the new baseline.

        Raises:
            InputError: no such channel.
        """
        self._body_change(channel, self.body.attach)

    # ------------------------------------------------------------------ internals

    def _begin(self) -> float:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            raise RuntimeError("a SimulatedStimulator lives on one event loop")
        now = loop.time()
        if self.t_start_s is None:
            self.t_start_s = now
            for track in self._tracks:
                track.times_s.append(now)
                track.outputs.append(OFF)
        return now

    def _track(self, channel: int) -> _Track:
        if not 1 <= channel <= self.spec.channels:
            raise InputError(f"channel {channel} does not exist (1–{self.spec.channels})")
        return self._tracks[channel - 1]

    def _items(self, setpoints: Sequence[ChannelSetpoint] | Mapping[int, ChannelSetpoint]
               ) -> list[tuple[int, ChannelSetpoint]]:
        if isinstance(setpoints, Mapping):
            items = sorted(setpoints.items())
            for channel, _ in items:
                self._track(channel)
            return items
        if len(setpoints) != self.spec.channels:
            raise InputError(f"the device has {self.spec.channels} channels, "
                             f"got {len(setpoints)} setpoints")
        return list(enumerate(setpoints, start=1))

    def _refusal(self, items: list[tuple[int, ChannelSetpoint]], lease_s: float
                 ) -> tuple[int | None, str] | None:
        spec = self.spec
        if not (math.isfinite(lease_s) and lease_s > 0):
            return None, f"lease {lease_s} s refused"
        for channel, sp in items:
            values = (sp.amplitude_ma, sp.frequency_hz, sp.pulse_width_us)
            if not all(math.isfinite(v) and v >= 0 for v in values):
                return channel, f"channel {channel}: setpoints must be finite and non-negative"
            if sp.amplitude_ma <= 0:
                continue
            if sp.amplitude_ma > spec.amplitude_max_ma + _TOLERANCE:
                return channel, (f"channel {channel}: {sp.amplitude_ma:g} mA is over the "
                                 f"device maximum of {spec.amplitude_max_ma:g} mA")
            if not (spec.frequency_min_hz - _TOLERANCE <= sp.frequency_hz
                    <= spec.frequency_max_hz + _TOLERANCE):
                return channel, f"channel {channel}: {sp.frequency_hz:g} Hz is out of range"
            if not (spec.pulse_width_min_us - _TOLERANCE <= sp.pulse_width_us
                    <= spec.pulse_width_max_us + _TOLERANCE):
                return channel, f"channel {channel}: {sp.pulse_width_us:g} µs is out of range"
        return None

    def _output_at(self, track: _Track, t_s: float) -> ChannelOutput:
        if not track.times_s or t_s < track.times_s[0]:
            return OFF
        i = bisect_right(track.times_s, t_s) - 1
        if i == len(track.times_s) - 1 and track.deadline_s is not None \
                and t_s >= track.deadline_s:
            return OFF
        return track.outputs[i]

    def _settle(self, channel: int, now: float) -> None:
        """Write down a watchdog expiry that is due but whose timer has not run yet."""
        track = self._track(channel)
        if track.deadline_s is not None and track.deadline_s <= now:
            self._expire(channel, track.deadline_s)

    def _expire(self, channel: int, deadline_s: float) -> None:
        track = self._track(channel)
        if track.deadline_s != deadline_s:
            return  # renewed or stopped since this timer was set
        if track.handle is not None:
            track.handle.cancel()
            track.handle = None
        track.deadline_s = None
        self._append(track, deadline_s, OFF)  # L21: zero exactly at t_command + lease
        self._notify(DeviceEvent("watchdog", deadline_s, channel,
                                 message="lease expired; output at 0"))

    def _set(self, channel: int, now: float, output: ChannelOutput,
             deadline_s: float | None) -> None:
        self._settle(channel, now)
        track = self._track(channel)
        self._append(track, now, output)
        if deadline_s is None:
            self._disarm(track)
        else:
            self._arm(channel, deadline_s)

    def _arm(self, channel: int, deadline_s: float) -> None:
        track = self._track(channel)
        self._disarm(track)
        track.deadline_s = deadline_s
        assert self._loop is not None
        track.handle = self._loop.call_at(deadline_s, self._expire, channel, deadline_s)

    @staticmethod
    def _disarm(track: _Track) -> None:
        if track.handle is not None:
            track.handle.cancel()
        track.handle = None
        track.deadline_s = None

    @staticmethod
    def _append(track: _Track, t_s: float, output: ChannelOutput) -> None:
        if track.times_s and t_s <= track.times_s[-1]:
            # Same instant (or a timer that ran a hair early): the newer output replaces it.
            t_s = track.times_s[-1]
            track.times_s.pop()
            track.outputs.pop()
        if track.outputs and track.outputs[-1] == output:
            return  # a renewal with the same values continues the interval
        track.times_s.append(t_s)
        track.outputs.append(output)

    def _zero_all(self, now: float) -> None:
        for channel in self.channels:
            self._set(channel, now, OFF, None)

    def _body_change(self, channel: int | None, change: Callable[[int], None]) -> None:
        now = self._begin()
        targets = list(self.channels) if channel is None else [channel]
        for c in targets:
            self._track(c)
        for c in targets:
            change(c)
            self._settle(c, now)
            track = self._track(c)
            current = track.outputs[-1]
            if current.is_on:
                delivered = self.body.load(c).delivered_ma(current.amplitude_ma,
                                                           self.spec.compliance_v)
                self._set(c, now, replace(current, delivered_ma=delivered), track.deadline_s)
            self._report_load(c, now)

    def _report_load(self, channel: int, now: float) -> None:
        load = self.body.load(channel)
        if load.no_load == self._no_load[channel - 1]:
            return
        self._no_load[channel - 1] = load.no_load
        if load.no_load:  # L12: the device flags no load
            value = load.impedance_ohm if load.attached else None
            reason = "open circuit" if not load.attached else f"{load.impedance_ohm:g} Ω"
            self._notify(DeviceEvent("electrode_off", now, channel, value, f"no load: {reason}"))
        else:
            self._notify(DeviceEvent("electrode_ok", now, channel, load.impedance_ohm))

    def _notify(self, event: DeviceEvent) -> None:
        for listener in list(self._listeners):
            listener(event)
