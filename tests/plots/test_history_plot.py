"""``emsctl history SESSION --plot``: a real simulator session (paused by an electrode fault,
resumed, stopped early) drawn as planned against commanded, with its markers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emsctl.clock import VirtualClock
from emsctl.devices import OpenOptions
from emsctl.journal import Journal, JournalRecord, read_journal
from emsctl.limits import DEFAULTS
from emsctl.loader import load_program
from emsctl.plotting import session_plan, session_series
from emsctl.plotting.session import _planned_polyline
from emsctl.runner import execute, prepare_run
from emsctl.session import Session, SessionState
from emsctl.simulator.faults import Fault, FaultPlan

FAULT_AT_S = 400.0
RESUME_AFTER_S = 440.0
STOP_AFTER_S = 900.0


@pytest.fixture(scope="module")
def journal_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run `relaxation` on the simulator in virtual time: electrode off at 400 s (the session
    pauses), resumed at 440 s by the user, stopped by the user at 900 s."""
    state = tmp_path_factory.mktemp("state")
    faults = FaultPlan([Fault("electrode_off", FAULT_AT_S, channel=1, duration_s=20.0)])
    prepared = prepare_run(load_program("relaxation"), "sim", DEFAULTS,
                           options=OpenOptions(fault_plan=faults))
    sessions: list[Session] = []
    done: set[str] = set()

    def on_tick(state: SessionState) -> None:
        if state.paused and state.t_s >= RESUME_AFTER_S and "resume" not in done:
            done.add("resume")
            sessions[0].resume()
        if state.t_s >= STOP_AFTER_S and "stop" not in done:
            done.add("stop")
            sessions[0].stop()

    outcome = execute(prepared, VirtualClock(None), journal_dir=state / "journals",
                      on_start=sessions.append, on_tick=on_tick, handle_signals=False)
    assert outcome.result.end_reason == "stopped" and outcome.journal_path is not None
    return outcome.journal_path


def test_history_plot_draws_a_simulator_session(journal_path: Path, run_main,
                                                png_size, tmp_path: Path) -> None:
    out = tmp_path / "session.png"
    state = journal_path.parent.parent
    session_id = journal_path.stem.rsplit("-", 1)[1]
    code, stdout, err = run_main("history", session_id, "--plot", str(out), state=state)
    assert code == 0, err
    assert stdout.strip() == f"wrote {out}"
    width_px, height_px = png_size(out)
    assert width_px == 1100 and 400 <= height_px <= 800
    assert 20_000 < out.stat().st_size < 400_000


def test_markers_are_the_fault_the_pause_the_resume_and_the_stop(journal_path: Path) -> None:
    series = session_series(read_journal(journal_path))
    kinds = [(kind, label) for _, label, kind in series.markers]
    assert kinds == [("fault", "electrode off ch 1"), ("pause", "pause"),
                     ("resume", "resume"), ("stop", "stop: stopped")]
    times = [t_s for t_s, _, _ in series.markers]
    assert times[0] == pytest.approx(FAULT_AT_S) and times[1] == pytest.approx(FAULT_AT_S)
    assert times[2] == pytest.approx(RESUME_AFTER_S, abs=0.5)
    assert times[3] == pytest.approx(STOP_AFTER_S, abs=0.5)
    ((pause_s, resume_s),) = series.pauses
    assert pause_s == pytest.approx(FAULT_AT_S) and resume_s == pytest.approx(times[2])
    assert series.channels == (1, 2) and series.command_ma.shape[0] == 2


def test_planned_follows_the_program_clock_and_matches_what_was_commanded(
        journal_path: Path) -> None:
    journal = read_journal(journal_path)
    series = session_series(journal)
    plan, basis = session_plan(journal)
    assert plan is not None and basis == "planned at the simulator's synthetic thresholds"
    t_s, amp_ma = (np.column_stack([plan.channel(1).segments[k0], plan.channel(1).segments[k1]])
                   .ravel() for k0, k1 in (("t0_s", "t1_s"), ("amp0_ma", "amp1_ma")))
    x, y = _planned_polyline(t_s, amp_ma, series.pauses, series.end_s)
    paused_s = series.pauses[0][1] - series.pauses[0][0]  # type: ignore[operator]
    # during the pause nothing is planned (a gap), after it the plan is shifted by the pause
    assert np.all(np.isnan(y[(x > FAULT_AT_S + 1) & (x < FAULT_AT_S + paused_s - 1)]))
    at_s = 600.0  # phase B (MT+10 % = 13.2 mA) in session time, after the pause
    planned_ma = float(np.interp(at_s, x[~np.isnan(x)], y[~np.isnan(x)]))
    expected = plan.setpoints_at(at_s - paused_s).amplitude_ma[0, 0]
    assert planned_ma == pytest.approx(expected) == pytest.approx(13.2)
    index = np.searchsorted(series.command_t_s, at_s, side="right") - 1
    assert series.command_ma[0, index] == pytest.approx(planned_ma, abs=0.2)


