"""Helpers shared by the CLI commands: options, limits loading, output."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from ..limits import Limits

__all__ = ["limits_option", "load_limits"]

F = TypeVar("F", bound=Callable[..., Any])


def limits_option(func: F) -> F:
    """``--limits FILE``: a limits file that may only tighten the shipped defaults."""
    option = click.option(
        "--limits", "limits_path", type=click.Path(path_type=Path), envvar="EMSCTL_LIMITS",
        default=None, help="Limits file (TOML) that tightens the shipped defaults.",
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
