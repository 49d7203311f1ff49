"""The dose rules (L20, HZ-05): may another session start on these sites now, and if not, when?

The rules, per body site:

- at most ``limits.sessions_per_day`` sessions and ``limits.minutes_per_day`` minutes in any
  24 hours — a *rolling* 24-hour window, so midnight resets nothing (HZ-05: "ledger across
  midnight") [E];
- at least ``limits.min_gap_between_sessions_s`` from the end of the last session to the start
  of the next;
- ``cramp-training``: at most 2 sessions per leg in any 7 days and at least 72 h between their
  starts; only between 08:00 and 20:00 local time (:mod:`emsctl.local_time`: the system's zone)
  and not within 3 h before the user's bedtime.

What counts (:func:`from_summaries`): sessions on **real devices** only. Simulator sessions
(``sim``, ``sim+…``) are neither counted nor checked, so demos, tests and CI never block each
other and a demo never uses up a person's dose. Calibrations are not sessions. A session's
minutes are its whole time, guide phases included (conservative). Records dated in the future
count like any other: a refusal they cause says so (check the computer's clock). A journal cut
short by a kill counts with the time it reached; a corrupt one counts as a session on *every*
site (its sites are unknown), of unknown (zero) length. A ``*.jsonl`` entry in the journal folder
that is not a regular file (a FIFO, a directory) is not a journal and does not count.

This module decides on the sessions it is given: it must never read or write the ledger (that
is :mod:`emsctl.ledger`) nor take the clock; it reads the system's zone only to word a refusal's
times.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from . import local_time
from .errors import EmsError
from .journal import NOT_A_JOURNAL, SessionSummary
from .limits import Limits
from .screening import GateRefused

__all__ = [
    "CALIBRATION_PROGRAM",
    "CRAMP_MIN_SPACING",
    "CRAMP_PER_WEEK",
    "CRAMP_PROGRAM",
    "DAY_WINDOW",
    "DoseLimitReached",
    "PastSession",
    "check_cramp_training",
    "check_dose",
    "from_summaries",
]

DAY_WINDOW = timedelta(hours=24)
WEEK_WINDOW = timedelta(days=7)
#: L20 ceiling for cramp-training: ≤ 2 sessions per week per leg, ≥ 72 h apart.
CRAMP_PER_WEEK = 2
CRAMP_MIN_SPACING = timedelta(hours=72)
#: docs/programs-basis.md P8: refused 20:00–08:00 and within 3 h of bedtime [E].
DAYTIME_START, DAYTIME_END = time(8, 0), time(20, 0)
BEDTIME_MARGIN = timedelta(hours=3)
CRAMP_PROGRAM = "cramp-training"
CALIBRATION_PROGRAM = "calibrate"


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


def _local(moment: datetime) -> str:
    return f"{moment.astimezone(local_time.system_zone() or UTC):%Y-%m-%d %H:%M}"


def _future(past: Sequence[PastSession], sites: Sequence[str], now: datetime) -> str:
    """A clause for a refusal when a counted session on ``sites`` is dated after ``now``."""
    ahead = [p.started_utc for p in past if p.started_utc > now and any(p.on(s) for s in sites)]
    if not ahead:
        return ""
    return (f" (a session on these sites is dated in the future, {_local(max(ahead))}: it "
            "counts all the same; check this computer's clock)")


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
    raise DoseLimitReached(f"dose limit reached: {problems[0]}{when}{_future(past, sites, now)}",
                           later)


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
    pass :func:`~emsctl.local_time.local_now` (the system's zone, never ``TZ``).

    Raises:
        GateRefused: between 20:00 and 08:00, within 3 h before ``bedtime_local``, or ``now``
            in :data:`~emsctl.local_time.UNKNOWN_ZONE` (the system has no time zone to tell
            daytime by).
        DoseLimitReached: the weekly count or the 72 h spacing, with the next allowed time.
    """
    if now.tzinfo is local_time.UNKNOWN_ZONE:
        raise GateRefused(f"{program} needs the system's time zone for its daytime rule, and "
                          f"{local_time.SYSTEM_ZONE_FILE} cannot be read; set the time zone (e.g. "
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
    raise DoseLimitReached(f"dose limit reached: {problems[0]}{when}{_future(past, sites, now)}",
                           later)
