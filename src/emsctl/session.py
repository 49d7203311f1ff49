"""A stimulation session: the async loop between a compiled plan and a driver.

Every tick (the driver's update period) the session samples the plan at the current
stimulation time, scales it by the user's intensity and by the resume soft start, passes it
through the :class:`Guard`, and applies it with a lease that the device's watchdog enforces.
Controls: :meth:`Session.stop` is immediate and bypasses any queue (the driver's stop path
never waits behind a pending command); pause drops to zero at once and freezes the program
clock; resume soft-starts from zero (L14, L15); intensity increases are slew-limited (L17); a
channel whose output went off comes back no sooner than one pulse (or burst) period later, as
a device starts its pulse train with a pulse and would otherwise put more than N pulses in a
second.
Telemetry: electrode off pauses and tells the user; link loss, device errors, resets and a
low battery end the session as a fault, and so does a ``strength`` report (the device's own
account of the current it applies) that differs by more than one device step from every
amplitude the session asked for on that channel within :data:`STRENGTH_WINDOW_S` — higher
(a knob turned, a miscalibrated output stage) or lower alike (HZ-01: the device is the source of
truth); a lower report that some recent ask explains (a late report, or the device's own
control turned down) is where the next rise starts, and a report of 0 means the output is off.
On every exit path — normal end, stop, signal, exception — the device is stopped and left at
zero.

The session never reads the wall clock: time is ``loop.time()`` of the running clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from .contract import ZERO, Capabilities, ChannelSetpoint, Driver, Telemetry
from .errors import EmsError, InputError, SafetyViolation
from .guard import ChannelGuard, Guard
from .limits import Limits
from .plan import ChannelSampler, PhaseSpan, Plan
from .verify import VerifiedPlan

__all__ = ["EndReason", "Session", "SessionResult", "SessionState", "session_lease_s"]

EndReason = Literal["completed", "stopped", "signal", "fault", "guard"]

#: How much one key press changes the intensity, in percent of the plan.
INTENSITY_STEP_PCT = 5.0
#: Telemetry older than this is stale (HZ-16): the view says so and increases are refused.
STALE_AFTER_S = 1.0
#: A pause longer than this ends the session: nobody may be there to resume it (a pipe, a user
#: who left), and a session must not run on without bound at zero (L19: sessions are finite).
PAUSE_LIMIT_S = 600.0
#: A strength report may answer any amplitude asked for this recently (reports of a change can
#: arrive after the next change was sent, e.g. a Coyote B1 a few frames late).
STRENGTH_WINDOW_S = 1.0
#: Loop times are a start plus k periods, so the time between two ticks carries float noise
#: (0.1 s can come out as 0.0999…): "a heartbeat or a lease has passed" is decided this much
#: early. Without it a heartbeat of one period went every other tick, and a lease of two
#: periods (the shortest legal one) ran out just as the next command was sent.
_TIME_SLACK_S = 1e-6


def _pulse_period_s(frequency_hz: float, burst_rate_hz: float) -> float:
    """The time between pulse-train starts: a pulse (continuous) or a burst (bursts)."""
    period_s = 1.0 / frequency_hz if frequency_hz > 0 else 0.0
    return max(period_s, 1.0 / burst_rate_hz) if burst_rate_hz > 0 else period_s


def session_lease_s(capabilities: Capabilities, limits: Limits) -> float:
    """The lease every command carries: the device's longest, within the watchdog limit (L21).

    Raises:
        InputError: the lease is shorter than two command periods, so the device would switch
            its output off between commands (a device whose output runs in self-expiring
            frames, like the Coyote's 100 ms frames, is bounded after a host loss by its frame,
            but its host still renews the lease once a period).
    """
    lease_s = min(capabilities.max_lease_s, limits.watchdog_s)
    period_s = capabilities.update_period_s
    if lease_s < 2 * period_s - 1e-9:
        raise InputError(
            f"the device's safety timeout would be {lease_s:g} s, shorter than two of its "
            f"{period_s:g} s command periods, so its output would switch off between "
            f"commands; use a watchdog of at least {2 * period_s:g} s")
    return lease_s


class JournalLike(Protocol):
    """What the session writes to (``emsctl.journal.Journal`` or a test double)."""

    def command(self, t_s: float, setpoints: Any, lease_s: float, intensity_pct: float) -> None:
        """Record a command sent to the device."""

    def stop(self, t_s: float, reason: str) -> None:
        """Record a stop."""

    def telemetry(self, t_s: float, telemetry: Telemetry) -> None:
        """Record a telemetry report."""

    def event(self, t_s: float, kind: str, **fields: Any) -> None:
        """Record a session event (pause, resume, intensity, phase, message)."""


@dataclass
class SessionState:
    """What a live view shows. Updated every tick; read-only for observers."""

    t_s: float = 0.0
    stim_time_s: float = 0.0
    duration_s: float = 0.0
    phase: str = ""
    phase_instructions: str | None = None
    setpoints: tuple[ChannelSetpoint, ...] = ()
    intensity_pct: float = 100.0
    target_intensity_pct: float = 100.0
    paused: bool = False
    status: str = "starting"
    message: str = ""
    last_telemetry_s: float | None = None
    #: Seconds since the device last reported anything (None: no report yet), and whether that
    #: is too old to trust (HZ-16: the view shows "stale" and "+" is refused).
    telemetry_age_s: float | None = None
    telemetry_stale: bool = False


@dataclass
class SessionResult:
    """How a session ended and what it asked for."""

    end_reason: EndReason
    message: str
    stim_time_s: float
    peak_ma: list[float]
    exit_code: int
    events: list[str] = field(default_factory=list)


class Session:
    """Runs one plan on one connected driver.

    Args:
        plan: the plan as :func:`emsctl.verify.certify` vouched for it, for this driver's
            device; its limits are the guard's.
        driver: a connected driver (the session does not open or close it, but always stops it).
        channel_map: program channel id → device channel number (default: the same number).
        intensity_pct: the starting intensity, 0–100 % of the plan.
        journal: where commands, telemetry and events are recorded.
        on_tick: called after every tick with the state (for a live view).
        pause_limit_s: a pause longer than this ends the session as a fault.
    """

    def __init__(
        self,
        plan: VerifiedPlan,
        driver: Driver,
        *,
        channel_map: dict[int, int] | None = None,
        intensity_pct: float = 100.0,
        journal: JournalLike | None = None,
        on_tick: Callable[[SessionState], None] | None = None,
        pause_limit_s: float = PAUSE_LIMIT_S,
    ) -> None:
        if not isinstance(plan, VerifiedPlan):
            raise TypeError("a session runs only a plan from emsctl.verify.certify()")
        caps = driver.capabilities
        if plan.capabilities != caps:
            raise InputError(f"this plan was verified for another device "
                             f"({plan.capabilities.model}), not for {caps.model}; verify it "
                             "for this one")
        limits = plan.limits
        self.verified = plan
        self.plan: Plan = plan.plan
        self.driver = driver
        self.limits = limits
        self.journal = journal
        self.on_tick = on_tick
        self.channel_map = channel_map or {c.channel: c.channel for c in self.plan.channels}
        guards = [ChannelGuard(0.0, 1.0)] * caps.channels
        for cplan in self.plan.channels:
            device_channel = self.channel_map[cplan.channel]
            if not 1 <= device_channel <= caps.channels:
                raise EmsError(f"program channel {cplan.channel} has no device channel "
                               f"({caps.model} has {caps.channels})")
            guards[device_channel - 1] = ChannelGuard(cplan.cap_ma, cplan.electrode_area_cm2)
        self.guard = Guard(limits, guards, caps.amplitude_step_ma, caps.update_period_s,
                           driver.delivered_frequency_hz)
        self._samplers = [(ChannelSampler(c, self.plan.duration_s),
                           self.channel_map[c.channel] - 1) for c in self.plan.channels]
        self.period_s = caps.update_period_s
        self.lease_s = session_lease_s(caps, limits)
        self.state = SessionState(duration_s=self.plan.duration_s,
                                  intensity_pct=max(0.0, min(100.0, intensity_pct)),
                                  target_intensity_pct=max(0.0, min(100.0, intensity_pct)))
        self._stop_reason: EndReason | None = None
        self._stop_message = ""
        self._wake: asyncio.Future[None] | None = None
        self._resume_at_s: float | None = None
        self._resume_pending = False
        self._start_s = 0.0
        self.pause_limit_s = pause_limit_s
        self._paused_at_s = 0.0
        self._paused_total_s = 0.0
        self._last_advance_s: float | None = None
        # the last setpoint made per device channel: an unchanged sample reuses the object, so
        # the guard and the heartbeat check see "unchanged" by identity (the 10–40 Hz hot path)
        self._made: list[tuple[tuple[float, float, float, float, int], ChannelSetpoint]] = [
            ((0.0, 0.0, 0.0, 0.0, 0), ZERO)] * caps.channels
        self._stale_applies = "ack" in caps.telemetry
        # per device channel: (loop time, amplitude) of every change asked for, pruned to the
        # ones in force within STRENGTH_WINDOW_S; strength reports are judged against them
        self._asked: list[deque[tuple[float, float]]] = [
            deque([(-math.inf, 0.0)]) for _ in range(caps.channels)]
        # per device channel: whether the last command sent had output on it, when it last
        # went off, and the pulse period of its last output (a restart waits one period)
        self._sent_on = [False] * caps.channels
        self._off_since_s = [-math.inf] * caps.channels
        self._on_period_s = [0.0] * caps.channels
        self._running = False
        self._events: list[str] = []
        self._stop_task: asyncio.Future[None] | None = None
        driver.add_listener(self._on_telemetry)

    # ------------------------------------------------------------------ controls

    def stop(self, reason: EndReason = "stopped", message: str = "stopped by the user") -> None:
        """Stop now: latch the guard and put the driver's stop on its way before returning."""
        if self._stop_reason is None:
            self._stop_reason = reason
            self._stop_message = message
        self.guard.latch()
        self.state.status = "stopping"
        if self._stop_task is None:
            self._stop_task = self.driver.request_stop()
        self._wake_up()

    def pause(self) -> None:
        """Drop to zero at once and freeze the program clock."""
        if self.state.paused or self._stop_reason is not None:
            return
        self.state.paused = True
        self.state.status = "paused"
        self._paused_at_s = asyncio.get_running_loop().time()
        self._log("pause")
        self._wake_up()

    def resume(self) -> None:
        """Continue the program, soft-starting from zero (L14, L15)."""
        if not self.state.paused or self._stop_reason is not None:
            return
        self.state.paused = False
        self.state.status = "running"
        # the program clock stood still from the pause to now, to the loop's exact time
        self._paused_total_s += asyncio.get_running_loop().time() - self._paused_at_s
        self._resume_pending = True  # the soft start begins at the next tick
        self._log("resume")
        self._wake_up()

    def toggle_pause(self) -> None:
        """Pause when running, resume when paused."""
        if self.state.paused:
            self.resume()
        else:
            self.pause()

    def change_intensity(self, delta_pct: float) -> None:
        """Change the target intensity; increases are refused while telemetry is stale (HZ-16)."""
        if delta_pct > 0 and self._telemetry_stale():
            self.state.message = "device status is stale: intensity increase refused"
            return
        target = max(0.0, min(100.0, self.state.target_intensity_pct + delta_pct))
        self.state.target_intensity_pct = target
        # decreases act at once, never rate-limited (L17); increases follow the slew
        if target < self.state.intensity_pct:
            self.state.intensity_pct = target
            self._wake_up()  # now, not at the next tick: "-" is how a user says "too much"
        elif target > self.state.intensity_pct:
            # the rise is paced from this moment (L17), and the loop leaves a steady stretch
            self._last_advance_s = asyncio.get_running_loop().time()
            self._wake_up()
        self._log("intensity", target_pct=target)

    # ------------------------------------------------------------------ run

    async def run(self) -> SessionResult:
        """Run the plan to its end or until stopped; always leaves the device at zero."""
        loop = asyncio.get_running_loop()
        start_s = self._start_s = loop.time()
        self._running = True
        if self.state.paused:  # paused before the start: the pause counts from the start
            self._paused_at_s = start_s
        stim_time_s = 0.0
        current_phase = ""
        span: PhaseSpan | None = None
        last_sent: tuple[ChannelSetpoint, ...] = ()
        last_sent_s = start_s
        heartbeat_s = self._heartbeat_s()
        self.state.status = "running"
        try:
            while self._stop_reason is None:
                now_s = loop.time()
                stim_time_s = self._stim_time(now_s)
                if self.state.paused and now_s - self._paused_at_s >= self.pause_limit_s:
                    if self.pause_limit_s > 0:
                        why = f"paused for more than {self.pause_limit_s / 60:g} min"
                    else:  # nobody can resume: no keys (a pipe), so a pause ends the session
                        why = "paused with no terminal to resume"
                    self.stop("fault", f"{why}: session ended; start a new session to continue")
                    break
                if stim_time_s >= self.plan.duration_s:
                    break
                if now_s - last_sent_s >= self.lease_s - _TIME_SLACK_S and any(
                        sp.amplitude_ma > 0 for sp in last_sent):
                    # the host stalled past the lease: the device has switched off by itself,
                    # and output never comes back from a level nobody saw being delivered
                    self.stop("fault", self._stall_message(now_s - last_sent_s))
                    break
                if span is None or not span.start_s <= stim_time_s < span.end_s:
                    span = self.plan.phase_at(stim_time_s)
                if span.name != current_phase:
                    current_phase = span.name
                    self._log("phase", name=span.name)
                setpoints = self._setpoints(now_s, stim_time_s)
                # L19 counts time with output: guide phases have none (as verify counts)
                checked = self.guard.check(now_s, self.plan.stimulation_s(stim_time_s),
                                           setpoints)
                if self._stop_reason is not None:
                    break
                # an unchanged command is re-sent only as the heartbeat (L21), which renews
                # the lease long before the device's watchdog would silence it: at the last
                # tick within a heartbeat of the last send (which a key press may have made
                # between two ticks), never the first one after it
                if (checked is not last_sent and checked != last_sent) \
                        or now_s + self.period_s > last_sent_s + heartbeat_s + _TIME_SLACK_S:
                    # asked for before it is sent: a device may report it during the send
                    self._note_asked(now_s, checked)
                    await self.driver.apply(checked, self.lease_s)
                    last_sent, last_sent_s = checked, now_s
                    self._note_sent(now_s, checked)
                    if self.journal is not None:
                        self.journal.command(now_s - start_s, checked, self.lease_s,
                                             self.state.intensity_pct)
                self._update_state(now_s - start_s, stim_time_s, span.name, span.instructions,
                                   checked)
                # while every channel's plan is flat and nothing ramps, only the heartbeat (or
                # the end of the flat stretch) needs a tick; any control wakes the loop at once
                wake_s = min(last_sent_s + heartbeat_s, now_s + self._steady_for(stim_time_s))
                await self._sleep_until(start_s, now_s, wake_s)
            # a stop ends the stimulation when it comes, not at the last tick before it (a
            # steady stretch ticks only at its heartbeat)
            stim_time_s = max(stim_time_s, self._stim_time(loop.time()))
            if self._stop_reason is None:
                self._stop_reason, self._stop_message = "completed", "program completed"
        except SafetyViolation as exc:
            self._stop_reason, self._stop_message = "guard", str(exc)
        except EmsError as exc:
            if self._stop_reason is None:
                self._stop_reason, self._stop_message = "fault", str(exc)
        except asyncio.CancelledError:
            if self._stop_reason is None:
                self._stop_reason, self._stop_message = "signal", "session cancelled"
            raise
        except Exception as exc:  # a bug below us (driver, link) is still a fault:
            # the device is stopped in `finally`, and the caller gets a result and a footer
            # instead of a traceback that skips them (HZ-22)
            detail = f"{type(exc).__name__}: {exc}"
            self._events.append(f"unexpected error: {detail}")
            if self._stop_reason in (None, "completed"):
                self._stop_reason = "fault"
                self._stop_message = f"session aborted by an unexpected error ({detail})"
        finally:
            await self._final_stop(loop.time() - start_s)
        return self._result(stim_time_s)

    def _heartbeat_s(self) -> float:
        """How often an unchanged command is re-sent: a whole number of ticks (at least one),
        the most within the heartbeat limit and half the lease (L21).

        Commands go only at ticks, so a heartbeat between two ticks would go at the later one:
        0.25 s became 0.3 s, and 0.125 s (half of a 0.25 s lease) became 0.2 s, which left the
        device 50 ms of lease when the Coyote built its next 100 ms frame, whose last slot then
        went silent. Rounded down, and sent at the last tick within it of the last send (even
        one made between ticks), at least half the lease (≥ one period) is always left.
        """
        wanted_s = min(self.limits.heartbeat_s, self.lease_s / 2)
        return self.period_s * max(1, math.floor(wanted_s / self.period_s + 1e-9))

    def _stall_message(self, gap_s: float) -> str:
        return (f"the device went {gap_s:.1f} s without a command, longer than its "
                f"{self.lease_s:g} s safety timeout (this computer stalled, or the device was "
                "slow to answer), so it switched its output off; the session has ended and "
                "will not resume: output is off")

    def _stim_time(self, now_s: float) -> float:
        """Program time: loop time since the start, less every pause (frozen while paused)."""
        paused_s = self._paused_total_s
        if self.state.paused:
            paused_s += now_s - self._paused_at_s
        return now_s - self._start_s - paused_s

    def _steady_for(self, stim_time_s: float) -> float:
        """How long (s) the commanded setpoints cannot change by themselves from now on."""
        state = self.state
        if (state.paused or self._resume_at_s is not None or self._resume_pending
                or state.intensity_pct != state.target_intensity_pct):
            return 0.0
        until_s = min(sampler.steady_until(stim_time_s) for sampler, _ in self._samplers)
        return max(0.0, until_s - stim_time_s)

    async def _sleep_until(self, start_s: float, now_s: float, wake_s: float = 0.0) -> None:
        loop = asyncio.get_running_loop()
        # absolute schedule: tick k at start + k·period, so lateness never accumulates; a
        # steady stretch skips to the last tick before ``wake_s`` (never past it)
        ticks_done = int((now_s - start_s) / self.period_s + 1e-9) + 1
        ticks_steady = int((wake_s - start_s) / self.period_s + 1e-9)
        deadline_s = start_s + max(ticks_done, ticks_steady) * self.period_s
        if deadline_s <= loop.time():
            return
        wake: asyncio.Future[None] = loop.create_future()
        self._wake = wake
        timer = loop.call_at(deadline_s, self._wake_up)
        try:
            await wake
        finally:
            timer.cancel()
            self._wake = None

    def _wake_up(self) -> None:
        """End the current tick's sleep now (stop, pause, resume, or the tick's deadline)."""
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def _setpoints(self, now_s: float, stim_time_s: float) -> list[ChannelSetpoint]:
        caps = self.driver.capabilities
        out = [ZERO] * caps.channels
        if self.state.paused:
            self._last_advance_s = now_s  # a pause is not time for the intensity to rise in
            return out
        if self._resume_pending:
            self._resume_pending, self._resume_at_s = False, now_s
        resume_gain = 1.0
        if self._resume_at_s is not None:
            ramp_s = max(self.plan.soft_start_s, self.limits.soft_start_min_s)
            resume_gain = min(1.0, (now_s - self._resume_at_s) / ramp_s)
            if resume_gain >= 1.0:
                self._resume_at_s = None
        samples = [(sampler.at(stim_time_s), index) for sampler, index in self._samplers]
        planned_peak_ma = 0.0
        for sample, _ in samples:
            planned_peak_ma = max(planned_peak_ma, sample[0])
        self._advance_intensity(planned_peak_ma, now_s)
        gain = resume_gain * self.state.intensity_pct / 100.0
        made = self._made
        guard = self.guard
        for (amp, freq, width, burst_rate, burst_pulses), index in samples:
            # output rises only from what was last delivered, by at most one period's slew
            amplitude_ma = caps.quantize_ma(min(amp * gain, guard.rise_ceiling_ma(index, now_s)))
            if amplitude_ma <= 0:
                continue
            if not self._sent_on[index] and now_s < self._off_since_s[index] + max(
                    self._on_period_s[index], _pulse_period_s(freq, burst_rate)) - _TIME_SLACK_S:
                # a device starts its pulse train with a pulse: switched back on sooner than a
                # pulse period after it went off, it would put more pulses in a second than N,
                # the most the plan has in any 1 s window (L4, L9, L10 are checked on N)
                continue
            key = (amplitude_ma, freq, width, burst_rate, burst_pulses)
            if made[index][0] != key:
                made[index] = (key, ChannelSetpoint(*key))
            out[index] = made[index][1]
        return out

    def _advance_intensity(self, planned_peak_ma: float, now_s: float) -> None:
        """Move the intensity toward its target; rises within L17 (mA/s and mA/command)."""
        state = self.state
        # L17: the rise is paced by the time since the last step, not by the number of ticks:
        # extra ticks (a resume wakes the loop at once) must not add extra steps
        last_s, self._last_advance_s = self._last_advance_s, now_s
        dt_s = self.period_s if last_s is None else max(0.0, now_s - last_s)
        if state.intensity_pct >= state.target_intensity_pct:
            return
        if planned_peak_ma <= 0:
            state.intensity_pct = state.target_intensity_pct
            return
        rise_ma = min(self.limits.user_rise_ma_per_s * dt_s, self.limits.user_step_ma)
        step_pct = 100.0 * rise_ma / planned_peak_ma
        state.intensity_pct = min(state.target_intensity_pct, state.intensity_pct + step_pct)

    def _update_state(self, t_s: float, stim_time_s: float, phase: str,
                      instructions: str | None, setpoints: tuple[ChannelSetpoint, ...]) -> None:
        state = self.state
        state.t_s, state.stim_time_s, state.phase = t_s, stim_time_s, phase
        state.phase_instructions = instructions
        state.setpoints = setpoints
        last = state.last_telemetry_s
        age_s = t_s if last is None else t_s + self._start_s - last
        state.telemetry_age_s = None if last is None else age_s
        state.telemetry_stale = self._stale_applies and age_s > STALE_AFTER_S  # HZ-16
        if self.on_tick is not None:
            self.on_tick(state)

    async def _final_stop(self, t_s: float) -> None:
        self.guard.latch()
        if self._stop_task is None:
            self._stop_task = self.driver.request_stop()
        try:
            if self._stop_task is not None:
                await asyncio.shield(self._stop_task)
        except EmsError as exc:
            self._events.append(f"stop not confirmed: {exc}")
            if self._stop_reason in (None, "completed"):
                self._stop_reason, self._stop_message = "fault", f"stop not confirmed: {exc}"
        self.state.status = "stopped"
        self.state.setpoints = tuple(ZERO for _ in range(self.driver.capabilities.channels))
        if self.journal is not None:
            self.journal.stop(t_s, self._stop_reason or "stopped")
        if self.on_tick is not None:
            self.on_tick(self.state)

    def _result(self, stim_time_s: float) -> SessionResult:
        reason: EndReason = self._stop_reason or "stopped"
        exit_code = {"completed": 0, "stopped": 130, "signal": 130, "fault": 1, "guard": 1}[reason]
        # what the person had: time in stimulation phases, not the guidance before them
        stimulation_s = self.plan.stimulation_s(min(stim_time_s, self.plan.duration_s))
        return SessionResult(reason, self._stop_message, stimulation_s,
                             list(self.guard.peak_ma), exit_code, list(self._events))

    # ------------------------------------------------------------------ telemetry

    def _on_telemetry(self, telemetry: Telemetry) -> None:
        self.state.last_telemetry_s = telemetry.t_s
        if self.journal is not None:
            self.journal.telemetry(self._session_time(telemetry.t_s), telemetry)
        kind = telemetry.kind
        if kind == "electrode_off":
            self.state.message = (f"electrode off on channel {telemetry.channel}: paused. Check "
                                  "the pads, then resume.")
            self.pause()
        elif kind == "link_lost":
            detail = f": {telemetry.message}" if telemetry.message else ""
            self.stop("fault", f"link to the device lost{detail}")
        elif kind in ("device_error", "device_reset"):
            self.stop("fault", f"device reported {kind.replace('_', ' ')}"
                      f"{': ' + telemetry.message if telemetry.message else ''}")
        elif kind == "battery" and telemetry.value is not None and telemetry.value <= 10:
            self.stop("fault", f"device battery low ({telemetry.value:.0f} %)")  # HZ-17
        elif kind == "strength" and telemetry.channel is not None \
                and telemetry.value is not None:
            self._check_strength(telemetry.channel, telemetry.value, telemetry.t_s)

    def _note_sent(self, now_s: float, setpoints: tuple[ChannelSetpoint, ...]) -> None:
        for index, sp in enumerate(setpoints):
            on = sp.amplitude_ma > 0
            if on:
                self._on_period_s[index] = _pulse_period_s(sp.frequency_hz, sp.burst_rate_hz)
            elif self._sent_on[index]:
                self._off_since_s[index] = now_s
            self._sent_on[index] = on

    def _note_asked(self, now_s: float, setpoints: tuple[ChannelSetpoint, ...]) -> None:
        for asked, sp in zip(self._asked, setpoints, strict=False):
            if asked[-1][1] != sp.amplitude_ma:
                asked.append((now_s, sp.amplitude_ma))
            self._prune(asked, now_s)

    @staticmethod
    def _prune(asked: deque[tuple[float, float]], now_s: float) -> None:
        # an entry is in force until the next one starts: drop those that ended before the window
        while len(asked) > 1 and asked[1][0] < now_s - STRENGTH_WINDOW_S:
            asked.popleft()

    def _check_strength(self, channel: int, value_ma: float, t_s: float) -> None:
        """HZ-01: a device that reports a strength nobody asked for ends the session."""
        if not self._running or self._stop_reason is not None \
                or not 1 <= channel <= len(self._asked):
            return  # before the start (a connect zeroing a device) or while stopping
        asked = self._asked[channel - 1]
        self._prune(asked, t_s)
        tolerance_ma = self.driver.capabilities.amplitude_step_ma + 1e-6
        if math.isfinite(value_ma) and any(abs(value_ma - a) <= tolerance_ma for _, a in asked):
            if value_ma <= 0 and self._sent_on[channel - 1]:
                # the device says its output is off (however close that is to what was asked):
                # it comes back from zero, and no sooner than a pulse period
                self._sent_on[channel - 1] = False
                self._off_since_s[channel - 1] = t_s
                self.guard.rise_from(channel - 1, 0.0)
            elif value_ma < asked[-1][1] - tolerance_ma:
                # a late report of an earlier, lower amplitude, or the device's own control
                # turned down to one: either way the output rises from the level reported, not
                # from the one asked for last (L14, L17)
                self.guard.rise_from(channel - 1, value_ma)
            return
        latest_ma = asked[-1][1]
        where = "above" if not value_ma <= latest_ma else "below"
        self.stop("fault", f"the device reports a strength of {value_ma:g} mA on channel "
                  f"{channel}, {where} the {latest_ma:g} mA asked for")

    def _telemetry_stale(self) -> bool:
        if "ack" not in self.driver.capabilities.telemetry:
            return False
        last = self.state.last_telemetry_s
        if last is None and not self._running:
            return True  # HZ-16: before the start no report has come, whatever the clock reads
        # HZ-16: no report at all since the start is as stale as an old one
        reference_s = self._start_s if last is None else last
        return asyncio.get_running_loop().time() - reference_s > STALE_AFTER_S

    def _session_time(self, t_s: float) -> float:
        """Loop time ``t_s`` as seconds since the start; before the start, 0 (as the runner
        journals what the driver reports while it connects), never the loop's own reading."""
        return t_s - self._start_s if self._running else 0.0

    def _log(self, kind: str, **fields: Any) -> None:
        self._events.append(kind)
        if self.journal is not None:
            with contextlib.suppress(RuntimeError):
                self.journal.event(self._session_time(asyncio.get_running_loop().time()), kind,
                                   **fields)
