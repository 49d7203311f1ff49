"""The built-in programs match docs/programs-basis.md §3 and stay within the shipped default limits.

The limit arithmetic here is deliberately plain (docs/safety-basis.md §3 formulas written out again)
so that it is independent of ``emsctl.limits`` and ``emsctl.verify``. Every relative amplitude is
taken at the channel's ``max_amplitude_ma`` — the worst case a validation run compiles.
"""

from __future__ import annotations

import itertools
import math
import re
from importlib import resources

import pytest

from emsctl.loader import builtin_names, load_program
from emsctl.program import Phase, Program, Ramp, Sweep

BUILTINS = (
    "circulation",
    "cramp-training",
    "massage",
    "recovery",
    "relaxation",
    "tens",
    "tens-burst",
    "tens-modulated",
)
TENS = {"tens", "tens-burst", "tens-modulated"}

# docs/safety-basis.md §2 shipped defaults.
PEAK_MAX_MA = 40.0  # L3
RMS_MAX_MA = 25.0  # L4
PW_MIN_US, PW_MAX_US = 100.0, 300.0  # L6
F_MIN_HZ, F_MAX_HZ = 1.0, 100.0  # L7
Q_MAX_UC = 20.0  # L8
K_MAX = 1.5  # L8: Q²/A ≤ 10**1.5 ≈ 31.6 µC²/cm²
J_WARN = 1.0  # L9 warns at ≥ 1.0 mA/cm²; built-ins stay below the warning
POWER_DENSITY_MAX = 0.05  # L10, W/cm² at 500 Ω
EMS_AREA_MIN, TENS_AREA_MIN = 16.0, 4.0  # L13
SOFT_START_MIN_S = 5.0  # L15
DUTY_RAMP_MIN_S = 1.0  # L16
L18_ON_MAX_S = 10.0  # L18
SESSION_MAX_S = 30 * 60.0  # L19: ≤ 30 min for shipped programs
#: cramp-training's session replaces 55 Hz with CTF + 30 Hz, capped at 80 Hz.
CRAMP_FREQUENCY_CEILING_HZ = 80.0


def _program(name: str) -> Program:
    return load_program(name).program


def _stim(program: Program) -> list[Phase]:
    return [p for p in program.phases if p.kind == "stim"]


def _highest(spec: float | Ramp | Sweep | None) -> float:
    assert spec is not None
    if isinstance(spec, Ramp):
        return max(spec.start, spec.end)
    if isinstance(spec, Sweep):
        return spec.high
    return float(spec)


def _lowest(spec: float | Ramp | Sweep | None) -> float:
    assert spec is not None
    if isinstance(spec, Ramp):
        return min(spec.start, spec.end)
    if isinstance(spec, Sweep):
        return spec.low
    return float(spec)


def _frequencies_to_check(name: str, phase: Phase) -> list[float]:
    top = _highest(phase.frequency_hz)
    if name == "cramp-training":
        return [top, CRAMP_FREQUENCY_CEILING_HZ]
    return [top]


def _pulses_per_second(phase: Phase, frequency_hz: float) -> float:
    """N of docs/safety-basis.md §3, the most pulses in any 1 s window; on/off trains with ON ≥ 1 s
    count f. Bursts (never overlapping in a program): the window opens with a burst and holds
    min(P, ⌈f·(1 − k/R)⌉) pulses of each burst k that starts inside it."""
    if phase.burst is not None:
        rate, pulses = phase.burst.rate_hz, phase.burst.pulses
        return float(sum(min(pulses, math.ceil(frequency_hz * (1 - k / rate) - 1e-9))
                         for k in range(math.ceil(rate - 1e-9))))
    return frequency_hz


def _worst_cases() -> list[tuple[str, int, str, float]]:
    rows = []
    for name in BUILTINS:
        program = _program(name)
        for channel in program.channels:
            for phase in _stim(program):
                for f in _frequencies_to_check(name, phase):
                    rows.append((name, channel.id, phase.name, f))
    return rows


# ---------------------------------------------------------------------------------------------
# Names and loading


def test_builtin_names_are_exactly_the_basis_programs() -> None:
    assert builtin_names() == sorted(BUILTINS)


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_loads_and_its_name_matches_its_file(name: str) -> None:
    loaded = load_program(name)
    assert loaded.builtin
    assert loaded.program.name == name
    assert (resources.files("emsctl.programs") / f"{name}.toml").is_file()


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_file_starts_with_comments_citing_evidence_placement_and_sources(
    name: str,
) -> None:
    text = (resources.files("emsctl.programs") / f"{name}.toml").read_text("utf-8")
    header = text.split("\nname = ", 1)[0]
    assert all(line.startswith("#") or not line for line in header.splitlines())
    for word in ("Description", "Evidence level", "Electrode placement", "Sources"):
        assert word in header, word
    assert re.search(r"\[(S|S2|E)\]", header)


