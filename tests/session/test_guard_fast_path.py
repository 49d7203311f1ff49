"""The guard's fast path for unchanged setpoints keeps every run-time rule that can change.

The session hands the guard the very same setpoint objects while the plan is steady, and the
guard then skips the per-channel checks it already made. What can still change with time must
still be checked: the session length (L19) and the stop latch (HZ-03).
"""

from __future__ import annotations

import pytest

from emsctl.contract import ZERO, ChannelSetpoint
from emsctl.errors import SafetyViolation
from emsctl.guard import ChannelGuard, Guard
from emsctl.limits import DEFAULTS

ON = ChannelSetpoint(10.0, 6.0, 250.0)


def guard() -> Guard:
    g = Guard(DEFAULTS, [ChannelGuard(20.0, 20.0), ChannelGuard(0.0, 1.0)], 0.1)
    for k in range(101):  # a soft start to 10 mA, within L16/L17
        g.check(k * 0.1, k * 0.1, [ChannelSetpoint(k * 0.1, 6.0, 250.0), ZERO])
    return g


def test_unchanged_setpoints_still_stop_at_the_session_limit() -> None:
    g = guard()
    same = [ON, ZERO]
    assert g.check(11.0, 11.0, same) == (ON, ZERO)
    assert g.check(11.1, 11.1, same) == (ON, ZERO)  # the fast path
    limit_s = DEFAULTS.session_max_s
    with pytest.raises(SafetyViolation, match="L19"):
        g.check(limit_s + 1, limit_s + 1, same)
    assert g.latched


def test_unchanged_zero_setpoints_pass_after_the_session_limit() -> None:
    g = Guard(DEFAULTS, [ChannelGuard(20.0, 20.0)], 0.1)
    limit_s = DEFAULTS.session_max_s
    assert g.check(0.0, 0.0, [ZERO]) == (ZERO,)
    assert g.check(limit_s + 5, limit_s + 5, [ZERO]) == (ZERO,)


def test_the_latch_holds_for_the_same_objects_too() -> None:
    g = guard()
    same = [ON, ZERO]
    g.check(11.0, 11.0, same)
    g.latch()
    with pytest.raises(SafetyViolation, match="after stop"):
        g.check(11.1, 11.1, same)
    assert g.check(11.2, 11.2, [ZERO, ZERO]) == (ZERO, ZERO)


def test_a_new_object_with_a_jump_is_checked_in_full() -> None:
    g = guard()
    g.check(11.0, 11.0, [ON, ZERO])
    with pytest.raises(SafetyViolation, match="L16/L17"):
        g.check(11.1, 11.1, [ChannelSetpoint(19.0, 6.0, 250.0), ZERO])
