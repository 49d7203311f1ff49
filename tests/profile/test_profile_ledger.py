"""The dose ledger (L20, HZ-05): rolling days across midnight, per site, gaps, cramp-training."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time, timedelta, timezone
from pathlib import Path
from time import tzset

import pytest
from person_helpers import NOW, REAL_URL, at, write_journal

from emsctl.contract import ChannelSetpoint
from emsctl.dose_rules import (
    DoseLimitReached,
    PastSession,
    check_cramp_training,
    check_dose,
    from_summaries,
)
from emsctl.errors import EmsError
from emsctl.journal import Journal, list_journals
from emsctl.ledger import past_sessions
from emsctl.limits import DEFAULTS, tighten
from emsctl.screening import GateRefused

CALVES = ("calf-left", "calf-right")
MIN = 60.0


def session(start: datetime, minutes: float = 16.0, sites: tuple[str, ...] = CALVES,
            program: str = "relaxation") -> PastSession:
    return PastSession(start, minutes * MIN, sites, program)


def test_three_sessions_then_the_fourth_is_refused_until_the_first_leaves_24_hours() -> None:
    past = [session(at(-6)), session(at(-4)), session(at(-2))]
    with pytest.raises(DoseLimitReached) as caught:
        check_dose(past, CALVES, 16 * MIN, NOW, DEFAULTS)
    assert caught.value.next_allowed_utc == at(-6) + timedelta(hours=24)
    assert caught.value.exit_code == 1 and "at most 3 a day (L20)" in str(caught.value)
    check_dose(past, CALVES, 16 * MIN, at(18), DEFAULTS)


def test_midnight_resets_nothing_the_day_is_rolling() -> None:
    evening = datetime(2026, 3, 10, 20, 0, tzinfo=UTC)
    past = [session(evening), session(evening + timedelta(hours=1.5)),
            session(evening + timedelta(hours=3))]
    after_midnight = datetime(2026, 3, 11, 0, 30, tzinfo=UTC)
    with pytest.raises(DoseLimitReached) as caught:
        check_dose(past, CALVES, 16 * MIN, after_midnight, DEFAULTS)
    assert caught.value.next_allowed_utc == evening + timedelta(hours=24)


def test_sessions_need_an_hour_from_the_end_of_the_last() -> None:
    past = [session(at(-1), minutes=16)]
    with pytest.raises(DoseLimitReached, match="need 60 min between them") as caught:
        check_dose(past, CALVES, 16 * MIN, NOW, DEFAULTS)
    assert caught.value.next_allowed_utc == at(-1) + timedelta(minutes=16 + 60)
    check_dose(past, CALVES, 16 * MIN, at(-1) + timedelta(minutes=76), DEFAULTS)


def test_minutes_per_day_count_the_planned_session_too() -> None:
    past = [session(at(-10), 30), session(at(-8), 30)]  # 60 min; + 31 > 90
    with pytest.raises(DoseLimitReached, match="over 90 min a day"):
        check_dose(past, CALVES, 31 * MIN, NOW, DEFAULTS)
    check_dose(past, CALVES, 30 * MIN, NOW, DEFAULTS)


def test_limits_are_per_site() -> None:
    past = [session(at(-6), sites=("calf-left",)), session(at(-4), sites=("calf-left",)),
            session(at(-2), sites=("calf-left",))]
    check_dose(past, ("thigh-front-left",), 16 * MIN, NOW, DEFAULTS)
    with pytest.raises(DoseLimitReached, match="on calf-left"):
        check_dose(past, ("calf-right", "calf-left"), 16 * MIN, NOW, DEFAULTS)


def test_a_tighter_limits_file_tightens_the_ledger() -> None:
    limits = tighten(DEFAULTS, sessions_per_day=1)
    with pytest.raises(DoseLimitReached, match="at most 1 a day"):
        check_dose([session(at(-5))], CALVES, 16 * MIN, NOW, limits)


def test_journals_count_only_real_devices_and_corrupt_ones_count_everywhere(tmp_path: Path
                                                                            ) -> None:
    write_journal(tmp_path, at(-5), 960)
    write_journal(tmp_path, at(-4), 960, device_url="sim")
    write_journal(tmp_path, at(-3.5), 960, device_url="sim+sciencemode2")
    write_journal(tmp_path, at(-3), 120, program="calibrate")
    corrupt = tmp_path / f"{at(-2):%Y%m%dT%H%M%SZ}-relaxation-deadbeef.jsonl"
    corrupt.write_text("garbage\nmore garbage\n")
    past = from_summaries(list_journals(tmp_path))
    assert [(p.started_utc, p.sites) for p in past] == [(at(-5), CALVES), (at(-2), None)]
    assert past[0].duration_s == 960
    with pytest.raises(DoseLimitReached, match="thigh-back-left"):  # the corrupt one, anywhere
        check_dose(past, ("thigh-back-left",), 16 * MIN, at(-1.5), DEFAULTS)



def test_the_ledger_counts_killed_sessions_with_their_time_per_site_and_program(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the journal module's own day counter was tested for, now on the one ledger."""
    state = tmp_path / "state"
    monkeypatch.setenv("EMSCTL_STATE_DIR", str(state))
    journals = state / "journals"  # imported into the ledger on its first use
    write_journal(journals, at(-30), 14 * MIN, program="cramp-training",
                  sites={1: "calf-left"})
    write_journal(journals, at(-20), 16 * MIN, sites={1: "calf-left"})
    write_journal(journals, at(-12), 16 * MIN, sites={1: "calf-right"})
    killed = Journal(journals)
    killed.header(program="recovery", program_sha256="0" * 64, program_source="builtin",
                  device_url=REAL_URL, device_model="test", limits={}, profile_version="1.1",
                  intensity_pct=100.0, sites={1: "calf-left"}, started_utc=at(-2))
    killed.command(60.0, [ChannelSetpoint(10.0, 6.0, 250.0)], 0.5, 100.0)
    killed.close()  # SIGKILL: no footer
    past = past_sessions()
    assert [(p.program, p.sites, p.duration_s) for p in past] == [
        ("cramp-training", ("calf-left",), 14 * MIN), ("relaxation", ("calf-left",), 16 * MIN),
        ("relaxation", ("calf-right",), 16 * MIN), ("recovery", ("calf-left",), 60.0)]
    two_a_day = tighten(DEFAULTS, sessions_per_day=2)
    with pytest.raises(DoseLimitReached, match="2 sessions on calf-left in the last 24 h"):
        check_dose(past, ("calf-left",), 16 * MIN, NOW, two_a_day)
    check_dose(past, ("calf-right",), 16 * MIN, NOW, two_a_day)
    # the killed session counts with the minute it reached: 16 + 1, plus 16 planned, is over 32
    with pytest.raises(DoseLimitReached, match="17 min on calf-left"):
        check_dose(past, ("calf-left",), 16 * MIN, NOW, tighten(DEFAULTS, minutes_per_day=32))
    check_dose(past, ("calf-left",), 15 * MIN, NOW, tighten(DEFAULTS, minutes_per_day=32))
    # per program: only the cramp-training session counts toward cramp-training's 72 h
    with pytest.raises(DoseLimitReached, match="72 h"):
        check_cramp_training(past, ("calf-left",), NOW)
    check_cramp_training(past, ("calf-right",), NOW)


