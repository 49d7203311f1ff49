"""Plan verification: built-ins pass; broken copies fail with the right limit ID; the verifier
is exact (it agrees with a brute-force check at densely sampled times)."""

from __future__ import annotations

import re
from importlib import resources

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emsctl import formulas, pulse_window
from emsctl.contract import Capabilities
from emsctl.limits import CEILINGS, DEFAULTS, Limits
from emsctl.loader import builtin_names, load_program, parse_program_text
from emsctl.plan import Plan, compile_plan
from emsctl.verify import verify


def _text(name: str) -> str:
    return (resources.files("emsctl.programs") / f"{name}.toml").read_text()


def _ids(text: str, limits: Limits = DEFAULTS) -> set[str]:
    plan = compile_plan(parse_program_text(text))
    return {v.limit_id for v in verify(plan, limits) if v.severity == "block"}


@pytest.mark.parametrize("name", builtin_names())
def test_every_builtin_program_passes_the_default_limits(name: str) -> None:
    plan = compile_plan(load_program(name).program)
    assert [str(v) for v in verify(plan, DEFAULTS) if v.severity == "block"] == []


def _sub(text: str, pattern: str, repl: str, count: int = 0) -> str:
    new, n = re.subn(pattern, repl, text, count=count, flags=re.MULTILINE)
    assert n > 0, pattern
    return new


RELAX = _text("relaxation")
CIRC = _text("circulation")


def _as_tens(text: str) -> str:
    """The same program as TENS: only TENS may use pads under 16 cm² (L13), so copies on
    small pads that probe other limits are TENS."""
    return _sub(text, r'^purpose = "[a-z]+"', 'purpose = "tens"')

BROKEN: dict[str, tuple[str, str]] = {
    # limit ID → (description, broken program text)
    "L3": ("cap above 40 mA", _sub(RELAX, r"^max_amplitude_ma = 30", "max_amplitude_ma = 60")),
    "L6": ("350 µs pulses", _sub(RELAX, r"^pulse_width_us = 250", "pulse_width_us = 350", 1)),
    "L7": ("120 Hz", _sub(RELAX, r"^frequency_hz = 6$", "frequency_hz = 120")),
    "L8": ("80 mA × 300 µs = 24 µC",
           _sub(CIRC, r"^max_amplitude_ma = 40", "max_amplitude_ma = 80")),
    "L9": ("40 mA, 300 µs, 100 Hz on 4 cm²",
           _sub(_sub(_sub(_as_tens(CIRC), r"^electrode_area_cm2 = 20", "electrode_area_cm2 = 4"),
                     r"^frequency_hz = 8$", "frequency_hz = 100"),
                r"^pulse_width_us = 250", "pulse_width_us = 300")),
    "L13": ("3 cm² pads",
            _sub(_as_tens(RELAX), r"^electrode_area_cm2 = 20", "electrode_area_cm2 = 3")),
    "L14": ("no soft start", _sub(RELAX, r"^soft_start_s = 5", "soft_start_s = 0")),
    "L15": ("1 s soft start", _sub(RELAX, r"^soft_start_s = 5", "soft_start_s = 1")),
    "L18": ("continuous 25 Hz motor-level train",
            _sub(CIRC, r"^frequency_hz = 8$", "frequency_hz = 25")),
    "L19": ("70 min", _sub(CIRC, r"^duration_s = 600", "duration_s = 2100")),
}


@pytest.mark.parametrize("limit_id", sorted(BROKEN))
def test_a_broken_copy_of_a_builtin_fails_with_the_right_limit_id(limit_id: str) -> None:
    _, text = BROKEN[limit_id]
    assert limit_id in _ids(text)


def test_a_session_over_its_limit_says_how_long_it_lasts_and_the_limit_in_minutes() -> None:
    plan = compile_plan(parse_program_text(BROKEN["L19"][1]))
    (found,) = [v for v in verify(plan, DEFAULTS) if v.limit_id == "L19"]
    minutes = found.value / 60
    limit_min = DEFAULTS.session_max_s / 60
    assert found.message == f"stimulation lasts {minutes:.1f} min, over {limit_min:.0f} min"
    assert found.message.endswith("over 30 min")  # the default limit, in words
    assert (found.allowed, found.setting) == (DEFAULTS.session_max_s, "session_max_s")


def test_the_unbroken_originals_pass() -> None:
    assert _ids(RELAX) == set() and _ids(CIRC) == set()


