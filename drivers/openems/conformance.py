"""openEMSstim's wire facts for the conformance steps (``emsctl check``, ``tests/conformance``).

What a host sees of an openEMSstim and what it must see, from docs/protocols/openemsstim.md: the
board passes a separate stimulator's output through, attenuated, so its output cannot be held at
a small minimum and only the steps that need no output run (§9, §12). On serial the board boots
when the port opens and prints its setup banner (§2, §7); the host then shuts every channel down
with ``C9G`` in WV form (§3, §8). The board acknowledges nothing (§3); with its debug output on
it echoes each command it executed, which gives a round trip on serial (§7), and on BLE each
write request completes with the link's response, within 500 ms (§7). Commands go out at least
50 ms apart (§6); the stop does not wait for that.

Reads only what the tap saw, the driver's public state and its telemetry.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import ClassVar

from ...conformance import CheckRun, Exchange, Family, Outcome
from ...contract import Driver
from ...errors import DeviceError, DeviceTimeoutError, InputError, ProtocolError
from ...wiretap import ByteTap, GattTap, TapControls, WireEvent, WireLog
from .diagnostics import DebugKind, parse_debug_line
from .driver import LINE_SPACING_S, OpenEmsDriver
from .lines import decode_wv_line
from .protocol import ActionCommand, HostCommand, ParsedAction, ShutdownCommand, parse_command
from .transport import BLE_WRITE_TIMEOUT_S, BleLines, SerialLines

__all__ = ["FAMILY", "LineSplitter", "OpenEmsFamily"]

DOC = "docs/protocols/openemsstim.md"
#: Time for the board to work through a shutdown (2 × 50 ms, §5) and print its echo.
_ECHO_WAIT_S = 0.3


class LineSplitter:
    """Cuts the board's output into whole lines (``\\n``-terminated); keeps a partial one."""

    def __init__(self) -> None:
        self._partial = b""

    def feed(self, data: bytes) -> list[bytes]:
        """The lines ``data`` completes, each with its line end."""
        text = self._partial + data
        *lines, self._partial = text.split(b"\n")
        return [line + b"\n" for line in lines]


def _command(event: WireEvent) -> HostCommand | None:
    """The host command a write carries (WV line on serial, plain value on BLE)."""
    return _command_in(event.data) if event.from_host else None


def _command_in(data: bytes) -> HostCommand | None:
    try:
        plain = decode_wv_line(data.strip()) if data.startswith(b"WV") else data
    except ProtocolError:
        return None
    parsed = parse_command(plain)
    if not isinstance(parsed, ParsedAction):
        return None
    try:
        return parsed.to_command()
    except ProtocolError:
        return None


def _plain(command: HostCommand) -> bytes:
    if isinstance(command, ShutdownCommand):
        return b"C9G"
    return f"C{command.channel}I{command.intensity_pct}T{command.on_time_ms}G".encode("ascii")


def _echo(event: WireEvent) -> bytes | None:
    if event.from_host:
        return None
    line = parse_debug_line(event.data)
    if line is None or line.kind is not DebugKind.HEX_ECHO:
        return None
    return line.payload


def _serial(driver: Driver) -> bool:
    return isinstance(driver, OpenEmsDriver) and isinstance(driver.link, SerialLines)


