"""The contraindication gate (L24, HZ-09, docs/safety-basis.md §6): questionnaire, checks, warnings.

- :data:`QUESTIONS` is the docs/safety-basis.md §6.1 questionnaire. Answers are stored in the
  profile with their date and re-confirmed every 30 days. An implanted electronic device (pacemaker,
  ICD, defibrillator, any other) is a **hard block** that no answer, flag or doctor approval lifts;
  under 18 blocks; the other conditions block until the user confirms a doctor approved use;
  lesions, fresh scars and numb skin block their site.
- :data:`SESSION_CHECKS` are asked before every session on a leg site
  (docs/safety-basis.md §6.2, §6.5): one calf swollen, red, warm or newly painful (possible DVT)
  blocks all leg programs and advises same-day care; the pre-bed ``relaxation`` program therefore
  asks it every time.
- :data:`WARNINGS` (docs/safety-basis.md §6.3) are shown before every session.

:func:`evaluate` and :func:`check_session_answers` are pure; :func:`ask_questionnaire` and
:func:`ask_session_checks` take a ``confirm`` function (``click.confirm`` in the CLI), so tests
script every path. On the simulator the CLI shows the questions and never blocks on them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import ValidationError

from .errors import InputError
from .profile import ScreeningAnswers, in_future

__all__ = [
    "LEG_REGIONS",
    "QUESTIONS",
    "SCREENING_MAX_AGE",
    "SESSION_CHECKS",
    "WARNINGS",
    "GateRefused",
    "Question",
    "ask_questionnaire",
    "ask_session_checks",
    "check_session_answers",
    "evaluate",
    "is_current",
]

#: L24: the questionnaire is re-confirmed every 30 days.
SCREENING_MAX_AGE = timedelta(days=30)
#: Sites whose programs are "leg programs" (docs/safety-basis.md §6.1 arterial disease,
#: docs/safety-basis.md §6.2 DVT signs).
LEG_REGIONS = ("calf", "thigh-front", "thigh-back", "foot")


class GateRefused(InputError):
    """The contraindication gate refuses the session (exit 2); the sentence says why."""


@dataclass(frozen=True)
class Question:
    """One yes/no question; ``field`` is the :class:`ScreeningAnswers` field it fills."""

    field: str
    text: str
    gate: str  # "hard", "adult", "doctor", "doctor-legs"


QUESTIONS: tuple[Question, ...] = (
    Question("implanted_device", "Do you have a cardiac pacemaker, an ICD, an implanted or "
             "wearable defibrillator, or any other implanted electronic device?", "hard"),
    Question("adult", "Are you 18 years or older?", "adult"),
    Question("pregnancy", "Are you pregnant, or could you be?", "doctor"),
    Question("epilepsy", "Do you have epilepsy?", "doctor"),
    Question("heart_disease", "Do you have, or does a doctor suspect, heart disease?", "doctor"),
    Question("leg_arterial_disease", "Do you have serious arterial disease of the legs (calf pain "
             "when walking, a pale or cold foot)?", "doctor-legs"),
    Question("cancer", "Do you have cancer, or are you being treated for it?", "doctor"),
    Question("recent_surgery_or_bleeding", "Have you had surgery or an injury in the last 6 "
             "months, or do you bleed easily?", "doctor"),
)
_DOCTOR_TEXT = {
    "pregnancy": "pregnancy", "epilepsy": "epilepsy", "heart_disease": "heart disease",
    "leg_arterial_disease": "arterial disease of the legs", "cancer": "cancer",
    "recent_surgery_or_bleeding": "recent surgery, injury or a bleeding tendency",
}

#: Asked before every session on a leg site: (key, question, what to do when the answer is yes).
SESSION_CHECKS: tuple[tuple[str, str, str], ...] = (
    ("calf_red_flag", "Is one calf swollen, red, warm or newly painful?",
     "do not stimulate: this can be a blood clot (DVT); get medical care today"),
    ("cramp_red_flag", "Since your last session, did you have a cramp lasting more than 10 "
     "minutes that did not ease with stretching, cramps after a dirty wound or contact with a "
     "toxic substance, or new muscle weakness, wasting, numbness or twitching?",
     "do not stimulate: get urgent medical care, or have a doctor assess the weakness or "
     "numbness before using leg programs"),
    ("skin", "Is the skin under any pad broken, infected, inflamed, swollen, irritated from an "
     "earlier session, or over varicose veins?",
     "do not stimulate there: move the pads to healthy skin or wait until it has healed"),
)

#: docs/safety-basis.md §6.3, shown before every session.
WARNINGS: tuple[str, ...] = (
    "Do not use while asleep: the program ends by itself; take the pads off before you lie "
    "down to sleep.",
    "Do not use while driving or operating machinery.",
    "Do not use in the bath or shower, or in a humid room.",
    "Do not use with electronic monitoring equipment (such as an ECG) attached, with HF "
    "surgical equipment, or within about 1 m of shortwave or microwave therapy.",
    "Your first session: sit or lie down.",
    "Stop the output before you touch, move or remove the pads.",
    "Never stimulate during a cramp: press stop, then stretch the calf.",
    "Long-term effects are unknown; skin irritation and burns under the pads can occur. Keep "
    "the device away from children.",
)


def is_current(answers: ScreeningAnswers | None, now: datetime) -> bool:
    """True when the questionnaire was answered within the last 30 days (L24), and not after
    ``now`` (more than 5 minutes ahead of the clock: such answers would never expire)."""
    return (answers is not None and not in_future(answers.answered_utc, now)
            and now - answers.answered_utc <= SCREENING_MAX_AGE)


def _is_leg(site: str) -> bool:
    return site.rpartition("-")[0] in LEG_REGIONS


def evaluate(answers: ScreeningAnswers | None, sites: Iterable[str], now: datetime) -> None:
    """Apply the docs/safety-basis.md §6.1 gate to a session on ``sites``.

    Raises:
        GateRefused: not answered, older than 30 days or dated in the future; an implanted
            device (hard block, no override); under 18; a condition without a doctor's
            approval; a blocked site.
    """
    if answers is None:
        raise GateRefused("the safety questionnaire has not been answered; run the session in a "
                          "terminal to answer it")
    if in_future(answers.answered_utc, now):
        raise GateRefused(f"the safety questionnaire is dated {answers.answered_utc:%Y-%m-%d}, in "
                          "the future, so it would never expire; run the session in a terminal "
                          "to answer it again")
    if not is_current(answers, now):
        raise GateRefused(f"the safety questionnaire of {answers.answered_utc:%Y-%m-%d} is older "
                          "than 30 days; run the session in a terminal to confirm it again")
    if answers.implanted_device:
        raise GateRefused("electrical stimulation must not be used with a pacemaker, ICD, "
                          "defibrillator or other implanted electronic device; emsctl will not "
                          "run (no override)")
    if not answers.adult:
        raise GateRefused("emsctl is for adults only (18 or older)")
    sites = list(sites)
    legs = any(_is_leg(s) for s in sites)
    for question in QUESTIONS:
        if question.gate not in ("doctor", "doctor-legs") or not getattr(answers, question.field):
            continue
        if question.gate == "doctor-legs" and not legs:
            continue
        if question.field not in answers.doctor_approved:
            raise GateRefused(f"with {_DOCTOR_TEXT[question.field]}, use stimulation only after "
                              "a doctor has approved it; confirm that approval in the "
                              "questionnaire (emsctl run --rescreen)")
    for site in sites:
        if site in answers.blocked_sites:
            raise GateRefused(f"site {site} is blocked by your questionnaire (lesion, fresh scar "
                              "or reduced skin sensation); never place pads there")
        if answers.pregnancy and site.startswith("lower-back"):
            raise GateRefused("in pregnancy, never stimulate the lower back, abdomen or uterus")


def ask_questionnaire(confirm: Callable[[str], bool], ask_sites: Callable[[str], str],
                      now: datetime) -> ScreeningAnswers:
    """Ask every docs/safety-basis.md §6.1 question; a "yes" to a doctor item asks whether a doctor
    approved it.

    Args:
        confirm: asks a yes/no question, returns the answer.
        ask_sites: asks for a comma-separated list of sites (may return "").
        now: the answer date.

    Returns:
        The answers, to be saved and then passed to :func:`evaluate`.

    Raises:
        InputError: a site that is not on the allow-list.
    """
    values: dict[str, object] = {"answered_utc": now}
    approved: list[str] = []
    for question in QUESTIONS:
        answer = confirm(question.text)
        values[question.field] = answer
        if answer and question.gate == "hard":
            break  # hard block: nothing else matters, and nothing is asked that could lift it
        if answer and question.gate.startswith("doctor") and confirm(
                f"Has a doctor approved electrical stimulation for you with "
                f"{_DOCTOR_TEXT[question.field]}?"):
            approved.append(question.field)
    blocked = ""
    if not values.get("implanted_device"):
        blocked = ask_sites("Sites with a lesion, a fresh scar or reduced skin sensation "
                            "(comma-separated, e.g. calf-left; empty for none)")
    values["adult"] = bool(values.get("adult", False))
    values["doctor_approved"] = approved
    values["blocked_sites"] = [s.strip() for s in blocked.split(",") if s.strip()]
    try:
        return ScreeningAnswers.model_validate(values)
    except ValidationError as exc:
        message = str(exc.errors(include_url=False)[0]["msg"]).removeprefix("Value error, ")
        raise InputError(f"invalid answer: {message}") from None


def ask_session_checks(confirm: Callable[[str], bool], sites: Iterable[str]) -> dict[str, bool]:
    """Ask the before-each-session checks that apply to ``sites`` (all three on leg sites).

    Asking stops at the first "yes": that answer alone blocks the session.
    """
    sites = list(sites)
    checks = SESSION_CHECKS if any(_is_leg(s) for s in sites) else SESSION_CHECKS[2:]
    answers: dict[str, bool] = {}
    for key, text, _ in checks:
        answers[key] = confirm(text)
        if answers[key]:
            break
    return answers


def check_session_answers(answers: dict[str, bool]) -> None:
    """Refuse when any before-session check was answered "yes".

    Raises:
        GateRefused: with the advice of docs/safety-basis.md §6.2/§6.5.
    """
    for key, _, advice in SESSION_CHECKS:
        if answers.get(key):
            raise GateRefused(advice)
