"""Helpers shared by the CLI commands: options, limits loading, output."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from ..limits import Limits

__all__ = ["FiniteFloat", "complete_program", "finite", "json_text", "limits_option", "load_limits",
           "verbosity"]

F = TypeVar("F", bound=Callable[..., Any])


class FiniteFloat(click.ParamType):  # type: ignore[type-arg]  # generic only from click 8.2
    """A finite number within a range, in ASCII digits: click's FloatRange lets NaN through (NaN
    compares false), and float() reads any Unicode digit.

    Args:
        low: smallest allowed value. high: largest allowed value (None: no upper bound).
        low_open: ``low`` itself is not allowed (for "must be positive").
    """

    name = "number"

    def __init__(self, low: float, high: float | None = None, *, low_open: bool = False) -> None:
        self.low, self.high, self.low_open = low, high, low_open

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> float:
        if isinstance(value, str) and not value.isascii():
            # float() reads any Unicode digit ("٤٠" is 40.0): a number on the command line is
            # ASCII digits only, as in program files
            self.fail(f"'{value}' is not a number (use the digits 0-9)", param, ctx)
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"'{value}' is not a number", param, ctx)
        too_low = number <= self.low if self.low_open else number < self.low
        if math.isnan(number) or math.isinf(number) or too_low or (
                self.high is not None and number > self.high):
            bound = f"{'above' if self.low_open else 'at least'} {self.low:g}"
            if self.high is not None:
                bound += f" and at most {self.high:g}"
            self.fail(f"{value} is not a finite number {bound}", param, ctx)
        return number


def limits_option(func: F) -> F:
    """``--limits FILE``: a limits file that may only tighten the shipped defaults."""
    option = click.option(
        "--limits", "limits_path", type=click.Path(path_type=Path), envvar="EMSCTL_LIMITS",
        default=None, help="Limits file (TOML): moves shipped defaults within their ceilings; "
        "a ceiling can never be raised.",
    )
    return option(func)


@functools.cache
def load_limits(path: Path | None) -> Limits:
    """The effective limits: shipped defaults, tightened by ``path`` when given.

    Raises:
        LimitsFileError: the file is unreadable, invalid or tries to loosen a ceiling.
    """
    from ..limits import DEFAULTS  # noqa: PLC0415
    from ..limits_file import load_limits_file  # noqa: PLC0415

    return DEFAULTS if path is None else load_limits_file(path)


def finite(value: Any) -> Any:
    """``value`` with every non-finite float (inf, -inf, NaN) replaced by None, recursively
    through dicts, lists and tuples: JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def json_text(data: Any, *, indent: int | None = 2, ensure_ascii: bool = True,
              default: Callable[[Any], Any] | None = None) -> str:
    """``data`` as strict JSON (RFC 8259), the only way the CLI prints JSON.

    A journal or any other input can hold numbers that overflow to infinity (``1e999``);
    ``json.dumps`` would print them as ``Infinity``, which is not JSON. They become ``null``,
    and ``allow_nan=False`` makes any that slip past (a ``default`` hook's result) an error
    rather than invalid output.
    """
    return json.dumps(finite(data), indent=indent, ensure_ascii=ensure_ascii, allow_nan=False,
                      default=None if default is None else (lambda o: finite(default(o))))


def verbosity() -> int:
    """The global ``emsctl -q`` / ``-v``: -1 quieter, 0 normal, 1 more detail."""
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root() if ctx is not None else None
    obj = root.obj if root is not None and isinstance(root.obj, dict) else {}
    return int(obj.get("verbosity", 0))


def complete_program(ctx: click.Context, param: click.Parameter, incomplete: str
                     ) -> list[click.shell_completion.CompletionItem]:
    """Shell completion of a PROGRAM argument: the built-in names, then files."""
    from click.shell_completion import CompletionItem  # noqa: PLC0415

    from ..loader import builtin_names  # noqa: PLC0415

    names = [CompletionItem(name) for name in builtin_names() if name.startswith(incomplete)]
    return [*names, CompletionItem(incomplete, type="file")]
