"""The dose ledger (L20, HZ-05): may another session start on these sites now, and if not, when?

Read from the session journals (:func:`emsctl.journal.list_journals`), per body site:

- at most ``limits.sessions_per_day`` sessions and ``limits.minutes_per_day`` minutes in any
  24 hours — a *rolling* 24-hour window, so midnight resets nothing (HZ-05: "ledger across
  midnight") [E];
- at least ``limits.min_gap_between_sessions_s`` from the end of the last session to the start
  of the next;
- ``cramp-training``: at most 2 sessions per leg in any 7 days and at least 72 h between their
  starts; only between 08:00 and 20:00 local time and not within 3 h before the user's bedtime.

**Local time** is the person's wall clock, and for these gates it is the time zone the *system*
is configured for — ``/etc/localtime`` (:func:`system_zone`) — never the process's ``TZ``
variable, which anyone can set for one command (``TZ=Pacific/Kiritimati emsctl run …`` would
otherwise move 21:00 to the next day's daytime). :func:`local_now` is the "now" of the CLI and
the runner. Where the system has no readable zone, cramp-training is refused on a real device
rather than judged in a guessed zone.

What counts: journals of **real devices** only. Simulator sessions (``sim``, ``sim+…``) are
neither counted nor checked, so demos, tests and CI never block each other and a demo never uses
up a person's dose. A journal cut short by a kill counts with the time it reached; a corrupt one
counts as a session on *every* site (its sites are unknown), of unknown (zero) length. A
``*.jsonl`` entry that is not a regular file (a FIFO, a directory) is not a journal — emsctl
only ever writes regular files — and is skipped without being opened for reading.
Calibrations are not sessions. The minutes of a session are its journal time, guide phases
included (conservative). Pure apart from :func:`past_sessions`, which reads the journals.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from .datafile import DataFileRefused, read_data_file
from .errors import EmsError
from .journal import NOT_A_JOURNAL, SessionSummary, list_journals
from .limits import Limits
from .screening import GateRefused

__all__ = [
    "CRAMP_MIN_SPACING",
    "CRAMP_PER_WEEK",
    "DAY_WINDOW",
    "DoseLimitReached",
    "PastSession",
    "check_cramp_training",
    "check_dose",
    "local_now",
    "past_sessions",
    "system_zone",
]

DAY_WINDOW = timedelta(hours=24)
WEEK_WINDOW = timedelta(days=7)
#: L20 ceiling for cramp-training: ≤ 2 sessions per week per leg, ≥ 72 h apart.
CRAMP_PER_WEEK = 2
CRAMP_MIN_SPACING = timedelta(hours=72)
#: PROGRAMS-BASIS P8: refused 20:00–08:00 and within 3 h of bedtime [E].
DAYTIME_START, DAYTIME_END = time(8, 0), time(20, 0)
BEDTIME_MARGIN = timedelta(hours=3)
CRAMP_PROGRAM = "cramp-training"
CALIBRATION_PROGRAM = "calibrate"
#: Where the system's time zone is configured (Linux, macOS, the BSDs): a TZif file.
SYSTEM_ZONE_FILE = Path("/etc/localtime")
_ZONE_FILE_MAX_BYTES = 256 * 1024


class _UnknownZone(tzinfo):
    """The zone of :func:`local_now` when the system has none: shown as UTC, but the daytime
    gate refuses to judge in it."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "UTC (system time zone unknown)"


UNKNOWN_ZONE = _UnknownZone()


def system_zone() -> tzinfo | None:
    """The time zone the system is configured for (``/etc/localtime``), or None without one.

    Never the ``TZ`` environment variable: it belongs to one process and is set in one
    command, so it must not move a local-time gate.
    """
    try:
        data = read_data_file(SYSTEM_ZONE_FILE, _ZONE_FILE_MAX_BYTES)
        return ZoneInfo.from_file(io.BytesIO(data), key="localtime")
    except (DataFileRefused, ValueError):
        return None


def local_now() -> datetime:
    """Now, in the system's time zone (:func:`system_zone`); in :data:`UNKNOWN_ZONE` without
    one."""
    return datetime.now(system_zone() or UNKNOWN_ZONE)


class DoseLimitReached(EmsError):
    """A dose limit (L20) would be exceeded; exit 1. ``next_allowed_utc`` says when it is not."""

    def __init__(self, message: str, next_allowed_utc: datetime | None) -> None:
        super().__init__(message)
        self.next_allowed_utc = next_allowed_utc


@dataclass(frozen=True)
class PastSession:
    """One counted session. ``sites`` None: unknown (a corrupt journal), counts on every site."""

    started_utc: datetime
    duration_s: float
    sites: tuple[str, ...] | None
    program: str

    @property
    def ended_utc(self) -> datetime:
        """Start plus the time the journal reached."""
        return self.started_utc + timedelta(seconds=self.duration_s)

    def on(self, site: str) -> bool:
        """True when this session used ``site`` (or its sites are unknown)."""
        return self.sites is None or site in self.sites


def from_summaries(summaries: Iterable[SessionSummary]) -> list[PastSession]:
    """The sessions the ledger counts: real devices, not calibrations; corrupt ones everywhere;
    entries that are not journals (not regular files) not at all."""
    out: list[PastSession] = []
    for s in summaries:
        if s.started_utc is None or s.end_reason == NOT_A_JOURNAL:
            continue
        if s.problem is not None:
            out.append(PastSession(s.started_utc, 0.0, None, s.program))
            continue
        if s.simulated or s.program == CALIBRATION_PROGRAM:
            continue
        out.append(PastSession(s.started_utc, max(0.0, s.duration_s), s.sites, s.program))
    return out


