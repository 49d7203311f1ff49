"""The live view of a running session (rich), its keys, and the plain output for pipes.

In a terminal: program and phase, the time left in the phase and in the program, a progress
bar, per-channel amplitude, frequency and pulse width, intensity, device status and the keys
(``+``/``-`` intensity, space pause/resume, ``q`` or Ctrl-C stop). In the last 10 s of the
guidance before the first current, a countdown ("current starts in 10 s — q stops"); it adds no
time to the program. A key that cannot do anything (``+`` at 100 %) says so. The view is
cleared when the session ends: the final screen is printed in its place. The terminal is put in
cbreak mode so single keys arrive at once while Ctrl-C still raises SIGINT; it is always
restored. Without a terminal, a plain line per phase.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import sys
import termios
import time
import tty
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TextIO

import click

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.text import Text

    from ..plan import PhaseSpan, Plan
    from ..session import Session, SessionState

__all__ = ["KeyReader", "LiveView", "PlainView", "cbreak"]

KEYS_HELP = "keys: + / - intensity   space pause/resume   q or Ctrl-C stop"
#: Keys that stop the session (Escape too: a stray escape sequence errs on the safe side).
STOP_KEYS = frozenset("qQ\x1b")
#: The countdown to the first current starts this long before it (program seconds).
COUNTDOWN_S = 10.0
#: A key's feedback ("already at 100 %") stays on screen this long (wall seconds).
NOTICE_S = 3.0


def _clock(seconds: float) -> str:
    seconds = max(0.0, seconds)
    return f"{int(seconds // 60):02d}:{int(seconds % 60):02d}"


def _clock_left(seconds: float) -> str:
    """Time left, rounded up: "00:01 left" until it is over, and elapsed + left = total."""
    return _clock(math.ceil(max(0.0, seconds) - 1e-9))


def first_current_s(plan: Plan | None) -> float | None:
    """Program time of the first current: the start of the first stim phase after guidance
    (None when the program starts with current, or has no plan)."""
    if plan is None or not plan.phases or plan.phases[0].kind == "stim":
        return None
    return next((span.start_s for span in plan.phases if span.kind == "stim"), None)


def countdown_s(plan: Plan | None, stim_time_s: float) -> int | None:
    """Whole seconds until the first current, in the last :data:`COUNTDOWN_S` before it."""
    start_s = first_current_s(plan)
    if start_s is None:
        return None
    left_s = start_s - stim_time_s
    if not 0.0 < left_s <= COUNTDOWN_S:
        return None
    return max(1, math.ceil(left_s - 1e-9))


def phase_span(plan: Plan | None, stim_time_s: float) -> PhaseSpan | None:
    """The phase running at ``stim_time_s`` (None without a plan)."""
    return None if plan is None else plan.phase_at(stim_time_s)


class LiveView:
    """A rich Live display refreshed from the session state.

    Args:
        title: the program's title and name. device: the device URL. sites: channel → site.
        plan: the running plan (phase times, the countdown to the first current).
        clock: the session's clock; a paced virtual clock's speed is shown, and said when the
            machine cannot keep up with it.
    """

    def __init__(self, title: str, device: str, sites: dict[int, str], *,
                 plan: Plan | None = None, clock: Any = None) -> None:
        from rich.console import Console  # noqa: PLC0415 - only for the live view
        from rich.live import Live  # noqa: PLC0415

        self.title, self.device, self.sites = title, device, sites
        self.plan, self.clock = plan, clock
        self.console = Console()
        # transient: the view goes when the session ends; the final screen takes its place
        self.live = Live(console=self.console, refresh_per_second=8, transient=True)
        self._state: SessionState | None = None
        self._notice = ""
        self._notice_until = 0.0

    def __enter__(self) -> LiveView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.__exit__(None, None, None)

    def update(self, state: SessionState) -> None:
        """Show ``state`` (called every tick)."""
        self._state = state
        if state.status == "stopped":
            return  # the final screen follows; no "[STOPPED]" with the bar short of the end
        self.live.update(self._render(state))

    def notice(self, text: str) -> None:
        """Show ``text`` for a few seconds (feedback to a key that changed nothing)."""
        self._notice, self._notice_until = text, time.monotonic() + NOTICE_S
        if self._state is not None and self._state.status != "stopped":
            self.live.update(self._render(self._state), refresh=True)

    def _speed(self) -> str:
        speed = getattr(self.clock, "speed", None)
        if not getattr(self.clock, "is_virtual", False):
            return ""
        if speed is None:
            return "  simulated, as fast as possible"
        text = f"  simulated, {speed:g}×"
        achieved = getattr(self.clock, "achieved_speed", None)
        if getattr(self.clock, "at_maximum", False) and achieved:
            text += f" asked, running at this machine's maximum: {achieved:,.0f}×"
        return text

    def _render(self, state: SessionState) -> RenderableType:
        from rich.console import Group  # noqa: PLC0415
        from rich.progress_bar import ProgressBar  # noqa: PLC0415
        from rich.table import Table  # noqa: PLC0415
        from rich.text import Text  # noqa: PLC0415

        status = "PAUSED" if state.paused else state.status.upper()
        header = Text.assemble((f"{self.title}", "bold"), f"  on {self.device}  ",
                               (f"[{status}]", "bold yellow" if state.paused else "bold green"),
                               (self._speed(), "dim"))
        left = state.duration_s - state.stim_time_s
        span = phase_span(self.plan, state.stim_time_s)
        phase_line = Text.assemble("phase ", (state.phase, "bold"))
        if span is not None and span.name == state.phase:
            no_output = "  (no current)" if span.kind != "stim" else ""
            phase_line.append(f"{no_output}  {_clock_left(span.end_s - state.stim_time_s)} "
                              "left in this phase")
        progress = Table.grid(padding=(0, 1))
        progress.add_row(
            ProgressBar(total=max(state.duration_s, 1e-9), completed=state.stim_time_s, width=30),
            Text(f"{_clock(state.stim_time_s)} / {_clock(state.duration_s)}  "
                 f"({_clock_left(left)} left in the program)"),
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
        intensity_line = Text(intensity)
        if self._notice and time.monotonic() < self._notice_until:
            intensity_line.append(f"   {self._notice}", style="bold yellow")
        parts: list[RenderableType] = [header, phase_line, progress, table, intensity_line,
                                       _device_status(state)]
        counting = None if state.paused else countdown_s(self.plan, state.stim_time_s)
        if counting is not None:
            parts.append(Text(f"current starts in {counting} s — q stops",
                              style="bold yellow"))
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
    if age is not None:
        age = max(0.0, age) + 0.0  # never "-0.0 s ago": a report in this tick is 0.0 s old
    if state.telemetry_stale:
        shown = "no report yet" if age is None else f"no report for {age:.1f} s"
        return Text(f"device: STALE ({shown}): '+' is refused", style="bold red")
    if age is None:
        return Text("device: waiting for its first report", style="dim")
    return Text(f"device: ok (last report {age:.1f} s ago)", style="dim")


class PlainView:
    """One line per phase and per event, for pipes and CI; every line starts ``[mm:ss]``."""

    def __init__(self, out: TextIO | None = None, *, plan: Plan | None = None) -> None:
        self._phase = ""
        self._message = ""
        self._paused = False
        self._counted = False
        self._out = out
        self.plan = plan

    def update(self, state: SessionState) -> None:
        """Print a line when the phase, pause state or message changes."""
        if state.phase != self._phase and state.status != "stopped":
            self._phase = state.phase
            peak = max((sp.amplitude_ma for sp in state.setpoints), default=0.0)
            span = phase_span(self.plan, state.stim_time_s)
            length = "" if span is None else f", {_clock(span.end_s - span.start_s)} long"
            click.echo(f"[{_clock(state.stim_time_s)}] phase {state.phase} "
                       f"(now {peak:.1f} mA{length})", file=self._out)
        counting = countdown_s(self.plan, state.stim_time_s)
        if counting is not None and not self._counted and state.status != "stopped":
            self._counted = True
            click.echo(f"[{_clock(state.stim_time_s)}] current starts in {counting} s — "
                       "Ctrl-C stops", file=self._out)
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

    def __init__(self, session: Session, notify: Callable[[str], None] | None = None) -> None:
        self.session = session
        self.notify = notify
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
                self._feedback(+1)
                self.session.change_intensity(INTENSITY_STEP_PCT)
            elif key in ("-", "_"):
                self._feedback(-1)
                self.session.change_intensity(-INTENSITY_STEP_PCT)

    def _feedback(self, direction: int) -> None:
        """Say so when a key cannot change anything: '+' at 100 %, '-' at 0 %."""
        state = getattr(self.session, "state", None)
        if self.notify is None or state is None:
            return
        target = state.target_intensity_pct
        if direction > 0 and target >= 100.0:
            self.notify("already at 100 %: the program's full level (+ does nothing)")
        elif direction < 0 and target <= 0.0:
            self.notify("already at 0 %: no current (q stops the session)")


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
