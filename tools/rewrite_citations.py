#!/usr/bin/env python3
"""Rewrite old-style citations into citations of the project's own documents in ``docs/``.

The code, tests, program files and some documents still cite notes that are not part of the
repository. This tool rewrites those citations so that every one names a file and a numbered
section under ``docs/`` (the convention is in docs/README.md):

==============================================  =============================================
old                                             new
==============================================  =============================================
``SAFETY-BASIS §6.5``, ``SAFETY-BASIS.md §2``   ``docs/safety-basis.md §6.5``, ``… §2``
``SAFETY-BASIS W7, L18``                        ``docs/safety-basis.md W7, L18`` (stable IDs)
``PROGRAMS-BASIS §1``, ``PROGRAMS-BASIS P8``    ``docs/programs-basis.md §1``, ``… P8``
``PROGRAMS-BASIS.md §3 relaxation``             ``docs/programs-basis.md §3.1 relaxation``
``<notes>/protocols/coyote3.md §13``            ``docs/protocols/coyote3.md §13``
the notes' ``DESIGN.md``                        ``docs/architecture.md``
a bare ``§4.2`` or ``spec §10``                 ``docs/<the document the file means> §…``
``§7.5`` where §7.5 is a step, not a section    ``§7 step 5``
issue numbers ("(issue N)", "Issue N item M:")  removed, or the sentence reworded
==============================================  =============================================

Which document a bare ``§N`` means is decided from context: the file's path (a file of a
protocol's driver, emulation, tests or benchmark means that protocol's document; the core, the
safety tests, SAFETY.md and the profile notes mean the safety basis; program files mean the
programs basis), overridden by a device named on the line or just above it. Bracketed
references into a protocol's sources, such as ``[SM2 §1.2]``, are left alone, and so are the
numbered documents in ``docs/`` (their bare ``§N`` refer to themselves).

Usage::

    python tools/rewrite_citations.py             # rewrite the tracked files in place
    python tools/rewrite_citations.py --diff      # show what would change, write nothing
    python tools/rewrite_citations.py --check     # list what is left unresolvable; exit 1 if any

``--check`` applies the rewrite in memory and reports (1) old-style citations it cannot
resolve, (2) new-style citations that name a missing section (the check of
``tests/test_docs_links.py``), and, as warnings, Python lines the rewrite makes longer than the
100-character limit. Only the standard library is used.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import io
import re
import sys
import textwrap
import tokenize
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
LINE_LIMIT = 100
TEXT_SUFFIXES = {".py", ".toml", ".md", ".json", ".cfg", ".txt", ".ini", ".yml", ".yaml"}
#: Files that define the new scheme or this tool: never rewritten.
SKIP = {"tools/rewrite_citations.py", "tests/test_docs_links.py", "tests/test_rewrite_citations.py",
        "docs/README.md"}

SAFETY, PROGRAMS, ARCHITECTURE = ("docs/safety-basis.md", "docs/programs-basis.md",
                                  "docs/architecture.md")
PROTOCOL_DOCS = {"sciencemode2": "docs/protocols/sciencemode2.md",
                 "coyote3": "docs/protocols/coyote3.md",
                 "openems": "docs/protocols/openemsstim.md",
                 "sciencemode4": "docs/protocols/sciencemode4.md"}

#: The document a bare §N means in files under a path prefix (first match wins).
PATH_DEFAULTS: tuple[tuple[str, str], ...] = (
    ("drivers/sciencemode4/", PROTOCOL_DOCS["sciencemode4"]),
    ("simulator/devices/sciencemode4", PROTOCOL_DOCS["sciencemode4"]),
    ("simulator/drivers/sciencemode4", PROTOCOL_DOCS["sciencemode4"]),
    ("tests/sciencemode4/", PROTOCOL_DOCS["sciencemode4"]),
    ("tests/drivers/test_sciencemode4", PROTOCOL_DOCS["sciencemode4"]),
    ("benchmarks/bench_sciencemode4.py", PROTOCOL_DOCS["sciencemode4"]),
    ("drivers/sciencemode2/", PROTOCOL_DOCS["sciencemode2"]),
    ("simulator/devices/sciencemode2", PROTOCOL_DOCS["sciencemode2"]),
    ("tests/sciencemode2/", PROTOCOL_DOCS["sciencemode2"]),
    ("tests/drivers/test_sciencemode2", PROTOCOL_DOCS["sciencemode2"]),
    ("benchmarks/bench_serial.py", PROTOCOL_DOCS["sciencemode2"]),
    ("drivers/links/serial.py", PROTOCOL_DOCS["sciencemode2"]),  # the 8E1/pty rule of §2
    ("drivers/coyote3/", PROTOCOL_DOCS["coyote3"]),
    ("simulator/devices/coyote3", PROTOCOL_DOCS["coyote3"]),
    ("tests/coyote3/", PROTOCOL_DOCS["coyote3"]),
    ("tests/drivers/test_coyote3", PROTOCOL_DOCS["coyote3"]),
    ("benchmarks/bench_ble.py", PROTOCOL_DOCS["coyote3"]),
    ("drivers/openems/", PROTOCOL_DOCS["openems"]),
    ("simulator/devices/openems", PROTOCOL_DOCS["openems"]),
    ("tests/openems/", PROTOCOL_DOCS["openems"]),
    ("tests/drivers/test_openems", PROTOCOL_DOCS["openems"]),
    ("benchmarks/bench_openems.py", PROTOCOL_DOCS["openems"]),
    ("programs/", PROGRAMS),
    ("src/emsctl/", SAFETY),
    ("tests/test_limits", SAFETY),
    ("tests/test_programs_builtin.py", SAFETY),
    ("tests/test_guard.py", SAFETY),
    ("tests/test_verify.py", SAFETY),
    ("tests/test_kernel_exact.py", SAFETY),
    ("tests/profile/", SAFETY),
    ("tests/session/", SAFETY),
    ("SAFETY.md", SAFETY),
    ("docs/profile.md", SAFETY),
    ("docs/mutation.md", SAFETY),
)

#: A device named on a line (or up to two lines above) decides over the file's default.
LINE_HINTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"openEMSstim|openems", re.IGNORECASE), PROTOCOL_DOCS["openems"]),
    (re.compile(r"Coyote|coyote3"), PROTOCOL_DOCS["coyote3"]),
    (re.compile(r"ScienceMode4|sciencemode4|\bP24\b"), PROTOCOL_DOCS["sciencemode4"]),
    (re.compile(r"ScienceMode2|sciencemode2|RehaStim2"), PROTOCOL_DOCS["sciencemode2"]),
)
HINT_LINES_ABOVE = 2

_NUM = r"\d+(?:\.\d+)*"
_SEP = r"\s*(?:,|/|–|—|-|\band\b|\bor\b|&)?\s*"
BARE_CHAIN = re.compile(rf"(?:\b[Ss]pec )?§{_NUM}(?:{_SEP}§{_NUM})*")
NEW_CITATION = re.compile(rf"docs/[\w./-]+\.md[`'\"*]*[ \t]+§{_NUM}(?:{_SEP}§{_NUM})*")
VENDOR_BRACKET = re.compile(r"\[[A-Z][\w-]*(?: [^\]\[]*)?\]")

# Old document names → new paths. Order matters: the longer forms first.
PATH_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?<![\w/.])(?:\.\./)?shared/protocols/(\w+)\.md"), "docs/protocols/{}.md"),
    (re.compile(r"(?<![\w/.-])protocols/(\w+)\.md"), "docs/protocols/{}.md"),
    (re.compile(r"(?<![\w/.])(?:\.\./)?shared/DESIGN\.md|(?<![\w/.-])DESIGN\.md"), ARCHITECTURE),
    (re.compile(r"\bSAFETY-BASIS(?:\.md)?"), SAFETY),
    (re.compile(r"\bPROGRAMS-BASIS(?:\.md)?"), PROGRAMS),
)
#: The protocol notes' file names → the documents' names.
PROTOCOL_NAMES = {"sciencemode2": "sciencemode2", "coyote3": "coyote3",
                  "openemsstim": "openemsstim", "sciencemode4": "sciencemode4"}

Replacement = str | Callable[[re.Match[str]], str]


def _capitalised(group: int) -> Callable[[re.Match[str]], str]:
    return lambda m: m.group(group)[:1].upper() + m.group(group)[1:]


_ISSUE = r"(?i:issue) \d+(?: item \d+)?"
#: Issue references, removed or reworded (applied in this order).
ISSUE_RULES: tuple[tuple[re.Pattern[str], Replacement], ...] = (
    (re.compile(r"\((?i:issue) \d+, \"Performance\"\)"), "(the README's \"Performance\" figures)"),
    (re.compile(rf"\b{_ISSUE} \(([^)]*)\), (HZ-\d\d(?:, HZ-\d\d)*)\."),
     lambda m: f"{m.group(1)[:1].upper()}{m.group(1)[1:]} ({m.group(2)})."),
    (re.compile(rf"\({_ISSUE}[,:] "), "("),
    (re.compile(rf"[;,] {_ISSUE}(?=[):;.,])"), ""),
    (re.compile(rf" ?\({_ISSUE}[^)]*\)"), ""),
    (re.compile(rf"\b{_ISSUE}[.,:] +(\w)"), _capitalised(1)),
    (re.compile(r"\bthe issue's sizes\b"), "the target sizes"),
    (re.compile(r"\bwhere the issue saw\b"), "where the first measurement saw"),
    (re.compile(r"\bthe figures the issues ask for\b"), "the target figures"),
)
ISSUE_LEFT = re.compile(r"(?i)\bissues?[ -]#?\d+|\bthe issues?\b")
OLD_LEFT = re.compile(r"SAFETY-BASIS|PROGRAMS-BASIS|(?<![\w/])shared/|(?<![\w/.-])DESIGN\.md")


@dataclass
class Report:
    """What a run changed and what it could not resolve."""

    changed: Counter[str] = field(default_factory=Counter)
    files: set[str] = field(default_factory=set)
    unresolved: list[str] = field(default_factory=list)
    long_lines: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Documents:
    """What the documents in ``docs/`` offer: sections per document, programs' sections."""

    sections: dict[str, set[str]]
    program_sections: dict[str, str]

    @classmethod
    def load(cls, root: Path, checker: ModuleType) -> Documents:
        found: dict[str, set[str]] = {}
        for path in sorted((root / "docs").rglob("*.md")):
            found[path.relative_to(root).as_posix()] = set(
                checker.sections(path.read_text(encoding="utf-8")))
        programs: dict[str, str] = {}
        programs_doc = root / PROGRAMS
        if programs_doc.is_file():
            for number, title in checker.sections(programs_doc.read_text("utf-8")).items():
                if number.startswith("3."):
                    programs[title.split()[0]] = number
        return cls(found, programs)


