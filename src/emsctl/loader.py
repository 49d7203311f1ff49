"""Loading program files: by built-in name or by path, with errors that name file, line and field.

Program files are data only: TOML parsed by :mod:`tomllib`, validated by :class:`Program`.
Files over :data:`MAX_FILE_BYTES` are refused before they are read whole. Nothing here runs
code from a file or follows a name outside the built-in package.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from .datafile import DataFileRefused, read_data_file
from .errors import ProgramError, SourceProblem
from .program import Program
from .source_lines import SourceMap, offset_position, strip_toml_position, toml_error_position

__all__ = [
    "MAX_FILE_BYTES",
    "LoadedProgram",
    "builtin_names",
    "find_program_files",
    "load_program",
    "load_program_file",
    "parse_program_text",
]

#: Program files larger than this are refused (a real program is a few kB).
MAX_FILE_BYTES = 256 * 1024
_UNION_TAGS = frozenset({"float", "int", "str", "bool", "Ramp", "Sweep", "AmplitudeRamp",
                         "constrained-float", "constrained-int"})
_BUILTIN_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")


@dataclass(frozen=True)
class LoadedProgram:
    """A program with where it came from and the SHA-256 of its bytes (for the journal).

    ``text`` is the file's text, for reports that point at a line of it.
    """

    program: Program
    source: str
    sha256: str
    builtin: bool
    text: str = field(default="", repr=False, compare=False)


def builtin_names() -> list[str]:
    """Names of the programs shipped in ``emsctl.programs``, sorted."""
    from importlib import resources  # noqa: PLC0415 - only for built-ins: ~5 ms of validate

    folder = resources.files("emsctl.programs")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_program(name_or_path: str) -> LoadedProgram:
    """Load a built-in program by name, or a program file by path.

    A bare name (lower-case letters, digits and dashes, no ``/`` and no ``.toml``) always means
    a built-in, even when a file of that name sits in the current folder: ``emsctl run
    relaxation`` never runs a stray file called ``relaxation``. Anything else is a path, used
    as given and never joined under the package (``../x`` is the file ``../x``).

    Raises:
        ProgramError: unknown name, unreadable file, bad TOML or a value the model rejects.
    """
    if not name_or_path.strip():
        raise ProgramError("an empty program name; give a built-in name or a path to a .toml file")
    if _BUILTIN_NAME.match(name_or_path):
        if name_or_path not in builtin_names():
            hint = (f"; to use the file '{name_or_path}' here, write ./{name_or_path}"
                    if os.path.lexists(name_or_path) else " (or give a path to a .toml file)")
            raise ProgramError(
                f"no built-in program '{name_or_path}'; built-ins are "
                f"{', '.join(builtin_names())}{hint}"
            )
        from importlib import resources  # noqa: PLC0415 - see builtin_names

        resource = resources.files("emsctl.programs") / f"{name_or_path}.toml"
        data = resource.read_bytes()
        return _from_bytes(data, f"{name_or_path} (built-in)", builtin=True)
    return load_program_file(Path(name_or_path))


def load_program_file(path: Path) -> LoadedProgram:
    """Load one program file.

    Raises:
        ProgramError: the file is missing, not a regular file, unreadable, larger than
            :data:`MAX_FILE_BYTES` (refused before it is read), not UTF-8 TOML, or not a valid
            program.
    """
    try:
        data = read_data_file(path, MAX_FILE_BYTES)
    except DataFileRefused as exc:
        raise ProgramError(f"{path}: {exc.reason}",
                           [SourceProblem("Unreadable file", exc.reason)]) from None
    return _from_bytes(data, str(path), builtin=False)


def _from_bytes(data: bytes, source: str, *, builtin: bool) -> LoadedProgram:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = offset_position(data, exc.start)
        raise ProgramError(f"{source}: not UTF-8 text (byte {exc.start})",
                           [SourceProblem("Not UTF-8 text", f"byte {exc.start} does not decode",
                                          *where)]) from exc
    program = parse_program_text(text, source)
    return LoadedProgram(program, source, hashlib.sha256(data).hexdigest(), builtin, text)


def parse_program_text(text: str, source: str = "<text>") -> Program:
    """Parse and validate program TOML text.

    Raises:
        ProgramError: bad TOML or a value the model rejects; every problem is in the message.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = toml_error_position(str(exc), text) or (None, None)
        raise ProgramError(f"{source}: invalid TOML: {exc}",
                           [SourceProblem("Invalid TOML", strip_toml_position(str(exc)),
                                          *where)]) from exc
    except ValueError as exc:  # int() refusing more than 4300 digits
        digits = re.search(r"[0-9_]{4301,}", text)
        where = offset_position(text, digits.start()) if digits else (None, None)
        raise ProgramError(f"{source}: invalid TOML: a number is too long",
                           [SourceProblem("Invalid TOML", "a number is too long", *where)]
                           ) from exc
    except RecursionError as exc:
        raise ProgramError(f"{source}: invalid TOML: nested too deeply",
                           [SourceProblem("Invalid TOML", "nested too deeply")]) from exc
    try:
        return Program.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        # A scalar given to a number-or-table field fails every branch of the union; the
        # "should be a valid dictionary or instance of Ramp" branches only add noise there.
        paths = [_key_path(tuple(e.get("loc", ()))) for e in errors]
        source_map = SourceMap(text)
        described = [
            _describe(error, path, source_map)
            for error, path in zip(errors, paths, strict=True)
            if not (error.get("type") == "model_type" and paths.count(path) > 1)
        ]
        sentence = "; ".join(dict.fromkeys(part for part, _ in described))
        problems = list(dict.fromkeys(problem for _, problem in described))
        raise ProgramError(f"{source}: {sentence}", problems) from exc
    except OverflowError as exc:  # a 400-digit integer amplitude: float() overflows in amplitude.py
        raise ProgramError(f"{source}: a number is too large ({exc})",
                           [SourceProblem("Invalid number", f"a number is too large ({exc})")]
                           ) from exc


