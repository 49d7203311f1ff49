"""ScienceMode4's wire facts for the conformance steps (``emsctl check``, ``tests/conformance``).

What a host sees of a Hasomed P24 and what it must see, from docs/protocols/sciencemode4.md: the
device sends nothing unsolicited, every frame is a reply (§2); the host asks Get_stim_status,
stops a level a dead host left running, reads Get_device_id and Get_extended_version, then
Ml_init with "stop every channel on any error" (§10 steps 2–3); every command is acknowledged by
command + 1 with the same packet number, or refused with General_error / Unknown_cmd (§4, §10
step 5); one command is outstanding at a time (§9), the stop excepted (it never waits); an
unanswered Ml_stop is sent once more, then Get_stim_status (§10 step 6); mid level has a fixed
2 s timeout that only an accepted Ml_update or Ml_get_current_data renews and that sends
nothing when it ends (§9) — the host sees it by asking Get_stim_status, which renews nothing;
channel errors, the electrode error among them, are reported by Ml_get_current_data (§6, §9).

Reads only bytes (through the tap), the driver's public state and its telemetry; the device
watchdog step also sends Get_stim_status queries of its own through the tap
(:meth:`~emsctl.wiretap.ByteTap.send_own`), as a second host on the same port could.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Sequence
from typing import ClassVar

from ...conformance import REAL_TIME_SLACK_S, UPDATE_LEASE_S, CheckRun, Exchange, Outcome
from ...contract import ChannelSetpoint, Driver, Telemetry
from ...errors import DeviceError
from ...wiretap import ByteTap, WireEvent
from ..sciencemode.family import ScienceModeFamily
from ..sciencemode.wire import FrameReader
from ..sciencemode.wire import FrameSplitter as _FrameSplitter
from . import protocol as p
from .driver import ACK_TIMEOUT_S, DEVICE_TIMEOUT_S, ScienceMode4Driver

__all__ = ["FAMILY", "FrameSplitter", "ScienceMode4Family"]

DOC = "docs/protocols/sciencemode4.md"
#: How long the device watchdog step waits at most for the mid level to stop running.
WATCHDOG_WAIT_S = 5.0
#: How often the device watchdog step asks Get_stim_status while the host is silent.
PROBE_S = 0.05
#: On an emulation: how late after its 2 s the stopped mid level may be seen (one probe).
_EMULATED_WATCHDOG_SLACK_S = PROBE_S + 0.02
_STOP = int(p.Command.ML_STOP)
_REFUSALS = (int(p.Command.GENERAL_ERROR), int(p.Command.UNKNOWN_COMMAND))
#: Host commands that end mid-level output (an Ml_update with no channel does too).
_OFF_COMMANDS = (p.MlStop, p.MlInit, p.LlInit, p.LlStop, p.Reset, p.MlUpdate)


class FrameSplitter(_FrameSplitter):
    """Cuts received bytes into whole frames by §3's receiver rules (``81 x`` is one pair, header
    included; a bare ``0F`` ends a frame, a bare ``F0`` restarts one; 1200 bytes without a stop
    end a unit); bytes outside frames pass as they are."""

    max_len = p.MAX_FRAME_LEN


_WIRE: FrameReader[p.Frame, p.Message] = FrameReader(p.FrameDecoder, p.decode_frame)
_decode = _WIRE.decode
_command = _WIRE.command
_messages = _WIRE.messages


def _currents(message: p.Message | None) -> list[float]:
    """Every point's current (mA, signed) of an Ml_update; nothing for other messages."""
    if isinstance(message, p.MlUpdate):
        return [point.current_ma for config in message.enabled.values()
                for point in config.points]
    return []


def _result_text(result: int) -> str:
    try:
        return f"{int(result)} ({p.Result(result).name.lower().replace('_', ' ')})"
    except ValueError:
        return str(int(result))


def _version(version: tuple[int, int, int]) -> str:
    return ".".join(map(str, version))