def test_only_cramp_training_is_expert() -> None:
    experts = [name for name in BUILTINS if _program(name).expert]
    assert experts == ["cramp-training"]


# ---------------------------------------------------------------------------------------------
# Values from the docs/programs-basis.md tables

_RECOVERY_HZ = (10, 9, 8, 7, 6, 5, 4, 3, 2.5, 2, 1.5, 1)

#: (program, phase index, name, kind, duration_s, frequency_hz, pulse_width_us); a pulse width
#: given as a tuple is a triangular sweep (low, high, period_s). None: a guide phase.
BASIS_TABLE: list[tuple[str, int, str, str, float, float | None, object]] = [
    ("relaxation", 0, "stretch", "guide", 180, None, None),
    ("relaxation", 1, "gentle twitches", "stim", 300, 6, 250),
    ("relaxation", 2, "slower twitches", "stim", 300, 3, 250),
    ("relaxation", 3, "fading out", "stim", 180, 2, 200),
    ("massage", 0, "quick twitches, building up", "stim", 300, 8, 250),
    ("massage", 1, "medium twitches", "stim", 300, 5, 250),
    ("massage", 2, "slow twitches", "stim", 300, 3, 250),
    ("massage", 3, "slowest twitches, easing off", "stim", 300, 2, 250),
    ("circulation", 0, "quick pumping twitches", "stim", 600, 8, 250),
    ("circulation", 1, "slow, stronger pumping", "stim", 600, 2, 300),
    *[("recovery", i, f"{f:g} twitch{'' if f == 1 else 'es'} a second", "stim", 120, f, 250)
      for i, f in enumerate(_RECOVERY_HZ)],
    ("tens", 0, "steady tingling", "stim", 1800, 80, 180),
    ("tens-burst", 0, "bursts, twice a second", "stim", 1800, 100, 180),
    ("tens-modulated", 0, "tingling that swells and eases", "stim", 1800, 80, (100, 180, 1)),
    ("cramp-training", 0, "training set 1 of 3", "stim", 90, 55, 150),
    ("cramp-training", 1, "rest after set 1", "guide", 120, None, None),
    ("cramp-training", 2, "training set 2 of 3", "stim", 90, 55, 150),
    ("cramp-training", 3, "rest after set 2", "guide", 120, None, None),
    ("cramp-training", 4, "training set 3 of 3", "stim", 90, 55, 150),
]
_PHASE_COUNTS = {"relaxation": 4, "massage": 4, "circulation": 2, "recovery": 12, "tens": 1,
                 "tens-burst": 1, "tens-modulated": 1, "cramp-training": 5}


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_phase_names_are_plain_words(name: str) -> None:
    """A tired person reads the phase on screen: "fading out", never a bare letter or number."""
    for phase in _program(name).phases:
        assert not re.fullmatch(r"[A-Za-z]|[0-9.]+|[A-Za-z]?-?[0-9]+", phase.name), phase.name
        assert re.search(r"[a-z]{3,}", phase.name), phase.name


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_has_the_basis_number_of_phases(name: str) -> None:
    assert len(_program(name).phases) == _PHASE_COUNTS[name]
    assert sum(1 for row in BASIS_TABLE if row[0] == name) == _PHASE_COUNTS[name]


@pytest.mark.parametrize("row", BASIS_TABLE, ids=[f"{row[0]}-{row[2]}" for row in BASIS_TABLE])
def test_phase_duration_frequency_and_width_equal_the_basis_table(
    row: tuple[str, int, str, str, float, float | None, object],
) -> None:
    name, index, phase_name, kind, duration_s, frequency_hz, pulse_width_us = row
    phase = _program(name).phases[index]
    assert (phase.name, phase.kind, phase.duration_s) == (phase_name, kind, duration_s)
    assert phase.frequency_hz == frequency_hz
    if isinstance(pulse_width_us, tuple):
        assert isinstance(phase.pulse_width_us, Sweep)
        sweep = phase.pulse_width_us
        assert (sweep.low, sweep.high, sweep.period_s) == pulse_width_us
    else:
        assert phase.pulse_width_us == pulse_width_us


def test_relaxation_is_13_min_of_stimulation_after_a_3_min_stretch_guide() -> None:
    program = _program("relaxation")
    first = program.phases[0]
    assert first.kind == "guide" and first.duration_s == 180
    assert first.instructions is not None
    assert "10 seconds, 3 times" in first.instructions  # Hallegraeff protocol
    assert "hamstring" in first.instructions
    assert sum(p.duration_s for p in _stim(program)) == 13 * 60
    assert program.duration_s == 13 * 60 + 180


def test_relaxation_calibrates_at_6_hz_250_us() -> None:
    program = _program("relaxation")
    assert (program.calibration_frequency_hz, program.calibration_pulse_width_us) == (6, 250)


