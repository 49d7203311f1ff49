"""The Coyote makes its rates from period bins: verification against it checks the rates it
makes, not only the plan's.

The period is rounded to a whole millisecond and then down to its bin's lower edge
(docs/protocols/coyote3.md §4), so 97 Hz is made as 100 Hz and 3 Hz as 3.03 Hz. A plan right at
a rate-dependent limit (the frequency ceiling L7, rms current L4, densities L9/L10, the tetanic
threshold of L18) passes on the plan's rates and would be over it at the device's.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.rate_plans import blocks, steady_plan

from emsctl.contract import Capabilities
from emsctl.devices import open_device
from emsctl.drivers.coyote3.frequency import (
    frequency_code_from_hz,
    frequency_hz_from_code,
    largest_rate_ratio,
)
from emsctl.limits import DEFAULTS, tighten
from emsctl.plan import SEGMENT_DTYPE, ChannelPlan, PhaseSpan, Plan
from emsctl.verify import verify

URL = "sim+coyote3?ma_per_step=0.2&us_per_intensity=3"


def _coyote() -> Capabilities:
    return open_device(URL).capabilities


def test_a_rate_at_the_frequency_ceiling_that_the_coyote_makes_above_it_is_refused() -> None:
    limits = tighten(DEFAULTS, frequency_max_hz=97.0)
    plan = steady_plan(97.0)
    assert blocks(verify(plan, limits), "L7") == []  # the plan's rate is at the ceiling
    found = blocks(verify(plan, limits, _coyote()), "L7")
    assert len(found) == 1
    assert found[0].value == pytest.approx(100.0)
    assert found[0].message == "100 Hz is outside 1–97 Hz (DG-LAB Coyote V3 makes 97 Hz as 100 Hz)"


def test_rms_current_at_its_limit_is_refused_at_the_rate_the_coyote_makes() -> None:
    # 5 mA, 180 µs: 0.934 mA rms at 97 Hz, 0.949 mA at the 100 Hz the Coyote makes
    limits = tighten(DEFAULTS, rms_ma=0.94)
    plan = steady_plan(97.0)
    assert blocks(verify(plan, limits), "L4") == []
    found = blocks(verify(plan, limits, _coyote()), "L4")
    assert len(found) == 1 and found[0].value == pytest.approx(0.9487, abs=1e-4)


def test_a_rate_just_under_the_tetanic_threshold_made_above_it_gets_its_rest_rule() -> None:
    # 19.85 Hz is a 50.4 ms period, made as 50 ms: 20 Hz, a tetanic train (L18)
    plan = steady_plan(19.85, ma=10.0, sensory=False)  # a motor-level phase
    assert blocks(verify(plan, DEFAULTS), "L18") == []
    assert blocks(verify(plan, DEFAULTS, _coyote()), "L18") != []


def test_a_ramp_of_rates_is_judged_at_the_fastest_the_coyote_makes_within_it() -> None:
    limits = tighten(DEFAULTS, frequency_max_hz=97.0)
    plan = steady_plan(80.0, hz1=96.5)  # within the ceiling; 96.5 Hz is made as 100 Hz
    assert blocks(verify(plan, limits), "L7") == []
    assert blocks(verify(plan, limits, _coyote()), "L7") != []


def test_a_rate_the_coyote_makes_exactly_changes_nothing() -> None:
    plan = steady_plan(50.0)  # 20 ms: exact
    limits = tighten(DEFAULTS, frequency_max_hz=50.0, rms_ma=1.2)
    assert verify(plan, limits, _coyote()) == verify(plan, limits, _coyote())
    assert blocks(verify(plan, limits, _coyote()), "L7") == []
    assert [v for v in verify(plan, limits, _coyote()) if "makes" in v.message] == []


@given(st.floats(1.0, 100.0), st.floats(1.0, 100.0))
def test_the_largest_ratio_bounds_every_rate_made_in_the_range_and_is_exact_for_one(
        a: float, b: float) -> None:
    low, high = min(a, b), max(a, b)
    ratio = largest_rate_ratio(low, high)
    for f in np.linspace(low, high, 41):
        made = frequency_hz_from_code(frequency_code_from_hz(float(f)))
        assert made <= f * ratio * (1 + 1e-12)
    made_low = frequency_hz_from_code(frequency_code_from_hz(low))
    assert largest_rate_ratio(low, low) == pytest.approx(made_low / low, rel=1e-12)


def test_a_falling_ramp_is_judged_at_the_fastest_rate_made_at_its_start() -> None:
    # 80 Hz, then a ramp from 96.5 down to 80 Hz: only the ramp's start is made above 97 Hz
    rows = [(0.0, 5.0, 0.0, 5.0, 80.0, 80.0, 180.0, 180.0, 0.0, 0, 0),
            (5.0, 65.0, 5.0, 5.0, 96.5, 80.0, 180.0, 180.0, 0.0, 0, 0)]
    channel = ChannelPlan(1, "lower-back-left", 20.0, 30.0, np.array(rows, dtype=SEGMENT_DTYPE))
    plan = Plan("rate", 65.0, (PhaseSpan(0, "steady", "stim", 0.0, 65.0, None, True),),
                (channel,), 5.0, purpose="tens")
    limits = tighten(DEFAULTS, frequency_max_hz=97.0)
    assert blocks(verify(plan, limits), "L7") == []
    (found,) = blocks(verify(plan, limits, _coyote()), "L7")
    assert found.t_s == 5.0 and found.value > 97.0
    assert "makes the rates of 96.5–80 Hz up to" in found.message


def test_a_ramp_names_how_much_faster_the_coyote_makes_it() -> None:
    limits = tighten(DEFAULTS, frequency_max_hz=97.0)
    (found,) = blocks(verify(steady_plan(80.0, hz1=96.5), limits, _coyote()), "L7")
    ratio = largest_rate_ratio(80.0, 96.5)
    assert found.message.endswith(f"(DG-LAB Coyote V3 makes the rates of 80–96.5 Hz up to "
                                  f"{(ratio - 1) * 100:.1f} % faster)")


def test_a_weak_channel_is_judged_at_the_rate_made_too() -> None:
    # the frequency ceiling holds whatever the current: 0.8 mA at 97 Hz, made as 100 Hz
    limits = tighten(DEFAULTS, frequency_max_hz=97.0)
    assert len(blocks(verify(steady_plan(97.0, ma=0.8), limits, _coyote()), "L7")) == 1


def test_a_limit_broken_at_the_plans_rate_is_reported_once_and_the_others_still_come() -> None:
    # rms over its limit at the plan's 97 Hz already; the frequency ceiling only at 100 Hz
    limits = tighten(DEFAULTS, frequency_max_hz=97.0, rms_ma=0.9)
    found = verify(steady_plan(97.0), limits, _coyote())
    assert len(blocks(found, "L4")) == 1 and "makes" not in blocks(found, "L4")[0].message
    (ceiling,) = blocks(found, "L7")
    assert "makes 97 Hz as 100 Hz" in ceiling.message


def test_a_rest_rule_broken_only_at_the_rate_made_names_the_train_that_made_it() -> None:
    # L18 is reported at the off time after the train: the message names the train's rate
    plan = steady_plan(19.85, ma=10.0, sensory=False)
    (found,) = blocks(verify(plan, DEFAULTS, _coyote()), "L18")
    assert found.message.endswith("(DG-LAB Coyote V3 makes 19.85 Hz as 20 Hz)")


def test_a_rest_too_short_after_a_train_made_tetanic_names_that_train_at_the_off_time() -> None:
    # 8 s at 19.85 Hz (made as 20 Hz: tetanic) after a 2 s soft start, then 3 s off: too short
    rows, t = [], 0.0
    for _ in range(2):
        rows += [(t, t + 2, 0.0, 10.0, 19.85, 19.85, 180.0, 180.0, 0.0, 0, 0),
                 (t + 2, t + 10, 10.0, 10.0, 19.85, 19.85, 180.0, 180.0, 0.0, 0, 0),
                 (t + 10, t + 13, 0.0, 0.0, 19.85, 19.85, 180.0, 180.0, 0.0, 0, 0)]
        t += 13
    channel = ChannelPlan(1, "lower-back-left", 20.0, 30.0, np.array(rows, dtype=SEGMENT_DTYPE))
    plan = Plan("rate", t, (PhaseSpan(0, "steady", "stim", 0.0, t, None, False),), (channel,),
                2.0, purpose="recovery")
    assert blocks(verify(plan, DEFAULTS), "L18") == []
    found = blocks(verify(plan, DEFAULTS, _coyote()), "L18")
    assert found[0].t_s == 10.0  # at the off time after the first train
    assert found[0].message == ("only 3.0 s off after a 10.0 s train; needs ≥ 10.0 s "
                                "(DG-LAB Coyote V3 makes 19.85 Hz as 20 Hz)")


def test_a_limit_broken_only_at_the_rate_made_is_found_beside_one_broken_at_the_plans() -> None:
    # 98 Hz is over a 97 Hz ceiling already; rms (0.934 mA at 98 Hz) is over 0.94 only at the
    # 100 Hz the Coyote makes
    limits = tighten(DEFAULTS, frequency_max_hz=97.0, rms_ma=0.94)
    plan = steady_plan(98.0)
    assert [v.limit_id for v in verify(plan, limits) if v.severity == "block"] == ["L7"]
    found = [v for v in verify(steady_plan(98.0), limits, _coyote()) if v.severity == "block"]
    assert [(v.limit_id, "makes" in v.message) for v in found] == [("L7", False), ("L4", True)]


def test_a_ramp_from_the_devices_slowest_rate_is_judged_at_the_rates_made_too() -> None:
    limits = tighten(DEFAULTS, frequency_max_hz=97.0)
    plan = steady_plan(1.0, hz1=96.5)  # from the Coyote's 1 Hz, made exactly, to 96.5 Hz
    assert blocks(verify(plan, limits), "L7") == []
    assert blocks(verify(plan, limits, _coyote()), "L7") != []


def test_the_rest_rule_at_an_off_time_names_the_train_before_it_not_another() -> None:
    # a first train at 30 Hz (made as 30.3 Hz) with a long rest, then 8 s at 19.85 Hz (made as
    # 20 Hz) with 3 s off: the rest too short follows the second train, whose rate is named
    rows = [(0.0, 2.0, 0.0, 10.0, 30.0, 30.0, 180.0, 180.0, 0.0, 0, 0),
            (2.0, 8.0, 10.0, 10.0, 30.0, 30.0, 180.0, 180.0, 0.0, 0, 0),
            (8.0, 30.0, 0.0, 0.0, 30.0, 30.0, 180.0, 180.0, 0.0, 0, 0),
            (30.0, 32.0, 0.0, 10.0, 19.85, 19.85, 180.0, 180.0, 0.0, 0, 0),
            (32.0, 40.0, 10.0, 10.0, 19.85, 19.85, 180.0, 180.0, 0.0, 0, 0),
            (40.0, 43.0, 0.0, 0.0, 19.85, 19.85, 180.0, 180.0, 0.0, 0, 0),
            (43.0, 45.0, 0.0, 10.0, 19.85, 19.85, 180.0, 180.0, 0.0, 0, 0),
            (45.0, 50.0, 10.0, 10.0, 19.85, 19.85, 180.0, 180.0, 0.0, 0, 0)]
    channel = ChannelPlan(1, "lower-back-left", 20.0, 30.0, np.array(rows, dtype=SEGMENT_DTYPE))
    plan = Plan("rate", 50.0, (PhaseSpan(0, "steady", "stim", 0.0, 50.0, None, False),),
                (channel,), 2.0, purpose="recovery")
    assert [v for v in blocks(verify(plan, DEFAULTS), "L18") if v.t_s == 40.0] == []
    found = [v for v in blocks(verify(plan, DEFAULTS, _coyote()), "L18") if v.t_s == 40.0]
    assert len(found) == 1
    assert found[0].message.endswith("(DG-LAB Coyote V3 makes 19.85 Hz as 20 Hz)")
