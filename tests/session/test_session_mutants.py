"""Session controls and telemetry checks, each on its edge (the mutation run).

A minimal driver that sends nothing by itself runs a two-channel plan (0 → 10 mA over 10 s, then
10 mA) in virtual time; the test coroutine plays the person and the device, step by step, so an
exception in a handler reaches the test instead of the event loop's log.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from emsctl.clock import VirtualClock
from emsctl.contract import ZERO, Capabilities, ChannelSetpoint, Driver, Telemetry
from emsctl.errors import DeviceError, EmsError, InputError, SafetyViolation
from emsctl.limits import DEFAULTS
from emsctl.plan import SEGMENT_DTYPE, ChannelPlan, PhaseSpan, Plan
from emsctl.session import Session, SessionResult, SessionState
from emsctl.verify import certify

HOLD_MA = 10.0


def caps(telemetry: frozenset[str] = frozenset({"ack", "strength"}), step_ma: float = 0.5
         ) -> Capabilities:
    return Capabilities(model="Quiet", channels=2, amplitude_max_ma=40.0, amplitude_step_ma=step_ma,
                        pulse_width_min_us=50.0, pulse_width_max_us=400.0, frequency_min_hz=1.0,
                        frequency_max_hz=150.0, frequency_per_channel=True, update_period_s=0.1,
                        max_lease_s=1.0, has_output_watchdog=True, telemetry=telemetry)


class QuietDriver(Driver):
    """Accepts every command at once and reports nothing unless a test makes it."""

    def __init__(self, capabilities: Capabilities, stall_at_s: float | None = None,
                 stall_at_ma: tuple[float, float] | None = None) -> None:
        super().__init__()
        self.capabilities = capabilities
        self.stall_at_s = stall_at_s  # one apply at or after this loop time takes 2 s
        self.stall_at_ma = stall_at_ma  # or one apply of channel 1 within this range (mA)
        self.stop_fails = False
        self.fail_at_s: float | None = None  # the first apply at or after this time raises
        self.applied: list[tuple[float, float]] = []  # (loop time, channel 1 mA) of each apply
        self.sent: list[tuple[ChannelSetpoint, ...]] = []

    async def _connect_internal(self) -> None:
        pass

    async def _apply_internal(self, setpoints: tuple[ChannelSetpoint, ...], lease_s: float) -> None:
        if self.fail_at_s is not None and self._now() >= self.fail_at_s:
            self.fail_at_s = None
            raise RuntimeError("boom")
        self.applied.append((self._now(), setpoints[0].amplitude_ma))
        self.sent.append(setpoints)
        if self.stall_at_s is not None and self._now() >= self.stall_at_s:
            self.stall_at_s = None
            await asyncio.sleep(2.0)
        if self.stall_at_ma is not None and \
                self.stall_at_ma[0] <= setpoints[0].amplitude_ma <= self.stall_at_ma[1]:
            self.stall_at_ma = None
            await asyncio.sleep(2.0)

    async def _stop_internal(self) -> None:
        if self.stop_fails:
            raise DeviceError("no answer to the stop")

    async def _close_internal(self) -> None:
        pass

    def report(self, kind: str, channel: int | None = None, value: float | None = None,
               message: str = "") -> None:
        self._emit(Telemetry(kind, self._now(), channel, value, message))  # type: ignore[arg-type]


class Journal:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.event_at: list[tuple[float, str]] = []
        self.closed = False
        self.telemetry_at: list[tuple[float, str]] = []
        self.commands: list[tuple[float, float, float, float]] = []  # t, ch 1 mA, lease, %
        self.stops: list[tuple[float, str]] = []

    def command(self, t_s: float, setpoints: Any, lease_s: float, intensity_pct: float) -> None:
        self.commands.append((t_s, setpoints[0].amplitude_ma, lease_s, intensity_pct))

    def stop(self, t_s: float, reason: str) -> None:
        self.stops.append((t_s, reason))

    def telemetry(self, t_s: float, telemetry: Telemetry) -> None:
        self.telemetry_at.append((t_s, telemetry.kind))

    def event(self, t_s: float, kind: str, **fields: Any) -> None:
        if self.closed:
            raise RuntimeError("the journal is closed")
        self.events.append((kind, fields))
        self.event_at.append((t_s, kind))


def plan(duration_s: float = 600.0, phases: int = 1, silent_first: bool = False) -> Plan:
    """0 → 10 mA over 10 s, then 10 mA; with two phases the second starts at half time; with
    ``silent_first`` channel 1 has no output at all."""
    half = duration_s / 2
    rows = [(0.0, 10.0, 0.0, HOLD_MA, 20.0, 20.0, 200.0, 200.0, 0.0, 0, 0)]
    if phases == 1:
        rows.append((10.0, duration_s, HOLD_MA, HOLD_MA, 20.0, 20.0, 200.0, 200.0, 0.0, 0, 0))
        spans = (PhaseSpan(0, "hold", "stim", 0.0, duration_s, None, True),)
    else:
        rows += [(10.0, half, HOLD_MA, HOLD_MA, 20.0, 20.0, 200.0, 200.0, 0.0, 0, 0),
                 (half, duration_s, HOLD_MA, HOLD_MA, 20.0, 20.0, 200.0, 200.0, 0.0, 0, 1)]
        spans = (PhaseSpan(0, "first", "stim", 0.0, half, None, True),
                 PhaseSpan(1, "second", "stim", half, duration_s, "breathe out", True))
    silent = [(*row[:2], 0.0, 0.0, *row[4:]) for row in rows]
    channels = tuple(ChannelPlan(n, "calf-left", 20.0, 30.0,
                                 np.array(silent if silent_first and n == 1 else rows,
                                          dtype=SEGMENT_DTYPE))
                     for n in (1, 2))
    return Plan("quiet", duration_s, spans, channels, 5.0)


Script = Callable[[Session, QuietDriver, Callable[[float], Awaitable[None]]], Awaitable[None]]


def run(script: Script, *, capabilities: Capabilities | None = None, intensity_pct: float = 100.0,
        stall_at_s: float | None = None, stall_at_ma: tuple[float, float] | None = None,
        the_plan: Plan | None = None, before: Callable[[Session], None] | None = None,
        journal: Journal | None = None, **session_options: Any
        ) -> tuple[SessionResult, Session, Journal, list[SessionState]]:
    """Run the plan while ``script(session, driver, until)`` acts; ``until(t)`` waits for
    session time ``t``. The session is stopped when the script returns (if still running)."""
    capabilities = capabilities or caps()
    journal = journal or Journal()
    states: list[SessionState] = []

    async def main() -> tuple[SessionResult, Session]:
        driver = QuietDriver(capabilities, stall_at_s, stall_at_ma)
        await driver.connect()
        session = Session(certify(the_plan or plan(), DEFAULTS, capabilities), driver,
                          journal=journal, intensity_pct=intensity_pct,
                          on_tick=lambda s: states.append(SessionState(**vars(s))),
                          **session_options)
        loop = asyncio.get_running_loop()

        async def until(t_s: float) -> None:
            await asyncio.sleep(max(0.0, session._start_s + t_s - loop.time()))

        await asyncio.sleep(5.0)  # the session's clock starts later than the loop's
        if before is not None:
            before(session)
        task = asyncio.ensure_future(session.run())
        await asyncio.sleep(0)
        await script(session, driver, until)
        if not task.done():
            session.stop()
        return await task, session

    result, session = VirtualClock(None).run(main())
    return result, session, journal, states


def status_at(states: list[SessionState], t_s: float) -> tuple[str, bool]:
    last = [s for s in states if s.t_s <= t_s][-1]
    return last.status, last.paused


# --- pause and resume ---------------------------------------------------------------------------


def test_a_second_pause_and_a_resume_while_running_change_nothing() -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(5.0)
        session.resume()  # not paused: nothing to resume
        await until(20.0)
        session.pause()
        await until(25.0)
        session.pause()  # already paused: the pause still counts from 20 s
        await until(30.0)
        session.resume()
        await until(40.0)
        session.pause()
        await until(50.0)
        session.resume()
        await until(60.0)

    result, session, journal, states = run(script)
    assert [kind for kind, _ in journal.events if kind in ("pause", "resume")] == [
        "pause", "resume", "pause", "resume"]
    assert result.events.count("resume") == 2
    assert status_at(states, 4.9) == status_at(states, 5.1) == ("running", False)
    assert status_at(states, 27.0) == ("paused", True)
    assert status_at(states, 35.0) == ("running", False)
    # two pauses of 10 s each: 60 s of session time hold 40 s of program time
    assert session.state.stim_time_s == pytest.approx(40.0, abs=0.25)


# --- intensity ------------------------------------------------------------------------------------


def test_increases_are_refused_while_no_report_has_come_decreases_and_no_change_are_not() -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(5.0)  # a device with acks, none since the start: stale
        session.change_intensity(0.0)
        assert session.state.message == ""
        session.change_intensity(+1.0)
        assert session.state.message == "device status is stale: intensity increase refused"
        assert session.state.target_intensity_pct == 50.0
        session.change_intensity(-10.0)
        assert session.state.target_intensity_pct == session.state.intensity_pct == 40.0

    result, *_ = run(script, intensity_pct=50.0)
    assert result.end_reason == "stopped"


def test_a_report_exactly_one_second_old_is_not_stale() -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(20.0)
        driver.report("ack", value=1.0)
        reported = session.state.last_telemetry_s
        assert reported is not None
        await asyncio.sleep(max(0.0, reported + 1.0 - asyncio.get_running_loop().time()))
        assert asyncio.get_running_loop().time() - reported == 1.0
        session.change_intensity(+5.0)
        assert session.state.target_intensity_pct == 55.0
        assert session.state.message == ""

    run(script, intensity_pct=50.0)


def test_a_device_without_acks_is_never_stale() -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(30.0)
        session.change_intensity(+1.0)
        assert session.state.target_intensity_pct == 51.0

    run(script, capabilities=caps(telemetry=frozenset()), intensity_pct=50.0)


def test_the_intensity_stays_within_0_and_100_percent_and_each_change_is_journaled() -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(5.0)
        driver.report("ack", value=1.0)
        session.change_intensity(+80.0)
        assert session.state.target_intensity_pct == 100.0
        session.change_intensity(-200.0)
        assert session.state.target_intensity_pct == session.state.intensity_pct == 0.0

    *_, journal, _ = run(script, intensity_pct=50.0)
    assert [e for e in journal.events if e[0] == "intensity"] == [
        ("intensity", {"target_pct": 100.0}), ("intensity", {"target_pct": 0.0})]


# --- a host that stalled --------------------------------------------------------------------------


def test_a_stall_past_the_lease_ends_the_session_with_the_whole_explanation() -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(40.0)

    result, *_ = run(script, stall_at_s=20.0)
    assert result.end_reason == "fault"
    assert result.message == (
        "the device went 2.0 s without a command, longer than its 1 s safety timeout (this "
        "computer stalled, or the device was slow to answer), so it switched its output off; "
        "the session has ended and will not resume: output is off")


# --- strength reports (HZ-01) ---------------------------------------------------------------------


def test_a_wrong_strength_on_the_last_channel_ends_the_session() -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(20.0)
        driver.report("strength", 2, 15.0)

    result, *_ = run(script)
    assert (result.end_reason, result.message) == (
        "fault", "the device reports a strength of 15 mA on channel 2, above the 10 mA asked for")


def test_a_strength_one_device_step_off_passes_and_more_does_not() -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(20.0)
        driver.report("strength", 1, HOLD_MA + 0.5)
        driver.report("strength", 2, HOLD_MA - 0.5)
        assert session.state.status == "running"
        driver.report("strength", 1, HOLD_MA - 0.6)

    result, *_ = run(script)
    assert (result.end_reason, result.message) == (
        "fault", "the device reports a strength of 9.4 mA on channel 1, below the 10 mA asked for")


def test_strength_reports_before_the_start_and_on_channels_it_lacks_are_ignored() -> None:
    async def main() -> SessionResult:
        capabilities = caps()
        driver = QuietDriver(capabilities)
        await driver.connect()
        session = Session(certify(plan(30.0), DEFAULTS, capabilities), driver)
        driver.report("strength", 1, 5.0)  # a connect's zeroing, before the session runs
        task = asyncio.ensure_future(session.run())
        await asyncio.sleep(20.0)
        driver.report("strength", 0, 5.0)
        driver.report("strength", 3, 5.0)
        return await task

    result = VirtualClock(None).run(main())
    assert result.end_reason == "completed"


def test_a_strength_answers_what_was_asked_within_the_last_second_only() -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(5.0)  # in the ramp: a change every few ticks
        now = asyncio.get_running_loop().time()
        recent = [ma for t, ma in driver.applied if now - 0.6 <= t < now - 0.4]
        old = [ma for t, ma in driver.applied if t < now - 2.0 and ma > 0]
        assert recent and old and old[-1] < min(ma for t, ma in driver.applied
                                                if t >= now - 1.0) - 0.5
        driver.report("strength", 1, recent[0])  # asked for 0.5 s ago: still in force
        assert session.state.status == "running"
        driver.report("strength", 1, old[-1])  # asked for over 1 s ago: no longer

    result, *_ = run(script)
    assert result.end_reason == "fault" and "on channel 1, below the" in result.message


def test_an_intensity_rise_is_paced_from_the_key_press() -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(20.05)  # between two ticks
        driver.report("ack", value=1.0)
        session.change_intensity(+20.0)
        await until(20.6)

    *_, states = run(script, intensity_pct=50.0)
    # L17 at the defaults: 2 mA/s of a 10 mA plan is 20 %/s, counted from 20.05 s
    rising = [s for s in states if 20.05 <= s.t_s <= 20.6]
    assert len(rising) >= 5
    for state in rising:
        assert state.intensity_pct == pytest.approx(50.0 + 20.0 * (state.t_s - 20.05), abs=1e-6)


def test_a_user_stop_says_so_at_once_and_in_the_result() -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(20.0)
        session.stop()
        assert session.state.status == "stopping"  # before the loop has run again
        assert driver.stopped

    result, session, *_ = run(script)
    assert (result.end_reason, result.message, result.exit_code) == (
        "stopped", "stopped by the user", 130)
    assert session.state.status == "stopped"


# --- what the device reports -----------------------------------------------------------------


@pytest.mark.parametrize(("kind", "value", "message", "expected"), [
    ("link_lost", None, "cable pulled", "link to the device lost: cable pulled"),
    ("link_lost", None, "", "link to the device lost"),
    ("device_error", None, "overheated", "device reported device error: overheated"),
    ("device_reset", None, "", "device reported device reset"),
    ("battery", 10.0, "", "device battery low (10 %)"),
])
def test_a_device_fault_report_ends_the_session_and_says_what_it_was(
        kind: str, value: float | None, message: str, expected: str) -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(20.0)
        driver.report(kind, None, value, message)
        assert session.state.status == "stopping"

    result, *_ = run(script)
    assert (result.end_reason, result.message, result.exit_code) == ("fault", expected, 1)


def test_a_battery_above_ten_percent_or_without_a_figure_runs_on() -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(20.0)
        driver.report("battery", None, 11.0)
        driver.report("battery", None, None)
        await until(21.0)
        assert session.state.status == "running"

    result, *_ = run(script)
    assert result.end_reason == "stopped"


def test_an_electrode_off_pauses_says_so_and_is_journaled_at_its_session_time() -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(20.0)
        driver.report("electrode_off", 1)
        assert session.state.paused
        assert session.state.message == ("electrode off on channel 1: paused. Check the pads, "
                                          "then resume.")

    *_, journal, _ = run(script)
    assert journal.telemetry_at == [(pytest.approx(20.0), "electrode_off")]


# --- the loop -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("max_lease_s", "spacing_s"), [(1.0, 0.2), (0.3, 0.1)])
def test_steady_output_is_renewed_at_the_last_tick_within_each_heartbeat(
        max_lease_s: float, spacing_s: float) -> None:
    # heartbeat = whole ticks within min(0.25 s, lease / 2): 0.25 s → 0.2 s, 0.15 s → 0.1 s,
    # so the device always has at least half its lease left at a renewal
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(23.0)

    _, session, _, states = run(script, capabilities=replace(caps(), max_lease_s=max_lease_s))
    start = session._start_s
    times = [t - start for t, _ in session.driver.applied if 20.0 <= t - start <= 22.0]  # type: ignore[attr-defined]
    assert len(times) > 5
    assert [b - a for a, b in itertools.pairwise(times)] == pytest.approx(
        [spacing_s] * (len(times) - 1), abs=1e-6)
    # and in between the loop sleeps: it wakes to renew and at the tick before, no more
    ticks = [s.t_s for s in states if 20.0 <= s.t_s <= 22.0]
    assert len(ticks) <= 2 * len(times) + 1


def test_a_session_paused_before_its_start_counts_the_pause_from_the_start() -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(10.0)
        assert session.state.stim_time_s == 0.0 and session.state.paused
        session.resume()
        await until(20.0)

    result, session, *_ = run(script, before=lambda s: s.pause())
    assert result.end_reason == "stopped"
    assert session.state.stim_time_s == pytest.approx(10.0, abs=0.25)


def test_a_session_stopped_before_its_start_had_no_stimulation() -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        pass

    result, *_ = run(script, before=lambda s: s.stop())
    assert (result.end_reason, result.stim_time_s, result.peak_ma) == ("stopped", 0.0, [0.0, 0.0])


@pytest.mark.parametrize(("pause_limit_s", "why"), [
    (0.5, "paused for more than 0.00833333 min"),
    (0.0, "paused with no terminal to resume"),
])
def test_a_pause_past_its_limit_ends_the_session(pause_limit_s: float, why: str) -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(20.0)
        session.pause()
        await until(22.0)

    result, *_ = run(script, pause_limit_s=pause_limit_s)
    assert (result.end_reason, result.message) == (
        "fault", f"{why}: session ended; start a new session to continue")


def test_a_stall_at_zero_output_is_no_fault_but_one_at_half_a_milliampere_is() -> None:
    async def paused(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(15.0)
        session.pause()
        driver.stall_at_ma = (0.0, 0.0)  # the next command (zero) takes 2 s
        await until(20.0)
        session.resume()
        await until(40.0)

    result, *_ = run(paused)
    assert result.end_reason == "stopped"

    async def ramp(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(5.0)

    result, *_ = run(ramp, stall_at_ma=(0.4, 0.6))  # 0.5 mA, early in the ramp
    assert result.end_reason == "fault" and result.message.startswith("the device went 2.")


def test_each_phase_is_journaled_once_when_it_begins() -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(50.0)

    *_, journal, states = run(script, the_plan=plan(60.0, phases=2))
    assert [e for e in journal.events if e[0] == "phase"] == [
        ("phase", {"name": "first"}), ("phase", {"name": "second"})]
    assert {(s.phase, s.phase_instructions) for s in states if s.t_s < 29.9} == {("first", None)}
    assert {(s.phase, s.phase_instructions) for s in states if 30.1 < s.t_s < 49.0} == {
        ("second", "breathe out")}


def test_commands_are_journaled_with_session_time_lease_and_intensity() -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(2.0)

    _, session, journal, states = run(script, intensity_pct=80.0)
    assert journal.commands[0] == (0.0, 0.0, 1.0, 80.0)
    assert states[0].t_s == 0.0  # session time, not the loop's
    assert all(lease == 1.0 and pct == 80.0 for _, _, lease, pct in journal.commands)
    assert [t for t, *_ in journal.commands] == pytest.approx(
        [t - session._start_s for t, _ in session.driver.applied])  # type: ignore[attr-defined]


def test_silence_is_sent_as_zero_and_a_silent_channel_does_not_silence_the_next() -> None:
    from emsctl.contract import ZERO

    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(12.0)

    _, session, *_ = run(script, the_plan=plan(60.0, silent_first=True))
    sent = session.driver.sent  # type: ignore[attr-defined]
    assert sent[0] == (ZERO, ZERO)
    assert all(sp[0] == ZERO for sp in sent)
    assert sent[-1][1].amplitude_ma == HOLD_MA


def test_a_completed_session_stops_the_device() -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(31.0)
        assert driver.stopped

    result, *_ = run(script, the_plan=plan(30.0))
    assert result.end_reason == "completed" and result.exit_code == 0


def test_ramps_and_intensity_rises_are_sent_every_tick() -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(20.05)
        driver.report("ack", value=1.0)
        session.change_intensity(+20.0)
        await until(21.0)

    _, session, *_ = run(script, intensity_pct=50.0, capabilities=caps(step_ma=0.01))
    start = session._start_s
    for t_from, t_to in ((2.0, 4.0), (20.1, 20.9)):  # the plan's ramp; the intensity's rise
        times = [t - start for t, _ in session.driver.applied  # type: ignore[attr-defined]
                 if t_from <= t - start <= t_to]
        assert [b - a for a, b in itertools.pairwise(times)] == pytest.approx(
            [0.1] * (len(times) - 1), abs=1e-6)


def test_after_a_soft_start_the_loop_sleeps_through_steady_output_again() -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(20.0)
        session.pause()
        await until(21.0)
        session.resume()
        await until(40.0)

    _, session, _, states = run(script)
    start = session._start_s
    renewals = [t for t, _ in session.driver.applied if 35.0 <= t - start <= 37.0]  # type: ignore[attr-defined]
    ticks = [s.t_s for s in states if 35.0 <= s.t_s <= 37.0]
    # a renewal every heartbeat (0.2 s: 11 in these 2 s), not one every tick (21)
    assert len(ticks) <= 2 * len(renewals) + 1 and len(renewals) <= 11


def test_program_time_stands_still_in_every_pause() -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(20.0)
        session.pause()
        await until(30.0)
        session.resume()
        await until(40.0)
        session.pause()
        await until(45.0)
        assert session._stim_time(asyncio.get_running_loop().time()) == pytest.approx(30.0)
        await until(50.0)

    run(script)


def test_the_view_shows_how_old_the_last_report_is_and_when_it_is_stale() -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(1.0)
        assert (session.state.telemetry_age_s, session.state.telemetry_stale) == (None, False)
        await until(20.0)
        driver.report("ack", value=1.0)
        await until(20.55)
        age = session.state.telemetry_age_s
        assert age is not None and 0.2 < age <= 0.55
        assert session.state.telemetry_stale is False
        await until(22.05)
        age = session.state.telemetry_age_s
        assert age is not None and 1.5 < age <= 2.05
        assert session.state.telemetry_stale is True

    run(script)


def test_events_carry_session_time_and_a_closed_journal_does_not_end_the_session() -> None:
    journal = Journal()

    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(20.0)
        session.pause()
        journal.closed = True  # as at exit: later events are dropped, the session goes on
        await until(21.0)
        session.resume()
        await until(25.0)

    result, *_ = run(script, journal=journal)
    assert result.end_reason == "stopped"
    assert result.events[-2:] == ["pause", "resume"]
    assert journal.event_at[-1] == (pytest.approx(20.0), "pause")


def test_a_rise_from_a_low_planned_level_is_paced_by_that_level() -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(0.5)  # the plan asks 0.5 mA here
        driver.report("ack", value=1.0)
        session.change_intensity(+50.0)
        await until(0.65)
        # 0.2 mA (2 mA/s for 0.1 s) of the 0.6 mA planned is a third of the plan
        assert session.state.intensity_pct == pytest.approx(50.0 + 100.0 * 0.2 / 0.6, abs=0.5)

    run(script, intensity_pct=50.0, capabilities=caps(step_ma=0.01))


def test_an_intensity_rise_while_the_plan_is_at_zero_takes_effect_at_once() -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(0.0)
        driver.report("ack", value=1.0)
        session.change_intensity(+30.0)
        await until(0.05)
        assert session.state.intensity_pct == 80.0

    result, *_ = run(script, intensity_pct=50.0)
    assert result.end_reason == "stopped"


# --- how a session ends ---------------------------------------------------------------------------


@pytest.mark.parametrize(("reason", "exit_code"), [
    ("stopped", 130), ("signal", 130), ("fault", 1), ("guard", 1)])
def test_each_end_reason_has_its_exit_code(reason: str, exit_code: int) -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(20.0)
        session.stop(reason, "why")  # type: ignore[arg-type]

    result, *_ = run(script)
    assert (result.end_reason, result.message, result.exit_code) == (reason, "why", exit_code)


def test_a_completed_program_says_so_and_the_journal_records_the_stop_at_its_time() -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(31.0)

    result, session, journal, _ = run(script, the_plan=plan(30.0))
    assert (result.end_reason, result.message) == ("completed", "program completed")
    assert journal.stops == [(pytest.approx(30.0, abs=0.2), "completed")]
    assert session.state.setpoints == (ZERO, ZERO) and session.state.status == "stopped"


def test_a_guard_violation_ends_the_session_with_the_guard_s_words() -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(20.0)
        session.guard.latch()  # from now on only zero passes the guard
        session.change_intensity(-10.0)  # a new setpoint: the guard refuses it
        await until(21.0)

    result, *_ = run(script, capabilities=caps(telemetry=frozenset()))
    assert (result.end_reason, result.exit_code) == ("guard", 1)
    assert result.message == ("safety guard stopped the session: output after stop: the stop "
                              "latch holds until a new session (HZ-03)")


def test_a_cancelled_session_records_a_signal_and_stops_the_device() -> None:
    journal = Journal()

    async def main() -> Session:
        capabilities = caps()
        driver = QuietDriver(capabilities)
        await driver.connect()
        session = Session(certify(plan(), DEFAULTS, capabilities), driver, journal=journal)
        task = asyncio.ensure_future(session.run())
        await asyncio.sleep(20.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert driver.stopped
        return session

    session = VirtualClock(None).run(main())
    assert (session._stop_reason, session._stop_message) == ("signal", "session cancelled")
    assert journal.stops == [(pytest.approx(20.0, abs=0.2), "signal")]


def test_an_unexpected_error_below_the_session_is_a_fault_with_its_type() -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        driver.fail_at_s = session._start_s + 20.0
        await until(25.0)

    result, *_ = run(script)
    assert (result.end_reason, result.exit_code) == ("fault", 1)
    assert result.message == "session aborted by an unexpected error (RuntimeError: boom)"
    assert "unexpected error: RuntimeError: boom" in result.events


def test_a_stop_the_device_does_not_confirm_turns_a_completed_session_into_a_fault() -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        driver.stop_fails = True
        await until(31.0)

    result, *_ = run(script, the_plan=plan(30.0))
    assert (result.end_reason, result.message) == (
        "fault", "stop not confirmed: no answer to the stop")
    assert "stop not confirmed: no answer to the stop" in result.events


# --- what a session is made with ------------------------------------------------------------------


def test_a_session_takes_only_a_certified_plan_for_its_own_device() -> None:
    capabilities = caps()
    with pytest.raises(TypeError, match=r"^a session runs only a plan from "
                                        r"emsctl\.verify\.certify\(\)$"):
        Session(plan(), QuietDriver(capabilities))  # type: ignore[arg-type]
    other = replace(capabilities, model="Other")
    with pytest.raises(InputError, match=r"^this plan was verified for another device \(Other\), "
                                         r"not for Quiet; verify it for this one$"):
        Session(certify(plan(), DEFAULTS, other), QuietDriver(capabilities))
    with pytest.raises(EmsError,
                       match=r"^program channel 1 has no device channel \(Quiet has 2\)$"):
        Session(certify(plan(), DEFAULTS, capabilities), QuietDriver(capabilities),
                channel_map={1: 3, 2: 2})
    verified = certify(plan(), DEFAULTS, capabilities)
    session = Session(verified, QuietDriver(capabilities), intensity_pct=150.0)
    assert session.verified is verified and session.state.duration_s == 600.0
    assert session.state.intensity_pct == session.state.target_intensity_pct == 100.0
    low = Session(verified, QuietDriver(capabilities), intensity_pct=-5.0)
    assert low.state.intensity_pct == low.state.target_intensity_pct == 0.0


@pytest.mark.parametrize(("max_lease_s", "refused"), [(0.2, False), (0.19, True)])
def test_the_lease_must_cover_two_command_periods(max_lease_s: float, refused: bool) -> None:
    from emsctl.session import session_lease_s

    capabilities = replace(caps(), max_lease_s=max_lease_s)
    if not refused:
        assert session_lease_s(capabilities, DEFAULTS) == max_lease_s
        return
    with pytest.raises(InputError) as caught:
        session_lease_s(capabilities, DEFAULTS)
    assert str(caught.value) == (
        "the device's safety timeout would be 0.19 s, shorter than two of its 0.1 s command "
        "periods, so its output would switch off between commands; use a watchdog of at least "
        "0.2 s")


def test_the_first_ramp_follows_the_plan_without_a_soft_start_of_its_own() -> None:
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(3.05)

    _, session, *_ = run(script, capabilities=caps(step_ma=0.01))
    start = session._start_s
    at_3 = [ma for t, ma in session.driver.applied if abs(t - start - 3.0) < 1e-6]  # type: ignore[attr-defined]
    assert at_3 == [pytest.approx(3.0, abs=0.011)]


# --- what the session's own state starts as -------------------------------------------------------


def test_a_strength_in_the_first_second_is_judged_against_zero() -> None:
    # nothing has been asked for but 0 yet (the ramp's first ticks round down to 0 mA): a device
    # that reports 1 mA is above it, even before a second has passed
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(0.3)
        assert [ma for _, ma in driver.applied] and max(ma for _, ma in driver.applied) == 0
        driver.report("strength", 1, 1.0)

    result, *_ = run(script)
    assert (result.end_reason, result.message) == (
        "fault", "the device reports a strength of 1 mA on channel 1, above the 0 mA asked for")


def test_a_late_report_of_a_level_asked_for_before_a_decrease_is_not_a_fault() -> None:
    # "−" drops the output at once; a report of the level before it, 0.3 s later, answers an
    # ask still in force within the last second (it is not above what was asked)
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(30.0)
        assert driver.applied[-1][1] == HOLD_MA
        session.change_intensity(-50.0)
        await until(30.2)
        assert driver.applied[-1][1] == HOLD_MA / 2
        driver.report("strength", 1, HOLD_MA)
        await until(31.2)
        assert session.state.status == "running"
        driver.report("strength", 1, HOLD_MA)  # 1.2 s after the decrease: no longer asked

    result, *_ = run(script)
    assert (result.end_reason, result.message) == (
        "fault", "the device reports a strength of 10 mA on channel 1, above the 5 mA asked for")


def _fast_rise_plan() -> Plan:
    """10 mA from 10 s, then 10 → 18 mA in 0.2 s at 20 s: L16's 40 mA/s exactly."""
    rows = [(0.0, 10.0, 0.0, HOLD_MA, 20.0, 20.0, 200.0, 200.0, 0.0, 0, 0),
            (10.0, 20.0, HOLD_MA, HOLD_MA, 20.0, 20.0, 200.0, 200.0, 0.0, 0, 0),
            (20.0, 20.2, HOLD_MA, 18.0, 20.0, 20.0, 200.0, 200.0, 0.0, 0, 0),
            (20.2, 60.0, 18.0, 18.0, 20.0, 20.0, 200.0, 200.0, 0.0, 0, 0)]
    channels = tuple(ChannelPlan(n, "calf-left", 20.0, 30.0, np.array(rows, dtype=SEGMENT_DTYPE))
                     for n in (1, 2))
    return Plan("fast", 60.0, (PhaseSpan(0, "hold", "stim", 0.0, 60.0, None, True),), channels,
                5.0)


