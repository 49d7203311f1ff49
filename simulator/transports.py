"""In-memory twins of the links: a serial pipe and a GATT server, both on virtual time.

Bytes and notifications travel through ``loop.call_later`` with the wire time they would take
(bits per byte ÷ baud for serial, a fixed latency for BLE), so the same driver code runs against
an emulated device under :class:`~emsctl.clock.VirtualClock` or real time. A ``tamper`` hook lets a
fault plan corrupt, drop, duplicate or delay traffic in either direction. The serial host end
queues as :class:`~emsctl.drivers.links.serial.SerialLink` does: it puts at most
:data:`~emsctl.drivers.links.base.AHEAD_S` of wire time on the cable ahead of the wire (a copy a
fault duplicates takes wire time too) and keeps later writes whole, for ``discard_unsent``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ..drivers.links.base import AHEAD_S, LinkLostHandler, NotifyHandler, ReceiveHandler
from ..errors import DeviceError, LinkLostError

__all__ = ["Direction", "GattServer", "MemoryGattLink", "MemorySerialPipe", "Tamper"]

#: "host→device" or "device→host"
Direction = str
#: As SerialLink: AHEAD_S and 1 µs, so that a hand-on timer always finds room when it fires.
_AHEAD_LIMIT_S = AHEAD_S + 1e-6
#: tamper(direction, data) → chunks to deliver, each (extra delay in s, bytes); [] drops it.
Tamper = Callable[[Direction, bytes], list[tuple[float, bytes]]]


class _HostEnd:
    """The host side of a :class:`MemorySerialPipe`; implements :class:`ByteLink`."""

    def __init__(self, pipe: MemorySerialPipe) -> None:
        self._pipe = pipe
        self.description = pipe.description
        self._receive: ReceiveHandler | None = None
        self._lost: LinkLostHandler | None = None
        self.is_open = False
        self._queued: deque[bytes] = deque()
        self._hand_on: asyncio.TimerHandle | None = None

    async def open(self) -> None:
        if self._pipe.broken:
            raise DeviceError(f"{self.description}: the port went away")
        self.is_open = True

    async def write(self, data: bytes) -> None:
        if not self.is_open or self._pipe.broken:
            raise LinkLostError(f"{self.description}: link is closed")
        if self._queued or self._ahead_s() > _AHEAD_LIMIT_S:
            self._queued.append(bytes(data))
            self._schedule()
            return
        self._pipe._send("host→device", bytes(data))

    def discard_unsent(self) -> int:
        dropped = sum(len(data) for data in self._queued)
        self._queued.clear()
        if self._hand_on is not None:
            self._hand_on.cancel()
            self._hand_on = None
        return dropped

    def on_receive(self, handler: ReceiveHandler) -> None:
        self._receive = handler

    def on_lost(self, handler: LinkLostHandler) -> None:
        self._lost = handler

    async def close(self) -> None:
        if self.is_open and not self._pipe.broken:
            for data in self._queued:  # handed on before the port closes
                self._pipe._send("host→device", data)
        self.discard_unsent()
        self.is_open = False

    def _ahead_s(self) -> float:
        return self._pipe._busy_until["host→device"] - asyncio.get_running_loop().time()

    def _schedule(self) -> None:
        if self._hand_on is None and self._queued:
            loop = asyncio.get_running_loop()
            self._hand_on = loop.call_at(self._pipe._busy_until["host→device"] - AHEAD_S,
                                         self._hand_on_queued)

    def _hand_on_queued(self) -> None:
        self._hand_on = None
        if not self.is_open or self._pipe.broken:
            self._queued.clear()
            return
        while self._queued:
            if self._ahead_s() > _AHEAD_LIMIT_S:
                self._schedule()
                return
            self._pipe._send("host→device", self._queued.popleft())


class MemorySerialPipe:
    """A serial cable in memory between a host :class:`ByteLink` and an emulated device.

    Args:
        baud: line speed; each byte takes ``bits_per_byte / baud`` seconds on the wire.
        bits_per_byte: 11 for 8E1 (start, 8 data, parity, stop), 10 for 8N1.
        tamper: optional fault hook, see :data:`Tamper`.
    """

    def __init__(self, baud: int = 460800, bits_per_byte: int = 11,
                 tamper: Tamper | None = None, description: str = "memory serial") -> None:
        self.byte_time_s = bits_per_byte / baud
        self.tamper = tamper
        self.description = description
        self.host = _HostEnd(self)
        self._device_receive: ReceiveHandler | None = None
        self.broken = False
        self._busy_until = {"host→device": 0.0, "device→host": 0.0}

    def on_device_receive(self, handler: ReceiveHandler) -> None:
        """Deliver bytes written by the host to the emulated device's ``handler``."""
        self._device_receive = handler

    def device_write(self, data: bytes) -> None:
        """Send bytes from the emulated device to the host."""
        if not self.broken:
            self._send("device→host", bytes(data))

    def cut(self, reason: str = "cable pulled") -> None:
        """Break the cable: nothing more is delivered; the host is told once."""
        if self.broken:
            return
        self.broken = True
        lost = self.host._lost
        if lost is not None and self.host.is_open:
            asyncio.get_running_loop().call_soon(lost, reason)

    def _send(self, direction: Direction, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        chunks = self.tamper(direction, data) if self.tamper else [(0.0, data)]
        for extra_s, chunk in chunks:
            # bytes queue behind each other on the wire, like a real UART
            start = max(loop.time(), self._busy_until[direction])
            done = start + len(chunk) * self.byte_time_s
            self._busy_until[direction] = done
            loop.call_at(done + extra_s, self._deliver, direction, chunk)

    def _deliver(self, direction: Direction, data: bytes) -> None:
        if self.broken:
            return
        if direction == "host→device":
            if self._device_receive is not None:
                self._device_receive(data)
        elif self.host.is_open and self.host._receive is not None:
            self.host._receive(data)


@dataclass
class GattServer:
    """The device side of an in-memory GATT link: characteristics an emulator serves.

    ``on_write(uuid, data, response)`` and ``on_read(uuid) -> bytes`` are set by the emulated
    device; it calls :meth:`notify` to push values to a subscribed host.
    """

    name: str
    address: str
    latency_s: float = 0.0075  # one 7.5 ms connection interval
    on_write: Callable[[str, bytes, bool], None] | None = None
    on_read: Callable[[str], bytes] | None = None
    on_disconnect: Callable[[], None] | None = None
    tamper: Tamper | None = None
    connected: bool = False
    _subscribers: dict[str, NotifyHandler] = field(default_factory=dict)
    _link: MemoryGattLink | None = None

    def notify(self, characteristic_uuid: str, value: bytes) -> None:
        """Send a notification to the host if it subscribed."""
        handler = self._subscribers.get(characteristic_uuid)
        if not self.connected or handler is None:
            return
        loop = asyncio.get_running_loop()
        chunks = self.tamper("device→host", value) if self.tamper else [(0.0, value)]
        for extra_s, chunk in chunks:
            loop.call_later(self.latency_s + extra_s, self._notify_now, handler,
                            characteristic_uuid, chunk)

    def _notify_now(self, handler: NotifyHandler, uuid: str, value: bytes) -> None:
        if self.connected:
            handler(uuid, value)

    def drop_connection(self, reason: str = "connection lost") -> None:
        """The radio link goes away (out of range, device off)."""
        if not self.connected:
            return
        self.connected = False
        self._subscribers.clear()
        if self.on_disconnect is not None:
            self.on_disconnect()
        if self._link is not None:
            self._link._lost_now(reason)


class MemoryGattLink:
    """The host side of an in-memory GATT connection; implements :class:`GattLink`."""

    def __init__(self, server: GattServer) -> None:
        self.server = server
        self.description = f"memory BLE {server.name} ({server.address})"
        self._lost: LinkLostHandler | None = None

    async def connect(self, timeout_s: float) -> None:
        if self.server.connected:
            raise DeviceError(f"{self.description}: already connected to another host")
        await asyncio.sleep(self.server.latency_s)
        self.server.connected = True
        self.server._link = self

    async def write(self, characteristic_uuid: str, data: bytes, *, response: bool) -> None:
        self._check()
        server = self.server
        chunks = server.tamper("host→device", bytes(data)) if server.tamper else [(0.0, data)]
        loop = asyncio.get_running_loop()
        for extra_s, chunk in chunks:
            loop.call_later(server.latency_s + extra_s, self._write_now, characteristic_uuid,
                            bytes(chunk), response)
        if response:
            await asyncio.sleep(2 * server.latency_s)
            self._check()

    def _write_now(self, uuid: str, data: bytes, response: bool) -> None:
        if self.server.connected and self.server.on_write is not None:
            self.server.on_write(uuid, data, response)

    async def read(self, characteristic_uuid: str) -> bytes:
        self._check()
        await asyncio.sleep(2 * self.server.latency_s)
        self._check()
        if self.server.on_read is None:
            raise DeviceError(f"{self.description}: {characteristic_uuid} is not readable")
        return self.server.on_read(characteristic_uuid)

    async def subscribe(self, characteristic_uuid: str, handler: NotifyHandler) -> None:
        self._check()
        self.server._subscribers[characteristic_uuid] = handler

    def on_lost(self, handler: LinkLostHandler) -> None:
        self._lost = handler

    async def disconnect(self) -> None:
        if self.server.connected:
            self.server.connected = False
            self.server._subscribers.clear()
            self.server._link = None
            if self.server.on_disconnect is not None:
                self.server.on_disconnect()

    def _check(self) -> None:
        if not self.server.connected:
            raise LinkLostError(f"{self.description}: not connected")

    def _lost_now(self, reason: str) -> None:
        if self._lost is not None:
            asyncio.get_running_loop().call_soon(self._lost, reason)
