"""A tap on a driver's link: every byte the host writes and receives, with the loop's time.

``emsctl check`` and the conformance suite observe a device only as a host can on real
hardware: the bytes on the link, their timing, the driver's telemetry. :class:`ByteTap` (serial
ports, ptys, in-memory pipes) and :class:`GattTap` (BLE) wrap the link a driver was given and
implement the same link protocol (``emsctl.drivers.links.base``, matched structurally: the core
never imports a driver), so the driver's code runs unchanged. Every chunk is recorded in a
:class:`WireLog` as a :class:`WireEvent`.

A tap can also do, on the host's side of the link, what a host can always do: fall silent
(:meth:`TapControls.mute`, the device sees nothing more), not hand one reply on to the driver
(:meth:`TapControls.drop_next`), hand replies on only later (:meth:`TapControls.hold_incoming`),
hold one write's completion (:meth:`TapControls.hang_next_write`), and, on a byte link, ask the
device something of its own (:meth:`ByteTap.send_own`, e.g. a status query while the driver is
muted). What was withheld or sent by the check is logged with a note, so a report shows it.

Received bytes can be re-chunked by a family's splitter into whole frames or lines, so a reply
can be recognised and dropped whole even when a serial port delivers it in pieces. The driver
still sees every byte, in order.

Reads time only from the running loop (virtual under the simulator's clock).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["DEVICE_TO_HOST", "HOST_TO_DEVICE", "SENT_BY_CHECK", "ByteTap", "GattTap", "Splitter",
           "TapControls", "WireEvent", "WireLog"]

HOST_TO_DEVICE = "host→device"
DEVICE_TO_HOST = "device→host"
#: The note on bytes the check sent itself (:meth:`ByteTap.send_own`).
SENT_BY_CHECK = "sent by the check"

ReceiveHandler = Callable[[bytes], None]
NotifyHandler = Callable[[str, bytes], None]
LostHandler = Callable[[str], None]
#: (characteristic or "", bytes) → whether the tap acts on it
Match = Callable[[str, bytes], bool]


@dataclass(slots=True)
class WireEvent:
    """One chunk on the link.

    Attributes:
        index: position in the log.
        session: which opened driver (0, 1, …) it belongs to.
        t_s: the loop's time when the tap saw it.
        direction: :data:`HOST_TO_DEVICE` or :data:`DEVICE_TO_HOST`.
        data: the bytes (a BLE value, a serial chunk, a whole frame or line after splitting).
        channel: the BLE characteristic, "read: <uuid>" for a read, "" on a byte link.
        note: what the tap did with it ("" when it passed untouched).
        duration_s: for a write, how long the link took to complete it (a BLE write
            response); None while it is pending or on byte links.
    """

    index: int
    session: int
    t_s: float
    direction: str
    data: bytes
    channel: str = ""
    note: str = ""
    duration_s: float | None = None

    @property
    def delivered(self) -> bool:
        """False when the tap withheld it (muted write, dropped reply)."""
        return not self.note.startswith(("muted", "dropped"))

    @property
    def from_host(self) -> bool:
        """True for what the host wrote."""
        return self.direction == HOST_TO_DEVICE

    @property
    def by_check(self) -> bool:
        """True for bytes the check itself sent (:meth:`ByteTap.send_own`), not the driver."""
        return self.note.startswith(SENT_BY_CHECK)


class WireLog:
    """Every :class:`WireEvent` of a check, in the order the tap saw them."""

    def __init__(self) -> None:
        self.events: list[WireEvent] = []

    def add(self, session: int, direction: str, data: bytes, channel: str = "",
            note: str = "") -> WireEvent:
        """Record one chunk now."""
        event = WireEvent(len(self.events), session, asyncio.get_running_loop().time(),
                          direction, bytes(data), channel, note)
        self.events.append(event)
        return event

    def mark(self) -> int:
        """An index to slice from: the events after this moment are ``since(mark)``."""
        return len(self.events)

    def since(self, mark: int, session: int | None = None) -> list[WireEvent]:
        """The events from ``mark`` on (of one session, when given)."""
        return [e for e in self.events[mark:] if session is None or e.session == session]


class Splitter(Protocol):
    """Re-chunks received bytes into whole units (frames, lines); keeps partial ones."""

    def feed(self, data: bytes) -> list[bytes]:
        """The units ``data`` completes, in order (bytes outside any unit pass as they are)."""
        ...


class TapControls:
    """What a check can do on the host's side of the link, and the log it writes.

    Args:
        log: where every chunk goes.
        session: the session number stamped on this tap's events.
    """

    def __init__(self, log: WireLog, session: int) -> None:
        self.log = log
        self.session = session
        self.muted = False
        self._unmute_on: Match | None = None
        self._drop: Match | None = None
        self._hang_next = False
        self._holding = False
        self._held: list[Callable[[], None]] = []
        self._write_hooks: list[tuple[Match, Callable[[WireEvent], None], bool]] = []
        #: When the last write that reached the device was made (None: none yet).
        self.last_delivered_write_s: float | None = None

    def mute(self, until: Match | None = None) -> None:
        """Deliver no more host writes to the device, until :meth:`unmute` or until a
        received unit matches ``until`` (checked before it reaches the driver)."""
        self.muted = True
        self._unmute_on = until

    def unmute(self) -> None:
        """Deliver host writes again."""
        self.muted = False
        self._unmute_on = None

    def drop_next(self, match: Match) -> None:
        """Do not hand the next received unit that ``match``es on to the driver (once)."""
        self._drop = match

    def hang_next_write(self) -> None:
        """Let the next write reach the device, but never report it complete (once)."""
        self._hang_next = True

    def hold_incoming(self) -> None:
        """Keep received units from the driver (logged as they arrive) until :meth:`release`."""
        self._holding = True

    def release(self) -> None:
        """Hand the held units on to the driver, in order, and stop holding."""
        self._holding = False
        held, self._held = self._held, []
        for deliver in held:
            deliver()

    def reset(self) -> None:
        """Undo every withholding and forget pending hooks (between two steps)."""
        self.unmute()
        self.release()
        self._drop = None
        self._hang_next = False
        self._write_hooks.clear()

    def on_next_write(self, match: Match, callback: Callable[[WireEvent], None], *,
                      before: bool = False) -> None:
        """Call ``callback`` with the event of the next host write that ``match``es (once):
        right after it has been handed to the link, or, with ``before``, just before."""
        self._write_hooks.append((match, callback, before))

    # ------------------------------------------------------------------ for the taps

    def _outgoing(self, channel: str, data: bytes) -> WireEvent:
        note = "muted by the check: not sent" if self.muted else ""
        event = self.log.add(self.session, HOST_TO_DEVICE, data, channel, note)
        if not self.muted:
            self.last_delivered_write_s = event.t_s
        return event

    def _written(self, event: WireEvent, channel: str, *, before: bool) -> None:
        for hook in list(self._write_hooks):
            match, callback, hook_before = hook
            if hook_before == before and event.delivered and match(channel, event.data):
                self._write_hooks.remove(hook)
                callback(event)

    def _incoming(self, channel: str, data: bytes, deliver: Callable[[], None]) -> None:
        """Record a received unit and hand it on (``deliver``) unless it is withheld."""
        if self._unmute_on is not None and self._unmute_on(channel, data):
            self.unmute()
        if self._drop is not None and self._drop(channel, data):
            self._drop = None
            self.log.add(self.session, DEVICE_TO_HOST, data, channel,
                         "dropped by the check: not delivered to the driver")
            return
        if self._holding:
            self.log.add(self.session, DEVICE_TO_HOST, data, channel,
                         "held by the check, delivered later")
            self._held.append(deliver)
            return
        self.log.add(self.session, DEVICE_TO_HOST, data, channel)
        deliver()

    def _take_hang(self) -> bool:
        hang, self._hang_next = self._hang_next, False
        return hang


class _ByteLink(Protocol):
    description: str

    async def open(self) -> None: ...

    async def write(self, data: bytes) -> None: ...

    def discard_unsent(self) -> int: ...

    def on_receive(self, handler: ReceiveHandler) -> None: ...

    def on_lost(self, handler: LostHandler) -> None: ...

    async def close(self) -> None: ...


class ByteTap(TapControls):
    """A byte link (serial, pty, in-memory pipe) with every chunk logged.

    Args:
        inner: the link the driver was given.
        log: the check's wire log.
        session: the session number.
        splitter: re-chunks received bytes into whole units (None: chunks as they come).
    """

    def __init__(self, inner: _ByteLink, log: WireLog, session: int,
                 splitter: Splitter | None = None) -> None:
        super().__init__(log, session)
        self.inner = inner
        self.description = inner.description
        self._splitter = splitter
        self._handler: ReceiveHandler | None = None

    async def open(self) -> None:
        """Open the inner link, receiving through the tap."""
        self.inner.on_receive(self._received)
        await self.inner.open()

    async def write(self, data: bytes) -> None:
        """Log ``data``; pass it on unless muted."""
        event = self._outgoing("", data)
        if event.delivered:
            self._written(event, "", before=True)
            await self.inner.write(data)
            self._written(event, "", before=False)
        if self._take_hang():
            await asyncio.Event().wait()

    async def send_own(self, data: bytes) -> WireEvent:
        """Write bytes of the check's own to the device, even while muted (a status query the
        driver does not make). Logged with the note :data:`SENT_BY_CHECK`; it is not the
        driver's write, so :attr:`last_delivered_write_s` keeps the driver's last one. The
        replies reach the driver like any other received bytes."""
        event = self.log.add(self.session, HOST_TO_DEVICE, data, "", f"{SENT_BY_CHECK}: a probe")
        await self.inner.write(data)
        return event

    def discard_unsent(self) -> int:
        """Drop the writes the inner link has not handed on yet (logged as written: they were
        the driver's writes); return the bytes dropped."""
        return self.inner.discard_unsent()

    def on_receive(self, handler: ReceiveHandler) -> None:
        """Deliver received bytes to ``handler`` (after logging)."""
        self._handler = handler

    def on_lost(self, handler: LostHandler) -> None:
        """Report a lost link to ``handler``."""
        self.inner.on_lost(handler)

    async def close(self) -> None:
        """Close the inner link."""
        await self.inner.close()

    def _received(self, data: bytes) -> None:
        units: Sequence[bytes] = [data] if self._splitter is None else self._splitter.feed(data)
        for unit in units:
            self._incoming("", unit, functools.partial(self._deliver, unit))

    def _deliver(self, unit: bytes) -> None:
        if self._handler is not None:
            self._handler(unit)


class _GattLink(Protocol):
    description: str

    async def connect(self, timeout_s: float) -> None: ...

    async def write(self, characteristic_uuid: str, data: bytes, *, response: bool) -> None: ...

    async def read(self, characteristic_uuid: str) -> bytes: ...

    async def subscribe(self, characteristic_uuid: str, handler: NotifyHandler) -> None: ...

    def on_lost(self, handler: LostHandler) -> None: ...

    async def disconnect(self) -> None: ...


class GattTap(TapControls):
    """A GATT link (BLE) with every write, notification and read logged.

    Args:
        inner: the link the driver was given.
        log: the check's wire log.
        session: the session number.
    """

    def __init__(self, inner: _GattLink, log: WireLog, session: int) -> None:
        super().__init__(log, session)
        self.inner = inner
        self.description = inner.description

    async def connect(self, timeout_s: float) -> None:
        """Connect the inner link."""
        await self.inner.connect(timeout_s)

    async def write(self, characteristic_uuid: str, data: bytes, *, response: bool) -> None:
        """Log the write and its completion time; pass it on unless muted."""
        event = self._outgoing(characteristic_uuid, data)
        if not response:
            event.note = event.note or "write without response"
        if not event.delivered:
            return
        self._written(event, characteristic_uuid, before=True)
        await self.inner.write(characteristic_uuid, data, response=response)
        event.duration_s = asyncio.get_running_loop().time() - event.t_s
        self._written(event, characteristic_uuid, before=False)
        if self._take_hang():
            event.note = "completion held by the check"
            await asyncio.Event().wait()

    async def read(self, characteristic_uuid: str) -> bytes:
        """Read through the inner link; log the value."""
        value = await self.inner.read(characteristic_uuid)
        self.log.add(self.session, DEVICE_TO_HOST, value, f"read: {characteristic_uuid}")
        return value

    async def subscribe(self, characteristic_uuid: str, handler: NotifyHandler) -> None:
        """Subscribe through the tap."""

        def notified(uuid: str, value: bytes) -> None:
            self._incoming(uuid, value, lambda: handler(uuid, value))

        await self.inner.subscribe(characteristic_uuid, notified)

    def on_lost(self, handler: LostHandler) -> None:
        """Report a lost connection to ``handler``."""
        self.inner.on_lost(handler)

    async def disconnect(self) -> None:
        """Disconnect the inner link."""
        await self.inner.disconnect()
