"""Opening a user's data and state files safely: a regular file, bounded in size.

Files given by users are hostile until proven otherwise (HZ-13), and so are the files found in
emsctl's own folders (a FIFO named like a journal or the dose ledger). This module opens a path
without blocking (a FIFO or a terminal would hang a plain ``open``), refuses anything that is
not a regular file (``fstat`` on the opened descriptor), refuses a file larger than the
caller's cap *before* reading it, and never reads more than the cap plus one byte even if the
file grows meanwhile. :func:`open_regular` is the open alone, for callers that also write
(the dose ledger). It only opens and reads bytes: parsing and validation belong to the
callers, which turn :class:`DataFileRefused` into their own one-sentence error.
"""

from __future__ import annotations

import errno
import os
import stat

__all__ = ["DataFileRefused", "open_regular", "read_data_file", "read_open_file",
           "read_regular_file"]

_CHUNK_BYTES = 64 * 1024


class DataFileRefused(Exception):
    """A path that cannot be read as a data file; ``reason`` is a clause for a message.

    Attributes:
        reason: e.g. ``"no such file"``, ``"a symlink loop"``, ``"not a regular file"``.
        too_large: the file is over the caller's size cap.
        missing: there is no file at the path (not even a dangling symlink).
        not_regular: a directory, FIFO, device or socket is there instead of a file.
    """

    def __init__(self, reason: str, *, too_large: bool = False, missing: bool = False,
                 not_regular: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.too_large = too_large
        self.missing = missing
        self.not_regular = not_regular


def _open_refusal(path: str, exc: OSError) -> DataFileRefused:
    if exc.errno == errno.ENOENT:
        if os.path.islink(path):
            return DataFileRefused("a symlink to a missing file")
        return DataFileRefused("no such file", missing=True)
    if exc.errno == errno.ELOOP:
        return DataFileRefused("a symlink loop")
    if exc.errno == errno.EISDIR:
        return DataFileRefused("a directory, not a file", not_regular=True)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return DataFileRefused("permission denied")
    return DataFileRefused(f"read error ({exc.strerror or exc})")


def open_regular(path: str | os.PathLike[str], flags: int = os.O_RDONLY, mode: int = 0o600
                 ) -> tuple[int, os.stat_result]:
    """Open ``path`` without blocking and only if it is a regular file; return the descriptor.

    ``O_NONBLOCK``, ``O_CLOEXEC`` and ``O_NOCTTY`` are added to ``flags``, so a FIFO, a
    terminal or a device never hangs the open; ``fstat`` on the opened descriptor then refuses
    anything that is not a regular file (no race between a check and the open). The caller
    owns the descriptor and closes it.

    Args:
        path: the file (symlinks to regular files are followed).
        flags: ``os.O_RDONLY`` by default; e.g. ``os.O_RDWR | os.O_APPEND | os.O_CREAT``.
        mode: the permissions of a file that ``os.O_CREAT`` creates.

    Returns:
        The open descriptor and its ``fstat``.

    Raises:
        DataFileRefused: missing, a symlink loop, a directory, a FIFO/device/socket, or
            not openable (its ``reason`` says which).
    """
    name = os.fspath(path)
    if not name:
        raise DataFileRefused("an empty path")
    flags |= os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(name, flags, mode)
    except ValueError:  # an embedded NUL byte
        raise DataFileRefused("not a valid path") from None
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a FIFO opened for writing with no reader
            raise DataFileRefused("a FIFO, device or socket, not a regular file",
                                  not_regular=True) from exc
        raise _open_refusal(name, exc) from exc
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise DataFileRefused("a directory, not a file", not_regular=True)
        if not stat.S_ISREG(info.st_mode):
            raise DataFileRefused("a FIFO, device or socket, not a regular file",
                                  not_regular=True)
    except OSError as exc:
        os.close(fd)
        raise DataFileRefused(f"read error ({exc.strerror or exc})") from exc
    except DataFileRefused:
        os.close(fd)
        raise
    return fd, info


def read_open_file(fd: int, max_bytes: int) -> bytes:
    """Read what is left of the open regular file ``fd``, at most ``max_bytes`` bytes.

    Raises:
        DataFileRefused: larger than ``max_bytes`` (even if it grew while being read), or a
            read error.
    """
    try:
        size = os.fstat(fd).st_size - os.lseek(fd, 0, os.SEEK_CUR)
        if size > max_bytes:
            raise DataFileRefused(f"{size} bytes is over the {max_bytes}-byte limit",
                                  too_large=True)
        chunks: list[bytes] = []
        total = 0
        while total <= max_bytes:  # the file may grow after fstat: never read past the cap
            chunk = os.read(fd, min(_CHUNK_BYTES, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise DataFileRefused(f"read error ({exc.strerror or exc})") from exc
    if total > max_bytes:
        raise DataFileRefused(f"over the {max_bytes}-byte limit", too_large=True)
    return b"".join(chunks)


def read_data_file(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """Return the bytes of the regular file at ``path``, at most ``max_bytes`` of them.

    Args:
        path: the file (symlinks to regular files are followed).
        max_bytes: the size cap; larger files are refused without being read.

    Raises:
        DataFileRefused: missing, a symlink loop, a directory, a FIFO/device/socket, unreadable,
            or larger than ``max_bytes``.
    """
    return read_regular_file(path, max_bytes)[0]


def read_regular_file(path: str | os.PathLike[str], max_bytes: int
                      ) -> tuple[bytes, os.stat_result]:
    """Like :func:`read_data_file`, with the ``fstat`` of the very file that was read (for
    callers that check its mode: no second look-up of the path that could see another file).

    Raises:
        DataFileRefused: as :func:`read_data_file`.
    """
    fd, info = open_regular(path)
    try:
        return read_open_file(fd, max_bytes), info
    finally:
        os.close(fd)