def _describe(error: object, path: tuple[str | int, ...], source_map: SourceMap
              ) -> tuple[str, SourceProblem]:
    """One pydantic error as a part of the sentence for people and as a located problem."""
    assert isinstance(error, dict)
    field = _dotted(path)
    kind = str(error.get("type"))
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        message = "unknown key (check its spelling and unit suffix)"
    value = error.get("input")
    if kind == "float_type" and isinstance(value, int) and not isinstance(value, bool):
        message = "the number is too large"  # an int beyond any float, e.g. 400 digits
    where = source_map.nearest(path)
    line, col = (where.line, where.col) if where else (None, None)
    if kind == "extra_forbidden":
        problem = SourceProblem(f"Unknown key {field}", "check its spelling and unit suffix",
                                line, col)
    elif kind == "missing":
        problem = SourceProblem(f"Missing key {field}", "this key is required", line, col)
    else:
        problem = SourceProblem(f"Invalid {field}" if field else "Invalid program", message,
                                line, col)
    return (f"line {line}, " if line else "") + f"{field or 'program'}: {message}", problem


def _key_path(loc: tuple[object, ...]) -> tuple[str | int, ...]:
    """The keys and indexes of the file in a pydantic ``loc``, without union branch names."""
    path: list[str | int] = []
    for item in loc:
        if isinstance(item, int):
            path.append(item)
        elif not (str(item) in _UNION_TAGS or "[" in str(item) or "(" in str(item)):
            path.append(str(item))
    return tuple(path)


def _dotted(path: tuple[str | int, ...]) -> str:
    parts: list[str] = []
    for item in path:
        if isinstance(item, int):
            parts.append(f"[{item + 1}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def find_program_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Yield the ``*.toml`` files under ``paths`` (files as given, folders searched).

    Symlinked folders are not followed, so a link loop cannot make this run forever.
    """
    for path in paths:
        if not path.is_dir():
            yield path
            continue
        found: list[Path] = []
        for folder, _dirs, files in os.walk(path, followlinks=False):
            found.extend(Path(folder) / name for name in files if name.endswith(".toml"))
        yield from sorted(found)
