"""The emulated openEMSstim board's USB serial port on a pseudo-terminal, in real time.

Any program — emsctl's ``openems://`` driver, the project's own Python example, a terminal —
can open the printed slave path and talk to the emulated board byte for byte (19 200 8N1 is
accepted but not enforced by a pty). :class:`OpenEmsPtyServer` puts the master side on the
running event loop (``add_reader``, non-blocking writes: no threads); :func:`serve_pty` runs
one until cancelled, for ``emsctl simulate openems --pty``.

A pty has no DTR line, so opening it does not reset the board as a USB cable does: the board
boots once when the server starts (``boot_s`` of its configuration) and the driver's ready
timeout covers a banner it did not see. The slave side is kept open by the server, so a client
that closes and reopens the port finds the same board. POSIX only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from collections.abc import Callable

from .openems import OpenEmsBoard, OpenEmsConfig

__all__ = ["OpenEmsPtyServer", "serve_pty"]

_READ_CHUNK = 4096


class OpenEmsPtyServer:
    """One emulated board behind one pseudo-terminal.

    Args:
        board: the board to serve (a fresh one per server).
    """

    def __init__(self, board: OpenEmsBoard) -> None:
        self.board = board
        self.path = ""
        self._master: int | None = None
        self._slave: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> str:
        """Open the pty, attach the board, start its boot; return the slave path.

        Raises:
            OSError: no pseudo-terminal could be allocated.
        """
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo: the board's own output must never come back as input
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.path = os.ttyname(slave)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(master, self._readable)
        self.board.usb_writer = self._write
        self.board.reset()
        return self.path

    def _readable(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, _READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # EIO while no client holds the slave open: nothing to read
        if data:
            self.board.serial_receive(data)

    def _write(self, data: bytes) -> None:
        if self._master is None:
            return
        # A UART does not wait for its listener: what the pty cannot take is lost.
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._master, data)

    async def close(self) -> None:
        """Detach and close both sides of the pty. Idempotent."""
        master, self._master = self._master, None
        slave, self._slave = self._slave, None
        self.board.usb_writer = None
        if master is not None:
            if self._loop is not None:
                self._loop.remove_reader(master)
            os.close(master)
        if slave is not None:
            os.close(slave)

    async def __aenter__(self) -> OpenEmsPtyServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def serve_pty(config: OpenEmsConfig, announce: Callable[[str], None] = print) -> None:
    """Serve a new board on a pty until cancelled; ``announce`` gets the slave path.

    Raises:
        OSError: no pseudo-terminal could be allocated.
    """
    async with OpenEmsPtyServer(OpenEmsBoard(config)) as server:
        announce(server.path)
        await asyncio.Event().wait()
