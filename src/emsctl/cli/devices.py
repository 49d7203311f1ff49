"""``emsctl devices``: list serial ports that may be stimulators, and the URL for each.

Uses pyserial's port listing (``serial.tools.list_ports``) with USB VID:PID, and guesses the
device type from known USB bridges (a RehaStim2 has an FTDI bridge; openEMSstim boards use
Arduino, CH340 or CP210x bridges). A guess is only a hint: the driver's handshake is what
identifies a device. ``--format json`` prints the same rows as data. Imports pyserial only
when it runs, and never opens a port (listing must not disturb a running session).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import click

__all__ = ["PortRow", "devices", "guess_device", "serial_ports"]

#: (VID, PID or None for any) → (scheme, what it probably is)
KNOWN_BRIDGES: dict[tuple[int, int | None], tuple[str, str]] = {
    (0x0403, 0x6001): ("sciencemode2", "FTDI FT232R bridge: possibly a Hasomed RehaStim2"),
    (0x0403, 0x6010): ("sciencemode2", "FTDI FT2232 bridge: possibly a Hasomed RehaStim2"),
    (0x0403, 0x6014): ("sciencemode2", "FTDI FT232H bridge: possibly a Hasomed RehaStim2"),
    (0x0403, 0x6015): ("sciencemode2", "FTDI FT-X bridge: possibly a Hasomed RehaStim2"),
    (0x2341, None): ("openems", "Arduino board: possibly an openEMSstim"),
    (0x1A86, 0x7523): ("openems", "CH340 bridge: possibly an openEMSstim (Arduino clone)"),
    (0x10C4, 0xEA60): ("openems", "CP210x bridge: possibly an openEMSstim"),
}


@dataclass(frozen=True)
class PortRow:
    """One port as listed."""

    port: str
    description: str
    vid_pid: str | None
    serial_number: str | None
    manufacturer: str | None
    guess: str
    url: str | None
    latency_timer_ms: int | None


def guess_device(vid: int | None, pid: int | None, description: str) -> tuple[str | None, str]:
    """The likely emsctl scheme and a one-line guess for a USB VID:PID and description."""
    if "rehastim" in description.lower():
        return "sciencemode2", "Hasomed RehaStim2"
    if vid is not None:
        for (known_vid, known_pid), (scheme, text) in KNOWN_BRIDGES.items():
            if vid == known_vid and known_pid in (None, pid):
                return scheme, text
    return None, "unknown device"


def _latency_timer_ms(port: str) -> int | None:
    """An FTDI port's latency timer (the spec wants 1 ms; Linux defaults to 16 ms)."""
    name = Path(port).name
    try:
        return int(Path(f"/sys/bus/usb-serial/devices/{name}/latency_timer").read_text())
    except (OSError, ValueError):
        return None


def serial_ports() -> list[PortRow]:
    """Every serial port pyserial can see, with a guess of what is attached."""
    from serial.tools import list_ports  # noqa: PLC0415 - pyserial only for this command

    rows = []
    for info in sorted(list_ports.comports(), key=lambda i: i.device):
        description = info.description or ""
        scheme, guess = guess_device(info.vid, info.pid, f"{description} {info.product or ''}")
        vid_pid = f"{info.vid:04X}:{info.pid:04X}" if info.vid is not None \
            and info.pid is not None else None
        rows.append(PortRow(info.device, description, vid_pid, info.serial_number,
                            info.manufacturer, guess, f"{scheme}://{info.device}" if scheme
                            else None, _latency_timer_ms(info.device)))
    return rows


@click.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="'json' prints the ports as data.")
def devices(fmt: str) -> None:
    """List serial ports that may be stimulators, and the device URL to use for each."""
    rows = serial_ports()
    # issue 5: a `--ble` option adds a BLE scan here (coyote3:// and openems+ble:// rows),
    # as a second list beside `rows`; the serial listing above stays as it is.
    if fmt == "json":
        click.echo(json.dumps({"serial": [asdict(r) for r in rows]}, indent=2))
        return
    if not rows:
        click.echo("No serial ports found. Plug the stimulator in (a RehaStim2 must be in "
                   "ScienceMode2, chosen on its start screen), or try the emulator: "
                   "'emsctl simulate sciencemode2 --pty'.")
    for r in rows:
        ids = f" [{r.vid_pid}]" if r.vid_pid else ""
        click.echo(f"{r.port}: {r.description}{ids} — {r.guess}")
        if r.url:
            click.echo(f"    use: emsctl run --device {r.url}")
        if r.latency_timer_ms is not None and r.latency_timer_ms > 1:
            click.echo(f"    note: FTDI latency timer is {r.latency_timer_ms} ms; 1 ms is "
                       "recommended (/sys/bus/usb-serial/devices/…/latency_timer)")
    click.echo("URLs: sciencemode2:///dev/ttyUSB0 (RehaStim2), openems:///dev/ttyUSB0; any "
               "pyserial URL works after the scheme, e.g. sciencemode2://socket://host:port. "
               "Without hardware: --device sim+sciencemode2.")
