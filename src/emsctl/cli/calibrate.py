"""``emsctl calibrate``: find ST, MT and TOL on one channel and site, and save them.

Keys: ``f`` I feel it (ST), ``t`` I see a twitch (MT), space, ``s`` or ``q`` too much (TOL, output
to zero at once); Ctrl-C aborts (zero, nothing saved). On the simulator ``--virtual-user
ST,MT,TOL`` answers instead of a person and ``--speed`` runs in virtual time; the report then
also says how fast the simulated output reached zero after "too much". Exit codes: 0 saved,
1 nothing saved (no twitch, ceiling, fault), 2 bad input or a gate, 130 aborted.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click

from .common import FiniteFloat, json_text, limits_option, load_limits
from .words import TERMS, term_lines, wrap

if TYPE_CHECKING:
    from ..contract import Driver

__all__ = ["calibrate"]

_KEYS = {"f": "feel", "t": "twitch", " ": "too_much", "s": "too_much", "q": "too_much",
         "\x1b": "too_much"}
KEYS_HELP = "keys: f feel it · t twitch · space/s/q too much · Ctrl-C abort"
#: P8: train-mode calibration starts from the MT measured at 8 Hz / 150 µs.
BASE_FREQUENCY_HZ, BASE_PULSE_WIDTH_US = 8.0, 150.0
CTF_OFFSET_HZ, CTF_FREQUENCY_CAP_HZ = 30.0, 80.0


@click.command()
@click.option("--device", "-d", "device_url", default="sim", envvar="EMSCTL_DEVICE",
              show_default=True, help="Device URL, e.g. sim or sciencemode2:///dev/ttyUSB0.")
@click.option("--channel", "-c", type=click.IntRange(1, 8), required=True, help="Channel.")
@click.option("--site", default=None, help="Electrode site, e.g. calf-left (default: the "
              "program's site for this channel).")
@click.option("--program", "program_name", default=None,
              help="Calibrate at this program's calibration frequency and pulse width: a "
              "built-in name or the path of a program file.")
@click.option("--frequency-hz", type=FiniteFloat(0, low_open=True), default=None,
              help="Frequency (default 8 Hz).")
@click.option("--pulse-width-us", type=FiniteFloat(0, low_open=True), default=None,
              help="Pulse width (default 250 µs).")
@click.option("--electrode-area-cm2", type=FiniteFloat(0, low_open=True), default=None,
              help="Smallest pad area (default: the program's, else 4 cm², the smallest pad "
              "allowed: limit L13, electrode area).")
@click.option("--pads", "pad_set", default="default", show_default=True,
              help="Name of the pad set. Sessions must use the same one: other pads change "
              "the current per cm², so the thresholds would no longer hold (hazard HZ-14, "
              "invalid calibration).")
@click.option("--expert", is_flag=True, help="Needed to calibrate for expert programs.")
@click.option("--virtual-user", default=None, metavar="ST,MT,TOL",
              help="Simulator only: a scripted person with these thresholds in mA.")
@click.option("--speed", default=None, metavar="N|max", help="Simulator only: virtual time.")
@click.option("--rescreen", is_flag=True, help="Answer the safety questionnaire again.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@limits_option
def calibrate(device_url: str, channel: int, site: str | None, program_name: str | None,
              frequency_hz: float | None, pulse_width_us: float | None,
              electrode_area_cm2: float | None, pad_set: str, expert: bool,
              virtual_user: str | None, speed: str | None, rescreen: bool, fmt: str,
              limits_path: Path | None) -> None:
    """Find the sensory (ST), motor (MT) and tolerance (TOL) thresholds of one channel."""
    from ..devices import open_device  # noqa: PLC0415
    from ..errors import InputError  # noqa: PLC0415
    from ..profile import load_profile, profile_path  # noqa: PLC0415
    from ..runner import make_clock  # noqa: PLC0415
    from ..virtual_user import parse_virtual_user  # noqa: PLC0415
    from .gates import pass_gates  # noqa: PLC0415

    driver = open_device(device_url)
    clock = make_clock(driver, speed)
    if virtual_user is not None and not driver.simulated:
        raise InputError("--virtual-user only works with the simulator")
    user = parse_virtual_user(virtual_user) if virtual_user is not None else None
    interactive = sys.stdin.isatty()
    if user is None and not interactive:
        raise InputError("calibration needs a terminal for its keys (or --virtual-user on the "
                         "simulator)")
    limits = load_limits(limits_path)
    path = profile_path()
    profile = load_profile(path)
    now = datetime.now(UTC)
    settings, site, cap_ma = _settings(profile, driver, channel, site, program_name,
                                       frequency_hz, pulse_width_us, electrode_area_cm2,
                                       pad_set, expert, limits, now)
    settings.check(limits)
    # the person's cap while TOL is unknown goes to the device before anything is asked: one
    # that could go past it whatever it is sent (openEMSstim) refuses here (HZ-01, HZ-12)
    driver.set_channel_caps_ma({channel: cap_ma})
    profile, _ = pass_gates(profile, [site], driver.simulated, interactive=interactive,
                         rescreen=rescreen, now=now, path=path)
    _err("\n".join(wrap(f"Calibrating channel {channel} ({site}, pads '{pad_set}') at "
                        f"{settings.frequency_hz:g} Hz / {settings.pulse_width_us:g} µs, "
                        f"{settings.mode} mode, at most {settings.ceiling_ma:g} mA.")))
    for line in term_lines(TERMS):  # the three terms the lines below report, explained once
        _err(line)
    if not driver.simulated:
        click.confirm("Pads placed, sitting or lying down, and ready to start at 0 mA?",
                      abort=True, err=True)
    result, zero_ms = clock.run(_run(driver, settings, limits, user, interactive))
    data: dict[str, Any] = {**asdict(result), "complete": result.complete, "site": site,
                            "channel": channel, "pad_set": pad_set,
                            "frequency_hz": settings.frequency_hz,
                            "pulse_width_us": settings.pulse_width_us,
                            "output_zero_after_too_much_ms": zero_ms, "saved_to": None}
    if result.complete:
        data["saved_to"], data["profile_version"] = _save(
            path, driver, channel, site, pad_set, settings, result)
    _report(data, fmt)
    sys.exit(result.exit_code)


def _err(text: str) -> None:
    click.echo(text, err=True)


def _settings(profile: Any, driver: Driver, channel: int, site: str | None,
              program_name: str | None, frequency_hz: float | None,
              pulse_width_us: float | None, area_cm2: float | None, pad_set: str, expert: bool,
              limits: Any, now: datetime) -> tuple[Any, str, float]:
    """The calibration settings, the site, and the person's cap on the channel (the ceiling
    before the device's own maximum lowers it)."""
    from ..calibration import CalibrationSettings  # noqa: PLC0415
    from ..errors import InputError  # noqa: PLC0415
    from ..loader import load_program  # noqa: PLC0415
    from ..profile import CALIBRATION_CEILING_MA  # noqa: PLC0415
    from ..sites import check_channel_sites  # noqa: PLC0415

    ceiling_ma = min(CALIBRATION_CEILING_MA, limits.peak_ma)
    mode: Literal["ramp", "trains"] = "ramp"
    extra: dict[str, Any] = {}
    if program_name is not None:
        if frequency_hz is not None or pulse_width_us is not None:
            raise InputError("give either --program or --frequency-hz/--pulse-width-us")
        from ..fit import fit_program  # noqa: PLC0415

        # the width the device runs the program at: a fitted program is calibrated at its
        # fitted width, so the thresholds are the person's at the width that is delivered
        program = fit_program(load_program(program_name).program, driver.capabilities).program
        chan = next((c for c in program.channels if c.id == channel), None)
        if chan is None:
            raise InputError(f"'{program.name}' has no channel {channel}")
        site = site or chan.site
        if site != chan.site:
            raise InputError(f"'{program.name}' puts channel {channel} on {chan.site}, not {site}")
        frequency_hz = program.calibration_frequency_hz
        pulse_width_us = program.calibration_pulse_width_us
        area_cm2 = area_cm2 or chan.electrode_area_cm2
        ceiling_ma = min(ceiling_ma, chan.max_amplitude_ma)
        if program.expert and not expert:
            raise InputError(f"'{program.name}' is an expert program; calibrating for it "
                             "needs --expert")
        if program.purpose == "training":
            if profile.ctf is None:
                raise InputError(f"'{program.name}' needs a cramp threshold frequency measured "
                                 "by a clinician in your profile (section [ctf])")
            frequency_hz = min(profile.ctf.frequency_hz + CTF_OFFSET_HZ, CTF_FREQUENCY_CAP_HZ)
            base = _base_calibration(profile, driver, channel, site, pad_set, limits, now)
            mode = "trains"
            extra = {"start_ma": base.mt_ma, "known_st_ma": base.st_ma,
                     "known_mt_ma": base.mt_ma, "max_duration_s": 300.0}
    if site is None:
        raise InputError("--site is needed (or --program to take the program's site)")
    try:
        check_channel_sites(site, None)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    frequency_hz = 8.0 if frequency_hz is None else frequency_hz
    pulse_width_us = 250.0 if pulse_width_us is None else pulse_width_us
    cap_ma = ceiling_ma
    ceiling_ma = min(ceiling_ma, driver.capabilities.amplitude_max_ma)
    return CalibrationSettings(channel, frequency_hz, pulse_width_us, area_cm2 or 4.0,
                               ceiling_ma, mode=mode, **extra), site, cap_ma


