"""Writing a session's journal: :class:`Journal`, what a session writes to (:class:`JournalSink`),
and :class:`NullJournal`, which writes nothing.

One JSON object per line, each written with one ``os.write`` on an ``O_APPEND`` descriptor
(header, stops and footer fsynced), under an exclusive advisory lock held while the session
runs. Repeated commands and chatty telemetry are written only when they change or when
:data:`COMMAND_KEEPALIVE_S` has passed. Never rewrites or truncates a journal.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, Self

from .. import __version__
from ..contract import ChannelSetpoint, Telemetry
from .files import SCHEMA_VERSION, JournalWriteError, journal_dir, make_private_dir

__all__ = ["COMMAND_KEEPALIVE_S", "CommandLog", "Journal", "JournalSink", "NullJournal"]

CommandLog = Literal["changes", "all"]
#: A repeated command is still written this often, so a killed session's length is known.
COMMAND_KEEPALIVE_S = 10.0
#: Telemetry that may come with every command: written only when it changes, like commands.
_CHATTY_TELEMETRY = frozenset({"ack", "applied", "strength", "battery"})


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