def load_checker(root: Path) -> ModuleType:
    """``tests/test_docs_links.py`` as a module: its section parser and citation check."""
    spec = importlib.util.spec_from_file_location("_docs_links", root / "tests/test_docs_links.py")
    if spec is None or spec.loader is None:
        raise SystemExit("tests/test_docs_links.py is missing")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def default_document(rel: str) -> str | None:
    """The document a bare §N means in the file ``rel``, from its path alone."""
    for prefix, document in PATH_DEFAULTS:
        if rel.startswith(prefix):
            return document
    return None


def _hint(lines: list[str], index: int, above: int) -> str | None:
    for line in reversed(lines[max(0, index - above):index + 1]):
        for pattern, document in LINE_HINTS:
            if pattern.search(line):
                return document
    return None


def _fix_number(number: str, document: str, docs: Documents) -> str | None:
    """A section number as it exists in ``document``; ``A.B`` not there becomes ``A step B``."""
    known = docs.sections.get(document)
    if known is None:
        return None
    if number in known:
        return f"§{number}"
    parent, _, step = number.rpartition(".")
    if parent and parent in known and step.isdigit():
        return f"§{parent} step {step}"
    return None


def _rewrite_chain(chain: str, document: str, docs: Documents) -> str | None:
    refs = re.findall(_NUM, chain.split("§", 1)[1] if chain.startswith(("spec", "Spec"))
                      else chain)
    fixed = [_fix_number(n, document, docs) for n in refs]
    if any(f is None for f in fixed):
        return None
    body = chain[chain.index("§"):]
    for number, new in zip(refs, fixed, strict=True):
        body = body.replace(f"§{number}", str(new), 1)
    return f"{document} {body}"


