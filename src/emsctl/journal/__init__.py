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

One idea a module: :mod:`.files` (where journals live, records, errors), :mod:`.writer` (the
journal a session writes) and :mod:`.reader` (reading, summarising, listing and finding
journals); every public name is here.
"""


from __future__ import annotations

from .files import (
    INCOMPLETE,
    JOURNAL_MAX_BYTES,
    NOT_A_JOURNAL,
    RUNNING,
    SCHEMA_VERSION,
    JournalCorruptError,
    JournalWriteError,
    JsonValue,
    NotAJournalError,
    Record,
    journal_dir,
    make_private_dir,
    state_dir,
)
from .reader import (
    JournalRecord,
    SessionSummary,
    find_journal,
    header_simulated,
    list_journals,
    read_journal,
    summarize,
    writer_alive,
)
from .writer import COMMAND_KEEPALIVE_S, CommandLog, Journal, JournalSink, NullJournal

__all__ = [
    "COMMAND_KEEPALIVE_S",
    "INCOMPLETE",
    "JOURNAL_MAX_BYTES",
    "NOT_A_JOURNAL",
    "RUNNING",
    "SCHEMA_VERSION",
    "CommandLog",
    "Journal",
    "JournalCorruptError",
    "JournalRecord",
    "JournalSink",
    "JournalWriteError",
    "JsonValue",
    "NotAJournalError",
    "NullJournal",
    "Record",
    "SessionSummary",
    "find_journal",
    "header_simulated",
    "journal_dir",
    "list_journals",
    "make_private_dir",
    "read_journal",
    "state_dir",
    "summarize",
    "writer_alive",
]