def test_a_session_dated_in_the_future_counts_and_the_refusal_says_so() -> None:
    ahead = session(at(3), sites=("thigh-front-left",))
    with pytest.raises(DoseLimitReached, match="dated in the future") as caught:
        check_dose([ahead], ("thigh-front-left",), 16 * MIN, NOW, DEFAULTS)
    assert caught.value.next_allowed_utc == ahead.ended_utc + timedelta(hours=1)
    one_a_day = tighten(DEFAULTS, sessions_per_day=1)
    with pytest.raises(DoseLimitReached, match="1 sessions on thigh-front-left"):
        check_dose([ahead], ("thigh-front-left",), 16 * MIN, NOW, one_a_day)
    check_dose([ahead], ("calf-left",), 16 * MIN, NOW, DEFAULTS)  # another site
    with pytest.raises(DoseLimitReached, match="dated in the future"):
        check_cramp_training([cramp(at(30))], ("calf-left",), NOW)


def test_a_refusal_says_when_and_is_an_ems_error() -> None:
    with pytest.raises(EmsError, match="next session allowed from"):
        check_dose([session(at(-0.5))], CALVES, 16 * MIN, NOW, DEFAULTS)


# ----------------------------------------------------------------- cramp-training (P8, L20)

LOCAL = timezone(timedelta(hours=1))


def day(hour: int, minute: int = 0, days: int = 0) -> datetime:
    return datetime(2026, 3, 10 + days, hour, minute, tzinfo=LOCAL)


