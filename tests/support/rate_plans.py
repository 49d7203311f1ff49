"""Plans for the tests of the rates a device makes (tests/coyote3, tests/drivers): one channel,
a soft start and a steady minute, built directly as segments so the rate can sit anywhere."""

from __future__ import annotations

import numpy as np

from emsctl.plan import SEGMENT_DTYPE, ChannelPlan, PhaseSpan, Plan
from emsctl.verify import Violation

__all__ = ["blocks", "steady_plan"]


def steady_plan(hz0: float, ma: float = 5.0, us: float = 180.0, hz1: float | None = None,
                sensory: bool = True) -> Plan:
    """5 s of soft start to ``ma``, then 60 s at ``ma``; the rate ``hz0`` (ramping to ``hz1``
    in the second segment when given). ``sensory=False`` makes it a motor-level phase."""
    hz1 = hz0 if hz1 is None else hz1
    rows = [(0.0, 5.0, 0.0, ma, hz0, hz0, us, us, 0.0, 0, 0),
            (5.0, 65.0, ma, ma, hz0, hz1, us, us, 0.0, 0, 0)]
    channel = ChannelPlan(1, "lower-back-left", 20.0, 30.0, np.array(rows, dtype=SEGMENT_DTYPE))
    return Plan("rate", 65.0, (PhaseSpan(0, "steady", "stim", 0.0, 65.0, None, sensory),),
                (channel,), 5.0, purpose="tens")


def blocks(found: list[Violation], limit_id: str) -> list[Violation]:
    """The blocking findings of ``limit_id``."""
    return [v for v in found if v.limit_id == limit_id and v.severity == "block"]
