"""``--speed N`` keeps to N × the wall clock: the time a tick takes is absorbed, never added.

The wall clock here is a fake one (``time.monotonic`` in :mod:`emsctl.clock`), advanced by the
waits the selector is asked to make and by the "work" each tick pretends to do, so no test
passes or fails on how fast the machine is. ``emsctl run --speed`` through the real CLI is in
``test_run_end_screen.py``; the measured figures are in ``benchmarks/bench_speed.py``.
"""

from __future__ import annotations

import asyncio
import selectors
from typing import Any

import pytest

from emsctl import clock as clock_module
from emsctl.clock import MAX_CATCH_UP_S, VirtualClock


class FakeWall:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def monotonic(self) -> float:
        return self.now_s


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> FakeWall:
    fake = FakeWall()

    class Selector(selectors.DefaultSelector):  # type: ignore[misc, valid-type]
        def select(self, timeout: float | None = None) -> list[Any]:
            if timeout:  # a wait: the fake wall clock moves by exactly the wait
                fake.now_s += timeout
                return []
            return super().select(0)

    monkeypatch.setattr(clock_module.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(clock_module.selectors, "DefaultSelector", Selector)
    return fake


def run_ticks(clock: VirtualClock, wall: FakeWall, ticks: int, period_s: float,
              work_s: float) -> tuple[float, float]:
    """``ticks`` sleeps of ``period_s`` virtual seconds, each after ``work_s`` wall seconds."""

    async def main() -> float:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0.001)  # the first paced wait sets the schedule's start
        start_s = loop.time()
        for _ in range(ticks):
            wall.now_s += work_s  # the tick's own processing time
            await asyncio.sleep(period_s)
        return loop.time() - start_s

    wall_start_s = wall.now_s
    virtual_s = clock.run(main())
    return virtual_s, wall.now_s - wall_start_s


@pytest.mark.parametrize("speed", [10.0, 60.0, 600.0])
def test_processing_time_is_absorbed_in_the_paced_waits(wall: FakeWall, speed: float) -> None:
    period_s = 0.1
    # work up to 40 % of each tick's wall budget: the old pacing added it on top of each wait
    work_s = 0.4 * period_s / speed
    virtual_s, wall_s = run_ticks(VirtualClock(speed), wall, 500, period_s, work_s)
    assert virtual_s == pytest.approx(50.0, abs=1e-6)
    assert wall_s == pytest.approx(50.0 / speed, rel=0.005)


def test_a_machine_that_cannot_keep_up_runs_at_its_maximum_and_says_so(wall: FakeWall) -> None:
    clock = VirtualClock(600.0)
    # each 0.1 s tick takes 1 ms of work: at most 100× is possible, 600× is asked
    virtual_s, wall_s = run_ticks(clock, wall, 2000, 0.1, 0.001)
    assert virtual_s == pytest.approx(200.0, abs=1e-6)
    assert wall_s == pytest.approx(2.0 + 0.001, rel=0.01)  # as fast as the work allows
    assert clock.at_maximum
    assert clock.achieved_speed == pytest.approx(100.0, rel=0.01)


def test_a_long_stall_is_not_followed_by_a_burst(wall: FakeWall) -> None:
    clock = VirtualClock(10.0)

    async def main() -> list[float]:
        await asyncio.sleep(0.001)
        seen = []
        for tick in range(100):
            if tick == 10:
                wall.now_s += 5.0  # the process was stopped for 5 s of wall time
            before = wall.now_s
            await asyncio.sleep(0.1)
            seen.append(wall.now_s - before)
        return seen

    waits = clock.run(main())
    # after the stall at most MAX_CATCH_UP_S is caught up, then ticks are paced again
    caught_up = sum(0.01 - w for w in waits[10:] if w < 0.01)
    assert caught_up == pytest.approx(MAX_CATCH_UP_S, abs=0.011)
    assert waits[-1] == pytest.approx(0.01)


def test_a_clock_that_keeps_up_is_not_at_its_maximum(wall: FakeWall) -> None:
    clock = VirtualClock(60.0)
    run_ticks(clock, wall, 100, 0.1, 0.0)
    assert not clock.at_maximum
    assert clock.achieved_speed == pytest.approx(60.0, rel=0.01)
