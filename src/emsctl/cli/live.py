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
import sys
import termios
import tty
from collections.abc import Iterator
from typing import TYPE_CHECKING, TextIO

import click

if TYPE_CHECKING:
    from rich.console import RenderableType

    from ..session import Session, SessionState

__all__ = ["KeyReader", "LiveView", "PlainView", "cbreak"]

KEYS_HELP = "keys: + / - intensity   space pause/resume   q or Ctrl-C stop"


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
        parts: list[RenderableType] = [header, progress, table, Text(intensity)]
        if state.phase_instructions:
            parts.append(Text(state.phase_instructions.strip(), style="cyan"))
        if state.message:
            parts.append(Text(state.message, style="bold red"))
        parts.append(Text(KEYS_HELP, style="dim"))
        return Group(*parts)


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
    """Turns key presses on stdin into session controls (attached to the running loop)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._fd = sys.stdin.fileno()
        asyncio.get_running_loop().add_reader(self._fd, self._on_key)

    def _on_key(self) -> None:
        from ..session import INTENSITY_STEP_PCT  # noqa: PLC0415

        try:
            data = sys.stdin.read(1)
        except (OSError, ValueError):
            data = ""
        if data in ("q", "Q", "\x1b"):
            self.session.stop("stopped", "stopped by the user")
        elif data == " ":
            self.session.toggle_pause()
        elif data in ("+", "="):
            self.session.change_intensity(INTENSITY_STEP_PCT)
        elif data in ("-", "_"):
            self.session.change_intensity(-INTENSITY_STEP_PCT)
        elif data == "":
            asyncio.get_running_loop().remove_reader(self._fd)


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
