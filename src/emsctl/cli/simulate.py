"""``emsctl simulate DEVICE --pty``: serve an emulated stimulator on a pseudo-terminal.

Prints the pty's path as the first line on stdout (flushed, so a script or test can read it),
then runs the emulation in real time until SIGINT or SIGTERM: a rich live view of the outputs
when stdout is a terminal, otherwise one plain line per event (``t=<monotonic s> <text>``, the
loop's monotonic clock, comparable with ``time.monotonic()`` in another process). ``--trace``
logs every frame in both directions. Any serial program can open the path as if it were the
device. On exit the emulated output is zeroed and the pty closed.
"""

from __future__ import annotations

import asyncio
import math
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

if TYPE_CHECKING:
    from ..simulator.pty import PtyDeviceOptions, PtyServer

__all__ = ["simulate"]


@click.command()
@click.argument("device_name", metavar="DEVICE", default="sciencemode2")
@click.option("--pty", "use_pty", is_flag=True, help="Serve on a new pseudo-terminal (required).")
@click.option("--trace", "trace_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Log every frame (both directions) to this file.")
@click.option("--watchdog-s", "watchdog", default=None, metavar="SECONDS|log-only",
              help="Device watchdog (default: the protocol's, 1.2 s for sciencemode2); "
                   "'log-only' never expires and only logs gaps.")
@click.option("--profile", type=click.Choice(["strict", "lenient"]), default="strict",
              show_default=True, help="How tolerant the device is of clients in the field.")
@click.option("--impedance-ohm", type=click.FloatRange(1.0, 1e6), default=1000.0,
              show_default=True, help="Electrode–skin impedance on every channel.")
@click.option("--set", "settings", multiple=True, metavar="NAME=VALUE",
              help="An emulation setting, repeatable (openems: ma_at_100, frequency_hz, "
                   "pulse_width_us, boot_s, firmware, debug).")
def simulate(device_name: str, use_pty: bool, trace_path: Path | None, watchdog: str | None,
             profile: str, impedance_ohm: float, settings: tuple[str, ...]) -> None:
    """Serve an emulated DEVICE (sciencemode2, openems) on a pty until Ctrl-C or SIGTERM."""
    from ..errors import InputError  # noqa: PLC0415
    from ..simulator.pty import PTY_DEVICES, PtyDeviceOptions  # noqa: PLC0415

    if not use_pty:
        raise InputError("only --pty is supported: 'emsctl simulate sciencemode2 --pty'")
    if device_name not in PTY_DEVICES:
        raise InputError(f"no emulation called '{device_name}'; known: "
                         f"{', '.join(sorted(PTY_DEVICES))}")
    extras: dict[str, str] = {}
    for item in settings:
        name, eq, value = item.partition("=")
        if not eq or not name:
            raise InputError(f"--set takes NAME=VALUE, not {item!r}")
        extras[name] = value
    options = PtyDeviceOptions(watchdog_s=_watchdog(watchdog), profile=profile,
                               impedance_ohm=impedance_ohm, extras=extras)
    trace_file: TextIO | None = None
    try:
        if trace_path is not None:
            try:
                trace_file = trace_path.open("w", encoding="utf-8")
            except OSError as exc:
                raise InputError(f"cannot write the trace file {trace_path}: {exc}") from exc
        live = sys.stdout.isatty()
        asyncio.run(_serve(device_name, options, trace_file, live))
    finally:
        if trace_file is not None:
            trace_file.close()


def _watchdog(text: str | None) -> float | None:
    from ..errors import InputError  # noqa: PLC0415

    if text is None:
        return None
    if text.replace("_", "-") == "log-only":
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"--watchdog-s must be seconds or 'log-only', not {text!r}") from None
    if not (math.isfinite(value) and 0 < value <= 60):
        raise InputError(f"--watchdog-s must be within 0–60 s, got {text}")
    return value


async def _serve(name: str, options: PtyDeviceOptions, trace_file: TextIO | None,
                 live: bool) -> None:
    from ..simulator.pty import PtyServer  # noqa: PLC0415
    loop = asyncio.get_running_loop()
    lines: list[str] = []

    def log(text: str) -> None:
        line = f"t={loop.time():.6f} {text}"
        if live:
            lines.append(line)
            del lines[:-8]
        else:
            click.echo(line)
            sys.stdout.flush()

    server = PtyServer(name, options, trace_file=trace_file, log=log)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    path = server.open()
    click.echo(path)
    sys.stdout.flush()
    if not live:
        click.echo(f"t={loop.time():.6f} serving {name} on {path}; SIGINT or SIGTERM stops")
        sys.stdout.flush()
        await server.serve_until(stop)
    else:
        await _serve_live(server, stop, lines, name, path)
    click.echo(f"t={loop.time():.6f} stopped: output zero, pty closed", err=live)


async def _serve_live(server: PtyServer, stop: asyncio.Event, lines: list[str], name: str,
                      path: str) -> None:
    from rich.console import Group  # noqa: PLC0415 - only in a terminal
    from rich.live import Live  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    def render() -> Group:
        table = Table(title=f"emulated {name} on {path}", expand=False)
        for column in ("ch", "mA set", "mA delivered", "µs", "Hz"):
            table.add_column(column, justify="right")
        for channel, out in enumerate(server.device.outputs(), start=1):
            style = "bold green" if out.is_on else "dim"
            table.add_row(str(channel), f"{out.amplitude_ma:g}", f"{out.delivered_ma:.1f}",
                          f"{out.pulse_width_us:g}", f"{out.frequency_hz:.2f}", style=style)
        return Group(table, Text(server.device.status()), Text("\n".join(lines), style="dim"),
                     Text("Ctrl-C stops", style="italic"))

    with Live(render(), refresh_per_second=10, transient=False) as view:
        waiter = asyncio.ensure_future(server.serve_until(stop))
        while not waiter.done():
            view.update(render())
            await asyncio.sleep(0.1)
        await waiter
