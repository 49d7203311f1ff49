"""The driver conformance suite: each step of :mod:`emsctl.conformance` on each family's devices.

A test runs one step (after the handshake) on one target: every family's emulations in virtual
time, and the real device given with ``pytest --hw-device URL`` in real time (skipped without
one; never in CI). Steps observe what a host observes on hardware (bytes, acks, telemetry,
timing) and, on an emulation only, the emulator's record of what it delivered. A step that puts
current on the outputs uses channel 1 at the device's smallest step (at most 2 mA, at most 1 s)
and prints a warning line before it does. The tests at the end show that each kind of step can
fail: a driver broken on purpose, an emulated fault, a device without its watchdog.
"""

from __future__ import annotations

import pytest
from conformance_cases import STEP_IDS, Target

from emsctl.check_report import render_text
from emsctl.conformance import (
    OUTPUT_MAX_MA,
    CheckOptions,
    Report,
    StepResult,
    run_check,
    smallest_output,
)
from emsctl.devices import open_device
from emsctl.limits import DEFAULTS
from emsctl.simulator.faults import Fault, FaultPlan

SM2 = "sim+sciencemode2"
COYOTE = "sim+coyote3?ma_per_step=0.2"
OPENEMS = "sim+openems?ma_at_100=40&frequency_hz=80&pulse_width_us=180"


def _run(target: Target, steps: tuple[str, ...], capsys: pytest.CaptureFixture[str],
         warnings: list[str]) -> Report:
    assert target.url is not None

    def warn(line: str) -> None:
        warnings.append(line)
        print(line)

    options = CheckOptions(load="open" if target.load == "open" else "resistor", steps=steps,
                           warn=warn, person="pytest --hw-device: no person connected")
    if not target.hardware:
        return run_check(target.url, options)
    with capsys.disabled():  # on hardware the warning lines must reach the terminal
        print(f"\n{target.url}: conformance step {steps[-1]} (a test load, no person)")
        return run_check(target.url, options)


def _step(report: Report, step: str) -> StepResult:
    return next(s for s in report.steps if s.id == step)


@pytest.mark.parametrize("step", STEP_IDS)
def test_each_step_conforms(target: Target, step: str, capsys: pytest.CaptureFixture[str]) -> None:
    warnings: list[str] = []
    report = _run(target, (step,), capsys, warnings)
    text = render_text(report)
    assert report.steps[0].id == "handshake" and report.steps[0].status == "passed", text
    result = _step(report, step)
    if step in target.not_possible:
        assert result.status == "not_possible", text
        assert result.detail
        assert not result.output
    elif target.hardware and result.status == "not_possible":
        pytest.skip(f"not possible on this device: {result.detail}")
    else:
        assert result.status == "passed", text
    if result.output:  # current on the outputs: said so first, at the smallest step
        assert warnings and "WARNING" in warnings[0]
        setpoints, _text = smallest_output(open_device(target.url), DEFAULTS)
        assert 0 < setpoints[0].amplitude_ma <= OUTPUT_MAX_MA
        assert all(sp.amplitude_ma == 0 for sp in setpoints[1:])
    assert report.exit_code == 0, text


