"""The person's local time: the time zone the system is configured for, never ``TZ``.

For the local-time gates (cramp-training's daytime and bedtime rules) "local" is the person's
wall clock, and that is the zone of the *system* — ``/etc/localtime`` (:func:`system_zone`) —
never the process's ``TZ`` variable, which anyone can set for one command
(``TZ=Pacific/Kiritimati emsctl run …`` would otherwise move 21:00 to the next day's daytime).
:func:`local_now` is the "now" of the CLI and the runner. Where the system has no readable zone,
now is in :data:`UNKNOWN_ZONE`, in which the gates refuse to judge.

This module must never read ``TZ`` nor guess a zone; its only I/O is reading the zone file.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from .datafile import DataFileRefused, read_data_file

__all__ = [
    "SYSTEM_ZONE_FILE",
    "UNKNOWN_ZONE",
    "local_now",
    "system_zone",
]

#: Where the system's time zone is configured (Linux, macOS, the BSDs): a TZif file.
SYSTEM_ZONE_FILE = Path("/etc/localtime")
_ZONE_FILE_MAX_BYTES = 256 * 1024


class _UnknownZone(tzinfo):
    """The zone of :func:`local_now` when the system has none: shown as UTC, but the daytime
    gate refuses to judge in it."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "UTC (system time zone unknown)"


UNKNOWN_ZONE = _UnknownZone()


def system_zone() -> tzinfo | None:
    """The time zone the system is configured for (``/etc/localtime``), or None without one.

    Never the ``TZ`` environment variable: it belongs to one process and is set in one
    command, so it must not move a local-time gate.
    """
    try:
        data = read_data_file(SYSTEM_ZONE_FILE, _ZONE_FILE_MAX_BYTES)
        return ZoneInfo.from_file(io.BytesIO(data), key="localtime")
    except (DataFileRefused, ValueError):
        return None


def local_now() -> datetime:
    """Now, in the system's time zone (:func:`system_zone`); in :data:`UNKNOWN_ZONE` without
    one."""
    return datetime.now(system_zone() or UNKNOWN_ZONE)
