"""``emsctl check URL``: check a device against its protocol, with no person connected.

For device owners: with a test load across the outputs (a 500 Ω–1 kΩ resistor, or electrodes
on nothing) and nobody connected, it connects, identifies the device, runs every conformance
step that is safe without a person (:mod:`emsctl.conformance`), measures what it can, and prints
a report (text, Markdown for an issue, or JSON) with the bytes of every failed step. The owner
confirms that no person is connected (``--no-person``, or a prompt on a terminal); simulated
devices need neither. Because no person is connected, the profile and screening gates do not
apply; every ceiling does. Exit codes: 0 every possible step passed, 1 a step failed or did not
run, 2 bad usage.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import limits_option, load_limits

__all__ = ["check"]


@click.command()
@click.argument("url")
@click.option("--no-person", is_flag=True,
              help="Confirm that no person is connected: a test load or electrodes on nothing.")
@click.option("--load", type=click.Choice(["resistor", "open"]), default="resistor",
              show_default=True, help="What is across the outputs: a 500 Ω–1 kΩ resistor, or "
              "electrodes on nothing (open).")
@click.option("--no-output", is_flag=True, help="Run only the steps that need no output.")
@click.option("--faults", "faults_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Simulator only: a fault plan (TOML) to inject, as for run.")
@click.option("--steps", "steps_text", default=None, metavar="ID,ID",
              help="Run only these steps (the handshake always runs first).")
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text",
              show_default=True, help="'markdown' pastes into an issue as it is.")
@limits_option
def check(url: str, no_person: bool, load: str, no_output: bool, faults_path: Path | None,
          steps_text: str | None, fmt: str, limits_path: Path | None) -> None:
    """Check the device at URL against its protocol, with a test load and no person.

    Each step is reported as passed, failed or not possible on this device; a failed step
    shows the bytes exchanged while it ran. Steps that put current on the outputs use
    channel 1 only, at the device's smallest step (at most 2 mA), for at most 1 s at a time.
    """
    from ..check_report import render  # noqa: PLC0415
    from ..clock import RealClock, VirtualClock  # noqa: PLC0415
    from ..conformance import CheckOptions, family_entry_for, run_check  # noqa: PLC0415
    from ..devices import OpenOptions, open_device  # noqa: PLC0415
    from ..errors import InputError  # noqa: PLC0415

    options = CheckOptions(load="open" if load == "open" else "resistor",
                           allow_output=not no_output, limits=load_limits(limits_path),
                           warn=lambda line: click.echo(line, err=True))
    if steps_text is not None:
        options.steps = tuple(s.strip() for s in steps_text.split(",") if s.strip())
    if faults_path is not None:
        from ..simulator.faults import load_fault_plan  # noqa: PLC0415

        options.fault_plan = load_fault_plan(faults_path)
    family_entry_for(url)
    simulated = open_device(url, OpenOptions(fault_plan=options.fault_plan)).simulated
    if faults_path is not None and not simulated:
        raise InputError("--faults only works with the simulator")
    options.person = _confirm_no_person(simulated, no_person)
    clock = VirtualClock(None) if simulated else RealClock()
    report = run_check(url, options, clock=clock)
    click.echo(render(report, fmt), nl=False)
    sys.exit(report.exit_code)


def _confirm_no_person(simulated: bool, no_person: bool) -> str:
    """How "no person connected" was established.

    Raises:
        InputError: a real device, no ``--no-person``, and no terminal to ask on, or the owner
            said a person may be connected.
    """
    from ..errors import InputError  # noqa: PLC0415

    if simulated:
        return "a simulated device (no person can be connected)"
    if no_person:
        return "no person connected (confirmed with --no-person)"
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise InputError("emsctl check runs only with no person connected: put a test load "
                         "across the outputs and pass --no-person")
    confirmed = click.confirm("Is a test load (a 500 Ω–1 kΩ resistor, or electrodes on "
                              "nothing) across the outputs, and NO person connected?",
                              default=False, err=True)
    if not confirmed:
        raise InputError("emsctl check runs only with no person connected")
    return "no person connected (confirmed at the prompt)"