def _in_vendor_bracket(line: str, start: int) -> bool:
    return any(m.start() < start < m.end() for m in VENDOR_BRACKET.finditer(line))


def rewrite_text(text: str, rel: str, docs: Documents, report: Report) -> str:
    """The rewritten ``text`` of the file ``rel`` (relative to the root)."""
    lines = text.split("\n")
    numbered_doc = rel.startswith("docs/") and bool(docs.sections.get(rel))
    grown: list[int] = []
    for i, line in enumerate(lines):
        new = line
        for pattern, replacement in ISSUE_RULES:
            new, n = pattern.subn(replacement, new)
            report.changed["issue phrase reworded"] += n
        if numbered_doc:
            lines[i] = new
            continue
        for pattern, target in PATH_RULES:
            def repl(m: re.Match[str], target: str = target) -> str:
                if "{}" not in target:
                    return target
                return target.format(PROTOCOL_NAMES.get(m.group(1), m.group(1)))
            new, n = pattern.subn(repl, new)
            report.changed["document path rewritten"] += n
        # "docs/<doc>.md (§5–§7, §12)" → "docs/<doc>.md §5–§7, §12"
        new = re.sub(r"(docs/[\w./-]+\.md[`'\"]*) \((§[^()]*)\)", r"\1 \2", new)
        # "docs/programs-basis.md §3 relaxation" → "… §3.1 relaxation"
        new = re.sub(rf"({re.escape(PROGRAMS)}) §3 ([\w-]+)",
                     lambda m: (f"{m.group(1)} §{docs.program_sections[m.group(2)]} {m.group(2)}"
                                if m.group(2) in docs.program_sections else m.group(0)), new)
        # dotted numbers after a path that are steps, not sections
        new = NEW_CITATION.sub(lambda m: _fix_cited_steps(m.group(0), docs), new)
        covered = [(m.start(), m.end()) for m in NEW_CITATION.finditer(new)]
        out, last = [], 0
        for m in BARE_CHAIN.finditer(new):
            if any(a <= m.start() < b for a, b in covered) or _in_vendor_bracket(new, m.start()):
                continue
            document = choose_document(rel, lines, i)
            rewritten = None if document is None else _rewrite_chain(m.group(0), document, docs)
            if rewritten is None:
                report.unresolved.append(f"{rel}:{i + 1}: bare '{m.group(0)}' (no document "
                                         "known for it)" if document is None else
                                         f"{rel}:{i + 1}: '{m.group(0)}' not in {document}")
                continue
            out.append(new[last:m.start()] + rewritten)
            last = m.end()
            report.changed[f"bare § → {document}"] += 1
        new = "".join(out) + new[last:]
        if rel.endswith(".py") and len(new) > LINE_LIMIT >= len(line):
            grown.append(i)
        lines[i] = new
    text = "\n".join(lines)
    if grown:
        text, left = reflow_python(text, grown)
        report.changed["Python line reflowed"] += len(grown) - len(left)
        report.long_lines += [f"{rel}:{n}: {length} characters" for n, length in left]
    return text


