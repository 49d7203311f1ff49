"""The profile file: strict loading, ceilings, 0600, atomic writes, versions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from person_helpers import NOW, relaxation_profile

from emsctl.profile import Profile, ProfileError, load_profile, profile_path, save_profile


def _saved(tmp_path: Path) -> Path:
    path = tmp_path / "profile.toml"
    save_profile(relaxation_profile(), path)
    return path


def test_round_trip_keeps_every_value_and_bumps_the_revision(tmp_path: Path) -> None:
    path = tmp_path / "profile.toml"
    first = save_profile(relaxation_profile(), path, now=NOW)
    loaded = load_profile(path)
    assert loaded == first
    assert loaded.revision == 1 and loaded.version == "1.1"
    second = save_profile(loaded, path)
    assert load_profile(path).revision == 2 and second.version == "1.2"
    assert loaded.calibrations[0].tol_ma == 20.0 and loaded.screening is not None


def test_file_is_0600_and_no_temporary_file_is_left(tmp_path: Path) -> None:
    path = _saved(tmp_path / "deeper")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == ["profile.toml"]


def test_data_dir_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    monkeypatch.setenv("EMSCTL_DATA_DIR", str(tmp_path))
    assert profile_path() == tmp_path / "profile.toml"


def test_a_missing_file_is_an_empty_profile(tmp_path: Path) -> None:
    assert load_profile(tmp_path / "nothing.toml") == Profile()


@pytest.mark.parametrize(("old", "new", "field"), [
    ("tol_ma = 20.0", "tol_ma = 200.0", "calibrations[0].tol_ma = 200.0"),
    ("st_ma = 5.0", "st_ma = -1.0", "calibrations[0].st_ma = -1.0"),
    ("method = \"ramp\"", "method = \"ramp\"\ncap_ma = 50.0", "calibrations[0].cap_ma = 50.0"),
    ("method = \"ramp\"", "method = \"ramp\"\ncap_ma = 18.5", "calibrations[0]: cap_ma 18.5"),
    ("tol_ma = 20.0", "tol_ma = nan", "calibrations[0].tol_ma = nan"),
    ("mt_ma = 10.0", "mt_ma = 30.0", "calibrations[0]: needs ST ≤ MT ≤ TOL"),
    ("pad_set = \"default\"", "pad_set = \"default\"\nspeed = 3", "calibrations[0].speed"),
    ("site = \"calf-left\"", "site = \"chest-left\"", "calibrations[0].site = 'chest-left'"),
    ("doctor_approved = []", "doctor_approved = [\"implanted_device\"]",
     "an implant is never approvable"),
])
def test_a_hand_edited_profile_beyond_a_ceiling_is_refused_naming_the_field(
        tmp_path: Path, old: str, new: str, field: str) -> None:
    path = _saved(tmp_path)
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    message = str(caught.value)
    assert field in message, message
    assert "\n" not in message and str(path) in message


def test_a_cap_below_the_ceilings_may_be_set_by_hand(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    path.write_text(path.read_text().replace('method = "ramp"', 'method = "ramp"\ncap_ma = 12.0',
                                             1))
    entry = load_profile(path).calibrations[0]
    assert entry.cap_for(40.0) == 12.0  # tighter than 0.9 × 20 = 18
    assert entry.cap_for(10.0) == 10.0  # L3 in force is tighter still


def test_a_profile_writable_by_others_is_refused(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    os.chmod(path, 0o666)
    with pytest.raises(ProfileError, match="writable by other users"):
        load_profile(path)


def test_not_toml_is_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "profile.toml"
    path.write_text("this is = = not toml")
    path.chmod(0o600)
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile(path)


def test_cap_is_min_of_ninety_percent_tol_and_l3() -> None:
    entry = relaxation_profile(tol_ma=40.0).calibrations[0]
    assert entry.cap_for(40.0) == pytest.approx(36.0)
    assert entry.cap_for(30.0) == 30.0


# --- dates ahead of the clock never expire, so they are invalid --------------------------------

FUTURE = "2099-01-01T00:00:00+00:00"


def _with_stamp(tmp_path: Path, field: str, stamp: str) -> Path:
    """A profile saved at NOW whose first ``field = <datetime>`` line now says ``stamp``."""
    path = tmp_path / "profile.toml"
    save_profile(relaxation_profile(), path, now=NOW)
    lines = path.read_text().splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if line.startswith(f"{field} = "))
    lines[index] = f"{field} = {stamp}\n"
    path.write_text("".join(lines))
    return path


@pytest.mark.parametrize(("field", "where"), [
    ("measured_utc", "calibrations[0].measured_utc"),
    ("answered_utc", "screening.answered_utc"),
    ("updated_utc", "updated_utc"),
])
def test_a_timestamp_in_the_future_is_refused_naming_the_field(tmp_path: Path, field: str,
                                                               where: str) -> None:
    path = _with_stamp(tmp_path, field, FUTURE)
    with pytest.raises(ProfileError) as caught:
        load_profile(path)
    message = str(caught.value)
    assert f"{where}: 2099-01-01 00:00 UTC is more than 5 minutes in the future" in message
    assert "\n" not in message and "Traceback" not in message


def test_five_minutes_ahead_is_clock_skew_and_six_is_refused(tmp_path: Path) -> None:
    path = _with_stamp(tmp_path, "measured_utc", "2026-03-10T12:05:00+00:00")
    assert load_profile(path, now=NOW).calibrations[0].measured_utc.minute == 5
    path = _with_stamp(tmp_path, "measured_utc", "2026-03-10T12:06:00+00:00")
    with pytest.raises(ProfileError, match=r"calibrations\[0\]\.measured_utc"):
        load_profile(path, now=NOW)


def test_a_ctf_measured_on_a_future_date_is_refused(tmp_path: Path) -> None:
    path = _saved(tmp_path)
    with path.open("a") as handle:
        handle.write('\n[ctf]\nfrequency_hz = 22.0\nmeasured_on = 2099-01-01\n'
                     'measured_by = "Dr Test"\n')
    with pytest.raises(ProfileError, match=r"ctf\.measured_on: 2099-01-01 is in the future"):
        load_profile(path)


def test_a_profile_with_a_future_date_is_never_written(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    future = relaxation_profile(datetime(2099, 1, 1, tzinfo=UTC))
    with pytest.raises(ProfileError, match="in the future"):
        save_profile(future, tmp_path / "profile.toml")
    assert not (tmp_path / "profile.toml").exists()
