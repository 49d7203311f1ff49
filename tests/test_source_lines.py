"""emsctl.source_lines: line and column of keys and tables in TOML text (a pure module)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emsctl.source_lines import (
    Position,
    SourceMap,
    offset_position,
    strip_toml_position,
    toml_error_position,
)

ROOT = Path(__file__).resolve().parents[1]


def _decode_error(text: str) -> str:
    with pytest.raises(tomllib.TOMLDecodeError) as info:
        tomllib.loads(text)
    return str(info.value)


# --------------------------------------------------------------------------- tomllib's positions


def test_a_syntax_error_gives_tomllibs_line_and_column() -> None:
    text = 'name = "x"\ntitle = "y"\nrate x\n'
    message = _decode_error(text)
    assert message.endswith("(at line 3, column 6)")
    assert toml_error_position(message, text) == Position(3, 6)
    assert strip_toml_position(message) == "Expected '=' after a key in a key/value pair"


def test_end_of_document_points_after_the_last_character_not_past_the_last_line() -> None:
    text = 'name = "x"\npurpose = [1,\n\n'
    message = _decode_error(text)
    assert message.endswith("(at end of document)")
    assert toml_error_position(message, text) == Position(2, 14)
    assert strip_toml_position(message) == "Invalid value"


def test_a_message_without_a_position_gives_none() -> None:
    assert toml_error_position("nested too deeply", "a = 1") is None
    assert strip_toml_position("nested too deeply") == "nested too deeply"


def test_offsets_become_lines_and_columns_in_text_and_bytes() -> None:
    assert offset_position("ab\ncd\n", 0) == Position(1, 1)
    assert offset_position("ab\ncd\n", 4) == Position(2, 2)
    assert offset_position(b"ab\ncd\xff", 5) == Position(2, 3)
    assert offset_position("ab", 99) == Position(1, 3)  # clamped to the end


# --------------------------------------------------------------------------- keys and tables

PROGRAM = '''\
# a comment with name = "not a key" and [[phases]]
name = "x"
description = """
name = "inside a string"
[[phases]]
"""
"quoted key" = 'literal [[phases]] # not a comment'
soft_start_s = 5  # a comment

[[channels]]
id = 1
site = "calf-left"

[[channels]]
id = 2

[[phases]]
name = "A"
amplitude = { from = "MT", to = "MT+10%" }

[[phases]]
name = "B"
duty.on_s = 3
frequency_hz = [
  1, # first
  2,
]

[phases.burst]
rate_hz = 2
'''


@pytest.fixture(scope="module")
def source_map() -> SourceMap:
    tomllib.loads(PROGRAM)  # the fixture is valid TOML
    return SourceMap(PROGRAM)


@pytest.mark.parametrize(("path", "where"), [
    (("name",), (2, 1)),
    (("description",), (3, 1)),
    (("quoted key",), (7, 1)),
    (("soft_start_s",), (8, 1)),
    (("channels",), (10, 1)),
    (("channels", 0), (10, 1)),
    (("channels", 0, "site"), (12, 1)),
    (("channels", 1), (14, 1)),
    (("channels", 1, "id"), (15, 1)),
    (("phases", 0), (17, 1)),
    (("phases", 0, "name"), (18, 1)),
    (("phases", 0, "amplitude"), (19, 1)),
    (("phases", 0, "amplitude", "to"), (19, 28)),
    (("phases", 1), (21, 1)),
    (("phases", 1, "duty"), (23, 1)),
    (("phases", 1, "duty", "on_s"), (23, 1)),
    (("phases", 1, "frequency_hz", 1), (26, 3)),
    (("phases", 1, "burst"), (29, 1)),  # [phases.burst] belongs to the last [[phases]]
    (("phases", 1, "burst", "rate_hz"), (30, 1)),
])
def test_every_key_and_table_is_found_where_it_is_defined(
    source_map: SourceMap, path: tuple[str | int, ...], where: tuple[int, int]
) -> None:
    assert source_map.exact(path) == Position(*where)


def test_strings_and_comments_hide_nothing_that_looks_like_a_key(source_map: SourceMap) -> None:
    # "name" at the top is line 2, not the comment on line 1 or the string on line 4, and the
    # "[[phases]]" inside the string and the comment do not count as phases
    assert source_map.exact(("name",)) == Position(2, 1)
    assert source_map.exact(("phases", 2)) is None
    assert source_map.exact(("phases", 0, "name")) == Position(18, 1)


def test_a_missing_key_falls_back_to_its_table(source_map: SourceMap) -> None:
    assert source_map.exact(("phases", 1, "pulse_width_us")) is None
    assert source_map.nearest(("phases", 1, "pulse_width_us")) == Position(21, 1)
    assert source_map.nearest(("phases", 0, "amplitude", "AmplitudeRamp")) == Position(19, 1)
    assert source_map.nearest(("title",)) is None
    assert source_map.nearest(()) is None


def test_arrays_of_inline_tables_are_counted_like_arrays_of_tables() -> None:
    text = 'phases = [\n  { name = "A" },\n  { name = "B", duration_s = 2 },\n]\n'
    found = SourceMap(text)
    assert found.exact(("phases", 1)) == Position(3, 3)
    assert found.exact(("phases", 1, "duration_s")) == Position(3, 17)


def test_text_that_is_not_toml_gives_what_was_found_and_never_raises() -> None:
    found = SourceMap('a = 1\nb = "open\n[[x]]\n')
    assert found.exact(("a",)) == Position(1, 1)
    assert SourceMap("[[").paths == {}
    assert SourceMap("").paths == {}


@pytest.mark.parametrize("program", sorted((ROOT / "programs").glob("*.toml")),
                         ids=lambda p: p.stem)
def test_every_value_of_every_built_in_program_is_found(program: Path) -> None:
    text = program.read_text(encoding="utf-8")
    found = SourceMap(text)
    lines = text.splitlines()
    for path in _paths(tomllib.loads(text)):
        position = found.exact(path)
        assert position is not None, path
        if isinstance(path[-1], str):  # a key or a table header: its name starts there
            assert _names(lines[position.line - 1][position.col - 1:], path[-1]), path


def _names(rest: str, key: str) -> bool:
    """Whether the key expression (or table header) at the start of ``rest`` ends in ``key``
    or, for a dotted key, has it as one of its parts."""
    expression = re.split(r"\]|=", rest.lstrip("[ "), maxsplit=1)[0]
    return key in [json.loads(p) if p.startswith('"') else p.strip("'")
                   for p in (part.strip() for part in expression.split("."))]


# --------------------------------------------------------------------------- random documents

_KEYS = st.sampled_from(["name", "a", "b-c", "x_1", "phases", "key with space", "ü"])
_SCALARS = st.one_of(
    st.integers(-10**6, 10**6),
    st.booleans(),
    st.text(st.sampled_from('ab #[]="\'\n\\{},'), max_size=12),
)


@st.composite
def _documents(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    keys = draw(st.lists(_KEYS, max_size=4, unique=True))
    doc: dict[str, Any] = {}
    for key in keys:
        kind = draw(st.sampled_from(["scalar", "table", "array"] if depth < 2 else ["scalar"]))
        if kind == "scalar":
            doc[key] = draw(_SCALARS)
        elif kind == "table":
            doc[key] = draw(_documents(depth + 1))
        else:
            doc[key] = draw(st.lists(_documents(depth + 1), min_size=1, max_size=3))
    return doc


def _key(key: str) -> str:
    return key if key.replace("-", "").replace("_", "").isascii() and key.replace(
        "-", "").replace("_", "").isalnum() else json.dumps(key)


def _value(value: Any, inline: bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value) if inline or "\n" not in value else '"""\n' + value.replace(
            "\\", "\\\\").replace('"', '\\"') + '"""'
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v, True)}" for k, v in value.items()) + " }"
    return "[\n  " + ",\n  ".join(_value(v, True) for v in value) + ",\n]"