def choose_document(rel: str, lines: list[str], index: int) -> str | None:
    """The document a bare §N on line ``index`` of ``rel`` means, or None if unknown.

    A protocol's own files always mean its document. Files whose default is a basis document
    (the core, program files, SAFETY.md, …) switch only for a device named on the line itself.
    Files without a default (the fault matrix, …) follow a device named on the line or up to
    two lines above it.
    """
    default = default_document(rel)
    if default in PROTOCOL_DOCS.values():
        return default
    if default is not None:
        return _hint(lines, index, above=0) or default
    return _hint(lines, index, above=HINT_LINES_ABOVE)


def _fix_cited_steps(citation: str, docs: Documents) -> str:
    document = citation.split(maxsplit=1)[0].rstrip("`'\"*")
    if document not in docs.sections:
        return citation
    def one(m: re.Match[str]) -> str:
        return _fix_number(m.group(1), document, docs) or m.group(0)
    head, _, refs = citation.partition("§")
    return head + re.sub(rf"§({_NUM})", one, "§" + refs)


# --------------------------------------------------------------------------- reflowing Python

_LIST_ITEM = re.compile(r"^(?:[-*•] |\d+[.)] |[A-Z][a-z]+:$|Args:|Returns:|Raises:|Yields:|::)")
_TRIPLE = ('"' * 3, "'" * 3)


