"""Clocks: where a session's time comes from.

A clock owns the asyncio event loop a session runs on, so that every timer in the program —
``asyncio.sleep``, ``asyncio.wait_for``, ``loop.call_later``, ack timeouts in drivers — follows
the same time. :class:`RealClock` is the ordinary monotonic loop. :class:`VirtualClock` runs a
loop whose time jumps to the next timer whenever nothing is ready, optionally paced at ``speed``
× real time; a 20-minute session then takes well under a second. Virtual time is for the
simulator only: the CLI refuses ``--speed`` with a real device.

Drivers and the session read time only through ``clock.now()`` (``loop.time()``), never
``time.time()``, so a wall-clock jump (NTP, DST) cannot stretch a session (HZ-05).
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Coroutine, Mapping
from typing import Any, Protocol, TypeVar

__all__ = ["Clock", "RealClock", "VirtualClock", "VirtualEventLoop"]

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

    Args:
        speed: virtual seconds per real second, or ``None`` for as fast as possible.
    """

    is_virtual = True

    def __init__(self, speed: float | None = None) -> None:
        if speed is not None and speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed

    def now(self) -> float:
        """Virtual seconds on the running loop."""
        return asyncio.get_running_loop().time()

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        """Run ``main`` to completion on a :class:`VirtualEventLoop`."""
        with asyncio.Runner(loop_factory=lambda: VirtualEventLoop(self.speed)) as runner:
            return runner.run(main)


class _VirtualSelector(selectors.BaseSelector):
    """A selector that turns "wait for the next timer" into a jump of virtual time.

    Real file descriptors (the loop's self-pipe, signals, a pty) are still polled, so signal
    handlers and real I/O keep working while time is virtual.
    """

    def __init__(self, loop: VirtualEventLoop, speed: float | None) -> None:
        self._real = selectors.DefaultSelector()
        self._loop = loop
        self._speed = speed

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
        if self._speed is None:
            self._loop.advance(timeout)
            return []
        started = time.monotonic()
        events = self._real.select(timeout / self._speed)
        self._loop.advance(min(timeout, (time.monotonic() - started) * self._speed)
                           if events else timeout)
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
        super().__init__(_VirtualSelector(self, speed))

    def time(self) -> float:
        """Virtual seconds since the loop was made."""
        return self._virtual_now_s

    def advance(self, seconds: float) -> None:
        """Move virtual time forward by ``seconds`` (never backwards)."""
        if seconds > 0:
            self._virtual_now_s += seconds
