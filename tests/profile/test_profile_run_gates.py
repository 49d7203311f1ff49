"""``emsctl run`` and the runner: profile, screening, dose and cramp-training gates before output.

Real-device refusals must come before any port is opened: ``open_device`` and pyserial's
``serial_for_url`` are replaced by tripwires in these tests.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from person_helpers import (
    NOW,
    REAL_URL,
    answers,
    calibration,
    ctf,
    relaxation_profile,
    write_journal,
)

from emsctl.cli import main
from emsctl.dose_rules import DoseLimitReached, PastSession
from emsctl.errors import InputError
from emsctl.journal import list_journals, read_journal
from emsctl.limits import DEFAULTS
from emsctl.loader import load_program
from emsctl.plan import compile_plan
from emsctl.profile import Profile, ProfileError, save_profile
from emsctl.runner import preflight, prepare_run
from emsctl.screening import GateRefused

NO_FLAGS = {"calf_red_flag": False, "cramp_red_flag": False, "skin": False}


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    data, state = tmp_path / "data", tmp_path / "state"
    monkeypatch.setenv("EMSCTL_DATA_DIR", str(data))
    monkeypatch.setenv("EMSCTL_STATE_DIR", str(state))
    monkeypatch.delenv("EMSCTL_DEVICE", raising=False)
    return {"data": data, "state": state, "journals": state / "journals"}


@pytest.fixture
def no_port(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    opened: list[str] = []

    def tripwire(url: str, *args: object, **kwargs: object) -> None:
        opened.append(url)
        raise AssertionError(f"a port was opened for {url}")
    import serial

    # making a driver object is not opening its port: only serial_for_url touches the port
    monkeypatch.setattr(serial, "serial_for_url", tripwire)
    return opened


def run(*args: str) -> tuple[int, str, str]:
    """``emsctl run ARGS`` through the console-script entry point (errors → one sentence)."""
    with CliRunner().isolation() as (out, err, *_):
        try:
            main(["run", *args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        return code, out.getvalue().decode(), err.getvalue().decode()


def now_profile(**kwargs: object) -> Profile:
    return relaxation_profile(datetime.now(UTC) - timedelta(hours=1), **kwargs)


def test_a_real_device_without_a_profile_is_refused_naming_the_command(
        dirs: dict[str, Path], no_port: list[str]) -> None:
    code, _, err = run("relaxation", "--device", REAL_URL, "--yes")
    assert code == 2 and not no_port
    assert f"run 'emsctl calibrate --device {REAL_URL} --channel 1 --site calf-left" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_an_expired_profile_is_refused_before_any_port(dirs: dict[str, Path], no_port: list[str]
                                                      ) -> None:
    save_profile(relaxation_profile(datetime.now(UTC) - timedelta(days=8)),
                 dirs["data"] / "profile.toml")
    code, _, err = run("relaxation", "--device", REAL_URL, "--yes")
    assert code == 2 and "expired" in err and not no_port


def test_a_hand_edited_profile_is_refused_with_the_field(dirs: dict[str, Path],
                                                         no_port: list[str]) -> None:
    path = dirs["data"] / "profile.toml"
    save_profile(now_profile(), path)
    path.write_text(path.read_text().replace("tol_ma = 20.0", "tol_ma = 200.0", 1))
    code, _, err = run("relaxation", "--device", REAL_URL, "--yes")
    assert code == 2 and "calibrations[0].tol_ma = 200.0" in err and not no_port


@pytest.mark.parametrize("profile_text", [None, "garbage = = =", "calibrations = 3"])
def test_the_simulator_is_never_blocked_by_the_profile_or_the_questions(
        dirs: dict[str, Path], profile_text: str | None) -> None:
    if profile_text is not None:
        dirs["data"].mkdir(parents=True)
        (dirs["data"] / "profile.toml").write_text(profile_text)
    code, out, err = run("relaxation", "--speed", "max", "--format", "json")
    assert code == 0, err
    assert "one calf swollen" in err and "Do not use while asleep" in err
    assert "synthetic thresholds" in err
    (summary,) = list_journals(dirs["journals"])
    header = read_journal(summary.path).header
    assert header["profile_version"] == "synthetic"
    assert json.loads(out)["end_reason"] == "completed"


def test_simulator_sessions_do_not_count_toward_the_ledger(dirs: dict[str, Path]) -> None:
    for _ in range(4):  # more than sessions_per_day, back to back
        code, _, err = run("relaxation", "--speed", "max", "--format", "json")
        assert code == 0, err
    assert len(list_journals(dirs["journals"])) == 4


def test_a_full_ledger_is_refused_with_exit_1_and_the_next_time(dirs: dict[str, Path],
                                                                 no_port: list[str]) -> None:
    save_profile(now_profile(), dirs["data"] / "profile.toml")
    now = datetime.now(UTC)
    for hours in (5, 3, 1.5):
        write_journal(dirs["journals"], now - timedelta(hours=hours), 960)
    code, _, err = run("relaxation", "--device", REAL_URL, "--yes")
    assert code == 1 and "at most 3 a day (L20)" in err and "next session allowed from" in err
    assert not no_port


def test_a_real_device_without_a_terminal_cannot_answer_the_questionnaire(
        dirs: dict[str, Path], no_port: list[str]) -> None:
    save_profile(now_profile(screened=False), dirs["data"] / "profile.toml")
    code, _, err = run("relaxation", "--device", REAL_URL, "--yes")
    assert code == 2 and "questionnaire must be answered in a terminal" in err
    assert not no_port


def test_an_implant_blocks_even_with_yes(dirs: dict[str, Path], no_port: list[str]) -> None:
    profile = now_profile().model_copy(update={"screening": answers(
        datetime.now(UTC), implanted_device=True)})
    save_profile(profile, dirs["data"] / "profile.toml")
    code, _, err = run("relaxation", "--device", REAL_URL, "--yes")
    assert code == 2 and "no override" in err and not no_port


# --------------------------------------------------------------------------- the runner API


def test_prepare_run_on_a_real_device_uses_the_profile_and_needs_the_checks() -> None:
    loaded = load_program("relaxation")
    profile = relaxation_profile()
    with pytest.raises(GateRefused, match="have not been answered"):
        prepare_run(loaded, REAL_URL, DEFAULTS, profile=profile, now=NOW, past=[])
    with pytest.raises(GateRefused, match="medical care today"):
        prepare_run(loaded, REAL_URL, DEFAULTS, profile=profile, now=NOW, past=[],
                    session_checks={**NO_FLAGS, "calf_red_flag": True})
    prepared = prepare_run(loaded, REAL_URL, DEFAULTS, profile=profile, now=NOW, past=[],
                           session_checks=NO_FLAGS)
    assert prepared.profile_version == profile.version
    seg = prepared.plan.channel(1).segments
    assert max(seg["amp0_ma"].max(), seg["amp1_ma"].max()) == pytest.approx(11.0)
    assert prepared.plan.channel(1).cap_ma == pytest.approx(18.0)


COYOTE = ("coyote3://AA:BB:CC:DD:EE:FF?ma_per_step=0.2&frequency_balance=128&"
          "intensity_balance=128")
COYOTE_KEY = "coyote3?frequency_balance=128.0&intensity_balance=128.0&ma_per_step=0.2"


def test_a_fitted_program_needs_a_calibration_at_the_fitted_width() -> None:
    """relaxation runs on a Coyote at 100 µs (its widest): the person's thresholds must have
    been measured at 100 µs, not at the 250 µs the file says; the driver is made, not opened."""
    loaded = load_program("relaxation")
    at_file_width = relaxation_profile(device=COYOTE_KEY)
    with pytest.raises(ProfileError, match=r"not calibrated at 6 Hz / 100 µs"):
        prepare_run(loaded, COYOTE, DEFAULTS, profile=at_file_width, now=NOW, past=[],
                    session_checks=NO_FLAGS)
    at_fitted_width = relaxation_profile(device=COYOTE_KEY, pulse_width_us=100.0)
    prepared = prepare_run(loaded, COYOTE, DEFAULTS, profile=at_fitted_width, now=NOW,
                           past=[], session_checks=NO_FLAGS)
    assert prepared.loaded.program.calibration_pulse_width_us == 100.0
    assert [a.now for a in prepared.adaptations] == ["100 µs"] * 4
    assert prepared.thresholds[1].mt_ma == 10.0


def cramp_profile(when: datetime, ctf_hz: float = 22.0) -> Profile:
    freq = min(ctf_hz + 30.0, 80.0)
    return Profile(screening=answers(when), ctf=ctf(ctf_hz), calibrations=[
        calibration(site, ch, when=when - timedelta(minutes=10), frequency_hz=freq,
                    pulse_width_us=150.0) for site, ch in (("calf-left", 1), ("calf-right", 2))])


DAYTIME = datetime(2026, 3, 10, 11, 0, tzinfo=timezone(timedelta(hours=1)))


@pytest.mark.parametrize(("ctf_hz", "frequency_hz"), [(22.0, 52.0), (60.0, 80.0)])
def test_cramp_training_runs_at_ctf_plus_30_capped_at_80(ctf_hz: float, frequency_hz: float
                                                        ) -> None:
    loaded = load_program("cramp-training")
    got = preflight(loaded, REAL_URL, DEFAULTS, profile=cramp_profile(DAYTIME, ctf_hz),
                    expert=True, now=DAYTIME, past=[])
    assert got.frequency_hz == frequency_hz
    plan = compile_plan(loaded.program, got.thresholds, profile_caps_ma=got.caps_ma,
                        frequency_hz=got.frequency_hz)
    on = plan.channel(1).segments
    on = on[on["amp1_ma"] > 0]
    assert set(on["freq0_hz"]) == {frequency_hz}
    assert max(on["amp1_ma"]) == pytest.approx(11.0)  # 0.55 × TOL 20


def test_cramp_training_gates() -> None:
    loaded = load_program("cramp-training")
    profile = cramp_profile(DAYTIME)
    with pytest.raises(InputError, match="needs --expert"):
        preflight(loaded, REAL_URL, DEFAULTS, profile=profile, now=DAYTIME, past=[])
    no_ctf = profile.model_copy(update={"ctf": None})
    with pytest.raises(GateRefused, match="cramp threshold frequency"):
        preflight(loaded, REAL_URL, DEFAULTS, profile=no_ctf, expert=True, now=DAYTIME, past=[])
    night = DAYTIME.replace(hour=21)
    with pytest.raises(GateRefused, match="08:00 and 20:00"):
        preflight(loaded, REAL_URL, DEFAULTS, profile=cramp_profile(night), expert=True,
                  now=night, past=[])
    stale = cramp_profile(DAYTIME - timedelta(hours=1))  # calibrated 70 min ago: not this session
    with pytest.raises(ProfileError, match="expired"):
        preflight(loaded, REAL_URL, DEFAULTS, profile=stale, expert=True, now=DAYTIME, past=[])
    last = PastSession(DAYTIME - timedelta(hours=48), 840.0, ("calf-left",), "cramp-training")
    with pytest.raises(DoseLimitReached, match="72 h"):
        preflight(loaded, REAL_URL, DEFAULTS, profile=profile, expert=True, now=DAYTIME,
                  past=[last])


def test_cramp_training_on_the_simulator_uses_the_files_55_hz_and_no_clock_rules() -> None:
    loaded = load_program("cramp-training")
    got = preflight(loaded, "sim", DEFAULTS, expert=True, now=DAYTIME.replace(hour=23))
    assert got.frequency_hz == 55.0 and got.profile_version == "synthetic"


def test_sim_profile_runs_the_simulator_with_your_sim_calibrations(dirs: dict[str, Path]
                                                                   ) -> None:
    when = datetime.now(UTC) - timedelta(hours=1)
    save_profile(Profile(calibrations=[
        calibration(site, ch, when=when, device="sim", st_ma=4.0, mt_ma=8.0, tol_ma=14.0)
        for site, ch in (("calf-left", 1), ("calf-right", 2))]), dirs["data"] / "profile.toml")
    code, out, err = run("relaxation", "--sim-profile", "--speed", "max", "--format", "json")
    assert code == 0, err
    assert "at most 12.6 mA" in err  # 0.9 × TOL 14
    peak = json.loads(out)["delivered"]["channels"]["1"]["peak_ma"]
    assert peak == pytest.approx(8.8)  # MT+10 % of 8 mA
    (summary,) = list_journals(dirs["journals"])
    assert read_journal(summary.path).header["profile_version"] == "1.1"


# --------------------------------------------------------------- dates ahead of the clock

FUTURE_STAMP = "2099-01-01T00:00:00+00:00"


def _profile_with(dirs: dict[str, Path], field: str) -> None:
    """A valid profile saved for relaxation, then one ``field`` edited to the year 2099."""
    path = dirs["data"] / "profile.toml"
    save_profile(now_profile(), path)
    lines = path.read_text().splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if line.startswith(f"{field} = "))
    lines[index] = f"{field} = {FUTURE_STAMP}\n"
    path.write_text("".join(lines))


@pytest.mark.parametrize(("field", "where"), [
    ("measured_utc", "calibrations[0].measured_utc"),
    ("answered_utc", "screening.answered_utc"),
])
def test_a_profile_dated_in_the_future_is_refused_before_any_port(
        dirs: dict[str, Path], no_port: list[str], field: str, where: str) -> None:
    _profile_with(dirs, field)
    code, _, err = run("relaxation", "--device", REAL_URL, "--yes")
    assert code == 2 and not no_port
    assert f"{where}: 2099-01-01 00:00 UTC is more than 5 minutes in the future" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_future_dates_expire_nothing_in_the_gates_given_a_profile_object() -> None:
    """The API path (a Profile built in code, never loaded): each gate refuses a date ahead of
    ``now`` itself — the 7-day expiry, the 30-day screening and cramp-training's
    same-session calibration."""
    future = datetime(2099, 1, 1, tzinfo=UTC)
    loaded = load_program("relaxation")
    ahead = relaxation_profile(future)
    with pytest.raises(ProfileError, match="in the future"):
        preflight(loaded, REAL_URL, DEFAULTS, profile=ahead, now=NOW, past=[])
    screened_ahead = relaxation_profile(NOW).model_copy(update={"screening": answers(future)})
    with pytest.raises(GateRefused, match="in the future"):
        prepare_run(loaded, REAL_URL, DEFAULTS, profile=screened_ahead, now=NOW, past=[],
                    session_checks=NO_FLAGS)
    cramp = load_program("cramp-training")
    with pytest.raises(ProfileError, match="in the future"):  # "same session" needs the past
        preflight(cramp, REAL_URL, DEFAULTS, profile=cramp_profile(future + timedelta(
            minutes=10)), expert=True, now=DAYTIME, past=[])


# ------------------------------------ cramp-training's daytime: the system zone, not $TZ


def _offset_for(hour: int, now: datetime) -> int:
    """Whole hours to add to UTC so that the local time is ``hour``:xx now (−12…+14)."""
    offset = (hour - now.hour) % 24
    return offset - 24 if offset > 14 else offset


@pytest.mark.parametrize(("system_hour", "tz_hour", "refused"), [(12, 0, False), (0, 12, True)])
def test_the_cramp_training_daytime_gate_ignores_tz(
        dirs: dict[str, Path], no_port: list[str], monkeypatch: pytest.MonkeyPatch,
        system_hour: int, tz_hour: int, refused: bool) -> None:
    """``TZ=<a zone where it is daytime> emsctl run cramp-training`` at night is still night;
    and a TZ where it is night does not refuse a daytime session."""
    import time as time_module

    from emsctl import local_time

    now = datetime.now(UTC)
    system = timezone(timedelta(hours=_offset_for(system_hour, now)))
    monkeypatch.setattr(local_time, "system_zone", lambda: system, raising=False)
    tz_offset = _offset_for(tz_hour, now)
    monkeypatch.setenv("TZ", f"XXX{-tz_offset:+d}")  # POSIX signs are reversed
    time_module.tzset()
    try:
        save_profile(cramp_profile(now - timedelta(minutes=5)), dirs["data"] / "profile.toml")
        code, _, err = run("cramp-training", "--device", REAL_URL, "--expert", "--yes")
    finally:
        monkeypatch.undo()
        time_module.tzset()
    assert code == 2 and not no_port
    assert ("only between 08:00 and 20:00" in err) is refused, err
    if not refused:  # past the daytime gate: stopped where a real device needs a terminal
        assert "need a terminal" in err