@dataclass(frozen=True)
class _Layout:
    """Where the docstrings, comments and strings of a Python file are (1-based lines)."""

    docstrings: list[tuple[int, int, int]]  # (first line, last line, column of the quotes)
    comments: dict[int, int]  # line → column of the comment
    strings: dict[int, list[tuple[int, int, str, int]]]  # line → (start, end, token, depth)


def _layout(text: str) -> _Layout | None:
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return None
    docstrings: list[tuple[int, int, int]] = []
    comments: dict[int, int] = {}
    strings: dict[int, list[tuple[int, int, str, int]]] = {}
    depth, statement_start = 0, True
    for index, tok in enumerate(tokens):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.start[1]
            continue
        if tok.type == tokenize.STRING:
            following = tokens[index + 1].type if index + 1 < len(tokens) else tokenize.ENDMARKER
            if statement_start and depth == 0 and following in (tokenize.NEWLINE, tokenize.COMMENT):
                docstrings.append((tok.start[0], tok.end[0], tok.start[1]))
            elif tok.start[0] == tok.end[0]:
                strings.setdefault(tok.start[0], []).append(
                    (tok.start[1], tok.end[1], tok.string, depth))
        if tok.type == tokenize.OP and tok.string in "([{":
            depth += 1
        elif tok.type == tokenize.OP and tok.string in ")]}":
            depth -= 1
        if tok.type not in (tokenize.NL, tokenize.COMMENT):
            statement_start = tok.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
    return _Layout(docstrings, comments, strings)


#: Never broken across lines: a citation, and a number with its unit (their spaces are glued
#: while a paragraph is filled).
_GLUED = re.compile(rf"docs/[\w./-]+\.md[`'\"*]*[ \t]+§{_NUM}(?: step \d+)?"
                    rf"(?:{_SEP}§{_NUM}(?: step \d+)?)*"
                    r"|\d [kMmµ]?(?:s|Hz|A|V|Ω|W|C|%)(?![\w])")


def _fill(first_prefix: str, next_prefix: str, words: str, suffix: str = "") -> list[str]:
    glued = _GLUED.sub(lambda m: m.group(0).replace(" ", "\0"), words)
    width = LINE_LIMIT
    while True:
        filled = textwrap.wrap(glued, width=width, initial_indent=first_prefix,
                               subsequent_indent=next_prefix, break_long_words=False,
                               break_on_hyphens=False)
        if not suffix or len(filled[-1]) + len(suffix) <= LINE_LIMIT or width < 40:
            return [line.replace("\0", " ") for line in [*filled[:-1], filled[-1] + suffix]]
        width -= len(suffix)


