"""The ``emsctl`` command line: a click group whose commands load lazily.

Each command lives in its own module under ``emsctl.cli`` and is imported only when it runs,
so ``emsctl --help`` and ``emsctl validate`` never import numpy-heavy, serial, BLE or plotting
code they do not need. Exit codes: 0 ok, 1 validation failed or session aborted by a fault,
2 bad usage or bad input, 130 stopped by the user. Errors are one sentence on stderr (a program
a device cannot express: that sentence, then one line per problem). ``validate`` prints its
results, failures included, on stdout.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

__all__ = ["main"]

#: command name → (module under emsctl.cli, attribute, one-line help for ``--help``)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("run", "run", "Run a program on a device (the simulator by default)."),
    "validate": ("validate", "validate", "Check program files against every safety limit."),
    "show": ("show", "show", "Show a program's phases and worst-case figures."),
    "programs": ("show", "programs", "List built-in programs and those in a folder."),
    "schema": ("show", "schema", "Print the JSON Schema of program files."),
    "history": ("history", "history", "List past sessions, or show one."),
    "simulate": ("simulate", "simulate", "Serve an emulated device on a pseudo-terminal."),
    "devices": ("devices", "devices", "List serial ports that may be stimulators."),
    "calibrate": ("calibrate", "calibrate", "Find your sensory, motor and tolerance thresholds."),
    "plot": ("plot", "plot", "Plot a program's amplitude, frequency and pulse width."),
    "check": ("check", "check", "Check a device against its protocol, with no person connected."),
}


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if _available(name)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS or not _available(cmd_name):
            return None
        module_name, attr, _ = COMMANDS[cmd_name]
        module = importlib.import_module(f"emsctl.cli.{module_name}")
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _available(name: str) -> bool:
    from importlib.util import find_spec  # noqa: PLC0415 - only when listing commands

    return find_spec(f"emsctl.cli.{COMMANDS[name][0]}") is not None


ENVIRONMENT_HELP = """\
\b
Environment:
  EMSCTL_DEVICE      device URL when -d/--device is not given (run, calibrate)
  EMSCTL_LIMITS      limits file when --limits is not given
  EMSCTL_DEBUG       set to 1 to show tracebacks on errors, as --debug
  EMSCTL_DATA_DIR    folder of your profile (calibrations, screening answers)
  EMSCTL_STATE_DIR   folder of the session journals and the dose ledger

\b
Shell completion (bash; use zsh_source or fish_source for those shells):
  eval "$(_EMSCTL_COMPLETE=bash_source emsctl)"
"""


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=ENVIRONMENT_HELP)
@click.option("--debug", is_flag=True, envvar="EMSCTL_DEBUG",
              help="Show tracebacks on errors (or set EMSCTL_DEBUG=1).")
@click.option("-q", "--quiet", is_flag=True,
              help="Say less: run leaves out the program's description and, on the simulator, "
              "the safety questions; validate prints only failures.")
@click.option("-v", "--verbose", is_flag=True,
              help="Say more: run ends with every delivered figure and the journal's path; "
              "history shows the event log; validate prints every check.")
@click.version_option(package_name="emsctl")
@click.pass_context
def cli(ctx: click.Context, debug: bool, quiet: bool, verbose: bool) -> None:
    """Run EMS/TENS stimulation sessions safely from the command line.

    Every session starts at 0 mA, soft-starts, and ends at 0 with an explicit stop.
    """
    if quiet and verbose:
        raise click.UsageError("give -q or -v, not both")
    ctx.obj = {"debug": debug, "verbosity": 1 if verbose else -1 if quiet else 0}


def _debug_requested(argv: list[str]) -> bool:
    """--debug before the command, or EMSCTL_DEBUG set to anything but empty, 0 or false."""
    if "--debug" in argv:
        return True
    return os.environ.get("EMSCTL_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``emsctl`` console script: errors become one sentence and an exit code."""
    from ..errors import EmsError  # noqa: PLC0415

    debug = _debug_requested(argv if argv is not None else sys.argv[1:])
    try:
        return cli.main(args=argv, prog_name="emsctl", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("stopped.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except EmsError as exc:
        if debug:
            raise
        click.echo(f"emsctl: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("stopped by the user.", err=True)
        sys.exit(130)
