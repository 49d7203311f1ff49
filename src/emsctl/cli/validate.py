"""``emsctl validate PATH…``: check program files against every limit, for people and for CI.

Exit 0 when every file is valid, 1 when any file breaks a limit, 2 when any input is
unreadable or not a program (2 wins over 1). Every problem is reported, not just the first.
Imports only the core: never pyserial, bleak or matplotlib.

Output: everything about the files checked goes to **stdout**, in every format — the line (or
workflow annotation) of each file and problem, the JSON document, and the closing count.
**stderr** carries only what stops validate before it checks any file: a usage error, an
unreadable or loosening ``--limits`` file, an unknown ``--device`` URL (exit 2, one sentence).

Each problem is one report (:mod:`emsctl.reports`): violations that differ only by channel are
merged and name every channel; a report names its phase and when that phase starts, points at
the line and column of the file where known, and prints as one line of at most ~200 characters.

Formats:

- ``text``: ``ok       PATH``, ``FAIL     PATH:LINE:COL: TITLE: WHERE: WHAT`` for a broken
  limit, ``invalid  PATH:LINE:COL: …`` for a file that does not load, ``warning  …``, then
  ``N of M program files valid``. The report after the location (title, where, what) is at
  most 200 characters; a longer message is cut with "…" (JSON keeps it whole).
- ``github``: the same, with every problem as a GitHub Actions workflow command
  (``::error file=PATH,line=LINE,col=COL,title=TITLE::WHERE: WHAT``) so it shows on the line;
  what GitHub shows of it, the title and the message, is at most 200 characters.
- ``json``: ``{"files": [{"path", "status", "problems", "warnings"}], "valid", "summary"}``;
  each problem is :meth:`emsctl.reports.Report.as_dict`.

``-q`` prints only failures (no ``ok`` lines, warnings or count; in JSON only failed files);
``-v`` also lists every check of every file with its outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import EmsError
from .common import json_text, limits_option, load_limits, verbosity

if TYPE_CHECKING:
    from ..contract import Capabilities
    from ..reports import Report

__all__ = ["CHECKS", "FileResult", "check_file", "validate"]

#: Every check of a file, in order: (ID, what it checks). "device" runs only with --device.
CHECKS: tuple[tuple[str, str], ...] = (
    ("toml", "readable UTF-8 TOML"),
    ("model", "program model: keys, types, ranges, waveform (L1, L2), sites (L23)"),
    ("L3", "peak current"),
    ("L4", "rms current"),
    ("L6", "pulse width"),
    ("L7", "pulse frequency"),
    ("L8", "phase charge and Shannon k"),
    ("L9", "current density"),
    ("L10", "power density"),
    ("L13", "electrode area"),
    ("L14", "start from zero"),
    ("L15", "soft start"),
    ("L16", "ramps"),
    ("L17", "no step-ups"),
    ("L18", "motor trains"),
    ("L19", "session length"),
    ("device", "what the device can do"),
)
_LOAD_TITLES = ("Invalid TOML", "Not UTF-8 text", "Unreadable file", "No such file",
                "Empty path", "No program files", "Invalid input")


@dataclass
class FileResult:
    """The verdict on one file (or on a path that named no file)."""

    path: str
    status: str  # "ok" | "violation" | "error"
    problems: list[Report] = field(default_factory=list)
    warnings: list[Report] = field(default_factory=list)
    device: bool = False  # checked against a device
    #: How the program was fitted to the device (notices; the file is still valid).
    adaptations: list[Report] = field(default_factory=list)

    def checks(self) -> list[tuple[str, str, str]]:
        """(outcome, ID, what) of every check: "pass", "FAIL", "warn" or "skip" (not run)."""
        loaded = self.status != "error"
        failed_to_read = any(p.title in _LOAD_TITLES for p in self.problems)
        out = []
        for check_id, what in CHECKS:
            if check_id == "device" and not self.device:
                continue
            if check_id == "toml":
                outcome = "FAIL" if failed_to_read else "pass"
            elif check_id == "model":
                outcome = "pass" if loaded else "skip" if failed_to_read else "FAIL"
            elif not loaded:
                outcome = "skip"
            elif any(p.limit == check_id for p in self.problems):
                outcome = "FAIL"
            elif any(w.limit == check_id for w in self.warnings):
                outcome = "warn"
            else:
                outcome = "pass"
            out.append((outcome, check_id, what))
        return out

    def as_dict(self, verbose: bool = False) -> dict[str, object]:
        """JSON-ready data; with ``verbose`` also every check."""
        data: dict[str, object] = {
            "path": self.path, "status": self.status,
            "problems": [p.as_dict() for p in self.problems],
            "warnings": [w.as_dict() for w in self.warnings],
            "adaptations": [a.as_dict() for a in self.adaptations],
        }
        if verbose:
            data["checks"] = [{"check": c, "what": w, "outcome": o} for o, c, w in self.checks()]
        return data


def check_file(path: Path, limits_path: Path | None,
               capabilities: Capabilities | None = None) -> FileResult:
    """Load, compile and verify one file (against a device when given); never raises."""
    from ..loader import load_program_file  # noqa: PLC0415 - keep start-up lazy
    from ..plan import compile_plan  # noqa: PLC0415
    from ..reports import input_reports, limit_reports  # noqa: PLC0415
    from ..verify import verify  # noqa: PLC0415

    device = capabilities is not None
    try:
        loaded = load_program_file(path)
    except EmsError as exc:
        return FileResult(str(path), "error", input_reports(exc, str(path)), device=device)
    limits = load_limits(limits_path)
    result = FileResult(str(path), "ok", device=device)
    if capabilities is None:
        plan = compile_plan(loaded.program)
        violations = verify(plan, limits)
    else:
        from ..fit import check_on_device  # noqa: PLC0415

        checked = check_on_device(loaded.program, limits, capabilities)
        plan, violations = checked.plan, list(checked.violations)
        result.adaptations = checked.fit.reports(loaded.text)
    reports = limit_reports(violations, loaded.text, loaded.program, plan)
    for report in reports:
        (result.warnings if report.severity == "warning" else result.problems).append(report)
    if result.problems:
        result.status = "violation"
    return result


def _not_a_file(path: str, title: str, message: str) -> FileResult:
    from ..reports import Report  # noqa: PLC0415

    return FileResult(path, "error", [Report("error", title, message)])


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--format", "fmt", type=click.Choice(["text", "json", "github"]), default="text",
              show_default=True, help="Output format; 'github' prints workflow annotations.")
@click.option("-d", "--device", "device_url", default=None, metavar="URL",
              help="Also check that this device can express each program (nothing is sent; "
              "the device is not opened).")
@click.option("-q", "--quiet", is_flag=True, help="Print only failures (no ok lines, warnings "
              "or count).")
@click.option("-v", "--verbose", is_flag=True, help="Also list every check of every file.")
@limits_option
def validate(paths: tuple[str, ...], fmt: str, device_url: str | None, quiet: bool,
             verbose: bool, limits_path: Path | None) -> None:
    """Check program files and folders (searched for *.toml) against every safety limit.

    Results go to stdout in every format; stderr only has errors that stop validate before it
    checks a file (usage, --limits, --device). Exit 0 all valid, 1 a limit is broken, 2 a file
    is not a readable program.
    """
    from ..loader import find_program_files  # noqa: PLC0415

    if quiet and verbose:
        raise click.UsageError("-q/--quiet and -v/--verbose exclude each other")
    if not quiet and not verbose:  # the global emsctl -q / -v, when validate has neither
        level = verbosity()
        quiet, verbose = level < 0, level > 0
    load_limits(limits_path)  # a bad limits file is bad input before anything else
    capabilities = None
    if device_url is not None:
        from ..devices import open_device  # noqa: PLC0415 - only with --device

        capabilities = open_device(device_url).capabilities  # made, never connected
    results: list[FileResult] = []
    for name in paths:
        if not name:  # an unset shell variable must not quietly mean "the current folder"
            results.append(_not_a_file("''", "Empty path", "an empty argument names no file"))
            continue
        path = Path(name)
        if not path.exists() and not path.is_symlink():
            results.append(_not_a_file(str(path), "No such file", "nothing at this path"))
            continue
        files = list(find_program_files([path]))
        if path.is_dir() and not files:
            results.append(_not_a_file(str(path), "No program files",
                                       "no .toml files in this folder"))
        results.extend(check_file(f, limits_path, capabilities) for f in files)
    _report(results, fmt, quiet=quiet, verbose=verbose)
    if any(r.status == "error" for r in results):
        raise SystemExit(2)
    if any(r.status == "violation" for r in results):
        raise SystemExit(1)


def _summary(results: list[FileResult]) -> str:
    valid = sum(r.status == "ok" for r in results)
    return f"{valid} of {len(results)} program files valid"


def _report(results: list[FileResult], fmt: str, *, quiet: bool, verbose: bool) -> None:
    if fmt == "json":
        shown = [r for r in results if r.status != "ok"] if quiet else results
        click.echo(json_text({"files": [r.as_dict(verbose) for r in shown],
                              "valid": all(r.status == "ok" for r in results),
                              "summary": _summary(results)}, ensure_ascii=False))
        return
    for r in results:
        if r.status == "ok" and not quiet:
            click.echo(f"ok       {r.path}")
        label = "invalid " if r.status == "error" else "FAIL    "
        for p in r.problems:
            click.echo(_github(r.path, p) if fmt == "github" else _line(label, r.path, p))
        if not quiet:
            for w in r.warnings:
                click.echo(_github(r.path, w) if fmt == "github" else _line("warning ", r.path, w))
            for a in r.adaptations if r.status == "ok" else ():
                click.echo(_github(r.path, a) if fmt == "github" else _line("adapted ", r.path, a))
        if verbose:
            for outcome, check_id, what in r.checks():
                click.echo(f"  {outcome:<5} {check_id:<6} {what}")
    if not quiet:
        click.echo(_summary(results))


def _located(path: str, report: Report) -> str:
    if report.line is None:
        return path
    return f"{path}:{report.line}" + (f":{report.col}" if report.col is not None else "")


def _line(label: str, path: str, report: Report) -> str:
    """``FAIL     path:12:1: Title: where: what``; the report itself is at most 200 characters."""
    return f"{label} {_located(path, report)}: {report.summary()}"


def _github(path: str, report: Report) -> str:
    """A GitHub Actions workflow command for ``report``: an annotation on its line."""
    from ..reports import LINE_MAX, clip  # noqa: PLC0415

    props = [f"file={_escape_property(path)}"]
    if report.line is not None:
        props.append(f"line={report.line}")
        if report.col is not None:
            props.append(f"col={report.col}")
    props.append(f"title={_escape_property(report.title)}")
    # what GitHub shows is the title and the message: together at most LINE_MAX characters
    detail = clip(report.detail, max(40, LINE_MAX - len(report.title) - 2))
    return f"::{report.severity} {','.join(props)}::{_escape_data(detail)}"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")
