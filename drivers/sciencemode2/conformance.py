"""ScienceMode2's wire facts for the conformance steps (``emsctl check``, ``tests/conformance``).

What a host sees of a RehaStim2 and what it must see, from docs/protocols/sciencemode2.md: the
device announces itself with Init and the host answers with InitAck echoing its packet number,
then confirms mode 0 with a Stop (§5, §7); every command but Watchdog is acknowledged by
command + 1 with the same packet number (§4, §7 step 4); one command is outstanding at a time
(§6), the stop excepted (it never waits, §8); the device's watchdog ends output 1.2 s after the
host falls silent and it announces itself again (§5, §6); an open load is reported as
StimulationError −2 (§9).

Reads only bytes (through the tap), the driver's public state and its telemetry.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import ClassVar

from ...conformance import CheckRun, Exchange, Outcome
from ...contract import ChannelSetpoint, Driver, Telemetry
from ...errors import DeviceError
from ...wiretap import WireEvent
from ..sciencemode.family import ScienceModeFamily
from ..sciencemode.wire import FrameReader, FrameSplitter
from . import protocol as p
from .driver import ScienceModeDriver
from .messages import AckBase

__all__ = ["FAMILY", "FrameSplitter", "ScienceMode2Family"]

DOC = "docs/protocols/sciencemode2.md"
#: How long the host stays silent at most, waiting for the device's watchdog (1.2 s, §6).
WATCHDOG_WAIT_S = 5.0
_NOT_ACKED = {int(p.Command.WATCHDOG), int(p.Command.INIT_ACK)}
_STOP = int(p.Command.STOP_CHANNEL_LIST_MODE)


_WIRE: FrameReader[p.Frame, p.Message] = FrameReader(p.FrameDecoder, p.decode_frame)
_decode = _WIRE.decode
_command = _WIRE.command
_messages = _WIRE.messages


def _currents(message: p.Message | None) -> list[int]:
    if isinstance(message, p.StartChannelListMode):
        return [s.current_ma for s in message.channel_settings]
    return []


class ScienceMode2Family(ScienceModeFamily):
    """The Hasomed RehaStim2 in ScienceMode2."""

    name = "sciencemode2"
    title = "RehaStim2"
    document = DOC
    cites: ClassVar[dict[str, tuple[str, ...]]] = {
        "handshake": (f"{DOC} §5, §7",),
        "identity": (f"{DOC} §4",),
        "update_ack": (f"{DOC} §4, §7",),
        "round_trip": (f"{DOC} §6",),
        "ack_timeout": (f"{DOC} §7 step 4", f"{DOC} §8"),
        "stop_race": (f"{DOC} §8",),
        "lease": (f"{DOC} §12",),
        "device_watchdog": (f"{DOC} §5, §6",),
        "electrode": (f"{DOC} §9",),
        "reconnect_refused": (f"{DOC} §7 step 5",),
        "one_outstanding": (f"{DOC} §6", f"{DOC} §7 step 3"),
    }
    protocol = "ScienceMode2"
    driver_type = ScienceModeDriver
    wire = _WIRE
    stop_command = _STOP
    stop_name = "the Stop"
    stop_resend_cite = "§8"

    def describe(self, event: WireEvent) -> str:
        """The message in words: name, packet number, the fields that matter."""
        _frame, message, why = _decode(event.data)
        if message is None:
            return why
        name = type(message).__name__
        text = f"{name} pn {message.packet_number}"
        if isinstance(message, p.Init):
            text += f", protocol version {message.protocol_version}"
        elif isinstance(message, p.StartChannelListMode):
            text += ", " + ", ".join(f"{s.current_ma} mA {s.pulse_width_us} µs"
                                     for s in message.channel_settings)
        elif isinstance(message, p.InitChannelListMode):
            text += (f", channels {p.channels_in_mask(message.active_channel_mask)}, "
                     f"t1 code {message.main_interval_code}")
        elif isinstance(message, p.StimulationError):
            text += f", error {int(message.error)}"
        elif isinstance(message, p.GetStimulationModeAck):
            text += f", result {int(message.result)}, mode {message.mode}"
        result = getattr(message, "result", None)
        if result is not None and not isinstance(message, p.GetStimulationModeAck):
            text += f", result {int(result)}"
        return text

    def check_handshake(self, events: Sequence[WireEvent], driver: Driver) -> list[str]:
        """Init from the device; InitAck 0 echoing its packet number; Stop acknowledged 0."""
        problems = []
        device = _messages(events, host=False)
        host = _messages(events, host=True)
        inits = [(e, m) for e, _f, m in device if isinstance(m, p.Init)]
        if not inits:
            return [f"the device sent no Init ({DOC} §5)"]
        acks = [(e, m) for e, _f, m in host if isinstance(m, p.InitAck)]
        if not acks:
            problems.append(f"the host did not answer Init with InitAck ({DOC} §7 step 1)")
        else:
            ack_event, ack = acks[0]
            answered = [m for e, m in inits if e.index < ack_event.index]
            if not answered or ack.packet_number != answered[-1].packet_number:
                problems.append("the InitAck does not echo the packet number of the Init before "
                                f"it ({DOC} §7 step 1)")
            if ack.result != p.Result.OK:
                problems.append(f"the InitAck's result is {int(ack.result)}, not 0")
        stops = [(e, m) for e, _f, m in host if isinstance(m, p.StopChannelListMode)]
        if not stops:
            problems.append(f"the host did not confirm mode 0 with a Stop ({DOC} §7 step 2)")
        elif not any(isinstance(m, p.StopChannelListModeAck) and m.result == p.Result.OK
                     and m.packet_number == stops[0][1].packet_number for _e, _f, m in device):
            problems.append("the Stop of the handshake was not acknowledged with 0")
        bad = [e for e in events if not e.from_host and _decode(e.data)[0] is None]
        if bad:
            problems.append(f"{len(bad)} chunk(s) from the device were not valid frames "
                            f"({DOC} §3)")
        return problems

    def identify(self, events: Sequence[WireEvent],
                 driver: Driver) -> tuple[dict[str, str], list[str]]:
        """The protocol version from the device's Init; ScienceMode2 reports no firmware."""
        inits = [m for _e, _f, m in _messages(events, host=False) if isinstance(m, p.Init)]
        facts = {"firmware": "not reported (ScienceMode2 carries only a protocol version)"}
        if not inits:
            return facts, ["the device sent no Init, so its protocol version is unknown"]
        facts["protocol version"] = str(inits[-1].protocol_version)
        facts["device packet number at connect"] = str(inits[-1].packet_number)
        return facts, []

    async def probe_round_trips(self, run: CheckRun, driver: Driver) -> None:
        """Three Stops while idle (each re-arm sends one more), answered without output."""
        for _ in range(3):
            await driver.stop()
            await driver.connect()

    def exchanges(self, events: Sequence[WireEvent]) -> list[Exchange]:
        """Each command but Watchdog and InitAck, with its ack (command + 1, same packet
        number) or UnknownCommand."""
        out = []
        device = _messages(events, host=False)
        for event, frame, _message in _messages(events, host=True):
            if frame.command in _NOT_ACKED:
                continue
            reply = next((e for e, f, _m in device
                          if e.index > event.index and e.session == event.session
                          and f.packet_number == frame.packet_number
                          and f.command in (frame.command + 1, int(p.Command.UNKNOWN_COMMAND))),
                         None)
            label = f"{self.describe(event)}"
            out.append(Exchange(label, event, reply,
                                None if reply is None else reply.t_s - event.t_s))
        return out

    def update_problems(self, events: Sequence[WireEvent], telemetry: Sequence[Telemetry],
                        driver: Driver, setpoints: Sequence[ChannelSetpoint]) -> list[str]:
        """InitChannelListMode and a Start with channel 1's current, each acknowledged 0."""
        problems = []
        wanted_ma = int(setpoints[0].amplitude_ma)
        replies = {(e.session, f.command, f.packet_number): m
                   for e, f, m in _messages(events, host=False)}
        host = _messages(events, host=True)
        inits = [(e, m) for e, _f, m in host if isinstance(m, p.InitChannelListMode)]
        starts = [(e, m) for e, _f, m in host if isinstance(m, p.StartChannelListMode)]
        if not inits or not inits[0][1].active_channel_mask & 1:
            problems.append(f"no InitChannelListMode with channel 1 active ({DOC} §7 step 2)")
        if not starts or _currents(starts[0][1])[:1] != [wanted_ma]:
            problems.append(f"no Start with {wanted_ma} mA on channel 1 ({DOC} §4)")
        for event, message in [*inits[:1], *starts[:1]]:
            ack = replies.get((event.session, message.command + 1, message.packet_number))
            if not isinstance(ack, AckBase) or ack.result != p.Result.OK:
                problems.append(f"{type(message).__name__} pn {message.packet_number} was not "
                                f"acknowledged with 0 ({DOC} §7 step 4)")
        if any(c > wanted_ma for _e, m in starts for c in _currents(m)):
            problems.append("a Start asked for more current than the update")
        if not any(t.kind == "ack" for t in telemetry):
            problems.append("the driver reported no 'ack' telemetry for the update")
        return problems

    def is_race_trigger(self, channel: str, data: bytes) -> bool:
        """The update's InitChannelListMode (or a Start with current)."""
        _frame, message, _why = _decode(data)
        return isinstance(message, p.InitChannelListMode) or any(_currents(message))

    def is_stop(self, channel: str, data: bytes) -> bool:
        """StopChannelListMode."""
        return _command(data) == _STOP

    def output_requested_until(self, events: Sequence[WireEvent]) -> float | None:
        """From a Start with current until the next Stop or all-zero Start, or until the
        device says its output stopped (an Init: it reset; a StimulationError)."""
        on_since: float | None = None
        last_off: float | None = None
        for event, _frame, message in _messages(events):
            if not event.from_host:
                if on_since is not None and isinstance(message, p.Init | p.StimulationError):
                    on_since, last_off = None, event.t_s
                continue
            currents = _currents(message)
            if any(currents):
                on_since = event.t_s if on_since is None else on_since
            elif on_since is not None and (isinstance(message, p.StopChannelListMode)
                                           or currents):
                on_since, last_off = None, event.t_s
        return math.inf if on_since is not None else last_off

    async def device_watchdog(self, run: CheckRun) -> Outcome:
        """Fall silent until the device announces itself again (its watchdog fired, output
        off); then the driver must report the reset and refuse output without a new session.
        No current is asked for until that refusal, which sends nothing."""
        driver = await run.ready()
        tap = run.tap
        assert tap is not None
        out = Outcome()
        mark = run.log.mark()
        announced = asyncio.Event()

        def init_seen(_channel: str, data: bytes) -> bool:
            if _command(data) == int(p.Command.INIT):
                announced.set()
                return True
            return False

        silent_from = tap.last_delivered_write_s
        tap.mute(until=init_seen)
        if silent_from is None:
            silent_from = run.now()
        try:
            await asyncio.wait_for(announced.wait(), WATCHDOG_WAIT_S)
        except TimeoutError:
            tap.unmute()
            out.problems.append(f"the host was silent for {WATCHDOG_WAIT_S:g} s and the device "
                                f"did not announce itself again: its watchdog did not fire "
                                f"({DOC} §5, §6)")
            return out
        init = next(e for e in run.log.since(mark, run.session)
                    if not e.from_host and _command(e.data) == int(p.Command.INIT))
        out.measurements["device_timeout_s"] = init.t_s - silent_from
        await asyncio.sleep(0.1)  # the driver answers the Init
        if not any(t.kind == "device_reset" for t in run.telemetry_since(init.t_s, run.session)):
            out.problems.append(f"the driver did not report the device's reset ({DOC} §7 step 5)")
        if run.output_blocker() is None:
            setpoints = run.output_setpoints(driver)
            refused_mark = run.log.mark()
            try:
                await driver.apply(setpoints, 0.5)
                out.problems.append("after the device reset, the driver accepted output without "
                                    "a new session")
            except DeviceError:
                pass
            if self.output_requested_until(run.log.since(refused_mark)) is not None:
                out.problems.append("after the device reset, output went on the wire")
        return out

    def is_electrode_report(self, telemetry: Telemetry) -> bool:
        """StimulationError −2 (electrode error), reported as a device error."""
        return (telemetry.kind == "device_error"
                and telemetry.value == float(p.StimulationErrorCode.ELECTRODE_ERROR))

    def outstanding_problems(self, events: Sequence[WireEvent], run: CheckRun) -> list[str]:
        """A command (other than Stop) written while another was unanswered and not timed out."""
        probe = run.probe
        timeout_s = probe.ack_timeout_s if isinstance(probe, ScienceModeDriver) else 0.25
        problems: list[str] = []
        pending: dict[tuple[int, int], WireEvent] = {}
        session = -1
        for event, frame, _message in _messages(events):
            if event.session != session:
                session, pending = event.session, {}
            if not event.from_host:
                if frame.command == int(p.Command.INIT):
                    pending.clear()  # the device reset: it forgot everything
                elif frame.command == int(p.Command.UNKNOWN_COMMAND):
                    pending = {k: v for k, v in pending.items() if k[1] != frame.packet_number}
                else:
                    pending.pop((frame.command - 1, frame.packet_number), None)
                continue
            if frame.command in _NOT_ACKED:
                continue
            live = [e for e in pending.values() if event.t_s < e.t_s + timeout_s - 5e-3]
            if live and frame.command != _STOP:
                problems.append(f"{self.describe(event)} was written while "
                                f"{self.describe(live[0])} was unanswered ({DOC} §6)")
            pending[(frame.command, frame.packet_number)] = event
        return problems[:5]


FAMILY = ScienceMode2Family()
