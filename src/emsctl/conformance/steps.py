"""The conformance steps: each exercises one promise of the driver contract and the family's wire
facts, and says what it found in an :class:`~.results.Outcome`.

Steps that put current on the electrodes use :meth:`~.run.CheckRun.output_setpoints` only; a
step whose device cannot do it says why (``not_possible``). :data:`STEPS` is their order.

Reads time only from the running loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import statistics
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..contract import DriverStoppedError
from ..errors import DeviceError
from ..wiretap import WireEvent
from .results import Outcome
from .run import (
    RACE_HOLD_S,
    REAL_TIME_SLACK_S,
    SHORT_LEASE_S,
    STOP_AT_ONCE_S,
    UPDATE_LEASE_S,
    CheckRun,
)

__all__ = ["STEPS", "StepFunction", "StepSpec"]


StepFunction = Callable[[CheckRun], Awaitable[Outcome]]


@dataclass(frozen=True)
class StepSpec:
    """One conformance step: its id, what it checks, and the function that does it."""

    id: str
    title: str
    run: StepFunction
    generic_cites: tuple[str, ...] = ()
    #: Fault reports the step provokes on purpose; any other one during it is a failure.
    provokes: frozenset[str] = frozenset()


async def _handshake(run: CheckRun) -> Outcome:
    out = Outcome()
    mark, t0 = run.log.mark(), run.now()
    driver = await run.fresh()
    out.measurements["handshake_s"] = run.now() - t0
    if not any(t.kind == "connected" for t in run.telemetry_since(t0, run.session)):
        out.problems.append("the driver reported no 'connected' telemetry")
    out.problems += run.family.check_handshake(run.log.since(mark), driver)
    return out


async def _identity(run: CheckRun) -> Outcome:
    driver = await run.ready()
    facts, problems = run.family.identify(run.log.since(0, run.session), driver)
    out = Outcome(problems=problems)
    out.facts = {"model": driver.capabilities.model,
                 "channels": str(driver.capabilities.channels), **facts}
    return out


async def _update_ack(run: CheckRun) -> Outcome:
    driver, setpoints = await run.output_ready()
    out = Outcome()
    mark, t0 = run.log.mark(), run.now()
    try:
        await driver.apply(setpoints, UPDATE_LEASE_S)
        out.measurements["apply_s"] = run.now() - t0
        await asyncio.sleep(run.family.update_settle_s)
        recorder = run.recorder
        if recorder is not None and recorder.delivered_now_ma(1) <= 0:
            out.problems.append("(emulation) the device delivered nothing on channel 1 after the "
                                "update was acknowledged")
    finally:
        try:
            await driver.stop()
        except DeviceError as exc:
            run.broken = True
            out.problems.append(f"the stop after the update was not confirmed: {exc}")
    events = run.log.since(mark)
    out.problems += run.family.update_problems(events, run.telemetry_since(t0, run.session),
                                               driver, setpoints)
    answered = [x.dt_s for x in run.family.exchanges(events) if x.dt_s is not None]
    if answered:
        out.measurements["update_ack_s"] = max(answered)
    out.problems += run.emulated_peak_problems(setpoints[0].amplitude_ma)
    return out


async def _round_trip(run: CheckRun) -> Outcome:
    family = run.family
    driver = await run.ready()
    reason = family.no_round_trip_reason(run)
    if reason is None and family.round_trip_needs_output:
        blocker = run.output_blocker()
        if blocker is not None:
            reason = f"it answers only a change of output, and {blocker}"
    if reason is not None:
        return Outcome.impossible(reason)
    await family.probe_round_trips(run, driver)
    exchanges = family.exchanges(run.log.events)
    times = [x.dt_s for x in exchanges if x.dt_s is not None]
    out = Outcome()
    if not times:
        out.problems.append("no command was answered, so no round trip could be measured")
        return out
    out.measurements.update({
        "round_trip_min_s": min(times), "round_trip_median_s": statistics.median(times),
        "round_trip_max_s": max(times), "round_trip_count": float(len(times))})
    unanswered = sum(1 for x in exchanges if x.dt_s is None and x.sent.delivered)
    note = f"{len(times)} answered"
    if unanswered:
        note += f", {unanswered} without a reply"
        if family.unanswered_reason:
            note += f" ({family.unanswered_reason})"
    out.notes.append(note)
    return out


async def _ack_timeout(run: CheckRun) -> Outcome:
    return await run.family.ack_timeout(run)


async def _stop_race(run: CheckRun) -> Outcome:
    """Ask for a stop just as an update goes out, and hold the device's replies (on the host's
    side) until the stop is on the wire: a stop that waits for the update's reply never comes
    while they are held. Whatever the link's speed, the race is the same."""
    driver, setpoints = await run.output_ready()
    tap = run.tap
    assert tap is not None
    family = run.family
    out = Outcome()
    trigger: list[WireEvent] = []
    stop_written: list[WireEvent] = []
    requested: list[tuple[float, asyncio.Future[None] | None]] = []
    stop_out = asyncio.Event()

    def on_stop(event: WireEvent) -> None:
        stop_written.append(event)
        tap.release()
        stop_out.set()

    def on_trigger(event: WireEvent) -> None:  # just before the update reaches the link
        trigger.append(event)
        tap.hold_incoming()
        tap.on_next_write(family.is_stop, on_stop)
        requested.append((run.now(), driver.request_stop()))

    tap.on_next_write(family.is_race_trigger, on_trigger, before=True)
    mark, t0 = run.log.mark(), run.now()
    update = asyncio.ensure_future(driver.apply(setpoints, UPDATE_LEASE_S))
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(stop_out.wait()), RACE_HOLD_S)
        if trigger and not stop_out.is_set():
            out.problems.append(f"no stop went on the wire while the update waited for its "
                                f"reply (held {RACE_HOLD_S:g} s by the check): the stop waited "
                                "behind the update")
    finally:
        tap.release()
        with contextlib.suppress(DriverStoppedError):  # the stop latched first: no output
            await update
        if not trigger:
            await driver.stop()
    if not trigger:
        out.problems.append("the update wrote nothing the stop could race with")
        return out
    t_request, future = requested[0]
    if future is not None:
        try:
            await future
        except DeviceError as exc:
            out.problems.append(f"the stop was not confirmed: {exc}")
    events = run.log.since(mark, run.session)
    stops = stop_written or [e for e in events if e.from_host and e.delivered
                             and e.index > trigger[0].index and family.is_stop(e.channel, e.data)]
    if not stops:
        out.problems.append("no stop went on the wire after the stop was requested")
        return out
    stop = stops[0]
    out.measurements["stop_to_wire_s"] = stop.t_s - t_request
    if stop.t_s - t_request > STOP_AT_ONCE_S[driver.simulated]:
        out.problems.append(f"the stop went on the wire {(stop.t_s - t_request) * 1000:.0f} ms "
                            "after it was requested, not at once: it waited behind the update")
    confirmed = [t.t_s for t in run.telemetry_since(t_request, run.session) if t.kind == "stopped"]
    if confirmed:
        out.measurements["stop_confirmed_s"] = confirmed[0] - t_request
    elif future is not None:
        out.problems.append("the driver did not report the stop confirmed ('stopped' telemetry)")
    between = [e for e in events if trigger[0].index < e.index < stop.index]
    if family.output_requested_until(between) is not None:
        out.problems.append("output was written after the stop was requested, before the stop")
    if family.output_requested_until([e for e in events if e.index > stop.index]) is not None:
        out.problems.append("output was written after the stop")
    recorder = run.recorder
    if recorder is not None:
        zero_at = recorder.zero_after_s(1, t0)
        if zero_at is None or zero_at > stop.t_s + family.emulated_settle_s:
            out.problems.append("(emulation) channel 1 was still delivering after the stop "
                                "reached the device")
        out.problems += run.emulated_peak_problems(setpoints[0].amplitude_ma)
    return out


