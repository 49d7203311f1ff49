"""The user's limits file: the one place the safety limits are read from disk.

A thin shell around :func:`emsctl.limits.limits_from_mapping`: read the file (size capped, a
regular file only), decode UTF-8 TOML, and hand the mapping on. It must never apply part of a
file, nor accept a value that the mapping refuses.
"""

from __future__ import annotations

import os
import tomllib
from typing import Final

from .datafile import DataFileRefused, read_data_file
from .errors import LimitsFileError
from .limits import Limits, limits_from_mapping

__all__ = [
    "LIMITS_FILE_MAX_BYTES",
    "load_limits_file",
]

LIMITS_FILE_MAX_BYTES: Final = 1 << 20
"""Size cap on a user limits file (HZ-13): larger files are refused unread."""


def load_limits_file(path: str | os.PathLike[str]) -> Limits:
    """Load a user limits file (TOML; keys are :class:`Limits` field names).

    Args:
        path: The file; at most :data:`LIMITS_FILE_MAX_BYTES` bytes of UTF-8 TOML.

    Returns:
        :data:`DEFAULTS` with the file's values applied, each checked against its ceiling.

    Raises:
        LimitsFileError: Naming the file (and the key, where one is at fault) if the file cannot
            be read or is not a regular file, is too large (refused unread), is not TOML, or
            holds a value that is invalid or looser than its ceiling. Nothing is partially
            applied.
    """
    source = os.fspath(path)
    try:
        raw = read_data_file(source, LIMITS_FILE_MAX_BYTES)
    except DataFileRefused as exc:
        if exc.too_large:
            raise LimitsFileError(f"{source}: the limits file is larger than 1 MiB.") from None
        raise LimitsFileError(f"{source}: cannot read the limits file ({exc.reason}).") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise LimitsFileError(f"{source}: the limits file is not UTF-8 text.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise LimitsFileError(f"{source}: not valid TOML: {exc}.") from exc
    except ValueError as exc:  # int() refusing an integer of more than 4300 digits
        raise LimitsFileError(f"{source}: not valid TOML: a number is too long.") from exc
    except RecursionError as exc:
        raise LimitsFileError(f"{source}: not valid TOML: nested too deeply.") from exc
    return limits_from_mapping(data, source=source)