def _base_calibration(profile: Any, driver: Driver, channel: int, site: str, pad_set: str,
                      limits: Any, now: datetime) -> Any:
    from ..errors import InputError  # noqa: PLC0415
    from ..profile import CALIBRATION_MAX_AGE, in_future  # noqa: PLC0415
    from ..thresholds import device_key  # noqa: PLC0415

    for entry in profile.find(device_key(driver), channel, site, pad_set):
        if (entry.measured_at(BASE_FREQUENCY_HZ, BASE_PULSE_WIDTH_US)
                and not in_future(entry.measured_utc, now)
                and now - entry.measured_utc <= CALIBRATION_MAX_AGE):
            return entry
    raise InputError(
        f"train-mode calibration starts from the MT at 8 Hz / 150 µs; first run 'emsctl "
        f"calibrate --device {driver.url} --channel {channel} --site {site} --frequency-hz 8 "
        f"--pulse-width-us 150'")


async def _run(driver: Driver, settings: Any, limits: Any, user: Any, interactive: bool
               ) -> tuple[Any, float | None]:
    from ..calibration import Calibration  # noqa: PLC0415
    from .live import cbreak  # noqa: PLC0415

    loop = asyncio.get_running_loop()
    view = _LineView(sys.stderr.isatty())
    await driver.connect()
    try:
        cal = Calibration(driver, settings, limits, on_tick=view.update)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, cal.press, "abort")
        watcher = asyncio.ensure_future(user.watch(cal)) if user is not None else None
        with cbreak() if interactive else _nothing():
            if interactive:
                loop.add_reader(sys.stdin.fileno(), _on_key, cal)
            try:
                result = await cal.run()
            finally:
                if interactive:
                    loop.remove_reader(sys.stdin.fileno())
        if watcher is not None:
            await watcher
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await driver.close()
    view.done()
    return result, _zero_after_ms(driver, settings.channel, result)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _on_key(cal: Any) -> None:
    """Every key of a burst, read from the descriptor: a buffered read(1) could leave a "too
    much" unseen until the next key. Keys act in order within this one callback, so a stop key
    anywhere in the burst stops the output before the loop runs anything else."""
    fd = sys.stdin.fileno()
    try:
        data = os.read(fd, 64).decode(errors="replace")
    except OSError:
        data = ""
    if not data:
        asyncio.get_running_loop().remove_reader(fd)
        return
    for key in data:
        response = _KEYS.get(key.lower())
        if response is not None:
            cal.press(response)