async def _lease(run: CheckRun) -> Outcome:
    driver, setpoints = await run.output_ready()
    out = Outcome()
    mark, t0 = run.log.mark(), run.now()
    try:
        await driver.apply(setpoints, SHORT_LEASE_S)
        t1 = run.now()
        await asyncio.sleep(SHORT_LEASE_S + 0.5)  # no renewal: the lease runs out
    finally:
        events = run.log.since(mark, run.session)
        with contextlib.suppress(DeviceError):
            await driver.stop()
    until = run.family.output_requested_until(events)
    if until is None:
        out.problems.append("the update asked for no output")
        return out
    if math.isinf(until):
        out.problems.append(f"{SHORT_LEASE_S + 0.5:g} s after an update with a "
                            f"{SHORT_LEASE_S:g} s lease, the host still asked for output")
        return out
    # the driver may count its lease from when the update went out (after the acks it waits
    # for) rather than from the call: allow for that, plus timer lateness on a real clock
    slack = (t1 - t0) + (0.0 if driver.simulated else REAL_TIME_SLACK_S) + 0.03
    lease_end = t0 + SHORT_LEASE_S
    out.measurements["lease_to_off_s"] = until - lease_end
    if until > lease_end + slack:
        out.problems.append(f"the host asked for output until {until - t0:.3f} s after the "
                            f"update, past its {SHORT_LEASE_S:g} s lease")
    recorder = run.recorder
    if recorder is not None:
        zero_at = recorder.zero_after_s(1, t0)
        if zero_at is None or zero_at > until + run.family.emulated_settle_s:
            out.problems.append("(emulation) channel 1 kept delivering after the lease ended")
        out.problems += run.emulated_peak_problems(setpoints[0].amplitude_ma)
    return out


