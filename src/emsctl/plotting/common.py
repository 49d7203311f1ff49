"""What every picture of emsctl shares: the time axis in min:s, a channel's envelope, image files,
and the matplotlib canvas.

matplotlib (the ``plot`` extra) is imported only inside the functions that draw, with the Agg
canvas, so nothing here needs a display; :func:`require_matplotlib` says what to install when it
is missing. Reads plans, writes only the file it is asked for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import InputError

__all__ = [
    "IMAGE_SUFFIXES",
    "PLOT_INSTALL_HINT",
    "FloatArray",
    "PlotExtraMissingError",
    "envelope",
    "format_min_s",
    "format_time_axis",
    "image_format",
    "new_figure",
    "require_matplotlib",
    "save",
    "shade_phases",
    "tick_step_s",
]

FloatArray = npt.NDArray[np.float64]
#: File suffixes an image can be written as.
IMAGE_SUFFIXES = (".png", ".svg")
_TICK_STEPS_S = (10, 15, 30, 60, 120, 180, 300, 600, 900, 1200, 1800, 3600)

#: How to install the plot extra, from a package index and from a source checkout.
PLOT_INSTALL_HINT = "pip install 'emsctl[plot]' (or pip install -e '.[plot]' in a checkout)"


class PlotExtraMissingError(InputError):
    """matplotlib is not installed: images need the ``plot`` extra."""


def require_matplotlib() -> None:
    """Check that matplotlib can be imported.

    Raises:
        PlotExtraMissingError: it cannot; the message names the extra to install.
    """
    try:
        import matplotlib  # noqa: F401, PLC0415 - optional, only for images
    except ImportError as exc:
        raise PlotExtraMissingError(
            "drawing images needs matplotlib, which comes with the plot extra: "
            f"{PLOT_INSTALL_HINT} (or use --text for a text plot)") from exc


def image_format(path: Path) -> str:
    """The image format for ``path`` from its suffix (``png`` or ``svg``).

    Raises:
        InputError: any other suffix.
    """
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise InputError(f"cannot tell the image format of '{path.name}': "
                         "give a file name ending in .png or .svg")
    return suffix[1:]


def format_min_s(t_s: float) -> str:
    """``t_s`` as ``m:ss`` (minutes may exceed 59)."""
    minutes, seconds = divmod(round(t_s), 60)
    return f"{minutes}:{seconds:02d}"


def tick_step_s(duration_s: float, max_ticks: int) -> float:
    for step in _TICK_STEPS_S:
        if duration_s / step <= max_ticks:
            return float(step)
    return float(math.ceil(duration_s / max_ticks / 3600) * 3600)


def envelope(segments: npt.NDArray[np.void]) -> tuple[FloatArray, FloatArray]:
    """Exact polyline of a channel's amplitude: both ends of every segment."""
    t_s = np.column_stack([segments["t0_s"], segments["t1_s"]]).ravel()
    amp_ma = np.column_stack([segments["amp0_ma"], segments["amp1_ma"]]).ravel()
    return t_s, amp_ma


def new_figure(width_in: float, height_in: float) -> Any:
    require_matplotlib()
    from matplotlib.figure import Figure  # noqa: PLC0415 - the plot extra, Agg canvas

    return Figure(figsize=(width_in, height_in), dpi=100, layout="constrained")


def format_time_axis(axis: Any, duration_s: float) -> None:
    from matplotlib.ticker import FuncFormatter, MultipleLocator  # noqa: PLC0415

    axis.xaxis.set_major_locator(MultipleLocator(tick_step_s(duration_s, 10)))
    axis.xaxis.set_major_formatter(FuncFormatter(lambda t_s, _pos: format_min_s(t_s)))
    axis.set_xlim(0.0, duration_s)


def shade_phases(axes: Sequence[Any], spans: Sequence[tuple[float, float, str, bool]],
                 label_axis: Any, colour_index: Sequence[int] | None = None) -> None:
    """Shade phases on every axis; name them above ``label_axis`` where the name fits.

    ``colour_index`` gives each span's phase number, so the pieces of one phase cut by a
    pause keep its colour (by default: the span's own position)."""
    from matplotlib.transforms import blended_transform_factory  # noqa: PLC0415

    total_s = max(end for _, end, _, _ in spans) or 1.0
    width_px = label_axis.get_position().width * label_axis.figure.get_figwidth() * 100
    for i, (start, end, name, guide) in enumerate(spans):
        k = i if colour_index is None else colour_index[i]
        colour = "#e8e8e8" if guide else ("#eef3fa" if k % 2 == 0 else "#fbf6ec")
        for axis in axes:
            axis.axvspan(start, end, color=colour, zorder=0, lw=0)
        band_px = (end - start) / total_s * width_px
        if guide and band_px >= 60:
            label_axis.text((start + end) / 2, 0.5, "no output", ha="center", va="center",
                            fontsize=8, color="#555555", style="italic",
                            transform=blended_transform_factory(label_axis.transData,
                                                                label_axis.transAxes))
        if band_px >= 7.0 * (len(name) + 1):
            label_axis.text((start + end) / 2, 1.02, name, ha="center", va="bottom",
                            fontsize=9, transform=blended_transform_factory(
                                label_axis.transData, label_axis.transAxes))


def save(fig: Any, path: Path, fmt: str) -> None:
    try:
        fig.savefig(path, format=fmt, metadata={"Software": "emsctl"} if fmt == "png" else None)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from exc
