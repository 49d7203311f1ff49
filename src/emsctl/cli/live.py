"""The live view of a running session (rich), its keys, and the plain output for pipes.

In a terminal: program and phase, a progress bar with time left, per-channel amplitude,
frequency and pulse width, intensity, device status and the keys (``+``/``-`` intensity,
space pause/resume, ``q`` or Ctrl-C stop). The terminal is put in cbreak mode so single keys
arrive at once while Ctrl-C still raises SIGINT; it is always restored. Without a terminal, a
plain line per phase.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import termios
import tty
from collections.abc import Iterator
from typing import TYPE_CHECKING, TextIO

import click

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.text import Text

    from ..session import Session, SessionState

__all__ = ["KeyReader", "LiveView", "PlainView", "cbreak"]

KEYS_HELP = "keys: + / - intensity   space pause/resume   q or Ctrl-C stop"
#: Keys that stop the session (Escape too: a stray escape sequence errs on the safe side).
STOP_KEYS = frozenset("qQ\x1b")


def _clock(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{int(seconds // 60):02d}:{int(seconds % 60):02d}"


class LiveView:
    """A rich Live display refreshed from the session state."""

    def __init__(self, title: str, device: str, sites: dict[int, str]) -> None:
        from rich.console import Console  # noqa: PLC0415 - only for the live view
        from rich.live import Live  # noqa: PLC0415

        self.title, self.device, self.sites = title, device, sites
        self.console = Console()
        self.live = Live(console=self.console, refresh_per_second=8, transient=False)
        self._state: SessionState | None = None

    def __enter__(self) -> LiveView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._state is not None:
            self.live.update(self._render(self._state), refresh=True)
        self.live.__exit__(None, None, None)

    def update(self, state: SessionState) -> None:
        """Show ``state`` (called every tick)."""
        self._state = state
        self.live.update(self._render(state))

    def _render(self, state: SessionState) -> RenderableType:
        from rich.console import Group  # noqa: PLC0415
        from rich.progress_bar import ProgressBar  # noqa: PLC0415
        from rich.table import Table  # noqa: PLC0415
        from rich.text import Text  # noqa: PLC0415

        status = "PAUSED" if state.paused else state.status.upper()
        header = Text.assemble((f"{self.title}", "bold"), f"  on {self.device}  ",
                               (f"[{status}]", "bold yellow" if state.paused else "bold green"))
        left = state.duration_s - state.stim_time_s
        progress = Table.grid(padding=(0, 1))
        progress.add_row(
            Text(f"phase {state.phase}"),
            ProgressBar(total=max(state.duration_s, 1e-9), completed=state.stim_time_s, width=30),
            Text(f"{_clock(state.stim_time_s)} / {_clock(state.duration_s)}  "
                 f"({_clock(left)} left)"),
        )
        table = Table(box=None, pad_edge=False)
        for column in ("ch", "site", "mA", "Hz", "µs"):
            table.add_column(column, justify="right" if column in ("mA", "Hz", "µs") else "left")
        for index, sp in enumerate(state.setpoints):
            channel = index + 1
            if channel not in self.sites:
                continue
            on = sp.amplitude_ma > 0
            table.add_row(str(channel), self.sites[channel], f"{sp.amplitude_ma:5.1f}",
                          f"{sp.frequency_hz:5.1f}" if on else "—",
                          f"{sp.pulse_width_us:4.0f}" if on else "—")
        intensity = f"intensity {state.intensity_pct:3.0f} %"
        if state.target_intensity_pct > state.intensity_pct + 0.5:
            intensity += f" → {state.target_intensity_pct:.0f} %"
        parts: list[RenderableType] = [header, progress, table, Text(intensity),
                                       _device_status(state)]
        if state.phase_instructions:
            parts.append(Text(state.phase_instructions.strip(), style="cyan"))
        if state.message:
            parts.append(Text(state.message, style="bold red"))
        parts.append(Text(KEYS_HELP, style="dim"))
        return Group(*parts)


def _device_status(state: SessionState) -> Text:
    """HZ-16: what the device last said and how old that is; "stale" when it is too old."""
    from rich.text import Text  # noqa: PLC0415

    age = state.telemetry_age_s
    if state.telemetry_stale:
        shown = "no report yet" if age is None else f"no report for {age:.1f} s"
        return Text(f"device: STALE ({shown}): '+' is refused", style="bold red")
    if age is None:
        return Text("device: waiting for its first report", style="dim")
    return Text(f"device: ok (last report {age:.1f} s ago)", style="dim")


class PlainView:
    """One line per phase and per event, for pipes and CI."""

    def __init__(self, out: TextIO | None = None) -> None:
        self._phase = ""
        self._message = ""
        self._paused = False
        self._out = out

    def update(self, state: SessionState) -> None:
        """Print a line when the phase, pause state or message changes."""
        if state.phase != self._phase and state.status != "stopped":
            self._phase = state.phase
            peak = max((sp.amplitude_ma for sp in state.setpoints), default=0.0)
            click.echo(f"[{_clock(state.stim_time_s)}] phase {state.phase} "
                       f"(now {peak:.1f} mA)", file=self._out)
        if state.paused != self._paused:
            self._paused = state.paused
            click.echo(f"[{_clock(state.stim_time_s)}] {'paused' if state.paused else 'resumed'}",
                       file=self._out)
        if state.message and state.message != self._message:
            self._message = state.message
            click.echo(f"[{_clock(state.stim_time_s)}] {state.message}", file=self._out)


class KeyReader:
    """Turns key presses on stdin into session controls (attached to the running loop).

    Reads the file descriptor itself: every key that arrived is handled at once. (Reading one
    character from ``sys.stdin`` left the rest of a burst — a ``q`` typed right after a ``-`` —
    in Python's buffer, unseen until the next key press.) A stop key anywhere in a burst wins.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self._fd = sys.stdin.fileno()
        asyncio.get_running_loop().add_reader(self._fd, self._on_keys)

    def _on_keys(self) -> None:
        try:
            data = os.read(self._fd, 256)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # end of input: no more keys will come
            asyncio.get_running_loop().remove_reader(self._fd)
            return
        self.handle(data.decode("utf-8", errors="replace"))

    def handle(self, keys: str) -> None:
        """Apply a burst of keys in order; a stop key anywhere in it stops at once."""
        from ..session import INTENSITY_STEP_PCT  # noqa: PLC0415

        if STOP_KEYS.intersection(keys):
            self.session.stop("stopped", "stopped by the user")
            return
        for key in keys:
            if key == " ":
                self.session.toggle_pause()
            elif key in ("+", "="):
                self.session.change_intensity(INTENSITY_STEP_PCT)
            elif key in ("-", "_"):
                self.session.change_intensity(-INTENSITY_STEP_PCT)


@contextlib.contextmanager
def cbreak() -> Iterator[None]:
    """Single keys without Enter, no echo; Ctrl-C still sends SIGINT. Always restored."""
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
