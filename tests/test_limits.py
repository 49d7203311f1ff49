"""Ceilings, defaults, tightening, the limits file, and the verdicts of docs/safety-basis.md §4.

The expected values and directions below are copied from docs/safety-basis.md §2 independently of
``LIMIT_SPECS``, so a typo in the module's table fails here.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import fields, replace
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from emsctl import limit_checks as checks
from emsctl import limit_table as table
from emsctl import limits as lim
from emsctl import limits_file
from emsctl.errors import InputError, LimitsFileError
from emsctl.limit_checks import Level
from emsctl.limits import CEILINGS, DEFAULTS, Limits

# field: (limit ID, ceiling, shipped default), per docs/safety-basis.md §2 and the choices noted.
EXPECTED = {
    "peak_ma": ("L3", 80, 40),
    "rms_ma": ("L4", 50, 25),
    "pulse_width_min_us": ("L6", 50, 100),
    "pulse_width_max_us": ("L6", 400, 300),
    "frequency_min_hz": ("L7", 1, 1),
    "frequency_max_hz": ("L7", 150, 100),
    "phase_charge_uc": ("L8", 32, 20),
    "shannon_k": ("L8", 1.85, 1.5),
    "current_density_ma_cm2": ("L9", 2.0, 2.0),
    "current_density_warn_ma_cm2": ("L9", 2.0, 1.0),
    "power_density_w_cm2": ("L10", 0.25, 0.05),
    "electrode_area_min_cm2": ("L13", 4, 4),
    "soft_start_min_s": ("L15", 2, 5),
    "ramp_min_s": ("L16", 0.5, 1.0),
    "user_step_ma": ("L17", 2, 1),
    "user_rise_ma_per_s": ("L17", 5, 2),
    "plan_rise_ma_per_s": ("L16", 80, 40),
    "tetanic_frequency_hz": ("L18", 20, 20),
    "train_on_max_s": ("L18", 15, 10),
    "train_off_min_s": ("L18", 5, 5),
    "off_at_least_on": ("L18", False, True),
    "burst_max_s": ("L18", 0.2, 0.2),
    "burst_duty_max": ("L18", 0.25, 0.25),
    "session_max_s": ("L19", 3600, 1800),
    "sessions_per_day": ("L20", 4, 3),
    "minutes_per_day": ("L20", 120, 90),
    "min_gap_between_sessions_s": ("L20", 0, 3600),
    "watchdog_s": ("L21", 1.0, 1.0),
    "heartbeat_s": ("L21", 0.25, 0.25),
}
LARGER_IS_TIGHTER = {
    "pulse_width_min_us",
    "frequency_min_hz",
    "electrode_area_min_cm2",
    "soft_start_min_s",
    "ramp_min_s",
    "train_off_min_s",
    "min_gap_between_sessions_s",
}
TRUE_IS_TIGHTER = {"off_at_least_on"}
FIELD_NAMES = [f.name for f in fields(Limits)]


def looser_fields(candidate: Limits, reference: Limits) -> list[str]:
    """Fields where ``candidate`` is looser than ``reference`` (directions from
    docs/safety-basis.md)."""
    out = []
    for name in FIELD_NAMES:
        c, r = getattr(candidate, name), getattr(reference, name)
        if name in TRUE_IS_TIGHTER:
            looser = r and not c
        elif name in LARGER_IS_TIGHTER:
            looser = c < r
        else:
            looser = c > r
        if looser:
            out.append(name)
    return out


# --- the numbers ---------------------------------------------------------------------------


def test_every_limits_field_has_a_spec_and_an_expected_value() -> None:
    assert list(table.LIMIT_SPECS) == FIELD_NAMES
    assert set(EXPECTED) == set(FIELD_NAMES)


@pytest.mark.parametrize("name", FIELD_NAMES)
def test_ceilings_and_defaults_match_safety_basis(name: str) -> None:
    limit_id, ceiling, default = EXPECTED[name]
    assert table.LIMIT_SPECS[name].limit_id == limit_id
    assert getattr(CEILINGS, name) == ceiling
    assert getattr(DEFAULTS, name) == default
    assert type(getattr(CEILINGS, name)) is type(getattr(DEFAULTS, name))


@pytest.mark.parametrize("name", FIELD_NAMES)
def test_tighter_direction_matches_safety_basis(name: str) -> None:
    expected = (
        table.Tighter.TRUE
        if name in TRUE_IS_TIGHTER
        else table.Tighter.LARGER
        if name in LARGER_IS_TIGHTER
        else table.Tighter.SMALLER
    )
    assert table.LIMIT_SPECS[name].tighter is expected


def test_kernel_constants_carry_the_ceiling_numbers() -> None:
    assert table.PEAK_CEILING_MA == 80  # L3
    assert table.RMS_CEILING_MA == 50  # L4
    assert (table.PULSE_WIDTH_MIN_CEILING_US, table.PULSE_WIDTH_MAX_CEILING_US) == (50, 400)  # L6
    assert (table.FREQUENCY_MIN_CEILING_HZ, table.FREQUENCY_MAX_CEILING_HZ) == (1, 150)  # L7
    assert (table.PHASE_CHARGE_CEILING_UC, table.SHANNON_K_CEILING) == (32, 1.85)  # L8
    assert table.CURRENT_DENSITY_CEILING_MA_CM2 == 2.0  # L9
    assert table.POWER_DENSITY_CEILING_W_CM2 == 0.25  # L10
    assert table.ENERGY_PER_PULSE_CEILING_MJ == 300  # L11
    assert table.ELECTRODE_AREA_MIN_CEILING_CM2 == 4  # L13
    assert (table.SOFT_START_MIN_CEILING_S, table.RAMP_MIN_CEILING_S) == (2, 0.5)  # L15, L16
    assert (table.USER_STEP_CEILING_MA, table.USER_RISE_CEILING_MA_PER_S) == (2, 5)  # L17
    assert (table.PLAN_RISE_CEILING_MA_PER_S, table.PLAN_RISE_DEFAULT_MA_PER_S) == (80, 40)  # [E]
    assert (table.TRAIN_ON_MAX_CEILING_S, table.TRAIN_OFF_MIN_CEILING_S) == (15, 5)  # L18
    assert (table.BURST_MAX_CEILING_S, table.BURST_DUTY_MAX_CEILING) == (0.2, 0.25)  # L18
    assert table.SESSION_MAX_CEILING_S == 60 * 60  # L19
    assert (table.SESSIONS_PER_DAY_CEILING, table.MINUTES_PER_DAY_CEILING) == (4, 120)  # L20
    assert (table.WATCHDOG_CEILING_S, table.HEARTBEAT_CEILING_S) == (1.0, 0.25)  # L21


def test_defaults_are_at_least_as_tight_as_ceilings() -> None:
    assert looser_fields(DEFAULTS, CEILINGS) == []
    assert lim.at_least_as_tight(DEFAULTS, CEILINGS)
    assert not lim.at_least_as_tight(CEILINGS, DEFAULTS)


def test_limits_cannot_be_constructed_looser_than_a_ceiling() -> None:
    with pytest.raises(LimitsFileError, match=r"peak_ma = 90 would loosen L3 \(ceiling 80 mA\)"):
        replace(CEILINGS, peak_ma=90)
    with pytest.raises(LimitsFileError, match="pulse_width_min_us = 20 would loosen L6"):
        replace(CEILINGS, pulse_width_min_us=20)


def test_limits_are_frozen() -> None:
    with pytest.raises(AttributeError):
        CEILINGS.peak_ma = 100  # type: ignore[misc]


# --- tighten and intersect -----------------------------------------------------------------


def test_tighten_refuses_to_loosen_and_names_limit_and_ceiling() -> None:
    with pytest.raises(LimitsFileError) as info:
        lim.tighten(CEILINGS, peak_ma=90)
    assert str(info.value) == (
        "peak_ma = 90 would loosen L3 (ceiling 80 mA); limits can only be tightened."
    )
    assert isinstance(info.value, InputError)


def test_tighten_refuses_to_loosen_a_base_within_its_ceiling() -> None:
    with pytest.raises(LimitsFileError, match=r"peak_ma = 50 would loosen L3 \(current limit 40"):
        lim.tighten(DEFAULTS, peak_ma=50)
    with pytest.raises(LimitsFileError, match="off_at_least_on = false would loosen L18"):
        lim.tighten(DEFAULTS, off_at_least_on=False)
    with pytest.raises(LimitsFileError, match="electrode_area_min_cm2 = 3 would loosen L13"):
        lim.tighten(DEFAULTS, electrode_area_min_cm2=3)


def test_tighten_applies_tighter_and_equal_values_exactly() -> None:
    result = lim.tighten(DEFAULTS, peak_ma=30, pulse_width_min_us=150, sessions_per_day=3)
    assert (result.peak_ma, result.pulse_width_min_us, result.sessions_per_day) == (30, 150, 3)
    assert result.rms_ma == DEFAULTS.rms_ma


def test_tighten_rejects_unknown_names_with_a_suggestion() -> None:
    with pytest.raises(LimitsFileError, match=r"unknown limit 'peak_mA' \(did you mean 'peak_ma'"):
        lim.tighten(DEFAULTS, peak_mA=30)


@pytest.mark.parametrize(
    ("name", "value"),
    [("peak_ma", True), ("peak_ma", math.nan), ("peak_ma", -1.0), ("sessions_per_day", 2.0)],
)
def test_tighten_rejects_bad_values(name: str, value: float) -> None:
    with pytest.raises(LimitsFileError, match=name):
        lim.tighten(DEFAULTS, **{name: value})


@st.composite
def valid_limits(draw: st.DrawFn) -> Limits:
    """Any Limits within the ceilings."""
    values: dict[str, object] = {}
    for name in FIELD_NAMES:
        ceiling = getattr(CEILINGS, name)
        if name in TRUE_IS_TIGHTER:
            values[name] = draw(st.booleans())
        elif name == "sessions_per_day":
            values[name] = draw(st.integers(0, ceiling))
        elif name in LARGER_IS_TIGHTER:
            values[name] = draw(st.floats(ceiling, ceiling * 4 + 4))
        else:
            low = -3.0 if name == "shannon_k" else 0.0
            values[name] = draw(st.floats(low, ceiling))
    return Limits(**values)  # type: ignore[arg-type]


override_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0, 4000),
    st.integers(-10, 5000),
    st.booleans(),
)


@given(
    base=valid_limits(), overrides=st.dictionaries(st.sampled_from(FIELD_NAMES), override_values)
)
def test_tighten_never_loosens(base: Limits, overrides: dict[str, object]) -> None:
    try:
        result = lim.tighten(base, **overrides)  # type: ignore[arg-type]
    except LimitsFileError:
        event("refused")
        return
    event("applied")
    assert looser_fields(result, base) == []
    for name, value in overrides.items():
        assert getattr(result, name) == value  # applied as given, never clamped


@given(a=valid_limits(), b=valid_limits())
def test_intersect_is_commutative_and_tighter_than_both(a: Limits, b: Limits) -> None:
    both = lim.intersect(a, b)
    assert both == lim.intersect(b, a)
    assert looser_fields(both, a) == []
    assert looser_fields(both, b) == []
    for name in FIELD_NAMES:  # and no tighter than needed: each field comes from a or b
        assert getattr(both, name) in (getattr(a, name), getattr(b, name))


def test_intersect_with_ceilings_is_identity() -> None:
    assert lim.intersect(CEILINGS, DEFAULTS) == DEFAULTS


# --- the limits file -----------------------------------------------------------------------


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "limits.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_empty_limits_file_gives_defaults(tmp_path: Path) -> None:
    assert limits_file.load_limits_file(write(tmp_path, "")) == DEFAULTS


def test_limits_file_may_move_a_default_within_its_ceiling(tmp_path: Path) -> None:
    path = write(tmp_path, "peak_ma = 60\npulse_width_max_us = 400\nshannon_k = 1.2\n")
    result = limits_file.load_limits_file(path)
    assert (result.peak_ma, result.pulse_width_max_us, result.shannon_k) == (60, 400, 1.2)
    assert result.rms_ma == DEFAULTS.rms_ma


def test_limits_file_cannot_exceed_a_ceiling_and_names_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "peak_ma = 90\n")
    with pytest.raises(LimitsFileError) as info:
        limits_file.load_limits_file(path)
    message = str(info.value)
    assert str(path) in message
    assert "'peak_ma'" in message
    assert "would loosen L3 (ceiling 80 mA)" in message


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("peak_mA = 30", "peak_mA", "unknown key"),
        ("peak_ma = nan", "peak_ma", "finite"),
        ("peak_ma = inf", "peak_ma", "finite"),
        ("rms_ma = -inf", "rms_ma", "finite"),
        ("peak_ma = true", "peak_ma", "must be a number"),
        ("peak_ma = '30'", "peak_ma", "must be a number"),
        ("peak_ma = [30]", "peak_ma", "must be a number"),
        ("peak_ma = -1", "peak_ma", "negative"),
        ("off_at_least_on = 1", "off_at_least_on", "true or false"),
        ("sessions_per_day = 2.0", "sessions_per_day", "whole number"),
        ("[peak_ma]\nvalue = 30", "peak_ma", "must be a number"),
        ("train_off_min_s = 4.9", "train_off_min_s", "would loosen L18"),
        ("power_density_w_cm2 = 0.26", "power_density_w_cm2", "would loosen L10"),
        ("rms_ma = 1" + "0" * 400, "rms_ma", "finite"),
    ],
)
def test_limits_file_rejects_bad_keys_and_values(
    tmp_path: Path, text: str, key: str, fragment: str
) -> None:
    path = write(tmp_path, text + "\n")
    with pytest.raises(LimitsFileError) as info:
        limits_file.load_limits_file(path)
    message = str(info.value)
    assert str(path) in message
    assert repr(key) in message
    assert fragment in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("pulse_width_min_us = 350\npulse_width_max_us = 300", "pulse_width_min_us (350) is above"),
        ("frequency_min_hz = 120", "frequency_min_hz (120) is above frequency_max_hz (100)"),
        ("heartbeat_s = 0", "heartbeat_s (0) must be above 0"),
        ("watchdog_s = 0.2", "below watchdog_s (0.2)"),
    ],
)
def test_limits_file_rejects_contradictory_values(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, text + "\n")
    with pytest.raises(LimitsFileError) as info:
        limits_file.load_limits_file(path)
    assert str(info.value).startswith(f"{path}: ")
    assert fragment in str(info.value)


def test_limits_file_larger_than_1_mib_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "# pad\n" * (limits_file.LIMITS_FILE_MAX_BYTES // 6 + 1))
    assert path.stat().st_size > limits_file.LIMITS_FILE_MAX_BYTES
    with pytest.raises(LimitsFileError, match="larger than 1 MiB"):
        limits_file.load_limits_file(path)


def test_limits_file_of_exactly_1_mib_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, "#" * (limits_file.LIMITS_FILE_MAX_BYTES - 1) + "\n")
    assert limits_file.load_limits_file(path) == DEFAULTS


@pytest.mark.parametrize(
    ("content", "fragment"),
    [("peak_ma = = 3\n", "not valid TOML"), (b"\xff\xfe peak_ma = 3\n", "not UTF-8")],
)
def test_limits_file_that_is_not_toml_is_refused(
    tmp_path: Path, content: str | bytes, fragment: str
) -> None:
    with pytest.raises(LimitsFileError, match=fragment):
        limits_file.load_limits_file(write(tmp_path, content))


def test_missing_limits_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LimitsFileError, match="cannot read the limits file"):
        limits_file.load_limits_file(tmp_path / "absent.toml")


def toml_scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(value), repr(value))
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)


file_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1, 5000),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-5, 5000),
    st.booleans(),
    st.text(max_size=5),
)
file_keys = st.one_of(st.sampled_from(FIELD_NAMES), st.from_regex(r"[a-z_]{1,12}", fullmatch=True))


@st.composite
def plausible_files(draw: st.DrawFn) -> dict[str, object]:
    """A few known keys with values around their ceilings, so that many files load."""
    keys = draw(st.lists(st.sampled_from(FIELD_NAMES), max_size=4, unique=True))
    out: dict[str, object] = {}
    for key in keys:
        ceiling = getattr(CEILINGS, key)
        if isinstance(ceiling, bool):
            out[key] = draw(st.booleans())
        elif isinstance(ceiling, int):
            out[key] = draw(st.integers(0, 2 * ceiling))
        else:
            out[key] = draw(st.floats(0, 2 * ceiling + 1))
    return out


@given(data=st.one_of(st.dictionaries(file_keys, file_values, max_size=12), plausible_files()))
def test_limits_file_never_yields_limits_looser_than_ceilings(data: dict[str, object]) -> None:
    text = "".join(f"{json.dumps(key)} = {toml_scalar(value)}\n" for key, value in data.items())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "limits.toml"
        path.write_text(text, encoding="utf-8")
        try:
            result = limits_file.load_limits_file(path)
        except LimitsFileError as exc:
            event("refused")
            assert str(path) in str(exc)
            return
    event("loaded")
    assert looser_fields(result, CEILINGS) == []
    for key, value in data.items():
        assert getattr(result, key) == value  # applied as written, never clamped


# --- verdicts for the worked examples (docs/safety-basis.md §4)
# ------------------------------------

# (amplitude_ma, pulse_width_us, frequency_hz, pulses_per_s, area_cm2)
WORKED = {
    "W1": (80, 400, 120, 120, 25),
    "W2": (80, 400, 120, 120, 4),
    "W3": (50, 300, 50, 50, 4),
    "W4": (40, 200, 100, 100, 16),
    "W5": (40, 200, 100, 100, 4),
    "W6": (80, 400, 150, 150, 4),
    "W7": (40, 150, 55, 55, 16),
    "W8": (40, 180, 100, 20, 16),  # inner 100 Hz; 2 bursts/s × 10 pulses in 1 s
}
# "Against ceilings" column: the (limit ID, quantity) pairs that block.
AGAINST_CEILINGS: dict[str, set[tuple[str, str]]] = {
    "W1": set(),  # peak, PW and Q sit exactly on their ceilings
    "W2": {("L9", "current_density_ma_cm2"), ("L8", "shannon_k")},
    "W3": {("L9", "current_density_ma_cm2")},  # k 1.75 is within 1.85
    "W4": set(),
    "W5": set(),  # exactly 2.0 is allowed, only > 2.0 blocks
    "W6": {("L9", "current_density_ma_cm2"), ("L8", "shannon_k")},  # L4 and L10 pass
    "W7": set(),
    "W8": set(),
}
W1_DEFAULTS = {
    ("L3", "peak_ma"),
    ("L6", "pulse_width_max_us"),
    ("L7", "frequency_max_hz"),
    ("L8", "phase_charge_uc"),
    ("L8", "shannon_k"),
}
# "Against defaults" column. W2 and W6 say only "Block": every default they break is listed.
AGAINST_DEFAULTS: dict[str, set[tuple[str, str]]] = {
    "W1": W1_DEFAULTS,
    "W2": W1_DEFAULTS | {("L9", "current_density_ma_cm2"), ("L10", "power_density_w_cm2")},
    "W3": {("L9", "current_density_ma_cm2"), ("L3", "peak_ma"), ("L8", "shannon_k")},
    "W4": set(),
    "W5": set(),  # only the L9 warning, checked below
    "W6": W1_DEFAULTS
    | {("L9", "current_density_ma_cm2"), ("L10", "power_density_w_cm2"), ("L4", "rms_ma")},
    "W7": set(),
    "W8": set(),
}


def blocks(findings: list[checks.Finding]) -> set[tuple[str, str]]:
    return {(f.limit_id, f.quantity) for f in findings if f.level is Level.BLOCK}


def warnings(findings: list[checks.Finding]) -> list[tuple[str, str]]:
    return [(f.limit_id, f.quantity) for f in findings if f.level is Level.WARN]


@pytest.mark.parametrize("case", sorted(WORKED))
def test_worked_example_verdict_against_ceilings(case: str) -> None:
    findings = checks.check_pulse(*WORKED[case], CEILINGS)
    assert blocks(findings) == AGAINST_CEILINGS[case]
    assert warnings(findings) == []


@pytest.mark.parametrize("case", sorted(WORKED))
def test_worked_example_verdict_against_defaults(case: str) -> None:
    findings = checks.check_pulse(*WORKED[case], DEFAULTS)
    assert blocks(findings) == AGAINST_DEFAULTS[case]
    expected_warnings = [("L9", "current_density_warn_ma_cm2")] if case == "W5" else []
    assert warnings(findings) == expected_warnings


def test_w5_warning_reports_density_and_threshold() -> None:
    (finding,) = checks.check_pulse(*WORKED["W5"], DEFAULTS)
    assert finding.level is Level.WARN
    assert finding.value == pytest.approx(2.0)
    assert (finding.relation, finding.allowed, finding.unit) == ("<", 1.0, "mA/cm²")
    assert str(finding).startswith("L9 warning:")


def test_findings_report_value_and_allowed_limit() -> None:
    by_quantity = {f.quantity: f for f in checks.check_pulse(*WORKED["W3"], CEILINGS)}
    density = by_quantity["current_density_ma_cm2"]
    assert density.value == pytest.approx(2.165, abs=5e-4)
    assert (density.relation, density.allowed) == ("≤", 2.0)
    assert str(density) == "L9: current_density_ma_cm2 = 2.17 mA/cm² (allowed ≤ 2 mA/cm²)"


def test_no_l9_warning_when_blocked_by_l9() -> None:
    findings = checks.check_pulse(*WORKED["W3"], DEFAULTS)
    assert warnings(findings) == []


def test_power_density_ceiling_blocks_exactly_0_25() -> None:
    # L10 ceiling is strict (< 0.25): 50 mA, 400 µs, 250/s on 1 cm² gives exactly 0.25 W/cm².
    findings = checks.check_pulse(50, 400, 250, 250, 1, CEILINGS)
    (power,) = [f for f in findings if f.limit_id == "L10"]
    assert (power.relation, power.allowed, power.value) == ("<", 0.25, pytest.approx(0.25))
    below = checks.check_pulse("49.99", 400, 250, 250, 1, CEILINGS)
    assert not [f for f in below if f.limit_id == "L10"]


def test_power_density_default_allows_exactly_0_05() -> None:
    # 0.05 W/cm² = I²·d·500 Ω / A: 20 mA, d = 0.25 (500 µs, 250/s), 1 cm².
    at_limit = checks.check_pulse(20, 500, 250, 250, 1, DEFAULTS)
    assert not [f for f in at_limit if f.limit_id == "L10"]
    above = checks.check_pulse("20.01", 500, 250, 250, 1, DEFAULTS)
    assert [(f.relation, f.allowed) for f in above if f.limit_id == "L10"] == [("≤", 0.05)]


def test_electrode_below_4_cm2_is_blocked_by_l13() -> None:
    findings = checks.check_pulse(1, 100, 10, 10, "3.99", CEILINGS)
    assert blocks(findings) == {("L13", "electrode_area_min_cm2")}


def test_pulse_width_and_frequency_below_minimum_are_blocked() -> None:
    findings = checks.check_pulse(10, 49, "0.5", "0.5", 16, CEILINGS)
    assert blocks(findings) == {("L6", "pulse_width_min_us"), ("L7", "frequency_min_hz")}


def test_energy_per_pulse_l11_is_an_independent_check() -> None:
    # Never binds inside the other ceilings; 1 A for 400 µs would be 400 mJ.
    findings = checks.check_pulse(1000, 400, 1, 1, 10_000, CEILINGS)
    assert ("L11", "energy_per_pulse_mj") in blocks(findings)


@pytest.mark.parametrize(
    "point",
    [(math.nan, 200, 100, 100, 4), (40, 200, 100, 100, 0), (-1, 200, 100, 100, 4)],
)
def test_check_pulse_refuses_invalid_operating_points(point: tuple[float, ...]) -> None:
    with pytest.raises(ValueError):
        checks.check_pulse(*point, CEILINGS)


# --- L18 on/off trains -----------------------------------------------------------------------


def test_w7_cramp_training_on_7_off_8_passes_l18() -> None:
    # 5 s on / 10 s off with 1 s ramps: ON 7 s including ramps, OFF 8 s.
    assert checks.check_train(55, 7, 8, DEFAULTS) == []
    assert checks.check_train(55, 7, 8, CEILINGS) == []


def test_w8_tens_burst_is_exempt_from_l18() -> None:
    # 100 ms bursts twice a second: burst duty 0.2 ≤ 0.25, burst 0.1 s ≤ 0.2 s.
    assert checks.check_train(100, "0.1", "0.4", DEFAULTS) == []


def test_burst_longer_than_200_ms_is_not_exempt() -> None:
    findings = checks.check_train(100, "0.21", "0.79", DEFAULTS)
    assert blocks(findings) == {("L18", "train_off_min_s")}


def test_burst_duty_above_25_percent_is_not_exempt() -> None:
    findings = checks.check_train(100, "0.1", "0.29", DEFAULTS)
    assert ("L18", "train_off_min_s") in blocks(findings)


def test_motor_train_too_long_on_or_too_short_off_is_blocked() -> None:
    assert blocks(checks.check_train(50, 12, 12, DEFAULTS)) == {("L18", "train_on_max_s")}
    assert blocks(checks.check_train(50, 12, 12, CEILINGS)) == set()
    assert blocks(checks.check_train(50, 8, 6, DEFAULTS)) == {("L18", "off_at_least_on")}
    assert blocks(checks.check_train(50, 8, 6, CEILINGS)) == set()
    assert blocks(checks.check_train(50, 16, 4, CEILINGS)) == {
        ("L18", "train_on_max_s"),
        ("L18", "train_off_min_s"),
    }


def test_continuous_motor_train_at_tetanic_rate_is_blocked() -> None:
    assert blocks(checks.check_train(20, 60, 0, CEILINGS)) == {
        ("L18", "train_on_max_s"),
        ("L18", "train_off_min_s"),
    }


def test_sub_tetanic_and_sensory_trains_are_exempt_from_l18() -> None:
    assert checks.check_train("19.9", 60, 0, DEFAULTS) == []
    assert checks.check_train(80, 60, 0, DEFAULTS, motor_level=False) == []
