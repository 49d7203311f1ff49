"""Serve an emulated device on a pseudo-terminal, in real time, for any serial program.

:class:`PtyServer` opens a pty pair (``os.openpty``, the slave in raw mode), keeps the slave open
so clients may come and go, and wires the master to a protocol emulation chosen by name from
:data:`PTY_DEVICES` (``"sciencemode2"``; another emulation adds one line there). Bytes from the
client go to ``device.receive``; the device's frames go back through a non-blocking write that
drops what nobody reads (like a UART with no one listening — clients flush stale input when they
open the port). Frames can be logged to a trace file; device events go to a log callable.

It runs on the running asyncio loop with ``add_reader``: no threads. It must never interpret
the bytes it carries (that is the emulation's job) nor leave the pty open after :meth:`close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TextIO

from ..errors import InputError
from .model import ChannelOutput

__all__ = ["PTY_DEVICES", "PtyDevice", "PtyDeviceFactory", "PtyDeviceOptions", "PtyServer",
           "make_pty_device"]

#: device name → "module:factory"; each factory is :data:`PtyDeviceFactory`.
PTY_DEVICES: dict[str, str] = {
    "sciencemode2": "emsctl.simulator.devices.sciencemode2:pty_device",
    "openems": "emsctl.simulator.devices.openems_pty:pty_device",
    "sciencemode4": "emsctl.simulator.devices.sciencemode4_pty:pty_device",
}
_READ_CHUNK = 4096
_MAX_BACKLOG = 16 * 1024


class PtyDevice(Protocol):
    """What the server needs from a protocol emulation."""

    def power_on(self) -> None:
        """Start (e.g. begin announcing itself)."""

    def power_off(self) -> None:
        """Stop: output zero, timers cancelled."""

    def receive(self, data: bytes) -> None:
        """Consume bytes from the client."""

    def outputs(self) -> tuple[ChannelOutput, ...]:
        """Every channel's output now (for the live view)."""

    def status(self) -> str:
        """One line of protocol state (connected, mode …)."""


@dataclass(frozen=True)
class PtyDeviceOptions:
    """Options common to emulations served on a pty.

    Attributes:
        watchdog_s: the device watchdog; None = the protocol's default; ``math.inf`` = never
            expire, only log.
        profile: ``strict`` or ``lenient`` (how tolerant of field clients).
        impedance_ohm: electrode–skin impedance on every channel.
        extras: emulation-specific settings.
    """

    watchdog_s: float | None = None
    profile: str = "strict"
    impedance_ohm: float = 1000.0
    extras: dict[str, str] = field(default_factory=dict)


Trace = Callable[[str, bytes, str], None]
Log = Callable[[str], None]
PtyDeviceFactory = Callable[[PtyDeviceOptions, Callable[[bytes], None], Trace, Log], PtyDevice]


def make_pty_device(name: str, options: PtyDeviceOptions, write: Callable[[bytes], None],
                    trace: Trace, log: Log) -> PtyDevice:
    """Build the emulation called ``name``.

    Raises:
        InputError: an unknown name (the message lists the known ones) or bad options.
    """
    if name not in PTY_DEVICES:
        raise InputError(f"no emulation called '{name}'; known: {', '.join(sorted(PTY_DEVICES))}")
    module_name, _, attr = PTY_DEVICES[name].partition(":")
    factory: PtyDeviceFactory = getattr(importlib.import_module(module_name), attr)
    return factory(options, write, trace, log)


class PtyServer:
    """One emulated device on one pty.

    Args:
        name: the emulation, a key of :data:`PTY_DEVICES`.
        options: its options.
        trace_file: where frames are logged (one line each), or None.
        log: called with each device event line (watchdog, outputs, errors).

    Raises:
        InputError: an unknown emulation or bad options.
    """

    def __init__(self, name: str, options: PtyDeviceOptions, *, trace_file: TextIO | None = None,
                 log: Log | None = None) -> None:
        self.name = name
        self._trace_file = trace_file
        self._log = log
        self._master: int | None = None
        self._slave: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._backlog = bytearray()
        self.dropped_bytes = 0
        self.path = ""
        self.device = make_pty_device(name, options, self._write, self._trace, self._say)

    def open(self) -> str:
        """Create the pty and listen on the running loop; return the slave's path.

        The device is switched on by :meth:`serve_until`, so the caller can print the path
        before the device says anything.

        Raises:
            InputError: no pseudo-terminal could be created.
        """
        try:
            master, slave = os.openpty()
        except OSError as exc:
            raise InputError(f"cannot create a pseudo-terminal: {exc}") from exc
        tty.setraw(slave)  # no echo, no line editing, no CR/LF translation: bytes as they are
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.path = os.ttyname(slave)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(master, self._on_readable)
        return self.path

    async def serve_until(self, stop: asyncio.Event) -> None:
        """Switch the device on, serve until ``stop`` is set, then close."""
        try:
            self.device.power_on()
            await stop.wait()
        finally:
            self.close()

    def close(self) -> None:
        """Zero the device's output and close both ends of the pty. Idempotent."""
        with contextlib.suppress(Exception):
            self.device.power_off()
        master, self._master = self._master, None
        if master is not None and self._loop is not None:
            self._loop.remove_reader(master)
            self._loop.remove_writer(master)
        for fd in (master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._slave = None

    def _on_readable(self) -> None:
        if self._master is None:
            return
        try:
            data = os.read(self._master, _READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # EIO while no client has the slave open: nothing to read
        if data:
            self.device.receive(data)

    def _write(self, data: bytes) -> None:
        master = self._master
        if master is None:
            return
        if self._backlog:
            self._enqueue(data)
            return
        try:
            sent = os.write(master, data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self.dropped_bytes += len(data)
            return
        if sent < len(data):
            self._enqueue(data[sent:])

    def _enqueue(self, data: bytes) -> None:
        if len(self._backlog) + len(data) > _MAX_BACKLOG:
            self.dropped_bytes += len(data)  # nobody reads: drop whole frames, never halves
            return
        if not self._backlog and self._master is not None and self._loop is not None:
            self._loop.add_writer(self._master, self._drain)
        self._backlog += data

    def _drain(self) -> None:
        master = self._master
        if master is None:
            return
        try:
            sent = os.write(master, bytes(self._backlog))
        except BlockingIOError:
            return
        except OSError:
            sent = len(self._backlog)
        del self._backlog[:sent]
        if not self._backlog and self._loop is not None:
            self._loop.remove_writer(master)

    def _now(self) -> float:
        return self._loop.time() if self._loop is not None else 0.0

    def _trace(self, direction: str, wire: bytes, text: str) -> None:
        if self._trace_file is not None:
            self._trace_file.write(f"{self._now():.6f} {direction} {wire.hex(' ')} | {text}\n")
            self._trace_file.flush()

    def _say(self, text: str) -> None:
        if self._log is not None:
            self._log(text)