def test_relaxation_intensities_follow_the_basis() -> None:
    a, b, c = _stim(_program("relaxation"))
    assert (str(a.amplitude.start), str(a.amplitude.end)) == ("MT", "MT+10%")  # type: ignore[union-attr]
    assert str(b.amplitude) == "MT+10%"
    assert str(c.amplitude.start) == "MT+10%"  # type: ignore[union-attr]
    assert c.amplitude.end.factor == 0  # type: ignore[union-attr]  # linear fade to 0


def test_relaxation_text_is_comfort_only_and_says_when_to_see_a_doctor() -> None:
    program = _program("relaxation")
    text = program.description
    assert "does not prevent" in text
    for sign in ("doctor", "swollen, red, warm", "same-day", "more than 10 minutes",
                 "urgent care", "weakness", "numbness", "3 or more nights"):
        assert sign in text, sign
    assert "sleeping" in text  # 21 CFR 882.5891: not while asleep


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_texts_make_no_cure_or_prevention_claim(name: str) -> None:
    program = _program(name)
    texts = (program.description, program.evidence, program.placement, program.title)
    for text in texts:
        assert not re.search(r"\b(cures?|heals?|prevents|guaranteed)\b", text, re.IGNORECASE)


def test_recovery_rises_mt_to_mt_plus_30_percent_without_steps() -> None:
    phases = _stim(_program("recovery"))
    assert phases[0].amplitude.start.factor == 1.0  # type: ignore[union-attr]
    assert phases[-1].amplitude.end.factor == pytest.approx(1.3)  # type: ignore[union-attr]
    for before, after in itertools.pairwise(phases):
        assert before.amplitude.end.factor == pytest.approx(after.amplitude.start.factor)  # type: ignore[union-attr]
    assert sum(p.duration_s for p in phases) == 24 * 60


def test_tens_burst_is_2_bursts_of_10_pulses_at_100_hz_within_the_l18_exemption() -> None:
    (phase,) = _stim(_program("tens-burst"))
    assert phase.burst is not None
    assert (phase.burst.rate_hz, phase.burst.pulses, phase.frequency_hz) == (2, 10, 100)
    burst_s = phase.burst.pulses / 100
    assert burst_s == pytest.approx(0.1)  # ≤ 200 ms
    assert burst_s * phase.burst.rate_hz == pytest.approx(0.2)  # burst duty 20 % ≤ 25 %


@pytest.mark.parametrize("name", ["tens", "tens-modulated"])
def test_sensory_tens_is_capped_at_mt(name: str) -> None:
    (phase,) = _stim(_program(name))
    assert str(phase.amplitude_cap) == "MT"
    assert phase.amplitude.threshold == "MT" and phase.amplitude.factor < 1.0  # type: ignore[union-attr]


def test_cramp_training_is_3_sets_of_6_trains_5_s_on_10_s_apart_at_55_percent_tol() -> None:
    program = _program("cramp-training")
    sets = _stim(program)
    assert len(sets) == 3
    assert [p.duration_s for p in program.phases if p.kind == "guide"] == [120, 120]
    for phase in sets:
        duty = phase.duty
        assert duty is not None
        assert (duty.on_s, duty.ramp_up_s, duty.ramp_down_s, duty.off_s) == (5, 1, 1, 8)
        assert duty.off_s + duty.ramp_up_s + duty.ramp_down_s == 10  # the trial's 10 s OFF
        assert phase.duration_s / duty.cycle_s == 6
        assert str(phase.amplitude) == "0.55*TOL"
    assert program.duration_s == 3 * 90 + 2 * 120  # 8.5 min


# ---------------------------------------------------------------------------------------------
# Default limits at the program caps (plain arithmetic, docs/safety-basis.md §3)


@pytest.mark.parametrize(("name", "channel_id", "phase_name", "frequency_hz"), _worst_cases())
def test_builtin_stays_within_default_electrical_limits_at_its_cap(
    name: str, channel_id: int, phase_name: str, frequency_hz: float
) -> None:
    program = _program(name)
    channel = next(c for c in program.channels if c.id == channel_id)
    phase = next(p for p in program.phases if p.name == phase_name)
    peak_ma = channel.max_amplitude_ma
    area_cm2 = channel.electrode_area_cm2
    pw_us = _highest(phase.pulse_width_us)

    q_uc = peak_ma * pw_us / 1000
    duty = 2 * pw_us * _pulses_per_second(phase, frequency_hz) * 1e-6
    i_rms_ma = peak_ma * math.sqrt(duty)
    j_ma_cm2 = i_rms_ma / area_cm2
    power_density_w_cm2 = (i_rms_ma / 1000) ** 2 * 500 / area_cm2

    assert peak_ma <= PEAK_MAX_MA  # L3
    assert i_rms_ma <= RMS_MAX_MA  # L4
    assert _lowest(phase.pulse_width_us) >= PW_MIN_US and pw_us <= PW_MAX_US  # L6
    assert _lowest(phase.frequency_hz) >= F_MIN_HZ and frequency_hz <= F_MAX_HZ  # L7
    assert q_uc <= Q_MAX_UC  # L8
    assert q_uc**2 / area_cm2 <= 10**K_MAX  # L8 Shannon k, compared squared
    assert j_ma_cm2 < J_WARN  # L9
    assert power_density_w_cm2 <= POWER_DENSITY_MAX  # L10
    assert area_cm2 >= (TENS_AREA_MIN if name in TENS else EMS_AREA_MIN)  # L13


