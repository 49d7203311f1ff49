"""Where journals live, what a journal record is, and the errors of writing and reading them.

Journals are in ``<state dir>/journals`` (:func:`journal_dir`; ``$EMSCTL_STATE_DIR`` moves all
of emsctl's state), one ``<UTC timestamp>-<program>-<short id>.jsonl`` file per session
(:data:`FILE_NAME`), in folders created 0700 (:func:`make_private_dir`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TypeAlias

import platformdirs

from ..errors import EmsError, InputError

__all__ = [
    "FILE_NAME",
    "INCOMPLETE",
    "JOURNAL_MAX_BYTES",
    "NOT_A_JOURNAL",
    "RUNNING",
    "SCHEMA_VERSION",
    "JournalCorruptError",
    "JournalWriteError",
    "JsonValue",
    "NotAJournalError",
    "Record",
    "journal_dir",
    "make_private_dir",
    "state_dir",
]

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"
Record: TypeAlias = dict[str, JsonValue]

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
#: A journal's file name (without ``.jsonl``): UTC start, program, the session id's first 8 digits.
FILE_NAME = re.compile(r"^(?P<stamp>[0-9]{8}T[0-9]{6}Z)-(?P<program>.+)-(?P<short>[0-9a-f]{8})$")


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
