"""Threshold finding (docs/programs-basis.md P0): ST, MT and TOL on one channel, from 0 mA upwards.

Ramp mode (below the tetanic frequency of L18): continuous output at the target frequency and
width from 0 mA, 0.5 mA higher every 2 s (each step ramped over 0.5 s, 1 mA/s, L17). The person
answers "I feel it" (ST), "I see a twitch" (MT) and "too much" (TOL). Train mode (≥ 20 Hz,
``cramp-training``): 5 s trains (1 s ramps in them) with 10 s rest (L18), from the MT measured at
8 Hz / 150 µs, 2 mA higher per train; only "too much" counts.

"Too much" and abort put the driver's stop on its way *before* returning (the driver's stop
never waits behind a pending command, HZ-03); TOL is the highest amplitude sent. Hard stops: the
ceiling (40 mA, L3 while TOL is unknown; lower if the device, program or limits say so), held for
one step and then stopped, and the time limit (3 min ramp, 5 min trains). Every command passes
the :class:`~emsctl.guard.Guard` and carries a lease the device's watchdog enforces; every exit
path ends with ``driver.stop()``. This module reads time only from the running loop and saves
nothing: the CLI decides what goes into the profile.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from .contract import ZERO, ChannelSetpoint, Driver, Telemetry
from .errors import EmsError, InputError, SafetyViolation
from .guard import ChannelGuard, Guard
from .limit_checks import Level, check_pulse
from .limits import Limits
from .profile import CALIBRATION_CEILING_MA

__all__ = ["Calibration", "CalibrationResult", "CalibrationSettings", "CalibrationState",
           "Outcome", "Response"]

Response = Literal["feel", "twitch", "too_much", "abort"]
Outcome = Literal["complete", "ceiling", "no_twitch", "incomplete", "aborted", "timeout",
                  "fault"]


@dataclass(frozen=True)
class CalibrationSettings:
    """What to stimulate and how the amplitude rises (P0 values by default)."""

    channel: int
    frequency_hz: float
    pulse_width_us: float
    electrode_area_cm2: float
    ceiling_ma: float = CALIBRATION_CEILING_MA
    mode: Literal["ramp", "trains"] = "ramp"
    step_ma: float = 0.5
    step_interval_s: float = 2.0
    step_rise_s: float = 0.5
    max_duration_s: float = 180.0
    #: Train mode: first train's amplitude (the MT at 8 Hz / 150 µs) and the ST/MT it came with.
    start_ma: float = 0.0
    known_st_ma: float | None = None
    known_mt_ma: float | None = None
    train_step_ma: float = 2.0
    train_on_s: float = 5.0
    train_ramp_s: float = 1.0
    train_off_s: float = 10.0
    soft_start_s: float = 5.0

    def amplitude_at(self, t_s: float) -> float:
        """The scheduled amplitude at ``t_s`` after the start, never above the ceiling."""
        if t_s <= 0:
            return 0.0
        if self.mode == "ramp":
            index = math.floor(t_s / self.step_interval_s)
            into = min(1.0, (t_s - index * self.step_interval_s) / self.step_rise_s)
            return min(self.ceiling_ma, self.step_ma * (index + into))
        # L15: the first train is the soft start (ramps up over soft_start_s, not 1 s)
        first_on_s = self.soft_start_s + self.train_ramp_s
        if t_s < first_on_s + self.train_off_s:
            index, u, on_s, up_s = 0, t_s, first_on_s, self.soft_start_s
        else:
            cycle_s = self.train_on_s + self.train_off_s
            later = t_s - first_on_s - self.train_off_s
            index = 1 + math.floor(later / cycle_s)
            u, on_s, up_s = later - (index - 1) * cycle_s, self.train_on_s, self.train_ramp_s
        if u >= on_s:
            return 0.0
        level = min(self.ceiling_ma, self.start_ma + index * self.train_step_ma)
        return level * max(0.0, min(1.0, u / up_s, (on_s - u) / self.train_ramp_s))

    def ceiling_hold_end_s(self) -> float:
        """When the hard stop ends the procedure: one step (or train) after the ceiling."""
        if self.mode == "ramp":
            steps = math.ceil(self.ceiling_ma / self.step_ma - 1e-9)
            return steps * self.step_interval_s
        trains = math.ceil(max(0.0, self.ceiling_ma - self.start_ma) / self.train_step_ma - 1e-9)
        first_s = self.soft_start_s + self.train_ramp_s + self.train_off_s
        return first_s + trains * (self.train_on_s + self.train_off_s)

    def check(self, limits: Limits) -> None:
        """Refuse settings whose ceiling would break a limit (checked once, before output).

        Raises:
            InputError: a limit (L3–L10) is broken at the ceiling.
        """
        found = [f for f in check_pulse(self.ceiling_ma, self.pulse_width_us, self.frequency_hz,
                                        self.frequency_hz, self.electrode_area_cm2, limits)
                 if f.level is Level.BLOCK]
        if found:
            raise InputError(f"calibration at {self.frequency_hz:g} Hz / "
                             f"{self.pulse_width_us:g} µs up to {self.ceiling_ma:g} mA on "
                             f"{self.electrode_area_cm2:g} cm² pads breaks {found[0]}")


@dataclass
class CalibrationState:
    """What a view shows; updated every tick."""

    t_s: float = 0.0
    amplitude_ma: float = 0.0
    st_ma: float | None = None
    mt_ma: float | None = None
    tol_ma: float | None = None
    message: str = ""
    finished: bool = False


@dataclass(frozen=True)
class CalibrationResult:
    """How the procedure ended and what it found (times in seconds after its start)."""

    outcome: Outcome
    message: str
    st_ma: float | None
    mt_ma: float | None
    tol_ma: float | None
    peak_ma: float
    too_much_at_s: float | None = None
    events: list[str] = field(default_factory=list)
    #: The loop time the procedure started at (to find its times in a simulator's record).
    loop_start_s: float = 0.0

    @property
    def complete(self) -> bool:
        """True when ST ≤ MT ≤ TOL were all found (TOL may be the ceiling): save them."""
        return self.outcome in ("complete", "ceiling")

    @property
    def exit_code(self) -> int:
        """0 saved, 130 aborted by the user, 1 otherwise."""
        return 0 if self.complete else 130 if self.outcome == "aborted" else 1


def _resolve(wake: asyncio.Future[None]) -> None:
    if not wake.done():
        wake.set_result(None)


class Calibration:
    """One calibration run on a connected driver. Call :meth:`press` from keys or a user model.

    Raises:
        InputError: the channel does not exist on the device.
    """

    def __init__(self, driver: Driver, settings: CalibrationSettings, limits: Limits, *,
                 on_tick: Callable[[CalibrationState], None] | None = None) -> None:
        caps = driver.capabilities
        if not 1 <= settings.channel <= caps.channels:
            raise InputError(f"{caps.model} has no channel {settings.channel} "
                             f"(it has {caps.channels})")
        self.driver, self.settings, self.limits, self.on_tick = driver, settings, limits, on_tick
        guards = [ChannelGuard(0.0, 1.0)] * caps.channels
        guards[settings.channel - 1] = ChannelGuard(settings.ceiling_ma,
                                                    settings.electrode_area_cm2)
        self.guard = Guard(limits, guards, caps.amplitude_step_ma,
                           made_hz=driver.delivered_frequency_hz)
        self.lease_s = min(caps.max_lease_s, limits.watchdog_s)
        self.state = CalibrationState(st_ma=settings.known_st_ma, mt_ma=settings.known_mt_ma)
        self._outcome: Outcome | None = None
        self._message = ""
        self._peak_ma = 0.0
        self._start_s = 0.0
        self._too_much_at_s: float | None = None
        self._stop_task: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._events: list[str] = []
        driver.add_listener(self._on_telemetry)

    @property
    def finished(self) -> bool:
        """True once the procedure has decided to end."""
        return self._outcome is not None

    def press(self, response: Response) -> None:
        """A key or a virtual user's answer. "too much" and "abort" stop the output now."""
        if self._outcome is not None:
            return
        now_ma = self.state.amplitude_ma
        if response == "too_much":
            self._too_much_at_s = asyncio.get_running_loop().time() - self._start_s
            self.state.tol_ma = self._peak_ma
            self._finish("complete", "too much: output stopped")
        elif response == "abort":
            self._finish("aborted", "calibration aborted: output stopped, nothing saved")
        elif self.settings.mode == "trains":
            self.state.message = "in train mode only 'too much' counts"
        elif now_ma <= 0:
            self.state.message = "no output yet"
        elif response == "feel" and self.state.st_ma is None:
            self.state.st_ma = now_ma
            self._events.append(f"feel at {now_ma:.1f} mA")
        elif response == "twitch" and self.state.mt_ma is None:
            self.state.mt_ma = now_ma
            self.state.st_ma = self.state.st_ma if self.state.st_ma is not None else now_ma
            self._events.append(f"twitch at {now_ma:.1f} mA")

    def _finish(self, outcome: Outcome, message: str) -> None:
        if self._outcome is None:
            self._outcome, self._message = outcome, message
        self.guard.latch()
        if self._stop_task is None:
            self._stop_task = asyncio.ensure_future(self.driver.stop())
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def run(self) -> CalibrationResult:
        """Run until "too much", abort, the ceiling or the time limit; always ends at zero."""
        loop = asyncio.get_running_loop()
        settings, caps = self.settings, self.driver.capabilities
        self._start_s = start_s = loop.time()
        hold_end_s = settings.ceiling_hold_end_s()
        period_s = caps.update_period_s
        tick = 0
        try:
            while self._outcome is None:
                t_s = loop.time() - start_s
                if t_s >= min(settings.max_duration_s, hold_end_s):
                    self._end_at_limit(t_s >= hold_end_s)
                    break
                amp = caps.quantize_ma(settings.amplitude_at(t_s))
                setpoints = [ZERO] * caps.channels
                if amp > 0:
                    setpoints[settings.channel - 1] = ChannelSetpoint(
                        amp, settings.frequency_hz, settings.pulse_width_us)
                checked = self.guard.check(loop.time(), t_s, setpoints)
                self._peak_ma = max(self._peak_ma, amp)
                self.state.amplitude_ma, self.state.t_s = amp, t_s
                await self.driver.apply(checked, self.lease_s)
                if self.on_tick is not None:
                    self.on_tick(self.state)
                tick += 1
                await self._sleep_until(start_s + tick * period_s)
        except SafetyViolation as exc:
            self._finish("fault", str(exc))
        except EmsError as exc:
            self._finish("fault", f"calibration stopped: {exc}")
        finally:
            await self._final_stop()
        return self._result()

    def _end_at_limit(self, ceiling: bool) -> None:
        state = self.state
        if ceiling and state.st_ma is not None and state.mt_ma is not None:
            state.tol_ma = self._peak_ma
            self._finish("ceiling", f"hard stop at the {self._peak_ma:g} mA ceiling: TOL is "
                         "taken as the ceiling")
        elif ceiling:
            self._finish("incomplete", f"hard stop at the {self._peak_ma:g} mA ceiling before "
                         "a sensation and a twitch were reported; nothing saved")
        else:
            self._finish("timeout", f"time limit of {self.settings.max_duration_s:g} s reached; "
                         "nothing saved")

    async def _sleep_until(self, deadline_s: float) -> None:
        loop = asyncio.get_running_loop()
        if deadline_s <= loop.time():
            return
        wake: asyncio.Future[None] = loop.create_future()
        self._wake = wake
        timer = loop.call_at(deadline_s, _resolve, wake)
        try:
            await wake
        finally:
            timer.cancel()
            self._wake = None

    async def _final_stop(self) -> None:
        self.guard.latch()
        if self._stop_task is None:
            self._stop_task = asyncio.ensure_future(self.driver.stop())
        try:
            await asyncio.shield(self._stop_task)
        except EmsError as exc:
            self._events.append(f"stop not confirmed: {exc}")
            self._outcome, self._message = "fault", f"stop not confirmed: {exc}"
        self.state.amplitude_ma, self.state.finished = 0.0, True
        if self.on_tick is not None:
            self.on_tick(self.state)

    def _result(self) -> CalibrationResult:
        outcome: Outcome = self._outcome or "fault"
        state, message = self.state, self._message
        if outcome == "complete" and state.mt_ma is None:
            outcome, message = "no_twitch", ("too much before a twitch was reported: no "
                                             "motor threshold at these settings; nothing saved")
        return CalibrationResult(outcome, message, state.st_ma, state.mt_ma, state.tol_ma,
                                 self._peak_ma, self._too_much_at_s, list(self._events),
                                 self._start_s)

    def _on_telemetry(self, telemetry: Telemetry) -> None:
        if telemetry.kind in ("electrode_off", "link_lost", "device_error", "device_reset"):
            self._finish("fault", f"calibration stopped: device reported "
                         f"{telemetry.kind.replace('_', ' ')}; nothing saved")
