"""SerialLink's write queue over a real pseudo-terminal: what it hands the OS, what it keeps,
what a stop may drop and what a close must not lose.

The OS takes kilobytes at once and gives nothing back whole, so the link hands on at most
``AHEAD_S`` of line time ahead of the line and keeps later writes whole; ``discard_unsent``
drops those (superseded commands before a stop), never the rest of a write the OS took part of
(the device would get half a frame). Nothing here is judged on the wall clock: the master end
is read until the closed slave leaves it nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import tty
from collections.abc import Iterator

import pytest

from emsctl.drivers.links.base import AHEAD_S
from emsctl.drivers.links.serial import SerialLink

pytestmark = pytest.mark.realtime

#: 100 bytes take 52 ms on a 19 200-baud 8N1 line: more than AHEAD_S each.
W1, W2, W3 = (bytes([65 + i]) * 99 + b"\n" for i in range(3))


@pytest.fixture
def pty() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(slave)  # the link opened its own descriptor; this one kept the pty alive
        with contextlib.suppress(OSError):
            os.close(master)


def _link(path: str) -> SerialLink:
    return SerialLink(path, baud=19_200, parity="N")


async def _read_all(master: int, slave_fd_holder: SerialLink) -> bytes:
    """Everything the master end gets, read on the loop until the link is closed and nothing
    more is buffered."""
    got = bytearray()
    while True:
        try:
            chunk = os.read(master, 65536)
        except BlockingIOError:
            chunk = b""
        except OSError:  # EIO: no slave open and nothing buffered
            return bytes(got)
        got += chunk
        if not chunk:
            if not slave_fd_holder.is_open:
                return bytes(got)
            await asyncio.sleep(0.001)


def test_the_link_hands_on_one_line_of_time_and_keeps_later_writes_whole(
        pty: tuple[int, str]) -> None:
    master, path = pty
    assert len(W1) * _link(path).byte_s > AHEAD_S

    async def main() -> tuple[int, int, bytes]:
        link = _link(path)
        await link.open()
        for data in (W1, W2, W3):
            await link.write(data)
        waiting = link.unsent_bytes
        dropped = link.discard_unsent()
        await link.close()
        return waiting, dropped, await _read_all(master, link)

    waiting, dropped, got = asyncio.run(main())
    assert waiting == dropped == len(W2) + len(W3)
    assert got == W1  # the OS never had the two dropped writes


def test_close_hands_on_what_is_still_queued(pty: tuple[int, str]) -> None:
    # a stop and a backstop written just before close() must not be lost with the link
    master, path = pty

    async def main() -> bytes:
        link = _link(path)
        await link.open()
        for data in (W1, W2, W3):
            await link.write(data)
        assert link.unsent_bytes == len(W2) + len(W3)
        await link.close()
        return await _read_all(master, link)

    assert asyncio.run(main()) == W1 + W2 + W3


def test_a_write_the_os_took_part_of_is_completed_and_only_whole_writes_are_dropped(
        pty: tuple[int, str]) -> None:
    master, path = pty
    big = bytes(range(256)) * 32  # 8 KB: more than the room the full pty has

    async def main() -> tuple[int, bytes]:
        link = _link(path)
        await link.open()
        assert link._fd is not None
        filler = bytearray()
        with contextlib.suppress(BlockingIOError):
            while True:  # nobody reads: fill the pty until the OS takes no more
                filler += b"f" * os.write(link._fd, b"f" * 1000)
        head = os.read(master, 4096)  # some room, less than the big write needs
        writable = select.poll()
        writable.register(link._fd, select.POLLOUT)
        while not writable.poll(0):  # the pty makes the room known a moment later
            await asyncio.sleep(0.001)
        await link.write(big)
        partly = link.unsent_bytes
        assert 0 < partly < len(big)  # the OS took part of it
        await link.write(W1)  # queued behind it, whole
        dropped = link.discard_unsent()
        assert dropped == len(W1)
        rest = bytearray()
        while link.unsent_bytes:  # the rest of the big write still goes out
            with contextlib.suppress(BlockingIOError):
                rest += os.read(master, 65536)
            await asyncio.sleep(0.001)
        await link.close()
        rest += await _read_all(master, link)
        assert head + bytes(rest) == bytes(filler) + big
        return dropped, bytes(rest)

    asyncio.run(main())