def _reflow_docstring(lines: list[str], i: int, doc: tuple[int, int, int]) -> bool:
    first, last, column = doc
    line = lines[i]
    opening = lines[first - 1][column:]
    quote = next((q for q in _TRIPLE if q in opening.lstrip("rRuU")[:3]), None)
    if quote is None:
        return False
    if i + 1 == first:
        start = line.index(quote, column) + 3
        prefix, cont = line[:start], " " * column
    else:
        stripped = line.lstrip()
        prefix = line[:len(line) - len(stripped)]
        bullet = re.match(r"[-*•] |\d+[.)] ", stripped)
        cont = prefix + " " * (len(bullet.group(0)) if bullet else 0)
        start = len(prefix)
    content, suffix = line[start:], ""
    if i + 1 == last and content.rstrip().endswith(quote):
        content, suffix = content.rstrip()[:-3], quote
    if "  " in content.strip() or content.rstrip().endswith("::"):
        return False  # aligned text or a literal block: leave it to a person
    parts, j = [content.strip()], i
    while not suffix and j + 2 <= last:
        nxt = lines[j + 1]
        body = nxt[len(cont):]
        if (not nxt.startswith(cont) or not body.strip() or body[0] == " "
                or _LIST_ITEM.match(body) or "  " in body.strip() or body.rstrip() == quote):
            break
        j += 1
        if body.rstrip().endswith(quote):
            parts.append(body.rstrip()[:-3].strip())
            suffix = quote
        else:
            parts.append(body.strip())
    lines[i:j + 1] = _fill(prefix, cont, " ".join(p for p in parts if p), suffix)
    return True


def _reflow_comment(lines: list[str], i: int, column: int) -> bool:
    line = lines[i]
    comment = line[column:]
    if re.search(r"noqa|type: *ignore|pragma|fmt:", comment):
        return False
    marker = re.match(r"#:? ?", comment)
    if marker is None:
        return False
    text = comment[marker.end():].strip()
    indent = line[:len(line) - len(line.lstrip())]
    if line[:column].strip():  # a comment after code goes above it, as its own lines
        code = line[:column].rstrip()
        if len(code) > LINE_LIMIT or (i and lines[i - 1].rstrip().endswith("\\")):
            return False
        lines[i:i + 1] = [*_fill(indent + "# ", indent + "# ", text), code]
        return True
    prefix = line[:column] + marker.group(0).rstrip() + " "
    parts, j = [text], i
    while j + 1 < len(lines) and lines[j + 1].startswith(prefix):
        body = lines[j + 1][len(prefix):]
        if not body.strip() or body[0] == " " or _LIST_ITEM.match(body):
            break
        parts.append(body.strip())
        j += 1
    lines[i:j + 1] = _fill(prefix, prefix, " ".join(parts))
    return True


def _split_string(lines: list[str], i: int, strings: list[tuple[int, int, str, int]]) -> bool:
    line = lines[i]
    for start, end, token, depth in strings:
        if not start < LINE_LIMIT < end or depth == 0:
            continue
        quote_at = len(token) - len(token.lstrip("rRbBuU"))
        if "f" in token[:quote_at].lower() or token[quote_at:quote_at + 3] in _TRIPLE:
            return False
        quote = token[quote_at]
        cut = token.rfind(" ", quote_at + 1, LINE_LIMIT - start - 1)
        if cut <= quote_at + 1:
            return False
        head = token[:cut + 1] + quote
        tail = token[:quote_at + 1] + token[cut + 1:]
        lines[i:i + 1] = [line[:start] + head, " " * start + tail + line[end:]]
        return True
    return False


def reflow_python(text: str, grown: list[int]) -> tuple[str, list[tuple[int, int]]]:
    """Bring the lines ``grown`` (0-based) back under the line limit where that is safe.

    Docstring paragraphs and comment lines are refilled; a comment after code moves above it;
    a string inside brackets is split in two. Only whitespace, line breaks and the place of
    comments change. Returns the text and the (line, length) of lines still too long.
    """
    lines = text.split("\n")
    stuck: set[str] = set()
    for i in sorted(grown, reverse=True):
        layout = _layout("\n".join(lines))
        if layout is None or len(lines[i]) <= LINE_LIMIT:
            continue
        done = False
        doc = next((d for d in layout.docstrings if d[0] <= i + 1 <= d[1]), None)
        if doc is not None:
            done = _reflow_docstring(lines, i, doc)
        elif i + 1 in layout.comments and layout.comments[i + 1] < LINE_LIMIT:
            done = _reflow_comment(lines, i, layout.comments[i + 1])
        elif i + 1 in layout.strings:
            done = _split_string(lines, i, layout.strings[i + 1])
        if not done:
            stuck.add(lines[i])
    new = "\n".join(lines)
    if _layout(new) is None:  # never hand back something that no longer tokenizes
        old_lines = text.split("\n")
        return text, [(i + 1, len(old_lines[i])) for i in grown]
    left = [(n, len(line)) for n, line in enumerate(lines, 1)
            if len(line) > LINE_LIMIT and line in stuck]
    return new, left


