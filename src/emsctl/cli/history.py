"""``emsctl history``: list past sessions from their journals, or show one (HZ-22).

Without an argument it prints one row per journal (a rich table on a terminal, aligned plain
text otherwise); with a session id, id prefix or journal path it prints the header, a timeline
of everything but the commands, and the footer figures. ``--format json`` prints the data;
``--plot FILE`` draws the session instead (see :mod:`emsctl.plotting`). It only reads
journals: it never writes, moves or repairs one.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import click

from ..journal import (
    INCOMPLETE,
    JournalRecord,
    JsonValue,
    SessionSummary,
    find_journal,
    journal_dir,
    list_journals,
    read_journal,
    summarize,
)
from .common import json_text

__all__ = ["history"]

_COLUMNS = ("DATE (UTC)", "SESSION", "PROGRAM", "DEVICE", "DURATION", "END", "PEAK mA")


@click.command("history")
@click.argument("session", required=False)
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Text for people, JSON for programs.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=None,
              help="Journal folder [default: $EMSCTL_STATE_DIR/journals or the user state dir].")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Draw SESSION, planned against commanded, to FILE.png or .svg.")
def history(session: str | None, output_format: str, directory: Path | None,
            plot_path: Path | None) -> None:
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
    else:
        _show(journal)


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
    minutes, seconds = divmod(round(duration_s), 60)
    return f"{minutes}:{seconds:02d}"


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


def _show(journal: JournalRecord) -> None:
    header, footer = journal.header, journal.footer
    summary = summarize(journal)
    sites, limits = header.get("sites"), header.get("limits")
    lines = [
        ("session", summary.session_id),
        ("started", _date(summary.started_utc) + " UTC"),
        ("program", f"{summary.program} (sha256 {str(header.get('program_sha256', '?'))[:16]}…,"
                    f" from {header.get('program_source', '?')})"),
        ("device", f"{summary.device_url} ({summary.device_model or 'unknown model'})"),
        ("sites", ", ".join(f"{ch}: {site}" for ch, site in sites.items())
         if isinstance(sites, dict) and sites else "not recorded"),
        ("intensity", f"{header.get('intensity_pct', '?')} %"),
        ("profile", str(header.get("profile_version") or "none")),
        ("limits", _fields(limits, ()) if isinstance(limits, dict) else "not recorded"),
        ("emsctl", str(header.get("emsctl_version", "?"))),
        ("journal", str(journal.path)),
    ]
    for label, text in lines:
        click.echo(f"{label:<10} {text}")
    click.echo("\ntimeline")
    commands = 0
    for record in journal.records:
        if record["type"] == "command":
            commands += 1
            continue
        kind = record.get("kind") if record["type"] in ("event", "telemetry") else None
        label = f"{record['type']}:{kind}" if isinstance(kind, str) else str(record["type"])
        t_s = record["t_s"]
        t_text = f"{t_s:9.2f} s" if isinstance(t_s, int | float) else "        ? s"
        click.echo(f"  {t_text}  {label:<22} {_fields(record, ('type', 't_s', 'kind'))}".rstrip())
    click.echo(f"\ncommands   {commands} recorded, peak {summary.peak_ma:.1f} mA")
    click.echo(f"duration   {_duration(summary.duration_s)} ({summary.duration_s:.1f} s)")
    if footer is None:
        cut = " (its last line was cut)" if journal.truncated else ""
        click.echo(f"end        {INCOMPLETE}: the journal has no footer{cut}")
        return
    click.echo(f"end        {summary.end_reason}")
    delivered = footer.get("delivered")
    if isinstance(delivered, dict):
        for name, figure in delivered.items():
            click.echo(f"  {name:<24} {json_text(figure, indent=None, ensure_ascii=False)}")