def _zero_after_ms(driver: Driver, channel: int, result: Any) -> float | None:
    """From the simulator's record: ms from "too much" until the channel's output was zero."""
    if not driver.has_recorder or result.too_much_at_s is None:
        return None
    pressed_s = result.loop_start_s + result.too_much_at_s
    zero_at_s = driver.recorder.zero_after_s(channel, pressed_s)
    return None if zero_at_s is None else (zero_at_s - pressed_s) * 1000.0


class _LineView:
    """One status line, rewritten in place in a terminal; event lines otherwise."""

    def __init__(self, tty: bool) -> None:
        self.tty, self._last = tty, ""
        if tty:
            _err(KEYS_HELP)

    def update(self, state: Any) -> None:
        st = "—" if state.st_ma is None else f"{state.st_ma:.1f}"
        mt = "—" if state.mt_ma is None else f"{state.mt_ma:.1f}"
        line = f"{state.amplitude_ma:5.1f} mA   ST {st}   MT {mt}"
        if state.message:
            line += f"   {state.message}"
        if line == self._last:
            return
        if self.tty:
            click.echo(f"\r{line:<70}", nl=False, err=True)
        elif (st, mt) != getattr(self, "_marks", None):
            self._marks = (st, mt)
            _err(line)
        self._last = line

    def done(self) -> None:
        if self.tty:
            _err("")


def _save(path: Path, driver: Driver, channel: int, site: str, pad_set: str, settings: Any,
          result: Any) -> tuple[str, str]:
    from ..profile import Calibration, load_profile, save_profile  # noqa: PLC0415
    from ..thresholds import device_key  # noqa: PLC0415

    entry = Calibration(device=device_key(driver), channel=channel, site=site,
                        pad_set=pad_set, st_ma=result.st_ma, mt_ma=result.mt_ma,
                        tol_ma=result.tol_ma, frequency_hz=settings.frequency_hz,
                        pulse_width_us=settings.pulse_width_us,
                        measured_utc=datetime.now(UTC),
                        method="trains" if settings.mode == "trains" else "ramp")
    saved = save_profile(load_profile(path).with_calibration(entry), path)
    return str(path), saved.version


def _report(data: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        click.echo(json_text(data, default=str))
        return
    def show(v: float | None) -> str:
        return "—" if v is None else f"{v:.1f} mA"
    click.echo(f"Calibration {data['outcome']}: {data['message']}.")
    click.echo(f"  ST {show(data['st_ma'])}, MT {show(data['mt_ma'])}, "
               f"TOL {show(data['tol_ma'])}; highest output {data['peak_ma']:.1f} mA")
    if data["output_zero_after_too_much_ms"] is not None:
        click.echo(f"  output at 0 mA {data['output_zero_after_too_much_ms']:.0f} ms after "
                   "'too much' (simulator record)")
    if data["saved_to"]:
        cap = min(0.9 * data["tol_ma"], 40.0)
        click.echo(f"  saved to {data['saved_to']} (profile version {data['profile_version']});"
                   f" channel cap {cap:.1f} mA")
    else:
        click.echo("  nothing saved")
