"""The user's profile: calibrated thresholds per device, channel, site and pad set, and screening.

One TOML file, ``<data dir>/profile.toml`` (``$EMSCTL_DATA_DIR`` or platformdirs'
``user_data_dir("emsctl")``), mode 0600 in a 0700 folder. It holds, per device kind (the URL
scheme), channel, electrode site and pad set, the sensory threshold ST, motor threshold MT and
maximum tolerated TOL in mA, with the date, frequency and pulse width they were measured at
(HZ-14); the contraindication screening (L24, :mod:`emsctl.screening`); and a clinician-measured
cramp threshold frequency (CTF) for ``cramp-training``.

Loading is strict (pydantic, unknown keys and non-finite numbers rejected); a value that breaks a
ceiling — TOL above the 40 mA calibration stop, a cap above min(0.9 × TOL, L3) — is refused with
one sentence naming the field (HZ-13). So is a date more than 5 minutes ahead of the clock
(:data:`MAX_CLOCK_SKEW`): a calibration or screening "from 2099" would never expire, defeating the
7-day calibration expiry, the 30-day screening and cramp-training's same-session calibration.
The gates that take a :class:`Profile` object (:mod:`emsctl.thresholds`,
:mod:`emsctl.screening`) refuse such dates against their own ``now`` as well. Writing is atomic
(temporary file + ``os.replace``) and bumps ``revision``; ``profile_version``
("<schema>.<revision>") goes into every journal. Resolution of program amplitudes lives in
:mod:`emsctl.thresholds`. This module never touches a device and decides no gate: it stores and
validates.
"""

from __future__ import annotations

import math
import os
import stat
import tempfile
import tomllib
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Literal, Self

import platformdirs
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from .amplitude import Thresholds
from .datafile import DataFileRefused, read_regular_file
from .errors import InputError
from .limit_table import FREQUENCY_MAX_CEILING_HZ
from .sites import check_channel_sites

__all__ = [
    "CALIBRATION_CEILING_MA",
    "CALIBRATION_MAX_AGE",
    "MAX_CLOCK_SKEW",
    "SYNTHETIC_THRESHOLDS",
    "TOL_CAP_FACTOR",
    "Calibration",
    "CrampThreshold",
    "Profile",
    "ProfileError",
    "ScreeningAnswers",
    "data_dir",
    "in_future",
    "load_profile",
    "profile_path",
    "save_profile",
]

SCHEMA_VERSION = 1
#: A profile larger than this is not read (thousands of calibrations are well under 1 MB).
PROFILE_MAX_BYTES = 16 * 1024 * 1024
#: L3: no calibration goes above 40 mA (the cap while TOL is unknown), so no TOL can either.
CALIBRATION_CEILING_MA = 40.0
#: L3: a channel's cap is 0.9 × TOL.
TOL_CAP_FACTOR = 0.9
#: docs/programs-basis.md §1: recalibrate after 7 days at most [E].
CALIBRATION_MAX_AGE = timedelta(days=7)
#: A stored time may be this far ahead of the clock (clock skew between machines); beyond it
#: the time is invalid, since a date in the future never expires.
MAX_CLOCK_SKEW = timedelta(minutes=5)
#: The most a calendar date anywhere on Earth is ahead of UTC (UTC+14).
_EARLIEST_ZONE = timedelta(hours=14)
#: The simulator's shipped synthetic person, used for every channel and site (cap 22.5 mA).
SYNTHETIC_THRESHOLDS = Thresholds(st_ma=6.0, mt_ma=12.0, tol_ma=25.0)
#: docs/safety-basis.md L6 ceilings, the widest pulse width any calibration can have used.
_PW_MIN_US, _PW_MAX_US = 50.0, 400.0
_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)
#: A profile holds at most 64 calibrations: far below this.
PROFILE_MAX_BYTES = 1024 * 1024


class ProfileError(InputError):
    """A profile that cannot be read, is invalid, or lacks what a session needs."""


