"""``emsctl history``: list past sessions from their journals, or show one (HZ-22).

Without an argument it prints one row per journal (a rich table on a terminal, aligned plain
text otherwise); a session whose writer is still alive is ``running``, one whose writer died
without a footer ``killed/incomplete``. With a session id, id prefix or journal path it prints
a human summary: program, device, start, length, how it ended, intensity, and per channel the
peak, rms and charge, rounded. ``--events`` adds the recorded details and the event log (device
acknowledgements counted, not listed; the limits wrapped, not one long line); ``--format
json`` prints the data; ``--plot FILE`` draws the session instead (see :mod:`emsctl.plotting`).
It only reads journals: it never writes, moves or repairs one.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import click

from ..journal import (
    INCOMPLETE,
    RUNNING,
    JournalRecord,
    JsonValue,
    SessionSummary,
    find_journal,
    journal_dir,
    list_journals,
    read_journal,
    summarize,
)
from .common import json_text, verbosity
from .summary import minutes, site_words, stop_confirmed
from .words import with_id_words, wrap

__all__ = ["history"]

_COLUMNS = ("DATE (UTC)", "SESSION", "PROGRAM", "DEVICE", "DURATION", "END", "PEAK mA")


@click.command("history")
@click.argument("session", required=False)
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Text for people, JSON for programs.")
@click.option("--events", "show_events", is_flag=True,
              help="With SESSION: also the recorded details and every event (emsctl -v "
              "history does the same).")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=None,
              help="Journal folder [default: $EMSCTL_STATE_DIR/journals or the user state dir].")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Draw SESSION, planned against commanded, to FILE.png or .svg.")
def history(session: str | None, output_format: str, show_events: bool,
            directory: Path | None, plot_path: Path | None) -> None:
    """List past sessions, or show SESSION (an id, a unique id prefix, or a journal path).

    \f
    Raises:
        InputError: SESSION matches no journal or several, or its journal is corrupt; --plot
            without SESSION, with a suffix other than .png/.svg, or without matplotlib.
    """
    if session is None:
        if plot_path is not None:
            raise click.UsageError("--plot needs a SESSION to draw")
        _list(list_journals(directory), journal_dir(directory), output_format)
        return
    journal = read_journal(find_journal(session, directory))
    if plot_path is not None:
        from ..plotting import write_session_figure  # noqa: PLC0415 - the plot extra

        write_session_figure(journal, plot_path)
        click.echo(f"wrote {plot_path}")
        return
    if output_format == "json":
        click.echo(json_text(_journal_json(journal), ensure_ascii=False))
        return
    _show(journal)
    if show_events or verbosity() > 0:
        _details(journal)
    else:
        click.echo("")
        short = summarize(journal).session_id[:8]
        click.echo("\n".join(wrap(f"'emsctl history {short} --events' adds every recorded "
                                  "event; --format json gives the data; --plot FILE.png draws "
                                  "it.")))


def _summary_json(summary: SessionSummary) -> dict[str, JsonValue]:
    return {
        "session_id": summary.session_id,
        "started_utc": None if summary.started_utc is None else summary.started_utc.isoformat(),
        "program": summary.program,
        "device_url": summary.device_url,
        "device_model": summary.device_model,
        "sites": list(summary.sites),
        "duration_s": summary.duration_s,
        "end_reason": summary.end_reason,
        "peak_ma": summary.peak_ma,
        "complete": summary.complete,
        "running": summary.running,
        "problem": summary.problem,
        "path": str(summary.path),
    }


def _journal_json(journal: JournalRecord) -> dict[str, JsonValue]:
    return {
        "summary": _summary_json(summarize(journal)),
        "header": journal.header,
        "records": list(journal.records),
        "footer": journal.footer,
        "truncated": journal.truncated,
    }


def _date(stamp: datetime | None) -> str:
    return "?" if stamp is None else f"{stamp:%Y-%m-%d %H:%M}"


def _duration(duration_s: float) -> str:
    minutes_, seconds = divmod(round(duration_s), 60)
    return f"{minutes_}:{seconds:02d}"


def _rows(summaries: Sequence[SessionSummary]) -> list[tuple[str, ...]]:
    return [(_date(s.started_utc), s.session_id[:8], s.program, s.device_url,
             _duration(s.duration_s), s.end_reason, f"{s.peak_ma:.1f}") for s in summaries]


def _list(summaries: list[SessionSummary], folder: Path, output_format: str) -> None:
    if output_format == "json":
        click.echo(json_text([_summary_json(s) for s in summaries], ensure_ascii=False))
        return
    for summary in summaries:
        if summary.problem:
            click.echo(f"warning: {summary.problem}", err=True)
    if not summaries:
        click.echo(f"No sessions recorded in {folder}.")
        return
    rows = _rows(summaries)
    if sys.stdout.isatty():
        from rich.console import Console  # noqa: PLC0415 - only for terminals
        from rich.table import Table  # noqa: PLC0415

        table = Table(*_COLUMNS)
        for row in rows:
            table.add_row(*row)
        Console().print(table)
        return
    widths = [max(len(cell) for cell in column) for column in zip(_COLUMNS, *rows, strict=True)]
    for row in (_COLUMNS, *rows):
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                   .rstrip())


def _fields(record: dict[str, JsonValue], skip: Sequence[str]) -> str:
    return " ".join(f"{key}={json_text(value, indent=None, ensure_ascii=False)}"
                    for key, value in record.items() if key not in skip and value not in ("", None))


def _number(value: JsonValue) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def _local(stamp: datetime | None) -> str:
    if stamp is None:
        return "not recorded"
    local = stamp.astimezone()
    offset = local.utcoffset()
    if offset is None or not offset:
        return f"{local:%a %d %b %Y, %H:%M} UTC"
    return f"{local:%a %d %b %Y, %H:%M} ({local:%Z}; {stamp:%H:%M} UTC)"


def _program_title(name: str) -> str:
    from ..errors import EmsError  # noqa: PLC0415
    from ..loader import load_program  # noqa: PLC0415

    try:
        return f"{load_program(name).program.title} ({name})"
    except EmsError:
        return name


def _how_it_ended(summary: SessionSummary, footer: dict[str, JsonValue] | None,
                  truncated: bool) -> str:
    if summary.running:
        return "still running: the session's process is alive and writing this journal"
    if footer is None:
        cut = " and its last line was cut" if truncated else ""
        return (f"{INCOMPLETE}: the journal has no footer{cut}: the process was killed or "
                "crashed, and whether the device's output went off was not recorded (the "
                "device's own watchdog stops it within a second of the last command)")
    reason = summary.end_reason
    raw = footer.get("message")
    message = raw if isinstance(raw, str) else ""
    confirmed = stop_confirmed(message, [])
    off = "; output off" if confirmed else "; the device did not confirm its output was off"
    words = {"completed": "completed: the program ran to its end",
             "stopped": "stopped by you",
             "signal": message or "stopped",
             "guard": "stopped by a safety check",
             "fault": "ended early"}.get(reason, reason)
    if reason in ("guard", "fault") and message:
        words += f": {with_id_words(message)}"
    return words + off


def _intensity(journal: JournalRecord) -> str:
    start = _number(journal.header.get("intensity_pct"))
    changes = [_number(r.get("target_pct")) for r in journal.records
               if r["type"] == "event" and r.get("kind") == "intensity"]
    levels = [c for c in changes if c is not None]
    first = "?" if start is None else f"{start:.0f} %"
    if not levels:
        return f"{first} all through"
    steps = " → ".join(f"{c:.0f} %" for c in levels[:8]) + (" …" if len(levels) > 8 else "")
    return f"started at {first}, then {steps} ({len(levels)} change{'s' * (len(levels) > 1)})"


def _channel_lines(journal: JournalRecord) -> list[str]:
    header, footer = journal.header, journal.footer
    sites = header.get("sites") if isinstance(header.get("sites"), dict) else {}
    assert isinstance(sites, dict)
    delivered = footer.get("delivered") if footer is not None else None
    channels = delivered.get("channels") if isinstance(delivered, dict) else None
    lines = []
    if isinstance(channels, dict) and channels:
        for channel, figures in channels.items():
            if not isinstance(figures, dict) or not figures.get("pulse_count"):
                continue  # a device channel the program did not use
            site = sites.get(channel)
            where = f"{site_words(site)} ({site})" if isinstance(site, str) else "channel"
            peak, rms = _number(figures.get("peak_ma")), _number(figures.get("rms_ma"))
            charge = _number(figures.get("max_phase_charge_uc"))
            parts = [f"peak {peak:.1f} mA" if peak is not None else "peak ?"]
            if rms is not None:
                parts.append(f"rms {rms:.2f} mA")
            if charge is not None:
                parts.append(f"charge at most {charge:.1f} µC per pulse phase")
            lines.append(f"{channel}: {where}: {', '.join(parts)}")
        return lines
    # a real device: what was commanded (the journal's commands), per channel
    peaks: dict[str, float] = {}
    for record in journal.records:
        setpoints = record.get("setpoints")
        if record["type"] != "command" or not isinstance(setpoints, list):
            continue
        for index, sp in enumerate(setpoints, start=1):
            value = _number(sp.get("amplitude_ma")) if isinstance(sp, dict) else None
            if value is not None:
                peaks[str(index)] = max(peaks.get(str(index), 0.0), value)
    for channel, site in sites.items():
        where = f"{site_words(site)} ({site})" if isinstance(site, str) else "channel"
        lines.append(f"{channel}: {where}: peak {peaks.get(str(channel), 0.0):.1f} mA commanded "
                     "(the device does not report what it delivered)")
    return lines


def _show(journal: JournalRecord) -> None:
    """The human summary of one session."""
    footer = journal.footer
    summary = summarize(journal)
    delivered = footer.get("delivered") if footer is not None else None
    stim_s = _number(delivered.get("stim_time_s")) if isinstance(delivered, dict) else None
    length = _duration(summary.duration_s)
    if stim_s is not None:
        length += f", {minutes(stim_s)} of it with current"
    if summary.running:
        length += " so far"
    model = summary.device_model or "unknown model"
    rows = [
        ("Started", _local(summary.started_utc)),
        ("Device", f"{model} ({summary.device_url})"),
        ("Length", length),
        ("Ended", _how_it_ended(summary, footer, journal.truncated)),
        ("Intensity", _intensity(journal)),
    ]
    channel_lines = _channel_lines(journal)
    acks = sum(1 for r in journal.records if r["type"] == "telemetry"
               and r.get("kind") in ("ack", "applied"))
    click.echo(f"Session {summary.session_id[:8]}: {_program_title(summary.program)}")
    width = max(len(label) for label, _ in rows) + 2
    for label, text in rows:
        head = f"  {label:<{width}}"
        click.echo("\n".join(wrap(text, label=head, indent=len(head))))
    head = f"  {'Channels':<{width}}"
    for number, line in enumerate(channel_lines or ["none recorded"]):
        label = head if number == 0 else " " * len(head)
        click.echo("\n".join(wrap(line, label=label, indent=len(head) + 3)))
    if acks:
        click.echo("\n".join(wrap(f"{acks} acknowledgements recorded (each change the device "
                                  "applied; counted, not listed)",
                                  label=f"  {'Reports':<{width}}", indent=len(head))))


def _details(journal: JournalRecord) -> None:
    """What ``--events`` adds: the recorded details, then every event but the commands and
    the device's acknowledgements (counted)."""
    header = journal.header
    summary = summarize(journal)
    sites, limits = header.get("sites"), header.get("limits")
    click.echo("")
    lines = [
        ("session", summary.session_id),
        ("program", f"{summary.program} (sha256 {str(header.get('program_sha256', '?'))[:16]}…,"
                    f" from {header.get('program_source', '?')})"),
        ("sites", ", ".join(f"{ch}: {site}" for ch, site in sites.items())
         if isinstance(sites, dict) and sites else "not recorded"),
        ("profile", str(header.get("profile_version") or "none")),
        ("emsctl", str(header.get("emsctl_version", "?"))),
        ("journal", str(journal.path)),
    ]
    for label, text in lines:
        click.echo("\n".join(wrap(text, label=f"{label:<10} ", indent=11)))
    if isinstance(limits, dict):
        pairs = " ".join(f"{key}={json_text(value, indent=None)}" for key, value in limits.items())
        click.echo("\n".join(wrap(pairs, label=f"{'limits':<10} ", indent=11)))
    else:
        click.echo(f"{'limits':<10} not recorded")
    click.echo("\nevents")
    commands = acks = 0
    for record in journal.records:
        if record["type"] == "command":
            commands += 1
            continue
        kind = record.get("kind") if record["type"] in ("event", "telemetry") else None
        if record["type"] == "telemetry" and kind in ("ack", "applied"):
            acks += 1
            continue
        label = f"{record['type']}:{kind}" if isinstance(kind, str) else str(record["type"])
        t_s = record["t_s"]
        t_text = f"{t_s:9.2f} s" if isinstance(t_s, int | float) else "        ? s"
        click.echo(f"  {t_text}  {label:<22} {_fields(record, ('type', 't_s', 'kind'))}".rstrip())
    click.echo(f"\ncommands   {commands} recorded, peak {summary.peak_ma:.1f} mA")
    click.echo(f"acks       {acks} device acknowledgements (not listed)")
    click.echo(f"duration   {_duration(summary.duration_s)} ({summary.duration_s:.1f} s)")
    footer = journal.footer
    if footer is None:
        if summary.running:
            click.echo(f"end        {RUNNING}: the writer is still alive")
            return
        cut = " (its last line was cut)" if journal.truncated else ""
        click.echo(f"end        {INCOMPLETE}: the journal has no footer{cut}")
        return
    click.echo(f"end        {summary.end_reason}")
    delivered = footer.get("delivered")
    if isinstance(delivered, dict):
        for name, figure in delivered.items():
            text = json_text(_rounded(figure), indent=None, ensure_ascii=False)
            click.echo("\n".join(wrap(text, label=f"  {name:<24} ", indent=27)))


def _rounded(value: JsonValue) -> JsonValue:
    """Floats to 3 decimals, all the way down (160.40000000000003 → 160.4)."""
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value
