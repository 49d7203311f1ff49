"""Program amplitudes resolved through the profile: golden values, caps, expiry, binding (HZ-14)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from person_helpers import NOW, REAL_URL, calibration, relaxation_profile

from emsctl.amplitude import Thresholds, parse_amplitude
from emsctl.devices import open_device
from emsctl.loader import load_program
from emsctl.plan import compile_plan
from emsctl.profile import SYNTHETIC_THRESHOLDS, Profile, ProfileError
from emsctl.thresholds import PER_SESSION_MAX_AGE, device_key, resolve_thresholds

REAL = open_device(REAL_URL)  # made, never connected: no port is opened

PERSON = Thresholds(st_ma=5.0, mt_ma=10.0, tol_ma=20.0)
COYOTE = "coyote3://AA:BB:CC:DD:EE:FF"
BALANCES = "frequency_balance=128&intensity_balance=128"


@pytest.mark.parametrize(("text", "expected_ma"), [
    ("MT", 10.0), ("MT+10%", 11.0), ("MT+20%", 12.0), ("MT-10%", 9.0), ("ST", 5.0),
    ("ST+50%", 7.5), ("0.55*TOL", 11.0), ("0.85*TOL", 17.0), ("TOL", 20.0), ("12mA", 12.0),
    (7, 7.0),
])
def test_relative_amplitudes_resolve_to_golden_values(text: object, expected_ma: float) -> None:
    assert parse_amplitude(text).resolve_ma(PERSON) == pytest.approx(expected_ma)


def _peak(plan_channel_segments: np.ndarray) -> float:
    segments = plan_channel_segments
    return float(max(segments["amp0_ma"].max(), segments["amp1_ma"].max()))


def test_relaxation_resolves_mt_plus_10_percent_from_the_profile() -> None:
    program = load_program("relaxation").program
    got = resolve_thresholds(relaxation_profile(), program, REAL, now=NOW,
                             peak_limit_ma=40.0)
    assert got.thresholds == {1: PERSON, 2: PERSON} and not got.synthetic
    assert got.caps_ma == {1: pytest.approx(18.0), 2: pytest.approx(18.0)}
    plan = compile_plan(program, got.thresholds, profile_caps_ma=got.caps_ma)
    assert _peak(plan.channel(1).segments) == pytest.approx(11.0)  # MT+10 % of 10 mA
    assert plan.notes == ()


def test_an_amplitude_above_the_cap_is_limited_to_it_and_the_user_is_told() -> None:
    program = load_program("relaxation").program
    profile = relaxation_profile(st_ma=5.0, mt_ma=11.0, tol_ma=12.0)  # cap 10.8 < MT+10 % 12.1
    got = resolve_thresholds(profile, program, REAL, now=NOW, peak_limit_ma=40.0)
    plan = compile_plan(program, got.thresholds, profile_caps_ma=got.caps_ma)
    assert _peak(plan.channel(1).segments) == pytest.approx(10.8)
    assert any("limited to the cap of 10.8 mA" in note for note in plan.notes)


@pytest.mark.parametrize("age", [timedelta(days=7, seconds=1), timedelta(days=30)])
def test_an_expired_calibration_blocks_a_real_device_naming_the_command(age: timedelta) -> None:
    program = load_program("relaxation").program
    with pytest.raises(ProfileError) as caught:
        resolve_thresholds(relaxation_profile(NOW - age), program, REAL, now=NOW,
                           peak_limit_ma=40.0)
    assert "expired" in str(caught.value)
    assert f"emsctl calibrate --device {REAL_URL} --channel 1 --site calf-left" in str(
        caught.value)


def test_seven_days_old_is_still_valid() -> None:
    program = load_program("relaxation").program
    got = resolve_thresholds(relaxation_profile(NOW - timedelta(days=7)), program, REAL,
                             now=NOW, peak_limit_ma=40.0)
    assert got.thresholds[1] == PERSON


@pytest.mark.parametrize(("profile", "reason"), [
    (None, "no usable profile"),
    (Profile(), "no calibration"),
    (Profile(calibrations=[calibration("calf-left", 1, frequency_hz=8.0),
                           calibration("calf-right", 2)]), "was not calibrated at 6 Hz / 250 µs"),
    (Profile(calibrations=[calibration("calf-left", 1, device="coyote3"),
                           calibration("calf-right", 2)]), "no calibration on a sciencemode2"),
    (Profile(calibrations=[calibration("calf-left", 1, pad_set="small"),
                           calibration("calf-right", 2)]), "pad set 'default'"),
    (Profile(calibrations=[calibration("calf-right", 1), calibration("calf-right", 2)]),
     "no calibration"),
])
def test_a_missing_or_unbound_calibration_blocks_a_real_device(profile: Profile | None,
                                                               reason: str) -> None:
    program = load_program("relaxation").program
    with pytest.raises(ProfileError, match=reason):
        resolve_thresholds(profile, program, REAL, now=NOW, peak_limit_ma=40.0)


@pytest.mark.parametrize("profile", [None, Profile(), relaxation_profile(NOW - timedelta(days=60))])
def test_the_simulator_is_never_blocked_and_uses_the_synthetic_person(profile: Profile | None
                                                                     ) -> None:
    program = load_program("relaxation").program
    got = resolve_thresholds(profile, program, open_device("sim"), now=NOW, peak_limit_ma=40.0)
    assert got.synthetic and got.thresholds == {1: SYNTHETIC_THRESHOLDS, 2: SYNTHETIC_THRESHOLDS}
    assert got.caps_ma[1] == pytest.approx(22.5)
    assert got.notes


def test_cramp_training_needs_a_calibration_from_this_session() -> None:
    program = load_program("cramp-training").program
    def entries(when: object) -> Profile:
        return Profile(calibrations=[
            calibration(site, ch, when=when, frequency_hz=52.0, pulse_width_us=150.0)  # type: ignore[arg-type]
            for site, ch in (("calf-left", 1), ("calf-right", 2))])
    fresh = resolve_thresholds(entries(NOW - timedelta(minutes=10)), program, REAL, now=NOW,
                               peak_limit_ma=40.0, frequency_hz=52.0,
                               max_age=PER_SESSION_MAX_AGE)
    assert fresh.thresholds[1].tol_ma == 20.0
    with pytest.raises(ProfileError, match="expired"):
        resolve_thresholds(entries(NOW - timedelta(minutes=31)), program, REAL, now=NOW,
                           peak_limit_ma=40.0, frequency_hz=52.0, max_age=PER_SESSION_MAX_AGE)


def test_device_keys_are_the_scheme_and_the_declared_scaling() -> None:
    assert device_key(REAL) == "sciencemode2"
    assert device_key(open_device("sim")) == "sim"
    assert device_key(open_device("sim?channels=2")) == "sim"  # not a scaling: same person
    # each emulation has its own key: a calibration on one is not one on another
    assert device_key(open_device("sim+sciencemode2")) == "sim+sciencemode2"
    assert device_key(open_device(f"{COYOTE}?frequency_balance=100&intensity_balance=128&"
                                  "ma_per_step=0.2")) == \
        "coyote3?frequency_balance=100.0&intensity_balance=128.0&ma_per_step=0.2"
    assert device_key(open_device("sim+coyote3?ma_per_step=0.25")).startswith(
        "sim+coyote3?frequency_balance=")
    assert device_key(open_device("openems:///dev/null?ma_at_100=16&frequency_hz=80&"
                                  "pulse_width_us=200")) == \
        "openems?frequency_hz=80.0&ma_at_100=16.0&pulse_width_us=200.0"


def test_a_driver_cannot_define_its_own_calibration_key() -> None:
    from emsctl.contract import Driver

    with pytest.raises(TypeError, match="declared_scaling"):
        type("Sneaky", (Driver,), {"calibration_key": "sim"})


# Class 4 of the safety issue: a person calibrated under one declared scaling and run under
# another got 23.9 mA against a TOL of 20 mA, while the summary said 12 mA. The calibration is
# bound to the declaration: another one means calibrate again.

@pytest.mark.parametrize(("calibrated", "running"), [
    (f"{COYOTE}?ma_per_step=0.2&{BALANCES}", f"{COYOTE}?ma_per_step=0.4&{BALANCES}"),
    (f"{COYOTE}?ma_per_step=0.2&{BALANCES}",
     f"{COYOTE}?ma_per_step=0.2&frequency_balance=128&intensity_balance=200"),
    ("openems:///dev/null?ma_at_100=16&frequency_hz=6&pulse_width_us=250",
     "openems:///dev/null?ma_at_100=32&frequency_hz=6&pulse_width_us=250"),
])
def test_a_calibration_under_another_declared_scaling_is_refused(calibrated: str,
                                                                running: str) -> None:
    program = load_program("relaxation").program
    key = device_key(open_device(calibrated))
    profile = relaxation_profile(NOW, device=key)
    same = resolve_thresholds(profile, program, open_device(calibrated), now=NOW,
                              peak_limit_ma=40.0)
    assert same.thresholds[1] == PERSON and not same.synthetic
    with pytest.raises(ProfileError, match=r"calibrated on this \w+ device with \w+=[\d.]+.*, "
                                           r"not with \w+=[\d.]+.* as the URL now declares.*"
                                           r"calibrate again"):
        resolve_thresholds(profile, program, open_device(running), now=NOW, peak_limit_ma=40.0)


def test_a_calibration_on_one_emulation_is_not_used_on_another() -> None:
    program = load_program("relaxation").program
    profile = relaxation_profile(NOW, device="sim+coyote3?ma_per_step=0.2", st_ma=4.0,
                                 mt_ma=8.0, tol_ma=14.0)
    other = resolve_thresholds(profile, program, open_device("sim+coyote3?ma_per_step=0.4"),
                               now=NOW, peak_limit_ma=40.0)
    assert other.synthetic  # the synthetic person, never the other declaration's thresholds
