"""The docs/safety-basis.md §3 formulas against the numbers in docs/safety-basis.md §3 and §4
(worked examples W1–W8).

Golden values are copied from the table as printed; each computed value must round to the
printed figure (3 significant figures, or the table's own precision where it prints fewer).
W1 and W5 are also checked exactly with rationals, because they sit on boundaries.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from emsctl import exact_verdicts as verdicts
from emsctl import formulas as fx


class Point(NamedTuple):
    amplitude_ma: float
    pulse_width_us: float
    pulses_per_s: float
    area_cm2: float


# docs/safety-basis.md §4. W8: 2 bursts/s × 10 pulses → N = 20 pulses in the worst 1 s window.
WORKED = {
    "W1": Point(80, 400, 120, 25),
    "W2": Point(80, 400, 120, 4),
    "W3": Point(50, 300, 50, 4),
    "W4": Point(40, 200, 100, 16),
    "W5": Point(40, 200, 100, 4),
    "W6": Point(80, 400, 150, 4),
    "W7": Point(40, 150, 55, 16),
    "W8": Point(40, 180, 20, 16),
}

# Columns d, I_rms (mA), J (mA/cm²), P/A (W/cm²), Q (µC), k, exactly as printed in
# docs/safety-basis.md §4.
GOLDEN = {
    "W1": ("0.096", "24.8", "0.991", "0.0123", "32", "1.61"),
    "W2": ("0.096", "24.8", "6.20", "0.0768", "32", "2.41"),
    "W3": ("0.030", "8.66", "2.17", "0.00938", "15", "1.75"),
    "W4": ("0.040", "8.00", "0.500", "0.00200", "8", "0.60"),
    "W5": ("0.040", "8.00", "2.00", "0.00800", "8", "1.20"),
    "W6": ("0.120", "27.7", "6.93", "0.0960", "32", "2.41"),
    "W7": ("0.0165", "5.14", "0.321", "0.00083", "6", "0.35"),
    "W8": ("0.0072", "3.39", "0.212", "0.00036", "7.2", "0.51"),
}
COLUMNS = ("duty", "rms_ma", "density_ma_cm2", "power_w_cm2", "charge_uc", "k")


def assert_matches_printed(computed: float, printed: str) -> None:
    """``computed`` rounds to ``printed`` at its precision (half a unit in the last place)."""
    exponent = Decimal(printed).as_tuple().exponent
    assert isinstance(exponent, int)
    half_unit = 0.5 * 10.0**exponent
    assert abs(computed - float(printed)) <= half_unit * (1 + 1e-9), (computed, printed)


def computed_row(p: Point) -> tuple[float, ...]:
    charge = fx.phase_charge_uc(p.amplitude_ma, p.pulse_width_us)
    return (
        fx.duty(p.pulse_width_us, p.pulses_per_s),
        fx.rms_current_ma(p.amplitude_ma, p.pulse_width_us, p.pulses_per_s),
        fx.current_density_ma_cm2(p.amplitude_ma, p.pulse_width_us, p.pulses_per_s, p.area_cm2),
        fx.power_density_w_cm2(p.amplitude_ma, p.pulse_width_us, p.pulses_per_s, p.area_cm2),
        charge,
        fx.shannon_k(charge, p.area_cm2),
    )


@pytest.mark.parametrize("case", sorted(WORKED))
@pytest.mark.parametrize("column", range(len(COLUMNS)), ids=COLUMNS)
def test_float_formulas_reproduce_worked_example_table(case: str, column: int) -> None:
    assert_matches_printed(computed_row(WORKED[case])[column], GOLDEN[case][column])


@pytest.mark.parametrize("case", sorted(WORKED))
def test_array_formulas_reproduce_worked_example_table(case: str) -> None:
    p = WORKED[case]
    charge = fx.phase_charge_uc_array([p.amplitude_ma], [p.pulse_width_us])
    row = (
        fx.duty_array([p.pulse_width_us], [p.pulses_per_s]),
        fx.rms_current_ma_array([p.amplitude_ma], [p.pulse_width_us], [p.pulses_per_s]),
        fx.current_density_ma_cm2_array(
            [p.amplitude_ma], [p.pulse_width_us], [p.pulses_per_s], [p.area_cm2]
        ),
        fx.power_density_w_cm2_array(
            [p.amplitude_ma], [p.pulse_width_us], [p.pulses_per_s], [p.area_cm2]
        ),
        charge,
        fx.shannon_k_array(charge, [p.area_cm2]),
    )
    for value, printed in zip(row, GOLDEN[case], strict=True):
        assert value.shape == (1,)
        assert_matches_printed(float(value[0]), printed)


def test_w7_session_average_duty_and_rms_match_table() -> None:
    # W7: 5 s on / 10 s off → average duty 0.0055, average rms 2.97 mA.
    d = fx.duty(150, 55)
    avg = fx.session_average_duty(d, on_s=5, off_s=10)
    assert_matches_printed(avg, "0.0055")
    assert_matches_printed(40 * math.sqrt(avg), "2.97")


def test_energy_per_pulse_at_l3_l6_ceilings_is_2_56_mj() -> None:
    assert_matches_printed(fx.energy_per_pulse_mj(80, 400), "2.56")
    assert fx.energy_per_pulse_mj_exact(80, 400) == Fraction("2.56")
    assert float(fx.energy_per_pulse_mj_array([80], [400])[0]) == pytest.approx(2.56)


@pytest.mark.parametrize(
    ("k", "area_cm2", "printed"),
    [
        (1.85, 4, "16.8"),
        (1.85, 16, "33.7"),
        (1.85, 25, "42.1"),
        (1.5, 4, "11.2"),
        (1.5, 16, "22.5"),
        (1.5, 25, "28.1"),
    ],
)
def test_max_phase_charge_at_k_matches_section_3(k: float, area_cm2: float, printed: str) -> None:
    assert_matches_printed(fx.max_phase_charge_uc(k, area_cm2), printed)


def test_section_2_q_squared_over_area_bounds_match_k() -> None:
    # L8: Q²/A ≤ 70.8 µC²/cm² is k 1.85; ≤ 31.6 is k 1.5.
    assert_matches_printed(10**1.85, "70.8")
    assert_matches_printed(10**1.5, "31.6")


def test_w1_is_exact_with_rationals() -> None:
    p = WORKED["W1"]
    assert fx.duty_exact(400, 120) == Fraction("0.096")
    assert fx.rms_current_squared_exact(80, 400, 120) == Fraction("614.4")
    assert fx.current_density_squared_exact(*p) == Fraction("614.4") / 625
    assert fx.power_density_w_cm2_exact(*p) == Fraction("0.012288")
    assert fx.phase_charge_uc_exact(80, 400) == 32  # exactly on the L8 ceiling


def test_w5_is_exact_with_rationals_and_j_is_exactly_2() -> None:
    p = WORKED["W5"]
    assert fx.duty_exact(200, 100) == Fraction(1, 25)
    assert fx.rms_current_squared_exact(40, 200, 100) == 64  # I_rms = 8 mA exactly
    assert fx.current_density_squared_exact(*p) == 4  # J = 2.0 mA/cm² exactly
    assert fx.power_density_w_cm2_exact(*p) == Fraction("0.008")
    assert fx.phase_charge_uc_exact(40, 200) == 8


def test_current_density_exactly_2_does_not_exceed_2_but_reaches_it() -> None:
    # L9: only > 2.0 blocks; the ≥ 1.0 warning includes its boundary.
    assert not verdicts.exceeds_current_density(40, 200, 100, 4, 2.0)
    assert verdicts.exceeds_current_density(40, 200, 100, 4, 2.0, or_equal=True)
    assert verdicts.exceeds_current_density(40, 200, 100, 4, 1.0, or_equal=True)
    assert verdicts.exceeds_current_density("40.000001", 200, 100, 4, 2.0)


def test_phase_charge_exactly_on_ceiling_does_not_exceed_it() -> None:
    assert not verdicts.exceeds_phase_charge(80, 400, 32)
    assert verdicts.exceeds_phase_charge(80, "400.001", 32)
    assert verdicts.exceeds_phase_charge(80, 400, 32, or_equal=True)


def test_decimal_inputs_are_read_as_written_not_as_binary_floats() -> None:
    # 0.1 mA × 3 … the float 0.1 is not 1/10, but the user wrote 0.1.
    assert fx.exact(0.1) == Fraction(1, 10)
    assert fx.phase_charge_uc_exact(0.1, 10) == Fraction(1, 1000)
    assert fx.exact("2.50") == Fraction(5, 2)
    assert fx.exact(Decimal("1.85")) == Fraction(37, 20)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "nan", "Infinity", "two", ""])
def test_exact_refuses_non_finite_and_non_numbers(bad: object) -> None:
    with pytest.raises(ValueError):
        fx.exact(bad)  # type: ignore[arg-type]


def test_exact_refuses_booleans() -> None:
    with pytest.raises(TypeError):
        fx.exact(True)


def test_shannon_k_boundary_is_exact_without_logarithms() -> None:
    # Q²/A = 100 is k = 2 exactly; 10^(3/2) is irrational so k = 1.5 is never hit exactly.
    assert not verdicts.exceeds_shannon_k(20, 4, 2)
    assert verdicts.exceeds_shannon_k(20, 4, 2, or_equal=True)
    assert verdicts.exceeds_shannon_k("20.0001", 4, 2)
    assert not verdicts.exceeds_shannon_k(0, 4, -5)  # zero charge: k = -inf


def test_shannon_k_check_agrees_for_limits_with_huge_denominators() -> None:
    # 1.8499999999999999 has denominator 10^16: decided by high-precision logarithms.
    limit = 1.8499999999999999
    assert Fraction(repr(limit)).denominator > 10_000
    assert not verdicts.exceeds_shannon_k("8.4", 1, limit)  # k = 1.8486
    assert verdicts.exceeds_shannon_k("8.42", 1, limit)  # k = 1.8506


finite_k = st.decimals(min_value=-3, max_value=4, places=3, allow_nan=False, allow_infinity=False)


@given(
    charge=st.decimals(min_value="0.001", max_value=100, places=3),
    area=st.decimals(min_value="0.5", max_value=100, places=2),
    limit=finite_k,
    jitter=st.integers(min_value=1, max_value=9),
)
def test_shannon_k_integer_and_logarithm_paths_agree(
    charge: Decimal, area: Decimal, limit: Decimal, jitter: int
) -> None:
    # Nudge the limit by < 10^-12 so its denominator is huge but its value is practically the same.
    huge = Fraction(limit) + Fraction(jitter, 10**13)
    ratio = Fraction(charge) ** 2 / Fraction(area)
    small = verdicts.exceeds_shannon_k(charge, area, limit)
    large = verdicts.exceeds_shannon_k(charge, area, huge)
    if abs(math.log10(ratio) - float(limit)) > 1e-9:
        assert small == large == (math.log10(ratio) > float(limit))


positive = st.floats(min_value=0.0, max_value=500.0, allow_nan=False)


@given(
    amplitude=st.lists(positive, min_size=1, max_size=20),
    data=st.data(),
)
def test_array_formulas_equal_scalar_formulas_elementwise(
    amplitude: list[float], data: st.DataObject
) -> None:
    n = len(amplitude)
    width = data.draw(st.lists(positive, min_size=n, max_size=n))
    rate = data.draw(st.lists(positive, min_size=n, max_size=n))
    area = data.draw(st.lists(st.floats(min_value=0.5, max_value=500.0), min_size=n, max_size=n))
    pairs = [
        (fx.duty_array(width, rate), [fx.duty(w, r) for w, r in zip(width, rate, strict=True)]),
        (
            fx.current_density_ma_cm2_array(amplitude, width, rate, area),
            [
                fx.current_density_ma_cm2(a, w, r, s)
                for a, w, r, s in zip(amplitude, width, rate, area, strict=True)
            ],
        ),
        (
            fx.power_density_w_cm2_array(amplitude, width, rate, area),
            [
                fx.power_density_w_cm2(a, w, r, s)
                for a, w, r, s in zip(amplitude, width, rate, area, strict=True)
            ],
        ),
        (
            fx.shannon_k_array(fx.phase_charge_uc_array(amplitude, width), area),
            [
                fx.shannon_k(fx.phase_charge_uc(a, w), s)
                for a, w, s in zip(amplitude, width, area, strict=True)
            ],
        ),
        (
            fx.energy_per_pulse_mj_array(amplitude, width),
            [fx.energy_per_pulse_mj(a, w) for a, w in zip(amplitude, width, strict=True)],
        ),
    ]
    for array, scalars in pairs:
        assert array.dtype == np.float64
        np.testing.assert_allclose(array, scalars, rtol=1e-12, atol=1e-300)


@given(
    amplitude=st.decimals(min_value=0, max_value=100, places=2),
    width=st.decimals(min_value=10, max_value=500, places=0),
    rate=st.decimals(min_value=1, max_value=200, places=1),
    area=st.decimals(min_value=1, max_value=50, places=1),
    limit=st.decimals(min_value="0.1", max_value=5, places=2),
)
def test_exact_density_verdict_agrees_with_floats_away_from_the_boundary(
    amplitude: Decimal, width: Decimal, rate: Decimal, area: Decimal, limit: Decimal
) -> None:
    density = fx.current_density_ma_cm2(float(amplitude), float(width), float(rate), float(area))
    verdict = verdicts.exceeds_current_density(amplitude, width, rate, area, limit)
    if abs(density - float(limit)) > 1e-9:
        assert verdict == (density > float(limit))
    power = fx.power_density_w_cm2(float(amplitude), float(width), float(rate), float(area))
    power_limit = limit / 10
    if abs(power - float(power_limit)) > 1e-12:
        assert verdicts.exceeds_power_density(amplitude, width, rate, area, power_limit) == (
            power > float(power_limit)
        )


def test_shannon_k_of_zero_charge_is_minus_infinity() -> None:
    assert fx.shannon_k(0, 4) == -math.inf
    assert fx.shannon_k_array([0.0], [4.0])[0] == -math.inf