def cramp(start: datetime, sites: tuple[str, ...] = ("calf-left",)) -> PastSession:
    return session(start, 14, sites, "cramp-training")


@pytest.mark.parametrize(("hour", "minute", "allowed"), [
    (7, 59, False), (8, 0, True), (12, 0, True), (19, 59, True), (20, 0, False), (23, 0, False),
    (3, 0, False)])
def test_cramp_training_runs_only_in_the_daytime(hour: int, minute: int, allowed: bool) -> None:
    if allowed:
        check_cramp_training([], ("calf-left",), day(hour, minute))
    else:
        with pytest.raises(GateRefused, match="only between 08:00 and 20:00"):
            check_cramp_training([], ("calf-left",), day(hour, minute))


def test_cramp_training_is_refused_within_3_hours_of_bedtime() -> None:
    with pytest.raises(GateRefused, match="bedtime"):
        check_cramp_training([], ("calf-left",), day(19, 30), bedtime_local=time(22, 0))
    check_cramp_training([], ("calf-left",), day(18, 59), bedtime_local=time(22, 0))


def test_cramp_training_needs_72_hours_between_sessions_on_a_leg() -> None:
    past = [cramp(day(10))]
    with pytest.raises(DoseLimitReached, match="72 h") as caught:
        check_cramp_training(past, ("calf-left",), day(9, days=3))
    assert caught.value.next_allowed_utc == day(10) + timedelta(hours=72)
    check_cramp_training(past, ("calf-left",), day(10, days=3))
    check_cramp_training(past, ("calf-right",), day(11))  # the other leg is its own ledger


def test_cramp_training_at_most_twice_a_week_per_leg() -> None:
    past = [cramp(day(10)), cramp(day(10, days=3))]
    with pytest.raises(DoseLimitReached, match="at most 2 a week per leg") as caught:
        check_cramp_training(past, ("calf-left",), day(11, days=6))
    assert caught.value.next_allowed_utc == day(10) + timedelta(days=7)
    check_cramp_training(past, ("calf-left",), day(10, 1, days=7))


def test_other_programs_do_not_count_toward_cramp_training() -> None:
    check_cramp_training([session(day(9)), session(day(9, days=1))], ("calf-left",),
                         day(12, days=1))


# ------------------------------------------- local time is the system's zone, never $TZ


@pytest.fixture
def tz_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Set ``TZ`` for this process as a one-command ``TZ=… emsctl`` would; restored after."""
    def set_tz(value: str) -> None:
        monkeypatch.setenv("TZ", value)
        tzset()
    yield set_tz
    monkeypatch.undo()
    tzset()


def test_the_system_zone_comes_from_etc_localtime_not_from_tz(tz_env: Callable[[str], None]
                                                              ) -> None:
    from zoneinfo import ZoneInfo

    from emsctl import local_time

    with open("/etc/localtime", "rb") as handle:
        configured = ZoneInfo.from_file(handle)
    moment = datetime.now(UTC)
    for value in ("XXX-14", "XXX+12", "UTC"):  # POSIX: "XXX-14" is UTC+14
        tz_env(value)
        zone = local_time.system_zone()
        assert zone is not None and str(zone) == "localtime"
        assert zone.utcoffset(moment) == configured.utcoffset(moment)
        assert local_time.local_now().utcoffset() == configured.utcoffset(moment)


def test_a_system_without_a_zone_refuses_cramp_training(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    from emsctl import local_time

    monkeypatch.setattr(local_time, "SYSTEM_ZONE_FILE", tmp_path / "no-localtime")
    assert local_time.system_zone() is None
    with pytest.raises(GateRefused, match="system's time zone"):
        check_cramp_training([], ("calf-left",), local_time.local_now())


# ------------------------------------- what the mutation run found untested


@pytest.fixture
def utc_system(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No system zone: the times in refusals are shown in UTC, whatever this machine's zone."""
    from emsctl import local_time

    monkeypatch.setattr(local_time, "SYSTEM_ZONE_FILE", tmp_path / "no-localtime")


