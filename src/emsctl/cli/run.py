"""``emsctl run PROGRAM``: run a session, by default on the bundled simulator.

Shows what will run (program, duration, placement, device), asks for confirmation on real
devices (``--yes`` skips it), runs with a live view in a terminal or plain lines in a pipe, and
ends with a summary of what was delivered and the journal's path. Exit codes: 0 completed,
1 aborted by a fault or refused by a limit (plan or dose ledger), 2 bad input or a gate
(profile, screening, red flag, cramp-training rules, a dose ledger that cannot be read),
130 stopped by the user.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .common import FiniteFloat, json_text, limits_option, load_limits

if TYPE_CHECKING:
    from ..runner import Prepared, RunOutcome
    from ..session import Session

__all__ = ["run"]


@click.command()
@click.argument("program", default="relaxation")
@click.option("--device", "-d", "device_url", default="sim", envvar="EMSCTL_DEVICE",
              show_default=True, help="Device URL, e.g. sim, sim+sciencemode2, "
              "sciencemode2:///dev/ttyUSB0.")
@click.option("--speed", default=None, metavar="N|max",
              help="Simulator only: run N× faster than real time, or 'max' as fast as possible.")
@click.option("--intensity", "intensity_pct", type=FiniteFloat(0, 100), default=100.0,
              show_default=True, help="Start at this percentage of the program's amplitude.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (real devices).")
@click.option("--expert", is_flag=True, help="Allow expert programs (cramp-training).")
@click.option("--faults", "faults_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Simulator only: a fault plan (TOML) to inject.")
@click.option("--journal-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Where this session's journal is written [default: $EMSCTL_STATE_DIR/"
              "journals or the user state dir]. It does not move the dose ledger.")
@click.option("--pads", "pad_set", default="default", show_default=True,
              help="The pad set in use; it must be the one calibrated with (HZ-14).")
@click.option("--rescreen", is_flag=True, help="Answer the safety questionnaire again.")
@click.option("--sim-profile", is_flag=True,
              help="Simulator only: use your profile's 'sim' calibrations, not the synthetic "
              "person.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="'json' prints the summary as data.")
@limits_option
def run(program: str, device_url: str, speed: str | None, intensity_pct: float, yes: bool,
        expert: bool, faults_path: Path | None, journal_dir: Path | None, pad_set: str,
        rescreen: bool, sim_profile: bool, fmt: str, limits_path: Path | None) -> None:
    """Run PROGRAM (a built-in name or a .toml file); the default is 'relaxation'.

    Before any output: the calibrated profile (real devices; the simulator uses a synthetic
    person), the dose ledger (L20, real devices), cramp-training's gates, the safety
    questionnaire, the checks before each session and the warnings (asked on real devices,
    shown on the simulator).
    """
    from ..devices import OpenOptions  # noqa: PLC0415
    from ..errors import InputError  # noqa: PLC0415
    from ..ledger import local_now  # noqa: PLC0415
    from ..loader import load_program  # noqa: PLC0415
    from ..profile import Profile  # noqa: PLC0415
    from ..runner import execute, make_clock, open_driver, preflight, prepare_run  # noqa: PLC0415
    from .gates import pass_gates  # noqa: PLC0415

    options = OpenOptions()
    if faults_path is not None:
        from ..simulator.faults import load_fault_plan  # noqa: PLC0415

        options.fault_plan = load_fault_plan(faults_path)
    driver = open_driver(device_url, options)
    simulated = driver.simulated
    if faults_path is not None and not simulated:
        raise InputError("--faults only works with the simulator")
    clock = make_clock(driver, speed)
    if sim_profile and not simulated:
        raise InputError("--sim-profile only works with the simulator")
    loaded = load_program(program)
    limits = load_limits(limits_path)
    now = local_now()  # the system's time zone, never $TZ: cramp-training's daytime rule
    # profile, CTF, cramp-training and dose refusals come first: no question asked, no port opened
    # the dose ledger is the user's one file (read when past is None): --journal-dir moves only
    # the journal
    checked = preflight(loaded, driver, limits, expert=expert, pad_set=pad_set, now=now,
                        sim_profile=sim_profile)
    sites = [c.site for c in loaded.program.channels]
    profile, answers = pass_gates(checked.profile or Profile(), sites, simulated,
                                  interactive=sys.stdin.isatty(), rescreen=rescreen, now=now)
    if checked.profile is not None:
        version = checked.profile_version if checked.profile_version == "synthetic" \
            else profile.version
        checked = replace(checked, profile=profile, profile_version=version)
    prepared = prepare_run(loaded, driver, limits, expert=expert,
                           now=now, session_checks=answers, checked=checked)
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    _announce(prepared)
    if not simulated and not yes:
        if not interactive:
            raise InputError("a real device needs confirmation: run in a terminal or pass --yes")
        click.confirm("Pads placed as described, and ready to start at 0 mA?", abort=True)
    site_map = {c.id: c.site for c in loaded.program.channels}
    if interactive and fmt == "text":
        outcome = _run_live(prepared, clock, intensity_pct, journal_dir, site_map, device_url)
    else:
        from .live import PlainView  # noqa: PLC0415

        view = PlainView(sys.stderr if fmt == "json" else None)
        # without a terminal nobody can press space to resume: a pause ends the session
        outcome = execute(prepared, clock, intensity_pct=intensity_pct, journal_dir=journal_dir,
                          on_tick=view.update, pause_limit_s=0.0)
    _summarize(outcome, fmt)
    sys.exit(outcome.result.exit_code)


def _run_live(prepared: Prepared, clock: Any, intensity_pct: float, journal_dir: Path | None,
              sites: dict[int, str], device_url: str) -> RunOutcome:
    from ..runner import execute  # noqa: PLC0415
    from .live import KeyReader, LiveView, cbreak  # noqa: PLC0415

    readers: list[KeyReader] = []

    def attach(session: Session) -> None:
        readers.append(KeyReader(session))

    program = prepared.loaded.program
    with cbreak(), LiveView(f"{program.title} ({program.name})", device_url, sites) as view:
        return execute(prepared, clock, intensity_pct=intensity_pct, journal_dir=journal_dir,
                       on_start=attach, on_tick=view.update)


def _announce(prepared: Prepared) -> None:
    program = prepared.loaded.program
    minutes = prepared.plan.duration_s / 60
    out = sys.stderr
    click.echo(f"Program: {program.title} ({program.name}), {minutes:.1f} min", file=out)
    click.echo(f"Device:  {prepared.driver.capabilities.model} ({prepared.device_url})", file=out)
    for channel in program.channels:
        cap = prepared.plan.channel(channel.id).cap_ma
        click.echo(f"Channel {channel.id}: {channel.site}, {channel.electrode_area_cm2:g} cm² "
                   f"pads, at most {cap:.1f} mA", file=out)
    click.echo(f"Placement: {program.placement}", file=out)
    for note in [*prepared.notes, *prepared.plan.notes]:
        click.echo(f"Note: {note}", file=out)
    for warning in prepared.warnings:
        click.echo(f"Warning: {warning}", file=out)


def _summarize(outcome: RunOutcome, fmt: str) -> None:
    result = outcome.result
    data: dict[str, Any] = {
        "end_reason": result.end_reason, "message": result.message,
        "stim_time_s": round(result.stim_time_s, 3), "exit_code": result.exit_code,
        "journal": str(outcome.journal_path) if outcome.journal_path else None,
        "delivered": outcome.delivered,
    }
    if fmt == "json":
        click.echo(json_text(data))
        return
    click.echo(f"Session {result.end_reason}: {result.message}. "
               f"Stimulation time {result.stim_time_s / 60:.1f} min.")
    channels = outcome.delivered.get("channels", {})
    for channel, figures in channels.items():
        if not figures.get("pulse_count"):
            continue  # a device channel the program does not use
        with contextlib.suppress(KeyError, TypeError):
            click.echo(f"  channel {channel}: peak {figures['peak_ma']:.1f} mA, "
                       f"{int(figures['pulse_count'])} pulses, "
                       f"max {figures['max_phase_charge_uc']:.2f} µC per phase, "
                       f"rms {figures['rms_ma']:.2f} mA")
    if not channels:
        peaks = ", ".join(f"{p:.1f}" for p in result.peak_ma)
        click.echo(f"  peak commanded mA per channel: {peaks}")
    if outcome.journal_path:
        click.echo(f"Journal: {outcome.journal_path}")
