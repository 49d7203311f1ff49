"""``emsctl devices``: list serial ports (and, with ``--ble``, BLE devices) that may be stimulators.

Uses pyserial's port listing (``serial.tools.list_ports``) with USB VID:PID, and guesses the
device type from known USB bridges (a RehaStim2 has an FTDI bridge; a P24 is an STM32 USB CDC
port with the chip maker's generic id 0483:5740, which other devices share, so such a port is
only a candidate; openEMSstim boards use Arduino, CH340 or CP210x bridges). A guess is only a
hint: the driver's handshake is what identifies a device. ``--format json`` prints the same rows
as data. Imports pyserial only when it runs, and never opens a port (listing must not disturb a
running session).
``--ble`` scans with bleak (imported only then) and recognises devices by advertised name or
service; a machine without Bluetooth gets one sentence on stderr and exit code 1, no traceback.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from pathlib import Path

import click

from .common import json_text

__all__ = ["BleRow", "PortRow", "ble_devices", "devices", "guess_device", "serial_ports"]

#: (VID, PID or None for any) → (scheme, what it probably is)
KNOWN_BRIDGES: dict[tuple[int, int | None], tuple[str, str]] = {
    (0x0403, 0x6001): ("sciencemode2", "FTDI FT232R bridge: possibly a Hasomed RehaStim2"),
    (0x0403, 0x6010): ("sciencemode2", "FTDI FT2232 bridge: possibly a Hasomed RehaStim2"),
    (0x0403, 0x6014): ("sciencemode2", "FTDI FT232H bridge: possibly a Hasomed RehaStim2"),
    (0x0403, 0x6015): ("sciencemode2", "FTDI FT-X bridge: possibly a Hasomed RehaStim2"),
    # the STM32 chip maker's generic virtual-COM-port id: other devices share it, so a port
    # with it is only a candidate; 'sciencemode4://' asks each for its device id
    (0x0483, 0x5740): ("sciencemode4", "STM32 virtual COM port (a generic USB id other devices "
                       "share): a candidate Hasomed P24"),
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


@dataclass(frozen=True)
class BleRow:
    """One Bluetooth LE device heard during a scan."""

    address: str
    name: str | None
    rssi_dbm: int | None
    guess: str
    url: str | None


#: scheme → (what it is, the parameters its URL needs besides the address)
BLE_KINDS: dict[str, tuple[str, str]] = {
    "coyote3": ("DG-LAB Coyote V3",
                "?ma_per_step=<your calibration>&frequency_balance=<0-255>"
                "&intensity_balance=<0-255>"),
}


def ble_devices(scan_s: float) -> tuple[list[BleRow], str | None]:
    """Scan for ``scan_s`` seconds; the rows, or no rows and one sentence saying why not."""
    from ..drivers.links.ble import scan  # noqa: PLC0415 - bleak only for --ble
    from ..errors import DeviceError  # noqa: PLC0415

    try:
        found = asyncio.run(scan(scan_s))
    except DeviceError as exc:
        return [], str(exc)
    rows = []
    for r in found:
        kind = BLE_KINDS.get(r.protocol or "")
        guess = kind[0] if kind else "not a device emsctl drives"
        url = f"{r.protocol}://{r.address}{kind[1]}" if kind else None
        rows.append(BleRow(r.address, r.name, r.rssi_dbm, guess, url))
    return rows, None


#: The emulated devices, in the order `emsctl devices` lists them.
EMULATED = ("sim", "sim+sciencemode2", "sim+sciencemode4", "sim+coyote3", "sim+openems",
            "sim+openems+ble")


def emulated_devices() -> list[tuple[str, str]]:
    """Each emulated device's URL and what it declares by itself ('' when nothing)."""
    from ..devices import open_device  # noqa: PLC0415

    rows = []
    for url in EMULATED:
        declared = open_device(url).declared_scaling  # made, never connected
        rows.append((url, "&".join(f"{k}={float(v):g}" for k, v in declared.items())))
    return rows


@click.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="'json' prints the ports as data.")
@click.option("--ble", is_flag=True, help="Also scan for Bluetooth LE stimulators (Coyote V3).")
@click.option("--scan-s", type=click.FloatRange(0.5, 60.0), default=5.0, show_default=True,
              help="How long the Bluetooth LE scan listens, in seconds.")
@click.pass_context
def devices(ctx: click.Context, fmt: str, ble: bool, scan_s: float) -> None:
    """List serial ports (and with --ble, Bluetooth LE devices) that may be stimulators."""
    rows = serial_ports()
    ble_rows, ble_error = ble_devices(scan_s) if ble else ([], None)
    if fmt == "json":
        data: dict[str, object] = {
            "serial": [asdict(r) for r in rows],
            "emulated": [{"url": url, "declares": declared}
                         for url, declared in emulated_devices()]}
        if ble:
            data["ble"] = [asdict(r) for r in ble_rows]
            data["ble_error"] = ble_error
        click.echo(json_text(data))
        if ble_error is not None:
            ctx.exit(1)
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
    candidates = [r.port for r in rows if r.url and r.url.startswith("sciencemode4://")]
    if candidates:
        click.echo(f"P24 candidates (USB id 0483:5740): {', '.join(candidates)}; "
                   "'sciencemode4://' without a port opens the one that answers as a P24 and "
                   "refuses if none or several do.")
    click.echo("URLs: sciencemode2:///dev/ttyUSB0 (RehaStim2), sciencemode4:///dev/ttyACM0 "
               "(P24), openems:///dev/ttyUSB0?ma_at_100=…&frequency_hz=…&pulse_width_us=…; any "
               "pyserial URL works after the scheme, e.g. sciencemode2://socket://host:port.")
    click.echo("Without hardware, emulated devices that need no parameters (docs/devices.md):")
    for url, declared in emulated_devices():
        click.echo(f"  --device {url:<17} declares {declared}" if declared
                   else f"  --device {url}")
    if ble:
        _echo_ble(ctx, ble_rows, ble_error)


def _echo_ble(ctx: click.Context, rows: list[BleRow], error: str | None) -> None:
    if error is not None:
        click.echo(f"emsctl: {error}", err=True)
        ctx.exit(1)
    if not rows:
        click.echo("No Bluetooth LE devices heard. Switch the Coyote on (it advertises as "
                   "47L121000) or try the emulator: --device sim+coyote3.")
    for r in rows:
        rssi = f", {r.rssi_dbm} dBm" if r.rssi_dbm is not None else ""
        click.echo(f"{r.address}: {r.name or '(no name)'}{rssi} — {r.guess}")
        if r.url:
            click.echo(f"    use: emsctl run --device '{r.url}'")