def test_the_cramp_training_refusals_in_full(utc_system: None,
                                            tz_env: Callable[[str], None]) -> None:
    from emsctl import local_time

    tz_env("XXX-14")  # refusals show the system's zone (none here: UTC), never $TZ's
    assert local_time.local_now().tzname() == "UTC (system time zone unknown)"

    with pytest.raises(GateRefused) as night:
        check_cramp_training([], ("calf-left",), day(20))
    assert str(night.value) == ("cramp-training runs only between 08:00 and 20:00 (it can "
                                "provoke cramps; never before bed)")
    with pytest.raises(GateRefused) as unknown:
        check_cramp_training([], ("calf-left",), local_time.local_now())
    assert str(unknown.value) == (
        f"cramp-training needs the system's time zone for its daytime rule, and "
        f"{local_time.SYSTEM_ZONE_FILE} cannot be read; set the time zone (e.g. 'timedatectl "
        "set-timezone Europe/Berlin')")
    with pytest.raises(DoseLimitReached) as spacing:
        check_cramp_training([cramp(day(10))], ("calf-left",), day(9, days=3))
    assert str(spacing.value) == (
        "dose limit reached: the last cramp-training session on calf-left started at "
        "2026-03-10 09:00; they need 72 h between them (L20); next cramp-training session "
        "allowed from 2026-03-13 09:00")


@pytest.mark.parametrize(("now", "bedtime", "allowed"), [
    (day(19), time(22, 0), True),  # exactly 3 h before: allowed
    (day(19, 1), time(22, 0), False),
    (day(19), time(19, 0), False),  # bedtime now
    (day(12), time(1, 0), True),  # bedtime after midnight: 13 h away
    (day(19, 59), time(0, 0), True),  # 4 h away at the latest daytime minute
])
def test_cramp_training_bedtime_margin_on_its_edges(now: datetime, bedtime: time,
                                                    allowed: bool) -> None:
    if allowed:
        check_cramp_training([], ("calf-left",), now, bedtime_local=bedtime)
    else:
        with pytest.raises(GateRefused, match=r"within 3 h of your bedtime"):
            check_cramp_training([], ("calf-left",), now, bedtime_local=bedtime)


def test_the_next_cramp_training_time_is_the_first_that_suits_this_leg() -> None:
    # the other leg's session makes a candidate time (its +72 h) that is too early here
    past = [cramp(day(10, days=-2), ("calf-right",)), cramp(day(10))]
    with pytest.raises(DoseLimitReached, match="72 h") as caught:
        check_cramp_training(past, ("calf-left",), day(9, days=1))
    assert caught.value.next_allowed_utc == day(10) + timedelta(hours=72)


def _summary(started: datetime | None, *, duration_s: float = 960.0, program: str = "relaxation",
             simulated: bool = False, end_reason: str = "completed",
             problem: str | None = None) -> object:
    from emsctl.journal import SessionSummary

    return SessionSummary("id", Path("x.jsonl"), started, program, "url", "model", simulated,
                          CALVES, duration_s, end_reason, 10.0, True, problem)


def test_from_summaries_skips_what_does_not_count_and_reads_on() -> None:
    from emsctl.journal import NOT_A_JOURNAL

    summaries = [
        _summary(None), _summary(at(-9), end_reason=NOT_A_JOURNAL),
        _summary(at(-8), simulated=True), _summary(at(-7), program="calibrate"),
        _summary(at(-6), program="cramp-training", problem="cut short", duration_s=300.0),
        _summary(at(-5), duration_s=0.25), _summary(at(-4), duration_s=-3.0),
    ]
    assert from_summaries(summaries) == [  # type: ignore[arg-type]
        PastSession(at(-6), 0.0, None, "cramp-training"),
        PastSession(at(-5), 0.25, CALVES, "relaxation"),
        PastSession(at(-4), 0.0, CALVES, "relaxation")]


def test_a_damaged_ledger_is_refused_in_one_full_sentence(tmp_path: Path) -> None:
    from emsctl.errors import LedgerError

    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text('{"type":"import-done"}\ngarbage\n{"type":"import-done"}\n')
    with pytest.raises(LedgerError) as caught:
        past_sessions(ledger)
    assert str(caught.value) == (
        f"the dose ledger {ledger} is damaged at line 2 (not a JSON record); no session runs on "
        "a real device until it is repaired, because a damaged ledger is never taken as empty")
    ledger.write_text('{"type":"start","session_id":"x","started_utc":"2026-03-10T12:00:00+00:00",'
                      '"program":"p","sites":[],"planned_s":NaN}\n')
    with pytest.raises(LedgerError, match=r"damaged at line 1 \(not a JSON record\)"):
        past_sessions(ledger)  # NaN is no JSON number: never read as one


