"""The repository's documents stand alone: every link and every section citation resolves.

(a) Every relative link in a tracked Markdown file points to a file of the repository, and to a
    heading of it when the link has an anchor (GitHub's heading slugs).
(b) Every citation of the form ``docs/<file>.md §N`` anywhere in the repository (code, tests,
    program files, documents) names a document that exists and a section it has; a stable ID
    after the path (``docs/safety-basis.md L18``) must be defined in that document.
    :func:`unresolved_citations` is the reusable check.
(c) The numbered documents follow the heading convention of docs/README.md.

This module imports only the standard library, so tools can load it without pytest.
"""

from __future__ import annotations

import re
import subprocess
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

ROOT = Path(__file__).resolve().parents[1]

#: Folders never scanned when git cannot list the tracked files.
_SKIP_DIRS = {".git", ".venv", "venv", "build", "dist", "__pycache__", ".mypy_cache",
              ".pytest_cache", ".ruff_cache", ".hypothesis", "mutants"}

_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$")
_NUMBERED = re.compile(r"^§(\d+(?:\.\d+)*) (\S.*)$")
_INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+[\"'(][^)]*)?\)"
)
_REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
_HTML_ANCHOR = re.compile(r"<a\s[^>]*?(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
_SCHEME = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|//)")

#: A stable ID a document may define: limits, hazards, worked examples, programs.
_ID = r"(?:L\d{1,2}|HZ-\d\d|W\d{1,2}|P\d{1,2})"
_REF = rf"(?:§\d+(?:\.\d+)*|\b{_ID}\b)"
_SEP = r"\s*(?:,|/|–|—|-|\band\b|\bor\b|&)?\s*"
_SECTIONS = rf"§\d+(?:\.\d+)*(?:{_SEP}§\d+(?:\.\d+)*)*"
_IDS = rf"\b{_ID}\b(?:{_SEP}\b{_ID}\b)*"
#: ``docs/<path>.md`` followed by section numbers, or by stable IDs (closing code or quote
#: marks may sit between the path and the first one). An ID after a section (``§7, HZ-17``)
#: is the reader's cross-reference, not a part of the citation.
CITATION = re.compile(
    rf"(?<![\w./-])docs/(?P<path>[\w./-]+?\.md)[`'\"*]*(?P<refs>[ \t]+(?:{_SECTIONS}|{_IDS}))"
)
_ONE_REF = re.compile(_REF)


# --------------------------------------------------------------------------- Markdown helpers


def tracked_files(root: Path = ROOT) -> list[Path]:
    """The repository's files: ``git ls-files`` when git can answer, else a walk of the tree."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True,
                             check=True).stdout
        names = [n for n in out.decode("utf-8", "surrogateescape").split("\0") if n]
        return [root / n for n in names if (root / n).is_file()]
    except (OSError, subprocess.CalledProcessError):
        return [p for p in root.rglob("*")
                if p.is_file() and not _SKIP_DIRS.intersection(p.relative_to(root).parts)]


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def _outside_code(text: str) -> list[tuple[int, str]]:
    """(line number, line) for every line outside fenced code blocks."""
    lines, fenced, fence = [], False, ""
    for number, line in enumerate(text.splitlines(), 1):
        match = _FENCE.match(line)
        if match and (not fenced or match.group(1) == fence):
            fenced, fence = not fenced, match.group(1)
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def _without_inline_code(line: str) -> str:
    return re.sub(r"(`+)(?:(?!\1).)+?\1", lambda m: " " * len(m.group(0)), line)


def headings(text: str) -> list[tuple[int, int, str]]:
    """(line number, level, text) of every ATX heading outside fenced code."""
    found = []
    for number, line in _outside_code(text):
        match = _HEADING.match(line)
        if match:
            found.append((number, len(match.group(1)), match.group(2).strip()))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: plain text, lower case, punctuation dropped, spaces → -."""
    plain = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    plain = re.sub(r"<[^>]+>", "", plain).lower()
    kept = [c for c in plain
            if c in " -_" or unicodedata.category(c)[0] in "LMN" or unicodedata.category(c) == "Pc"]
    return "".join(kept).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every anchor a Markdown file offers: heading slugs (with GitHub's -1, -2 …) and HTML ids."""
    seen: dict[str, int] = {}
    found = set(_HTML_ANCHOR.findall(text))
    for _, _, heading in headings(text):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def sections(text: str) -> dict[str, str]:
    """Section number → heading text, for headings written ``§N Title``."""
    found = {}
    for _, _, heading in headings(text):
        match = _NUMBERED.match(heading)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def defined_ids(text: str) -> set[str]:
    """Stable IDs a document defines: in a heading, or in the first cell of a table row."""
    found: set[str] = set()
    for _, _, heading in headings(text):
        found.update(re.findall(rf"\b{_ID}\b", heading))
    for _, line in _outside_code(text):
        match = re.match(rf"^\|\s*`?({_ID})`?\s*\|", line)
        if match:
            found.add(match.group(1))
    return found


# --------------------------------------------------------------------------- (a) links


def broken_links(root: Path = ROOT, files: Iterable[Path] | None = None) -> list[str]:
    """Relative links in Markdown files that do not resolve, as ``file:line: problem``."""
    problems = []
    md_files = [p for p in (files if files is not None else tracked_files(root))
                if p.suffix == ".md"]
    for path in md_files:
        text = _read_text(path)
        if text is None:
            continue
        rel = path.relative_to(root)
        targets = [(n, m.group(1)) for n, line in _outside_code(text)
                   for m in _INLINE_LINK.finditer(_without_inline_code(line))]
        targets += [(n, m.group(1)) for n, line in _outside_code(text)
                    if (m := _REFERENCE_DEF.match(line))]
        for number, raw in targets:
            target = raw[1:-1] if raw.startswith("<") else raw
            if _SCHEME.match(target):
                continue
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / unquote(file_part)).resolve() if file_part else path
            where = f"{rel}:{number}: link '{target}'"
            try:
                dest.relative_to(root.resolve())
            except ValueError:
                problems.append(f"{where} leaves the repository")
                continue
            if not dest.exists():
                problems.append(f"{where}: no such file")
                continue
            if anchor and dest.suffix == ".md":
                dest_text = _read_text(dest) or ""
                if unquote(anchor) not in anchors(dest_text):
                    problems.append(f"{where}: no heading with anchor '#{anchor}'")
    return problems


# --------------------------------------------------------------------------- (b) citations


@dataclass(frozen=True)
class Citation:
    """One ``docs/<path>.md`` citation and the section numbers or IDs it names."""

    source: str
    line: int
    document: str
    refs: tuple[str, ...]


def find_citations(text: str, source: str = "<text>") -> list[Citation]:
    """Every ``docs/<path>.md §N`` (or ``… ID``) citation in ``text``, with all its refs."""
    found = []
    for match in CITATION.finditer(text):
        refs = tuple(_ONE_REF.findall(match.group("refs")))
        line = text.count("\n", 0, match.start()) + 1
        found.append(Citation(source, line, "docs/" + match.group("path"), refs))
    return found


def unresolved_citations(root: Path = ROOT, files: Iterable[Path] | None = None) -> list[str]:
    """Citations of ``docs/… §N`` or ``docs/… ID`` that name a missing file, section or ID.

    Args:
        root: the repository root; cited paths are relative to it.
        files: the files to scan (default: every tracked text file).

    Returns:
        One ``file:line: problem`` string per unresolved reference; empty when all resolve.
    """
    problems = []
    cache: dict[str, tuple[dict[str, str], set[str]] | None] = {}
    for path in files if files is not None else tracked_files(root):
        text = _read_text(path)
        if text is None or "docs/" not in text:
            continue
        rel = path.relative_to(root) if path.is_absolute() else path
        for cite in find_citations(text, str(rel)):
            if cite.document not in cache:
                doc_text = _read_text(root / cite.document) if (root / cite.document).is_file() \
                    else None
                cache[cite.document] = (None if doc_text is None
                                        else (sections(doc_text), defined_ids(doc_text)))
            known = cache[cite.document]
            where = f"{cite.source}:{cite.line}: {cite.document}"
            if known is None:
                problems.append(f"{where}: no such document")
                continue
            numbers, ids = known
            for ref in cite.refs:
                if ref.startswith("§"):
                    if ref[1:] not in numbers:
                        problems.append(f"{where} {ref}: no such section")
                elif ref not in ids:
                    problems.append(f"{where} {ref}: not defined there")
    return problems


# --------------------------------------------------------------------------- (c) convention


def heading_convention_problems(text: str, name: str) -> list[str]:
    """Where a numbered document breaks the rules of docs/README.md (empty if not numbered)."""
    found = headings(text)
    if not any(_NUMBERED.match(h) for _, _, h in found):
        return []
    problems, seen = [], set()
    for number, level, heading in found:
        if level == 1:
            continue
        match = _NUMBERED.match(heading)
        if match is None:
            problems.append(f"{name}:{number}: heading '{heading}' has no § number")
            continue
        section = match.group(1)
        parts = section.split(".")
        if len(parts) != level - 1:
            problems.append(f"{name}:{number}: §{section} is at heading level {level}")
        if section in seen:
            problems.append(f"{name}:{number}: §{section} appears twice")
        if len(parts) > 1 and ".".join(parts[:-1]) not in seen:
            problems.append(f"{name}:{number}: §{section} has no parent section before it")
        seen.add(section)
    return problems


# --------------------------------------------------------------------------- the tests


def test_every_relative_markdown_link_resolves() -> None:
    assert broken_links() == []


def test_every_citation_of_a_docs_section_resolves() -> None:
    assert unresolved_citations() == []


def test_numbered_documents_follow_the_heading_convention() -> None:
    problems = []
    for path in tracked_files():
        if path.suffix == ".md" and "docs" in path.relative_to(ROOT).parts:
            problems += heading_convention_problems(path.read_text(encoding="utf-8"),
                                                    str(path.relative_to(ROOT)))
    assert problems == []


def test_the_cited_documents_exist_and_are_numbered() -> None:
    for name in ("safety-basis", "programs-basis", "architecture", "writing-a-driver",
                 "protocols/sciencemode2", "protocols/coyote3", "protocols/openemsstim"):
        assert sections((ROOT / "docs" / f"{name}.md").read_text(encoding="utf-8")), name


def test_the_basis_numbers_follow_the_stable_ids() -> None:
    safety = (ROOT / "docs/safety-basis.md").read_text(encoding="utf-8")
    numbered = sections(safety)
    for n in range(1, 25):
        assert numbered[f"2.{n}"].startswith(f"L{n} "), n
    for n in range(1, 23):
        assert numbered[f"5.{n}"].startswith(f"HZ-{n:02d} "), n
    assert {f"W{n}" for n in range(1, 9)} <= defined_ids(safety)
    programs = (ROOT / "docs/programs-basis.md").read_text(encoding="utf-8")
    assert {f"P{n}" for n in range(10)} <= defined_ids(programs)


def test_no_markdown_file_refers_to_notes_outside_the_repository() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in tracked_files()
                 if p.suffix == ".md" and re.search(r"\.\./shared|shared/(?:protocols|DESIGN)",
                                                    p.read_text(encoding="utf-8"))]
    assert offenders == []


