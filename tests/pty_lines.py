"""Reading the plain output of `emsctl simulate … --pty` from a test (shared by pty tests)."""

from __future__ import annotations

import re
import subprocess
import time

#: One plain line of the emulator: ``t=<monotonic s> <text>``.
LINE = re.compile(r"^t=(?P<t>[0-9.]+) (?P<text>.*)$")
#: Channel 1's output in such a line.
OUTPUT = re.compile(r"ch1 (?P<ma>[0-9.]+) mA")


def lines_until(proc: subprocess.Popen[str], pattern: str, timeout_s: float
                ) -> list[tuple[float, str]]:
    """Read the emulator's plain lines until one contains ``pattern``; fail after the timeout."""
    assert proc.stdout is not None
    seen: list[tuple[float, str]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        match = LINE.match(proc.stdout.readline().strip())
        if match:
            seen.append((float(match["t"]), match["text"]))
            if pattern in match["text"]:
                return seen
    raise AssertionError(f"no {pattern!r} within {timeout_s} s; saw {seen[-5:]}")