def test_begin_and_end_write_their_records_to_the_given_ledger_in_utc(
        tmp_path: Path, tz_env: Callable[[str], None]) -> None:
    import json

    from emsctl import __version__
    from emsctl.ledger import begin_session, end_session

    tz_env("XXX-14")  # whatever this process's zone, the ledger is written in UTC
    ledger = tmp_path / "elsewhere" / "ledger.jsonl"
    local_now = NOW.astimezone(timezone(timedelta(hours=-5)))
    entry = begin_session(session_id="s1", program="relaxation", sites=CALVES, planned_s=960.0,
                          limits=DEFAULTS, device_url=REAL_URL, now=local_now, path=ledger)
    assert (entry.path, entry.session_id, entry.started_utc) == (ledger, "s1", NOW)
    end_session(entry, 900.0, "completed")
    records = [json.loads(line) for line in ledger.read_text().splitlines()]
    start, end = records[-2], records[-1]
    assert start == {"type": "start", "session_id": "s1",
                     "started_utc": "2026-03-10T12:00:00+00:00", "program": "relaxation",
                     "sites": list(CALVES), "planned_s": 960.0,
                     "device_url": REAL_URL, "emsctl_version": __version__}
    assert set(end) == {"type", "session_id", "duration_s", "end_reason", "ended_utc", "journal"}
    assert (end["session_id"], end["duration_s"], end["journal"]) == ("s1", 900.0, None)
    assert datetime.fromisoformat(end["ended_utc"]).utcoffset() == timedelta(0)
    assert [(p.started_utc, p.duration_s) for p in past_sessions(ledger)] == [(NOW, 900.0)]


def test_the_future_clause_only_for_sessions_after_now_in_full(utc_system: None) -> None:
    with pytest.raises(DoseLimitReached) as now_started:  # started now: not in the future
        check_dose([session(NOW)], CALVES, 16 * MIN, NOW, DEFAULTS)
    assert "future" not in str(now_started.value)
    with pytest.raises(DoseLimitReached) as ahead:
        check_dose([session(at(2)), session(at(5))], CALVES, 16 * MIN, NOW, DEFAULTS)
    assert str(ahead.value).endswith(
        " (a session on these sites is dated in the future, 2026-03-10 17:00: it counts all the "
        "same; check this computer's clock)")


@pytest.mark.parametrize(("record", "why"), [
    ('"session_id":"x","program":"p","sites":[],"planned_s":1',
     "a 'start' record with no 'started_utc'"),
    ('"session_id":"x","started_utc":"2026-03-10T12:00:00","program":"p","sites":[],'
     '"planned_s":1', "a 'start' record with 'started_utc' has no time zone"),
    ('"session_id":"x","started_utc":"2026-03-10T12:00:00+00:00","program":"p",'
     '"sites":"calf-left","planned_s":1', "a 'start' record with no list of 'sites'"),
])
def test_a_damaged_record_says_what_is_wrong_with_it(tmp_path: Path, record: str, why: str
                                                     ) -> None:
    from emsctl.errors import LedgerError

    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text('{"type":"import-done"}\n{"type":"start",' + record + "}\n")
    with pytest.raises(LedgerError) as caught:
        past_sessions(ledger)
    assert f"is damaged at line 2 ({why}); no session runs" in str(caught.value)


@pytest.mark.parametrize(("line", "why"), [
    ("5", "not a JSON record"), ('{"no":"type"}', "not a JSON record"),
    ('{"type":"start","session_id":"x","started_utc":"2026-03-10T12:00:00+00:00",'
     '"program":"","sites":[],"planned_s":1}', "a 'start' record with no 'program'"),
    ('{"type":"start","session_id":"x","started_utc":"2026-03-10T12:00:00+00:00",'
     '"program":"p","sites":[],"planned_s":true}', "a 'start' record with no number 'planned_s'"),
    ('{"type":"start","session_id":"x","started_utc":"2026-03-10T12:00:00+00:00",'
     '"program":"p","sites":[],"planned_s":1e400}', "a 'start' record with no number 'planned_s'"),
])
def test_a_line_that_is_no_record_or_a_bad_field_is_damage(tmp_path: Path, line: str, why: str
                                                           ) -> None:
    from emsctl.errors import LedgerError

    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text('{"type":"import-done"}\n' + line + '\n{"type":"import-done"}\n')
    with pytest.raises(LedgerError) as caught:
        past_sessions(ledger)
    assert f"is damaged at line 2 ({why}); no session runs" in str(caught.value)


