"""Typed device-URL parameters: each driver declares one model, and this parses it strictly.

``sim+coyote3?ma_per_step=0.2&battery_pct=40`` carries ``?key=value`` parameters as text. A driver
declares them as a :class:`DeviceParams` subclass (pydantic, frozen, unknown keys forbidden,
finite numbers only), one field per key with its range and a description; :func:`parse_params`
turns a URL's parameters into that model or refuses with one sentence that names the key, what
was wrong and, for an unknown key, every known one. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import InputError

__all__ = ["DeviceParams", "parse_params"]


class DeviceParams(BaseModel):
    """Base of every driver's URL-parameter model: strict about keys, lenient about text."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


P = TypeVar("P", bound=DeviceParams)


def parse_params(model: type[P], params: Mapping[str, str], scheme: str) -> P:
    """Validate ``params`` (the URL's ``?key=value`` pairs) against ``model``.

    Raises:
        InputError: an unknown key (the message lists the known ones with what they mean), or
            a value that is not of the key's type or outside its range.
    """
    unknown = sorted(set(params) - set(model.model_fields))
    if unknown:
        raise InputError(f"unknown {scheme} parameter(s) {', '.join(unknown)}; known: "
                         + "; ".join(_describe(name, model) for name in model.model_fields))
    try:
        return model.model_validate(dict(params))
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0]) if error["loc"] else ""
        shown = f"={params[key]!r}" if key in params else ""
        what = _describe(key, model) if key in model.model_fields else ""
        message = str(error["msg"]).removeprefix("Value error, ")
        raise InputError(f"{scheme} parameter {key}{shown}: {message[:1].lower()}{message[1:]}"
                         + (f" ({what})" if what else "")) from None


def _describe(name: str, model: type[DeviceParams]) -> str:
    description = model.model_fields[name].description
    return f"{name}: {description}" if description else name