def test_a_step_up_from_zero_after_a_rest_is_caught() -> None:
    # a rest (guide) between two stim phases, and no transition ramp: 0 → cap at once
    text = _sub(RELAX, r"^transition_s = 5", "transition_s = 0")
    text = text.replace('name = "slower twitches"', 'name = "rest"\nkind = "guide"\n'
                        'duration_s = 10\ninstructions = "rest"\n\n[[phases]]\n'
                        'name = "slower twitches"', 1)
    assert "L14" in _ids(text)


def test_a_step_up_from_a_non_zero_level_is_caught() -> None:
    text = _sub(RELAX, r"^transition_s = 5", "transition_s = 0")
    text = text.replace('amplitude = "MT+10%"\n', 'amplitude = 35\n', 1)
    text = _sub(text, r"^max_amplitude_ma = 30", "max_amplitude_ma = 36")
    assert "L17" in _ids(text)


def test_a_ramp_faster_than_the_plan_rise_limit_is_caught() -> None:
    # a 0.2 s ramp from 0 to 40 mA is 200 mA/s, over the 40 mA/s default (L16)
    text = _sub(_text("cramp-training"), r"ramp_up_s = 1(\.0)?", "ramp_up_s = 0.2")
    assert "L16" in _ids(text)


def test_power_and_rms_at_w6_are_caught_against_defaults() -> None:
    # W6: 80 mA, 400 µs, 150 Hz on 4 cm² → L4 passes its ceiling, fails the 25 mA default
    text = _sub(_sub(_sub(_sub(_as_tens(CIRC), r"^max_amplitude_ma = 40", "max_amplitude_ma = 80"),
                          r"^electrode_area_cm2 = 20", "electrode_area_cm2 = 4"),
                     r"^frequency_hz = 8$", "frequency_hz = 150"),
                r"^pulse_width_us = 250", "pulse_width_us = 400")
    ids = _ids(text)
    assert {"L3", "L4", "L6", "L7", "L8", "L9", "L10"} <= ids
    assert "L4" not in _ids(text, CEILINGS) and "L10" not in _ids(text, CEILINGS)


def test_a_density_warning_does_not_fail_validation() -> None:
    # W5: 40 mA, 200 µs, 100 Hz on 4 cm² → exactly 2.0 mA/cm²: allowed, with an L9 warning
    text = _sub(_sub(_sub(_text("tens"), r"^electrode_area_cm2 = \d+", "electrode_area_cm2 = 4"),
                     r"^pulse_width_us = 180", "pulse_width_us = 200"),
                r"^frequency_hz = 80", "frequency_hz = 100")
    plan = compile_plan(parse_program_text(text))
    found = verify(plan, DEFAULTS)
    assert any(v.limit_id == "L9" and v.severity == "warn" for v in found)
    assert not any(v.limit_id == "L9" and v.severity == "block" for v in found)


def test_device_capabilities_are_checked() -> None:
    caps = Capabilities("two-channel 20 mA box", channels=1, amplitude_max_ma=20,
                        amplitude_step_ma=1, pulse_width_min_us=50, pulse_width_max_us=200,
                        frequency_min_hz=1, frequency_max_hz=50, frequency_per_channel=False,
                        update_period_s=0.1, max_lease_s=1, has_output_watchdog=True)
    plan = compile_plan(load_program("relaxation").program)
    messages = [v.message for v in verify(plan, DEFAULTS, caps) if v.limit_id == "device"]
    assert any("only 1 channels" in m for m in messages)
    assert any("30 mA is outside" in m for m in messages)
    assert any("250 µs is outside" in m for m in messages)


# ----------------------------------------------------------------------------- exactness

POINT_LIMITS = ("L3", "L4", "L6", "L7", "L8", "L9", "L10")


