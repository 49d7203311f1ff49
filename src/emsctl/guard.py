"""The runtime guard: the last check every setpoint passes on its way to a device.

It is the third of the independent safety layers (program validation, plan verification, guard;
the device's own watchdog is the fourth). Every command is checked against the effective limits:
peak current and the channel cap (L3), pulse width (L6), frequency (L7), phase charge and Shannon
k (L8), rms current (L4), current and power density on the channel's electrode (L9, L10), the
rise rate of increases (L16/L17; decreases and stop are never limited), and the session's
stimulation time (L19). Where the device makes a rate faster than asked (a period grid), the
limits that grow with the rate are checked at the rate it makes. After :meth:`Guard.latch`
nothing but zero passes (HZ-03).

A violation here is a bug upstream: the guard latches and raises :class:`SafetyViolation`; the
session then stops the device. It never clamps silently (HZ-01).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import formulas
from .contract import ZERO, ChannelSetpoint
from .errors import EmsError, SafetyViolation
from .exact_verdicts import (
    exceeds_current_density,
    exceeds_phase_charge,
    exceeds_power_density,
    exceeds_rms_current,
    exceeds_shannon_k,
)
from .limit_table import POWER_DENSITY_CEILING_W_CM2
from .limits import Limits

__all__ = ["ChannelGuard", "Guard"]

#: Tolerance for float noise when comparing against a limit (far below any device step).
_EPS = 1e-9
#: Stands for "no setpoint checked yet" on a channel: equal to no real setpoint.
_UNCHECKED = ChannelSetpoint(-1.0, 0.0, 0.0)
#: Within this relative distance of a limit, the float verdict is confirmed with exact rationals
#: (docs/safety-basis.md §1: boundary cases such as W5 get the same verdict on every platform).
_NEAR = 1e-6


def _beyond(value: float, limit: float, exact_check: Callable[[], bool]) -> bool:
    """``value > limit``, decided exactly when the float is too close to call."""
    if value > limit * (1 + _NEAR) + _EPS:
        return True
    if value < limit * (1 - _NEAR) - _EPS:
        return False
    return exact_check()


@dataclass(frozen=True, slots=True)
class ChannelGuard:
    """What the guard knows of one device channel: the effective cap and the pad area."""

    cap_ma: float
    electrode_area_cm2: float


class Guard:
    """Checks setpoints against limits; latches on stop or on the first violation.

    Args:
        limits: the effective limits (ceilings ∩ config ∩ program ∩ profile ∩ device).
        channels: per device channel (index 0 = channel 1); unused channels have cap 0.
        amplitude_step_ma: the device's step; a rise may exceed the rate by one step, once:
            over any run of checks the level rises at most the slew of their time plus one
            step (rounding down to a step never adds up to more).
        period_s: the command period: a rise is allowed for at most this much time since the
            last check, however long ago that was, so the allowance never accumulates over a
            gap (a stalled host, a steady stretch) into one big step (L14, L16).
        made_hz: the rate the device makes when asked for a rate (its driver's
            ``delivered_frequency_hz``): a device with a period grid may make one faster than
            asked, and the limits that grow with the rate (L4, L7, L9, L10) are then checked at
            the rate it makes. None: the device makes the rates asked.
    """

    def __init__(self, limits: Limits, channels: Sequence[ChannelGuard],
                 amplitude_step_ma: float = 0.0, period_s: float = 0.1,
                 made_hz: Callable[[float], float] | None = None) -> None:
        self.limits = limits
        self.channels = tuple(channels)
        self._made_hz = made_hz
        self._step_ma = amplitude_step_ma
        self._period_s = period_s
        self._last = [0.0] * len(self.channels)
        #: Per channel, the highest the level may reach without more time passing: the level
        #: passed plus whatever of its one rounding step is not spent yet (L16, L17).
        self._reach = [amplitude_step_ma] * len(self.channels)
        self._last_checked: list[ChannelSetpoint] = [ZERO] * len(self.channels)
        self._last_t_s: float | None = None
        self._last_result: tuple[ChannelSetpoint, ...] = tuple(self._last_checked)
        self._last_on = False
        self.latched = False
        self.peak_ma = [0.0] * len(self.channels)

    def rise_ceiling_ma(self, index: int, t_s: float) -> float:
        """The most device channel ``index`` (0-based) may be asked for at ``t_s``: the level
        last passed, plus the slew allowance of at most one command period, plus one step
        unless a rise since the level was last lower has spent it."""
        dt_s = 0.0 if self._last_t_s is None else max(0.0, t_s - self._last_t_s)
        return self._reach[index] + self._slew_ma(dt_s)

    def rise_from(self, index: int, level_ma: float) -> None:
        """Device channel ``index`` (0-based) reports that it delivers only ``level_ma``, less
        than was last passed (a late report of a lower amplitude, or its own control turned
        down): the next rise starts from there (L14, L17). Never raises the level."""
        if 0.0 <= level_ma < self._last[index]:
            self._last[index] = level_ma
            self._reach[index] = min(self._reach[index], level_ma + self._step_ma)
            self._last_checked[index] = _UNCHECKED  # the next setpoint is checked in full

    def _slew_ma(self, dt_s: float) -> float:
        return self.limits.plan_rise_ma_per_s * min(dt_s, self._period_s)

    def _advance_reach(self, dt_s: float) -> None:
        """After a check: the reach grows with the slew of the time passed, but never beyond
        the level passed plus one step (L16: the step never adds up over checks)."""
        slew_ma, step_ma = self._slew_ma(dt_s), self._step_ma
        self._reach = [min(reach + slew_ma, level + step_ma)
                       for reach, level in zip(self._reach, self._last, strict=True)]

    def latch(self) -> None:
        """From now on only zero passes (the stop latch)."""
        self.latched = True

    def check(self, t_s: float, stim_time_s: float,
              setpoints: Sequence[ChannelSetpoint]) -> tuple[ChannelSetpoint, ...]:
        """Return ``setpoints`` if every one is within the limits.

        Args:
            t_s: the session clock now (monotonic).
            stim_time_s: stimulation time so far, for the session cap (L19).
            setpoints: one per device channel.

        Raises:
            SafetyViolation: a limit is broken; the guard is latched and nothing may pass.
        """
        if len(setpoints) != len(self.channels):
            self._fail(f"{len(setpoints)} setpoints for {len(self.channels)} channels")
        if self.latched:
            if any(sp.amplitude_ma > 0 for sp in setpoints):
                self._fail("output after stop: the stop latch holds until a new session (HZ-03)")
            return tuple(ZERO for _ in setpoints)
        if self._unchanged(setpoints):
            # the very objects checked last time: only the session cap can have changed (L19)
            if self._last_on and stim_time_s > self.limits.session_max_s + _EPS:
                self._fail(f"L19: stimulation time {stim_time_s:.0f} s is over "
                           f"{self.limits.session_max_s:.0f} s")
            if self._last_t_s is not None and t_s > self._last_t_s:
                self._advance_reach(t_s - self._last_t_s)
            self._last_t_s = t_s
            return self._last_result
        dt_s = 0.0 if self._last_t_s is None else max(0.0, t_s - self._last_t_s)
        if any(sp.amplitude_ma > 0 for sp in setpoints) and stim_time_s > (
            self.limits.session_max_s + _EPS
        ):
            self._fail(f"L19: stimulation time {stim_time_s:.0f} s is over "
                       f"{self.limits.session_max_s:.0f} s")
        for index, sp in enumerate(setpoints):
            if sp != self._last_checked[index]:  # an unchanged setpoint was checked already
                self._check_channel(index + 1, self.channels[index], sp, self._last[index],
                                    self._reach[index], dt_s)
        self._last = [sp.amplitude_ma for sp in setpoints]
        self._advance_reach(dt_s)
        self._last_checked = list(setpoints)
        self._last_result = tuple(setpoints)
        self._last_on = any(sp.amplitude_ma > 0 for sp in setpoints)
        self.peak_ma = [max(p, sp.amplitude_ma) for p, sp in zip(self.peak_ma, setpoints,
                                                                  strict=True)]
        self._last_t_s = t_s
        return self._last_result

    def _unchanged(self, setpoints: Sequence[ChannelSetpoint]) -> bool:
        """True when ``setpoints`` are the same objects (identity) as the last ones checked."""
        last = self._last_checked
        if len(setpoints) != len(last):
            return False
        return all(now is before for now, before in zip(setpoints, last, strict=True))

    def _check_channel(self, channel: int, guard: ChannelGuard, sp: ChannelSetpoint,
                       last_ma: float, reach_ma: float, dt_s: float) -> None:
        lim = self.limits
        amp = sp.amplitude_ma
        if not all(math.isfinite(v) for v in (amp, sp.frequency_hz, sp.pulse_width_us,
                                              sp.burst_rate_hz, sp.burst_pulses)):
            self._fail(f"channel {channel}: a setpoint is not a finite number")
        if amp < 0:
            self._fail(f"channel {channel}: negative amplitude {amp} mA")
        if amp == 0:
            return
        cap = min(lim.peak_ma, guard.cap_ma)
        if amp > cap + _EPS:
            self._fail(f"L3: channel {channel} at {amp:.2f} mA is over its cap of {cap:.2f} mA")
        rise_ma = amp - last_ma
        allowed_rise = reach_ma + self._slew_ma(dt_s) - last_ma
        if rise_ma > allowed_rise + _EPS:
            self._fail(f"L16/L17: channel {channel} rose {rise_ma:.2f} mA in {dt_s:.3f} s, "
                       f"more than {allowed_rise:.2f} mA")
        if not lim.pulse_width_min_us - _EPS <= sp.pulse_width_us <= lim.pulse_width_max_us + _EPS:
            self._fail(f"L6: channel {channel} pulse width {sp.pulse_width_us:g} µs is outside "
                       f"{lim.pulse_width_min_us:g}–{lim.pulse_width_max_us:g} µs")
        if not lim.frequency_min_hz - _EPS <= sp.frequency_hz <= lim.frequency_max_hz + _EPS:
            self._fail(f"L7: channel {channel} frequency {sp.frequency_hz:g} Hz is outside "
                       f"{lim.frequency_min_hz:g}–{lim.frequency_max_hz:g} Hz")
        if sp.burst_rate_hz != 0:
            self._check_bursts(channel, sp)
        pw, rate, area = sp.pulse_width_us, sp.pulses_per_s, guard.electrode_area_cm2
        made_hz = self._rate_made(sp)
        if made_hz > sp.frequency_hz:  # made faster: the limits that grow with the rate, there
            if made_hz > lim.frequency_max_hz + _EPS:
                self._fail(f"L7: channel {channel} frequency {sp.frequency_hz:g} Hz is made as "
                           f"{made_hz:.4g} Hz by the device, over {lim.frequency_max_hz:g} Hz")
            rate = made_hz
        charge_uc = formulas.phase_charge_uc(amp, pw)
        if _beyond(charge_uc, lim.phase_charge_uc,
                   lambda: exceeds_phase_charge(amp, pw, lim.phase_charge_uc)):
            self._fail(f"L8: channel {channel} phase charge {charge_uc:.2f} µC is over "
                       f"{lim.phase_charge_uc:g} µC")
        k = formulas.shannon_k(charge_uc, area)
        if _beyond(k, lim.shannon_k, lambda: exceeds_shannon_k(
                formulas.phase_charge_uc_exact(amp, pw), area, lim.shannon_k)):
            self._fail(f"L8: channel {channel} Shannon k {k:.2f} is over {lim.shannon_k:g}")
        rms_ma = formulas.rms_current_ma(amp, pw, rate)
        if _beyond(rms_ma, lim.rms_ma,
                   lambda: exceeds_rms_current(amp, pw, rate, lim.rms_ma)):
            self._fail(f"L4: channel {channel} rms current {rms_ma:.2f} mA is over "
                       f"{lim.rms_ma:g} mA")
        density = formulas.current_density_ma_cm2(amp, pw, rate, area)
        if _beyond(density, lim.current_density_ma_cm2, lambda: exceeds_current_density(
                amp, pw, rate, area, lim.current_density_ma_cm2)):
            self._fail(f"L9: channel {channel} current density {density:.3f} mA/cm² is over "
                       f"{lim.current_density_ma_cm2:g} mA/cm²")
        power = formulas.power_density_w_cm2(amp, pw, rate, area)
        strict = lim.power_density_w_cm2 >= POWER_DENSITY_CEILING_W_CM2  # L10: < 0.25 at most
        if _beyond(power, lim.power_density_w_cm2, lambda: exceeds_power_density(
                amp, pw, rate, area, lim.power_density_w_cm2, or_equal=strict)):
            self._fail(f"L10: channel {channel} power density {power:.4f} W/cm² is over "
                       f"{lim.power_density_w_cm2:g} W/cm²")

    def _rate_made(self, sp: ChannelSetpoint) -> float:
        """The rate the device makes for ``sp``'s continuous pulses; ``sp``'s own where it
        makes the rates asked, for bursts (no device with a period grid makes them) and for a
        rate outside the device's range (its driver refuses that one)."""
        if self._made_hz is None or sp.burst_rate_hz != 0:
            return sp.frequency_hz
        try:
            return self._made_hz(sp.frequency_hz)
        except EmsError:
            return sp.frequency_hz

    def _check_bursts(self, channel: int, sp: ChannelSetpoint) -> None:
        """Bursts must be bursts: a positive rate, at least one pulse, and no overlap (P pulses
        at f fit in the 1/R s between bursts, as the program model requires); only then is N,
        the largest number of pulses in any 1 s window, the count the limits are checked on."""
        rate, pulses = sp.burst_rate_hz, sp.burst_pulses
        if rate < 0 or pulses < 1 or pulses != int(pulses):
            self._fail(f"channel {channel}: {pulses!r} pulses at {rate!r} bursts/s is not a "
                       "burst pattern")
        if formulas.exact(pulses) * formulas.exact(rate) > formulas.exact(sp.frequency_hz):
            self._fail(f"channel {channel}: bursts overlap: {pulses} pulses at "
                       f"{sp.frequency_hz:g} Hz do not fit in the {1 / rate:.3g} s between "
                       "bursts")

    def _fail(self, message: str) -> None:
        self.latched = True
        raise SafetyViolation(f"safety guard stopped the session: {message}")
