"""Reading journals back: one journal (:func:`read_journal`, tolerant of a cut last line), its
summary for ``emsctl history``, and the listing and lookup of the journals in a folder.

Journals are opened only when they are regular files, without blocking (a FIFO named like a
journal is reported as unreadable, never waited on). A journal without a footer is ``running``
while its writer holds its lock (:func:`writer_alive`) and ``killed/incomplete`` after.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..datafile import DataFileRefused, open_regular, read_data_file
from ..devices import is_simulator_url
from ..errors import InputError
from .files import (
    FILE_NAME,
    INCOMPLETE,
    JOURNAL_MAX_BYTES,
    NOT_A_JOURNAL,
    RUNNING,
    JournalCorruptError,
    NotAJournalError,
    Record,
    journal_dir,
)

__all__ = [
    "JournalRecord",
    "SessionSummary",
    "find_journal",
    "header_simulated",
    "list_journals",
    "read_journal",
    "summarize",
    "writer_alive",
]


@dataclass(frozen=True)
class JournalRecord:
    """A parsed journal. ``records`` are everything between header and footer, in order."""

    path: Path
    header: Record
    records: list[Record]
    footer: Record | None
    #: The file did not end with a complete line (killed mid-write, or a cut last line).
    truncated: bool


def _parse_line(raw: bytes) -> Record:
    value = json.loads(raw, parse_constant=_reject_constant)
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise ValueError("not an object with a 'type'")
    t_s = value.get("t_s")
    if isinstance(t_s, bool) or not isinstance(t_s, int | float):
        raise ValueError("no numeric 't_s'")
    return value


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def read_journal(path: str | os.PathLike[str]) -> JournalRecord:
    """Read a journal, tolerating a cut or corrupt last line.

    The file is opened without blocking and read only if it is a regular file (a FIFO named
    ``*.jsonl`` would otherwise hang the reader), at most :data:`JOURNAL_MAX_BYTES`.

    Raises:
        NotAJournalError: a FIFO, device, socket or directory.
        InputError: the file cannot be read, or is too large.
        JournalCorruptError: a bad line before the last, no complete header, or records after
            the footer.
    """
    path = Path(path)
    try:
        data = read_data_file(path, JOURNAL_MAX_BYTES)
    except DataFileRefused as exc:
        if exc.not_regular:
            raise NotAJournalError(f"{path.name} is not a journal: {exc.reason}") from None
        raise InputError(f"cannot read journal {path}: {exc.reason}") from None
    lines = data.split(b"\n")
    truncated = lines[-1] != b""  # every record ends with a newline
    if not truncated:
        lines.pop()
    parsed: list[Record] = []
    for number, raw in enumerate(lines, start=1):
        try:
            parsed.append(_parse_line(raw))
        except ValueError as exc:
            if number == len(lines):
                truncated = True  # a write cut by a kill, or a damaged last line
                break
            raise JournalCorruptError(
                f"journal {path.name} is corrupt at line {number} of {len(lines)}: {exc}"
            ) from exc
    if not parsed or parsed[0]["type"] != "header":
        raise JournalCorruptError(f"journal {path.name} has no complete header")
    footer: Record | None = None
    for number, record in enumerate(parsed[1:], start=2):
        if footer is not None:
            raise JournalCorruptError(f"journal {path.name} has records after its footer "
                                      f"(line {number})")
        if record["type"] == "footer":
            footer = record
    body = parsed[1:-1] if footer is not None else parsed[1:]
    return JournalRecord(path, parsed[0], body, footer, truncated)


@dataclass(frozen=True)
class SessionSummary:
    """One line of ``emsctl history``. ``problem`` is set when the journal is unreadable."""

    session_id: str
    path: Path
    started_utc: datetime | None
    program: str
    device_url: str
    device_model: str
    #: From the header's flag; journals written before it existed tell by their URL.
    simulated: bool
    sites: tuple[str, ...]
    duration_s: float
    end_reason: str
    peak_ma: float
    complete: bool
    problem: str | None = None
    #: No footer, and the writer still holds the journal's lock: the session is running.
    running: bool = False


def _text(record: Record, key: str, default: str = "") -> str:
    value = record.get(key)
    return value if isinstance(value, str) else default


def _number(record: Record, key: str) -> float | None:
    value = record.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _timestamp(text: str) -> datetime | None:
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    return stamp.astimezone(UTC) if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def header_simulated(header: Record) -> bool:
    """Whether a journal's session ran on the simulator: the header's flag, or for journals
    written before it existed, their URL."""
    flag = header.get("simulated")
    return flag if isinstance(flag, bool) else is_simulator_url(_text(header, "device_url"))


def summarize(journal: JournalRecord) -> SessionSummary:
    """The figures ``emsctl history`` lists for one journal (peak mA from its commands)."""
    header, footer = journal.header, journal.footer
    peak_ma = 0.0
    last_t_s = 0.0
    for record in journal.records:
        last_t_s = max(last_t_s, _number(record, "t_s") or 0.0)
        setpoints = record.get("setpoints")
        if record["type"] == "command" and isinstance(setpoints, list):
            for sp in setpoints:
                if isinstance(sp, dict):
                    peak_ma = max(peak_ma, _number(sp, "amplitude_ma") or 0.0)
    sites = header.get("sites")
    device_url = _text(header, "device_url", "?")
    footer_t_s = None if footer is None else _number(footer, "t_s")
    running = footer is None and writer_alive(journal.path)
    return SessionSummary(
        session_id=_text(header, "session_id", journal.path.stem),
        path=journal.path,
        started_utc=_timestamp(_text(header, "started_utc")),
        program=_text(header, "program", "?"),
        device_url=device_url,
        device_model=_text(header, "device_model"),
        simulated=header_simulated(header),
        sites=tuple(s for s in sites.values() if isinstance(s, str))
        if isinstance(sites, dict) else (),
        duration_s=footer_t_s if footer_t_s is not None else last_t_s,
        end_reason=(RUNNING if running else INCOMPLETE) if footer is None
        else _text(footer, "end_reason", "?"),
        peak_ma=peak_ma,
        complete=footer is not None,
        running=running,
    )


def writer_alive(path: str | os.PathLike[str]) -> bool:
    """Whether a process still holds ``path``'s writer lock (its session is running).

    A shared lock is tried without waiting and released at once: if it cannot be had, a
    writer holds the exclusive one. Anything that cannot be opened or locked has no writer.
    """
    try:
        fd, _ = open_regular(path)
    except DataFileRefused:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing releases the shared lock, if it was taken
    return False


def _unreadable(path: Path, problem: str, end_reason: str = "corrupt") -> SessionSummary:
    """A summary for a journal that cannot be read, from what its file name tells."""
    match = FILE_NAME.match(path.stem)
    started = (datetime.strptime(match["stamp"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
               if match else None)
    return SessionSummary(
        session_id=match["short"] if match else path.stem, path=path, started_utc=started,
        program=match["program"] if match else "?", device_url="?", device_model="",
        simulated=False, sites=(), duration_s=0.0, end_reason=end_reason, peak_ma=0.0,
        complete=False, problem=problem,
    )


def list_journals(directory: str | os.PathLike[str] | None = None) -> list[SessionSummary]:
    """Summaries of every journal in ``directory``, oldest first; none if it does not exist.

    Unreadable or corrupt journals are listed with ``end_reason="corrupt"`` and ``problem``;
    entries that are not regular files with ``end_reason=NOT_A_JOURNAL`` (never opened for
    reading, so a FIFO cannot hang the listing).
    """
    folder = journal_dir(directory)
    summaries: list[SessionSummary] = []
    for path in sorted(folder.glob("*.jsonl")):
        try:
            summaries.append(summarize(read_journal(path)))
        except NotAJournalError as exc:
            summaries.append(_unreadable(path, str(exc), NOT_A_JOURNAL))
        except InputError as exc:
            summaries.append(_unreadable(path, str(exc)))
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(summaries, key=lambda s: (s.started_utc or oldest, s.path.name))


def find_journal(ref: str, directory: str | os.PathLike[str] | None = None) -> Path:
    """Resolve a session reference: a journal path, a session id or prefix, or a file-name prefix.

    Raises:
        InputError: nothing matches, or a prefix matches more than one session.
    """
    as_path = Path(ref)
    if ref.endswith(".jsonl") or os.sep in ref:
        if as_path.is_file():
            return as_path
        raise InputError(f"there is no journal file at {ref}")
    folder = journal_dir(directory)
    wanted = ref.lower()
    matches = [s.path for s in list_journals(folder)
               if wanted and (s.session_id.lower().startswith(wanted)
                              or s.path.stem.lower().startswith(wanted))]
    if not matches:
        raise InputError(f"no session matches '{ref}' in {folder}")
    if len(matches) > 1:
        raise InputError(f"'{ref}' matches {len(matches)} sessions; give more of the id")
    return matches[0]
