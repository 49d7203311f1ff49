"""Shared builders for the profile, screening, ledger and calibration tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from emsctl.journal import Journal
from emsctl.profile import Calibration, CrampThreshold, Profile, ScreeningAnswers

REAL_URL = "sciencemode2:///dev/null-does-not-exist"
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def answers(when: datetime = NOW, **changes: object) -> ScreeningAnswers:
    """A questionnaire answered "no" to everything, by an adult, at ``when``."""
    values: dict[str, object] = {"answered_utc": when, "adult": True, "implanted_device": False}
    values.update(changes)
    return ScreeningAnswers.model_validate(values)


def calibration(site: str, channel: int, *, when: datetime = NOW, device: str = "sciencemode2",
                frequency_hz: float = 6.0, pulse_width_us: float = 250.0, st_ma: float = 5.0,
                mt_ma: float = 10.0, tol_ma: float = 20.0, pad_set: str = "default"
                ) -> Calibration:
    """One calibration entry (relaxation's settings by default)."""
    return Calibration(device=device, channel=channel, site=site, pad_set=pad_set, st_ma=st_ma,
                       mt_ma=mt_ma, tol_ma=tol_ma, frequency_hz=frequency_hz,
                       pulse_width_us=pulse_width_us, measured_utc=when)


def relaxation_profile(when: datetime = NOW, *, screened: bool = True, **kwargs: object
                       ) -> Profile:
    """Both calves calibrated for relaxation on a ScienceMode2 device at ``when``."""
    return Profile(
        screening=answers(when) if screened else None,
        calibrations=[calibration("calf-left", 1, when=when, **kwargs),  # type: ignore[arg-type]
                      calibration("calf-right", 2, when=when, **kwargs)],  # type: ignore[arg-type]
    )


def ctf(hz: float = 22.0) -> CrampThreshold:
    """A clinician-measured cramp threshold frequency."""
    return CrampThreshold(frequency_hz=hz, measured_on=NOW.date(), measured_by="Dr Test")


def write_journal(directory: Path, started: datetime, duration_s: float, *,
                  program: str = "relaxation", sites: dict[int, str] | None = None,
                  device_url: str = REAL_URL) -> Path:
    """A finished session journal as the runner writes it."""
    journal = Journal(directory)
    path = journal.header(program=program, program_sha256="0" * 64, program_source="builtin",
                          device_url=device_url, device_model="test", limits={},
                          profile_version="1.1", intensity_pct=100.0,
                          sites=sites or {1: "calf-left", 2: "calf-right"},
                          started_utc=started)
    journal.footer("completed", {}, t_s=duration_s)
    journal.close()
    return path


def at(hours: float) -> datetime:
    """NOW plus ``hours``."""
    return NOW + timedelta(hours=hours)
