"""The text plot: each channel's amplitude envelope as a bar chart in a terminal, with the phases
and a time axis. Needs nothing but numpy and fits in 80 columns."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..plan import Plan
from .common import FloatArray, format_min_s, tick_step_s

__all__ = ["text_plot"]

_BLOCKS = " ▁▂▃▄▅▆▇█"
_GUTTER = 10  # "  30.0 mA┤"


def _bin_peaks(segments: npt.NDArray[np.void], edges_s: FloatArray) -> FloatArray:
    """Highest amplitude in each bin ``[edges[i], edges[i+1])``: exact, segments are linear."""
    t0, t1 = segments["t0_s"][:, None], segments["t1_s"][:, None]
    a0, a1 = segments["amp0_ma"][:, None], segments["amp1_ma"][:, None]
    lo = np.maximum(t0, edges_s[None, :-1])
    hi = np.minimum(t1, edges_s[None, 1:])
    span = np.where(t1 > t0, t1 - t0, 1.0)
    at_lo = a0 + (a1 - a0) * (lo - t0) / span
    at_hi = a0 + (a1 - a0) * (hi - t0) / span
    peak = np.where(lo < hi, np.maximum(at_lo, at_hi), 0.0)
    return np.asarray(peak.max(axis=0), dtype=np.float64)


def text_plot(plan: Plan, heading: str, *, width: int = 80, rows_per_channel: int = 3,
              note: str = "", step_ma: float | None = None) -> str:
    """A bar chart of each channel's amplitude envelope, with phases and a time axis.

    Args:
        plan: the compiled plan.
        heading: first line (e.g. program name, title and total time).
        width: columns to fit in (at least 40); no line is longer.
        rows_per_channel: text rows per channel; each row has 8 levels.
        note: a second line, e.g. which amplitudes are shown (wrapped to ``width``).
        step_ma: a device's current step: amplitudes rounded down to it.

    Returns:
        The plot, lines joined by newlines, without a trailing newline.
    """
    width = max(40, width)
    cols = width - _GUTTER
    duration_s = plan.duration_s
    edges_s = np.linspace(0.0, duration_s, cols + 1)
    import textwrap  # noqa: PLC0415

    lines = [heading[:width]] + (textwrap.wrap(note, width=width) if note else [])
    levels = rows_per_channel * 8
    for cplan in plan.channels:
        peaks_ma = _bin_peaks(cplan.segments, edges_s)
        if step_ma is not None and step_ma > 0:
            peaks_ma = np.floor(peaks_ma / step_ma + 1e-9) * step_ma
        top_ma = float(peaks_ma.max())
        lines.append(f"ch {cplan.channel} · {cplan.site} · peak {top_ma:.1f} mA · "
                     f"cap {cplan.cap_ma:g} mA"[:width])
        filled = (np.ceil(peaks_ma / top_ma * levels - 1e-9).astype(int) if top_ma > 0
                  else np.zeros(cols, int))
        for row in range(rows_per_channel):
            base = (rows_per_channel - 1 - row) * 8
            cells = "".join(_BLOCKS[min(8, max(0, level - base))] for level in filled)
            label = (f"{top_ma:6.1f} mA" if row == 0 else
                     "  0 mA".rjust(_GUTTER - 1) if row == rows_per_channel - 1 else "")
            lines.append(f"{label:>{_GUTTER - 1}}{'┤' if label else '│'}{cells}".rstrip())
    phase_row, key = _phase_row(plan, cols)
    lines.append(" " * (_GUTTER - 1) + "└" + phase_row)
    lines.extend(_time_axis(duration_s, cols))
    if key:
        lines.extend(textwrap.wrap("phases: " + " · ".join(key), width=width,
                                   subsequent_indent="  "))
    return "\n".join(lines)


def _phase_row(plan: Plan, cols: int) -> tuple[str, list[str]]:
    """The phase row under the bars, and a key for the phases whose names do not fit there:
    those get their number in the row ("┬3") and "3 = slow twitches" in the key."""
    row = ["─"] * cols
    key: list[str] = []
    starts = [min(cols - 1, int(span.start_s / plan.duration_s * cols)) for span in plan.phases]
    for i, (span, start) in enumerate(zip(plan.phases, starts, strict=True)):
        end = starts[i + 1] if i + 1 < len(starts) else cols
        row[start] = "┬"
        name = span.name if span.kind == "stim" else f"{span.name} (no output)"
        room = max(0, end - start - 2)
        if room < len(name) and span.kind != "stim":
            name = span.name
        if room < len(name):
            number = str(i + 1)
            key.append(f"{number} = {span.name}" + (" (no output)" if span.kind != "stim"
                                                     else ""))
            name = number
        for j, char in enumerate(name[:room]):
            row[start + 1 + j] = char
    return "".join(row), key


def _time_axis(duration_s: float, cols: int) -> list[str]:
    """Tick labels under the bars (the total time always shown, last), and the axis title."""
    step_s = tick_step_s(duration_s, max(1, cols // 8))
    ticks = [k * step_s for k in range(int(duration_s // step_s) + 1) if k * step_s < duration_s]
    end_text = format_min_s(duration_s)
    labels = [" "] * cols
    labels[cols - len(end_text):] = list(end_text)
    free_until = cols - len(end_text) - 1  # columns left of the end label, one space apart
    last_end = -2
    for t_s in ticks:
        text = format_min_s(t_s)
        col = round(t_s / duration_s * (cols - 1))
        start = max(0, col - len(text) // 2)
        if start <= last_end + 1 or start + len(text) > free_until:
            continue  # would collide with a neighbour
        labels[start:start + len(text)] = list(text)
        last_end = start + len(text) - 1
    return [" " * _GUTTER + "".join(labels).rstrip(),
            "time (min:s)".rjust(_GUTTER + cols)]
