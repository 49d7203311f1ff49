"""The session figure (``emsctl history SESSION --plot``): what was planned against what was
commanded, on the live view's clock (program time; pauses are bands where the clock stood
still), with the events named in a strip of their own above the channels.

Reads only the journal; never talks to a device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..amplitude import Thresholds
from ..errors import InputError
from ..journal import JournalRecord, JsonValue
from ..plan import Plan, compile_plan
from .common import (
    FloatArray,
    envelope,
    format_min_s,
    image_format,
    new_figure,
    require_matplotlib,
    save,
    shade_phases,
    tick_step_s,
)

__all__ = ["SessionSeries", "session_plan", "session_series", "write_session_figure"]

_NAN = np.array([np.nan])  # breaks a matplotlib line


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
    from ..journal import header_simulated  # noqa: PLC0415 - heavy imports, only for plots
    from ..loader import load_program  # noqa: PLC0415
    from ..profile import SYNTHETIC_THRESHOLDS, TOL_CAP_FACTOR  # noqa: PLC0415

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

    step_s = tick_step_s(program_end_s, 10)
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
    fig = new_figure(11.0, 2.0 * n + 2.4)
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
            t_s, amp_ma = envelope(plan.channel(channel).segments)
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
        shade_phases(axes, [piece[:4] for piece in pieces], axes[0],
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
    save(fig, path, fmt)


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
