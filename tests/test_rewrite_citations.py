"""tools/rewrite_citations.py maps each old citation form to a section of docs/ that exists.

The tool is run once by hand (see its docstring); these tests pin its mapping on short samples
against the real documents, so that the run itself holds no surprises.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
NOTES = "shared"  # the old notes' folder, named only through this constant
ISSUE = "issue"


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_rewrite_citations",
                                                  ROOT / "tools/rewrite_citations.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


TOOL = _tool()
DOCS = TOOL.Documents.load(ROOT, TOOL.load_checker(ROOT))


def _rewrite(rel: str, text: str) -> tuple[str, list[str]]:
    report = TOOL.Report()
    return TOOL.rewrite_text(text, rel, DOCS, report), report.unresolved


def test_each_old_form_becomes_a_docs_citation() -> None:
    cases = [
        ("src/emsctl/x.py", "# SAFETY-BASIS §6.5 and SAFETY-BASIS.md §2 (L1–L24)",
         "# docs/safety-basis.md §6.5 and docs/safety-basis.md §2 (L1–L24)"),
        ("programs/x.toml",
         "# Sources: PROGRAMS-BASIS.md §3 cramp-training; SAFETY-BASIS W7, L18.",
         "# Sources: docs/programs-basis.md §3.8 cramp-training; docs/safety-basis.md W7, L18."),
        ("src/emsctl/x.py", "(PROGRAMS-BASIS P0)", "(docs/programs-basis.md P0)"),
        ("drivers/sciencemode2/x.py", f"Follows ``{NOTES}/protocols/sciencemode2.md`` §7–§8.",
         "Follows ``docs/protocols/sciencemode2.md`` §7–§8."),
        ("tests/x.py", f"Spec: ../{NOTES}/protocols/openemsstim.md (sections below).",
         "Spec: docs/protocols/openemsstim.md (sections below)."),
        ("simulator/devices/coyote3.py", "Device side of ``protocols/coyote3.md`` (§5–§7, §12):",
         "Device side of ``docs/protocols/coyote3.md`` §5–§7, §12:"),
        ("README.md", f"See `../{NOTES}/DESIGN.md` for", "See `docs/architecture.md` for"),
        ("drivers/coyote3/x.py", "# a stop (spec §10), then §9 step 5",
         "# a stop (docs/protocols/coyote3.md §10), then docs/protocols/coyote3.md §9 step 5"),
        ("drivers/openems/x.py", "are refused (§7.5).",
         "are refused (docs/protocols/openemsstim.md §7 step 5)."),
        ("SAFETY.md", "Screening gate (§6.1); §6.3 warnings",
         "Screening gate (docs/safety-basis.md §6.1); docs/safety-basis.md §6.3 warnings"),
    ]
    for rel, old, new in cases:
        assert _rewrite(rel, old) == (new, []), old


def test_the_device_named_nearby_decides_in_files_about_every_device() -> None:
    text = '    ("openems", "corrupt_bytes"): Expect(\n        "no checksum (§9): a digit"'
    new, unresolved = _rewrite("tests/faults/matrix.py", text)
    assert "(docs/protocols/openemsstim.md §9)" in new and unresolved == []
    assert _rewrite("SAFETY.md", "- openEMSstim, acks dropped (no acks, §7).")[0] == \
        "- openEMSstim, acks dropped (no acks, docs/protocols/openemsstim.md §7)."


def test_what_it_cannot_place_is_reported_and_left_alone() -> None:
    new, unresolved = _rewrite("tests/test_other.py", "# as in §3")
    assert new == "# as in §3" and unresolved == ["tests/test_other.py:1: bare '§3' (no "
                                                  "document known for it)"]
    new, unresolved = _rewrite("drivers/coyote3/x.py", "# §99")
    assert new == "# §99" and unresolved == ["drivers/coyote3/x.py:1: '§99' not in "
                                             "docs/protocols/coyote3.md"]


def test_vendor_references_and_the_numbered_documents_are_left_alone() -> None:
    assert _rewrite("drivers/sciencemode2/fields.py", "# [SM2 §1.2] and [SM2 Table 1]") == \
        ("# [SM2 §1.2] and [SM2 Table 1]", [])
    assert _rewrite("docs/safety-basis.md", "see §6.4") == ("see §6.4", [])


def test_issue_numbers_are_removed_or_reworded() -> None:
    n = 8
    cases = [
        (f"## Reliability figures ({ISSUE} {n})", "## Reliability figures"),
        (f"Concurrency ({ISSUE} {n} item 6, `tests/x.py`): 2,000",
         "Concurrency (`tests/x.py`): 2,000"),
        (f"{ISSUE.title()} {n} item 1: every device family", "Every device family"),
        (f"{ISSUE.title()} {n} item 5 (files and flags), HZ-13, HZ-01.",
         "Files and flags (HZ-13, HZ-01)."),
        (f"# Mutation testing of the kernel, {ISSUE} {n} item 4: see docs/mutation.md.",
         "# Mutation testing of the kernel: see docs/mutation.md."),
        (f'"""Core benchmarks ({ISSUE} 2, "Performance"): compile."""',
         '"""Core benchmarks (the README\'s "Performance" figures): compile."""'),
        (f"judged against ``min_ratio`` ({ISSUE} 7: ≥ 400×",
         "judged against ``min_ratio`` (≥ 400×"),
        ("driver.stop() issued during a pending update",
         "driver.stop() issued during a pending update"),
    ]
    for old, new in cases:
        assert _rewrite("x.md", old)[0] == new, old


def test_long_python_lines_are_reflowed_without_changing_the_code() -> None:
    source = "\n".join([
        '"""Module.',
        "",
        "The board attenuates a separate stimulator (spec §12): frequency and pulse width "
        "are",
        'declared and fixed, see §4.2."""',
        "",
        "MAX_LEASE_S = 1.0  # §9 [emsctl rule]: T ≤ 1000 ms by default "
        "(the board accepts up to 5 s)",
        'CELLS = {"a": ("the board never answers at all, in any of its states '
        '(no acks to drop, §7)")}',
        "",
    ])
    assert max(len(line) for line in source.splitlines()) <= TOOL.LINE_LIMIT
    new, unresolved = _rewrite("drivers/openems/x.py", source)
    assert unresolved == []
    assert max(len(line) for line in new.splitlines()) <= TOOL.LINE_LIMIT
    for cited in ("§12", "§4.2", "§9", "§7"):  # a citation is never broken across lines
        assert f"docs/protocols/openemsstim.md {cited}" in new
    assert "5 s)" in new  # nor a number and its unit

    def shape(text: str) -> str:
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                node.value = ""
        return ast.dump(tree)

    assert shape(new) == shape(source)
    assert _rewrite("drivers/openems/x.py", new) == (new, [])  # a second run changes nothing
