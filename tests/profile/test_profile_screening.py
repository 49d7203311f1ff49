"""The contraindication gate (L24, HZ-09): every answer path, the hard block, 30-day expiry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from person_helpers import NOW, answers

from emsctl.screening import (
    QUESTIONS,
    SESSION_CHECKS,
    GateRefused,
    ask_questionnaire,
    ask_session_checks,
    check_session_answers,
    evaluate,
)

CALVES = ["calf-left", "calf-right"]


def scripted(yes_to: set[str]) -> tuple[Callable[[str], bool], list[str]]:
    """A confirm function answering yes to questions containing any of ``yes_to``."""
    asked: list[str] = []

    def confirm(text: str) -> bool:
        asked.append(text)
        if "doctor approved" in text:  # the follow-up question names the condition too
            return "doctor approved" in yes_to
        return any(part in text for part in yes_to)
    return confirm, asked


def test_all_no_passes_and_every_question_is_asked() -> None:
    confirm, asked = scripted({"18 years or older"})
    got = ask_questionnaire(confirm, lambda _: "", NOW)
    assert len(asked) == len(QUESTIONS)
    assert got.adult and not got.implanted_device and got.answered_utc == NOW
    evaluate(got, CALVES, NOW)  # no exception


def test_an_implant_is_a_hard_block_that_stops_the_questionnaire() -> None:
    confirm, asked = scripted({"pacemaker", "18 years", "doctor approved"})
    got = ask_questionnaire(confirm, lambda _: "", NOW)
    assert asked == [QUESTIONS[0].text]  # nothing else asked: nothing could lift it
    with pytest.raises(GateRefused, match="no override"):
        evaluate(got, CALVES, NOW)


def test_no_stored_approval_lifts_an_implant_block() -> None:
    blocked = answers(implanted_device=True, doctor_approved=["heart_disease"])
    with pytest.raises(GateRefused, match="pacemaker"):
        evaluate(blocked, ["thigh-front-left"], NOW)


def test_under_18_blocks() -> None:
    with pytest.raises(GateRefused, match="adults only"):
        evaluate(answers(adult=False), CALVES, NOW)


@pytest.mark.parametrize("condition", ["pregnancy", "epilepsy", "heart_disease", "cancer",
                                       "recent_surgery_or_bleeding", "leg_arterial_disease"])
def test_a_condition_blocks_until_a_doctor_approved_it(condition: str) -> None:
    with pytest.raises(GateRefused, match="doctor has approved"):
        evaluate(answers(**{condition: True}), CALVES, NOW)
    evaluate(answers(**{condition: True, "doctor_approved": [condition]}), CALVES, NOW)


@pytest.mark.parametrize(("approved", "blocked"), [(True, False), (False, True)])
def test_the_questionnaire_asks_for_the_approval_after_a_yes(approved: bool, blocked: bool
                                                             ) -> None:
    yes = {"18 years", "epilepsy"} | ({"doctor approved"} if approved else set())
    confirm, asked = scripted(yes)
    got = ask_questionnaire(confirm, lambda _: "", NOW)
    assert any("doctor approved" in q and "epilepsy" in q for q in asked)
    assert got.doctor_approved == (["epilepsy"] if approved else [])
    if blocked:
        with pytest.raises(GateRefused, match="epilepsy"):
            evaluate(got, CALVES, NOW)
    else:
        evaluate(got, CALVES, NOW)


def test_leg_arterial_disease_blocks_leg_programs_only() -> None:
    got = answers(leg_arterial_disease=True)
    with pytest.raises(GateRefused, match="arterial"):
        evaluate(got, ["thigh-back-left"], NOW)
    evaluate(got, ["lower-back-left"], NOW)


def test_a_site_with_a_lesion_or_numb_skin_is_blocked() -> None:
    got = ask_questionnaire(scripted({"18 years"})[0], lambda _: "calf-left", NOW)
    assert got.blocked_sites == ["calf-left"]
    with pytest.raises(GateRefused, match="site calf-left is blocked"):
        evaluate(got, CALVES, NOW)
    evaluate(got, ["calf-right"], NOW)


def test_pregnancy_never_allows_the_lower_back_even_when_approved() -> None:
    got = answers(pregnancy=True, doctor_approved=["pregnancy"])
    evaluate(got, CALVES, NOW)
    with pytest.raises(GateRefused, match="lower back"):
        evaluate(got, ["lower-back-left"], NOW)


def test_answers_expire_after_30_days() -> None:
    evaluate(answers(NOW - timedelta(days=30)), CALVES, NOW)
    with pytest.raises(GateRefused, match="older than 30 days"):
        evaluate(answers(NOW - timedelta(days=30, seconds=1)), CALVES, NOW)


def test_no_answers_block() -> None:
    with pytest.raises(GateRefused, match="not been answered"):
        evaluate(None, CALVES, NOW)


def test_leg_sessions_ask_the_calf_red_flag_every_time() -> None:
    confirm, asked = scripted(set())
    for _ in range(2):
        assert ask_session_checks(confirm, CALVES) == {key: False for key, _, _ in SESSION_CHECKS}
    assert sum("one calf swollen, red, warm or newly painful" in q for q in asked) == 2


def test_a_red_flag_blocks_and_sends_to_a_doctor_today() -> None:
    confirm, asked = scripted({"one calf swollen"})
    got = ask_session_checks(confirm, CALVES)
    assert got == {"calf_red_flag": True} and len(asked) == 1  # nothing more is asked
    with pytest.raises(GateRefused, match="medical care today"):
        check_session_answers(got)


@pytest.mark.parametrize(("key", "advice"), [("cramp_red_flag", "urgent medical care"),
                                             ("skin", "move the pads")])
def test_each_session_check_blocks_with_its_advice(key: str, advice: str) -> None:
    with pytest.raises(GateRefused, match=advice):
        check_session_answers({key: True})


def test_a_non_leg_site_asks_only_the_skin_check() -> None:
    confirm, asked = scripted(set())
    assert list(ask_session_checks(confirm, ["lower-back-left"])) == ["skin"]
    assert len(asked) == 1