def in_future(stamp: datetime, now: datetime) -> bool:
    """True when ``stamp`` is more than :data:`MAX_CLOCK_SKEW` after ``now`` (both aware)."""
    return stamp > now + MAX_CLOCK_SKEW


def _now(info: ValidationInfo) -> datetime | None:
    """The clock a validation checks dates against: ``context={"now": …}``, which the loader
    and the writer always pass; a model built in code has none (its gates check ``now``)."""
    context = info.context
    now = context.get("now") if isinstance(context, dict) else None
    return now if isinstance(now, datetime) else None


def _aware(value: datetime, info: ValidationInfo) -> datetime:
    if value.tzinfo is None:
        raise ValueError("needs a time zone (write it as e.g. 2025-01-31T20:00:00Z)")
    value = value.astimezone(UTC)
    now = _now(info)
    if now is not None and in_future(value, now):
        raise ValueError(f"{value:%Y-%m-%d %H:%M} UTC is more than 5 minutes in the future "
                         f"(the clock says {now.astimezone(UTC):%Y-%m-%d %H:%M} UTC), and a date "
                         "ahead of the clock would never expire; correct the date or the clock")
    return value


def _past_date(value: date, info: ValidationInfo) -> date:
    now = _now(info)
    if now is not None and value > (now.astimezone(UTC) + _EARLIEST_ZONE + MAX_CLOCK_SKEW).date():
        raise ValueError(f"{value} is in the future (the clock says "
                         f"{now.astimezone(UTC):%Y-%m-%d} UTC); correct the date or the clock")
    return value


def _site(value: str) -> str:
    check_channel_sites(value, None)
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]
Site = Annotated[str, AfterValidator(_site)]
ThresholdMa = Annotated[float, Field(gt=0, le=CALIBRATION_CEILING_MA)]


#: A calibration key: the device kind, then the declared values that turn its settings into mA
#: (``coyote3?ma_per_step=0.2``, ``openems?ma_at_100=16.0``); see ``Driver.calibration_key``.
DEVICE_KEY_PATTERN = (r"^[a-z0-9][a-z0-9+._-]{0,39}"
                      r"(\?[a-z0-9_]{1,30}=[0-9.e+-]{1,24}(&[a-z0-9_]{1,30}=[0-9.e+-]{1,24}){0,5})?$")


class Calibration(BaseModel):
    """ST, MT and TOL of one channel and site, bound to device kind and declared scaling, pads,
    frequency and width."""

    model_config = _STRICT
    device: str = Field(pattern=DEVICE_KEY_PATTERN)
    channel: int = Field(ge=1, le=8)
    site: Site
    pad_set: str = Field(default="default", min_length=1, max_length=40)
    st_ma: ThresholdMa
    mt_ma: ThresholdMa
    tol_ma: ThresholdMa
    frequency_hz: float = Field(gt=0, le=FREQUENCY_MAX_CEILING_HZ)
    pulse_width_us: float = Field(ge=_PW_MIN_US, le=_PW_MAX_US)
    measured_utc: AwareDatetime
    method: Literal["ramp", "trains"] = "ramp"
    #: An optional lower cap set by hand; it may only tighten min(0.9 × TOL, L3).
    cap_ma: float | None = Field(default=None, gt=0, le=CALIBRATION_CEILING_MA)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.st_ma <= self.mt_ma <= self.tol_ma:
            raise ValueError(f"needs ST ≤ MT ≤ TOL, got {self.st_ma:g} ≤ {self.mt_ma:g} ≤ "
                             f"{self.tol_ma:g} mA")
        if self.cap_ma is not None and self.cap_ma > TOL_CAP_FACTOR * self.tol_ma + 1e-9:
            raise ValueError(f"cap_ma {self.cap_ma:g} is above 0.9 × TOL = "
                             f"{TOL_CAP_FACTOR * self.tol_ma:g} mA (L3)")
        return self

    @property
    def thresholds(self) -> Thresholds:
        """ST, MT and TOL as the plan compiler takes them."""
        return Thresholds(self.st_ma, self.mt_ma, self.tol_ma)

    def cap_for(self, peak_limit_ma: float) -> float:
        """The channel cap: min(0.9 × TOL, the L3 limit in force, a hand-set lower cap)."""
        caps = [TOL_CAP_FACTOR * self.tol_ma, peak_limit_ma, CALIBRATION_CEILING_MA]
        return min(caps + ([self.cap_ma] if self.cap_ma is not None else []))

    def matches(self, device: str, channel: int, site: str, pad_set: str) -> bool:
        """True when this entry is for that device kind, channel, site and pad set."""
        return (self.device, self.channel, self.site, self.pad_set) == (device, channel, site,
                                                                        pad_set)

    def measured_at(self, frequency_hz: float, pulse_width_us: float) -> bool:
        """True when it was measured at this frequency and width (HZ-14)."""
        return (math.isclose(self.frequency_hz, frequency_hz, rel_tol=1e-6)
                and math.isclose(self.pulse_width_us, pulse_width_us, rel_tol=1e-6))


