"""The dose ledger's records: its bytes read into the sessions it counts, or refused as damaged.

The ledger is JSONL, one record a line, each ending with a newline: ``start`` (a session
recorded before its device is connected, with its planned length), ``end`` (its real length),
``imported`` (a session from a journal that was there before the ledger), ``import-done`` and
``repaired`` (a cut line was ended by the next write). A session without its ``end`` counts with
its planned length. A cut last line, or a cut line that a later write ended and marked, is
skipped; any other bad line, a record of a type this version does not know or one without its
fields is refused with the file and the line (:class:`~emsctl.errors.LedgerError`).

This module is pure: it must never take a damaged ledger as empty, nor skip a record that
counts; reading and writing the file is :mod:`emsctl.ledger`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .dose_rules import PastSession
from .errors import LedgerError

__all__ = [
    "LedgerContents",
    "read_contents",
]


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
class LedgerContents:
    """What a ledger holds: the sessions it counts, the journals it imported, the sessions it
    recorded as started, and whether the first-use import is done."""

    sessions: list[PastSession]
    imported: frozenset[str]
    session_ids: frozenset[str]
    import_done: bool


def read_contents(data: bytes, path: Path) -> LedgerContents:
    """The ledger's contents from its bytes; ``path`` names it in a refusal.

    Raises:
        LedgerError: a damaged line or record, with the file and the line.
    """
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
    return LedgerContents(sessions, frozenset(names), frozenset(started), done)
