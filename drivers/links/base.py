"""Link protocols: how drivers move bytes (serial) and GATT values (BLE).

A driver never opens a port or a radio itself: it is handed a link. Real links wrap pyserial
(:mod:`.serial`) or bleak (:mod:`.ble`, the only module that imports bleak); in-memory twins in
``emsctl.simulator.transports`` connect a driver to an emulated device through the same
interface, so the simulator path and the real-device path share every line of driver code.

Received data is pushed to a callback on the event loop's thread (never from another thread),
so drivers need no locks. Errors of the underlying library are translated here into
:class:`~emsctl.errors.LinkLostError` / :class:`~emsctl.errors.DeviceError` with ``raise … from``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

__all__ = ["AHEAD_S", "ByteLink", "GattLink", "LinkLostHandler", "NotifyHandler",
           "ReceiveHandler"]

ReceiveHandler = Callable[[bytes], None]
NotifyHandler = Callable[[str, bytes], None]
LinkLostHandler = Callable[[str], None]

#: How much line time a byte link hands on (to the OS, to the wire) ahead of the line: what the
#: line has not sent after that waits in the link, as whole writes that
#: :meth:`ByteLink.discard_unsent` can drop. A stop therefore never waits behind more than this
#: and the write the line is sending (a 30-byte openEMSstim line is 15.6 ms at 19 200 baud).
AHEAD_S = 0.02


class ByteLink(Protocol):
    """A byte stream to a device (a serial port, a pty, or an in-memory pipe).

    Writes leave in the order they were written. A link hands on at most :data:`AHEAD_S` of
    line time ahead of the line; later writes wait in the link, whole, until the line has room.
    """

    description: str

    async def open(self) -> None:
        """Open the link (exclusively, for ports).

        Raises:
            DeviceError: the port does not exist, is busy, or cannot be configured.
        """

    async def write(self, data: bytes) -> None:
        """Hand ``data`` on, or queue it whole behind the writes before it; return at once.

        Raises:
            LinkLostError: the link is closed or went away.
        """

    def discard_unsent(self) -> int:
        """Drop every queued write of which no byte has been handed on yet; return how many
        bytes were dropped.

        For a stop: the commands it drops are superseded by it, and it then goes out behind at
        most what the line is already sending. A write already partly handed on is completed,
        so the device never gets half a frame followed by the next one.
        """

    def on_receive(self, handler: ReceiveHandler) -> None:
        """Call ``handler`` with every chunk of received bytes (on the loop's thread)."""

    def on_lost(self, handler: LinkLostHandler) -> None:
        """Call ``handler`` with a reason when the link goes away unexpectedly."""

    async def close(self) -> None:
        """Hand on what is still queued (a stop or a backstop written just before), then close
        the link. Idempotent."""


class GattLink(Protocol):
    """A connection to one BLE peripheral's GATT server."""

    description: str

    async def connect(self, timeout_s: float) -> None:
        """Connect to the named device only (HZ-11).

        Raises:
            DeviceTimeoutError: no connection within ``timeout_s``.
            DeviceError: the device refused or was not found.
        """

    async def write(self, characteristic_uuid: str, data: bytes, *, response: bool) -> None:
        """Write a value, with or without a write response.

        Raises:
            LinkLostError: not connected.
        """

    async def read(self, characteristic_uuid: str) -> bytes:
        """Read a value.

        Raises:
            LinkLostError: not connected.
        """

    async def subscribe(self, characteristic_uuid: str, handler: NotifyHandler) -> None:
        """Deliver notifications of ``characteristic_uuid`` to ``handler(uuid, value)``.

        Raises:
            LinkLostError: not connected.
        """

    def on_lost(self, handler: LinkLostHandler) -> None:
        """Call ``handler`` with a reason when the connection drops."""

    async def disconnect(self) -> None:
        """Disconnect. Idempotent."""