def test_cut_lines_are_skipped_only_where_a_kill_can_leave_them(tmp_path: Path) -> None:
    start = ('{"type":"start","session_id":"%s","started_utc":"2026-03-10T12:00:00+00:00",'
             '"program":"p","sites":["calf-left"],"planned_s":600}')
    ledger = tmp_path / "ledger.jsonl"
    # a cut line that a later write ended and marked, then more records: all of them count
    ledger.write_text('{"type":"import-done"}\n{"type":"end","sess\n{"type":"repaired"}\n'
                      + start % "a" + "\n" + '{"type":"end","session_id":"a","duration_s":0.25}\n'
                      + start % "b")  # the last record whole, only its newline missing
    assert [(p.duration_s, p.sites) for p in past_sessions(ledger)] == [
        (0.25, ("calf-left",)), (600.0, ("calf-left",))]


def test_the_first_use_imports_the_journal_folder_and_records_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    state = tmp_path / "state"
    monkeypatch.setenv("EMSCTL_STATE_DIR", str(state))
    journals = state / "journals"
    write_journal(journals, at(-20), 16 * MIN)
    corrupt = journals / f"{at(-2):%Y%m%dT%H%M%SZ}-relaxation-deadbeef.jsonl"
    corrupt.write_text("garbage\n")
    ledger = tmp_path / "ledger.jsonl"
    past = past_sessions(ledger)
    assert [(p.started_utc, p.sites) for p in past] == [(at(-20), CALVES), (at(-2), None)]
    records = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert [(r["type"], r.get("sites")) for r in records] == [
        ("imported", list(CALVES)), ("imported", None), ("import-done", None)]
    assert all(r["session_id"] for r in records[:2])
    done = records[-1]
    assert (done["folder"], done["sessions"]) == (str(journals), 2)
    assert datetime.fromisoformat(done["at_utc"]).utcoffset() == timedelta(0)