def past_sessions(directory: str | os.PathLike[str] | None = None) -> list[PastSession]:
    """Every counted session in the journal folder (see :func:`from_summaries`)."""
    return from_summaries(list_journals(directory))


def _local(moment: datetime) -> str:
    return f"{moment.astimezone(system_zone() or UTC):%Y-%m-%d %H:%M}"


def _dose_problem(past: Sequence[PastSession], site: str, at: datetime, planned_s: float,
                  limits: Limits) -> str | None:
    mine = [p for p in past if p.on(site)]
    window = [p for p in mine if p.started_utc > at - DAY_WINDOW]
    if len(window) + 1 > limits.sessions_per_day:
        return (f"{len(window)} sessions on {site} in the last 24 h; at most "
                f"{limits.sessions_per_day} a day (L20)")
    minutes = sum(p.duration_s for p in window) / 60.0
    if minutes + planned_s / 60.0 > limits.minutes_per_day + 1e-9:
        return (f"{minutes:.0f} min on {site} in the last 24 h plus {planned_s / 60:.0f} min "
                f"is over {limits.minutes_per_day:g} min a day (L20)")
    last_end = max((p.ended_utc for p in mine), default=None)
    gap = timedelta(seconds=limits.min_gap_between_sessions_s)
    if last_end is not None and at < last_end + gap:
        return (f"the last session on {site} ended at {_local(last_end)}; sessions on one site "
                f"need {gap.total_seconds() / 60:.0f} min between them (L20)")
    return None


def check_dose(past: Sequence[PastSession], sites: Iterable[str], planned_s: float,
               now: datetime, limits: Limits) -> None:
    """Refuse when a session of ``planned_s`` on ``sites`` now would break L20.

    Raises:
        DoseLimitReached: with the reason and the first time the session would be allowed.
    """
    sites = list(dict.fromkeys(sites))
    if planned_s / 60.0 > limits.minutes_per_day:
        raise DoseLimitReached(f"the program lasts {planned_s / 60:.0f} min, over the "
                               f"{limits.minutes_per_day:g} min a day of L20", None)
    problems = [p for s in sites if (p := _dose_problem(past, s, now, planned_s, limits))]
    if not problems:
        return
    gap = timedelta(seconds=limits.min_gap_between_sessions_s)
    candidates = sorted({now, *(p.started_utc + DAY_WINDOW for p in past),
                         *(p.ended_utc + gap for p in past)})
    later = next((t for t in candidates if t > now and not any(
        _dose_problem(past, s, t, planned_s, limits) for s in sites)), None)
    when = f"; next session allowed from {_local(later)}" if later else ""
    raise DoseLimitReached(f"dose limit reached: {problems[0]}{when}", later)


def _cramp_problem(past: Sequence[PastSession], site: str, at: datetime, program: str
                   ) -> str | None:
    mine = [p for p in past if p.on(site) and p.program == program]
    week = [p for p in mine if p.started_utc > at - WEEK_WINDOW]
    if len(week) >= CRAMP_PER_WEEK:
        return (f"{len(week)} {program} sessions on {site} in the last 7 days; at most "
                f"{CRAMP_PER_WEEK} a week per leg (L20)")
    last = max((p.started_utc for p in mine), default=None)
    if last is not None and at < last + CRAMP_MIN_SPACING:
        return (f"the last {program} session on {site} started at {_local(last)}; they need "
                "72 h between them (L20)")
    return None


def check_cramp_training(past: Sequence[PastSession], sites: Iterable[str], now: datetime,
                         *, program: str = CRAMP_PROGRAM, bedtime_local: time | None = None
                         ) -> None:
    """The cramp-training rules: daytime only, ≤ 2 per week per leg, ≥ 72 h apart.

    ``now`` must be aware; its own time zone is the "local" one of the daytime rule, so callers
    pass :func:`local_now` (the system's zone, never ``TZ``).

    Raises:
        GateRefused: between 20:00 and 08:00, within 3 h before ``bedtime_local``, or ``now``
            in :data:`UNKNOWN_ZONE` (the system has no time zone to tell daytime by).
        DoseLimitReached: the weekly count or the 72 h spacing, with the next allowed time.
    """
    if now.tzinfo is UNKNOWN_ZONE:
        raise GateRefused(f"{program} needs the system's time zone for its daytime rule, and "
                          f"{SYSTEM_ZONE_FILE} cannot be read; set the time zone (e.g. "
                          "'timedatectl set-timezone Europe/Berlin')")
    local = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    clock = local.time().replace(tzinfo=None)
    if not DAYTIME_START <= clock < DAYTIME_END:
        raise GateRefused(f"{program} runs only between 08:00 and 20:00 (it can provoke cramps; "
                          "never before bed)")
    if bedtime_local is not None:
        bed = datetime.combine(local.date(), bedtime_local, tzinfo=local.tzinfo)
        if bed < local:
            bed += timedelta(days=1)
        if bed - local < BEDTIME_MARGIN:
            raise GateRefused(f"{program} is refused within 3 h of your bedtime "
                              f"({bedtime_local:%H:%M})")
    sites = list(dict.fromkeys(sites))
    problems = [p for s in sites if (p := _cramp_problem(past, s, now, program))]
    if not problems:
        return
    candidates = sorted({t for p in past for t in (p.started_utc + WEEK_WINDOW,
                                                   p.started_utc + CRAMP_MIN_SPACING)})
    later = next((t for t in candidates if t > now and not any(
        _cramp_problem(past, s, t, program) for s in sites)), None)
    when = f"; next {program} session allowed from {_local(later)}" if later else ""
    raise DoseLimitReached(f"dose limit reached: {problems[0]}{when}", later)
