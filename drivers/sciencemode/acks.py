"""Waiting for packet-numbered acks, as both ScienceMode host drivers do.

A ScienceMode host writes a command with a packet number and waits for the frame that answers
it: the ack (command + 1, the same packet number) or a refusal the generation defines
(``docs/protocols/sciencemode2.md`` §4, §7; ``docs/protocols/sciencemode4.md`` §4, §10).
:class:`PendingAcks` keeps the requests that wait, by packet number, with one timer for all of
them (this runs for every update: a timer each, or ``asyncio.wait_for``, costs more), and fails
a request whose ack is overdue with :class:`~emsctl.errors.DeviceTimeoutError`.

Also here: :class:`Aborted`, how an update that a stop overtook is dropped, and
:func:`ignore_result` for the drivers' background tasks.

Reads time only from the running loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from ...errors import DeviceError, DeviceTimeoutError

__all__ = ["Aborted", "PendingAcks", "ignore_result"]

#: A timer may run a hair before its time (the loop's clock resolution): an ack counts as
#: overdue this close to its deadline.
TIMER_SLACK_S = 1e-6


class Aborted(Exception):
    """A stop came while an update was on its way: the update is dropped, never resent."""


def ignore_result(task: asyncio.Future[None]) -> None:
    """Background writes and lease stops report through telemetry; never 'exception was never
    retrieved'."""
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()


class Reply(Protocol):
    """A decoded frame from the device."""

    @property
    def packet_number(self) -> int:
        """The packet number it echoes."""

    @property
    def command(self) -> int:
        """Its command number."""


ReplyT = TypeVar("ReplyT", bound=Reply)

#: (command, packet number) → the wire frame of its usual ack and the reply it decodes to, or
#: None when it has none (its ack carries data).
UsualAck = Callable[[int, int], tuple[bytes, ReplyT] | None]


class PendingAcks(Generic[ReplyT]):
    """The requests that wait for their acks, by packet number, with one timer for all.

    Args:
        timeout_s: how long each request waits for its ack.
        write: puts a frame on the wire.
        usual: the usual ack of a request (see the module's docstring), or None.
    """

    def __init__(self, timeout_s: float, write: Callable[[bytes], Awaitable[None]],
                 usual: UsualAck[ReplyT] | None = None) -> None:
        self.timeout_s = timeout_s
        self._write = write
        self._usual = usual
        #: packet number → (the request's command, the future its ack completes, its deadline)
        self._pending: dict[int, tuple[int, asyncio.Future[ReplyT], float]] = {}
        #: the wire frames of the usual acks of the requests that wait → their replies
        self._usual_frames: dict[bytes, ReplyT] = {}
        self._timer: asyncio.TimerHandle | None = None

    async def request(self, packet_number: int, command: int, frame: bytes) -> ReplyT:
        """Write ``frame`` (``command`` with ``packet_number``) now and wait for its answer.

        Raises:
            DeviceTimeoutError: no ack within the timeout.
            DeviceError: whatever :meth:`refuse` or :meth:`fail_all` set (a refusal, a lost
                link, a reset), or what the write raised.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ReplyT] = loop.create_future()
        deadline_s = loop.time() + self.timeout_s
        self._pending[packet_number] = (command, future, deadline_s)
        timer = self._timer
        if timer is None or timer.when() > deadline_s:
            if timer is not None:
                timer.cancel()
            self._timer = loop.call_at(deadline_s, self._due)
        usual = None
        try:
            await self._write(frame)
            # noted while the device works on the frame: this costs the wait nothing
            usual = None if self._usual is None else self._usual(command, packet_number)
            if usual is not None:
                self._usual_frames[usual[0]] = usual[1]
            return await future
        finally:
            entry = self._pending.get(packet_number)
            if entry is not None and entry[1] is future:
                del self._pending[packet_number]
            if usual is not None:
                self._usual_frames.pop(usual[0], None)

    def take_usual(self, data: bytes) -> bool:
        """Resolve the request whose usual ack is exactly ``data`` (one whole frame).

        Returns:
            Whether it did; when not, decode ``data`` as usual.
        """
        reply = self._usual_frames.get(data)
        return reply is not None and self.resolve(reply)

    def resolve(self, reply: ReplyT) -> bool:
        """Hand ``reply`` to the request it acknowledges (command + 1, same packet number).

        Returns:
            Whether a waiting request took it.
        """
        entry = self._pending.get(reply.packet_number)
        if entry is None:
            return False  # a late ack of a request given up on, or nothing we asked for
        command, future, _deadline_s = entry
        if future.done() or reply.command != command + 1:
            return False
        future.set_result(reply)
        return True

    def refuse(self, packet_number: int, error: DeviceError) -> None:
        """The device refused the request with ``packet_number``: it fails with ``error``."""
        entry = self._pending.get(packet_number)
        if entry is not None and not entry[1].done():
            entry[1].set_exception(error)

    def fail_all(self, error: DeviceError) -> None:
        """Every waiting request fails with ``error`` (a lost link, a reset, a close); the
        timer is cancelled."""
        for _command, future, _deadline_s in list(self._pending.values()):
            if not future.done():
                future.set_exception(error)
        self._pending.clear()
        self._usual_frames.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _due(self) -> None:
        """The timer: fail every request whose ack is overdue; set the timer again for the
        earliest one still waiting."""
        self._timer = None
        loop = asyncio.get_running_loop()
        now_s = loop.time()
        next_s = math.inf
        for _command, future, deadline_s in list(self._pending.values()):
            if future.done():
                continue
            if deadline_s <= now_s + TIMER_SLACK_S:
                future.set_exception(DeviceTimeoutError(f"no ack within {self.timeout_s:g} s"))
            else:
                next_s = min(next_s, deadline_s)
        if next_s < math.inf:
            self._timer = loop.call_at(next_s, self._due)