# --------------------------------------------------------------------------- the checker itself


def _repo(tmp_path: Path, files: dict[str, str]) -> list[Path]:
    paths = []
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


_DOC = "# T\n\n## §1 One\n\n### §1.2 L7 Seven\n\n| W3 | x |\n|---|---|\n\n```\n## §9 fenced\n```\n"
_D = "docs/"  # split so that this file's own scan does not read the examples as citations


def test_the_citation_check_catches_a_missing_section_file_or_id(tmp_path: Path) -> None:
    good = f"# {_D}a.md §1, §1.2 and {_D}a.md L7, W3; {_D}a.md §1, HZ-17 (HZ-17 is not a.md's)\n"
    bad = f"x = 1  # {_D}a.md §2, {_D}a.md §1/§1.3, {_D}b.md §1, {_D}a.md L8, {_D}a.md §9\n"
    files = _repo(tmp_path, {"docs/a.md": _DOC, "good.py": good, "bad.py": bad})
    assert unresolved_citations(tmp_path, files[1:2]) == []
    problems = unresolved_citations(tmp_path, files[2:])
    assert [p.split(": ", 1)[1] for p in problems] == [
        f"{_D}a.md §2: no such section",
        f"{_D}a.md §1.3: no such section",
        f"{_D}b.md: no such document",
        f"{_D}a.md L8: not defined there",
        f"{_D}a.md §9: no such section",  # a heading inside a code block is no section
    ]


