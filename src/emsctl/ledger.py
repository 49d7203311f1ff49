"""The dose ledger (L20, HZ-05): may another session start on these sites now, and if not, when?

The rules, per body site:

- at most ``limits.sessions_per_day`` sessions and ``limits.minutes_per_day`` minutes in any
  24 hours — a *rolling* 24-hour window, so midnight resets nothing (HZ-05: "ledger across
  midnight") [E];
- at least ``limits.min_gap_between_sessions_s`` from the end of the last session to the start
  of the next;
- ``cramp-training``: at most 2 sessions per leg in any 7 days and at least 72 h between their
  starts; only between 08:00 and 20:00 local time and not within 3 h before the user's bedtime.

Where the count comes from: **one file per user account** (one account is one person),
``<state dir>/dose-ledger.jsonl`` (:func:`ledger_path`), never from the folder a run writes its
journal to. Only ``$EMSCTL_STATE_DIR`` moves it, and that variable moves all of emsctl's state
with it; a real-device session refuses to run when it would move the ledger away from the
person's profile (``$EMSCTL_STATE_DIR`` moved, the data directory not).

The file is append-only JSONL (0600, folder 0700), each write one ``os.write`` on an
``O_APPEND`` descriptor under an exclusive ``flock`` and fsynced. A real-device session writes a
``start`` record before the device is connected — after checking the rules again under the
lock, so two runs cannot both pass — and an ``end`` record with its real duration when it is
over; a session without its ``end`` (killed, or still running) counts with its planned length.
On first use the journals already in the default journal folder are imported once (``imported``
records and an ``import-done`` mark, skipping journals already there), so an upgrade resets
nothing. A cut last line is tolerated (the next write ends it and marks the repair); any other
damage, an unknown record, a file that is not a regular file or cannot be opened refuses every
real-device session (:class:`LedgerError`, exit 2): the ledger is never taken as empty.

What counts: sessions on **real devices** only. Simulator sessions (``sim``, ``sim+…``) are
neither counted nor checked, so demos, tests and CI never block each other and a demo never uses
up a person's dose. Calibrations are not sessions. A session's minutes are its whole time,
guide phases included (conservative). Records dated in the future count like any other: a
refusal they cause says so (check the computer's clock). An imported journal cut short by a
kill counts with the time it reached; a corrupt one counts as a session on *every* site (its
sites are unknown), of unknown (zero) length.

**Local time** is the person's wall clock, and for these gates it is the time zone the *system*
is configured for — ``/etc/localtime`` (:func:`system_zone`) — never the process's ``TZ``
variable, which anyone can set for one command (``TZ=Pacific/Kiritimati emsctl run …`` would
otherwise move 21:00 to the next day's daytime). :func:`local_now` is the "now" of the CLI and
the runner. Where the system has no readable zone, cramp-training is refused on a real device
rather than judged in a guessed zone.

A ``*.jsonl`` entry in the journal folder that is not a regular file (a FIFO, a directory) is not
a journal — emsctl only ever writes regular files — and is skipped without being opened for
reading.
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import math
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from pathlib import Path
from time import monotonic, sleep
from types import TracebackType
from typing import Any, Self
from zoneinfo import ZoneInfo

import platformdirs

from . import __version__
from .datafile import DataFileRefused, open_regular, read_data_file, read_open_file
from .errors import EmsError, InputError
from .journal import NOT_A_JOURNAL, SessionSummary, list_journals, make_private_dir, state_dir
from .limits import Limits
from .profile import data_dir
from .screening import GateRefused

__all__ = [
    "CRAMP_MIN_SPACING",
    "CRAMP_PER_WEEK",
    "DAY_WINDOW",
    "LEDGER_NAME",
    "DoseLimitReached",
    "LedgerEntry",
    "LedgerError",
    "PastSession",
    "begin_session",
    "check_cramp_training",
    "check_dose",
    "end_session",
    "from_summaries",
    "ledger_path",
    "local_now",
    "past_sessions",
    "system_zone",
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
#: The ledger's file name in the state directory.
LEDGER_NAME = "dose-ledger.jsonl"
#: A ledger larger than this is refused (years of sessions are well under 1 MB).
MAX_LEDGER_BYTES = 64 * 1024 * 1024
#: How long to wait for another emsctl holding the ledger's lock (it holds it for milliseconds).
LOCK_TIMEOUT_S = 10.0

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


class LedgerError(InputError):
    """The dose ledger cannot be read, trusted or written: no real-device session runs (exit 2)."""


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
    return f"{moment.astimezone(system_zone() or UTC):%Y-%m-%d %H:%M}"


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
    raise DoseLimitReached(f"dose limit reached: {problems[0]}{when}{_future(past, sites, now)}",
                           later)



# ----------------------------------------------------------------------------- the ledger file


def ledger_path() -> Path:
    """Where the dose ledger lives: ``<state dir>/dose-ledger.jsonl`` (no run option moves it)."""
    return state_dir() / LEDGER_NAME


def _moved(path: Path, default: str) -> bool:
    return os.path.abspath(path) != os.path.abspath(default)


def _check_not_split() -> None:
    """Refuse a ledger moved away from the person: the state folder moved, the profile not."""
    if _moved(state_dir(), platformdirs.user_state_dir("emsctl")) and not _moved(
            data_dir(), platformdirs.user_data_dir("emsctl")):
        raise LedgerError(
            f"EMSCTL_STATE_DIR moves the dose ledger to {ledger_path()} but not your profile "
            f"in {data_dir()}; set EMSCTL_DATA_DIR too (the two move emsctl's state as a whole) "
            "or unset EMSCTL_STATE_DIR")


def _damaged(path: Path, line: int, why: str) -> LedgerError:
    return LedgerError(f"the dose ledger {path} is damaged at line {line} ({why}); no session "
                       "runs on a real device until it is repaired, because a damaged ledger is "
                       "never taken as empty")


def _record(raw: bytes) -> dict[str, Any] | None:
    """One ledger line as a record, or None when it is not a JSON object with a ``type``."""
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) and isinstance(value.get("type"), str) else None


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def _records(data: bytes, path: Path) -> list[tuple[int, dict[str, Any]]]:
    """The ledger's records with their line numbers; a cut last line (or a cut line that a
    later write ended and marked ``repaired``) is skipped, any other bad line refuses."""
    lines = data.split(b"\n")
    cut = lines[-1] != b""  # every record ends with a newline: a cut write does not
    if not cut:
        lines.pop()
    out: list[tuple[int, dict[str, Any]]] = []
    for index, raw in enumerate(lines):
        if not raw.strip():
            continue
        record = _record(raw)
        if record is None:
            following = _record(lines[index + 1]) if index + 1 < len(lines) else None
            if (cut and index == len(lines) - 1) or (following or {}).get("type") == "repaired":
                continue  # a write cut by a kill: a lost end or import record only makes
                # the session count longer or be imported again, a lost start never connected
            raise _damaged(path, index + 1, "not a JSON record")
        out.append((index + 1, record))
    return out


def _when(record: Mapping[str, Any], key: str) -> datetime:
    value = record.get(key)
    if not isinstance(value, str):
        raise ValueError(f"no '{key}'")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"'{key}' has no time zone")
    return moment.astimezone(UTC)


def _seconds(record: Mapping[str, Any], key: str) -> float:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"no number '{key}'")
    return max(0.0, float(value))


def _text(record: Mapping[str, Any], key: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"no '{key}'")
    return value


def _sites(record: Mapping[str, Any], *, unknown_ok: bool) -> tuple[str, ...] | None:
    value = record.get("sites")
    if value is None and unknown_ok:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("no list of 'sites'")
    return tuple(value)


@dataclass(frozen=True)
class _Contents:
    sessions: list[PastSession]
    imported: frozenset[str]
    session_ids: frozenset[str]
    import_done: bool


def _contents(data: bytes, path: Path) -> _Contents:
    started: dict[str, tuple[PastSession, float]] = {}
    ended: dict[str, float] = {}
    imported: list[PastSession] = []
    names: set[str] = set()
    done = False
    for line, record in _records(data, path):
        kind = record["type"]
        unknown = False
        try:
            if kind == "start":
                sid = _text(record, "session_id")
                planned = _seconds(record, "planned_s")
                started[sid] = (PastSession(_when(record, "started_utc"), planned,
                                            _sites(record, unknown_ok=False),
                                            _text(record, "program")), planned)
            elif kind == "end":
                ended[_text(record, "session_id")] = _seconds(record, "duration_s")
            elif kind == "imported":
                names.add(_text(record, "journal"))
                imported.append(PastSession(_when(record, "started_utc"),
                                            _seconds(record, "duration_s"),
                                            _sites(record, unknown_ok=True),
                                            _text(record, "program")))
            elif kind == "import-done":
                done = True
            elif kind != "repaired":  # a newer emsctl's record, perhaps: never skip what counts
                unknown = True
        except ValueError as exc:
            raise _damaged(path, line, f"a '{kind}' record with {exc}") from None
        if unknown:
            raise _damaged(path, line, f"a record of unknown type '{kind}'")
    sessions = imported + [
        PastSession(p.started_utc, ended.get(sid, planned), p.sites, p.program)
        for sid, (p, planned) in started.items()]  # no end: killed or running, planned length
    sessions.sort(key=lambda p: p.started_utc)
    return _Contents(sessions, frozenset(names), frozenset(started), done)


class _LedgerFile:
    """The ledger open for reading and appending, under an exclusive lock, while in a ``with``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def __enter__(self) -> Self:
        try:
            make_private_dir(self.path.parent)
        except OSError as exc:
            raise LedgerError(f"cannot create the folder of the dose ledger {self.path}: "
                              f"{exc.strerror}; no session runs on a real device without it"
                              ) from exc
        try:
            fd, info = open_regular(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        except DataFileRefused as exc:
            raise LedgerError(f"cannot open the dose ledger {self.path}: {exc.reason}; "
                              "no session runs on a real device without it") from exc
        self._fd = fd
        try:
            if stat.S_IMODE(info.st_mode) != 0o600:
                os.fchmod(fd, 0o600)  # private, whatever the umask or an old copy said
            self._lock(fd)
        except BaseException:
            self.close()
            raise
        return self

    def _lock(self, fd: int) -> None:
        deadline = monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise LedgerError(f"cannot lock the dose ledger {self.path}: "
                                      f"{exc.strerror}") from exc
            if monotonic() > deadline:
                raise LedgerError(f"the dose ledger {self.path} has been locked by another "
                                  f"emsctl for over {LOCK_TIMEOUT_S:g} s; try again")
            sleep(0.02)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # releases the lock

    @property
    def fd(self) -> int:
        if self._fd is None:
            raise RuntimeError("the dose ledger is not open")
        return self._fd

    def read(self) -> _Contents:
        try:
            os.lseek(self.fd, 0, os.SEEK_SET)
            data = read_open_file(self.fd, MAX_LEDGER_BYTES)
        except (DataFileRefused, OSError) as exc:
            reason = exc.reason if isinstance(exc, DataFileRefused) else exc.strerror
            raise LedgerError(f"cannot read the dose ledger {self.path}: {reason}; no session "
                              "runs on a real device without it") from exc
        return _contents(data, self.path)

    def append(self, *records: Mapping[str, object]) -> None:
        lines = [json.dumps(r, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
                 for r in records]
        try:
            size = os.fstat(self.fd).st_size
            if size and os.pread(self.fd, 1, size - 1) != b"\n":
                lines.insert(0, '\n{"type":"repaired"}')  # end a cut line and say so
            data = ("\n".join(lines) + "\n").encode()
            while data:  # one write for all the lines; loop only on a short write
                data = data[os.write(self.fd, data):]
            os.fsync(self.fd)
        except OSError as exc:
            raise LedgerError(f"cannot write the dose ledger {self.path}: {exc.strerror}; "
                              "no session runs on a real device without it") from exc

    def import_journals_once(self, contents: _Contents) -> _Contents:
        """Import the default journal folder's sessions, once: an upgrade resets nothing."""
        if contents.import_done:
            return contents
        folder = state_dir() / "journals"
        try:
            os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError as exc:
            raise LedgerError(f"cannot read the journal folder {folder} to start the dose "
                              f"ledger from it: {exc.strerror}") from exc
        records: list[dict[str, object]] = []
        for summary in list_journals(folder):
            if (summary.path.name in contents.imported
                    or summary.session_id in contents.session_ids):
                continue
            for past in from_summaries([summary]):
                records.append({
                    "type": "imported", "journal": summary.path.name,
                    "session_id": summary.session_id,
                    "started_utc": past.started_utc.isoformat(), "program": past.program,
                    "sites": None if past.sites is None else list(past.sites),
                    "duration_s": past.duration_s})
        self.append(*records, {"type": "import-done", "folder": str(folder),
                               "sessions": len(records),
                               "at_utc": datetime.now(UTC).isoformat()})
        return self.read()


def _open_ledger(path: Path | None) -> _LedgerFile:
    if path is None:
        _check_not_split()
    return _LedgerFile(path or ledger_path())


def past_sessions(path: Path | None = None) -> list[PastSession]:
    """Every session the dose ledger counts, oldest first (importing old journals on first use).

    Args:
        path: another ledger file (tests); the user's (:func:`ledger_path`) by default.

    Raises:
        LedgerError: the ledger cannot be opened, locked, read or trusted (exit 2).
    """
    with _open_ledger(path) as ledger:
        return ledger.import_journals_once(ledger.read()).sessions


@dataclass(frozen=True)
class LedgerEntry:
    """A session recorded as started: what :func:`end_session` closes."""

    path: Path
    session_id: str
    started_utc: datetime


def begin_session(*, session_id: str, program: str, sites: Iterable[str], planned_s: float,
                  limits: Limits, device_url: str, now: datetime | None = None,
                  path: Path | None = None) -> LedgerEntry:
    """Check the dose again under the ledger's lock and record the session as started.

    Called right before a real device is connected, so a session killed at any later point
    counts (with its planned length until :func:`end_session` gives the real one).

    Raises:
        DoseLimitReached: the session would break L20 (another run got there first).
        LedgerError: the ledger cannot be opened, locked, read, trusted or written (exit 2).
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    sites = list(dict.fromkeys(sites))
    with _open_ledger(path) as ledger:
        contents = ledger.import_journals_once(ledger.read())
        check_dose(contents.sessions, sites, planned_s, now, limits)
        ledger.append({"type": "start", "session_id": session_id, "started_utc": now.isoformat(),
                       "program": program, "sites": sites, "planned_s": planned_s,
                       "device_url": device_url, "emsctl_version": __version__})
        return LedgerEntry(ledger.path, session_id, now)


def end_session(entry: LedgerEntry, duration_s: float, end_reason: str,
                journal: Path | None = None) -> None:
    """Record the session's real length (its start to the device's close) and how it ended.

    Raises:
        LedgerError: the ledger cannot be opened or written; the session then keeps counting
            with its planned length.
    """
    with _LedgerFile(entry.path) as ledger:
        ledger.append({"type": "end", "session_id": entry.session_id,
                       "duration_s": max(0.0, duration_s), "end_reason": end_reason,
                       "ended_utc": datetime.now(UTC).isoformat(),
                       "journal": None if journal is None else str(journal)})