def leftovers(text: str, rel: str, docs: Documents) -> list[str]:
    """Old-style citations still in ``text`` that this tool does not resolve."""
    found = []
    numbered_doc = rel.startswith("docs/") and bool(docs.sections.get(rel))
    for i, line in enumerate(text.split("\n"), 1):
        if not numbered_doc:
            found += [f"{rel}:{i}: '{m.group(0)}' left" for m in OLD_LEFT.finditer(line)]
        found += [f"{rel}:{i}: issue reference left: '{line.strip()[:80]}'"
                  for _ in ISSUE_LEFT.finditer(line)][:1]
    return found


def tracked(root: Path, checker: ModuleType) -> list[Path]:
    files = [p for p in checker.tracked_files(root)
             if p.suffix in TEXT_SUFFIXES and p.relative_to(root).as_posix() not in SKIP]
    return sorted(files)


def run(root: Path, *, write: bool, diff: bool) -> tuple[Report, dict[Path, str]]:
    """Rewrite every tracked text file in memory; write or diff on request."""
    checker = load_checker(root)
    docs = Documents.load(root, checker)
    report = Report()
    rewritten: dict[Path, str] = {}
    for path in tracked(root, checker):
        rel = path.relative_to(root).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        new = rewrite_text(text, rel, docs, report)
        rewritten[path] = new
        report.unresolved += leftovers(new, rel, docs)
        if new == text:
            continue
        report.files.add(rel)
        if diff:
            sys.stdout.writelines(difflib.unified_diff(
                text.splitlines(keepends=True), new.splitlines(keepends=True),
                f"a/{rel}", f"b/{rel}"))
        if write:
            path.write_text(new, encoding="utf-8")
    return report, rewritten


def new_style_problems(root: Path, rewritten: dict[Path, str]) -> list[str]:
    """Citations of ``docs/… §N`` in the rewritten texts that do not resolve."""
    checker = load_checker(root)
    problems = []
    for path, text in rewritten.items():
        rel = path.relative_to(root).as_posix()
        for cite in checker.find_citations(text, rel):
            document = root / cite.document
            if not document.is_file():
                problems.append(f"{rel}:{cite.line}: {cite.document}: no such document")
                continue
            doc_text = document.read_text(encoding="utf-8")
            numbers, ids = checker.sections(doc_text), checker.defined_ids(doc_text)
            for ref in cite.refs:
                ok = ref[1:] in numbers if ref.startswith("§") else ref in ids
                if not ok:
                    problems.append(f"{rel}:{cite.line}: {cite.document} {ref}: not found")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="write nothing; list what stays unresolvable (exit 1 if anything)")
    mode.add_argument("--diff", action="store_true", help="write nothing; print a unified diff")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    report, rewritten = run(root, write=not (args.check or args.diff), diff=args.diff)
    broken = new_style_problems(root, rewritten)
    out = sys.stderr if args.diff else sys.stdout
    verb = "would change" if (args.check or args.diff) else "changed"
    print(f"{verb} {len(report.files)} files:", file=out)
    for what, count in sorted(report.changed.items()):
        if count:
            print(f"  {count:4d}  {what}", file=out)
    unresolved = sorted(set(report.unresolved)) + broken
    print(f"unresolvable: {len(unresolved)}", file=out)
    for item in unresolved:
        print(f"  {item}", file=out)
    if report.long_lines:
        print(f"warning: {len(report.long_lines)} Python lines over {LINE_LIMIT} characters "
              "after the rewrite and the reflow (shorten them by hand):", file=out)
        for item in report.long_lines:
            print(f"  {item}", file=out)
    return 1 if (args.check and unresolved) else 0


if __name__ == "__main__":
    raise SystemExit(main())
