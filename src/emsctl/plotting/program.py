"""The program figure: per channel the amplitude envelope a person would get, with the caps as limit
lines, the frequency and pulse width over time, the phases as shaded bands, and the symmetric
biphasic pulse shape (PNG or SVG)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..plan import Plan
from ..program import Program, Ramp, Sweep
from .common import (
    FloatArray,
    envelope,
    format_min_s,
    format_time_axis,
    image_format,
    new_figure,
    save,
    shade_phases,
)

__all__ = ["INTERPHASE_US", "stepped", "write_program_figure"]

#: Gap between the two phases of a pulse, drawn in the pulse inset. Programs do not set it;
#: 100 µs is what ScienceMode2 devices deliver (the only protocol that documents it).
INTERPHASE_US = 100.0


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
    fig = new_figure(11.0, 2.0 * n + 3.6)
    grid = fig.add_gridspec(n + 2, 2, width_ratios=[4.3, 1.0], height_ratios=[2.0] * n + [1.2] * 2)
    left = [fig.add_subplot(grid[0, 0])]
    left += [fig.add_subplot(grid[i, 0], sharex=left[0]) for i in range(1, n + 2)]
    program_caps = {c.id: c.max_amplitude_ma for c in program.channels}
    for axis, cplan in zip(left, plan.channels, strict=False):
        t_s, amp_ma = stepped(*envelope(cplan.segments), step_ma)
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
    format_time_axis(left[-1], plan.duration_s)
    left[-1].set_xlabel("time (min:s)")
    for axis in left[:-1]:
        axis.tick_params(labelbottom=False)
    for axis in left:
        axis.grid(axis="y", color="white", lw=0.8)
        axis.tick_params(labelsize=8)
    spans = [(s.start_s, s.end_s, s.name, s.kind != "stim") for s in plan.phases]
    fig.canvas.draw_idle()
    shade_phases(left, spans, left[0])
    _pulse_inset(fig.add_subplot(grid[0:max(1, n), 1]), plan, step_ma)
    facts = fig.add_subplot(grid[max(1, n):, 1])
    _phase_table(facts, plan, program)
    import textwrap  # noqa: PLC0415

    fig.suptitle(f"{program.name}: {program.title}   ·   total {format_min_s(plan.duration_s)}"
                 + "".join(f"\n{line}" for line in textwrap.wrap(note, 110,
                                                                  break_on_hyphens=False)),
                 fontsize=11)
    save(fig, path, fmt)


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
