"""Stop wins every race with a pending update (HZ-03, L22): thousands of seeded interleavings.

Each case runs ``circulation`` (output from the first tick on) on the simulator in virtual time,
with acks delayed by the fault plan (``late_acks``), so that most updates are still waiting for
their ack — or about to be retried — when the stop comes. The stop is fired at a seeded moment
tied to the n-th command: at once, at a random point of its ack wait, exactly when its ack
arrives, exactly when its ack wait times out (the driver's retry point), or from inside the ack's
telemetry. Every call that reaches the device is numbered on one counter together with the stop,
so "after" is exact even within one instant of virtual time.

Asserted per case: no command with a non-zero amplitude reaches the device after ``stop()`` was
called; the device's output is zero from the stop's instant on; the session ends "stopped".
A last test runs the same harness against a driver that retries after a stop, to show the
harness catches what it is meant to catch.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from dataclasses import dataclass, field
from functools import cache

from session_helpers import prepared

from emsctl.clock import VirtualClock
from emsctl.contract import ChannelSetpoint, Telemetry
from emsctl.errors import DeviceTimeoutError, LinkLostError
from emsctl.limits import DEFAULTS
from emsctl.plan import Plan
from emsctl.session import Session
from emsctl.simulator.drivers.sim import SimDriver
from emsctl.simulator.faults import Fault, FaultPlan
from emsctl.verify import certify

CASES = 2000
MODES = ("now", "during_wait", "at_ack", "at_timeout", "from_ack_telemetry")


@cache
def circulation_plan() -> Plan:
    return prepared("circulation").plan


@dataclass
class Case:
    seed: int
    mode: str
    stop_seq: int | None = None
    stop_t_s: float | None = None
    pending_at_stop: bool = False
    on_at_stop: bool = False
    end_reason: str = ""
    late_nonzero: list[tuple[int, float, float]] = field(default_factory=list)
    zero_after_stop: bool = True


class RetryAfterStopDriver(SimDriver):
    """A deliberately broken driver: it retries a timed-out command even after a stop (HZ-03)."""

    async def _apply_internal(self, setpoints: tuple[ChannelSetpoint, ...],
                              lease_s: float) -> None:
        for _ in range(2):
            if not self.link_up:
                raise LinkLostError("lost")
            try:
                await asyncio.wait_for(self._send(setpoints, lease_s), self.ack_timeout_s)
                return
            except TimeoutError:
                continue
        raise DeviceTimeoutError("no ack")


def run_case(seed: int, driver_cls: type[SimDriver] = SimDriver) -> Case:
    rng = random.Random(seed)
    mode = MODES[seed % len(MODES)]
    case = Case(seed, mode)
    timeout_s = rng.choice([0.05, 0.1, 0.3])
    late_from_s = rng.uniform(0.0, 1.5)
    if rng.random() < 0.5:  # acks late but within the timeout: the update waits, then succeeds
        delay_s = rng.choice([0.3, 0.7, 0.95]) * timeout_s
        late = Fault("late_acks", at_s=late_from_s, value=delay_s)
    else:  # one ack later than the timeout: the driver's retry point comes before the ack
        delay_s = rng.choice([1.2, 1.5, 1.9]) * timeout_s
        late = Fault("late_acks", at_s=late_from_s, value=delay_s,
                     duration_s=rng.uniform(0.2, 0.9) * timeout_s)
    driver = driver_cls(fault_plan=FaultPlan([late]), ack_timeout_s=timeout_s)
    device = driver.device
    counter = itertools.count()
    sent: list[tuple[int, float, float]] = []  # (seq, loop time, largest amplitude)
    nth = rng.randint(2, 40)
    box: dict[str, Session] = {}
    box_flags: set[str] = set()

    def fire_stop() -> None:
        if case.stop_seq is not None:
            return
        loop = asyncio.get_running_loop()
        case.stop_seq, case.stop_t_s = next(counter), loop.time()
        case.pending_at_stop = any(not f.done() for f in driver._pending)
        case.on_at_stop = any(o.amplitude_ma > 0 for o in device.output_now())
        box["session"].stop("stopped", "stop race")

    real_set_outputs = device.set_outputs

    def set_outputs(setpoints, lease_s):
        loop = asyncio.get_running_loop()
        sent.append((next(counter), loop.time(), max(sp.amplitude_ma for sp in setpoints)))
        # the trigger: the first command whose ack will be late, or else a seeded n-th command
        first_late = bool(driver._late_acks) and "armed" not in box_flags
        if first_late or len(sent) == nth:
            box_flags.add("armed")
            now = loop.time()
            if mode == "now":
                loop.call_soon(fire_stop)
            elif mode == "during_wait":
                loop.call_at(now + rng.uniform(0.0, min(delay_s, timeout_s)), fire_stop)
            elif mode == "at_ack":  # the same float the driver's call_later computes
                loop.call_at(now + delay_s, fire_stop)
            elif mode == "at_timeout":  # the same float wait_for's call_later computes
                loop.call_at(now + timeout_s, fire_stop)
        return real_set_outputs(setpoints, lease_s)

    device.set_outputs = set_outputs  # type: ignore[method-assign]

    def on_telemetry(report: Telemetry) -> None:
        if mode == "from_ack_telemetry" and report.kind == "ack" and "armed" in box_flags:
            fire_stop()

    async def main() -> str:
        await driver.connect()
        session = Session(certify(circulation_plan(), DEFAULTS, driver.capabilities), driver)
        box["session"] = session
        driver.add_listener(on_telemetry)
        asyncio.get_running_loop().call_later(30.0, fire_stop)  # a backstop; never needed
        result = await session.run()
        await driver.close()
        return result.end_reason

    case.end_reason = VirtualClock(None).run(main())
    if case.stop_seq is None or case.stop_t_s is None:
        return case  # the session failed before the stop (counted by the caller)
    case.late_nonzero = [s for s in sent if s[0] > case.stop_seq and s[2] > 0]
    case.zero_after_stop = all(
        not (iv["amplitude_ma"] > 0).any()
        for ch in device.channels
        for iv in [device.intervals(ch)[device.intervals(ch)["t1_s"] > case.stop_t_s]])
    return case


def test_stop_wins_over_pending_updates_in_thousands_of_interleavings() -> None:
    cases = [run_case(seed) for seed in range(CASES)]
    bad = [c for c in cases if c.stop_seq is not None and (
        c.late_nonzero or not c.zero_after_stop or c.end_reason != "stopped")]
    assert not bad, [(c.seed, c.mode, c.late_nonzero[:3], c.end_reason) for c in bad[:5]]
    stopped = [c for c in cases if c.end_reason == "stopped"]
    # the cases really raced: most stops came while an update waited for its ack, with output on
    assert len(stopped) >= 0.9 * CASES
    assert sum(c.pending_at_stop for c in stopped) >= CASES // 3
    assert sum(c.on_at_stop for c in stopped) >= 0.9 * len(stopped)
    for mode in MODES:
        assert sum(c.mode == mode and c.pending_at_stop for c in stopped) >= 50 or \
            mode == "from_ack_telemetry", mode


def test_the_race_harness_catches_a_driver_that_retries_after_stop() -> None:
    cases = [run_case(seed, RetryAfterStopDriver) for seed in range(300)]
    caught = [c for c in cases if c.late_nonzero]
    assert len(caught) >= 10, "the harness must be able to fail"
    assert all(c.late_nonzero[0][1] >= c.stop_t_s for c in caught)  # type: ignore[operator]
