"""Where things are in a TOML file: line and column of keys and tables, for error reports.

:mod:`tomllib` keeps no positions, so this module scans the text itself. It understands the
parts of TOML that decide where a key is: table headers (``[a.b]``), arrays of tables
(``[[phases]]``, counted, so the third one is ``("phases", 2)``), dotted keys, inline tables
and arrays (their elements counted the same way), and every kind of string and comment (so a
``name = …`` inside a multi-line string is never taken for a key). Paths are tuples of keys and
0-based array indexes, the shape of a pydantic error's ``loc``.

It is meant for text that :mod:`tomllib` has already accepted; on anything else it returns what
it found before it got lost, and never raises. :func:`toml_error_position` reads the position
out of a :class:`tomllib.TOMLDecodeError` message instead.

Pure: no I/O, no imports from the rest of emsctl. Lines and columns count from 1.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import re
from collections.abc import Sequence
from typing import NamedTuple

__all__ = [
    "Path",
    "Position",
    "SourceMap",
    "offset_position",
    "strip_toml_position",
    "toml_error_position",
]

#: A path to a key: keys and 0-based array indexes, e.g. ``("phases", 2, "frequency_hz")``.
Path = tuple[str | int, ...]

_TOML_AT = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)\s*$")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_MAX_DEPTH = 64  # nesting beyond this is not a program file; stop scanning rather than recurse


class Position(NamedTuple):
    """A place in a text file: 1-based line and column (the column counts characters)."""

    line: int
    col: int


def toml_error_position(message: str, text: str) -> Position | None:
    """The position a :class:`tomllib.TOMLDecodeError` message names, if any.

    ``"… (at line 3, column 6)"`` gives ``Position(3, 6)``; ``"… (at end of document)"`` gives
    the position just after the last character that is not white space (where the document
    stopped short), not a line past the end.
    """
    match = _TOML_AT.search(message)
    if match is None:
        return None
    if match.group(1) is not None:
        return Position(int(match.group(1)), int(match.group(2)))
    return offset_position(text, len(text.rstrip()))


def strip_toml_position(message: str) -> str:
    """A :class:`tomllib.TOMLDecodeError` message without its ``(at line …)`` suffix."""
    return _TOML_AT.sub("", message)


def offset_position(text: str | bytes, offset: int) -> Position:
    """The position of character (or byte) ``offset`` of ``text``."""
    newline: str | bytes = b"\n" if isinstance(text, bytes) else "\n"
    offset = max(0, min(offset, len(text)))
    head = text[:offset]
    line_start = head.rfind(newline) + 1  # type: ignore[arg-type]  # same type as text
    return Position(head.count(newline) + 1, offset - line_start + 1)  # type: ignore[arg-type]


class SourceMap:
    """The position of every key, table and array element of one TOML text.

    ``exact(path)`` is where ``path`` itself is defined; ``nearest(path)`` falls back to the
    longest prefix of ``path`` that is defined (a missing key of a phase → the phase's
    ``[[phases]]`` header).
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self._found: dict[Path, Position] = {}
        self._arrays: dict[Path, int] = {}  # array-of-tables path → elements seen so far
        # on text tomllib would refuse, keep what was found before the scanner got lost
        with contextlib.suppress(IndexError, ValueError, RecursionError):
            self._scan()

    @classmethod
    def of(cls, text: str) -> SourceMap:
        """Scan ``text`` (a convenience for ``SourceMap(text)``)."""
        return cls(text)

    @property
    def paths(self) -> dict[Path, Position]:
        """Every path found, with the position of its first definition."""
        return dict(self._found)

    def exact(self, path: Sequence[str | int]) -> Position | None:
        """Where ``path`` is defined, or None when the file does not define it."""
        return self._found.get(tuple(path)) if path else None

    def nearest(self, path: Sequence[str | int]) -> Position | None:
        """Where ``path`` or, failing that, its longest defined prefix is; None for none."""
        key = tuple(path)
        while key:
            if key in self._found:
                return self._found[key]
            key = key[:-1]
        return None

    # ------------------------------------------------------------------------ the scanner

    def _position(self, offset: int) -> Position:
        row = bisect.bisect_right(self._line_starts, offset) - 1
        return Position(row + 1, offset - self._line_starts[row] + 1)

    def _record(self, path: Path, offset: int) -> None:
        position = self._position(offset)
        for end in range(1, len(path) + 1):
            self._found.setdefault(path[:end], position)

    def _scan(self) -> None:
        text, i = self._text, 0
        table: Path = ()
        while i < len(text):
            i = self._skip_blank(i, newlines=True)
            if i >= len(text):
                break
            if text[i] == "[":
                array = text.startswith("[[", i)
                keys, end = self._key(i + (2 if array else 1))
                table = self._resolve(keys, array=array)
                self._record(table, i)
                close = "]]" if array else "]"
                if not text.startswith(close, end):
                    raise ValueError("a table header without its closing bracket")
                i = self._to_line_end(end + len(close))
            else:
                i = self._to_line_end(self._key_value(i, table, 0))

    def _resolve(self, keys: list[str], *, array: bool) -> Path:
        """The full path of a table header, with the current index of each array of tables."""
        path: list[str | int] = []
        for n, key in enumerate(keys):
            path.append(key)
            if array and n == len(keys) - 1:
                count = self._arrays.get(tuple(path), 0)
                self._arrays[tuple(path)] = count + 1
                path.append(count)
            elif tuple(path) in self._arrays:
                path.append(self._arrays[tuple(path)] - 1)
        return tuple(path)

    def _key(self, i: int) -> tuple[list[str], int]:
        """A (dotted) key starting at or after ``i``: its parts and the offset after it."""
        text, parts = self._text, []
        while True:
            i = self._skip_blank(i)
            if text[i] in "\"'":
                end = self._string_end(i)
                raw = text[i + 1:end - 1]
                parts.append(raw if text[i] == "'" else _unescape(raw))
                i = end
            else:
                match = _BARE_KEY.match(text, i)
                if match is None:
                    raise ValueError("no key here")
                parts.append(match.group())
                i = match.end()
            i = self._skip_blank(i)
            if i < len(text) and text[i] == ".":
                i += 1
                continue
            return parts, i

    def _key_value(self, i: int, table: Path, depth: int) -> int:
        """``key = value`` at ``i`` inside ``table``; returns the offset after the value."""
        start = self._skip_blank(i)
        keys, i = self._key(start)
        path = (*table, *keys)
        self._record(path, start)
        if self._text[i] != "=":
            raise ValueError("no '=' after a key")
        return self._value(i + 1, path, depth + 1)

    def _value(self, i: int, path: Path, depth: int) -> int:
        text = self._text
        if depth > _MAX_DEPTH:
            raise ValueError("nested too deeply")
        i = self._skip_blank(i)
        char = text[i]
        if char in "\"'":
            return self._string_end(i)
        if char == "{":
            i = self._skip_blank(i + 1)
            while text[i] != "}":
                i = self._key_value(i, path, depth)
                i = self._skip_blank(i)
                if text[i] == ",":
                    i = self._skip_blank(i + 1)
            return i + 1
        if char == "[":
            index = 0
            i = self._skip_blank(i + 1, newlines=True, comments=True)
            while text[i] != "]":
                self._record((*path, index), i)
                i = self._value(i, (*path, index), depth + 1)
                i = self._skip_blank(i, newlines=True, comments=True)
                if text[i] == ",":
                    index += 1
                    i = self._skip_blank(i + 1, newlines=True, comments=True)
            return i + 1
        end = i
        while end < len(text) and text[end] not in ",]}\n#":
            end += 1
        return end

    def _string_end(self, i: int) -> int:
        """The offset just after the string (any of the four kinds) that starts at ``i``."""
        text = self._text
        quote = text[i]
        if text.startswith(quote * 3, i):
            j = i + 3
            while True:
                j = text.index(quote * 3, j)
                if quote == '"' and _escaped(text, j):
                    j += 1
                    continue
                end = j + 3
                while end < len(text) and text[end] == quote and end - j < 5:
                    end += 1  # up to two quotes may end the content: """a""""" is 'a""'
                return end
        j = i + 1
        while text[j] != quote or (quote == '"' and _escaped(text, j)):
            if text[j] == "\n":
                raise ValueError("a string runs past its line")
            j += 1
        return j + 1

    def _skip_blank(self, i: int, *, newlines: bool = False, comments: bool = False) -> int:
        text = self._text
        while i < len(text):
            char = text[i]
            if char in " \t" or (newlines and char in "\r\n"):
                i += 1
            elif char == "#" and (comments or newlines):
                i = self._to_line_end(i)
            else:
                break
        return i

    def _to_line_end(self, i: int) -> int:
        """Past the rest of the line at ``i``: blanks and a comment, then the newline."""
        end = self._text.find("\n", i)
        return len(self._text) if end < 0 else end + 1


def _escaped(text: str, j: int) -> bool:
    """Whether the character at ``j`` follows an odd number of backslashes."""
    count = 0
    while j - count - 1 >= 0 and text[j - count - 1] == "\\":
        count += 1
    return count % 2 == 1


def _unescape(raw: str) -> str:
    """A basic string's escapes resolved (JSON's are a near-superset of the ones keys use)."""
    if "\\" not in raw:
        return raw
    try:
        value = json.loads(f'"{raw}"')
    except ValueError:
        return raw
    return value if isinstance(value, str) else raw