def test_citations_may_close_code_marks_before_the_section() -> None:
    cites = find_citations(f"see ``{_D}protocols/x.md`` §4 and §12; not src/{_D}y.md §1")
    assert [(c.document, c.refs) for c in cites] == [(f"{_D}protocols/x.md", ("§4", "§12"))]


def test_the_link_check_catches_missing_files_anchors_and_escapes(tmp_path: Path) -> None:
    files = _repo(tmp_path, {
        "docs/a.md": "# A\n\n## §2.1 Hard limits (L1–L24)\n\nsee [b](b.md#wrong) and "
                     "[self](#21-hard-limits-l1l24), [out](../../x.md), [gone](c.md), "
                     "`[code](nothing.md)`, [web](https://example.org/x.md)\n",
        "docs/b.md": "# B\n",
    })
    problems = broken_links(tmp_path, files)
    assert [p.split(": link ", 1)[1] for p in problems] == [
        "'b.md#wrong': no heading with anchor '#wrong'",
        "'../../x.md' leaves the repository",
        "'c.md': no such file",
    ]


def test_slugs_follow_github() -> None:
    assert slug("Profiled misses and what was done (2026-11-26; figures in RESULTS.md)") == \
        "profiled-misses-and-what-was-done-2026-11-26-figures-in-resultsmd"
    assert slug("§2.9 L9 rms current density") == "29-l9-rms-current-density"
    assert slug("Calibration (`emsctl calibrate`)") == "calibration-emsctl-calibrate"
    assert anchors("# A\n## x\n## x\n") == {"a", "x", "x-1"}


def test_the_heading_convention_check_catches_each_rule() -> None:
    text = "# T\n## §1 A\n### §2.1 B\n## §1 C\n#### §1.1 D\n## E\n"
    assert heading_convention_problems(text, "t.md") == [
        "t.md:3: §2.1 has no parent section before it",
        "t.md:4: §1 appears twice",
        "t.md:5: §1.1 is at heading level 4",
        "t.md:6: heading 'E' has no § number",
    ]
    assert heading_convention_problems("# T\n## Plain\n", "p.md") == []