def _replies(events: Sequence[WireEvent]) -> list[tuple[WireEvent, p.Frame, p.Message | None]]:
    return _messages(events, host=False)


def _answers(frame: p.Frame, reply: p.Frame) -> bool:
    """Whether ``reply`` answers the host's ``frame``: its ack (command + 1) or a refusal, with
    the same packet number (§4, §10 step 5)."""
    return (reply.packet_number == frame.packet_number
            and reply.command in (frame.command + 1, *_REFUSALS))


class ScienceMode4Family(ScienceModeFamily):
    """The Hasomed P24 in ScienceMode4 mid level."""

    name = "sciencemode4"
    title = "P24"
    document = DOC
    cites: ClassVar[dict[str, tuple[str, ...]]] = {
        "handshake": (f"{DOC} §5, §10 steps 1–3",),
        "identity": (f"{DOC} §5",),
        "update_ack": (f"{DOC} §6, §10 steps 3, 5",),
        "round_trip": (f"{DOC} §9, §10 step 5",),
        "ack_timeout": (f"{DOC} §10 step 6",),
        "stop_race": (f"{DOC} §9, §10 step 6",),
        "lease": (f"{DOC} §14",),
        "device_watchdog": (f"{DOC} §9, §13 item 13",),
        "electrode": (f"{DOC} §6, §9",),
        "reconnect_refused": (f"{DOC} §10 step 2",),
        "one_outstanding": (f"{DOC} §9",),
    }
    protocol = "ScienceMode4"
    driver_type = ScienceMode4Driver
    wire = _WIRE
    stop_command = _STOP
    stop_name = "Ml_stop"
    stop_resend_cite = "§10 step 6"
    splitter_type = FrameSplitter
    #: The host falls silent with output on: its lease stop cannot reach the device, so the
    #: driver gives up on it (a ``device_error``) and leaves the rest to the device's 2 s.
    provoked: ClassVar[dict[str, frozenset[str]]] = {"device_watchdog": frozenset({"device_error"})}

    def describe(self, event: WireEvent) -> str:
        """The message in words: name, packet number, the fields that matter."""
        _frame, message, why = _decode(event.data)
        if message is None:
            return why
        text = f"{type(message).__name__} pn {message.packet_number}"
        if isinstance(message, p.MlUpdate):
            blocks = [f"ch{ch} " + "/".join(f"{pt.current_ma:+g} mA {pt.duration_us} µs"
                                            for pt in c.points)
                      + f", period {c.period.period_ms:g} ms"
                      for ch, c in message.enabled.items()]
            text += ": " + ("; ".join(blocks) if blocks else "every channel off")
        elif isinstance(message, p.MlInit):
            text += ", stop all on error" if message.stop_all_on_error else ", stop one on error"
        if isinstance(message, p.AckBase):
            text += f", result {_result_text(message.result)}"
        if isinstance(message, p.GetStimStatusAck):
            text += (f", {message.stim_status.name.lower().replace('_', ' ')}, high voltage "
                     f"code {message.high_voltage}")
        elif isinstance(message, p.GetDeviceIdAck):
            text += f", id {message.text!r}"
        elif isinstance(message, p.GetExtendedVersionAck):
            text += (f", firmware {_version(message.firmware_version)}, ScienceMode "
                     f"{_version(message.sciencemode_version)}, hash "
                     f"{message.firmware_hash:08x}")
        elif isinstance(message, p.MlGetCurrentDataAck):
            active = p.channels_in_mask(message.active_mask)
            text += f", active {', '.join(map(str, active)) if active else 'none'}"
            errors = [f"ch{ch} {state.name.lower().replace('_', ' ')}"
                      for ch, state in enumerate(message.channel_states, 1)
                      if state != p.ChannelState.OK]
            if errors:
                text += ", " + ", ".join(errors)
        return text

    def check_handshake(self, events: Sequence[WireEvent], driver: Driver) -> list[str]:
        """Get_stim_status first; the level a dead host left stopped; Get_device_id and
        Get_extended_version; Ml_init with "stop every channel on any error"; each answered 0."""
        problems: list[str] = []
        host = _messages(events, host=True)
        replies = _replies(events)
        if not host or not isinstance(host[0][2], p.GetStimStatus):
            problems.append(f"the host did not begin with Get_stim_status ({DOC} §10 step 2)")

        def ack_of(event: WireEvent, frame: p.Frame) -> p.Message | None:
            return next((m for e, f, m in replies
                         if e.index > event.index and _answers(frame, f)), None)

        order: list[str] = []
        for event, frame, message in host:
            ack = ack_of(event, frame)
            name = type(message).__name__ if message is not None else f"command {frame.command}"
            order.append(name)
            if not isinstance(ack, p.AckBase):
                problems.append(f"{name} pn {frame.packet_number} was not answered "
                                f"({DOC} §10 step 5)")
            elif ack.command != frame.command + 1 or ack.result != p.Result.OK:
                problems.append(f"{name} pn {frame.packet_number} was answered "
                                f"{type(ack).__name__} with result {_result_text(ack.result)}")
            if isinstance(ack, p.GetStimStatusAck):
                needed = {p.StimStatus.LOW_LEVEL: "LlStop",
                          p.StimStatus.MID_LEVEL_INITIALISED: "MlStop",
                          p.StimStatus.MID_LEVEL_RUNNING: "MlStop"}.get(ack.stim_status)
                later = [type(m).__name__ for e, _f, m in host if e.index > event.index]
                if needed is not None and needed not in later[:1]:
                    problems.append(f"the device reported {ack.stim_status.name.lower()} and the "
                                    f"host did not send {needed} next ({DOC} §10 step 2)")
        for wanted in ("GetDeviceId", "GetExtendedVersion", "MlInit"):
            if wanted not in order:
                problems.append(f"the host sent no {wanted} ({DOC} §10 steps 2–3)")
        inits = [m for _e, _f, m in host if isinstance(m, p.MlInit)]
        if inits and not inits[0].stop_all_on_error:
            problems.append(f"Ml_init without \"stop every channel on any error\" ({DOC} §10 "
                            "step 3)")
        if "MlInit" in order and any(name in ("GetDeviceId", "GetExtendedVersion")
                                     for name in order[order.index("MlInit"):]):
            problems.append(f"the identity was read after Ml_init ({DOC} §10 steps 2–3)")
        bad = [e for e in events if not e.from_host and _decode(e.data)[1] is None]
        if bad:
            problems.append(f"{len(bad)} chunk(s) from the device were not valid frames "
                            f"({DOC} §3)")
        return problems

    def identify(self, events: Sequence[WireEvent],
                 driver: Driver) -> tuple[dict[str, str], list[str]]:
        """The device id and the versions, from the acks of the handshake."""
        facts: dict[str, str] = {}
        problems: list[str] = []
        replies = [m for _e, _f, m in _replies(events)]
        ident = next((m for m in replies if isinstance(m, p.GetDeviceIdAck)
                      and m.result == p.Result.OK), None)
        version = next((m for m in replies if isinstance(m, p.GetExtendedVersionAck)
                        and m.result == p.Result.OK), None)
        if ident is None:
            problems.append(f"the device did not answer Get_device_id ({DOC} §5)")
        else:
            facts["device id"] = ident.text
        if version is None:
            problems.append(f"the device did not answer Get_extended_version ({DOC} §5)")
        else:
            facts["firmware"] = _version(version.firmware_version)
            facts["ScienceMode version"] = _version(version.sciencemode_version)
            kind = version.hash_type.name.lower().replace("_", " ")
            facts["firmware hash"] = (f"{version.firmware_hash:08x} ({kind}, "
                                      f"{'valid' if version.hash_valid else 'not valid'})")
            if version.sciencemode_version[0] != 4:
                problems.append(f"the device reports ScienceMode "
                                f"{_version(version.sciencemode_version)}, not 4")
        return facts, problems

    async def probe_round_trips(self, run: CheckRun, driver: Driver) -> None:
        """Three stops and re-arms while idle: each re-arm is four commands, answered
        without output."""
        for _ in range(3):
            await driver.stop()
            await driver.connect()

    def exchanges(self, events: Sequence[WireEvent]) -> list[Exchange]:
        """Each command of the driver with its ack (command + 1, same packet number) or
        General_error / Unknown_cmd."""
        out = []
        replies = _replies(events)
        for event, frame, _message in _messages(events, host=True):
            if event.by_check:
                continue
            reply = next((e for e, f, _m in replies
                          if e.index > event.index and e.session == event.session
                          and _answers(frame, f)), None)
            out.append(Exchange(self.describe(event), event, reply,
                                None if reply is None else reply.t_s - event.t_s))
        return out

    def update_problems(self, events: Sequence[WireEvent], telemetry: Sequence[Telemetry],
                        driver: Driver, setpoints: Sequence[ChannelSetpoint]) -> list[str]:
        """One Ml_update with channel 1 alone at the update's current, balanced, at its rate,
        acknowledged 0; the driver's 'ack'."""
        problems = []
        wanted_ma = setpoints[0].amplitude_ma
        replies = {(e.session, f.command, f.packet_number): m for e, f, m in _replies(events)}
        updates = [(e, m) for e, _f, m in _messages(events, host=True)
                   if isinstance(m, p.MlUpdate) and m.enable_mask]
        if not updates:
            return [f"no Ml_update with a channel enabled ({DOC} §6)"]
        event, update = updates[0]
        blocks = update.enabled
        if list(blocks) != [1]:
            problems.append(f"the Ml_update enables channel(s) {', '.join(map(str, blocks))}, "
                            "not channel 1 alone")
        block = blocks.get(1)
        if block is not None:
            currents = [pt.current_ma for pt in block.points]
            if max(currents) != wanted_ma or min(currents) != -wanted_ma:
                problems.append(f"channel 1's pulse is {currents} mA, not ±{wanted_ma:g} mA "
                                f"({DOC} §14)")
            elif abs(sum(pt.current_ma * pt.duration_us for pt in block.points)) > 1e-9:
                problems.append(f"channel 1's pulse is not charge balanced ({DOC} §14)")
            period_ms = 1000.0 / setpoints[0].frequency_hz
            if abs(block.period.period_ms - period_ms) > 0.5:
                problems.append(f"channel 1's period is {block.period.period_ms:g} ms, not "
                                f"{period_ms:g} ms ({DOC} §14)")
        ack = replies.get((event.session, int(p.Command.ML_UPDATE_ACK), update.packet_number))
        if not isinstance(ack, p.MlUpdateAck) or ack.result != p.Result.OK:
            problems.append(f"Ml_update pn {update.packet_number} was not acknowledged with 0 "
                            f"({DOC} §6, §10 step 5)")
        if any(abs(c) > wanted_ma for _e, m in updates for c in _currents(m)):
            problems.append("an Ml_update asked for more current than the update")
        if not any(t.kind == "ack" for t in telemetry):
            problems.append("the driver reported no 'ack' telemetry for the update")
        return problems

    def is_race_trigger(self, channel: str, data: bytes) -> bool:
        """An Ml_update with a channel enabled."""
        _frame, message, _why = _decode(data)
        return isinstance(message, p.MlUpdate) and message.enable_mask != 0

    def is_stop(self, channel: str, data: bytes) -> bool:
        """Ml_stop."""
        return _command(data) == _STOP

    def output_requested_until(self, events: Sequence[WireEvent]) -> float | None:
        """From an Ml_update with a channel enabled until Ml_stop, an Ml_update with none, a
        re-init or Reset; or until the device says its output stopped (a refused update, a
        channel error in Ml_get_current_data, a stim status other than running)."""
        on_since: float | None = None
        last_off: float | None = None
        for event, _frame, message in _messages(events):
            if not event.from_host:
                stopped = (
                    (isinstance(message, p.MlUpdateAck | p.MlGetCurrentDataAck)
                     and message.result != p.Result.OK)
                    or (isinstance(message, p.MlGetCurrentDataAck) and not message.active_mask)
                    or (isinstance(message, p.GetStimStatusAck)
                        and message.result == p.Result.OK
                        and message.stim_status != p.StimStatus.MID_LEVEL_RUNNING))
                if on_since is not None and stopped:
                    on_since, last_off = None, event.t_s
                continue
            if isinstance(message, p.MlUpdate) and message.enable_mask:
                on_since = event.t_s if on_since is None else on_since
            elif on_since is not None and isinstance(message, _OFF_COMMANDS):
                on_since, last_off = None, event.t_s
        return math.inf if on_since is not None else last_off

    async def device_watchdog(self, run: CheckRun) -> Outcome:
        """Start channel 1 at its smallest step, then fall silent: no write of the driver
        reaches the device, its lease stop included (the driver gives up on it and leaves the
        rest to the device). The device sends nothing when its 2 s run out (§9), so the check
        asks Get_stim_status of its own, which renews nothing, until the mid level no longer
        runs. Then the driver must refuse output without a new session."""
        driver, setpoints = await run.output_ready()
        tap = run.tap
        assert isinstance(tap, ByteTap)
        out = Outcome()
        mark = run.log.mark()
        timeout_s = driver.ack_timeout_s if isinstance(driver, ScienceMode4Driver) else \
            ACK_TIMEOUT_S
        try:
            await driver.apply(setpoints, UPDATE_LEASE_S)
            silent_from = tap.last_delivered_write_s
            tap.mute()
            if silent_from is None:
                silent_from = run.now()
            pn = self._probe_packet_number(run.log.since(mark, run.session))
            first = await self._stim_status(run, tap, pn, timeout_s)
            if first is None:
                out.problems.append(f"the device did not answer Get_stim_status ({DOC} §5)")
                return out
            if first.stim_status != p.StimStatus.MID_LEVEL_RUNNING:
                out.problems.append(f"right after the update the device reported "
                                    f"{first.stim_status.name.lower()}, not mid level running "
                                    f"({DOC} §9)")
                return out
            stopped: WireEvent | None = None
            deadline = silent_from + WATCHDOG_WAIT_S
            await asyncio.sleep(max(0.0, silent_from + DEVICE_TIMEOUT_S - 0.2 - run.now()))
            while stopped is None and run.now() < deadline:
                status = await self._stim_status(run, tap, pn, timeout_s)
                if status is not None and status.stim_status != p.StimStatus.MID_LEVEL_RUNNING:
                    stopped = run.log.events[-1]
                    break
                await asyncio.sleep(PROBE_S)
            if stopped is None:
                out.problems.append(f"the host was silent for {WATCHDOG_WAIT_S:g} s and the "
                                    f"mid level still ran: the device's {DEVICE_TIMEOUT_S:g} s "
                                    f"timeout did not end it ({DOC} §9)")
                return out
            elapsed = stopped.t_s - silent_from
            out.measurements["device_timeout_s"] = elapsed
            slack = _EMULATED_WATCHDOG_SLACK_S if driver.simulated else \
                PROBE_S + REAL_TIME_SLACK_S
            if elapsed > DEVICE_TIMEOUT_S + slack:
                out.problems.append(f"the mid level ran {elapsed:.3f} s after the host fell "
                                    f"silent, longer than the device's {DEVICE_TIMEOUT_S:g} s "
                                    f"({DOC} §9)")
            recorder = run.recorder
            if recorder is not None:
                zero_at = recorder.zero_after_s(1, silent_from)
                if zero_at is None or zero_at > silent_from + DEVICE_TIMEOUT_S + \
                        self.emulated_settle_s:
                    out.problems.append("(emulation) channel 1 kept delivering past the "
                                        "device's timeout")
                out.problems += run.emulated_peak_problems(setpoints[0].amplitude_ma)
            refused_mark = run.log.mark()
            try:
                await driver.apply(setpoints, UPDATE_LEASE_S)
                out.problems.append("after the device stopped by itself, the driver accepted "
                                    "output without a new session")
            except DeviceError:
                pass
            tried = [m for e, _f, m in _messages(run.log.since(refused_mark), host=True,
                                                 delivered=False)
                     if not e.by_check and isinstance(m, p.MlUpdate) and m.enable_mask]
            if tried:
                out.problems.append("after the device stopped by itself, the driver tried to "
                                    "send output")
        finally:
            tap.unmute()
        return out

    @staticmethod
    def _probe_packet_number(events: Sequence[WireEvent]) -> int:
        """A packet number far from the driver's recent ones, so that no probe's reply can
        be taken for the answer to a command of the driver's."""
        numbers = [f.packet_number for _e, f, _m in _messages(events, host=True)]
        last = numbers[-1] if numbers else 0
        return (last + (p.MAX_PACKET_NUMBER + 1) // 2) % (p.MAX_PACKET_NUMBER + 1)

    @staticmethod
    async def _stim_status(run: CheckRun, tap: ByteTap, pn: int,
                           timeout_s: float) -> p.GetStimStatusAck | None:
        """Send Get_stim_status of the check's own; its ack, or None without one in time."""
        sent = await tap.send_own(p.encode_message(p.GetStimStatus(packet_number=pn)))
        deadline = run.now() + timeout_s
        while True:
            for event, frame, message in _replies(run.log.events[sent.index + 1:]):
                if (event.session == sent.session and isinstance(message, p.GetStimStatusAck)
                        and frame.packet_number == pn and message.result == p.Result.OK):
                    return message
            if run.now() >= deadline:
                return None
            await asyncio.sleep(0.005)

    async def electrode_wait(self, run: CheckRun, driver: Driver,
                             setpoints: Sequence[ChannelSetpoint]) -> None:
        """The P24 reports channel errors only when asked (Ml_get_current_data, §6): renew the
        update once, as a session does, and the driver asks."""
        await asyncio.sleep(0.1)
        with contextlib.suppress(DeviceError):
            await driver.apply(tuple(setpoints), UPDATE_LEASE_S)
        await asyncio.sleep(0.2)

    def outstanding_problems(self, events: Sequence[WireEvent], run: CheckRun) -> list[str]:
        """A command of the driver (other than Ml_stop) written while another was unanswered
        and not timed out."""
        probe = run.probe
        timeout_s = probe.ack_timeout_s if isinstance(probe, ScienceMode4Driver) else \
            ACK_TIMEOUT_S
        problems: list[str] = []
        pending: dict[tuple[int, int], WireEvent] = {}
        session = -1
        for event, frame, _message in _messages(events):
            if event.by_check:
                continue
            if event.session != session:
                session, pending = event.session, {}
            if not event.from_host:
                pending = {k: v for k, v in pending.items()
                           if not (k[1] == frame.packet_number
                                   and frame.command in (k[0] + 1, *_REFUSALS))}
                continue
            live = [e for e in pending.values() if event.t_s < e.t_s + timeout_s - 5e-3]
            if live and frame.command != _STOP:
                problems.append(f"{self.describe(event)} was written while "
                                f"{self.describe(live[0])} was unanswered ({DOC} §9)")
            pending[(frame.command, frame.packet_number)] = event
        return problems[:5]


FAMILY = ScienceMode4Family()
