"""Helpers shared by the CLI commands: options, limits loading, output."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from ..limits import Limits

__all__ = ["FiniteFloat", "complete_program", "limits_option", "load_limits", "verbosity"]

F = TypeVar("F", bound=Callable[..., Any])


class FiniteFloat(click.ParamType):  # type: ignore[type-arg]  # generic only from click 8.2
    """A finite number within a range: click's FloatRange lets NaN through (NaN compares false).

    Args:
        low: smallest allowed value. high: largest allowed value (None: no upper bound).
        low_open: ``low`` itself is not allowed (for "must be positive").
    """

    name = "number"

    def __init__(self, low: float, high: float | None = None, *, low_open: bool = False) -> None:
        self.low, self.high, self.low_open = low, high, low_open

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> float:
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
    from ..limits import DEFAULTS, load_limits_file  # noqa: PLC0415

    return DEFAULTS if path is None else load_limits_file(path)


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
