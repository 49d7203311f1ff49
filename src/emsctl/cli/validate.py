"""``emsctl validate PATH…``: check program files against every limit, for people and for CI.

Exit 0 when every file is valid, 1 when any file breaks a limit, 2 when any input is
unreadable or not a program (2 wins over 1). Every problem is reported, not just the first.
Imports only the core: never pyserial, bleak or matplotlib.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import EmsError, InputError
from .common import json_text, limits_option, load_limits

if TYPE_CHECKING:
    from ..contract import Capabilities

__all__ = ["validate"]


@dataclass
class FileResult:
    """The verdict on one file."""

    path: str
    status: str  # "ok" | "violation" | "error"
    problems: list[dict[str, object]] = field(default_factory=list)
    warnings: list[dict[str, object]] = field(default_factory=list)


def check_file(path: Path, limits_path: Path | None,
               capabilities: Capabilities | None = None) -> FileResult:
    """Load, compile and verify one file (against a device when given); never raises."""
    from ..loader import load_program_file  # noqa: PLC0415 - keep start-up lazy
    from ..plan import compile_plan  # noqa: PLC0415
    from ..verify import verify  # noqa: PLC0415

    try:
        loaded = load_program_file(path)
    except EmsError as exc:
        return FileResult(str(path), "error", [{"limit": None, "message": str(exc)}])
    limits = load_limits(limits_path)
    violations = verify(compile_plan(loaded.program), limits, capabilities)
    result = FileResult(str(path), "ok")
    for v in violations:
        entry: dict[str, object] = {"limit": v.limit_id, "channel": v.channel, "t_s": v.t_s,
                                    "value": v.value, "allowed": v.allowed, "message": v.message}
        (result.warnings if v.severity == "warn" else result.problems).append(entry)
    if result.problems:
        result.status = "violation"
    return result


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--format", "fmt", type=click.Choice(["text", "json", "github"]), default="text",
              show_default=True, help="Output format; 'github' prints workflow annotations.")
@click.option("--device", "device_url", default=None, metavar="URL",
              help="Also check that this device can express each program (nothing is sent; "
              "the device is not opened).")
@limits_option
def validate(paths: tuple[str, ...], fmt: str, device_url: str | None,
             limits_path: Path | None) -> None:
    """Check program files and folders (searched for *.toml) against every safety limit."""
    from ..loader import find_program_files  # noqa: PLC0415

    load_limits(limits_path)  # a bad limits file is bad input before anything else
    capabilities = None
    if device_url is not None:
        from ..devices import open_device  # noqa: PLC0415 - only with --device

        capabilities = open_device(device_url).capabilities  # made, never connected
    results: list[FileResult] = []
    for name in paths:
        if not name:  # an unset shell variable must not quietly mean "the current folder"
            results.append(FileResult("''", "error",
                                      [{"limit": None, "message": "'': an empty path"}]))
            continue
        path = Path(name)
        if not path.exists() and not path.is_symlink():
            results.append(FileResult(str(path), "error",
                                      [{"limit": None, "message": f"{path}: no such file"}]))
            continue
        files = list(find_program_files([path]))
        if path.is_dir() and not files:
            results.append(FileResult(str(path), "error",
                                      [{"limit": None, "message": f"{path}: no .toml files"}]))
        results.extend(check_file(f, limits_path, capabilities) for f in files)
    _report(results, fmt)
    if any(r.status == "error" for r in results):
        raise SystemExit(2)
    if any(r.status == "violation" for r in results):
        raise SystemExit(1)


def _report(results: list[FileResult], fmt: str) -> None:
    if fmt == "json":
        click.echo(json_text({"files": [r.__dict__ for r in results],
                              "valid": all(r.status == "ok" for r in results)}))
        return
    for r in results:
        if fmt == "github":
            for p in r.problems:
                level = "error"
                title = p["limit"] or "input"
                click.echo(f"::{level} file={r.path},title={title}::{p['message']}")
            for w in r.warnings:
                click.echo(f"::warning file={r.path},title={w['limit']}::{w['message']}")
            continue
        if r.status == "ok":
            click.echo(f"ok       {r.path}")
        for p in r.problems:
            label = "invalid " if r.status == "error" else "FAIL    "
            limit = f"{p['limit']}: " if p["limit"] else ""
            if p["limit"] == "device" and p.get("channel") is not None:
                limit += f"channel {p['channel']}: "
            message = str(p["message"]).removeprefix(f"{r.path}: ")
            click.echo(f"{label} {r.path}: {limit}{message}", err=r.status == "error")
        for w in r.warnings:
            click.echo(f"warning  {r.path}: {w['limit']}: {w['message']}")
    bad = sum(r.status != "ok" for r in results)
    click.echo(f"{len(results) - bad} of {len(results)} program files valid", err=bad > 0)


def _unused() -> None:  # pragma: no cover - keeps InputError imported for type checkers
    raise InputError("")
