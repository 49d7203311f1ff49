"""Pictures of programs and sessions: PNG/SVG figures and compact text plots for terminals.

A program figure shows, per channel, the amplitude envelope (mA) a person would get — the
simulator's synthetic person, a calibrated profile on a device (in the device's current
steps), or the caps' worst case, always labelled — with the caps as limit lines, the frequency
(Hz) and the pulse width (µs) over time, the phases as shaded bands, and the symmetric biphasic
pulse shape. A session figure (``emsctl history SESSION --plot``) draws what was planned
against what was commanded on the live view's clock (program time; pauses are bands where the
clock stood still), with the events named in a strip of their own above the channels. The text
plot needs nothing but numpy and fits in 80 columns.

One idea a module: :mod:`.common` (time axis, envelope, image files, the canvas), :mod:`.basis`
(which amplitudes a program picture shows), :mod:`.text` (the text plot), :mod:`.program` (the
program figure) and :mod:`.session` (the session figure); every public name is here.
matplotlib (the ``plot`` extra) is imported only inside the functions that draw images, with
the Agg canvas, so nothing here needs a display. This module only reads plans and journals and
writes the one file it is asked for; it never talks to a device and decides nothing about
safety.
"""

from __future__ import annotations

from .basis import AmplitudeBasis, PlotBasis, plan_for_plot, plot_basis
from .common import (
    IMAGE_SUFFIXES,
    PLOT_INSTALL_HINT,
    PlotExtraMissingError,
    format_min_s,
    image_format,
    require_matplotlib,
)
from .program import INTERPHASE_US, write_program_figure
from .session import SessionSeries, session_plan, session_series, write_session_figure
from .text import text_plot

__all__ = [
    "IMAGE_SUFFIXES",
    "INTERPHASE_US",
    "PLOT_INSTALL_HINT",
    "AmplitudeBasis",
    "PlotBasis",
    "PlotExtraMissingError",
    "SessionSeries",
    "format_min_s",
    "image_format",
    "plan_for_plot",
    "plot_basis",
    "require_matplotlib",
    "session_plan",
    "session_series",
    "text_plot",
    "write_program_figure",
    "write_session_figure",
]