async def _device_watchdog(run: CheckRun) -> Outcome:
    return await run.family.device_watchdog(run)


async def _electrode(run: CheckRun) -> Outcome:
    family = run.family
    if not family.electrode_check:
        return Outcome.impossible(family.no_electrode_reason)
    driver, setpoints = await run.output_ready(electrode_step=True)
    out = Outcome()
    t0 = run.now()
    try:
        await driver.apply(setpoints, UPDATE_LEASE_S)
    except DeviceError as exc:
        if run.options.load != "open":
            out.problems.append(f"the update was refused: {exc}")
    await family.electrode_wait(run, driver, setpoints)
    with contextlib.suppress(DeviceError):
        await driver.stop()
    reports = [t for t in run.telemetry_since(t0, run.session) if family.is_electrode_report(t)]
    if run.options.load == "open":
        if not reports:
            out.problems.append("with the electrodes on nothing, the device reported no "
                                "electrode error")
        else:
            out.notes.append(f"reported: {reports[0].message}")
    elif reports:
        out.problems.append(f"the device reported an electrode error with the test load in "
                            f"place ({reports[0].message}); is a 500 Ω–1 kΩ resistor across "
                            "channel 1's outputs?")
    else:
        out.notes.append("no electrode error with the test load in place; run with --load open "
                         "and the electrodes on nothing to see the device report one")
    return out


async def _reconnect_refused(run: CheckRun) -> Outcome:
    driver = await run.ready()
    out = Outcome()
    await driver.stop()
    # the base class refuses output after a stop before the driver sees it; on a device whose
    # output cannot be held small, not even that refusal is tried
    if run.output_blocker() is None:
        setpoints = run.output_setpoints(driver)  # checked and warned for, to be refused
        mark = run.log.mark()
        try:
            await driver.apply(setpoints, UPDATE_LEASE_S)
            out.problems.append("after a stop, an update with output was accepted")
        except DriverStoppedError:
            pass
        if run.family.output_requested_until(run.log.since(mark)) is not None:
            out.problems.append("after a stop, output went on the wire")
    else:
        out.notes.append("output after a stop not tried: output is not possible here")
    await driver.close()
    mark = run.log.mark()
    try:
        await driver.connect()
        out.problems.append("a closed driver connected again; only a new session may")
    except DeviceError:
        pass
    if any(e.from_host for e in run.log.since(mark)):
        out.problems.append("a closed driver wrote to the device")
    run.broken = True
    try:
        await run.fresh()
    except DeviceError as exc:
        out.problems.append(f"a new session could not connect: {exc}")
    return out


async def _one_outstanding(run: CheckRun) -> Outcome:
    out = Outcome()
    out.problems += run.family.outstanding_problems(run.log.events, run)
    commands = sum(1 for e in run.log.events if e.from_host and e.delivered)
    out.measurements["host_writes"] = float(commands)
    return out


_CONTRACT = "docs/writing-a-driver.md"

STEPS: tuple[StepSpec, ...] = (
    StepSpec("handshake", "Connect and handshake", _handshake, (f"{_CONTRACT} §2",)),
    StepSpec("identity", "Device and firmware identity", _identity),
    StepSpec("update_ack", "An update and its acknowledgement", _update_ack),
    StepSpec("round_trip", "Round trip of a command", _round_trip),
    StepSpec("ack_timeout", "A missing acknowledgement times out", _ack_timeout),
    StepSpec("stop_race", "A stop wins the race with a pending update", _stop_race,
             (f"{_CONTRACT} §2, §4",)),
    StepSpec("lease", "Output ends when the lease is not renewed", _lease, (f"{_CONTRACT} §4",)),
    StepSpec("device_watchdog", "The device falls silent by itself", _device_watchdog,
             (f"{_CONTRACT} §1",), frozenset({"device_reset"})),
    StepSpec("electrode", "Electrode and error reports", _electrode, (f"{_CONTRACT} §5",),
             frozenset({"device_error"})),
    StepSpec("reconnect_refused", "No output again without a new session", _reconnect_refused,
             (f"{_CONTRACT} §1, §2",)),
    StepSpec("one_outstanding", "One command outstanding at a time", _one_outstanding),
)