def test_a_changed_program_draws_only_the_commands(tmp_path: Path, run_main,
                                                   png_size) -> None:
    journal = Journal(tmp_path / "journals", session_id="abcd" * 8)
    journal.header(program="relaxation", program_sha256="00" * 32, program_source="builtin",
                   device_url="sim", device_model="sim", limits={}, profile_version=None,
                   intensity_pct=100.0, sites={1: "calf-left"})
    from emsctl.contract import ZERO, ChannelSetpoint

    for tick in range(50):
        journal.command(tick * 1.0, [ChannelSetpoint(tick * 0.2, 6.0, 250.0)], 1.0, 100.0)
    journal.command(50.0, [ZERO], 1.0, 100.0)
    journal.stop(50.0, "completed")
    journal.footer("completed", {})
    journal.close()
    plan, reason = session_plan(read_journal(journal.path))  # type: ignore[arg-type]
    assert plan is None and "changed since this session" in reason
    out = tmp_path / "session.svg"
    code, _, err = run_main("history", "abcd", "--plot", str(out), state=tmp_path)
    assert code == 0, err
    assert out.read_text(encoding="utf-8").startswith("<?xml")


def test_a_real_device_without_recorded_thresholds_is_not_planned(tmp_path: Path) -> None:
    journal = Journal(tmp_path, session_id="beef" * 8)
    source = load_program("relaxation")
    journal.header(program="relaxation", program_sha256=source.sha256, program_source="builtin",
                   device_url="sciencemode2:///dev/ttyUSB0", device_model="RehaStim2",
                   limits={}, profile_version=None, intensity_pct=100.0)
    journal.close()
    plan, reason = session_plan(read_journal(journal.path))  # type: ignore[arg-type]
    assert plan is None and "does not record the thresholds" in reason


def test_plot_without_a_session_is_a_usage_error(tmp_path: Path, run_main) -> None:
    code, out, err = run_main("history", "--plot", str(tmp_path / "x.png"), state=tmp_path)
    assert code == 2 and out == "" and "--plot needs a SESSION" in err


def test_thresholds_recorded_in_the_header_are_used_for_the_plan(tmp_path: Path) -> None:
    source = load_program("relaxation")
    header = {"type": "header", "t_s": 0.0, "program": "relaxation",
              "program_sha256": source.sha256, "program_source": "builtin",
              "device_url": "sciencemode2:///dev/ttyUSB0",
              "thresholds": {str(ch): {"st_ma": 5.0, "mt_ma": 10.0, "tol_ma": 20.0}
                             for ch in (1, 2)}}
    plan, basis = session_plan(JournalRecord(tmp_path / "x.jsonl", header, [], None, False))
    assert plan is not None and basis == "planned at recorded thresholds"
    assert plan.setpoints_at(700.0).amplitude_ma[:, 0] == pytest.approx([11.0, 11.0])  # MT+10 %


def test_the_session_plot_reads_on_the_live_view_clock_with_events_apart(
        journal_path: Path, run_main, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Program time on the axis (as the live view showed it), the pause a band where the clock
    stood still, and every event's words in the strip above the channels — never over a band."""
    from emsctl.plotting import session

    figures = []
    monkeypatch.setattr(session, "save", lambda fig, path, fmt: figures.append(fig))
    state = journal_path.parent.parent
    session_id = journal_path.stem.rsplit("-", 1)[1]
    code, _, err = run_main("history", session_id, "--plot", str(tmp_path / "s.png"),
                            state=state)
    assert code == 0, err
    [fig] = figures
    strip, *channels = fig.axes
    assert len(channels) == 2
    events = [t.get_text().strip() for t in strip.texts]
    assert "electrode off ch 1: paused 0:40" in events and "stopped by you" in events
    for axis in channels:  # only phase names and "no output" inside the channels
        assert {t.get_text() for t in axis.texts} <= {
            "stretch", "gentle twitches", "slower twitches", "fading out", "no output", ""}
        hatched = [p for p in axis.patches if p.get_hatch() == "////"]
        assert len(hatched) == 1  # the pause
    fig.canvas.draw()
    labels = [t.get_text() for t in channels[-1].get_xticklabels()]
    assert labels[0] == "0:00" and labels[-1] == "16:00"  # program time, not 16:40
    assert "program time" in channels[-1].get_xlabel()
    # the labels in the strip do not overlap each other
    boxes = [t.get_window_extent() for t in strip.texts]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b)
    assert "stopped by you at 14:20 (program time)" in fig._suptitle.get_text()
