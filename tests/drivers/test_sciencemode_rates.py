"""The RehaStim2 and the P24 make their rates from periods on a 0.5 ms grid: verification
against them checks the rates they make, not only the plan's.

The period asked (1000 / f ms) is rounded to the nearest 0.5 ms step, an exact tie to the longer
one (docs/protocols/sciencemode2.md §12, docs/protocols/sciencemode4.md §14), so the P24 makes
97.6 Hz (10.25 ms) as 100 Hz (10 ms) and the RehaStim2 makes 49.7 Hz (20.12 ms) as 50 Hz.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.rate_plans import blocks, steady_plan

from emsctl.devices import open_device
from emsctl.drivers.sciencemode.rates import grid_rate_ratio
from emsctl.drivers.sciencemode2 import mapping as sm2
from emsctl.drivers.sciencemode4 import mapping as sm4
from emsctl.limits import DEFAULTS, tighten
from emsctl.verify import verify

DEVICES = [("sim+sciencemode2", sm2.delivered_frequency_hz, 1.0, 50.0),
           ("sim+sciencemode4", sm4.delivered_frequency_hz, 0.5, 100.0)]


@pytest.mark.parametrize(("url", "made_hz", "low_hz", "high_hz"), DEVICES)
def test_both_devices_declare_their_grid_to_verification(
        url: str, made_hz: Callable[[float], float], low_hz: float, high_hz: float) -> None:
    driver = open_device(url)
    ratio_of = driver.capabilities.rate_ratio
    assert ratio_of is not None
    assert driver.delivered_frequency_hz(high_hz - 0.3) == made_hz(high_hz - 0.3)
    assert ratio_of(high_hz - 0.3, high_hz - 0.3) == pytest.approx(
        made_hz(high_hz - 0.3) / (high_hz - 0.3), rel=1e-12)


def test_the_p24_makes_97_6_hz_above_a_99_hz_ceiling_and_verification_refuses_it() -> None:
    limits = tighten(DEFAULTS, frequency_max_hz=99.0)
    plan = steady_plan(97.6)
    caps = open_device("sim+sciencemode4").capabilities
    assert blocks(verify(plan, limits), "L7") == []  # the plan's rate is under the ceiling
    (found,) = blocks(verify(plan, limits, caps), "L7")
    assert found.value == pytest.approx(100.0)
    assert found.message == "100 Hz is outside 1–99 Hz (Hasomed P24 makes 97.6 Hz as 100 Hz)"


def test_the_rehastim2_makes_49_7_hz_as_50_hz_and_rms_current_is_checked_there() -> None:
    # 10 mA, 250 µs: 1.576 mA rms at 49.7 Hz, 1.581 mA at 50 Hz
    limits = tighten(DEFAULTS, rms_ma=1.578)
    plan = steady_plan(49.7, ma=10.0, us=250.0)
    caps = open_device("sim+sciencemode2").capabilities
    assert blocks(verify(plan, limits), "L4") == []
    (found,) = blocks(verify(plan, limits, caps), "L4")
    assert found.message.endswith("(Hasomed RehaStim2 makes 49.7 Hz as 50 Hz)")


def test_a_rate_both_make_exactly_changes_nothing() -> None:
    limits = tighten(DEFAULTS, frequency_max_hz=50.0)
    for url in ("sim+sciencemode2", "sim+sciencemode4"):
        found = verify(steady_plan(50.0), limits, open_device(url).capabilities)  # 20 ms: exact
        assert [v for v in found if "makes" in v.message] == []


def test_a_ramp_of_rates_is_judged_at_the_fastest_the_p24_makes_within_it() -> None:
    limits = tighten(DEFAULTS, frequency_max_hz=99.0)
    plan = steady_plan(80.0, hz1=97.7)  # 97.6 Hz (10.25 ms) and faster are made as 100 Hz
    (found,) = blocks(verify(plan, limits, open_device("sim+sciencemode4").capabilities), "L7")
    assert found.message.endswith("(Hasomed P24 makes the rates of 80–97.7 Hz up to 2.5 % "
                                  "faster)")


@pytest.mark.parametrize(("url", "made_hz", "low_hz", "high_hz"), DEVICES)
@given(data=st.data())
def test_the_ratio_bounds_every_rate_made_in_the_range_and_is_exact_for_one(
        url: str, made_hz: Callable[[float], float], low_hz: float, high_hz: float,
        data: st.DataObject) -> None:
    a = data.draw(st.floats(low_hz, high_hz))
    b = data.draw(st.floats(low_hz, high_hz))
    low, high = min(a, b), max(a, b)
    ratio = grid_rate_ratio(low, high, made_hz)
    for f in np.linspace(low, high, 41):
        assert made_hz(float(f)) <= float(f) * ratio * (1 + 1e-12)
    assert grid_rate_ratio(low, low, made_hz) == pytest.approx(made_hz(low) / low, rel=1e-12)


def test_the_bound_for_a_range_is_reached_by_a_rate_asked_within_it() -> None:
    # 97–100 Hz on the P24: periods up to 10.25 ms round to 10 ms; the bound is 10.25 / 10
    ratio = sm4.largest_rate_ratio(97.0, 100.0)
    assert ratio == pytest.approx(1.025)
    nearly = 1000 / 10.2499
    assert nearly > 97.0 and sm4.delivered_frequency_hz(nearly) / nearly == pytest.approx(
        ratio, rel=1e-4)
    # a range that ends before the half step is bounded by its slowest rate asked
    assert sm4.largest_rate_ratio(98.0, 100.0) == pytest.approx((1000 / 98.0) / 10.0)
