"""Measuring over a real pty: an emulation in another process, and the floor beside it.

:class:`PtyEmulator` runs ``emsctl simulate FAMILY --pty [--trace FILE]``; the trace stamps each
frame with the emulator's CLOCK_MONOTONIC, the same clock as ours, so a benchmark can tell when
the emulator read a frame. :class:`PtyFloor` is what such a figure is compared with: a child
process blocked in ``read()`` on a pty, stamping when the bytes of one frame arrive.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
import tty
from pathlib import Path

from .harness import emsctl_command

__all__ = ["PtyEmulator", "PtyFloor"]

_FLOOR_CHILD = textwrap.dedent("""
    import os, sys, time
    fd = int(sys.argv[1])
    n = int(sys.argv[2])
    while True:
        got = b""
        while len(got) < n:
            chunk = os.read(fd, n - len(got))
            if not chunk:
                sys.exit(0)
            got += chunk
        os.write(1, f"{time.monotonic():.9f}\\n".encode())
""")


class PtyEmulator:
    """``emsctl simulate FAMILY --pty [--trace FILE]`` in its own process.

    Its event log goes to a file, not a pipe: a pipe nobody drains fills up and would freeze
    the emulator in the middle of a run.

    Args:
        folder: where the trace and the log go.
        family: the emulation (``sciencemode2``, ``sciencemode4``).
        trace: whether the emulator stamps every frame (needed by :meth:`read_after`).

    Raises:
        RuntimeError: the emulator did not start or printed no port.
    """

    def __init__(self, folder: Path, family: str, *, trace: bool = True) -> None:
        self.trace = folder / "trace.txt" if trace else None
        extra = ["--trace", str(self.trace)] if self.trace is not None else []
        log_path = folder / "log.txt"
        self.log = log_path.open("w", encoding="utf-8")
        self.proc = subprocess.Popen([*emsctl_command(), "simulate", family, "--pty", *extra],
                                     stdout=self.log, stderr=subprocess.DEVNULL, text=True)
        deadline = time.monotonic() + 10.0
        while "powered on" not in log_path.read_text(encoding="utf-8"):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"emsctl simulate {family} did not start")
            time.sleep(0.01)
        self.path = log_path.read_text(encoding="utf-8").splitlines()[0].strip()
        if not self.path.startswith("/dev/"):
            raise RuntimeError(f"emsctl simulate printed {self.path!r}")

    def read_after(self, frame_name: str, t0_s: float, timeout_s: float = 2.0) -> float:
        """Monotonic time the emulator decoded the first host frame ``frame_name`` (as its
        trace names it) after ``t0_s``.

        Raises:
            RuntimeError: no such frame within ``timeout_s``.
        """
        assert self.trace is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in self.trace.read_text(encoding="utf-8").splitlines():
                if line.endswith(f"| {frame_name}") and "host→device" in line:
                    t_s = float(line.split()[0])
                    if t_s >= t0_s:
                        return t_s
            time.sleep(0.002)
        raise RuntimeError(f"the emulator never read the {frame_name} frame")

    def wait_for_log(self, fragment: str, timeout_s: float = 5.0) -> None:
        """Wait until the emulator's last event line contains ``fragment`` (e.g. until a
        RehaStim2 whose client left announces itself again with Init).

        Raises:
            RuntimeError: it did not within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            lines = Path(self.log.name).read_text(encoding="utf-8").splitlines()
            if lines and fragment in lines[-1]:
                return
            time.sleep(0.01)
        raise RuntimeError(f"the emulator never logged {fragment!r}")

    def close(self) -> None:
        """Stop the emulator."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class PtyFloor:
    """A child process blocked in read() on a pty; we write ``frame`` and it stamps the read.

    Args:
        frame: the bytes written for each sample (the child reads as many).
    """

    def __init__(self, frame: bytes) -> None:
        self.frame = frame
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.proc = subprocess.Popen([sys.executable, "-c", _FLOOR_CHILD, str(self.master),
                                      str(len(frame))], pass_fds=(self.master,),
                                     stdout=subprocess.PIPE, text=True)

    def sample_ms(self) -> float:
        """One write → read, in ms."""
        assert self.proc.stdout is not None
        t0 = time.monotonic()
        os.write(self.slave, self.frame)
        return (float(self.proc.stdout.readline()) - t0) * 1000

    def close(self) -> None:
        """Stop the child and close the pty."""
        self.proc.kill()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)