def test_a_device_with_a_longer_command_period_gets_that_period_of_slew() -> None:
    # a device taking a command every 0.2 s: the plan's 8 mA in 0.2 s (40 mA/s) goes out at the
    # next command, not spread over two because the guard counted 0.1 s periods
    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(21.0)

    slow = replace(caps(), update_period_s=0.2)
    result, session, *_ = run(script, capabilities=slow, the_plan=_fast_rise_plan())
    driver = session.driver
    assert isinstance(driver, QuietDriver)
    start_s = session._start_s
    sent = [(round(t - start_s, 3), ma) for t, ma in driver.applied if 19.9 < t - start_s < 20.5]
    assert sent == [(20.0, HOLD_MA), (20.2, 18.0), (20.4, 18.0)]
    assert result.end_reason == "stopped"


def test_events_and_reports_before_the_start_are_journaled_at_time_zero() -> None:
    # as the runner journals what the driver reported while it connected: not at the loop's
    # own clock reading (here 5 s; on a computer, hours)
    journal = Journal()

    def before(session: Session) -> None:
        session.driver.report("battery", value=80.0)  # type: ignore[attr-defined]
        session.pause()

    async def script(session: Session, driver: QuietDriver, until: Any) -> None:
        await until(1.0)
        session.resume()
        await until(2.0)

    run(script, before=before, journal=journal)
    assert journal.telemetry_at[0] == (0.0, "battery")
    assert journal.event_at[0] == (0.0, "pause")
    assert (pytest.approx(1.0), "resume") in journal.event_at