class ScreeningAnswers(BaseModel):
    """The answers to the contraindication questionnaire (docs/safety-basis.md §6.1), with their
    date."""

    model_config = _STRICT
    answered_utc: AwareDatetime
    adult: bool
    implanted_device: bool
    pregnancy: bool = False
    epilepsy: bool = False
    heart_disease: bool = False
    leg_arterial_disease: bool = False
    cancer: bool = False
    recent_surgery_or_bleeding: bool = False
    #: Conditions above that a doctor approved (their names); never ``implanted_device``.
    doctor_approved: list[str] = Field(default_factory=list, max_length=10)
    #: Sites with a lesion, fresh scar or reduced skin sensation: never stimulated (site block).
    blocked_sites: list[Site] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _approvals(self) -> Self:
        allowed = {"pregnancy", "epilepsy", "heart_disease", "leg_arterial_disease", "cancer",
                   "recent_surgery_or_bleeding"}
        unknown = [name for name in self.doctor_approved if name not in allowed]
        if unknown:
            raise ValueError(f"doctor_approved may only name {', '.join(sorted(allowed))}; "
                             f"not {', '.join(unknown)} (an implant is never approvable, L24)")
        return self


class CrampThreshold(BaseModel):
    """A cramp threshold frequency measured by a clinician (docs/programs-basis.md §4)."""

    model_config = _STRICT
    frequency_hz: float = Field(ge=2, le=60)
    measured_on: Annotated[date, AfterValidator(_past_date)]
    measured_by: str = Field(min_length=1, max_length=120)


class Profile(BaseModel):
    """The whole profile file."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True,
                              populate_by_name=True)
    schema_version: Literal[1] = Field(default=1, alias="schema")
    revision: int = Field(default=0, ge=0)
    updated_utc: AwareDatetime | None = None
    #: Usual bedtime (local): cramp-training is refused within 3 h before it.
    bedtime_local: time | None = None
    screening: ScreeningAnswers | None = None
    ctf: CrampThreshold | None = None
    calibrations: list[Calibration] = Field(default_factory=list, max_length=64)

    @property
    def version(self) -> str:
        """``profile_version`` for journals: "<schema>.<revision>"."""
        return f"{self.schema_version}.{self.revision}"

    def find(self, device: str, channel: int, site: str, pad_set: str = "default"
             ) -> list[Calibration]:
        """Every calibration for this device kind, channel, site and pad set, newest first."""
        found = [c for c in self.calibrations if c.matches(device, channel, site, pad_set)]
        return sorted(found, key=lambda c: c.measured_utc, reverse=True)

    def with_calibration(self, entry: Calibration) -> Profile:
        """A copy where ``entry`` replaces the calibration with its key, frequency and width."""
        kept = [c for c in self.calibrations
                if not (c.matches(entry.device, entry.channel, entry.site, entry.pad_set)
                        and c.measured_at(entry.frequency_hz, entry.pulse_width_us))]
        return self.model_copy(update={"calibrations": [*kept, entry]})


def data_dir() -> Path:
    """``$EMSCTL_DATA_DIR``, else the platform's user data directory for emsctl."""
    override = os.environ.get("EMSCTL_DATA_DIR")
    return Path(override) if override else Path(platformdirs.user_data_dir("emsctl"))


