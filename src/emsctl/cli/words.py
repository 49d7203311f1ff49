"""Plain words for people: text wrapped to the terminal, threshold terms explained once.

Everything a person reads before, during and after a session goes through here: paragraphs are
wrapped to the terminal's width at word boundaries (never "Uppe|r pad"), and the first time a
threshold term (ST, MT, TOL) appears in a command's output it is followed by what it means.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from collections.abc import Iterable

__all__ = ["HAZARD_NAMES", "TERMS", "Explainer", "term_lines", "text_width", "with_id_words",
           "wrap"]

#: Text is never wider than this, however wide the terminal: long lines are hard to read.
MAX_WIDTH = 100
#: ... and never narrower than this.
MIN_WIDTH = 40

_UNIT = re.compile(r"(\d) (mA|µA|µC|µs|ms|Hz|s|min|%|cm²|mA/cm²|W/cm²|V|Ω)(?![\w/²])")

#: The threshold terms, in the order they are explained.
TERMS: dict[str, str] = {
    "ST": "the level where you first feel a tingling, for you, from calibration",
    "MT": "the level where the muscle starts to twitch, for you, from calibration",
    "TOL": "the highest level you still find comfortable, for you, from calibration",
}
_TERM = re.compile(r"(?<![A-Za-z])(ST|MT|TOL)(?![A-Za-z])")

#: The hazards of SAFETY.md's table in words, so a message never shows a bare hazard ID.
HAZARD_NAMES: dict[str, str] = {
    "HZ-01": "excess amplitude",
    "HZ-02": "sudden onset or jump",
    "HZ-03": "cannot stop",
    "HZ-04": "device without watchdog",
    "HZ-05": "overlong session or overdose",
    "HZ-06": "DC or charge imbalance",
    "HZ-07": "high current density",
    "HZ-08": "dangerous current path",
    "HZ-09": "contraindicated user",
    "HZ-10": "use while asleep, driving, in water",
    "HZ-11": "wrong device, channel or person",
    "HZ-12": "corrupted or misframed command",
    "HZ-13": "config or program tampering",
    "HZ-14": "invalid calibration",
    "HZ-15": "induced cramp or muscle damage",
    "HZ-16": "display shows commanded, not actual",
    "HZ-17": "low battery or brown-out",
    "HZ-18": "host/firmware mismatch",
    "HZ-19": "host-timed pulses",
    "HZ-20": "interaction with other equipment",
    "HZ-21": "child or unauthorised use",
    "HZ-22": "no record of delivered dose",
}
_ID = re.compile(r"(?<![\w-])(L\d{1,2}|HZ-\d\d)(?![\w-])")
_ID_IN_BRACKETS = re.compile(r"\((L\d{1,2}|HZ-\d\d)\)")


def _id_name(identifier: str) -> str | None:
    from ..limit_table import LIMIT_NAMES  # noqa: PLC0415 - only when a message has an ID

    if identifier.startswith("HZ-"):
        return HAZARD_NAMES.get(identifier)
    name = LIMIT_NAMES.get(identifier)
    return None if name is None else name[:1].lower() + name[1:]


def with_id_words(text: str) -> str:
    """``text`` with every bare limit or hazard ID followed by its name in words.

    "(L21)" → "(heartbeat and watchdog, limit L21)"; "HZ-14" → "HZ-14 (invalid calibration)".
    """

    def bracketed(match: re.Match[str]) -> str:
        identifier = match.group(1)
        name = _id_name(identifier)
        kind = "hazard" if identifier.startswith("HZ-") else "limit"
        return match.group(0) if name is None else f"({name}, {kind} {identifier})"

    def bare(match: re.Match[str]) -> str:
        identifier = match.group(1)
        name = _id_name(identifier)
        return identifier if name is None else f"{identifier} ({name})"

    parts = re.split(r"(\([^()]*\))", _ID_IN_BRACKETS.sub(bracketed, text))
    # IDs already explained above sit inside "(…, limit L21)": leave brackets alone
    return "".join(part if part.startswith("(") else _ID.sub(bare, part) for part in parts)


def text_width() -> int:
    """Columns to wrap to: the terminal's (``COLUMNS`` in a pipe, else 80), within limits."""
    columns = shutil.get_terminal_size((80, 24)).columns
    return max(MIN_WIDTH, min(MAX_WIDTH, columns))


def wrap(text: str, *, label: str = "", indent: int | None = None,
         width: int | None = None) -> list[str]:
    """``text`` as lines of at most ``width`` columns, broken only between words.

    Args:
        text: one or more paragraphs (kept apart by a blank line; single line breaks inside a
            paragraph are joined).
        label: printed before the first line ("Placement: "); later lines are indented.
        indent: the hanging indent of later lines (default: the label's length, or 2 when the
            label is longer than 12 characters).
        width: columns (default :func:`text_width`).
    """
    width = width or text_width()
    if indent is None:
        indent = len(label) if len(label.strip()) <= 12 else 2
    lines: list[str] = []
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()] or [""]
    for number, paragraph in enumerate(paragraphs):
        first = label if number == 0 else " " * indent
        if number:
            lines.append("")  # paragraphs stay apart
        # a number keeps its unit on the same line ("85.0 mA", never "85.0" / "mA")
        joined = _UNIT.sub("\\1\u00a0\\2", " ".join(paragraph.split()))
        lines += [line.replace("\u00a0", " ") for line in textwrap.wrap(
            joined, width=width, initial_indent=first, subsequent_indent=" " * indent,
            break_long_words=False, break_on_hyphens=False)] or [first.rstrip()]
    return lines


def term_lines(terms: Iterable[str], *, prefix: str = "  ", width: int | None = None
               ) -> list[str]:
    """The explanation lines of ``terms`` ("MT = the level where ..."), wrapped."""
    lines: list[str] = []
    for term in terms:
        head = f"{prefix}{term} = "
        lines += wrap(TERMS[term], label=head, indent=len(head), width=width)
    return lines


class Explainer:
    """Remembers which threshold terms a command's output has explained so far."""

    def __init__(self) -> None:
        self.explained: set[str] = set()

    def new_terms(self, text: str) -> list[str]:
        """Terms in ``text`` not explained yet, in the order of :data:`TERMS`; now marked."""
        found = {match.group(1) for match in _TERM.finditer(text)} - self.explained
        self.explained |= found
        return [term for term in TERMS if term in found]

    def lines(self, text: str, *, prefix: str = "  ", width: int | None = None) -> list[str]:
        """Explanation lines for the terms ``text`` uses for the first time (maybe none)."""
        return term_lines(self.new_terms(text), prefix=prefix, width=width)
