"""Keys reach the session: every key of a burst is handled at once, and a stop key wins.

The key reader reads the terminal's file descriptor itself; here a pipe stands in for it, so a
burst such as ``-q`` arrives in one read, as it does when a user types fast.
"""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from emsctl.cli.live import KeyReader, _device_status
from emsctl.clock import VirtualClock
from emsctl.session import SessionState


class FakeSession:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def stop(self, reason: str, message: str) -> None:
        self.calls.append(("stop", reason))

    def toggle_pause(self) -> None:
        self.calls.append(("pause", None))

    def change_intensity(self, delta_pct: float) -> None:
        self.calls.append(("intensity", delta_pct))


def read_burst(burst: bytes, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, object]]:
    read_fd, write_fd = os.pipe()
    session = FakeSession()

    class Stdin:
        def fileno(self) -> int:
            return read_fd

    monkeypatch.setattr(sys, "stdin", Stdin())

    async def main() -> None:
        KeyReader(session)  # type: ignore[arg-type]
        os.write(write_fd, burst)
        await asyncio.sleep(0.01)

    try:
        VirtualClock(None).run(main())
    finally:
        os.close(read_fd)
        os.close(write_fd)
    return session.calls


def test_every_key_of_a_burst_is_handled_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    assert read_burst(b"--+ ", monkeypatch) == [("intensity", -5.0), ("intensity", -5.0),
                                                ("intensity", 5.0), ("pause", None)]


def test_a_stop_key_in_a_burst_stops_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    assert read_burst(b"-q", monkeypatch) == [("stop", "stopped")]
    assert read_burst(b"+++Q+", monkeypatch) == [("stop", "stopped")]


def test_the_device_line_says_stale_when_reports_are_old() -> None:
    stale = _device_status(SessionState(telemetry_age_s=1.7, telemetry_stale=True)).plain
    assert "STALE" in stale and "1.7 s" in stale and "refused" in stale
    fresh = _device_status(SessionState(telemetry_age_s=0.1)).plain
    assert fresh.startswith("device: ok") and "0.1 s" in fresh
