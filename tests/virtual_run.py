"""Running a prepared session in virtual time from a test, optionally stopping it mid-way."""

from __future__ import annotations

import asyncio
from pathlib import Path

from emsctl.clock import VirtualClock
from emsctl.runner import Prepared, RunOutcome, execute
from emsctl.session import Session


def run(prepared: Prepared, tmp_path: Path, *, stop_at_s: float | None = None
        ) -> tuple[RunOutcome, float]:
    """Run ``prepared`` to its end (or a user stop at ``stop_at_s``); return the outcome and
    the session's start on the loop clock."""
    started: list[float] = []

    def on_start(session: Session) -> None:
        loop = asyncio.get_running_loop()
        started.append(loop.time())
        if stop_at_s is not None:
            loop.call_later(stop_at_s, session.stop)

    outcome = execute(prepared, VirtualClock(), journal_dir=tmp_path, on_start=on_start,
                      handle_signals=False)
    return outcome, started[0]