class OpenEmsFamily(Family):
    """The openEMSstim board over USB serial or BLE (RN4020)."""

    name = "openems"
    title = "openEMSstim"
    document = DOC
    cites: ClassVar[dict[str, tuple[str, ...]]] = {
        "handshake": (f"{DOC} §2, §7, §8",),
        "identity": (f"{DOC} §2",),
        "update_ack": (f"{DOC} §9, §12",),
        "round_trip": (f"{DOC} §7",),
        "ack_timeout": (f"{DOC} §3, §7",),
        "stop_race": (f"{DOC} §8",),
        "lease": (f"{DOC} §5, §12",),
        "device_watchdog": (f"{DOC} §5, §6",),
        "electrode": (f"{DOC} §9",),
        "reconnect_refused": (f"{DOC} §7",),
        "one_outstanding": (f"{DOC} §6, §7",),
    }
    no_electrode_reason = f"the openEMSstim reports nothing, electrodes included ({DOC} §9)"
    unanswered_reason = (f"shutdowns sent back to back (a stop, then the next connect's) can "
                         f"overflow the board's 64-byte buffer, {DOC} §6")

    def install_tap(self, driver: Driver, log: WireLog, session: int) -> TapControls:
        """Wrap the byte link under the serial lines, or the GATT link under the BLE writes.

        Raises:
            InputError: not an openEMSstim driver.
        """
        if not isinstance(driver, OpenEmsDriver):
            raise InputError(f"not an openEMSstim driver: {type(driver).__name__}")
        lines = driver.link
        if isinstance(lines, SerialLines):
            byte_tap = ByteTap(lines.link, log, session, LineSplitter())
            lines.link = byte_tap
            return byte_tap
        if isinstance(lines, BleLines):
            gatt_tap = GattTap(lines.link, log, session)
            lines.link = gatt_tap
            return gatt_tap
        raise InputError(f"openEMSstim over {type(lines).__name__} cannot be tapped")

    def describe(self, event: WireEvent) -> str:
        """The command (decoded from its WV form) or the board's line."""
        command = _command(event)
        if command is not None:
            return _plain(command).decode("ascii")
        if event.from_host:
            return event.data.strip().decode("ascii", "replace")
        line = parse_debug_line(event.data)
        return "" if line is None else line.text.decode("ascii", "replace")

    def output_blocker(self, driver: Driver) -> str | None:
        """Always: the board attenuates another stimulator's output."""
        return (f"the openEMSstim passes an external stimulator's output through, so its output "
                f"cannot be held at a small minimum ({DOC} §9, §12)")

    def check_handshake(self, events: Sequence[WireEvent], driver: Driver) -> list[str]:
        """The banner before the first command (serial, with debug on); C9G first (§8)."""
        problems = []
        writes = [e for e in events if e.from_host and e.delivered]
        if not writes or not isinstance(_command(writes[0]), ShutdownCommand):
            problems.append(f"the first command was not the shutdown C9G ({DOC} §8 step 3)")
        elif _serial(driver):
            if writes[0].data != b"WV,0018,433947.\n":
                problems.append(f"C9G was not sent in the WV form ({DOC} §3)")
            banner = [e for e in events if not e.from_host
                      and (line := parse_debug_line(e.data)) is not None
                      and line.kind is DebugKind.SETUP_DONE]
            printed = [e for e in events if not e.from_host]
            if printed and (not banner or banner[0].index > writes[0].index):
                problems.append(f"a command went out before the setup banner ({DOC} §7)")
        elif not writes[0].duration_s and writes[0].duration_s != 0.0:
            problems.append(f"the BLE write did not complete ({DOC} §7)")
        return problems

    def identify(self, events: Sequence[WireEvent],
                 driver: Driver) -> tuple[dict[str, str], list[str]]:
        """The link, the setup lines printed on serial; the board reports no firmware."""
        facts = {"firmware": "not reported (the board prints only its setup lines)"}
        if isinstance(driver, OpenEmsDriver):
            facts["link"] = driver.link.description
            declared = driver.declared
            facts["external stimulator (declared)"] = (
                f"{declared.frequency_hz:g} Hz, {declared.pulse_width_us:g} µs, "
                f"{declared.ma_at_100:g} mA at I = 100")
        if _serial(driver):
            lines = [line.text.decode("ascii", "replace") for e in events if not e.from_host
                     and (line := parse_debug_line(e.data)) is not None
                     and line.kind in (DebugKind.OTHER, DebugKind.SETUP_DONE)]
            facts["debug output"] = "on" if lines else "off (nothing printed)"
            if lines:
                facts["setup lines"] = " | ".join(lines[:6])
        return facts, []

    async def probe_round_trips(self, run: CheckRun, driver: Driver) -> None:
        """Two stops while idle and their re-arms: each writes C9G, which needs no output."""
        for _ in range(2):
            await driver.stop()
            await asyncio.sleep(_ECHO_WAIT_S)
            await driver.connect()
            await asyncio.sleep(_ECHO_WAIT_S)

    def no_round_trip_reason(self, run: CheckRun) -> str | None:
        """On serial with the debug output off, nothing ever comes back."""
        if _serial(run.probe) and not any(not e.from_host for e in run.log.events):
            return (f"the board acknowledges nothing and, with its debug output off, prints "
                    f"nothing ({DOC} §2, §3)")
        return None

    def exchanges(self, events: Sequence[WireEvent]) -> list[Exchange]:
        """Serial: each command and the board's echo of it. BLE: each write request and its
        completion (the link's response)."""
        out = []
        used: set[int] = set()  # the board executes lines in order: echoes pair up in order
        for event in events:
            command = _command(event)
            if command is None or not event.delivered:
                continue
            if event.channel:  # BLE: the write response is the only reply
                out.append(Exchange(self.describe(event), event, None, event.duration_s))
                continue
            plain = _plain(command)
            reply = next((e for e in events if e.index > event.index and e.index not in used
                          and e.session == event.session and _echo(e) == plain), None)
            if reply is not None:
                used.add(reply.index)
            out.append(Exchange(plain.decode("ascii"), event, reply,
                                None if reply is None else reply.t_s - event.t_s))
        return out

    async def ack_timeout(self, run: CheckRun) -> Outcome:
        """BLE: hold one write's response; the driver must give up after 500 ms. Serial: the
        board acknowledges nothing."""
        if _serial(run.probe):
            return Outcome.impossible(f"the board acknowledges nothing on serial ({DOC} §3, §7)")
        driver = await run.ready()
        assert run.tap is not None
        out = Outcome()
        run.tap.hang_next_write()
        t0 = run.now()
        try:
            await driver.stop()
            out.problems.append("a write whose response never came was taken as done")
        except DeviceTimeoutError:
            waited = run.now() - t0
            out.measurements["ack_timeout_s"] = waited
            if waited < BLE_WRITE_TIMEOUT_S - 1e-3:
                out.problems.append(f"the driver gave up after {waited * 1000:.0f} ms, before "
                                    f"the {BLE_WRITE_TIMEOUT_S * 1000:.0f} ms of {DOC} §7")
        except DeviceError as exc:
            out.problems.append(f"the held write ended with an unexpected error: {exc}")
        return out

    def is_stop(self, channel: str, data: bytes) -> bool:
        """C9G, or the stop idiom C<ch>I0T0G."""
        command = _command_in(data)
        return isinstance(command, ShutdownCommand) or (
            isinstance(command, ActionCommand) and command.on_time_ms == 0)

    def output_requested_until(self, events: Sequence[WireEvent]) -> float | None:
        """From an action with I ≥ 1 until its on-time ends or a stop comes."""
        until = [-math.inf, -math.inf]
        asked = False
        for event in events:
            command = _command(event)
            if command is None or not event.delivered:
                continue
            if isinstance(command, ShutdownCommand):
                until = [min(u, event.t_s) for u in until]
            elif command.on_time_ms == 0:
                until[command.channel] = min(until[command.channel], event.t_s)
            elif command.intensity_pct >= 1:
                asked = True
                until[command.channel] = event.t_s + command.on_time_ms / 1000
        return max(until) if asked else None

    def outstanding_problems(self, events: Sequence[WireEvent], run: CheckRun) -> list[str]:
        """Serial: an action with output less than 50 ms after the previous command. BLE: a
        write that began before the previous one completed."""
        problems = []
        previous: WireEvent | None = None
        for event in events:
            command = _command(event)
            if command is None or not event.delivered:
                continue
            if previous is not None and previous.session == event.session:
                gap = event.t_s - previous.t_s
                if event.channel and previous.duration_s is not None \
                        and gap < previous.duration_s - 1e-9:
                    problems.append(f"{self.describe(event)} was written before "
                                    f"{self.describe(previous)} completed ({DOC} §7)")
                elif isinstance(command, ActionCommand) and command.intensity_pct >= 1 \
                        and gap < LINE_SPACING_S - 1e-6:
                    problems.append(f"{self.describe(event)} followed {self.describe(previous)} "
                                    f"after {gap * 1000:.0f} ms, under {DOC} §6's 50 ms")
            previous = event
        return problems[:5]


FAMILY = OpenEmsFamily()