def _brute_force(plan: Plan, lim: Limits, per_segment: int = 64) -> dict[str, float]:
    """Worst ratio value/allowed of each point limit, sampled densely inside every segment."""
    worst = dict.fromkeys(POINT_LIMITS, 0.0)
    for cplan in plan.channels:
        seg = cplan.segments
        x = np.linspace(0.0, 1.0, per_segment)[None, :]
        amp = seg["amp0_ma"][:, None] + (seg["amp1_ma"] - seg["amp0_ma"])[:, None] * x
        pw = seg["pw0_us"][:, None] + (seg["pw1_us"] - seg["pw0_us"])[:, None] * x
        freq = seg["freq0_hz"][:, None] + (seg["freq1_hz"] - seg["freq0_hz"])[:, None] * x
        burst = (seg["burst_rate_hz"] > 0)[:, None]
        # bursts: N, the most pulses in any 1 s window (checked against expanded pulse times
        # in tests/test_pulse_window.py)
        burst_n = pulse_window.pulses_per_s_array(freq, seg["burst_rate_hz"][:, None],
                                              seg["burst_pulses"][:, None])
        rate = np.where(burst, burst_n, freq)
        live = amp > 0
        area = cplan.electrode_area_cm2
        q = formulas.phase_charge_uc_array(amp, pw)
        rms = formulas.rms_current_ma_array(amp, pw, rate)
        ratios = {
            "L3": amp / lim.peak_ma,
            "L4": rms / lim.rms_ma,
            "L6": np.maximum(pw / lim.pulse_width_max_us, lim.pulse_width_min_us / pw),
            "L7": np.maximum(freq / lim.frequency_max_hz, lim.frequency_min_hz / freq),
            "L8": np.maximum(q / lim.phase_charge_uc, q**2 / area / 10**lim.shannon_k),
            "L9": rms / area / lim.current_density_ma_cm2,
            "L10": formulas.power_density_w_cm2_array(amp, pw, rate, area)
            / lim.power_density_w_cm2,
        }
        for key, ratio in ratios.items():
            if live.any():
                worst[key] = max(worst[key], float(np.max(np.where(live, ratio, 0.0))))
    return worst


value = st.floats(min_value=1, max_value=400)


@st.composite
def spec(draw: st.DrawFn, low: float, high: float) -> str:
    kind = draw(st.sampled_from(["fixed", "ramp", "sweep"]))
    a = draw(st.floats(min_value=low, max_value=high))
    b = draw(st.floats(min_value=low, max_value=high))
    if kind == "fixed" or a == b:
        return f"{a!r}"
    if kind == "ramp":
        return f"{{ from = {a!r}, to = {b!r} }}"
    lo, hi = min(a, b), max(a, b)
    period = draw(st.floats(min_value=0.5, max_value=20))
    return f"{{ low = {lo!r}, high = {hi!r}, period_s = {period!r} }}"


AMPLITUDES = ["1.0", "5.5", "12", "40", "MT", "0.5*TOL"]


def _quoted(text: str) -> str:
    return f'"{text}"'


@st.composite
def programs(draw: st.DrawFn) -> str:
    cap = draw(st.floats(min_value=5, max_value=100))
    area = draw(st.floats(min_value=2, max_value=60))
    # EMS programs need pads of at least 16 cm² (L13); TENS may use smaller ones
    purpose = "tens" if area < 16 else draw(st.sampled_from(["massage", "tens"]))
    lines = ['name = "random"', 'title = "Random"', f'purpose = "{purpose}"', 'evidence = "none"',
             'description = "d"', 'placement = "p"', "calibration_frequency_hz = 10",
             "calibration_pulse_width_us = 200",
             f"soft_start_s = {draw(st.floats(min_value=0.5, max_value=10))!r}",
             f"transition_s = {draw(st.floats(min_value=0.5, max_value=10))!r}",
             "[[channels]]", "id = 1", 'site = "calf-left"',
             f"electrode_area_cm2 = {area!r}", f"max_amplitude_ma = {cap!r}"]
    for n in range(draw(st.integers(min_value=1, max_value=3))):
        lines += ["[[phases]]", f'name = "p{n}"',
                  f"duration_s = {draw(st.floats(min_value=5, max_value=120))!r}",
                  f"frequency_hz = {draw(spec(1, 200))}",
                  f"pulse_width_us = {draw(spec(20, 500))}",
                  "amplitude = " + _quoted(draw(st.sampled_from(AMPLITUDES)))]
        if draw(st.booleans()):
            up = draw(st.floats(min_value=0.2, max_value=3))
            lines.append(f"duty = {{ on_s = 3.0, off_s = 4.0, ramp_up_s = {up!r}, "
                         "ramp_down_s = 1.0 }")
    return "\n".join(lines)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(), st.sampled_from([DEFAULTS, CEILINGS]))
def test_verifier_agrees_with_a_brute_force_check_at_dense_times(text: str, lim: Limits) -> None:
    plan = compile_plan(parse_program_text(text))
    found = {v.limit_id for v in verify(plan, lim) if v.severity == "block"}
    worst = _brute_force(plan, lim)
    for limit_id in POINT_LIMITS:
        sampled_breaks = worst[limit_id] > 1 + 1e-9
        if sampled_breaks:
            assert limit_id in found, (limit_id, worst[limit_id])
        elif limit_id in found:
            # the exact maximum may sit between samples, but only just above the limit
            assert worst[limit_id] > 0.97, (limit_id, worst[limit_id])