def test_a_journal_folder_that_cannot_be_read_refuses(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from emsctl.errors import LedgerError

    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("EMSCTL_STATE_DIR", str(state))
    (state / "journals").symlink_to(state / "journals")  # a loop: ELOOP, even for root
    with pytest.raises(LedgerError) as caught:
        past_sessions(tmp_path / "ledger.jsonl")
    assert str(caught.value) == (
        f"cannot read the journal folder {state / 'journals'} to start the dose ledger from it: "
        "Too many levels of symbolic links")


def test_a_ledger_that_cannot_be_written_refuses_in_one_sentence(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    from emsctl.errors import LedgerError

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    ledger = tmp_path / "ledger.jsonl"
    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(LedgerError) as caught:
        past_sessions(ledger)
    assert str(caught.value) == (f"cannot write the dose ledger {ledger}: No space left on "
                                 "device; no session runs on a real device without it")


def test_ledger_lines_are_compact_utf8_json(tmp_path: Path) -> None:
    from emsctl.ledger import begin_session

    ledger = tmp_path / "ledger.jsonl"
    begin_session(session_id="s1", program="entspannung-ü", sites=["calf-left"], planned_s=60.0,
                  limits=DEFAULTS, device_url=REAL_URL, now=NOW, path=ledger)
    assert ledger.read_text(encoding="utf-8").splitlines()[-1].startswith(
        '{"type":"start","session_id":"s1","started_utc":"2026-03-10T12:00:00+00:00",'
        '"program":"entspannung-ü","sites":["calf-left"],"planned_s":60.0,')


# ------------------------------- the ledger file: opening, locking, reading, importing, repairing


START = ('{"type":"start","session_id":"%s","started_utc":"2026-03-10T12:00:00+00:00",'
         '"program":"relaxation","sites":%s,"planned_s":600}')


def _refusal(ledger: Path) -> str:
    from emsctl.errors import LedgerError

    with pytest.raises(LedgerError) as caught:
        past_sessions(ledger)
    return str(caught.value)


@pytest.mark.parametrize(("content", "why"), [
    ('{"type":"import-done"}\n{"type":"pause"}\n', "a record of unknown type 'pause'"),
    ('{"type":"import-done"}\n' + START % ("s", "null") + "\n",
     "a 'start' record with no list of 'sites'"),
    ('{"type":"import-done"}\ngarbage\n', "not a JSON record"),  # ended by its newline: not cut
])
def test_a_damaged_ledger_names_its_file_line_and_fault(tmp_path: Path, content: str, why: str
                                                        ) -> None:
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text(content)
    assert _refusal(ledger) == (
        f"the dose ledger {ledger} is damaged at line 2 ({why}); no session runs on a real "
        "device until it is repaired, because a damaged ledger is never taken as empty")


@pytest.mark.parametrize("content", [
    '{"type":"import-done"}\n{"type":"end","sess',  # cut by a kill: the last line, no newline
    '{"type":"import-done"}\n{"type":"end","sess\n{"type":"repaired"}\n',  # ended and marked
    '{"type":"import-done"}\n\n\n' + START % ("s", '["calf-left"]') + "\n",  # blank lines
])
def test_what_a_kill_or_a_blank_line_leaves_is_read_past(tmp_path: Path, content: str) -> None:
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text(content)
    expected = [("relaxation", ("calf-left",))] if "start" in content else []
    assert [(p.program, p.sites) for p in past_sessions(ledger)] == expected


def test_the_next_write_after_a_cut_line_ends_it_and_marks_the_repair(tmp_path: Path) -> None:
    from emsctl.ledger import begin_session

    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text('{"type":"import-done"}\n{"type":"end","sess')
    begin_session(session_id="s1", program="relaxation", sites=["calf-left"], planned_s=60.0,
                  limits=DEFAULTS, device_url=REAL_URL, now=NOW, path=ledger)
    assert ledger.read_text().startswith(
        '{"type":"import-done"}\n{"type":"end","sess\n{"type":"repaired"}\n{"type":"start",')
    assert [p.started_utc for p in past_sessions(ledger)] == [NOW]


def test_a_started_session_counts_with_its_program_sites_and_real_length(tmp_path: Path) -> None:
    from emsctl.ledger import begin_session, end_session

    ledger = tmp_path / "ledger.jsonl"
    entry = begin_session(session_id="s1", program="cramp-training", sites=["calf-left"],
                          planned_s=840.0, limits=DEFAULTS, device_url=REAL_URL, now=NOW,
                          path=ledger)
    assert [(p.program, p.sites, p.duration_s) for p in past_sessions(ledger)] == [
        ("cramp-training", ("calf-left",), 840.0)]  # no end yet: its planned length
    with pytest.raises(DoseLimitReached, match="need 60 min between them"):
        begin_session(session_id="s2", program="relaxation", sites=["calf-left"],
                      planned_s=60.0, limits=DEFAULTS, device_url=REAL_URL,
                      now=NOW + timedelta(minutes=20), path=ledger)
    end_session(entry, 0.25, "stopped", journal=tmp_path / "j.jsonl")
    assert [p.duration_s for p in past_sessions(ledger)] == [0.25]
    import json
    end = json.loads(ledger.read_text().splitlines()[-1])
    assert (end["end_reason"], end["journal"]) == ("stopped", str(tmp_path / "j.jsonl"))


def test_the_ledger_is_private_whatever_mode_it_had(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text('{"type":"import-done"}\n')
    ledger.chmod(0o644)
    past_sessions(ledger)
    assert ledger.stat().st_mode & 0o777 == 0o600


def test_a_ledger_that_cannot_be_opened_or_placed_refuses(tmp_path: Path) -> None:
    folder_instead = tmp_path / "ledger.jsonl"
    folder_instead.mkdir()
    assert _refusal(folder_instead) == (
        f"cannot open the dose ledger {folder_instead}: a directory, not a file; no session runs "
        "on a real device without it")
    (tmp_path / "file").write_text("")
    under_a_file = tmp_path / "file" / "sub" / "ledger.jsonl"
    assert _refusal(under_a_file).startswith(
        f"cannot create the folder of the dose ledger {under_a_file}: ")


def test_a_ledger_too_large_to_read_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    from emsctl import ledger as ledger_module

    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text('{"type":"import-done"}\n' * 4)
    monkeypatch.setattr(ledger_module, "MAX_LEDGER_BYTES", 40)
    text = _refusal(ledger)
    assert text.startswith(f"cannot read the dose ledger {ledger}: ")
    assert text.endswith("; no session runs on a real device without it")
    assert "None" not in text


def test_a_ledger_locked_by_another_emsctl_is_refused_after_the_wait(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fcntl
    import os

    from emsctl import ledger as ledger_module

    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text('{"type":"import-done"}\n')
    monkeypatch.setattr(ledger_module, "LOCK_TIMEOUT_S", 0.05)
    holder = os.open(ledger, os.O_RDWR)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)  # another open file: as another process would
        assert _refusal(ledger) == (f"the dose ledger {ledger} has been locked by another emsctl "
                                    "for over 0.05 s; try again")
    finally:
        os.close(holder)
    assert past_sessions(ledger) == []


def test_an_interrupted_import_goes_on_without_counting_anything_twice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    state = tmp_path / "state"
    monkeypatch.setenv("EMSCTL_STATE_DIR", str(state))
    journals = state / "journals"
    first = write_journal(journals, at(-30), 16 * MIN)
    write_journal(journals, at(-20), 16 * MIN)
    ledger = tmp_path / "ledger.jsonl"
    summary = list_journals(journals)[0]
    # killed after importing the first journal; a real run also wrote its own start record
    ledger.write_text(json.dumps({
        "type": "imported", "journal": first.name, "session_id": summary.session_id,
        "started_utc": at(-30).isoformat(), "program": "relaxation", "sites": list(CALVES),
        "duration_s": 960.0}) + "\n")
    past = past_sessions(ledger)
    assert [p.started_utc for p in past] == [at(-30), at(-20)]
    assert [p.started_utc for p in past_sessions(ledger)] == [at(-30), at(-20)]
    types = [json.loads(line)["type"] for line in ledger.read_text().splitlines()]
    assert types == ["imported", "imported", "import-done"]


def test_a_journal_of_a_session_the_ledger_started_is_not_imported(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("EMSCTL_STATE_DIR", str(state))
    write_journal(state / "journals", at(-30), 16 * MIN)
    summary = list_journals(state / "journals")[0]
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text(START % (summary.session_id, '["calf-left"]') + "\n")
    assert len(past_sessions(ledger)) == 1


def test_a_state_folder_moved_without_the_profile_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    from emsctl import ledger
    from emsctl.errors import LedgerError

    monkeypatch.delenv("EMSCTL_DATA_DIR")
    monkeypatch.delenv("EMSCTL_STATE_DIR")
    ledger._check_not_split()  # neither moved: fine
    monkeypatch.setenv("EMSCTL_STATE_DIR", str(tmp_path / "state"))
    with pytest.raises(LedgerError) as caught:
        past_sessions()
    assert str(caught.value) == (
        f"EMSCTL_STATE_DIR moves the dose ledger to {tmp_path / 'state' / ledger.LEDGER_NAME} "
        f"but not your profile in {ledger.data_dir()}; set EMSCTL_DATA_DIR too (the two move "
        "emsctl's state as a whole) or unset EMSCTL_STATE_DIR")
    monkeypatch.setenv("EMSCTL_DATA_DIR", str(tmp_path / "data"))
    ledger._check_not_split()  # both moved: fine


def test_daily_minutes_and_a_program_too_long_for_a_day_in_full(utc_system: None) -> None:
    with pytest.raises(DoseLimitReached) as long_program:
        check_dose([], CALVES, 91 * MIN, NOW, DEFAULTS)
    assert str(long_program.value) == "the program lasts 91 min, over the 90 min a day of L20"
    assert long_program.value.next_allowed_utc is None
    check_dose([], CALVES, 90 * MIN, NOW, DEFAULTS)  # exactly a day's minutes: allowed
    with pytest.raises(DoseLimitReached) as minutes:
        check_dose([session(at(-10), 61)], CALVES, 30 * MIN, NOW, DEFAULTS)
    assert str(minutes.value).startswith(
        "dose limit reached: 61 min on calf-left in the last 24 h plus 30 min is over 90 min a "
        "day (L20)")
    with pytest.raises(DoseLimitReached, match="60 min on calf-left in the last 24 h plus 30 min"):
        check_dose([session(at(-10), 60)], CALVES, 30.5 * MIN, NOW, DEFAULTS)


def test_the_next_session_time_is_the_first_that_passes_every_rule() -> None:
    # a gap that ends soon, but the day's minutes stay over until the first session leaves
    past = [session(at(-20), 40), session(at(-0.5), 16)]
    with pytest.raises(DoseLimitReached, match="over 90 min a day") as caught:
        check_dose(past, CALVES, 40 * MIN, NOW, DEFAULTS)
    assert caught.value.next_allowed_utc == at(4)
