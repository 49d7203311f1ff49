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

__all__ = ["ByteLink", "GattLink", "LinkLostHandler", "NotifyHandler", "ReceiveHandler"]

ReceiveHandler = Callable[[bytes], None]
NotifyHandler = Callable[[str, bytes], None]
LinkLostHandler = Callable[[str], None]


class ByteLink(Protocol):
    """A byte stream to a device (a serial port, a pty, or an in-memory pipe)."""

    description: str

    async def open(self) -> None:
        """Open the link (exclusively, for ports).

        Raises:
            DeviceError: the port does not exist, is busy, or cannot be configured.
        """

    async def write(self, data: bytes) -> None:
        """Queue ``data`` for sending and return once it is handed to the OS.

        Raises:
            LinkLostError: the link is closed or went away.
        """

    def on_receive(self, handler: ReceiveHandler) -> None:
        """Call ``handler`` with every chunk of received bytes (on the loop's thread)."""

    def on_lost(self, handler: LinkLostHandler) -> None:
        """Call ``handler`` with a reason when the link goes away unexpectedly."""

    async def close(self) -> None:
        """Close the link. Idempotent."""


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
