"""Pictures of programs and sessions: PNG/SVG figures and compact text plots for terminals.

A program figure shows, per channel, the amplitude envelope (mA) a person would get — the
simulator's synthetic person, a calibrated profile on a device (in the device's current
steps), or the caps' worst case, always labelled — with the caps as limit lines, the frequency
(Hz) and the pulse width (µs) over time, the phases as shaded bands, and the symmetric biphasic
pulse shape. A session figure (``emsctl history SESSION --plot``) draws what was planned
against what was commanded on the live view's clock (program time; pauses are bands where the
clock stood still), with the events named in a strip of their own above the channels. The text
plot needs nothing but numpy and fits in 80 columns.

matplotlib (the ``plot`` extra) is imported only inside the functions that draw images, with
the Agg canvas, so nothing here needs a display. This module only reads plans and journals and
writes the one file it is asked for; it never talks to a device and decides nothing about
safety.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from .amplitude import Thresholds
from .errors import InputError
from .journal import JournalRecord, JsonValue
from .plan import Plan, compile_plan
from .program import Program, Ramp, Sweep

__all__ = [
    "IMAGE_SUFFIXES",
    "INTERPHASE_US",
    "PLOT_INSTALL_HINT",
    "AmplitudeBasis",
    "PlotBasis",
    "PlotExtraMissingError",
    "SessionSeries",
    "format_min_s",
    "plan_for_plot",
    "plot_basis",
    "require_matplotlib",
    "session_series",
    "text_plot",
    "write_program_figure",
    "write_session_figure",
]

FloatArray = npt.NDArray[np.float64]
#: Which amplitudes a program plot shows: the channel caps (validation's worst case) or the
#: simulator's synthetic person.
AmplitudeBasis = Literal["caps", "synthetic"]
#: File suffixes an image can be written as.
IMAGE_SUFFIXES = (".png", ".svg")
#: Gap between the two phases of a pulse, drawn in the pulse inset. Programs do not set it;
#: 100 µs is what ScienceMode2 devices deliver (the only protocol that documents it).
INTERPHASE_US = 100.0
_BLOCKS = " ▁▂▃▄▅▆▇█"
_TICK_STEPS_S = (10, 15, 30, 60, 120, 180, 300, 600, 900, 1200, 1800, 3600)
_GUTTER = 10  # "  30.0 mA┤"
_NAN = np.array([np.nan])  # breaks a matplotlib line


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


def plan_for_plot(program: Program, basis: AmplitudeBasis = "caps") -> Plan:
    """Compile ``program`` for a picture: at its channel caps, or at the synthetic thresholds."""
    if basis == "caps":
        return compile_plan(program)
    from .profile import SYNTHETIC_THRESHOLDS, TOL_CAP_FACTOR  # noqa: PLC0415

    thresholds = {c.id: SYNTHETIC_THRESHOLDS for c in program.channels}
    caps_ma = {c.id: TOL_CAP_FACTOR * SYNTHETIC_THRESHOLDS.tol_ma for c in program.channels}
    return compile_plan(program, thresholds, profile_caps_ma=caps_ma)


@dataclass(frozen=True)
class PlotBasis:
    """A plan to draw and what its amplitudes are: ``note`` says it under the title."""

    plan: Plan
    note: str
    #: the device's current step when drawn for a device (amplitudes rounded down to it)
    step_ma: float | None = None


def _thresholds_text(plan_thresholds: dict[int, Thresholds]) -> str:
    distinct = list(dict.fromkeys(plan_thresholds.values()))
    if len(distinct) == 1:
        th = distinct[0]
        return f"ST {th.st_ma:g}, MT {th.mt_ma:g}, TOL {th.tol_ma:g} mA"
    return "; ".join(f"ch {ch}: ST {th.st_ma:g}, MT {th.mt_ma:g}, TOL {th.tol_ma:g} mA"
                     for ch, th in sorted(plan_thresholds.items()))


def plot_basis(program: Program, basis: Literal["person", "caps"] = "person",
               device_url: str | None = None) -> PlotBasis:
    """The plan a program plot draws, and its label.

    ``caps``: at the channel caps (validation's worst case). ``person`` without a device: the
    simulator's synthetic person. ``person`` with ``device_url``: the thresholds and caps your
    profile gives on that device (the simulator's person on a simulated one), drawn in the
    device's current steps. The device is opened, never connected.

    Raises:
        InputError: an unknown device URL; ProfileError (an InputError) for a real device
            without a valid calibration for ``program``.
    """
    if basis == "caps":
        return PlotBasis(compile_plan(program),
                         "amplitudes at the channel caps: the worst case that validation checks")
    if device_url is None:
        return PlotBasis(plan_for_plot(program, "synthetic"),
                         "amplitudes for the simulator's synthetic person ("
                         + _thresholds_text({0: _synthetic()}) + "); yours follow your "
                         "calibration (plot -d URL)")
    from datetime import UTC, datetime  # noqa: PLC0415

    from .devices import open_device  # noqa: PLC0415
    from .limits import DEFAULTS  # noqa: PLC0415
    from .profile import load_profile  # noqa: PLC0415
    from .thresholds import resolve_thresholds  # noqa: PLC0415

    driver = open_device(device_url)
    profile = None if driver.simulated else load_profile()
    resolved = resolve_thresholds(profile, program, driver, now=datetime.now(UTC),
                                  peak_limit_ma=DEFAULTS.peak_ma)
    plan = compile_plan(program, resolved.thresholds, profile_caps_ma=resolved.caps_ma)
    caps = driver.capabilities
    who = "the simulator's synthetic person" if resolved.synthetic else "your calibration"
    note = (f"amplitudes for {who} on {caps.model} ({_thresholds_text(resolved.thresholds)}),"
            f" as the device sets them in {caps.amplitude_step_ma:g} mA steps")
    return PlotBasis(plan, note, caps.amplitude_step_ma)


def _synthetic() -> Thresholds:
    from .profile import SYNTHETIC_THRESHOLDS  # noqa: PLC0415

    return SYNTHETIC_THRESHOLDS


def stepped(t_s: FloatArray, amp_ma: FloatArray, step_ma: float | None
            ) -> tuple[FloatArray, FloatArray]:
    """The envelope as a device with a ``step_ma`` current step sets it: rounded down, drawn as
    steps (points added where a ramp crosses a step). Unchanged without a step."""
    if step_ma is None or step_ma <= 0:
        return t_s, amp_ma
    xs: list[float] = []
    ys: list[float] = []
    for i in range(len(t_s)):
        level = math.floor(amp_ma[i] / step_ma + 1e-9) * step_ma
        if i and t_s[i] > t_s[i - 1] and amp_ma[i] != amp_ma[i - 1]:
            a0, a1 = float(amp_ma[i - 1]), float(amp_ma[i])
            lo, hi = sorted((a0, a1))
            crossings = np.arange(math.ceil(lo / step_ma + 1e-9), math.floor(hi / step_ma
                                                                              - 1e-9) + 1)
            for k in crossings if a1 > a0 else crossings[::-1]:
                t_cross = float(t_s[i - 1] + (k * step_ma - a0) / (a1 - a0)
                                * (t_s[i] - t_s[i - 1]))
                below = (k - 1) * step_ma if a1 > a0 else k * step_ma
                above = k * step_ma if a1 > a0 else (k - 1) * step_ma
                xs += [t_cross, t_cross]
                ys += [max(0.0, below), max(0.0, above)]
        xs.append(float(t_s[i]))
        ys.append(level)
    return np.asarray(xs), np.asarray(ys)


def format_min_s(t_s: float) -> str:
    """``t_s`` as ``m:ss`` (minutes may exceed 59)."""
    minutes, seconds = divmod(round(t_s), 60)
    return f"{minutes}:{seconds:02d}"


def _tick_step_s(duration_s: float, max_ticks: int) -> float:
    for step in _TICK_STEPS_S:
        if duration_s / step <= max_ticks:
            return float(step)
    return float(math.ceil(duration_s / max_ticks / 3600) * 3600)


def _envelope(segments: npt.NDArray[np.void]) -> tuple[FloatArray, FloatArray]:
    """Exact polyline of a channel's amplitude: both ends of every segment."""
    t_s = np.column_stack([segments["t0_s"], segments["t1_s"]]).ravel()
    amp_ma = np.column_stack([segments["amp0_ma"], segments["amp1_ma"]]).ravel()
    return t_s, amp_ma


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


# --------------------------------------------------------------------------- text plot


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
    step_s = _tick_step_s(duration_s, max(1, cols // 8))
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


# --------------------------------------------------------------------------- images


def _figure(width_in: float, height_in: float) -> Any:
    require_matplotlib()
    from matplotlib.figure import Figure  # noqa: PLC0415 - the plot extra, Agg canvas

    return Figure(figsize=(width_in, height_in), dpi=100, layout="constrained")


def _time_axis_format(axis: Any, duration_s: float) -> None:
    from matplotlib.ticker import FuncFormatter, MultipleLocator  # noqa: PLC0415

    axis.xaxis.set_major_locator(MultipleLocator(_tick_step_s(duration_s, 10)))
    axis.xaxis.set_major_formatter(FuncFormatter(lambda t_s, _pos: format_min_s(t_s)))
    axis.set_xlim(0.0, duration_s)


def _phase_bands(axes: Sequence[Any], spans: Sequence[tuple[float, float, str, bool]],
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


def _stim_only(plan: Plan, t_s: FloatArray, values: FloatArray) -> FloatArray:
    """``values`` with NaN where a guide phase runs (no output there, so nothing to show)."""
    out = values.copy()
    for span in plan.phases:
        if span.kind != "stim":
            out[(t_s >= span.start_s) & (t_s <= span.end_s)] = np.nan
    return out


def write_program_figure(plan: Plan, program: Program, path: Path, *, note: str = "",
                         step_ma: float | None = None) -> None:
    """Draw ``plan`` of ``program`` and save it as PNG or SVG, chosen by ``path``'s suffix.

    Each channel's amplitude is drawn as planned (rounded down to ``step_ma``, a device's
    current step, when given), with its cap as a limit line, and the program's own cap too
    when a calibration lowered it.

    Raises:
        PlotExtraMissingError: matplotlib is not installed.
        InputError: the suffix is neither .png nor .svg, or the file cannot be written.
    """
    fmt = image_format(path)
    n = len(plan.channels)
    fig = _figure(11.0, 2.0 * n + 3.6)
    grid = fig.add_gridspec(n + 2, 2, width_ratios=[4.3, 1.0], height_ratios=[2.0] * n + [1.2] * 2)
    left = [fig.add_subplot(grid[0, 0])]
    left += [fig.add_subplot(grid[i, 0], sharex=left[0]) for i in range(1, n + 2)]
    program_caps = {c.id: c.max_amplitude_ma for c in program.channels}
    for axis, cplan in zip(left, plan.channels, strict=False):
        t_s, amp_ma = stepped(*_envelope(cplan.segments), step_ma)
        axis.fill_between(t_s, amp_ma, color="#1f77b4", alpha=0.3, lw=0)
        axis.plot(t_s, amp_ma, color="#1f77b4", lw=1.0)
        peak = float(amp_ma.max()) if amp_ma.size else 0.0
        if peak > 0:
            at = float(t_s[int(np.argmax(amp_ma))])
            axis.annotate(f"{peak:.3g} mA", (at, peak), (0, 4), textcoords="offset points",
                          fontsize=8, color="#1f4e79", ha="center", va="bottom")
        top = cplan.cap_ma
        axis.axhline(cplan.cap_ma, color="#c0392b", ls="--", lw=0.9)
        axis.text(1.0, cplan.cap_ma, f" cap {cplan.cap_ma:g} mA", color="#c0392b", fontsize=8,
                  va="center", ha="left", transform=axis.get_yaxis_transform())
        own = program_caps.get(cplan.channel, cplan.cap_ma)
        if own > cplan.cap_ma + 0.05:
            top = own
            axis.axhline(own, color="#c0392b", ls=":", lw=0.8, alpha=0.6)
            axis.text(1.0, own, f" program cap\n {own:g} mA", color="#c0392b", fontsize=7,
                      alpha=0.8, va="center", ha="left", transform=axis.get_yaxis_transform())
        axis.set_ylim(0.0, max(top, peak) * 1.15)
        axis.set_ylabel(f"ch {cplan.channel} {cplan.site}\namplitude (mA)", fontsize=9)
    _draw_rate(left[n], left[n + 1], plan, program)
    _time_axis_format(left[-1], plan.duration_s)
    left[-1].set_xlabel("time (min:s)")
    for axis in left[:-1]:
        axis.tick_params(labelbottom=False)
    for axis in left:
        axis.grid(axis="y", color="white", lw=0.8)
        axis.tick_params(labelsize=8)
    spans = [(s.start_s, s.end_s, s.name, s.kind != "stim") for s in plan.phases]
    fig.canvas.draw_idle()
    _phase_bands(left, spans, left[0])
    _pulse_inset(fig.add_subplot(grid[0:max(1, n), 1]), plan, step_ma)
    facts = fig.add_subplot(grid[max(1, n):, 1])
    _phase_table(facts, plan, program)
    import textwrap  # noqa: PLC0415

    fig.suptitle(f"{program.name}: {program.title}   ·   total {format_min_s(plan.duration_s)}"
                 + "".join(f"\n{line}" for line in textwrap.wrap(note, 110,
                                                                  break_on_hyphens=False)),
                 fontsize=11)
    _save(fig, path, fmt)


def _draw_rate(freq_axis: Any, width_axis: Any, plan: Plan, program: Program) -> None:
    """Frequency and pulse width per channel; one line when all channels agree."""
    for axis, key, unit, colour in ((freq_axis, "freq", "frequency (Hz)", "#2ca02c"),
                                    (width_axis, "pw", "pulse width (µs)", "#9467bd")):
        curves = []
        for cplan in plan.channels:
            seg = cplan.segments
            unit_key = "hz" if key == "freq" else "us"
            t_s = np.column_stack([seg["t0_s"], seg["t1_s"]]).ravel()
            values = np.column_stack([seg[f"{key}0_{unit_key}"], seg[f"{key}1_{unit_key}"]]).ravel()
            curves.append((cplan.channel, t_s, _stim_only(plan, t_s, values)))
        same = all(np.array_equal(c[2], curves[0][2], equal_nan=True) for c in curves)
        styles = ["-", "--", ":", "-."]
        for i, (channel, t_s, values) in enumerate(curves[:1] if same else curves):
            axis.plot(t_s, values, color=colour, lw=1.2, ls=styles[i % 4],
                      label="all channels" if same else f"ch {channel}")
        if not same:
            axis.legend(fontsize=7, loc="upper right")
        top = float(np.nanmax([np.nanmax(c[2]) for c in curves]))
        axis.set_ylim(0.0, top * 1.3)
        axis.set_ylabel(unit, fontsize=9)
    for span, phase in zip(plan.phases, program.phases, strict=True):
        for axis, spec, unit in ((freq_axis, phase.frequency_hz, "Hz"),
                                 (width_axis, phase.pulse_width_us, "µs")):
            if isinstance(spec, Sweep):
                axis.text((span.start_s + span.end_s) / 2, spec.high * 1.04,
                          f"sweeps {spec.low:g}–{spec.high:g} {unit} every {spec.period_s:g} s",
                          ha="center", va="bottom", fontsize=8)
        if phase.burst is not None and isinstance(phase.frequency_hz, float):
            freq_axis.text((span.start_s + span.end_s) / 2, phase.frequency_hz * 1.05,
                           f"bursts: {phase.burst.pulses} pulses at {phase.frequency_hz:g} Hz, "
                           f"{phase.burst.rate_hz:g} bursts/s", ha="center", va="bottom",
                           fontsize=8)


def _pulse_inset(axis: Any, plan: Plan, step_ma: float | None = None) -> None:
    """The symmetric biphasic pulse at the widest width and highest amplitude of the plan
    (rounded down to ``step_ma``, a device's current step, when given)."""
    widths = np.concatenate([np.concatenate([c.segments["pw0_us"][c.segments["amp0_ma"] > 0],
                                             c.segments["pw1_us"][c.segments["amp1_ma"] > 0]])
                             for c in plan.channels])
    amps = np.concatenate([c.segments[["amp0_ma", "amp1_ma"]].tolist() for c in plan.channels])
    width_us = float(widths.max()) if widths.size else 0.0
    amp_ma = float(np.max(amps)) if amps.size else 0.0
    if step_ma is not None and step_ma > 0:
        amp_ma = math.floor(amp_ma / step_ma + 1e-9) * step_ma
    gap_us = INTERPHASE_US
    end_us = 2 * width_us + gap_us
    x = [-0.35 * width_us, 0, 0, width_us, width_us, width_us + gap_us, width_us + gap_us,
         end_us, end_us, end_us + 0.35 * width_us]
    y = [0, 0, amp_ma, amp_ma, 0, 0, -amp_ma, -amp_ma, 0, 0]
    axis.fill_between(x, y, color="#1f77b4", alpha=0.35, lw=0)
    axis.plot(x, y, color="#1f77b4", lw=1.6)
    axis.axhline(0, color="grey", lw=0.6)
    arrow = {"arrowstyle": "<->", "lw": 0.8}
    axis.annotate("", (0, amp_ma * 1.12), (width_us, amp_ma * 1.12), arrowprops=arrow)
    axis.text(width_us / 2, amp_ma * 1.17, f"phase\n{width_us:g} µs", ha="center",
              va="bottom", fontsize=8)
    axis.annotate("", (width_us, amp_ma * 0.12), (width_us + gap_us, amp_ma * 0.12),
                  arrowprops=arrow)
    axis.text(width_us + gap_us / 2, -amp_ma * 0.1, f"gap {gap_us:g} µs", ha="right",
              va="top", fontsize=8)
    axis.text(width_us / 2, amp_ma * 0.5, f"+{amp_ma:.3g}\nmA", ha="center", va="center",
              fontsize=8)
    axis.text(width_us + gap_us + width_us / 2, -amp_ma * 0.5, f"−{amp_ma:.3g}\nmA",
              ha="center", va="center", fontsize=8)
    axis.set_ylim(-amp_ma * 1.25, amp_ma * 1.75)
    axis.set_xlabel("µs", fontsize=8)
    axis.set_ylabel("mA", fontsize=8)
    axis.tick_params(labelsize=7)
    axis.set_title("pulse shape\n(symmetric biphasic)", fontsize=9)


def _phase_table(axis: Any, plan: Plan, program: Program) -> None:
    """A small table: each phase's name on one line, its times, frequency and width below."""
    axis.axis("off")
    many = len(plan.phases) > 6
    rows = []
    for count, (span, phase) in enumerate(zip(plan.phases, program.phases, strict=True)):
        if count == 12:
            rows.append(f"… and {len(plan.phases) - 12} more")
            break
        when = f"{format_min_s(span.start_s)}–{format_min_s(span.end_s)}"
        what = ("no current" if span.kind != "stim" else
                f"{_spec(phase.frequency_hz)} Hz, {_spec(phase.pulse_width_us)} µs")
        name = span.name if len(span.name) <= 30 else span.name[:29] + "…"
        rows.append(f"{name}\n   {when}  {what}")
    axis.text(0.0, 1.0, "\n".join(rows), va="top", ha="left", family="monospace",
              fontsize=6 if many else 7.5, transform=axis.transAxes,
              linespacing=1.1 if many else 1.25)


def _spec(value: float | Ramp | Sweep | None) -> str:
    """A frequency or width spec in a few characters: ``6``, ``10→2``, ``100~180``."""
    if isinstance(value, Sweep):
        return f"{value.low:g}~{value.high:g}"
    if isinstance(value, Ramp):
        return f"{value.start:g}→{value.end:g}"
    return "?" if value is None else f"{value:g}"


def _save(fig: Any, path: Path, fmt: str) -> None:
    try:
        fig.savefig(path, format=fmt, metadata={"Software": "emsctl"} if fmt == "png" else None)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from exc


# --------------------------------------------------------------------------- sessions


@dataclass(frozen=True)
class SessionSeries:
    """What a session journal says, as arrays ready to draw (times are session seconds)."""

    channels: tuple[int, ...]
    #: command times and, per channel, the commanded amplitude (mA) from that time on
    command_t_s: FloatArray
    command_ma: FloatArray
    #: (time, label, kind) of every stop, pause, resume, intensity change and fault
    markers: tuple[tuple[float, str, str], ...]
    #: (pause time, resume time or None) in session seconds
    pauses: tuple[tuple[float, float | None], ...]
    end_s: float


_FAULTS = frozenset({"electrode_off", "device_error", "device_reset", "link_lost"})


def session_series(journal: JournalRecord) -> SessionSeries:
    """Commands, markers and pauses of a journal (see :class:`SessionSeries`)."""
    sites = journal.header.get("sites")
    channels = tuple(sorted(int(k) for k in sites)) if isinstance(sites, dict) and sites else ()
    times: list[float] = []
    rows: list[list[float]] = []
    markers: list[tuple[float, str, str]] = []
    pauses: list[tuple[float, float | None]] = []
    end_s = 0.0
    for record in journal.records:
        t_s = _number(record.get("t_s"))
        end_s = max(end_s, t_s)
        kind, label = record.get("kind"), _marker_label(record)
        if record["type"] == "command":
            times.append(t_s)
            rows.append(_amplitudes(record.get("setpoints")))
        elif record["type"] == "stop":
            markers.append((t_s, f"stop: {record.get('reason', '?')}", "stop"))
        elif record["type"] == "event" and kind in ("pause", "resume", "intensity"):
            markers.append((t_s, label, str(kind)))
            if kind == "pause":
                pauses.append((t_s, None))
            elif kind == "resume" and pauses and pauses[-1][1] is None:
                pauses[-1] = (pauses[-1][0], t_s)
        elif record["type"] == "telemetry" and (kind in _FAULTS or (
                kind == "battery" and _number(record.get("value"), 100.0) <= 10)):
            markers.append((t_s, label, "fault"))
    if journal.footer is not None:
        end_s = max(end_s, _number(journal.footer.get("t_s")))
    width = max([len(r) for r in rows] + [max(channels, default=0)])
    if not channels:
        channels = tuple(range(1, width + 1))
    table = np.zeros((len(rows), width))
    for i, row in enumerate(rows):
        table[i, :len(row)] = row
    command_ma = table[:, [c - 1 for c in channels]] if rows else np.zeros((0, len(channels)))
    return SessionSeries(channels, np.asarray(times), command_ma.T, tuple(markers),
                         tuple(pauses), end_s)


def _amplitudes(setpoints: JsonValue) -> list[float]:
    if not isinstance(setpoints, list):
        return []
    return [_number(sp.get("amplitude_ma")) if isinstance(sp, dict) else 0.0
            for sp in setpoints]


def _number(value: JsonValue, default: float = 0.0) -> float:
    """A JSON number as float; ``default`` for anything else (booleans included)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return default


def _marker_label(record: dict[str, JsonValue]) -> str:
    kind = str(record.get("kind", ""))
    if kind == "intensity":
        return f"intensity → {record.get('target_pct', '?')} %"
    channel = record.get("channel")
    where = f" ch {channel}" if isinstance(channel, int) else ""
    return kind.replace("_", " ") + where


def session_plan(journal: JournalRecord) -> tuple[Plan | None, str]:
    """Recompile the plan a session ran from its journal header.

    Returns:
        ``(plan, basis)`` where ``basis`` says which thresholds were used, or ``(None, reason)``
        when the program or the thresholds cannot be recovered (the picture then shows only
        what was commanded).
    """
    from .journal import header_simulated  # noqa: PLC0415 - heavy imports, only for plots
    from .loader import load_program  # noqa: PLC0415
    from .profile import SYNTHETIC_THRESHOLDS, TOL_CAP_FACTOR  # noqa: PLC0415

    header = journal.header
    name, source = str(header.get("program", "")), str(header.get("program_source", ""))
    try:
        loaded = load_program(name if source == "builtin" else source)
    except InputError as exc:
        return None, f"plan not shown: {exc}"
    if header.get("program_sha256") not in (None, loaded.sha256):
        return None, "plan not shown: the program file has changed since this session"
    thresholds = _recorded_thresholds(header.get("thresholds"))
    basis = "recorded thresholds"
    if thresholds is None:
        if not header_simulated(header) or header.get("profile_version") not in (None, "synthetic"):
            return None, "plan not shown: the journal does not record the thresholds used"
        thresholds = {c.id: SYNTHETIC_THRESHOLDS for c in loaded.program.channels}
        basis = "the simulator's synthetic thresholds"
    elif header.get("profile_version") == "synthetic":
        basis = "the simulator's synthetic thresholds"
    if any(c.id not in thresholds for c in loaded.program.channels):
        return None, "plan not shown: thresholds are missing for some channels"
    limits = header.get("limits")
    peak_ma = _number(limits.get("peak_ma"), math.inf) if isinstance(limits, dict) else math.inf
    caps_ma = {ch: min(TOL_CAP_FACTOR * th.tol_ma, peak_ma) for ch, th in thresholds.items()}
    frequency_hz = _number(header.get("frequency_hz"), math.nan)
    plan = compile_plan(loaded.program, thresholds, profile_caps_ma=caps_ma,
                        frequency_hz=frequency_hz if math.isfinite(frequency_hz) else None)
    return plan, f"planned at {basis}"


def _recorded_thresholds(raw: JsonValue) -> dict[int, Thresholds] | None:
    """Thresholds from a header's ``thresholds`` ({channel: {st_ma, mt_ma, tol_ma}}), if valid."""
    if not isinstance(raw, dict) or not raw:
        return None
    out: dict[int, Thresholds] = {}
    for channel, values in raw.items():
        if not isinstance(values, dict) or not channel.isdigit():
            return None
        numbers = [_number(values.get(key), math.nan) for key in ("st_ma", "mt_ma", "tol_ma")]
        if not all(math.isfinite(v) and v > 0 for v in numbers):
            return None
        out[int(channel)] = Thresholds(*numbers)
    return out


def _planned_polyline(t_s: FloatArray, amp_ma: FloatArray,
                      pauses: Sequence[tuple[float, float | None]],
                      end_s: float) -> tuple[FloatArray, FloatArray]:
    """The planned polyline in session time: the program clock stands still while paused.

    Each pause cuts the line (a NaN) and shifts the rest of the plan by the pause's length.
    """
    xs: list[FloatArray] = []
    ys: list[FloatArray] = []
    offset_s, from_s = 0.0, 0.0
    cuts = [(start_s, resume_s if resume_s is not None else max(end_s, start_s))
            for start_s, resume_s in pauses]
    for pause_s, resume_s in [*cuts, (math.inf, math.inf)]:
        to_s = min(pause_s - offset_s, float(t_s[-1]))
        inside = (t_s > from_s) & (t_s < to_s)
        ends = np.array([from_s, to_s])
        xs += [ends[:1] + offset_s, t_s[inside] + offset_s, ends[1:] + offset_s, _NAN]
        ys += [np.interp(ends[:1], t_s, amp_ma), amp_ma[inside],
               np.interp(ends[1:], t_s, amp_ma), _NAN]
        if pause_s == math.inf or to_s >= t_s[-1]:
            break
        offset_s += resume_s - pause_s
        from_s = to_s
    return np.concatenate(xs), np.concatenate(ys)


def _session_s(program_s: float, pauses: Sequence[tuple[float, float | None]],
               end_s: float) -> float:
    offset_s = 0.0
    for start_s, resume_s in pauses:
        if start_s - offset_s < program_s:
            offset_s += (resume_s if resume_s is not None else max(end_s, start_s)) - start_s
    return program_s + offset_s


_MARKER_STYLE = {"stop": ("#c0392b", "-"), "pause": ("#e67e22", "--"),
                 "resume": ("#27ae60", "--"), "intensity": ("#8e44ad", ":"),
                 "fault": ("#c0392b", ":")}
_PAUSE_COLOUR = "#9e9e9e"


def _program_s(session_s: float, pauses: Sequence[tuple[float, float | None]],
               end_s: float) -> float:
    """The live view's clock at session time ``session_s``: it stands still while paused."""
    paused_s = 0.0
    for start_s, resume_s in pauses:
        stop_s = resume_s if resume_s is not None else max(end_s, start_s)
        if session_s > start_s:
            paused_s += min(session_s, stop_s) - start_s
    return session_s - paused_s


def _closed_pauses(pauses: Sequence[tuple[float, float | None]], end_s: float
                   ) -> list[tuple[float, float]]:
    return [(a, b if b is not None else max(end_s, a)) for a, b in pauses]


def _program_clock_axis(axis: Any, program_end_s: float,
                        pauses: Sequence[tuple[float, float | None]], end_s: float,
                        xlim_s: float) -> None:
    """Ticks at whole program-time steps, placed where the session was at that time."""
    from matplotlib.ticker import FixedFormatter, FixedLocator  # noqa: PLC0415

    step_s = _tick_step_s(program_end_s, 10)
    ticks = [k * step_s for k in range(int(program_end_s // step_s) + 1)]
    if program_end_s - ticks[-1] > step_s * 0.3:
        ticks.append(program_end_s)
    axis.xaxis.set_major_locator(FixedLocator([_session_s(t, pauses, end_s) for t in ticks]))
    axis.xaxis.set_major_formatter(FixedFormatter([format_min_s(t) for t in ticks]))
    axis.set_xlim(0.0, xlim_s)


def _stagger(items: Sequence[tuple[float, str]], span_s: float, width_px: float,
             rows: int = 3) -> list[tuple[float, str, int, str]]:
    """Event labels placed in rows so that none overlaps another: (x, text, row, align)."""
    s_per_px = span_s / max(width_px, 1.0)
    ends = [-math.inf] * rows
    placed = []
    for x, text in sorted(items):
        width_s = (len(text) * 5.6 + 10) * s_per_px  # ~5.6 px per character at 7.5 pt
        align = "left" if x + width_s <= span_s else "right"
        left = x if align == "left" else x - width_s
        row = next((r for r in range(rows) if left > ends[r]), None)
        if row is None:  # every row is taken here: the emptiest one, text shortened
            row = min(range(rows), key=lambda r: ends[r])
        ends[row] = left + width_s
        placed.append((x, text, row, align))
    return placed


def write_session_figure(journal: JournalRecord, path: Path) -> None:
    """Draw a session: planned against commanded amplitude per channel, on the live view's
    clock (program time; pauses are bands where it stood still), events named in a strip of
    their own above the channels, so no label lies over a band or a line.

    Raises:
        PlotExtraMissingError: matplotlib is not installed.
        InputError: the suffix is neither .png nor .svg, or the file cannot be written.
    """
    fmt = image_format(path)
    require_matplotlib()
    from matplotlib.lines import Line2D  # noqa: PLC0415 - the plot extra
    from matplotlib.patches import Patch  # noqa: PLC0415

    series = session_series(journal)
    plan, basis = session_plan(journal)
    header = journal.header
    raw_pct = header.get("intensity_pct")
    intensity_pct = float(raw_pct) if isinstance(raw_pct, int | float) else 100.0
    n = max(1, len(series.channels))
    fig = _figure(11.0, 2.0 * n + 2.4)
    grid = fig.add_gridspec(n + 1, 1, height_ratios=[0.6] + [2.0] * n, hspace=0.08)
    strip = fig.add_subplot(grid[0])
    axes = [fig.add_subplot(grid[i + 1], sharex=strip) for i in range(n)]
    stop_s = series.end_s
    pauses = series.pauses
    end_s = stop_s
    program_end_s = _program_s(stop_s, pauses, stop_s)
    if plan is not None:
        end_s = max(end_s, _session_s(plan.duration_s, pauses, stop_s))
        program_end_s = max(program_end_s, plan.duration_s)
    sites = header.get("sites") if isinstance(header.get("sites"), dict) else {}
    for row, (axis, channel) in enumerate(zip(axes, series.channels, strict=False)):
        top_ma = 1.0
        if plan is not None and channel in {c.channel for c in plan.channels}:
            t_s, amp_ma = _envelope(plan.channel(channel).segments)
            x, y = _planned_polyline(t_s, amp_ma * intensity_pct / 100.0, pauses, stop_s)
            x, y = _with_point_at(x, y, stop_s)
            ran = np.where(x <= stop_s + 1e-9, y, np.nan)
            rest = np.where(x >= stop_s - 1e-9, y, np.nan)
            axis.plot(x, ran, color="#9a9a9a", lw=3.0, alpha=0.7)
            axis.plot(x, rest, color="#9a9a9a", lw=1.5, alpha=0.6, ls="--")
            top_ma = max(top_ma, float(np.nanmax(y)))
        x = np.append(series.command_t_s, stop_s)
        y = np.append(series.command_ma[row], 0.0) if x.size > 1 else np.zeros(x.size)
        axis.step(x, y, where="post", color="#1f77b4", lw=1.1)
        top_ma = max(top_ma, float(y.max()) if y.size else 0.0)
        axis.set_ylim(0.0, top_ma * 1.2)
        site = sites.get(str(channel), "") if isinstance(sites, dict) else ""
        axis.set_ylabel(f"ch {channel} {site}\namplitude (mA)", fontsize=9)
        axis.tick_params(labelsize=8)
    for axis in [strip, *axes[:-1]]:
        axis.tick_params(labelbottom=False)
    _program_clock_axis(axes[-1], program_end_s, pauses, stop_s, end_s)
    axes[-1].set_xlabel("program time (min:s), the live view's clock: it stands still while "
                        "paused", fontsize=9)
    if plan is not None:
        spans = [(_session_s(s.start_s, pauses, stop_s), _session_s(s.end_s, pauses, stop_s),
                  s.name, s.kind != "stim") for s in plan.phases]
        fig.canvas.draw_idle()
        pieces = _cut_by_pauses(spans, pauses, stop_s)
        _phase_bands(axes, [piece[:4] for piece in pieces], axes[0],
                     [piece[4] for piece in pieces])
    for start_s, resume_s in _closed_pauses(pauses, stop_s):
        for axis in axes:
            axis.axvspan(start_s, resume_s, facecolor="white", edgecolor=_PAUSE_COLOUR,
                         hatch="////", lw=0, zorder=1)
    if stop_s < end_s - 1e-6:
        for axis in axes:
            axis.axvspan(stop_s, end_s, color="#f4f4f4", lw=0, zorder=0.5)
    _draw_events(strip, axes, series, stop_s, end_s, journal)
    strip.set_ylim(0.0, 1.0)
    strip.set_yticks([])
    strip.tick_params(bottom=False)
    for side in ("left", "right", "top"):
        strip.spines[side].set_visible(False)
    strip.set_facecolor("none")
    handles: list[Any] = [Line2D([], [], color="#9a9a9a", lw=3.0, alpha=0.7, label="planned"),
                          Line2D([], [], color="#1f77b4", lw=1.1, label="commanded")]
    if pauses:
        handles.append(Patch(facecolor="white", edgecolor=_PAUSE_COLOUR, hatch="////",
                             label="paused (the clock stood still)"))
    if stop_s < end_s - 1e-6:
        handles.append(Patch(facecolor="#f4f4f4", label="planned, not run (after the end)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8,
               frameon=False)
    fig.suptitle(_session_title(journal, basis), fontsize=11)
    _save(fig, path, fmt)


def _with_point_at(x: FloatArray, y: FloatArray, at_s: float) -> tuple[FloatArray, FloatArray]:
    """The polyline with a point inserted at ``at_s`` (so it can be split there)."""
    ok = ~np.isnan(x) & ~np.isnan(y)
    if not ok.any() or at_s <= float(np.nanmin(x)) or at_s >= float(np.nanmax(x)):
        return x, y
    index = int(np.searchsorted(np.where(np.isnan(x), -np.inf, x), at_s))
    value = float(np.interp(at_s, x[ok], y[ok]))
    if index > 0 and (np.isnan(y[index - 1]) or (index < len(y) and np.isnan(y[index]))):
        return x, y  # inside a gap (a pause): nothing to split
    return np.insert(x, index, at_s), np.insert(y, index, value)


def _cut_by_pauses(spans: Sequence[tuple[float, float, str, bool]],
                   pauses: Sequence[tuple[float, float | None]], end_s: float
                   ) -> list[tuple[float, float, str, bool, int]]:
    """Phase bands in session time with the pauses taken out (a pause is its own band); each
    piece keeps its phase's number."""
    out: list[tuple[float, float, str, bool, int]] = []
    closed = _closed_pauses(pauses, end_s)
    for number, (start_s, stop_s, name, guide) in enumerate(spans):
        pieces = [(start_s, stop_s)]
        for pause_start, pause_end in closed:
            cut = []
            for a, b in pieces:
                if pause_end <= a or pause_start >= b:
                    cut.append((a, b))
                    continue
                if pause_start > a:
                    cut.append((a, pause_start))
                if pause_end < b:
                    cut.append((pause_end, b))
            pieces = cut
        longest = max(pieces, key=lambda p: p[1] - p[0], default=None)
        for piece in pieces:  # the name once, on the longest piece
            out.append((piece[0], piece[1], name if piece == longest else "", guide, number))
    return out


def _draw_events(strip: Any, axes: Sequence[Any], series: SessionSeries, stop_s: float,
                 end_s: float, journal: JournalRecord) -> None:
    """Lines through the channels at each event; its words in the strip above, in rows."""
    from matplotlib.transforms import blended_transform_factory  # noqa: PLC0415

    entries: list[list[Any]] = []  # [time, words, colour]
    for t_s, label, kind in series.markers:
        if kind in ("pause", "resume"):
            continue  # a pause is drawn as a band, and named below
        colour, style = _MARKER_STYLE[kind]
        for axis in axes:
            axis.axvline(t_s, color=colour, ls=style, lw=1.0, zorder=3)
        entries.append([t_s, _stop_words(journal) if kind == "stop" else label, colour])
    for start_s, resume_s in _closed_pauses(series.pauses, stop_s):
        length = f"paused {format_min_s(resume_s - start_s)}"
        cause = next((e for e in entries if abs(e[0] - start_s) < 1e-6), None)
        if cause is not None:  # the fault that paused it: one label for both
            cause[1] = f"{cause[1]}: {length}"
        else:
            entries.append([start_s, length, "#616161"])
    strip.figure.canvas.draw_idle()
    width_px = strip.get_position().width * strip.figure.get_figwidth() * 100
    transform = blended_transform_factory(strip.transData, strip.transAxes)
    colours = {(e[0], e[1]): e[2] for e in entries}
    for x, text, row, align in _stagger([(e[0], e[1]) for e in entries], max(end_s, 1e-9),
                                        width_px):
        colour = colours.get((x, text), "#333333")
        y = 0.1 + 0.3 * row
        strip.plot([x, x], [0.0, y], color=colour, lw=0.8, transform=transform)
        strip.text(x, y, (" " + text) if align == "left" else (text + " "), ha=align,
                   va="bottom", fontsize=7.5, color=colour, transform=transform)


def _stop_words(journal: JournalRecord) -> str:
    footer = journal.footer
    reason = str(footer.get("end_reason", "")) if footer is not None else ""
    return {"completed": "completed", "stopped": "stopped by you", "signal": "stopped",
            "fault": "ended early (fault)", "guard": "stopped by a safety check"}.get(
                reason, "stop")


def _session_title(journal: JournalRecord, basis: str) -> str:
    header, footer = journal.header, journal.footer
    session = str(header.get("session_id", journal.path.stem))[:8]
    started = str(header.get("started_utc", "?"))[:16].replace("T", " ")
    series = session_series(journal)
    at = format_min_s(_program_s(series.end_s, series.pauses, series.end_s))
    end = "no footer (killed or incomplete)" if footer is None else (
        f"{_stop_words(journal)} at {at} (program time)")
    return (f"session {session} · {header.get('program', '?')} · {header.get('device_url', '?')}"
            f" · started {started} UTC\n{end} · {basis}")
