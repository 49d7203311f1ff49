"""The checks before any output, shared by ``emsctl run`` and ``emsctl calibrate``.

On a real device: the docs/safety-basis.md §6.1 questionnaire when it is missing, older than 30 days
or ``--rescreen`` is given (answers saved to the profile), the gate itself (a hard block has no
override), the before-each-session checks (calf red flag, skin) and the docs/safety-basis.md §6.3
warnings. All of it needs a terminal: no flag answers a question. On the simulator the questions and
warnings are shown but never asked and never block, so demos, tests and CI run unattended.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import click

from ..profile import Profile, save_profile
from ..screening import (
    QUESTIONS,
    SESSION_CHECKS,
    WARNINGS,
    GateRefused,
    ask_questionnaire,
    ask_session_checks,
    check_session_answers,
    evaluate,
    is_current,
)
from .words import wrap

__all__ = ["pass_gates", "show_warnings"]


def _err(text: str) -> None:
    click.echo(text, err=True)


def _item(mark: str, text: str) -> None:
    """One list item, wrapped to the terminal at word boundaries with a hanging indent."""
    for line in wrap(text, label=f"  {mark} "):
        _err(line)


def show_warnings() -> None:
    """Print the docs/safety-basis.md §6.3 warnings (before every session)."""
    _err("Before you start:")
    for warning in WARNINGS:
        _item("-", warning)


def _confirm(text: str) -> bool:
    return bool(click.confirm(text, default=None, err=True))


def _ask_sites(text: str) -> str:
    return str(click.prompt(text, default="", show_default=False, err=True))


def pass_gates(profile: Profile, sites: Iterable[str], simulated: bool, *, interactive: bool,
               rescreen: bool, now: datetime, path: Path | None = None, quiet: bool = False
               ) -> tuple[Profile, dict[str, bool]]:
    """Screen, gate, check and warn.

    ``quiet`` (``emsctl -q``) leaves out the simulator's list of questions it does not ask; the
    warnings are always shown, and a real device always asks.

    Returns:
        The profile (saved again when the questionnaire was answered) and the answers to the
        before-session checks (empty on the simulator, where nothing is asked).

    Raises:
        GateRefused: a block (hard block, doctor approval missing, site, red flag), or a real
            device without a terminal to ask in.
        ProfileError: the answers could not be saved.
    """
    sites = list(sites)
    if simulated:
        if quiet:
            _err("Simulator: the safety questions are not asked (shown without -q).")
        else:
            _err("Simulator: the safety questions are shown, not asked, and never block.")
            for question in QUESTIONS:
                _item("?", question.text)
            for _, text, _ in SESSION_CHECKS:
                _item("?", text)
        show_warnings()
        return profile, {}
    if rescreen or not is_current(profile.screening, now):
        if not interactive:
            raise GateRefused("the safety questionnaire must be answered in a terminal before "
                              "a session on a real device (no flag answers it)")
        _err("Safety questionnaire (asked again every 30 days):")
        screening = ask_questionnaire(_confirm, _ask_sites, now)
        profile = save_profile(profile.model_copy(update={"screening": screening}), path)
    evaluate(profile.screening, sites, now)
    if not interactive:
        raise GateRefused("the checks before each session need a terminal on a real device")
    answers = ask_session_checks(_confirm, sites)
    check_session_answers(answers)
    show_warnings()
    return profile, answers
