"""The session journal: one append-only JSONL file per session, and the readers built on it.

HZ-22 asks for a record of every delivered dose. A :class:`Journal` writes one JSON object per
line to ``<state dir>/journals/<UTC timestamp>-<program>-<short id>.jsonl`` (file 0600, folder
0700). Every record has ``"type"`` and ``"t_s"`` (session seconds); each is written with one
``os.write`` on an ``O_APPEND`` descriptor, so a killed process leaves whole lines followed by at
most one cut line, which the readers tolerate. Header, stops and footer are fsynced.

Record types: ``header`` (session id, program and its sha256, device, effective limits, profile
version, intensity, emsctl version, sites), ``command`` (setpoints as sent, lease, intensity),
``stop``, ``telemetry``, ``event`` (``pause``, ``resume``, ``intensity``, ``phase``,
``message``) and ``footer`` (end reason, delivered figures, command counts, peak mA).

Commands arrive at 10–40 Hz, so by default (``"command_log": "changes"``) a command is written
only when its setpoints or intensity differ from the previous command, or when
``command_keepalive_s`` has passed since the last one written. That drops only exact repeats:
every change — a drop to zero included — is written, and stops are never de-duplicated.

While a session runs, its writer holds an exclusive advisory lock (``flock``) on the journal's
file; the kernel drops it when the process ends, however it ends. A reader that can take the
lock knows the writer is gone, so a journal without a footer is listed as ``running`` while its
writer is alive and as ``killed/incomplete`` once it is not.

This module must never rewrite or truncate a journal, and it decides nothing about safety: the
dose ledger (L20, :mod:`emsctl.ledger`) keeps its own file and reads journals only once, to
import the ones written before it existed. Journals are opened only when they are regular
files, without blocking (a FIFO named like a journal is reported as unreadable, never waited on).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, Self, TypeAlias

import platformdirs

from . import __version__
from .contract import ChannelSetpoint, Telemetry
from .datafile import DataFileRefused, open_regular, read_data_file
from .devices import is_simulator_url
from .errors import EmsError, InputError

__all__ = [
    "INCOMPLETE",
    "JOURNAL_MAX_BYTES",
    "NOT_A_JOURNAL",
    "RUNNING",
    "Journal",
    "JournalCorruptError",
    "JournalRecord",
    "JournalSink",
    "JournalWriteError",
    "JsonValue",
    "NotAJournalError",
    "NullJournal",
    "SessionSummary",
    "find_journal",
    "journal_dir",
    "list_journals",
    "make_private_dir",
    "read_journal",
    "state_dir",
    "summarize",
    "writer_alive",
]

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"
Record: TypeAlias = dict[str, JsonValue]
CommandLog = Literal["changes", "all"]

SCHEMA_VERSION = 1
#: End reason shown for a journal without a footer (the process was killed or crashed).
INCOMPLETE = "killed/incomplete"
#: End reason shown for a ``*.jsonl`` entry that is not a regular file (a FIFO, a directory…):
#: it is never opened for reading, so it cannot hang a reader, and the ledger skips it.
NOT_A_JOURNAL = "not a journal"
#: The largest journal read: a 60-minute session logging every command at 40 Hz is ~30 MB.
JOURNAL_MAX_BYTES = 256 * 1024 * 1024
#: End reason shown for a journal without a footer whose writer still holds its lock.
RUNNING = "running"
#: A repeated command is still written this often, so a killed session's length is known.
COMMAND_KEEPALIVE_S = 10.0
#: Telemetry that may come with every command: written only when it changes, like commands.
_CHATTY_TELEMETRY = frozenset({"ack", "applied", "strength", "battery"})
_NAME = re.compile(r"^(?P<stamp>[0-9]{8}T[0-9]{6}Z)-(?P<program>.+)-(?P<short>[0-9a-f]{8})$")


class JournalWriteError(EmsError):
    """A journal could not be created or written (disk full, permissions)."""


class NotAJournalError(InputError):
    """A journal path that is not a regular file (FIFO, device, socket, directory)."""


class JournalCorruptError(InputError):
    """A journal has a bad line before its last one, or no complete header."""


def state_dir() -> Path:
    """emsctl's state folder: ``$EMSCTL_STATE_DIR``, else the platform's user state directory.

    It holds the default journal folder and the dose ledger; only the variable moves it (and
    with it all of emsctl's state), never a run option.
    """
    state = os.environ.get("EMSCTL_STATE_DIR")
    return Path(state) if state else Path(platformdirs.user_state_dir("emsctl"))


def journal_dir(directory: str | os.PathLike[str] | None = None) -> Path:
    """The folder journals live in.

    Args:
        directory: an explicit folder; wins over everything else.

    Returns:
        ``directory``, else :func:`state_dir` plus ``journals``.
    """
    if directory is not None:
        return Path(directory)
    return state_dir() / "journals"


class Journal:
    """Writes one session's journal. A context manager; the file appears at :meth:`header`.

    Args:
        directory: journal folder (see :func:`journal_dir`).
        session_id: a fixed id (tests); a random 32-hex-digit id otherwise.
        command_log: ``"changes"`` (de-duplicate repeated commands) or ``"all"``.
        command_keepalive_s: with ``"changes"``, write a repeated command at least this often.
        fsync_commands: fsync after every command written (slow at 40 Hz; off by default).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        session_id: str | None = None,
        command_log: CommandLog = "changes",
        command_keepalive_s: float = COMMAND_KEEPALIVE_S,
        fsync_commands: bool = False,
    ) -> None:
        self.directory = journal_dir(directory)
        self.session_id = session_id or uuid.uuid4().hex
        self.path: Path | None = None
        self.command_log: CommandLog = command_log
        self.command_keepalive_s = command_keepalive_s
        self.fsync_commands = fsync_commands
        self.commands_sent = 0
        self.commands_logged = 0
        self.peak_ma = 0.0
        self._fd: int | None = None
        self._footer_written = False
        self._last_t_s = 0.0
        self._last_command: tuple[object, float] | None = None
        self._last_telemetry: dict[tuple[str, int | None], tuple[object, float]] = {}
        self._lock = threading.Lock()

    def header(
        self,
        *,
        program: str,
        program_sha256: str,
        program_source: str,
        device_url: str,
        device_model: str,
        limits: Mapping[str, object],
        profile_version: str | None,
        intensity_pct: float,
        sites: Mapping[int, str] | None = None,
        started_utc: datetime | None = None,
        simulated: bool | None = None,
        thresholds: Mapping[int, Mapping[str, float]] | None = None,
    ) -> Path:
        """Create the journal file (0600, never an existing one) and write its header.

        Args:
            program: program name. program_sha256: hash of the program file's bytes.
            program_source: where the program came from (``builtin`` or a path).
            device_url: the URL the device was opened from. device_model: its model.
            limits: the effective limits, JSON-serialisable. profile_version: or None.
            intensity_pct: the starting user intensity. sites: channel → electrode site.
            started_utc: the session's start (now by default).
            simulated: the driver's own flag (the dose ledger skips simulated sessions); None
                leaves it out, and readers then go by the URL, as for old journals.
            thresholds: channel → ``{"st_ma", "mt_ma", "tol_ma"}`` the plan was compiled
                with (a session plot redraws the plan from them); None leaves them out.

        Returns:
            The journal's path.

        Raises:
            JournalWriteError: the folder or file could not be created or written.
            RuntimeError: a header was already written.
        """
        if self._fd is not None:
            raise RuntimeError("this journal already has a header")
        started = (started_utc or datetime.now(UTC)).astimezone(UTC)
        safe_program = re.sub(r"[^A-Za-z0-9_-]+", "_", program).strip("_-")[:40] or "program"
        name = f"{started:%Y%m%dT%H%M%SZ}-{safe_program}-{self.session_id[:8]}.jsonl"
        self.path = self.directory / name
        try:
            make_private_dir(self.directory)
            self._fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_APPEND, 0o600)
            os.fchmod(self._fd, 0o600)  # the umask may only have narrowed it; make it exact
            # held until close or the process ends: readers tell "running" from "killed"
            # (blocking: a reader holds its shared lock only for the moment of its test)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except OSError as exc:
            raise JournalWriteError(f"cannot create journal {self.path}: {exc.strerror}") from exc
        flag: dict[str, object] = {} if simulated is None else {"simulated": simulated}
        if thresholds is not None:
            flag["thresholds"] = {str(ch): dict(values) for ch, values in thresholds.items()}
        self._write({
            "type": "header", "t_s": 0.0, "schema": SCHEMA_VERSION, **flag,
            "session_id": self.session_id, "started_utc": started.isoformat(),
            "program": program, "program_sha256": program_sha256,
            "program_source": program_source, "device_url": device_url,
            "device_model": device_model, "limits": dict(limits),
            "profile_version": profile_version, "intensity_pct": intensity_pct,
            "sites": {str(ch): site for ch, site in (sites or {}).items()},
            "emsctl_version": __version__, "command_log": self.command_log,
            "command_keepalive_s": self.command_keepalive_s,
        }, sync=True)
        return self.path

    def command(self, t_s: float, setpoints: Sequence[ChannelSetpoint], lease_s: float,
                intensity_pct: float) -> None:
        """Record setpoints as sent to the driver (intensity already applied).

        Raises:
            JournalWriteError: the write failed. RuntimeError: no header, or after the footer.
        """
        values = tuple((sp.amplitude_ma, sp.frequency_hz, sp.pulse_width_us) for sp in setpoints)
        with self._lock:
            self.commands_sent += 1
            self.peak_ma = max([self.peak_ma, *(v[0] for v in values)])
            key = (values, intensity_pct)
            last = self._last_command
            if (self.command_log == "changes" and last is not None and last[0] == key
                    and t_s - last[1] < self.command_keepalive_s):
                return  # an exact repeat: nothing new to record
            self._last_command = (key, t_s)
            self.commands_logged += 1
        self._write({
            "type": "command", "t_s": t_s, "lease_s": lease_s, "intensity_pct": intensity_pct,
            "setpoints": [{"amplitude_ma": a, "frequency_hz": f, "pulse_width_us": pw}
                          for a, f, pw in values],
        }, sync=self.fsync_commands)

    def stop(self, t_s: float, reason: str) -> None:
        """Record a stop. Never de-duplicated; fsynced.

        Raises:
            JournalWriteError: the write failed. RuntimeError: no header, or after the footer.
        """
        with self._lock:
            self._last_command = None  # the next command is written whatever it is
        self._write({"type": "stop", "t_s": t_s, "reason": reason}, sync=True)

    def telemetry(self, t_s: float, telemetry: Telemetry) -> None:
        """Record a device report; repeated acks, strength and battery values are skipped.

        Raises:
            JournalWriteError: the write failed. RuntimeError: no header, or after the footer.
        """
        if telemetry.kind in _CHATTY_TELEMETRY:
            slot = (telemetry.kind, telemetry.channel)
            key = (telemetry.value, telemetry.message)
            with self._lock:
                last = self._last_telemetry.get(slot)
                if last is not None and last[0] == key and t_s - last[1] < self.command_keepalive_s:
                    return
                self._last_telemetry[slot] = (key, t_s)
        self._write({"type": "telemetry", "t_s": t_s, "kind": telemetry.kind,
                     "channel": telemetry.channel, "value": telemetry.value,
                     "message": telemetry.message})

    def event(self, t_s: float, kind: str, **fields: object) -> None:
        """Record a session event: ``pause``, ``resume``, ``intensity``, ``phase``, ``message``.

        Raises:
            ValueError: ``kind`` is empty or a field is called ``type``.
            JournalWriteError: the write failed. RuntimeError: no header, or after the footer.
        """
        if not kind or "type" in fields:
            raise ValueError("an event needs a kind and no field called 'type'")
        self._write({"type": "event", "t_s": t_s, "kind": kind, **fields})

    def footer(self, end_reason: str, delivered: Mapping[str, object], *,
               t_s: float | None = None, message: str | None = None) -> None:
        """Write the last record: why the session ended and what it delivered. Fsynced.

        Args:
            end_reason: e.g. ``completed``, ``stopped``, ``fault``.
            delivered: figures such as delivered minutes or charge, JSON-serialisable.
            t_s: session time at the end; the latest time recorded by default.
            message: the session's own words for how it ended (left out when None).

        Raises:
            JournalWriteError: the write failed. RuntimeError: no header, or a second footer.
        """
        said = {} if message is None else {"message": message}
        self._write({
            "type": "footer", "t_s": self._last_t_s if t_s is None else t_s,
            "end_reason": end_reason, **said, "ended_utc": datetime.now(UTC).isoformat(),
            "delivered": dict(delivered), "commands_sent": self.commands_sent,
            "commands_logged": self.commands_logged, "peak_ma": self.peak_ma,
        }, sync=True)

    def close(self) -> None:
        """Close the file. Idempotent; writes nothing."""
        fd, self._fd = self._fd, None
        self._footer_written = True  # nothing may follow a close
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if self._fd is not None and not self._footer_written:
                reason = "closed without a footer" if exc is None else "aborted"
                detail = {} if exc is None else {"error": f"{type(exc).__name__}: {exc}"}
                try:
                    self.footer(reason, detail)
                except (JournalWriteError, ValueError):
                    if exc is None:
                        raise
        finally:
            self.close()

    def _write(self, record: dict[str, object], *, sync: bool = False) -> None:
        line = json.dumps(record, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        data = (line + "\n").encode()
        with self._lock:
            if self._fd is None:
                raise RuntimeError("the journal is not open: write the header first")
            if self._footer_written:
                raise RuntimeError("the journal is finished: nothing may follow its footer")
            try:
                while data:  # one write for a whole line; loop only on a short write
                    data = data[os.write(self._fd, data):]
                if sync:
                    os.fsync(self._fd)
            except OSError as exc:
                raise JournalWriteError(
                    f"cannot write journal {self.path}: {exc.strerror}") from exc
            t_s = record.get("t_s")
            if isinstance(t_s, float | int):
                self._last_t_s = max(self._last_t_s, float(t_s))
            self._footer_written = record["type"] == "footer"


class JournalSink(Protocol):
    """What :func:`emsctl.runner.execute` records a session in: a :class:`Journal`, or a
    :class:`NullJournal` for runs that keep no record (simulated devices only)."""

    @property
    def session_id(self) -> str:
        """The session's id (the dose ledger keys real-device sessions by it)."""
        ...

    def header(self, *, program: str, program_sha256: str, program_source: str,
               device_url: str, device_model: str, limits: Mapping[str, object],
               profile_version: str | None, intensity_pct: float,
               sites: Mapping[int, str] | None = None, started_utc: datetime | None = None,
               simulated: bool | None = None,
               thresholds: Mapping[int, Mapping[str, float]] | None = None,
               ) -> Path | None:
        """Start the record; its file, or None when nothing is written."""
        ...

    def command(self, t_s: float, setpoints: Sequence[ChannelSetpoint], lease_s: float,
                intensity_pct: float) -> None:
        """Record setpoints as sent to the driver."""
        ...

    def stop(self, t_s: float, reason: str) -> None:
        """Record a stop."""
        ...

    def telemetry(self, t_s: float, telemetry: Telemetry) -> None:
        """Record a device report."""
        ...

    def event(self, t_s: float, kind: str, **fields: Any) -> None:
        """Record a session event."""
        ...

    def footer(self, end_reason: str, delivered: Mapping[str, object], *,
               t_s: float | None = None, message: str | None = None) -> None:
        """Finish the record: why the session ended and what it delivered."""
        ...

    def close(self) -> None:
        """Release the record; idempotent."""
        ...


class NullJournal:
    """A journal that writes nothing: for simulator runs from Python that keep no record.

    :func:`emsctl.runner.execute` refuses it for a real device, whose every session is
    journaled (HZ-22).
    """

    def __init__(self) -> None:
        self.session_id = uuid.uuid4().hex

    def header(self, **fields: Any) -> None:
        """Write nothing; there is no file."""

    def command(self, t_s: float, setpoints: Sequence[ChannelSetpoint], lease_s: float,
                intensity_pct: float) -> None:
        """Write nothing."""

    def stop(self, t_s: float, reason: str) -> None:
        """Write nothing."""

    def telemetry(self, t_s: float, telemetry: Telemetry) -> None:
        """Write nothing."""

    def event(self, t_s: float, kind: str, **fields: Any) -> None:
        """Write nothing."""

    def footer(self, end_reason: str, delivered: Mapping[str, object], *,
               t_s: float | None = None, message: str | None = None) -> None:
        """Write nothing."""

    def close(self) -> None:
        """Nothing to close."""


def make_private_dir(path: Path) -> None:
    """Create ``path`` and missing parents as 0700; leave existing folders alone."""
    missing: list[Path] = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(folder, 0o700)  # mkdir's mode passes through the umask


# ---------------------------------------------------------------------------- readers


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
    match = _NAME.match(path.stem)
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
