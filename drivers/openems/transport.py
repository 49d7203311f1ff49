"""How the openEMSstim driver puts one command on a link: serial WV lines or BLE writes.

* :class:`SerialLines` — a :class:`~emsctl.drivers.links.base.ByteLink` at 19 200 8N1. Opening
  the port resets the board, so :meth:`SerialLines.open` waits for the setup banner or for the
  ready timeout (12 s: with debug off there is no banner, docs/protocols/openemsstim.md §7). Every
  line the board prints is kept as a diagnostic and never read as a reply
  (docs/protocols/openemsstim.md §10); a setup banner after that is a reset mid-session, reported to
  the driver, and an echo of a command that was not sent (a line corrupted on the way: there is no
  checksum) is reported too. Commands go out as ``WV,0018,<HEX>.\\n``.
* :class:`BleLines` — a :class:`~emsctl.drivers.links.base.GattLink`: the plain command as
  one write request to the EMS characteristic, waited for at most 500 ms
  (docs/protocols/openemsstim.md §7).

The pacing of commands (≥ 50 ms apart) and the stop sequence belong to the driver, not here.
This module must never import pyserial or bleak: the links do that.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Protocol

from ...errors import DeviceTimeoutError
from ..links.base import ByteLink, GattLink, LinkLostHandler
from .protocol import (
    BLE_CHARACTERISTIC_UUID,
    CONNECTION_END_LINE,
    DebugKind,
    DebugLine,
    DebugLineParser,
    HostCommand,
    encode_ble,
    encode_serial,
)

__all__ = ["BLE_WRITE_TIMEOUT_S", "READY_TIMEOUT_S", "BleLines", "CommandLink", "SerialLines"]

# docs/protocols/openemsstim.md §7: wait for the ready line, or 12 s with debug off
READY_TIMEOUT_S = 12.0
# docs/protocols/openemsstim.md §7: each write request completes within 500 ms, as [AND] waits
BLE_WRITE_TIMEOUT_S = 0.5
BLE_CONNECT_TIMEOUT_S = 10.0
DEBUG_LOG_LINES = 500
#: How many recent commands an echo is compared with (duplicates and late echoes included).
ECHO_WINDOW = 16


class CommandLink(Protocol):
    """What the driver needs from a transport."""

    description: str

    async def open(self) -> None:
        """Open the link; return when the board is ready for commands."""

    async def send(self, command: HostCommand) -> None:
        """Put ``command`` on the link."""

    def discard_unsent(self) -> int:
        """Drop the commands the link has not started to send (superseded: a stop follows);
        return the bytes dropped."""

    async def backstop(self) -> None:
        """Send the transport's own all-off backstop before closing, if it has one."""

    def on_lost(self, handler: LinkLostHandler) -> None:
        """Call ``handler`` with a reason when the link goes away."""

    async def close(self) -> None:
        """Release the link. Idempotent."""


