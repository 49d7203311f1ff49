"""Raise a connected driver's output the only way the driver contract allows: step by step.

``Driver.apply`` refuses any rise faster than :data:`~emsctl.limit_table.PLAN_RISE_CEILING_MA_PER_S`
from what the device delivers now (the last setpoints while their lease holds, zero after it):
per apply, a channel may rise by at most the ceiling × min(time since the last apply, the update
period) plus one device step. Tests whose subject is not the first rise itself reach their level
with these helpers, as a session's soft start would; tests that count commands, frames or time
start their window after :func:`ramp_below` and make the last rise themselves.

::

    from support.ramp import ramp_below, ramp_to

    await ramp_to(driver, [SP, ZERO], lease_s=1.0)   # ramp, then apply the target
    await ramp_below(driver, [SP, ZERO])            # ramp; the caller applies the target
    mark = len(sent)
    await driver.apply([SP, ZERO], 1.0)             # one allowed rise, observed alone

Nothing here loosens the rule: every step goes through ``Driver.apply`` and its check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

from emsctl.contract import Capabilities, ChannelSetpoint, Driver
from emsctl.limit_table import PLAN_RISE_CEILING_MA_PER_S

__all__ = ["allowance_ma", "delivered_ma", "ramp_below", "ramp_to", "rise_step_ma"]

#: Far more steps than any ramp to the 80 mA ceiling needs: only a bug loops this long.
_MAX_STEPS = 1000


def rise_step_ma(capabilities: Capabilities) -> float:
    """The largest rise one ramp step makes: the ceiling over one update period, floored to
    whole device steps (so rounding never adds to it), and at least one device step."""
    per_period_ma = PLAN_RISE_CEILING_MA_PER_S * capabilities.update_period_s
    step_ma = capabilities.amplitude_step_ma
    if step_ma <= 0:  # no device step to absorb clock jitter: stay a hair under the ceiling
        return per_period_ma * (1 - 1e-6)
    return max(capabilities.quantize_ma(per_period_ma), step_ma)


def _since_last_apply_s(driver: Driver) -> float:
    return max(0.0, driver._now() - driver._applied_at_s)


def delivered_ma(driver: Driver) -> tuple[float, ...]:
    """Per channel, what the contract counts as delivered now: the last setpoints while their
    lease holds, zero after it (as ``Driver.apply`` judges a rise)."""
    held = _since_last_apply_s(driver) < driver._applied_lease_s
    return tuple(sp.amplitude_ma if held else 0.0 for sp in driver.last_applied)


def allowance_ma(driver: Driver) -> float:
    """How far above :func:`delivered_ma` one apply may raise a channel right now."""
    caps = driver.capabilities
    return (PLAN_RISE_CEILING_MA_PER_S * min(_since_last_apply_s(driver), caps.update_period_s)
            + caps.amplitude_step_ma)


async def _wait_out_the_period(driver: Driver) -> None:
    """Sleep until one update period has passed since the last apply (the full allowance)."""
    left_s = driver.capabilities.update_period_s - _since_last_apply_s(driver)
    if left_s > 0:
        await asyncio.sleep(left_s)


def _at(sp: ChannelSetpoint, amplitude_ma: float) -> ChannelSetpoint:
    return sp if amplitude_ma >= sp.amplitude_ma else replace(sp, amplitude_ma=amplitude_ma)


async def ramp_below(driver: Driver, setpoints: Sequence[ChannelSetpoint], *,
                     step_lease_s: float | None = None) -> int:
    """Raise the output of a connected driver in allowed steps until ``setpoints`` may be
    applied at once, and return without applying them.

    Each step sets every channel to min(its target, what it delivers + :func:`rise_step_ma`), at
    the target's frequency and pulse width (a channel going down goes straight to its target),
    renews the lease with ``step_lease_s`` (default: the device's longest lease), and comes one
    update period after the previous apply. On return, either no channel rises by more than a
    device step, or one update period has passed since the last apply and no channel rises by
    more than a step: the caller's ``apply(setpoints, …)`` next, with no await in between, is
    within the rule.

    Returns:
        How many steps were applied (0: the target was within reach already).

    Raises:
        whatever ``Driver.apply`` raises for a step (a stop, a lost link, a missing ack).
    """
    caps = driver.capabilities
    lease_s = caps.max_lease_s if step_lease_s is None else step_lease_s
    step_ma = rise_step_ma(caps)
    targets = [caps.quantize_ma(sp.amplitude_ma) for sp in setpoints]

    def rises() -> list[float]:
        return [t - d for t, d in zip(targets, delivered_ma(driver), strict=True)]

    for steps in range(_MAX_STEPS):
        if max(rises(), default=0.0) <= caps.amplitude_step_ma:
            return steps  # allowed at once, however recent the last apply
        await _wait_out_the_period(driver)
        delivered = delivered_ma(driver)
        if max(t - d for t, d in zip(targets, delivered, strict=True)) <= step_ma:
            return steps
        await driver.apply([_at(sp, min(t, d + step_ma))
                            for sp, t, d in zip(setpoints, targets, delivered, strict=True)],
                           lease_s)
    raise AssertionError(f"no ramp needs {_MAX_STEPS} steps: the output does not follow them")


async def ramp_to(driver: Driver, setpoints: Sequence[ChannelSetpoint], lease_s: float, *,
                  step_lease_s: float | None = None) -> int:
    """:func:`ramp_below`, then ``driver.apply(setpoints, lease_s)``.

    Returns:
        How many steps came before the target.
    """
    steps = await ramp_below(driver, setpoints, step_lease_s=step_lease_s)
    await driver.apply(setpoints, lease_s)
    return steps

