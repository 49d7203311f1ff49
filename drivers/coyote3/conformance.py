"""Coyote V3's wire facts for the conformance steps (``emsctl check``, ``tests/conformance``).

What a host sees of a Coyote and what it must see, from docs/protocols/coyote3.md: on connect
the host reads the battery, writes BF and sets both strengths absolutely to 0 (§9); writes have
no acknowledgement, but a strength change made with a sequence number is answered by a B1 with
that number (§4, §6), one change in flight, 300 ms at most (§8); the stop is a set to 0/0 with
intensities 0 (§10); each B0 carries 100 ms of waveform and the device falls silent when none
follows (§7, §8) — which the host cannot see: the device reports nothing then, so only an
emulation's record can show it. The Coyote has no electrode check (§11).

Reads only what the tap saw (writes, notifications, reads), the driver's public state and its
telemetry.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Sequence
from typing import ClassVar

from ...conformance import CheckRun, Exchange, Family, Outcome, StepNotPossible
from ...contract import ChannelSetpoint, Driver, Telemetry
from ...errors import DeviceError, InputError, ProtocolError
from ...wiretap import GattTap, TapControls, WireEvent, WireLog
from .driver import CoyoteDriver
from .frames import (
    BATTERY_CHARACTERISTIC_UUID,
    HEAD_B0,
    HEAD_B1,
    HEAD_BF,
    SLOT_DURATION_MS,
    B0Frame,
    StrengthMode,
    StrengthReport,
)
from .protocol import decode_b0, decode_b1, decode_bf
from .strength import ACK_TIMEOUT_S

__all__ = ["FAMILY", "CoyoteFamily"]

DOC = "docs/protocols/coyote3.md"
_SLOT_S = SLOT_DURATION_MS / 1000.0
#: The device's own dead-man: a frame's waveform lasts 100 ms (§7, §8).
FRAME_S = 0.1


def _b0(event: WireEvent) -> B0Frame | None:
    if not event.from_host or event.data[:1] != bytes((HEAD_B0,)):
        return None
    try:
        return decode_b0(event.data)
    except ProtocolError:
        return None


def _b1(event: WireEvent) -> StrengthReport | None:
    if event.from_host or event.data[:1] != bytes((HEAD_B1,)):
        return None
    try:
        return decode_b1(event.data)
    except ProtocolError:
        return None


def _sets(frame: B0Frame) -> tuple[int | None, int | None]:
    """The absolute strengths a frame sets (None where it does not set one)."""
    return tuple(c.value_steps if c.mode is StrengthMode.SET else None  # type: ignore[return-value]
                 for c in (frame.change_a, frame.change_b))


def _is_stop_frame(frame: B0Frame) -> bool:
    quiet = all(not w.is_valid or not any(w.intensities) for w in (frame.waveform_a,
                                                                    frame.waveform_b))
    return _sets(frame) == (0, 0) and quiet


class CoyoteFamily(Family):
    """The DG-LAB Coyote V3 over BLE."""

    name = "coyote3"
    title = "Coyote V3"
    document = DOC
    cites: ClassVar[dict[str, tuple[str, ...]]] = {
        "handshake": (f"{DOC} §9",),
        "identity": (f"{DOC} §2",),
        "update_ack": (f"{DOC} §4, §6",),
        "round_trip": (f"{DOC} §6, §8",),
        "ack_timeout": (f"{DOC} §8",),
        "stop_race": (f"{DOC} §10",),
        "lease": (f"{DOC} §14",),
        "device_watchdog": (f"{DOC} §7, §8",),
        "electrode": (f"{DOC} §11",),
        "reconnect_refused": (f"{DOC} §10",),
        "one_outstanding": (f"{DOC} §8, §9",),
    }
    no_electrode_reason = f"the Coyote V3 has no electrode or impedance check ({DOC} §11)"
    update_settle_s = ACK_TIMEOUT_S + 0.05
    emulated_settle_s = 0.05
    round_trip_needs_output = True
    unanswered_reason = f"a set to the strength the device already has gets no B1, {DOC} §6"
    #: The driver ends a lease that ran out with output on as a fault, and says so.
    provoked: ClassVar[dict[str, frozenset[str]]] = {"lease": frozenset({"device_error"})}

    def install_tap(self, driver: Driver, log: WireLog, session: int) -> TapControls:
        """Wrap the driver's GATT link.

        Raises:
            InputError: not a Coyote driver.
        """
        if not isinstance(driver, CoyoteDriver):
            raise InputError(f"not a Coyote V3 driver: {type(driver).__name__}")
        tap = GattTap(driver.link, log, session)
        driver.link = tap
        return tap

    def describe(self, event: WireEvent) -> str:
        """B0, BF, B1 or the battery, in words."""
        if event.channel.startswith("read:"):
            if event.channel.endswith(BATTERY_CHARACTERISTIC_UUID) and event.data:
                return f"battery {event.data[0]} %"
            return "read"
        frame = _b0(event)
        if frame is not None:
            def channel(change: object, wave: object) -> str:
                c = frame.change_a if change == "a" else frame.change_b
                w = frame.waveform_a if wave == "a" else frame.waveform_b
                strength = ("keep" if c.mode is StrengthMode.KEEP
                            else f"{c.mode.name.lower()} {c.value_steps}")
                shape = (f"period code {w.frequency_codes[0]}, intensity "
                         f"{'/'.join(map(str, w.intensities))}" if w.is_valid else "silent")
                return f"{strength}, {shape}"
            return f"B0 seq {frame.sequence}: A {channel('a', 'a')}; B {channel('b', 'b')}"
        if event.from_host and event.data[:1] == bytes((HEAD_BF,)):
            try:
                bf = decode_bf(event.data)
            except ProtocolError as exc:
                return f"bad BF: {exc}"
            return (f"BF limits {bf.limit_a_steps}/{bf.limit_b_steps}, balances "
                    f"{bf.frequency_balance_a}/{bf.intensity_balance_a}")
        report = _b1(event)
        if report is not None:
            return (f"B1 seq {report.sequence}: A {report.strength_a_steps}, "
                    f"B {report.strength_b_steps}")
        return ""

    def check_handshake(self, events: Sequence[WireEvent], driver: Driver) -> list[str]:
        """Battery read, then BF, then a set to 0/0 with a sequence number (§9)."""
        problems = []
        writes = [e for e in events if e.from_host and e.delivered]
        if not any(e.channel.startswith("read:") for e in events):
            problems.append(f"the battery was not read on connect ({DOC} §9 step 1)")
        if not writes or writes[0].data[:1] != bytes((HEAD_BF,)):
            problems.append(f"BF was not the first write of the connect ({DOC} §9 step 2)")
        zeroing = [f for f in map(_b0, writes) if f is not None]
        if not zeroing or _sets(zeroing[0]) != (0, 0) or zeroing[0].sequence == 0:
            problems.append("the first B0 did not set both strengths to 0 with a sequence "
                            f"number ({DOC} §9 step 3)")
        elif not _is_stop_frame(zeroing[0]):
            problems.append("the first B0 carried a waveform before the strengths were known")
        return problems

    def identify(self, events: Sequence[WireEvent],
                 driver: Driver) -> tuple[dict[str, str], list[str]]:
        """The link (name or address) and the battery; the protocol reports no firmware."""
        facts = {"firmware": "not reported (the Coyote's BLE protocol has no version)"}
        if isinstance(driver, CoyoteDriver):
            facts["link"] = driver.link.description
            facts["ma per step (declared)"] = f"{driver.config.ma_per_step:g}"
        reads = [e for e in events if e.channel.startswith("read:") and e.data]
        if not reads:
            return facts, [f"no battery level was read ({DOC} §2)"]
        facts["battery"] = f"{reads[-1].data[0]} %"
        return facts, []

    async def probe_round_trips(self, run: CheckRun, driver: Driver) -> None:
        """Two changes to the smallest step and back: the device answers only changes (§6)."""
        setpoints = run.output_setpoints(driver)
        for _ in range(2):
            try:
                await driver.apply(setpoints, 0.5)
                await asyncio.sleep(ACK_TIMEOUT_S)
            finally:
                await driver.stop()
            await driver.connect()

    def exchanges(self, events: Sequence[WireEvent]) -> list[Exchange]:
        """Each new strength change (B0 with a sequence number) and the B1 with its number."""
        out = []
        changes: list[tuple[WireEvent, B0Frame]] = []
        for event in events:
            frame = _b0(event)
            if frame is None or not event.delivered or not frame.changes_strength \
                    or frame.sequence == 0:
                continue
            if changes and changes[-1][1].sequence == frame.sequence \
                    and changes[-1][0].session == event.session \
                    and _sets(changes[-1][1]) == _sets(frame):
                continue  # the same change repeated until confirmed
            changes.append((event, frame))
        for n, (event, frame) in enumerate(changes):
            # a later change that reuses the number (1–15 in rotation) ends the search
            end = next((e.index for e, f in changes[n + 1:] if f.sequence == frame.sequence),
                       None)
            reply = next((e for e in events if e.index > event.index
                          and (end is None or e.index < end)
                          and e.session == event.session and e.delivered
                          and (r := _b1(e)) is not None and r.sequence == frame.sequence), None)
            out.append(Exchange(self.describe(event), event, reply,
                                None if reply is None else reply.t_s - event.t_s))
        return out

    def update_problems(self, events: Sequence[WireEvent], telemetry: Sequence[Telemetry],
                        driver: Driver, setpoints: Sequence[ChannelSetpoint]) -> list[str]:
        """A set of channel A to the step with a waveform, and the B1 with its number."""
        if not isinstance(driver, CoyoteDriver):
            return ["not a Coyote V3 driver"]
        steps = driver.config.steps_for_ma(setpoints[0].amplitude_ma)
        sets = [(e, f) for e in events if (f := _b0(e)) is not None and _sets(f)[0] == steps
                and f.sequence > 0]
        if not sets:
            return [f"no B0 set channel A to {steps} step(s) with a sequence number ({DOC} §4)"]
        event, frame = sets[0]
        problems = []
        waves = [f for e in events if (f := _b0(e)) is not None and e.index >= event.index]
        if not any(f.waveform_a.is_valid and any(f.waveform_a.intensities) for f in waves):
            problems.append(f"no B0 carried a waveform for channel A ({DOC} §4)")
        if any((f.change_a.mode is StrengthMode.SET and f.change_a.value_steps > steps)
               for f in waves):
            problems.append("a B0 set a strength above the update's")
        replies = [r for e in events if e.index > event.index and (r := _b1(e)) is not None
                   and r.sequence == frame.sequence]
        if not replies:
            problems.append(f"no B1 with sequence {frame.sequence} answered the change "
                            f"({DOC} §6)")
        elif replies[0].strength_a_steps != steps:
            problems.append(f"the B1 reports {replies[0].strength_a_steps} step(s), not {steps}")
        return problems

    async def ack_timeout(self, run: CheckRun) -> Outcome:
        """Withhold the B1 of one change: the driver repeats the change, waits 300 ms, then
        takes it as applied (§8) without calling it a fault."""
        try:
            driver, setpoints = await run.output_ready()
        except StepNotPossible as exc:
            return Outcome.impossible(f"only a strength change is answered, and {exc.reason}")
        assert run.tap is not None
        out = Outcome()
        mark, t0 = run.log.mark(), run.now()
        run.tap.drop_next(lambda _c, data: data[:1] == bytes((HEAD_B1,)) and len(data) > 1
                          and data[1] != 0)
        try:
            await driver.apply(setpoints, 0.5)
            await asyncio.sleep(ACK_TIMEOUT_S + 0.15)
        finally:
            with contextlib.suppress(DeviceError):
                await driver.stop()
        events = run.log.since(mark, run.session)
        withheld = [e for e in events if not e.from_host and not e.delivered]
        frames = [(e, f) for e in events if (f := _b0(e)) is not None and e.delivered]
        changes = [(e, f) for e, f in frames if _sets(f)[0] not in (None, 0) and f.sequence]
        if not withheld or not changes:
            out.problems.append("no B1 answered the change, so none could be withheld")
            return out
        first, change = changes[0]
        after = [(e, f) for e, f in frames if e.index > first.index]
        gave_up = next((e for e, f in after if f.sequence != change.sequence
                        or _sets(f) != _sets(change)), None)
        if gave_up is None:
            out.problems.append("the driver kept waiting for the withheld B1 until the stop")
        else:
            waited = gave_up.t_s - first.t_s
            out.measurements["ack_timeout_s"] = waited
            if waited < ACK_TIMEOUT_S - 1e-3:
                out.problems.append(f"the driver moved on after {waited * 1000:.0f} ms, before "
                                    f"the {ACK_TIMEOUT_S * 1000:.0f} ms of {DOC} §8")
        faults = [t for t in run.telemetry_since(t0, run.session) if t.kind == "device_error"]
        if faults:
            out.problems.append(f"one withheld B1 was taken as a fault: {faults[0].message}")
        return out

    def is_race_trigger(self, channel: str, data: bytes) -> bool:
        """The B0 that sets channel A above 0."""
        if data[:1] != bytes((HEAD_B0,)):
            return False
        try:
            frame = decode_b0(data)
        except ProtocolError:
            return False
        return (_sets(frame)[0] or 0) > 0

    def is_stop(self, channel: str, data: bytes) -> bool:
        """A set to 0/0 with intensities 0 (§10 step 1)."""
        if data[:1] != bytes((HEAD_B0,)):
            return False
        try:
            return _is_stop_frame(decode_b0(data))
        except ProtocolError:
            return False

    def output_requested_until(self, events: Sequence[WireEvent]) -> float | None:
        """The end of the last slot with a strength above 0 and an intensity above 0."""
        strength: list[int | None] = [None, None]  # None: unknown, so possibly above 0
        until: float | None = None
        for event in events:
            frame = _b0(event)
            if frame is None or not event.delivered:
                continue
            for i, (change, wave) in enumerate(((frame.change_a, frame.waveform_a),
                                                (frame.change_b, frame.waveform_b))):
                if change.mode is StrengthMode.SET:
                    strength[i] = change.value_steps if change.value_steps <= 200 else 0
                elif change.mode is not StrengthMode.KEEP:
                    strength[i] = None
                if strength[i] == 0 or not wave.is_valid:
                    continue
                slots = [k for k, level in enumerate(wave.intensities) if level > 0]
                if slots:
                    end = event.t_s + (slots[-1] + 1) * _SLOT_S
                    until = end if until is None else max(until, end)
        return until

    async def device_watchdog(self, run: CheckRun) -> Outcome:
        """With channel A at its smallest step, fall silent; the emulation's record must show
        the output end within a frame (100 ms) of the last B0. On hardware nothing shows it."""
        if run.probe.recorder is None:  # a real device: nothing records its output
            return Outcome.impossible(
                f"the Coyote reports nothing when its output stops, so the host cannot see its "
                f"100 ms frame expiry ({DOC} §7, §11); an emulation's record shows it")
        driver, setpoints = await run.output_ready()
        tap = run.tap
        assert tap is not None
        out = Outcome()
        recorder = run.recorder
        try:
            await driver.apply(setpoints, 0.5)
            await asyncio.sleep(0.15)
            if recorder.delivered_now_ma(1) <= 0:
                out.problems.append("(emulation) channel 1 delivered nothing before the host "
                                    "fell silent")
            last_s = tap.last_delivered_write_s or run.now()
            tap.mute()
            await asyncio.sleep(0.3)
        finally:
            tap.unmute()
            future = driver.request_stop()  # at once: the stream writes nothing in between
            if future is not None:
                with contextlib.suppress(DeviceError):
                    await future
        zero_at = recorder.zero_after_s(1, last_s)
        if zero_at is None:
            out.problems.append("(emulation) channel 1 never stopped while the host was silent")
        else:
            out.measurements["device_timeout_s"] = zero_at - last_s
            if zero_at > last_s + FRAME_S + self.emulated_settle_s:
                out.problems.append(f"(emulation) channel 1 went on {zero_at - last_s:.3f} s "
                                    f"after the last B0, longer than a frame ({DOC} §8)")
        return out

    def outstanding_problems(self, events: Sequence[WireEvent], run: CheckRun) -> list[str]:
        """A new strength change while an increase was unconfirmed and not timed out (a
        decrease, the stop among them, never waits)."""
        problems = []
        exchanges = self.exchanges(events)
        for previous, change in itertools.pairwise(exchanges):
            if previous.sent.session != change.sent.session:
                continue
            answered_at = previous.reply.t_s if previous.reply is not None else None
            open_until = previous.sent.t_s + ACK_TIMEOUT_S - 1e-3
            if answered_at is not None:
                open_until = min(open_until, answered_at)
            if change.sent.t_s >= open_until:
                continue
            before, after = _b0(previous.sent), _b0(change.sent)
            assert before is not None and after is not None
            if all((a or 0) <= (b or 0) for a, b in zip(_sets(after), _sets(before), strict=True)):
                continue  # a decrease never waits behind an unconfirmed increase
            problems.append(f"{change.label} was sent while {previous.label} was unconfirmed "
                            f"({DOC} §8)")
        return problems[:5]


FAMILY = CoyoteFamily()