class SerialLines:
    """Commands as WV lines over a byte link; the board's debug output kept as diagnostics.

    Args:
        link: the serial link (19 200 8N1, opened by the caller's factory).
        ready_timeout_s: how long to wait for the setup banner after opening.
        on_reset: called when a setup banner arrives after the board was ready
        (docs/protocols/openemsstim.md §7 step 5). on_mismatch: called with the command when the
        board echoes one that was not among the
            last commands sent (HZ-12: the line was corrupted on its way; there is no checksum).
    """

    def __init__(self, link: ByteLink, ready_timeout_s: float = READY_TIMEOUT_S,
                 on_reset: Callable[[], None] | None = None,
                 on_mismatch: Callable[[bytes], None] | None = None) -> None:
        self.link = link
        self.description = link.description
        self.ready_timeout_s = ready_timeout_s
        self.on_reset = on_reset
        self.on_mismatch = on_mismatch
        #: The plain form of the last commands written, for comparing the board's echoes.
        self._sent: deque[bytes] = deque(maxlen=ECHO_WINDOW)
        #: The latest lines the board printed (diagnostics only, never acknowledgements).
        self.debug_lines: deque[DebugLine] = deque(maxlen=DEBUG_LOG_LINES)
        self.banner_seen = False
        self._parser = DebugLineParser()
        self._ready: asyncio.Event | None = None

    async def open(self) -> None:
        """Open the port and wait for the setup banner or the ready timeout.

        Raises:
            DeviceError: the port cannot be opened.
        """
        self._ready = asyncio.Event()
        self.link.on_receive(self._received)
        await self.link.open()
        # debug off prints nothing: then the fixed wait is the ready signal
        # (docs/protocols/openemsstim.md §2)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), self.ready_timeout_s)
        self._ready.set()

    async def send(self, command: HostCommand) -> None:
        """Write one WV line.

        Raises:
            LinkLostError: the port is closed or gone.
        """
        self._sent.append(encode_ble(command))
        await self.link.write(encode_serial(command))

    def discard_unsent(self) -> int:
        """Drop the lines the serial link has not started to send; return the bytes dropped.
        A line already partly sent is completed (the board never gets half a line)."""
        return self.link.discard_unsent()

    async def backstop(self) -> None:
        """Write ``Connection End``: both firmware generations shut every channel down
        (docs/protocols/openemsstim.md §8 step 4).

        Raises:
            LinkLostError: the port is closed or gone.
        """
        await self.link.write(CONNECTION_END_LINE)

    def on_lost(self, handler: LinkLostHandler) -> None:
        """Report a lost port to ``handler``."""
        self.link.on_lost(handler)

    async def close(self) -> None:
        """Close the port."""
        await self.link.close()

    def _received(self, data: bytes) -> None:
        for line in self._parser.feed(data):
            self.debug_lines.append(line)
            if line.kind is DebugKind.HEX_ECHO and line.payload is not None:
                # an echo is never required (docs/protocols/openemsstim.md §7), but one that differs
                # from every command sent is proof that the board executed a corrupted line (HZ-12)
                if self._sent and line.payload not in self._sent \
                        and self.on_mismatch is not None:
                    self.on_mismatch(line.payload)
                continue
            if line.kind is not DebugKind.SETUP_DONE:
                continue
            self.banner_seen = True
            if self._ready is not None and not self._ready.is_set():
                self._ready.set()
            elif self.on_reset is not None:
                self.on_reset()


class BleLines:
    """Commands as plain write requests to the EMS characteristic.

    Args:
        link: the GATT link to the board.
        connect_timeout_s: how long a connection attempt may take.
    """

    def __init__(self, link: GattLink, connect_timeout_s: float = BLE_CONNECT_TIMEOUT_S) -> None:
        self.link = link
        self.description = link.description
        self.connect_timeout_s = connect_timeout_s

    async def open(self) -> None:
        """Connect to the board.

        Raises:
            DeviceTimeoutError: no connection in time.
            DeviceError: the board refused or was not found.
        """
        await self.link.connect(self.connect_timeout_s)

    async def send(self, command: HostCommand) -> None:
        """Write one command with response (the characteristic has no write without response).

        Raises:
            DeviceTimeoutError: the write did not complete within 500 ms.
            LinkLostError: not connected.
        """
        try:
            await asyncio.wait_for(
                self.link.write(BLE_CHARACTERISTIC_UUID, encode_ble(command), response=True),
                BLE_WRITE_TIMEOUT_S)
        except TimeoutError as exc:
            raise DeviceTimeoutError(f"{self.description}: a write took longer than "
                                     f"{BLE_WRITE_TIMEOUT_S * 1000:.0f} ms") from exc

    def discard_unsent(self) -> int:
        """Nothing waits here: each write request is awaited before the next (a stop waits at
        most for the one in flight). Returns 0."""
        return 0

    async def backstop(self) -> None:
        """Nothing to send: the disconnect in :meth:`close` is the BLE backstop
        (docs/protocols/openemsstim.md §8 step 4)."""

    def on_lost(self, handler: LinkLostHandler) -> None:
        """Report a dropped connection to ``handler``."""
        self.link.on_lost(handler)

    async def close(self) -> None:
        """Disconnect; the board shuts every channel down on ``Connection End``."""
        await self.link.disconnect()
