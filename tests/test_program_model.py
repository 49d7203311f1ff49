"""The program model and loader reject everything a program file must not say (HZ-13, L1, L23)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emsctl.amplitude import AmplitudeExpr, parse_amplitude
from emsctl.errors import InputError, ProgramError
from emsctl.loader import (
    MAX_FILE_BYTES,
    find_program_files,
    load_program,
    load_program_file,
    parse_program_text,
)
from emsctl.program import Program

BASE = """\
name = "test"
title = "Test program"
purpose = "massage"
evidence = "none"
description = "A test."
placement = "Calf."
calibration_frequency_hz = 8
calibration_pulse_width_us = 250

[[channels]]
id = 1
site = "calf-left"
electrode_area_cm2 = 20
max_amplitude_ma = 30

[[phases]]
name = "A"
duration_s = 60
frequency_hz = 8
pulse_width_us = 250
amplitude = "MT"
"""


def _with(old: str, new: str, text: str = BASE) -> str:
    """Replace the first line that starts with ``old`` (so "frequency_hz" is not the calibration
    frequency)."""
    pattern = re.compile(rf"^{re.escape(old)}", re.MULTILINE)
    assert pattern.search(text), old
    return pattern.sub(lambda _: new, text, count=1)


def _line(text: str, fragment: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if fragment in line)


def _error(text: str) -> str:
    with pytest.raises(ProgramError) as info:
        parse_program_text(text, "test.toml")
    return str(info.value)


def test_base_program_loads() -> None:
    program = parse_program_text(BASE)
    assert program.name == "test"
    assert program.phases[0].waveform == "symmetric-biphasic"


def test_program_error_is_an_input_error_with_exit_code_2() -> None:
    assert issubclass(ProgramError, InputError)
    assert ProgramError("x").exit_code == 2


# ---------------------------------------------------------------------------------------------
# Unknown keys and wrong units


def test_unknown_phase_key_is_rejected_naming_field_and_line() -> None:
    text = _with('amplitude = "MT"\n', 'amplitude = "MT"\ncolour = "red"\n')
    message = _error(text)
    assert f"line {_line(text, 'colour')}" in message
    assert "phases[1].colour" in message
    assert "unknown key" in message


def test_unknown_top_level_key_is_rejected_naming_field_and_line() -> None:
    text = _with('placement = "Calf."\n', 'placement = "Calf."\nmax_power = 9\n')
    message = _error(text)
    assert f"line {_line(text, 'max_power')}, max_power: unknown key" in message


def test_unknown_channel_key_is_rejected_naming_field_and_line() -> None:
    text = _with("max_amplitude_ma = 30\n", "max_amplitude_ma = 30\nceiling_override = true\n")
    message = _error(text)
    assert f"line {_line(text, 'ceiling_override')}, channels[1].ceiling_override" in message


def test_unknown_key_in_inline_table_is_rejected() -> None:
    text = _with('amplitude = "MT"', 'amplitude = "MT"\nduty = { on_s = 5, off_s = 10, '
                 'ramp_up_s = 1, ramp_down_s = 1, hold_s = 3 }')
    assert "phases[1].duty.hold_s: unknown key" in _error(text)


@pytest.mark.parametrize(("good", "bad"), [
    ("frequency_hz = 8", "frequency_khz = 0.008"),
    ("pulse_width_us = 250", "pulse_width_ms = 0.25"),
    ("duration_s = 60", "duration_min = 1"),
    ("electrode_area_cm2 = 20", "electrode_area_mm2 = 2000"),
    ("max_amplitude_ma = 30", "max_amplitude_a = 0.03"),
])
def test_wrong_unit_key_is_rejected_as_unknown_with_a_unit_hint(good: str, bad: str) -> None:
    text = _with(good, bad)
    message = _error(text)
    key = bad.split(" ", maxsplit=1)[0]
    assert f"line {_line(text, key)}" in message
    assert key in message
    assert "unit suffix" in message


# ---------------------------------------------------------------------------------------------
# Numbers: non-finite, strings, negative, absurd


@pytest.mark.parametrize(("good", "bad"), [
    ("duration_s = 60", "duration_s = nan"),
    ("frequency_hz = 8", "frequency_hz = inf"),
    ("pulse_width_us = 250", "pulse_width_us = nan"),
    ("electrode_area_cm2 = 20", "electrode_area_cm2 = inf"),
    ("max_amplitude_ma = 30", "max_amplitude_ma = nan"),
    ("calibration_frequency_hz = 8", "calibration_frequency_hz = -inf"),
    ('amplitude = "MT"', "amplitude = nan"),
    ('amplitude = "MT"', "amplitude = inf"),
])
def test_nan_and_infinity_are_rejected(good: str, bad: str) -> None:
    message = _error(_with(good, bad))
    assert bad.split(" ", maxsplit=1)[0] in message


@pytest.mark.parametrize(("good", "bad"), [
    ("frequency_hz = 8", 'frequency_hz = "6 Hz"'),
    ("frequency_hz = 8", 'frequency_hz = "8"'),
    ("duration_s = 60", 'duration_s = "60"'),
    ("pulse_width_us = 250", 'pulse_width_us = "250us"'),
    ("electrode_area_cm2 = 20", 'electrode_area_cm2 = "20"'),
    ("id = 1", 'id = "1"'),
    ("frequency_hz = 8", "frequency_hz = true"),
    ("id = 1", "id = 1.5"),
])
def test_strings_and_booleans_for_numbers_are_rejected(good: str, bad: str) -> None:
    message = _error(_with(good, bad))
    assert bad.split(" ", maxsplit=1)[0] in message


@pytest.mark.parametrize(("good", "bad"), [
    ("duration_s = 60", "duration_s = -60"),
    ("duration_s = 60", "duration_s = 0"),
    ("duration_s = 60", "duration_s = 100000"),  # over the 4 h model maximum
    ("frequency_hz = 8", "frequency_hz = 0"),
    ("frequency_hz = 8", "frequency_hz = -8"),
    ("frequency_hz = 8", "frequency_hz = 5000"),
    ("pulse_width_us = 250", "pulse_width_us = -250"),
    ("pulse_width_us = 250", "pulse_width_us = 1000000"),
    ("electrode_area_cm2 = 20", "electrode_area_cm2 = 0"),
    ("electrode_area_cm2 = 20", "electrode_area_cm2 = -20"),
    ("max_amplitude_ma = 30", "max_amplitude_ma = 0"),
    ("max_amplitude_ma = 30", "max_amplitude_ma = 5000"),
    ("id = 1", "id = 0"),
    ("id = 1", "id = 99"),
    ('amplitude = "MT"', "amplitude = -5"),
    ('amplitude = "MT"', "amplitude = 500"),
    ('amplitude = "MT"', 'amplitude = "MT+500%"'),
    ('amplitude = "MT"', "amplitude = " + "9" * 400),  # an integer too large for float()
])
def test_negative_zero_and_absurd_values_are_rejected(good: str, bad: str) -> None:
    _error(_with(good, bad))


def test_an_integer_too_long_to_parse_is_a_program_error() -> None:
    _error(_with("duration_s = 60", "duration_s = 1" + "0" * 5000))


def test_program_longer_than_the_model_maximum_is_rejected() -> None:
    phases = "".join(
        f'\n[[phases]]\nname = "P{i}"\nduration_s = 3600\nfrequency_hz = 8\n'
        'pulse_width_us = 250\namplitude = "MT"\n'
        for i in range(4)
    )
    assert "over 14400 s" in _error(BASE + phases)


@pytest.mark.parametrize(("duty", "fragment"), [
    ("{ on_s = 0, off_s = 10, ramp_up_s = 1, ramp_down_s = 1 }", "on_s"),
    ("{ on_s = 5, off_s = -1, ramp_up_s = 1, ramp_down_s = 1 }", "off_s"),
    ("{ on_s = 5, off_s = 10, ramp_up_s = 0, ramp_down_s = 1 }", "ramp_up_s"),  # L16
    ("{ on_s = 5, off_s = 10, ramp_up_s = 1 }", "ramp_down_s"),
])
def test_bad_duty_values_are_rejected(duty: str, fragment: str) -> None:
    assert fragment in _error(_with('amplitude = "MT"', f'amplitude = "MT"\nduty = {duty}'))


def test_overlapping_bursts_are_rejected() -> None:
    text = _with('amplitude = "MT"', 'amplitude = "MT"\nburst = { rate_hz = 2, pulses = 10 }')
    assert "bursts overlap" in _error(text)  # 10 pulses at 8 Hz last 1.25 s


def test_sweep_needs_low_below_high() -> None:
    text = _with("pulse_width_us = 250", "pulse_width_us = { low = 180, high = 100, period_s = 1 }")
    assert "low < high" in _error(text)


# ---------------------------------------------------------------------------------------------
# Sites (L23)


@pytest.mark.parametrize(("site", "reason"), [
    ("neck-left", "laryngeal spasm or the carotid sinus reflex (L23)"),
    ("chest-left", "a current path across the heart (L23)"),
    ("eye-right", "stimulation of the eyes (L23)"),
    ("eyes", "stimulation of the eyes (L23)"),
    ("head", "transcerebral current (L23)"),
    ("forehead-left", "transcerebral current (L23)"),
    ("temple-right", "transcerebral current (L23)"),
    ("mouth", "laryngeal or pharyngeal spasm (L23)"),
    ("throat", "laryngeal spasm (L23)"),
    ("carotid-left", "the carotid sinus reflex (L23)"),
    ("upper-back-left", "across the heart (L23)"),
    ("abdomen", "pregnant uterus"),
])
def test_forbidden_site_is_rejected_with_its_l23_reason(site: str, reason: str) -> None:
    message = _error(_with('site = "calf-left"', f'site = "{site}"'))
    assert "never allowed" in message
    assert reason in message


def test_forbidden_return_site_is_rejected_with_its_l23_reason() -> None:
    text = _with('site = "calf-left"', 'site = "calf-left"\nreturn_site = "chest-left"')
    assert "across the heart (L23)" in _error(text)


@pytest.mark.parametrize("site", ["knee-left", "calf", "calf-middle", "CALF-LEFT", "left-calf"])
def test_site_not_on_the_allow_list_is_rejected(site: str) -> None:
    assert "not on the allow-list" in _error(_with('site = "calf-left"', f'site = "{site}"'))


@pytest.mark.parametrize(("site", "return_site"), [
    ("calf-left", "calf-right"),
    ("thigh-front-right", "thigh-front-left"),
    ("lower-back-left", "lower-back-right"),
])
def test_cross_body_pad_pair_is_rejected_with_the_l23_reason(site: str, return_site: str) -> None:
    text = _with('purpose = "massage"', 'purpose = "tens"')
    text = _with('site = "calf-left"', f'site = "{site}"\nreturn_site = "{return_site}"', text)
    message = _error(text)
    assert "cross the body" in message and "(L23)" in message


def test_pads_of_one_channel_on_different_regions_are_rejected() -> None:
    text = _with('site = "calf-left"', 'site = "calf-left"\nreturn_site = "thigh-back-left"')
    assert "different regions" in _error(text)


def test_same_side_same_region_return_site_is_accepted() -> None:
    program = parse_program_text(_with('site = "calf-left"',
                                       'site = "calf-left"\nreturn_site = "calf-left"'))
    assert program.channels[0].return_site == "calf-left"


@pytest.mark.parametrize("purpose", ["relaxation", "massage", "circulation", "recovery",
                                     "training"])
def test_lower_back_is_rejected_outside_tens_programs(purpose: str) -> None:
    text = _with('purpose = "massage"', f'purpose = "{purpose}"')
    text = _with('site = "calf-left"', 'site = "lower-back-left"', text)
    assert "lower back is for TENS programs only" in _error(text)


def test_lower_back_is_accepted_in_a_tens_program() -> None:
    text = _with('purpose = "massage"', 'purpose = "tens"')
    program = parse_program_text(_with('site = "calf-left"', 'site = "lower-back-left"', text))
    assert program.channels[0].site == "lower-back-left"


def test_duplicate_channel_ids_are_rejected() -> None:
    channel = BASE[BASE.index("[[channels]]"):BASE.index("[[phases]]")]
    text = BASE.replace("[[phases]]", channel.replace("calf-left", "calf-right") + "[[phases]]")
    assert "channel ids must be unique" in _error(text)


# ---------------------------------------------------------------------------------------------
# Phase kinds and waveform (L1)


GUIDE = '\n[[phases]]\nname = "stretch"\nkind = "guide"\nduration_s = 180\n' \
        'instructions = "Stretch your calves."\n'


def test_guide_phase_with_instructions_loads_before_a_stim_phase() -> None:
    program = parse_program_text(BASE + GUIDE)
    assert [p.kind for p in program.phases] == ["stim", "guide"]
    assert program.duration_s == 240


@pytest.mark.parametrize("field", [
    "frequency_hz = 8",
    "pulse_width_us = 250",
    'amplitude = "MT"',
    'amplitude_cap = "MT"',
    "duty = { on_s = 5, off_s = 10, ramp_up_s = 1, ramp_down_s = 1 }",
    "burst = { rate_hz = 2, pulses = 10 }",
])
def test_guide_phase_with_an_output_field_is_rejected(field: str) -> None:
    message = _error(BASE + GUIDE + field + "\n")
    assert "a guide phase has no output; remove " + field.split(" ", maxsplit=1)[0] in message


def test_guide_phase_without_instructions_is_rejected() -> None:
    text = BASE + GUIDE.replace('instructions = "Stretch your calves."\n', "")
    assert "a guide phase needs instructions" in _error(text)


def test_program_of_guide_phases_only_is_rejected() -> None:
    text = BASE[:BASE.index("[[phases]]")] + GUIDE
    assert "at least one stim phase" in _error(text)


@pytest.mark.parametrize("field", ["frequency_hz = 8", "pulse_width_us = 250",
                                   'amplitude = "MT"'])
def test_stim_phase_without_an_output_field_is_rejected(field: str) -> None:
    key = field.split(" ", maxsplit=1)[0]
    assert "a stim phase needs " + key in _error(_with(field + "\n", ""))


@pytest.mark.parametrize("waveform", ["monophasic", "dc", "galvanic", "asymmetric-biphasic",
                                      "MONOPHASIC"])
def test_monophasic_and_dc_waveforms_are_not_representable(waveform: str) -> None:
    message = _error(_with('amplitude = "MT"', f'amplitude = "MT"\nwaveform = "{waveform}"'))
    assert "phases[1].waveform" in message
    assert "symmetric-biphasic" in message


def test_explicit_symmetric_biphasic_waveform_is_accepted() -> None:
    text = _with('amplitude = "MT"', 'amplitude = "MT"\nwaveform = "symmetric-biphasic"')
    assert parse_program_text(text).phases[0].waveform == "symmetric-biphasic"


def test_alternating_pattern_needs_a_duty_cycle() -> None:
    text = _with('amplitude = "MT"', 'amplitude = "MT"\npattern = "alternating"')
    assert "needs a duty cycle" in _error(text)


# ---------------------------------------------------------------------------------------------
# Amplitude expressions


@pytest.mark.parametrize(("value", "factor", "threshold"), [
    ("MT", 1.0, "MT"),
    ("ST", 1.0, "ST"),
    ("TOL", 1.0, "TOL"),
    ("MT+10%", 1.1, "MT"),
    ("MT + 10 %", 1.1, "MT"),
    ("MT-5%", 0.95, "MT"),
    ("ST+50%", 1.5, "ST"),
    ("MT+2.5%", 1.025, "MT"),
    ("MT+200%", 3.0, "MT"),  # the largest multiple allowed
    ("0.6*TOL", 0.6, "TOL"),
    ("0.55 * TOL", 0.55, "TOL"),
    ("0.6×TOL", 0.6, "TOL"),
    ("3*MT", 3.0, "MT"),
    ("MT-100%", 0.0, "MT"),
    ("12mA", 12.0, None),
    ("12 mA", 12.0, None),
    ("12", 12.0, None),
    ("0.5", 0.5, None),
    (12, 12.0, None),
    (12.5, 12.5, None),
    (0, 0.0, None),
    (200, 200.0, None),
])
def test_amplitude_expression_parses(value: object, factor: float, threshold: str | None) -> None:
    expr = parse_amplitude(value)
    assert isinstance(expr, AmplitudeExpr)
    assert expr.factor == pytest.approx(factor)
    assert expr.threshold == threshold
    assert expr.is_absolute == (threshold is None)


@pytest.mark.parametrize("value", [
    "mt",  # threshold names are case-sensitive
    "Mt+10%",
    "MT+10",  # percent sign required
    "MT+10%%",
    "MT*0.6",  # the multiple comes first
    "10%",
    "MT+-10%",
    "MT+10% + 2",
    "-5",
    "+5",
    "12 ma",
    "12A",
    "1e3",
    "0x10",
    "nan",
    "inf",
    "",
    " ",
    "MT+",
    "TOL/2",
    "MT+201%",  # over 3 × MT
    "4*MT",
    "MT-101%",  # negative
    "201",  # over 200 mA
    -1,
    -0.5,
    201,
    math.nan,
    math.inf,
    -math.inf,
    True,
    None,
    [1],
    {"from": "MT"},
])
def test_amplitude_expression_is_rejected(value: object) -> None:
    with pytest.raises(ValueError, match=r"amplitude|not an amplitude|between"):
        parse_amplitude(value)


def test_amplitude_expression_error_in_a_file_names_the_field() -> None:
    text = _with('amplitude = "MT"', 'amplitude = "MT+10"')
    message = _error(text)
    assert f"line {_line(text, 'MT+10')}, phases[1].amplitude" in message
    assert "'MT+10' is not an amplitude" in message


def test_amplitude_ramp_uses_from_and_to_and_accepts_a_fade_to_zero() -> None:
    text = _with('amplitude = "MT"', 'amplitude = { from = "MT+10%", to = 0 }')
    ramp = parse_program_text(text).phases[0].amplitude
    assert ramp.start.factor == pytest.approx(1.1) and ramp.end.factor == 0  # type: ignore[union-attr]


def test_amplitude_ramp_with_unknown_key_is_rejected() -> None:
    text = _with('amplitude = "MT"', 'amplitude = { from = "MT", until = "MT+10%" }')
    assert "phases[1].amplitude" in _error(text)


# ---------------------------------------------------------------------------------------------
# Files


def test_non_utf8_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(BASE.replace("Calf.", "Wade (M\xfcller)").encode("latin-1"))
    with pytest.raises(ProgramError, match="not UTF-8"):
        load_program_file(path)


def test_oversized_file_is_rejected_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_bytes(BASE.encode() + b"#" * MAX_FILE_BYTES)
    with pytest.raises(ProgramError, match="byte limit"):
        load_program_file(path)


def test_file_at_the_size_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "full.toml"
    data = BASE.encode()
    path.write_bytes(data + b"#" * (MAX_FILE_BYTES - len(data)))
    assert load_program_file(path).program.name == "test"


def test_missing_file_is_a_program_error(tmp_path: Path) -> None:
    with pytest.raises(ProgramError, match=r"missing\.toml: no such file$"):
        load_program_file(tmp_path / "missing.toml")
    with pytest.raises(ProgramError, match=r"missing\.toml: no such file$"):
        load_program(str(tmp_path / "missing.toml"))


def test_directory_is_not_a_program_file(tmp_path: Path) -> None:
    with pytest.raises(ProgramError, match="a directory, not a file"):
        load_program_file(tmp_path)


def test_unknown_builtin_name_lists_the_builtins() -> None:
    with pytest.raises(ProgramError, match=r"no built-in program 'sleepy'.*relaxation"):
        load_program("sleepy")


def test_invalid_toml_is_a_program_error() -> None:
    assert "invalid TOML" in _error('name = "x"\nname = "y"\n')
    assert "invalid TOML" in _error("[[phases]\n")


def test_loaded_file_records_source_and_sha256(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "p.toml"
    path.write_text(BASE, encoding="utf-8")
    loaded = load_program_file(path)
    assert loaded.source == str(path) and not loaded.builtin
    assert loaded.sha256 == hashlib.sha256(BASE.encode()).hexdigest()


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_find_program_files_does_not_follow_symlink_loops(tmp_path: Path) -> None:
    root = tmp_path / "programs"
    (root / "sub").mkdir(parents=True)
    (root / "a.toml").write_text(BASE)
    (root / "sub" / "b.toml").write_text(BASE)
    (root / "sub" / "notes.txt").write_text("not a program")
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)
    (root / "sub" / "self").symlink_to(root / "sub", target_is_directory=True)
    found = list(find_program_files([root]))
    assert found == [root / "a.toml", root / "sub" / "b.toml"]


def test_find_program_files_yields_given_files_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    assert list(find_program_files([path])) == [path]


# ---------------------------------------------------------------------------------------------
# Fuzz: anything the loader is given either loads or raises ProgramError (HZ-13)


def _toml_key(key: str) -> str:
    return json.dumps(key, ensure_ascii=False)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}"
                               for k, v in value.items()) + "}"
    raise TypeError(type(value))


def _toml(document: dict[str, object]) -> str:
    """A tiny TOML writer: every top-level key as ``key = value`` with inline tables."""
    return "".join(f"{_toml_key(k)} = {_toml_value(v)}\n" for k, v in document.items())


_KEYS = st.sampled_from([
    "name", "title", "purpose", "evidence", "description", "placement", "expert",
    "calibration_frequency_hz", "calibration_pulse_width_us", "soft_start_s", "transition_s",
    "end_ramp_s", "channels", "phases", "id", "site", "return_site", "electrode_area_cm2",
    "max_amplitude_ma", "kind", "duration_s", "instructions", "frequency_hz", "pulse_width_us",
    "waveform", "amplitude", "amplitude_cap", "duty", "burst", "pattern", "from", "to", "low",
    "high", "period_s", "on_s", "off_s", "ramp_up_s", "ramp_down_s", "rate_hz", "pulses",
    "float", "Ramp", "[0]", "",
]) | st.text(max_size=12)
_SCALARS = (
    st.none()  # stands for "leave the key out"
    | st.booleans()
    | st.integers(min_value=-(2**1100), max_value=2**1100)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["MT", "MT+10%", "0.6*TOL", "calf-left", "lower-back-right", "neck",
                       "guide", "stim", "tens", "alternating", "symmetric-biphasic", "12mA"])
)


def _drop_none(value: object) -> object:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value if v is not None]
    return value


_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=6),
    max_leaves=30,
)
_DOCUMENTS = st.dictionaries(_KEYS, _VALUES, max_size=12).map(_drop_none)


def _base_document() -> dict[str, object]:
    import tomllib

    return tomllib.loads(BASE)


def _mutate(document: object, path: list[str | int], value: object) -> object:
    """Replace (or, with a None value, delete) what sits at ``path``, as far as it exists."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(document, dict) and isinstance(head, str):
        copy = dict(document)
        if head in copy and rest:
            copy[head] = _mutate(copy[head], rest, value)
        elif value is None:
            copy.pop(head, None)
        else:
            copy[head] = value
        return copy
    if isinstance(document, list) and isinstance(head, int) and document:
        copy_list = list(document)
        index = head % len(copy_list)
        copy_list[index] = _mutate(copy_list[index], rest, value)
        return copy_list
    return document


def _outcome(text: str) -> None:
    try:
        program = parse_program_text(text, "fuzz.toml")
    except ProgramError as exc:
        assert str(exc).startswith("fuzz.toml: ")
    else:
        assert isinstance(program, Program)


@settings(max_examples=300, deadline=None)
@given(_DOCUMENTS)
def test_random_toml_document_loads_or_raises_program_error(document: dict[str, object]) -> None:
    _outcome(_toml(document))


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.one_of(_KEYS, st.integers(0, 3)), min_size=1, max_size=4),
    _VALUES,
)
def test_mutated_valid_program_loads_or_raises_program_error(
    path: list[str | int], value: object
) -> None:
    document = _mutate(_base_document(), path, _drop_none(value))
    assert isinstance(document, dict)
    _outcome(_toml(document))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_random_text_loads_or_raises_program_error(text: str) -> None:
    _outcome(text)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_in_a_file_load_or_raise_program_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.toml"
        path.write_bytes(data)
        with contextlib.suppress(ProgramError):
            load_program_file(path)
