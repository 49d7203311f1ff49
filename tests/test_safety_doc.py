"""SAFETY.md stays true: every hazard has a row, and every test it cites exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAFETY = (ROOT / "SAFETY.md").read_text(encoding="utf-8")
TEST_REF = re.compile(r"`(tests/[\w/.-]+\.py)::(test_\w+)`")


def _hazard_rows() -> dict[str, str]:
    rows = {}
    for line in SAFETY.splitlines():
        match = re.match(r"^\|\s*(HZ-\d\d)\s*\|", line)
        if match:
            rows[match.group(1)] = line
    return rows


def test_every_hazard_of_the_safety_basis_has_a_row() -> None:
    assert sorted(_hazard_rows()) == [f"HZ-{n:02d}" for n in range(1, 23)]


def test_every_row_says_built_or_planned_and_built_rows_cite_a_test() -> None:
    for hazard, row in _hazard_rows().items():
        status = re.findall(r"\b(built|partly built|planned|information only)\b", row)
        assert status, f"{hazard}: no status"
        if status[0] in ("built", "partly built"):
            assert TEST_REF.search(row), f"{hazard} is {status[0]} but cites no test"


def test_every_cited_test_exists() -> None:
    missing = []
    for path, name in TEST_REF.findall(SAFETY):
        file = ROOT / path
        if not file.is_file() or not re.search(rf"def {name}\b", file.read_text()):
            missing.append(f"{path}::{name}")
    assert missing == []


def test_every_limit_has_a_short_name_for_reports() -> None:
    """Reports never show a bare limit ID: each of SAFETY.md's limits has a name in words."""
    from emsctl.limit_table import LIMIT_NAMES, LIMIT_SPECS

    table = re.findall(r"^\|\s*(L\d+)\s*\|", SAFETY, re.MULTILINE)
    assert list(LIMIT_NAMES) == table == [f"L{n}" for n in range(1, 25)]
    assert {spec.limit_id for spec in LIMIT_SPECS.values()} <= set(LIMIT_NAMES)
    assert all(name and not re.search(r"\bL\d", name) for name in LIMIT_NAMES.values())