@pytest.mark.parametrize(("name", "expected"), [
    # (peak mA, Q µC, Q²/A µC²/cm², J mA/cm²) at the cap; the values quoted in each file's header
    ("relaxation", (30, 7.5, 2.8125, 0.0822)),
    ("massage", (40, 10.0, 5.0, 0.126)),
    ("circulation", (40, 12.0, 7.2, 0.126)),
    ("recovery", (40, 10.0, 5.0, 0.141)),
    ("tens", (40, 7.2, 3.24, 0.424)),
    ("tens-burst", (40, 7.2, 3.24, 0.212)),
    ("tens-modulated", (40, 7.2, 3.24, 0.424)),
    ("cramp-training", (40, 6.0, 1.8, 0.310)),  # J at the 80 Hz ceiling
])
def test_builtin_worst_case_figures_match_the_file_header(
    name: str, expected: tuple[float, float, float, float]
) -> None:
    program = _program(name)
    peak = max(c.max_amplitude_ma for c in program.channels)
    area = min(c.electrode_area_cm2 for c in program.channels)
    q = max(peak * _highest(p.pulse_width_us) / 1000 for p in _stim(program))
    j = max(
        peak * math.sqrt(2 * _highest(p.pulse_width_us) * _pulses_per_second(p, f) * 1e-6) / area
        for p in _stim(program)
        for f in _frequencies_to_check(name, p)
    )
    assert (peak, q, q**2 / area) == pytest.approx(expected[:3])
    assert j == pytest.approx(expected[3], abs=5e-4)


@pytest.mark.parametrize("name", BUILTINS)
def test_motor_trains_at_20_hz_or_more_obey_l18(name: str) -> None:
    for phase in _stim(_program(name)):
        top_hz = max(_frequencies_to_check(name, phase))
        sensory = phase.amplitude_cap is not None and str(phase.amplitude_cap) == "MT" and (
            phase.amplitude.threshold == "MT" and phase.amplitude.factor < 1.0  # type: ignore[union-attr]
        )
        if top_hz < 20 or sensory:
            continue
        if phase.burst is not None:  # TENS burst exemption
            burst_s = phase.burst.pulses / _highest(phase.frequency_hz)
            assert burst_s <= 0.2 and burst_s * phase.burst.rate_hz <= 0.25
            continue
        assert phase.duty is not None, f"{name}/{phase.name}: continuous motor train ≥ 20 Hz"
        on_s = phase.duty.train_s  # ON includes ramps
        assert on_s <= L18_ON_MAX_S
        assert phase.duty.off_s >= on_s


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_ramps_and_session_length_meet_l15_l16_l19(name: str) -> None:
    program = _program(name)
    assert program.soft_start_s >= SOFT_START_MIN_S  # L15
    assert program.end_ramp_s == 3.0
    assert program.transition_s > 0  # phase changes ramp, never step up
    for phase in _stim(program):
        if phase.duty is not None:
            assert phase.duty.ramp_up_s >= DUTY_RAMP_MIN_S  # L16
            assert phase.duty.ramp_down_s >= DUTY_RAMP_MIN_S
    assert sum(p.duration_s for p in _stim(program)) <= SESSION_MAX_S  # L19


@pytest.mark.parametrize("name", BUILTINS)
def test_calibration_width_is_the_widest_width_so_no_phase_exceeds_the_calibrated_charge(
    name: str,
) -> None:
    # docs/programs-basis.md §1: a phase at another width keeps current and charge at or below the
    # calibrated target; with the same expression that holds when it is not wider.
    program = _program(name)
    widest = max(_highest(p.pulse_width_us) for p in _stim(program))
    assert program.calibration_pulse_width_us == widest


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_uses_two_same_side_channels_on_calves_or_tens_lower_back(name: str) -> None:
    program = _program(name)
    sites = [c.site for c in program.channels]
    expected = (["lower-back-left", "lower-back-right"] if name in TENS
                else ["calf-left", "calf-right"])
    assert sites == expected
    assert all(c.return_site is None for c in program.channels)
