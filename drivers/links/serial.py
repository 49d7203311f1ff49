"""``SerialLink``: a :class:`~.base.ByteLink` over a serial port, a pty or any pyserial URL.

The port is opened with ``serial.serial_for_url(url, …, exclusive=True, timeout=0)``, so a
second emsctl (or any other program) cannot share a stimulator's port (HZ-11), and the line is
set to the protocol's settings (ScienceMode2: 460800 8E1). Bytes are read by the event loop
(``loop.add_reader`` on the port's file descriptor) and written with ``os.write`` on the
non-blocking descriptor: no threads, no blocking calls. ``write`` hands the bytes to the OS
before its first suspension point, so frames leave in the order they were written and a stop
written after an update is never overtaken by it. URL handlers without a file descriptor
(``loop://``, ``socket://`` …) are polled every millisecond instead.

The OS takes kilobytes at once (a pty 16 KB, 8.5 s at 19 200 baud), and nothing can take a
frame back from it whole. So the link hands on at most :data:`~.base.AHEAD_S` of line time
ahead of the line — counted from the bytes handed on and the line's speed (start, data, parity
and stop bits per byte), which is how fast a line without flow control sends them — and keeps
later writes whole in its own queue, handed on as the line frees up. A stop first drops that
queue (:meth:`SerialLink.discard_unsent`: superseded commands) and then waits behind at most
what the OS holds; the remainder of a write the OS took only part of always follows it first.

pyserial and OS errors are translated here, and only here, into
:class:`~emsctl.errors.DeviceError` (open) and :class:`~emsctl.errors.LinkLostError` (I/O),
with ``raise … from``. pyserial is imported inside :meth:`SerialLink.open`: ``import emsctl``
must never import it. This module must never retry, reframe or interpret the bytes it moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections import deque
from typing import Any

from ...errors import DeviceError, LinkLostError
from .base import AHEAD_S, LinkLostHandler, ReceiveHandler

__all__ = ["SerialLink"]

_READ_CHUNK = 4096
_POLL_S = 0.001
#: More unsent bytes than this means the other end stopped reading: the link is lost.
_MAX_BACKLOG = 64 * 1024
#: AHEAD_S and 1 µs: a hand-on timer set for ``line free − AHEAD_S`` must find room when it
#: fires, whatever the float noise of that subtraction.
_AHEAD_LIMIT_S = AHEAD_S + 1e-6


class SerialLink:
    """A serial port (or pty, or pyserial URL) as a non-blocking byte link.

    Args:
        url: a device path (``/dev/ttyUSB0``) or any pyserial URL.
        baud: line speed in bit/s.
        parity: ``"N"``, ``"E"`` or ``"O"`` (ScienceMode2 needs ``"E"``).
        bytesize: data bits.
        stopbits: stop bits.
        rtscts: request RTS/CTS hardware flow control (ScienceMode4 documents it; USB CDC
            ports and ptys ignore it).
    """

    def __init__(self, url: str, *, baud: int = 460800, parity: str = "E", bytesize: int = 8,
                 stopbits: int = 1, rtscts: bool = False) -> None:
        self.url = url
        self.baud = baud
        self.parity = parity
        self.bytesize = bytesize
        self.stopbits = stopbits
        self.rtscts = rtscts
        flow = " RTS/CTS" if rtscts else ""
        self.description = f"serial {url} ({baud} {bytesize}{parity}{stopbits}{flow})"
        self._port: Any = None
        self._fd: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._receive: ReceiveHandler | None = None
        self._lost: LinkLostHandler | None = None
        #: Seconds each byte takes on the line: start bit, data, parity, stop bits.
        self.byte_s = (1 + bytesize + (parity != "N") + stopbits) / baud
        #: The rest of a write the OS took only part of: always completed, before anything else.
        self._backlog = bytearray()
        #: Whole writes not handed on yet (the line is busy): dropped by discard_unsent.
        self._queued: deque[bytes] = deque()
        self._queued_bytes = 0
        #: When the line will have sent every byte handed to the OS (loop time).
        self._line_free_s = 0.0
        self._hand_on: asyncio.TimerHandle | None = None
        self._poll: asyncio.TimerHandle | None = None
        self._lost_reported = False
        #: Things worth telling the user about the port (e.g. a pty opened without parity).
        self.notes: list[str] = []

    @property
    def is_open(self) -> bool:
        """True between a successful :meth:`open` and :meth:`close` or a lost link."""
        return self._port is not None

    async def open(self) -> None:
        """Open the port exclusively, set the line, drop stale input, start reading.

        Raises:
            DeviceError: the port does not exist, is in use by another program, or cannot be
                configured (one sentence naming the port).
        """
        if self._port is not None:
            return
        try:
            import serial  # noqa: PLC0415 - pyserial only when a real port is opened
        except ImportError as exc:  # pragma: no cover - pyserial is a dependency
            raise DeviceError("pyserial is not installed; install emsctl's dependencies") from exc
        try:
            port = self._open_port(serial, self.parity)
        except DeviceError:
            # Linux ptys refuse a parity setting left behind by an earlier client (EINVAL);
            # a pty has no parity bit on its "wire", so it is opened without one
            # (docs/protocols/sciencemode2.md §2).
            if self.parity == "N" or not _is_pty(self.url):
                raise
            port = self._open_port(serial, "N")
            self.notes.append("pseudo-terminal: opened without parity (a pty carries none)")
        self._loop = asyncio.get_running_loop()
        self._port = port
        self._lost_reported = False
        try:
            port.reset_input_buffer()  # a device that talked to nobody left stale frames
            fd = port.fileno()
        except (AttributeError, NotImplementedError, OSError, ValueError, TypeError):
            fd = None
        except serial.SerialException as exc:
            await self.close()
            raise DeviceError(f"cannot configure {self.url}: {exc}") from exc
        self._fd = fd if isinstance(fd, int) else None
        if self._fd is not None:
            self._loop.add_reader(self._fd, self._on_readable)
        else:
            self._poll = self._loop.call_later(_POLL_S, self._poll_once)

    def _open_port(self, serial: Any, parity: str) -> Any:
        try:
            return serial.serial_for_url(self.url, baudrate=self.baud, parity=parity,
                                         bytesize=self.bytesize, stopbits=self.stopbits,
                                         rtscts=self.rtscts, exclusive=True, timeout=0,
                                         write_timeout=0)
        except serial.SerialException as exc:
            raise DeviceError(_open_error(self.url, exc)) from exc
        except Exception as exc:  # OSError, ValueError, termios.error from the line setup
            raise DeviceError(f"cannot open {self.url} at {self.baud} "
                              f"{self.bytesize}{parity}{self.stopbits}: {exc}") from exc

    async def write(self, data: bytes) -> None:
        """Hand ``data`` to the OS now (before any suspension) if the line has room; otherwise
        queue it whole behind the writes before it.

        Raises:
            LinkLostError: the link is closed, went away, or stopped taking bytes.
        """
        if self._port is None:
            raise LinkLostError(f"{self.description}: link is closed")
        data = bytes(data)
        loop = self._loop
        assert loop is not None
        if self._backlog or self._queued or self._line_free_s - loop.time() > _AHEAD_LIMIT_S:
            self._queue(data)
            return
        try:
            self._hand_to_os(data)
        except OSError as exc:
            self._report_lost(f"write failed: {exc}")
            raise LinkLostError(f"{self.description}: write failed: {exc}") from exc

    def discard_unsent(self) -> int:
        """Drop every queued write of which no byte is with the OS yet; return the bytes
        dropped. The rest of a write the OS took part of stays: it is completed first."""
        dropped = self._queued_bytes
        self._queued.clear()
        self._queued_bytes = 0
        if self._hand_on is not None:
            self._hand_on.cancel()
            self._hand_on = None
        return dropped

    @property
    def unsent_bytes(self) -> int:
        """Bytes written to the link that the OS does not have yet."""
        return len(self._backlog) + self._queued_bytes

    def on_receive(self, handler: ReceiveHandler) -> None:
        """Call ``handler`` with every chunk of received bytes (on the loop's thread)."""
        self._receive = handler

    def on_lost(self, handler: LinkLostHandler) -> None:
        """Call ``handler`` with a reason when the port goes away (unplugged, pty closed)."""
        self._lost = handler

    async def close(self) -> None:
        """Hand what is still queued to the OS (the stop and the backstop written just before
        a close must not be lost; whatever the OS will not take now is), then stop reading and
        close the port (which releases the exclusive lock). Idempotent."""
        if self._port is not None and (self._backlog or self._queued):
            rest = bytes(self._backlog) + b"".join(self._queued)
            self._backlog.clear()
            self.discard_unsent()
            with contextlib.suppress(OSError):
                self._write_now(rest)
        self._teardown()

    # ------------------------------------------------------------------ internals

    def _write_now(self, data: bytes) -> int:
        if self._fd is None:
            written = self._port.write(data)
            return len(data) if written is None else int(written)
        try:
            return os.write(self._fd, data)
        except BlockingIOError:
            return 0

    def _hand_to_os(self, data: bytes) -> None:
        """Write ``data`` to the OS; what it does not take now becomes the backlog.

        Raises:
            OSError: the write failed.
        """
        loop = self._loop
        assert loop is not None
        sent = self._write_now(data)
        self._line_free_s = max(self._line_free_s, loop.time()) + sent * self.byte_s
        if sent < len(data):
            self._backlog += data[sent:]
            if self._fd is not None:
                loop.add_writer(self._fd, self._on_writable)

    def _queue(self, data: bytes) -> None:
        if self.unsent_bytes + len(data) > _MAX_BACKLOG:
            self._report_lost("the device stopped reading (write backlog full)")
            raise LinkLostError(f"{self.description}: the device stopped reading")
        self._queued.append(data)
        self._queued_bytes += len(data)
        self._schedule_hand_on()

    def _schedule_hand_on(self) -> None:
        """Hand the next queued write on once the line has room (after the backlog)."""
        loop = self._loop
        if not self._queued or self._backlog or self._hand_on is not None or loop is None:
            return
        self._hand_on = loop.call_at(self._line_free_s - AHEAD_S, self._hand_on_queued)

    def _hand_on_queued(self) -> None:
        self._hand_on = None
        loop = self._loop
        if self._port is None or loop is None:
            return
        while self._queued and not self._backlog:
            if self._line_free_s - loop.time() > _AHEAD_LIMIT_S:
                self._schedule_hand_on()
                return
            data = self._queued.popleft()
            self._queued_bytes -= len(data)
            try:
                self._hand_to_os(data)
            except OSError as exc:
                self._report_lost(f"write failed: {exc}")
                return

    def _on_writable(self) -> None:
        loop = self._loop
        assert loop is not None
        try:
            sent = self._write_now(bytes(self._backlog))
        except OSError as exc:
            self._report_lost(f"write failed: {exc}")
            return
        del self._backlog[:sent]
        self._line_free_s = max(self._line_free_s, loop.time()) + sent * self.byte_s
        if not self._backlog:
            if self._fd is not None:
                loop.remove_writer(self._fd)
            self._hand_on_queued()

    def _on_readable(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, _READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            # EIO: the other side of a pty closed, or a USB adapter was unplugged
            reason = "the port went away" if exc.errno == errno.EIO else f"read failed: {exc}"
            self._report_lost(reason)
            return
        if not data:
            self._report_lost("the port was closed by the other side")
            return
        if self._receive is not None:
            self._receive(data)

    def _poll_once(self) -> None:
        self._poll = None
        port = self._port
        if port is None:
            return
        try:
            waiting = port.in_waiting
            data = port.read(waiting) if waiting else b""
        except Exception as exc:
            self._report_lost(f"read failed: {exc}")
            return
        if data and self._receive is not None:
            self._receive(bytes(data))
        if self._backlog and self._port is not None:
            self._on_writable()  # no descriptor to wait on: try again at every poll
        if self._port is not None and self._loop is not None:
            self._poll = self._loop.call_later(_POLL_S, self._poll_once)

    def _report_lost(self, reason: str) -> None:
        self._teardown()
        if self._lost_reported:
            return
        self._lost_reported = True
        if self._lost is not None and self._loop is not None:
            self._loop.call_soon(self._lost, f"{self.url}: {reason}")

    def _teardown(self) -> None:
        port, self._port = self._port, None
        if self._loop is not None and self._fd is not None:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None
        self._fd = None
        self._backlog.clear()
        self.discard_unsent()
        if port is not None:
            with contextlib.suppress(Exception):
                port.close()


def _is_pty(url: str) -> bool:
    """Whether ``url`` names a pseudo-terminal (Linux /dev/pts/N, BSD/macOS /dev/ttysNNN)."""
    real = os.path.realpath(url)
    return real.startswith(("/dev/pts/", "/dev/ttys", "/dev/pty"))


def _open_error(url: str, exc: BaseException) -> str:
    """One sentence for a failed open: busy, missing, or not permitted."""
    text = str(exc)
    if "exclusively lock" in text or "Resource temporarily unavailable" in text:
        return (f"{url} is in use by another program (emsctl opens ports exclusively); close "
                "the other program and try again")
    cause = exc.__cause__ if exc.__cause__ is not None else exc.__context__
    code = getattr(exc, "errno", None) or getattr(cause, "errno", None)
    if code == errno.ENOENT or "No such file" in text or ("could not open port" in text and \
            "[Errno 2]" in text):
        return f"{url} does not exist; run 'emsctl devices' to list serial ports"
    if code == errno.EACCES or "Permission denied" in text:
        return (f"no permission to open {url}; add yourself to the group that owns it "
                "(often 'dialout') and log in again")
    return f"cannot open {url}: {text}"