def test_before_the_start_no_report_is_stale_whatever_the_clock_reads() -> None:
    async def main() -> SessionState:
        capabilities = caps()
        driver = QuietDriver(capabilities)
        await driver.connect()
        session = Session(certify(plan(30.0), DEFAULTS, capabilities), driver,
                          intensity_pct=50.0)
        # the loop's clock reads 0 s here: a clock reading is no report
        session.change_intensity(+10.0)
        return session.state

    state = VirtualClock(None).run(main())
    assert state.message == "device status is stale: intensity increase refused"
    assert state.target_intensity_pct == 50.0


def test_before_the_start_a_fresh_report_lets_an_increase_through() -> None:
    async def main() -> SessionState:
        capabilities = caps()
        driver = QuietDriver(capabilities)
        await driver.connect()
        session = Session(certify(plan(30.0), DEFAULTS, capabilities), driver,
                          intensity_pct=50.0)
        await asyncio.sleep(5.0)
        driver._emit(Telemetry("ack", asyncio.get_running_loop().time(), None, 1.0, "ok"))
        await asyncio.sleep(0.5)  # half a second old: not stale
        session.change_intensity(+10.0)
        return session.state

    state = VirtualClock(None).run(main())
    assert state.target_intensity_pct == 60.0
    assert "stale" not in (state.message or "")


def test_the_sessions_guard_checks_each_command_at_the_rate_the_driver_makes() -> None:
    class Faster(QuietDriver):  # declares no grid to verification, yet makes 20 Hz as 120 Hz
        def delivered_frequency_hz(self, frequency_hz: float) -> float:
            return frequency_hz * 6

    driver = Faster(caps())
    session = Session(certify(plan(), DEFAULTS, driver.capabilities), driver, journal=Journal())
    with pytest.raises(SafetyViolation, match=r"L7: channel 1 frequency 20 Hz is made as 120 Hz"):
        session.guard.check(0.0, 0.0, (ChannelSetpoint(0.5, 20.0, 200.0), ZERO))
