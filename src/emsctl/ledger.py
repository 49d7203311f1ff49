"""The dose ledger file: one per user account, append-only, locked, read before every real run.

Where the count comes from: **one file per user account** (one account is one person),
``<state dir>/dose-ledger.jsonl`` (:func:`ledger_path`), never from the folder a run writes its
journal to. Only ``$EMSCTL_STATE_DIR`` moves it, and that variable moves all of emsctl's state
with it; a real-device session refuses to run when it would move the ledger away from the
person's profile (``$EMSCTL_STATE_DIR`` moved, the data directory not).

The file is append-only JSONL (0600, folder 0700), each write one ``os.write`` on an
``O_APPEND`` descriptor under an exclusive ``flock`` and fsynced. A real-device session writes a
``start`` record before the device is connected — after checking the rules
(:mod:`emsctl.dose_rules`) again under the lock, so two runs cannot both pass — and an ``end``
record with its real duration when it is over. On first use the journals already in the default
journal folder are imported once (``imported`` records and an ``import-done`` mark, skipping
journals already there), so an upgrade resets nothing. A cut last line is tolerated (the next
write ends it and marks the repair); any other damage (:mod:`emsctl.ledger_records`), a file that
is not a regular file or cannot be opened refuses every real-device session
(:class:`~emsctl.errors.LedgerError`, exit 2): the ledger is never taken as empty. A ``*.jsonl``
entry in the journal folder that is not a regular file is skipped without being opened for
reading.

This module is the ledger's I/O shell: it must never decide a dose itself (that is
:mod:`emsctl.dose_rules`), rewrite a record, or let a session run on a ledger it could not read.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from time import monotonic, sleep
from types import TracebackType
from typing import Self

import platformdirs

from . import __version__
from .datafile import DataFileRefused, open_regular, read_open_file
from .dose_rules import PastSession, check_dose, from_summaries
from .errors import LedgerError
from .journal import list_journals, make_private_dir, state_dir
from .ledger_records import LedgerContents, read_contents
from .limits import Limits
from .profile import data_dir

__all__ = [
    "LEDGER_NAME",
    "LedgerEntry",
    "begin_session",
    "end_session",
    "ledger_path",
    "past_sessions",
]

#: The ledger's file name in the state directory.
LEDGER_NAME = "dose-ledger.jsonl"
#: A ledger larger than this is refused (years of sessions are well under 1 MB).
MAX_LEDGER_BYTES = 64 * 1024 * 1024
#: How long to wait for another emsctl holding the ledger's lock (it holds it for milliseconds).
LOCK_TIMEOUT_S = 10.0


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

    def read(self) -> LedgerContents:
        try:
            os.lseek(self.fd, 0, os.SEEK_SET)
            data = read_open_file(self.fd, MAX_LEDGER_BYTES)
        except (DataFileRefused, OSError) as exc:
            reason = exc.reason if isinstance(exc, DataFileRefused) else exc.strerror
            raise LedgerError(f"cannot read the dose ledger {self.path}: {reason}; no session "
                              "runs on a real device without it") from exc
        return read_contents(data, self.path)

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

    def import_journals_once(self, contents: LedgerContents) -> LedgerContents:
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