def profile_path(directory: Path | None = None) -> Path:
    """Where the profile lives: ``<data dir>/profile.toml``."""
    return (directory or data_dir()) / "profile.toml"


def load_profile(path: Path | None = None, *, now: datetime | None = None) -> Profile:
    """Read and validate the profile; an absent file is an empty profile (revision 0).

    ``now`` (default: the clock) is what stored times are checked against: one more than
    5 minutes ahead of it makes the profile invalid.

    The file is opened without blocking and read only if it is a regular file (a FIFO in its
    place would otherwise hang every real-device session).

    Raises:
        ProfileError: unreadable, not a regular file, too large, not TOML, writable by others,
            or invalid; the sentence names the first bad field.
    """
    path = path or profile_path()
    try:
        data, info = read_regular_file(path, PROFILE_MAX_BYTES)
    except DataFileRefused as exc:
        if exc.missing:
            return Profile()
        raise ProfileError(f"cannot read profile {path}: {exc.reason}") from None
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ProfileError(f"profile {path} is writable by other users; run 'chmod 600 {path}'")
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"profile {path} is not valid TOML: {exc}") from exc
    try:
        return Profile.model_validate(raw, context={"now": now or datetime.now(UTC)})
    except ValidationError as exc:
        raise ProfileError(f"profile {path} is invalid: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    where = ""
    for part in error["loc"]:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "less_than_equal" and str(error["loc"][-1]).endswith("_ma"):
        message += " mA (L3: no calibration goes above 40 mA)"
    shown = error.get("input")
    if isinstance(shown, int | float | str) and not isinstance(shown, bool):
        return f"{where or 'the file'} = {shown!r}: {message}"
    return f"{where or 'the file'}: {message}"


def save_profile(profile: Profile, path: Path | None = None, *, now: datetime | None = None
                 ) -> Profile:
    """Write ``profile`` atomically (mode 0600) with the revision bumped; return what was written.

    Raises:
        ProfileError: the folder or file could not be written, or the profile holds a date more
            than 5 minutes after ``now`` (default: the clock).
    """
    path = path or profile_path()
    now = now or datetime.now(UTC)
    stamped = profile.model_copy(update={"revision": profile.revision + 1, "updated_utc": now})
    try:  # never write what loading would refuse
        stamped = Profile.model_validate(stamped.model_dump(by_alias=True), context={"now": now})
    except ValidationError as exc:
        raise ProfileError(f"profile not saved: {_first_error(exc)}") from None
    text = dump_toml(stamped.model_dump(by_alias=True, exclude_none=True))
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".profile-", suffix=".tmp", dir=path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ProfileError(f"cannot write profile {path}: {exc.strerror}") from exc
    return stamped


# ---------------------------------------------------------------------------- TOML writer


def dump_toml(data: dict[str, object]) -> str:
    """Serialise the profile's shape: scalars, tables of scalars, arrays of such tables."""
    lines = ["# emsctl profile: edit with care; values above a ceiling are refused.\n"]
    tables: list[str] = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append(f"\n[{key}]\n" + "".join(f"{k} = {_value(v)}\n" for k, v in
                                                   value.items()))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                assert isinstance(item, dict)
                tables.append(f"\n[[{key}]]\n" + "".join(f"{k} = {_value(v)}\n" for k, v in
                                                         item.items()))
        else:
            lines.append(f"{key} = {_value(value)}\n")
    return "".join(lines + tables)


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("a profile holds finite numbers only")
        return repr(value)
    if isinstance(value, str):
        return '"' + "".join(_char(c) for c in value) + '"'
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to the profile")


def _char(char: str) -> str:
    if char in ('"', "\\"):
        return "\\" + char
    if ord(char) < 0x20 or ord(char) == 0x7F:
        return f"\\u{ord(char):04x}"
    return char
