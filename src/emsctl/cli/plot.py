"""``emsctl plot PROGRAM``: look at a program before running it.

The amplitudes drawn are the ones a person would get: by default those of the simulator's
synthetic person (labelled as such), with ``-d URL`` those your calibrated profile gives on that
device (rounded down to the device's current step, as it sets them), or with ``--amplitudes
caps`` the worst case that validation checks. The caps are drawn as a limit line.

With ``-o FILE.png`` or ``-o FILE.svg`` it draws an image (matplotlib, the ``plot`` extra);
without ``-o`` on a terminal, or with ``--text``, it prints a compact text plot that needs no
extra. It reads the program (and with ``-d`` the profile) and writes only the file it is given;
it never connects to a device.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import click

from ..errors import InputError
from .common import complete_program

__all__ = ["plot"]

#: A text plot is never wider than this, however wide the terminal.
TEXT_WIDTH_MAX = 80

@click.command("plot")
@click.argument("program", shell_complete=complete_program)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write an image here; .png or .svg picks the format (needs the plot extra: "
              "pip install 'emsctl[plot]', or pip install -e '.[plot]' in a checkout).")
@click.option("--text", "as_text", is_flag=True,
              help="Print a text plot (to FILE with -o), even when stdout is not a terminal.")
@click.option("--amplitudes", "basis", type=click.Choice(["synthetic", "caps"]),
              default="synthetic", show_default=True,
              help="'synthetic': what the simulator's synthetic person gets (what a session "
              "gives); 'caps': the channel caps, the worst case that validation checks.")
@click.option("--device", "-d", "device_url", default=None,
              help="Draw what your calibrated profile gives on this device (e.g. "
              "sciencemode2:///dev/ttyUSB0), in the device's current steps. It is not "
              "connected.")
def plot(program: str, output: Path | None, as_text: bool, basis: str,
         device_url: str | None) -> None:
    """Plot PROGRAM (a built-in name or a .toml path): amplitude, frequency and pulse width.

    \f
    Raises:
        InputError: the program does not load, the file suffix is not .png or .svg, matplotlib
            is missing for an image, there is no terminal and neither -o nor --text, or -d
            names a real device without a valid calibration for the program.
    """
    from ..loader import load_program  # noqa: PLC0415 - keep `emsctl --help` light
    from ..plotting import (  # noqa: PLC0415
        format_min_s,
        image_format,
        plot_basis,
        require_matplotlib,
        text_plot,
        write_program_figure,
    )

    if output is None and not as_text and not sys.stdout.isatty():
        raise InputError("stdout is not a terminal: give -o FILE.png or -o FILE.svg for an "
                         "image, or --text for a text plot")
    if device_url is not None and basis == "caps":
        raise InputError("-d draws your calibrated amplitudes; --amplitudes caps draws the "
                         "worst case: give one of them")
    if output is not None and not as_text:
        image_format(output)
        require_matplotlib()  # before any work, so the message comes first
    loaded = load_program(program)
    drawn = plot_basis(loaded.program, "caps" if basis == "caps" else "person", device_url)
    plan = drawn.plan
    heading = (f"{loaded.program.name}: {loaded.program.title} · "
               f"total {format_min_s(plan.duration_s)}")
    if output is not None and not as_text:
        write_program_figure(plan, loaded.program, output, note=drawn.note,
                             step_ma=drawn.step_ma)
        click.echo(f"wrote {output}")
        return
    columns = TEXT_WIDTH_MAX if output is not None else min(
        TEXT_WIDTH_MAX, shutil.get_terminal_size((TEXT_WIDTH_MAX, 24)).columns)
    text = text_plot(plan, heading, width=columns, note=drawn.note, step_ma=drawn.step_ma)
    if output is None:
        click.echo(text)
        return
    try:
        output.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc.strerror or exc}") from exc
    click.echo(f"wrote {output}")
