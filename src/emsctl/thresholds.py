"""From profile to plan: the thresholds and caps a program runs with on one device.

``resolve_thresholds`` picks, for every channel of a program, the calibration for the same device
kind, channel, site and pad set, measured at the program's calibration frequency and width
(HZ-14), and not older than 7 days (per session, i.e. 30 min, for ``cramp-training``) — nor
more than 5 minutes newer than ``now``: a calibration dated ahead of the clock would never
expire, so it is no calibration at all. It returns
the thresholds and the per-channel caps min(0.9 × TOL, L3) that :func:`emsctl.plan.compile_plan`
takes; the compiler limits resolved amplitudes to those caps and says so in ``plan.notes``.

The simulator never needs a profile: without a valid entry it uses the shipped synthetic person
(:data:`emsctl.profile.SYNTHETIC_THRESHOLDS`). A real device without a valid, unexpired entry for
every channel is refused with the command that makes one. Pure: no files, no clock (``now`` is
passed in).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .amplitude import Thresholds
from .contract import Driver
from .profile import (
    CALIBRATION_MAX_AGE,
    SYNTHETIC_THRESHOLDS,
    TOL_CAP_FACTOR,
    Calibration,
    Profile,
    ProfileError,
    in_future,
)
from .program import Program

__all__ = ["PER_SESSION_MAX_AGE", "Resolved", "device_key", "resolve_thresholds"]

#: HZ-14: cramp-training's TOL is calibrated "in the same session": at most 30 min before [E].
PER_SESSION_MAX_AGE = timedelta(minutes=30)


@dataclass(frozen=True)
class Resolved:
    """Thresholds and caps per program channel, and where they came from."""

    thresholds: dict[int, Thresholds]
    caps_ma: dict[int, float]
    synthetic: bool
    notes: list[str] = field(default_factory=list)


def device_key(driver: Driver) -> str:
    """The profile's device key: the driver's calibration key (device kind and declared
    scaling)."""
    return driver.calibration_key


def resolve_thresholds(
    profile: Profile | None,
    program: Program,
    driver: Driver,
    *,
    now: datetime,
    peak_limit_ma: float,
    pad_set: str = "default",
    frequency_hz: float | None = None,
    max_age: timedelta | None = None,
    program_ref: str | None = None,
) -> Resolved:
    """Thresholds and caps for every channel of ``program`` on ``device_url``.

    Args:
        profile: the user's profile, or None when it could not be loaded (simulator only).
        program: the program to run.
        driver: the driver it runs on; simulated devices never fail.
        now: the current time (aware).
        peak_limit_ma: the L3 limit in force (``limits.peak_ma``).
        pad_set: the pad set in use.
        frequency_hz: the calibration frequency when the session replaces the program's
            (cramp-training: CTF + 30 Hz).
        max_age: the oldest calibration accepted (7 days by default).
        program_ref: how the user names the program on the command line (a built-in's name,
            or a program file's path), for the calibrate command a refusal suggests.

    Returns:
        Thresholds and caps per program channel id.

    Raises:
        ProfileError: a real device and a channel without a valid, unexpired calibration.
    """
    simulated = driver.simulated
    key = device_key(driver)
    freq = program.calibration_frequency_hz if frequency_hz is None else frequency_hz
    width = program.calibration_pulse_width_us
    oldest = now - (max_age or CALIBRATION_MAX_AGE)
    thresholds: dict[int, Thresholds] = {}
    caps: dict[int, float] = {}
    notes: list[str] = []
    synthetic = False
    for channel in program.channels:
        entry, problem = _pick(profile, key, channel.id, channel.site, pad_set, freq, width,
                               oldest, now)
        if entry is not None:
            thresholds[channel.id] = entry.thresholds
            caps[channel.id] = entry.cap_for(peak_limit_ma)
            continue
        if not simulated:
            raise ProfileError(
                f"channel {channel.id} ({channel.site}) {problem}; run 'emsctl calibrate "
                f"--device {driver.url} --channel {channel.id} --site {channel.site}"
                + ("" if pad_set == "default" else f" --pads {pad_set}")
                + f" --program {shlex.quote(program_ref or program.name)}"
                + (" --expert" if program.expert else "") + "'")
        synthetic = True
        thresholds[channel.id] = SYNTHETIC_THRESHOLDS
        caps[channel.id] = min(TOL_CAP_FACTOR * SYNTHETIC_THRESHOLDS.tol_ma, peak_limit_ma)
    if synthetic:
        notes.append("simulator: using the shipped synthetic thresholds (ST 6, MT 12, TOL 25 mA)")
    return Resolved(thresholds, caps, synthetic, notes)


def _pick(profile: Profile | None, key: str, channel: int, site: str, pad_set: str,
          frequency_hz: float, pulse_width_us: float, oldest: datetime, now: datetime
          ) -> tuple[Calibration | None, str]:
    if profile is None:
        return None, "has no usable profile"
    entries = profile.find(key, channel, site, pad_set)
    if not entries:
        kind, _, declared = key.partition("?")
        others = sorted({c.device.partition("?")[2] for c in profile.calibrations
                         if c.device.partition("?")[0] == kind and c.device != key
                         and c.matches(c.device, channel, site, pad_set)})
        if others:
            return None, (f"was calibrated on this {kind} device with {' or '.join(others)}, "
                          f"not with {declared or 'no declared scaling'} as the URL now declares: "
                          "the same setting gives a different current, so calibrate again")
        return None, f"has no calibration on a {key} device with pad set '{pad_set}'"
    at_settings = [c for c in entries if c.measured_at(frequency_hz, pulse_width_us)]
    if not at_settings:
        return None, (f"was not calibrated at {frequency_hz:g} Hz / {pulse_width_us:g} µs, the "
                      "program's calibration settings")
    newest = at_settings[0]
    if in_future(newest.measured_utc, now):
        return None, (f"calibration of {newest.measured_utc:%Y-%m-%d %H:%M} UTC is dated in the "
                      "future and would never expire")
    if newest.measured_utc < oldest:
        return None, f"calibration of {newest.measured_utc:%Y-%m-%d %H:%M} UTC has expired"
    return newest, ""
