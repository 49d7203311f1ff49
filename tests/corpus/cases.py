"""Inputs of the bad-input corpus that cannot live in git: made in a temporary folder at run time.

Each generator gets the corpus work folder (the test's current directory, holding copies of
``programs/`` and ``limits/``) and returns the argument to pass on the command line, or raises
``pytest.skip`` with the reason when the case cannot be made honestly here.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

TEN_MB = 10 * 1024 * 1024


def ten_megabytes(work: Path) -> str:
    """A 10 MB file of comments: valid TOML, refused by size before it is read."""
    path = work / "big.toml"
    with path.open("wb") as handle:
        handle.write(b"# padding\n" * (TEN_MB // 10))
    return path.name


def fifo(work: Path) -> str:
    """A named pipe with no writer: a plain open() would block forever."""
    path = work / "pipe.toml"
    os.mkfifo(path)
    return path.name


def directory(work: Path) -> str:
    """A directory whose name looks like a program file."""
    (work / "folder.toml").mkdir()
    return "folder.toml"


def symlink_loop(work: Path) -> str:
    """Two symlinks pointing at each other."""
    (work / "loop-a.toml").symlink_to("loop-b.toml")
    (work / "loop-b.toml").symlink_to("loop-a.toml")
    return "loop-a.toml"


def dangling_symlink(work: Path) -> str:
    """A symlink whose target does not exist."""
    (work / "dangling.toml").symlink_to("nowhere/missing.toml")
    return "dangling.toml"


def symlink_to_valid(work: Path) -> str:
    """A symlink to a valid program: followed, and the file is checked like any other."""
    (work / "link.toml").symlink_to("programs/valid.toml")
    return "link.toml"


def directory_loop(work: Path) -> str:
    """A folder with a valid program and a symlink back to itself (and to its parent)."""
    tree = work / "tree"
    (tree / "sub").mkdir(parents=True)
    shutil.copy(work / "programs" / "valid.toml", tree / "sub" / "valid.toml")
    (tree / "sub" / "again").symlink_to("..", target_is_directory=True)
    (tree / "self").symlink_to(".", target_is_directory=True)
    return "tree"


def missing(work: Path) -> str:
    """A path that does not exist."""
    return "no-such-program.toml"


def unreadable(work: Path) -> str:
    """A file with mode 000. Root reads it anyway, so the case only means something as a user."""
    path = work / "secret.toml"
    shutil.copy(work / "programs" / "valid.toml", path)
    path.chmod(0)
    if os.access(path, os.R_OK):
        pytest.skip("running as root (or with CAP_DAC_OVERRIDE): mode 000 is still readable, so "
                    "'unreadable' cannot be made here; the FIFO, directory and /dev/null cases "
                    "cover non-readable inputs")
    return path.name


def dev_null(work: Path) -> str:
    """A character device: reads as empty, but it is not a file."""
    return os.devnull


def parent_escape(work: Path) -> str:
    """``../x``: a path (it has a separator), looked up as given, never under the package."""
    return "../x"


def etc_passwd(work: Path) -> str:
    """A traversal to a system file: read as data (bad TOML), never executed or joined."""
    if not Path("/etc/passwd").is_file():
        pytest.skip("no /etc/passwd here")
    return "../" * 12 + "etc/passwd"


def shadowing_file(work: Path) -> str:
    """A file called ``relaxation`` in the current folder must not replace the built-in."""
    text = (work / "programs" / "valid.toml").read_text()
    (work / "relaxation").write_text(text.replace('title = "Test program"',
                                                  'title = "Impostor"'))
    return "relaxation"


def unknown_name_with_file(work: Path) -> str:
    """A bare name that is no built-in, while a file of that name sits here."""
    shutil.copy(work / "programs" / "valid.toml", work / "sleepy")
    return "sleepy"


def empty_argument(work: Path) -> str:
    """An empty argument (an unset shell variable) must not mean "the current folder"."""
    return ""


GENERATORS: dict[str, Callable[[Path], str]] = {
    name.replace("_", "-"): func
    for name, func in list(globals().items())
    if callable(func) and getattr(func, "__module__", None) == __name__
    and not name.startswith("_")
}
