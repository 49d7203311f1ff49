"""Clocks: where a session's time comes from.

A clock owns the asyncio event loop a session runs on, so that every timer in the program —
``asyncio.sleep``, ``asyncio.wait_for``, ``loop.call_later``, ack timeouts in drivers — follows
the same time. :class:`RealClock` is the ordinary monotonic loop. :class:`VirtualClock` runs a
loop whose time jumps to the next timer whenever nothing is ready: as fast as possible (a
20-minute session then takes well under a second), or paced at ``speed`` × real time, measured
from the start of the run so the program's own processing time is absorbed, not added.
Virtual time is for the simulator only: the CLI refuses ``--speed`` with a real device.

Drivers and the session read time only through ``clock.now()`` (``loop.time()``), never
``time.time()``, so a wall-clock jump (NTP, DST) cannot stretch a session (HZ-05).
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Coroutine, Mapping
from typing import Any, Protocol, TypeVar

__all__ = ["MAX_CATCH_UP_S", "SPEED_TOLERANCE", "Clock", "RealClock", "VirtualClock",
           "VirtualEventLoop"]

T = TypeVar("T")


class Clock(Protocol):
    """The time source of a session."""

    @property
    def is_virtual(self) -> bool:
        """True when time is simulated (only allowed with simulated devices)."""

    def now(self) -> float:
        """Monotonic seconds on the running loop."""

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        """Run ``main`` to completion on a new loop that follows this clock."""


class RealClock:
    """Monotonic real time: the ordinary asyncio loop."""

    is_virtual = False

    def now(self) -> float:
        """Monotonic seconds on the running loop."""
        return asyncio.get_running_loop().time()

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        """Run ``main`` with :func:`asyncio.run`."""
        return asyncio.run(main)


class VirtualClock:
    """Simulated time: ``speed=None`` runs as fast as possible, a number paces it to real time.

    A paced clock keeps to ``speed`` × the wall clock over the whole run: every wait is measured
    from the run's start, not from the moment the wait began, so the time the program itself
    takes is absorbed in the waits instead of added to them. When the machine cannot keep up,
    the run goes as fast as it can and :attr:`at_maximum` says so.

    Args:
        speed: virtual seconds per real second, or ``None`` for as fast as possible.
    """

    is_virtual = True

    def __init__(self, speed: float | None = None) -> None:
        if speed is not None and speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._loop: VirtualEventLoop | None = None

    def now(self) -> float:
        """Virtual seconds on the running loop."""
        return asyncio.get_running_loop().time()

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        """Run ``main`` to completion on a :class:`VirtualEventLoop`."""

        def factory() -> VirtualEventLoop:
            self._loop = VirtualEventLoop(self.speed)
            return self._loop

        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main)

    @property
    def achieved_speed(self) -> float | None:
        """Virtual seconds per wall second so far in the last run (None before any pacing)."""
        return None if self._loop is None else self._loop.achieved_speed

    @property
    def at_maximum(self) -> bool:
        """True when the last run could not keep to ``speed`` (within 2 %) and ran as fast as
        this machine could."""
        achieved = self.achieved_speed
        return (self.speed is not None and achieved is not None
                and achieved < self.speed * (1.0 - SPEED_TOLERANCE))


#: A paced run within this fraction of its speed is keeping up.
SPEED_TOLERANCE = 0.02
#: A paced clock that falls behind its schedule by more than this (wall seconds) stops trying
#: to catch up the difference: it runs at the machine's maximum and says so.
MAX_CATCH_UP_S = 0.5


class _Pacer:
    """Where virtual time should be now: ``speed`` × the wall time since the anchor.

    The anchor is set at the first wait. Falling behind by up to :data:`MAX_CATCH_UP_S` is
    caught up (a short stall, a slow tick); anything beyond that moves the anchor, so a long
    stall is never followed by a burst.
    """

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._anchor_wall_s: float | None = None
        self._anchor_virtual_s = 0.0
        self._first_wall_s = 0.0
        self._first_virtual_s = 0.0
        self._virtual_now_s = 0.0
        self._last_wall_s = 0.0

    def wait_s(self, virtual_now_s: float, timeout_s: float) -> float:
        """Wall seconds to wait before virtual time may reach ``virtual_now_s + timeout_s``."""
        wall_s = self._last_wall_s = time.monotonic()
        self._virtual_now_s = virtual_now_s
        if self._anchor_wall_s is None:
            self._anchor_wall_s, self._anchor_virtual_s = wall_s, virtual_now_s
            self._first_wall_s, self._first_virtual_s = wall_s, virtual_now_s
        due_wall_s = (self._anchor_wall_s
                      + (virtual_now_s + timeout_s - self._anchor_virtual_s) / self.speed)
        late_s = wall_s - (self._anchor_wall_s
                           + (virtual_now_s - self._anchor_virtual_s) / self.speed)
        if late_s > MAX_CATCH_UP_S:
            # the machine cannot keep up: give up the excess instead of bursting to catch up
            self._anchor_wall_s += late_s - MAX_CATCH_UP_S
            due_wall_s += late_s - MAX_CATCH_UP_S
        return max(0.0, due_wall_s - wall_s)

    def virtual_at(self, wall_s: float) -> float:
        """Where virtual time should be at ``wall_s`` (the anchor's line)."""
        assert self._anchor_wall_s is not None
        return self._anchor_virtual_s + (wall_s - self._anchor_wall_s) * self.speed

    def achieved(self) -> float | None:
        """Virtual seconds per wall second from the first wait to the latest one."""
        elapsed_s = self._last_wall_s - self._first_wall_s
        if self._anchor_wall_s is None or elapsed_s <= 0:
            return None
        return (self._virtual_now_s - self._first_virtual_s) / elapsed_s


class _VirtualSelector(selectors.BaseSelector):
    """A selector that turns "wait for the next timer" into a jump of virtual time.

    Real file descriptors (the loop's self-pipe, signals, a pty) are still polled, so signal
    handlers and real I/O keep working while time is virtual. With a speed, each jump waits on
    the wall clock until the jump's target is due on the run's schedule (see :class:`_Pacer`).
    """

    def __init__(self, loop: VirtualEventLoop, speed: float | None) -> None:
        self._real = selectors.DefaultSelector()
        self._loop = loop
        self.pacer = None if speed is None else _Pacer(speed)

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = self._real.select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            # No timer pending: only real I/O can wake the loop.
            return self._real.select(None)
        pacer = self.pacer
        if pacer is None:
            self._loop.advance(timeout)
            return []
        now_s = self._loop.time()
        wait_s = pacer.wait_s(now_s, timeout)
        events = self._real.select(wait_s) if wait_s > 0 else []
        if events:  # woken early by real I/O: only as far as the schedule has come
            self._loop.advance(min(timeout, pacer.virtual_at(time.monotonic()) - now_s))
        else:
            self._loop.advance(timeout)
        return events

    def close(self) -> None:
        self._real.close()

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.get_key(fileobj)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()


class VirtualEventLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose ``time()`` is virtual and advances only between ready callbacks."""

    def __init__(self, speed: float | None = None) -> None:
        self._virtual_now_s = 0.0
        self._virtual_selector = _VirtualSelector(self, speed)
        super().__init__(self._virtual_selector)

    def time(self) -> float:
        """Virtual seconds since the loop was made."""
        return self._virtual_now_s

    def advance(self, seconds: float) -> None:
        """Move virtual time forward by ``seconds`` (never backwards)."""
        if seconds > 0:
            self._virtual_now_s += seconds

    @property
    def achieved_speed(self) -> float | None:
        """Virtual seconds per wall second since the first paced wait (None: not paced)."""
        pacer = self._virtual_selector.pacer
        return None if pacer is None else pacer.achieved()