def test_an_open_load_is_reported(target: Target, open_load: bool,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    report = _run(target, ("electrode", "update_ack"), capsys, [])
    text = render_text(report)
    assert _step(report, "electrode").status == "passed", text
    assert "electrode error" in _step(report, "electrode").detail
    # with nothing across the outputs the device refuses them: the output steps are not run
    assert _step(report, "update_ack").status == "not_possible", text
    assert "electrodes on nothing" in _step(report, "update_ack").detail


def test_the_same_device_fails_the_open_load_check_with_a_resistor_declared() -> None:
    report = run_check("sim+sciencemode2?impedance_ohm=1000000", CheckOptions(steps=("electrode",)))
    result = _step(report, "electrode")
    assert result.status == "failed", render_text(report)
    assert "with the test load in place" in result.detail
    assert report.exit_code == 1


# ---------------------------------------------------------------------- the suite can fail


def _check(url: str, *steps: str, faults: tuple[Fault, ...] = ()) -> Report:
    plan = FaultPlan(faults) if faults else None
    return run_check(url, CheckOptions(steps=steps or None, fault_plan=plan))


def test_a_stop_that_waits_behind_the_pending_update_fails_the_race(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from emsctl.drivers.sciencemode2.driver import ScienceModeDriver

    original = ScienceModeDriver._stop_internal

    async def stop_behind_the_lock(self: ScienceModeDriver) -> None:
        async with self._lock:
            await original(self)

    monkeypatch.setattr(ScienceModeDriver, "_stop_internal", stop_behind_the_lock)
    report = _check(SM2, "stop_race")
    result = _step(report, "stop_race")
    assert result.status == "failed", render_text(report)
    assert "not at once: it waited behind the update" in result.detail
    assert any("InitChannelListMode" in report.describe(e) for e in result.wire)


def test_a_driver_that_does_not_keep_its_lease_fails_the_lease_step(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from emsctl.drivers.sciencemode2.driver import ScienceModeDriver

    monkeypatch.setattr(ScienceModeDriver, "_arm_lease", lambda self, end_s: None)
    result = _step(_check(SM2, "lease"), "lease")
    assert result.status == "failed"
    assert "still asked for output" in result.detail


def test_a_device_without_its_watchdog_fails_the_device_watchdog_step() -> None:
    result = _step(_check(f"{SM2}?watchdog_s=log_only", "device_watchdog"), "device_watchdog")
    assert result.status == "failed"
    assert "did not announce itself again" in result.detail
    assert result.wire and all(e.from_host for e in result.wire if not e.delivered)


def test_a_driver_that_does_not_resend_after_a_missing_ack_fails(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from emsctl.drivers.sciencemode2 import driver as sm2

    monkeypatch.setattr(sm2, "_RESENDS", 0)
    result = _step(_check(SM2, "ack_timeout"), "ack_timeout")
    assert result.status == "failed"
    assert "was not sent again" in result.detail
    assert any(not e.delivered for e in result.wire)  # the withheld ack is in the report


def test_acks_dropped_by_the_device_fail_the_handshake_with_its_bytes() -> None:
    report = _check(SM2, faults=(Fault("drop_acks", 0.0),))
    handshake = report.steps[0]
    assert handshake.status == "failed"
    assert {s.status for s in report.steps[1:]} == {"not_run"}
    assert any(e.data.hex().startswith("f081") and "StopChannelListMode" in report.describe(e)
               for e in handshake.wire)
    assert "StopChannelListModeAck" not in " ".join(report.describe(e) for e in handshake.wire)
    assert report.exit_code == 1


def test_a_pad_off_fails_the_update_and_the_electrode_step() -> None:
    report = _check(SM2, "update_ack", "electrode", faults=(Fault("electrode_off", 0.0, 1),))
    assert _step(report, "update_ack").status == "failed"
    assert "device_error" in _step(report, "update_ack").detail
    assert "StimulationError" in " ".join(
        report.describe(e) for e in _step(report, "update_ack").wire)
    assert _step(report, "electrode").status == "failed"


def test_a_coyote_that_never_confirms_fails_the_update() -> None:
    report = _check(COYOTE, "update_ack", faults=(Fault("drop_acks", 0.0),))
    result = _step(report, "update_ack")
    assert result.status == "failed"
    assert "no B1 with sequence" in result.detail


def test_an_openems_driver_that_skips_its_shutdown_fails_the_handshake(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from emsctl.drivers.openems.driver import OpenEmsDriver

    async def no_shutdown(self: OpenEmsDriver) -> None:
        self.link.on_lost(self._lost)
        await self.link.open()
        self._opened = self._link_up = True

    monkeypatch.setattr(OpenEmsDriver, "_connect_internal", no_shutdown)
    report = _check(OPENEMS, "identity")
    assert report.steps[0].status == "failed"
    assert "C9G" in report.steps[0].detail


# ---------------------------------------------------------------------- the P24 can fail too

P24 = "sim+sciencemode4"


def test_a_p24_that_keeps_running_when_the_host_falls_silent_fails_the_watchdog_step(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from emsctl.simulator.devices.sciencemode4 import P24 as EmulatedP24

    monkeypatch.setattr(EmulatedP24, "_timeout_due", lambda self: None)  # no 2 s timeout
    report = _check(P24, "device_watchdog")
    result = _step(report, "device_watchdog")
    assert result.status == "failed", render_text(report)
    assert "the mid level still ran" in result.detail
    # the driver's lease stop was muted; the check's own status queries were answered
    assert any(not e.delivered and "MlStop" in report.describe(e) for e in result.wire)
    assert any(e.by_check for e in result.wire)
    assert "mid level running" in report.describe(result.wire[-1])


def test_a_p24_stop_that_waits_behind_the_pending_update_fails_the_race(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from emsctl.drivers.sciencemode4.driver import ScienceMode4Driver

    original = ScienceMode4Driver._stop_internal

    async def stop_behind_the_lock(self: ScienceMode4Driver) -> None:
        async with self._lock:
            await original(self)

    monkeypatch.setattr(ScienceMode4Driver, "_stop_internal", stop_behind_the_lock)
    report = _check(P24, "stop_race")
    result = _step(report, "stop_race")
    assert result.status == "failed", render_text(report)
    assert "not at once: it waited behind the update" in result.detail
    assert any("MlUpdate pn" in report.describe(e) for e in result.wire)


def test_a_p24_driver_that_does_not_resend_its_stop_fails_the_ack_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from emsctl.drivers.sciencemode4 import driver as sm4

    monkeypatch.setattr(sm4, "_RESENDS", 0)
    result = _step(_check(P24, "ack_timeout"), "ack_timeout")
    assert result.status == "failed"
    assert "Ml_stop was not sent again" in result.detail
    assert any(not e.delivered for e in result.wire)


def test_a_p24_driver_that_never_polls_misses_the_open_load(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from emsctl.drivers.sciencemode4.driver import ScienceMode4Driver

    async def no_poll(self: ScienceMode4Driver) -> bool:
        return True

    monkeypatch.setattr(ScienceMode4Driver, "_poll", no_poll)
    report = run_check("sim+sciencemode4?impedance_ohm=1000000",
                       CheckOptions(load="open", steps=("electrode",)))
    result = _step(report, "electrode")
    assert result.status == "failed", render_text(report)
    assert "reported no electrode error" in result.detail
