"""Every way a session can end leaves the device at zero (HZ-02, HZ-03, HZ-22).

In-process, in virtual time, on the simulator: normal end, the stop key, an exception inside
the driver (an emsctl DeviceError and a plain bug), link lost, and electrode off (which pauses,
tells the user and holds zero). Signals to a real ``emsctl run`` are in
``test_exit_signals.py``. Each test also checks that the output was *on* just before the exit,
so that "zero afterwards" means something.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from session_helpers import all_zero, prepared, run_virtual

from emsctl.cli import main
from emsctl.contract import ChannelSetpoint
from emsctl.errors import DeviceError
from emsctl.journal import read_journal
from emsctl.simulator.drivers.sim import SimDriver
from emsctl.simulator.faults import Fault

#: relaxation: 180 s of guided stretching (no output), then phase A from 180 s
IN_PHASE_A_S = 400.0


def on(outputs: tuple[object, ...]) -> bool:
    return any(o.amplitude_ma > 0 for o in outputs)  # type: ignore[attr-defined]


def journal_tail(path: Path) -> tuple[list[dict], dict | None]:
    journal = read_journal(path)
    assert not journal.truncated
    return journal.records, journal.footer


def test_normal_end_completes_at_zero_with_a_full_journal(tmp_path: Path) -> None:
    prep = prepared("relaxation")
    run = run_virtual(prep, tmp_path)
    result = run.outcome.result
    assert (result.end_reason, result.exit_code) == ("completed", 0)
    # stimulation time counts the phases with output: relaxation has 3 min of guidance first
    assert result.stim_time_s == pytest.approx(prep.plan.stimulation_s(prep.plan.duration_s),
                                               abs=0.11)
    assert all_zero(run.outputs_at_stop)
    records, footer = journal_tail(run.outcome.journal_path)
    assert records[-1]["type"] == "stop" and records[-1]["reason"] == "completed"
    assert footer is not None and footer["end_reason"] == "completed"
    # the plan ends on its own ramp-down: the last command before the stop is already zero
    last_command = [r for r in records if r["type"] == "command"][-1]
    assert all(sp["amplitude_ma"] == 0 for sp in last_command["setpoints"])


def test_stop_key_mid_run_zeroes_at_once_and_exits_130(tmp_path: Path) -> None:
    prep = prepared("relaxation")
    device = prep.driver.device  # type: ignore[attr-defined]
    seen: dict[str, object] = {}

    def press_q(session: object) -> None:
        loop = asyncio.get_running_loop()
        seen["t"] = loop.time()
        seen["before"] = device.output_now()
        session.stop("stopped", "stopped by the user")  # type: ignore[attr-defined]

    run = run_virtual(prep, tmp_path, at=[(IN_PHASE_A_S, press_q)])
    result = run.outcome.result
    assert (result.end_reason, result.exit_code) == ("stopped", 130)
    assert result.message == "stopped by the user"
    # stimulation time leaves out the 3 min of guidance before phase A
    assert result.stim_time_s == pytest.approx(prep.plan.stimulation_s(IN_PHASE_A_S), abs=0.11)
    t_stop = seen["t"]
    assert on(seen["before"])  # type: ignore[arg-type]
    # zero in the same instant the stop was asked for, and nothing afterwards
    assert all_zero(device.outputs_at(t_stop))
    assert all_zero(run.outputs_at_stop)
    for ch in device.channels:
        iv = device.intervals(ch)
        assert not (iv[iv["t1_s"] > t_stop]["amplitude_ma"] > 0).any()
    records, footer = journal_tail(run.outcome.journal_path)
    assert records[-1]["type"] == "stop" and records[-1]["reason"] == "stopped"
    assert footer is not None and footer["end_reason"] == "stopped"


class ExplodingDriver(SimDriver):
    """A simulator driver whose ``_apply_internal`` raises on its n-th call."""

    def __init__(self, error: BaseException, after_calls: int) -> None:
        super().__init__()
        self.error, self.after_calls, self.calls = error, after_calls, 0

    async def _apply_internal(self, setpoints: tuple[ChannelSetpoint, ...],
                              lease_s: float) -> None:
        self.calls += 1
        if self.calls == self.after_calls:
            self.device.set_outputs(setpoints, lease_s)  # the command got out, then it broke
            raise self.error
        await super()._apply_internal(setpoints, lease_s)


def _cli_with(driver: SimDriver, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
              capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    import emsctl.runner
    from emsctl.contract import _mark_simulated

    _mark_simulated(driver)  # as the device table does for its own simulator entries
    monkeypatch.setattr(emsctl.runner, "open_device", lambda url, options=None: driver)
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "relaxation", "--speed", "max", "--journal-dir", str(tmp_path), *args])
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


@pytest.mark.parametrize("error", [DeviceError("the device answered NAK"),
                                   RuntimeError("a bug in the driver")],
                         ids=["device-error", "driver-bug"])
def test_exception_inside_the_driver_leaves_zero_and_exits_1(
        error: BaseException, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # tick 10 Hz: call 2000 is well inside phase A (the guide phase sends only heartbeats)
    driver = ExplodingDriver(error, after_calls=2000)
    code, out, err = _cli_with(driver, monkeypatch, tmp_path, capsys)
    assert driver.calls == 2000
    device = driver.device
    assert code == 1, (out, err)
    assert "Traceback" not in out + err
    assert str(error) in " ".join((out + err).split())  # the final screen wraps its lines
    assert all_zero(device.outputs_at(float("inf")))
    assert all(device.lease_deadline_s(c) is None for c in device.channels)  # explicit stop
    [journal] = list(tmp_path.glob("*.jsonl"))
    records, footer = journal_tail(journal)
    assert [r for r in records if r["type"] == "stop"], "the stop is journaled"
    assert footer is not None and footer["end_reason"] == "fault"
    commands = [r for r in records if r["type"] == "command"]
    # it was on when the driver broke
    assert any(sp["amplitude_ma"] > 0 for sp in commands[-1]["setpoints"])


def test_link_lost_stops_fails_with_a_clear_message_and_the_watchdog_zeroes(
        tmp_path: Path) -> None:
    t_lost = IN_PHASE_A_S
    prep = prepared("relaxation", Fault("disconnect", at_s=t_lost))
    driver = prep.driver
    run = run_virtual(prep, tmp_path)
    result = run.outcome.result
    assert (result.end_reason, result.exit_code) == ("fault", 1)
    assert "link" in result.message and "lost" in result.message
    device = driver.device  # type: ignore[attr-defined]
    t0 = run.session._start_s
    assert on(device.outputs_at(t0 + t_lost - 1e-6))
    # the stop cannot reach the device; its own watchdog must zero it within one lease (L21)
    lease_s = run.session.lease_s
    assert all_zero(device.outputs_at(t0 + t_lost + lease_s))
    for ch in (1, 2):
        iv = device.intervals(ch)
        assert float(iv["t1_s"][iv["amplitude_ma"] > 0].max()) <= t0 + t_lost + lease_s + 1e-9
    records, footer = journal_tail(run.outcome.journal_path)
    assert any(r["type"] == "telemetry" and r["kind"] == "link_lost" for r in records)
    assert records[-1]["type"] == "stop"
    assert footer is not None and footer["end_reason"] == "fault"


def test_electrode_off_pauses_tells_the_user_and_holds_zero_until_resumed(
        tmp_path: Path) -> None:
    t_off, t_back, t_resume = IN_PHASE_A_S, IN_PHASE_A_S + 20, IN_PHASE_A_S + 60
    prep = prepared("relaxation", Fault("electrode_off", at_s=t_off, channel=1,
                                        duration_s=t_back - t_off))
    device = prep.driver.device  # type: ignore[attr-defined]
    probes: dict[str, object] = {}

    def probe(name: str):
        def read(session: object) -> None:
            probes[name] = (device.output_now(), session.state.paused,  # type: ignore[attr-defined]
                            session.state.message)  # type: ignore[attr-defined]
        return read

    run = run_virtual(prep, tmp_path, keep_states=False, at=[
        (t_off - 1, probe("before")), (t_off + 0.001, probe("just after")),
        (t_back + 5, probe("pad back")),  # no auto-resume (docs/safety-basis.md §7)
        (t_resume, lambda s: s.resume()),  # type: ignore[attr-defined]
        (t_resume + 30, probe("resumed")),
        (t_resume + 31, lambda s: s.stop()),  # type: ignore[attr-defined]
    ])
    before, paused_before, _ = probes["before"]  # type: ignore[misc]
    assert on(before) and not paused_before
    after, paused, message = probes["just after"]  # type: ignore[misc]
    assert paused and all_zero(after)
    assert "electrode off on channel 1" in message and "paused" in message
    back, still_paused, _ = probes["pad back"]  # type: ignore[misc]
    assert still_paused and all_zero(back)
    resumed, paused_again, _ = probes["resumed"]  # type: ignore[misc]
    assert not paused_again and on(resumed)
    t0 = run.session._start_s
    for ch in device.channels:  # nothing on anywhere while paused
        iv = device.intervals(ch)
        inside = (iv["t1_s"] > t0 + t_off + 1e-6) & (iv["t0_s"] < t0 + t_resume)
        assert not (iv[inside]["amplitude_ma"] > 0).any()
    # the plan clock froze while paused: the session ran 60 s longer than its stimulation time
    assert run.outcome.result.stim_time_s == pytest.approx(
        run.session.plan.stimulation_s(t_resume + 31 - 60), abs=0.25)
    records, _ = journal_tail(run.outcome.journal_path)
    kinds = [(r["type"], r.get("kind")) for r in records]
    assert ("telemetry", "electrode_off") in kinds and ("event", "pause") in kinds
    assert kinds.index(("telemetry", "electrode_off")) < kinds.index(("event", "pause"))


def test_electrode_off_in_a_pipe_prints_the_pause_and_ends_the_session_at_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Nobody can press space to resume a session whose output is a pipe: the pause ends it
    # at once, at zero, as a fault (it used to spin through virtual time until killed).
    faults = tmp_path / "faults.toml"
    faults.write_text(f'[[faults]]\nkind = "electrode_off"\nat_s = {IN_PHASE_A_S}\nchannel = 2\n')
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "relaxation", "--speed", "max", "--faults", str(faults),
              "--journal-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert "electrode off on channel 2" in out
    assert "] paused" in out
    assert exit_info.value.code == 1, out + err
    assert "paused with no terminal to resume" in out
    [journal] = list(tmp_path.glob("*.jsonl"))
    records, footer = journal_tail(journal)
    assert records[-1]["type"] == "stop" and footer is not None
    assert footer["end_reason"] == "fault"
    assert footer["t_s"] == pytest.approx(IN_PHASE_A_S, abs=0.5)


def test_a_pause_nobody_resumes_ends_the_session_after_the_pause_limit(
        tmp_path: Path) -> None:
    # With a terminal, a forgotten pause must not wait for ever either (10 min, virtual time).
    from emsctl.clock import VirtualClock
    from emsctl.limits import DEFAULTS
    from emsctl.loader import load_program
    from emsctl.runner import execute, prepare_run
    from emsctl.session import PAUSE_LIMIT_S, Session

    ready = prepare_run(load_program("relaxation"), "sim", DEFAULTS)

    def pause_in_phase_a(session: Session) -> None:
        asyncio.get_running_loop().call_later(IN_PHASE_A_S, session.pause)

    outcome = execute(ready, VirtualClock(), journal_dir=tmp_path, on_start=pause_in_phase_a,
                      handle_signals=False)
    assert outcome.result.end_reason == "fault"
    assert f"paused for more than {PAUSE_LIMIT_S / 60:g} min" in outcome.result.message
    device = ready.driver.device  # type: ignore[attr-defined]
    end_s = max(float(device.intervals(ch)["t1_s"][-1]) for ch in (1, 2))
    assert all_zero(device.outputs_at(end_s))
    # the pause began in phase A and lasted the limit; nothing was sent after it
    assert end_s <= IN_PHASE_A_S + PAUSE_LIMIT_S + 1.0