def _dump(doc: dict[str, Any], prefix: tuple[str, ...], style: int) -> list[str]:
    """TOML for ``doc``: scalars first, then tables as headers (style 0) or inline (style 1)."""
    lines, later = [], []
    for key, value in doc.items():
        if isinstance(value, (dict, list)) and not isinstance(value, str) and style == 0:
            later.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value, False)}  # note = 1")
    for key, value in later:
        name = ".".join(_key(k) for k in (*prefix, key))
        for table in (value if isinstance(value, list) else [value]):
            lines.append(f"[[{name}]]" if isinstance(value, list) else f"[{name}]")
            lines += _dump(table, (*prefix, key), style)
    return lines


def _paths(value: Any, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out: list[tuple[str | int, ...]] = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*path, index))
    return out


@settings(max_examples=150, deadline=None)
@given(_documents(), st.sampled_from([0, 1]))
def test_every_path_of_a_random_document_is_found_on_its_own_line(
    doc: dict[str, Any], style: int
) -> None:
    text = "\n".join(_dump(doc, (), style)) + "\n"
    assert tomllib.loads(text) == doc  # the writer above is right
    found = SourceMap(text)
    lines = text.splitlines()
    for path in _paths(doc):
        position = found.exact(path)
        assert position is not None, (path, text)
        if isinstance(path[-1], str):
            assert _names(lines[position.line - 1][position.col - 1:], path[-1]), (path, text)
