"""Built-in programs end to end through sim+openems and sim+openems+ble, in virtual time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from virtual_run import run

from emsctl.clock import VirtualClock
from emsctl.devices import OpenOptions
from emsctl.errors import ValidationFailed
from emsctl.limits import DEFAULTS
from emsctl.loader import builtin_names, load_program
from emsctl.runner import Prepared, execute, prepare_run
from emsctl.simulator.drivers.openems import SimulatedOpenEmsDriver
from emsctl.simulator.faults import Fault, FaultPlan

#: 16 mA at I = 100 is 20.2 mA at full scale: within the synthetic person's 22.5 mA cap, and
#: above every amplitude of tens and cramp-training (13.75 mA at most).
DECL = "ma_at_100=16&frequency_hz={f:g}&pulse_width_us={pw:g}"
TRANSPORTS = ["sim+openems", "sim+openems+ble"]
#: Commands follow the plan a tick (0.1 s) plus one 50 ms line slot late, plus wire time.
LAG_S = 0.25


def url_for(scheme: str, name: str) -> str:
    program = load_program(name).program
    return f"{scheme}?" + DECL.format(f=program.calibration_frequency_hz,
                                     pw=program.calibration_pulse_width_us)


def prepare(scheme: str, name: str, *faults: Fault) -> Prepared:
    options = OpenOptions(fault_plan=FaultPlan(faults) if faults else None)
    return prepare_run(load_program(name), url_for(scheme, name), DEFAULTS, options=options,
                       expert=True)


def driver_of(prepared: Prepared) -> SimulatedOpenEmsDriver:
    assert isinstance(prepared.driver, SimulatedOpenEmsDriver)
    return prepared.driver


def delivered_at(driver: SimulatedOpenEmsDriver, channel: int, t_s: np.ndarray) -> np.ndarray:
    iv = driver.device.intervals(channel)
    index = np.clip(np.searchsorted(iv["t0_s"], t_s, side="right") - 1, 0, len(iv) - 1)
    inside = (t_s >= iv["t0_s"][index]) & (t_s < iv["t1_s"][index])
    return np.where(inside, iv["amplitude_ma"][index], 0.0)


def assert_all_zero_at_end(driver: SimulatedOpenEmsDriver) -> None:
    assert [o.amplitude_ma for o in driver.device.outputs_at(1e9)] == [0.0, 0.0]
    assert not driver.emulator.active(0) and not driver.emulator.active(1)
    for channel in (1, 2):
        assert driver.device.lease_deadline_s(channel) is None  # nothing left running


@pytest.mark.parametrize("scheme", TRANSPORTS)
@pytest.mark.parametrize("name", ["tens", "cramp-training"])
def test_builtin_program_delivers_the_plan_within_device_resolution(
        scheme: str, name: str, tmp_path: Path) -> None:
    prepared = prepare(scheme, name)
    outcome, t0 = run(prepared, tmp_path)
    assert outcome.result.end_reason == "completed", outcome.result.message
    driver = driver_of(prepared)
    plan = prepared.plan
    declared = driver.declared
    gaps = np.diff([declared.ma_at(i) for i in range(101)])
    resolution_ma = driver.capabilities.amplitude_step_ma + gaps.max()
    t = t0 + np.arange(0.0, plan.duration_s + 2.0, 0.02)
    for row, cplan in enumerate(plan.channels):
        got = delivered_at(driver, cplan.channel, t)
        # the plan over the window the command could come from
        windows = [plan.setpoints_at(t - t0 - lag).amplitude_ma[row]
                   for lag in np.linspace(0.0, LAG_S, 11)]
        high, low = np.max(windows, axis=0), np.min(windows, axis=0)
        assert (got <= high + 1e-9).all(), "delivered more than the plan asked"
        assert (got >= low - resolution_ma - 1e-9).all(), "delivered less than one step below"
        assert got.max() > 0
    assert_all_zero_at_end(driver)
    assert driver.emulator.unsafe_events == []
    assert driver.emulator.dropped_rx_bytes == 0  # the 50 ms spacing never overflows the Nano


@pytest.mark.parametrize("name", sorted(set(builtin_names())
                                        - {"tens", "tens-modulated", "cramp-training"}))
def test_programs_that_need_another_rate_width_or_bursts_are_refused_by_verify(
        name: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        prepare("sim+openems", name)
    text = str(info.value)
    assert text.startswith(f"'{name}' cannot run on openEMSstim")
    assert "external stimulator fixed at" in text
    assert any(word in text for word in ("Hz", "µs", "bursts"))


@pytest.mark.parametrize("scheme", TRANSPORTS)
def test_a_user_stop_ends_at_zero_at_once(scheme: str, tmp_path: Path) -> None:
    prepared = prepare(scheme, "tens")
    outcome, t0 = run(prepared, tmp_path, stop_at_s=60.0)
    assert outcome.result.end_reason == "stopped" and outcome.result.exit_code == 130
    driver = driver_of(prepared)
    for channel in (1, 2):
        iv = driver.device.intervals(channel)
        on = iv[iv["amplitude_ma"] > 0]
        assert on["t1_s"].max() - (t0 + 60.0) < 0.1  # L22: zero well within 300 ms
    assert_all_zero_at_end(driver)


@pytest.mark.parametrize("scheme", TRANSPORTS)
def test_a_dropped_link_ends_with_zero_output_and_a_clear_message(scheme: str,
                                                                  tmp_path: Path) -> None:
    prepared = prepare(scheme, "tens", Fault("disconnect", 30.0))
    outcome, t0 = run(prepared, tmp_path)
    result = outcome.result
    assert result.end_reason == "fault" and result.exit_code == 1
    # the session's "link to the device lost", then the runner's unconfirmed stop, which says
    # what happens next
    assert "link lost" in result.message
    assert "on-time switches every channel off within 1000 ms" in result.message
    driver = driver_of(prepared)
    lost_s = t0 + 30.0
    for channel in (1, 2):
        iv = driver.device.intervals(channel)
        on = iv[iv["amplitude_ma"] > 0]
        # serial: the board never notices a pulled cable; the on-time ends it (L21)
        assert on["t1_s"].max() <= lost_s + 1.0 + 0.02
    # the run ends before the board's own timers fire; its record (pending expiry
    # included) still ends at zero
    assert [o.amplitude_ma for o in driver.device.outputs_at(lost_s + 1.1)] == [0.0, 0.0]


def test_a_board_reset_ends_the_session_as_a_fault_and_it_stays_at_zero(tmp_path: Path) -> None:
    prepared = prepare("sim+openems", "tens", Fault("device_reset", 30.0))
    outcome, _ = run(prepared, tmp_path)
    assert outcome.result.end_reason == "fault"
    assert "device reset" in outcome.result.message
    assert_all_zero_at_end(driver_of(prepared))


@pytest.mark.parametrize("scheme", TRANSPORTS)
def test_an_exception_in_the_live_view_still_ends_at_zero(scheme: str, tmp_path: Path) -> None:
    prepared = prepare(scheme, "tens")
    ticks = []

    def on_tick(state: object) -> None:
        ticks.append(state)
        if len(ticks) == 300:
            raise RuntimeError("the view crashed")

    outcome = execute(prepared, VirtualClock(), journal_dir=tmp_path, on_tick=on_tick,
                      handle_signals=False)
    assert outcome.result.end_reason == "fault"
    assert "RuntimeError: the view crashed" in outcome.result.message
    assert_all_zero_at_end(driver_of(prepared))


def test_corrupted_and_lost_lines_never_deliver_more_than_the_plan(tmp_path: Path) -> None:
    prepared = prepare("sim+openems", "tens", Fault("corrupt_bytes", 10.0, duration_s=60.0,
                                                    value=0.2),
                       Fault("drop_frames", 100.0, duration_s=60.0, value=0.3))
    outcome, _ = run(prepared, tmp_path, stop_at_s=200.0)
    driver = driver_of(prepared)
    board = driver.emulator
    assert_all_zero_at_end(driver)
    # HZ-12: without a checksum a flipped digit can change I or T unnoticed
    # (docs/protocols/openemsstim.md §9); the board then does what it parsed, so the bound is the
    # board's own: I > 100 is logged as unsafe, and the 5 s on-time cap ends every activation.
    unsafe_high = any(e.kind == "intensity_over_100" for e in board.unsafe_events)
    assert not any(e.kind.startswith("test_") for e in board.unsafe_events)  # WV lines only
    for channel in (1, 2):
        starts = [a for a in board.activations if a.channel == channel - 1]
        iv = driver.device.intervals(channel)
        for row in iv[iv["amplitude_ma"] > 0]:
            # every moment of output lies within the on-time of an activation the board parsed,
            # and no on-time is longer than the 5 s cap
            cause = [a for a in starts if a.t_s <= row["t0_s"] + 1e-9]
            assert cause, "output that no command asked for"
            assert cause[-1].deadline_s is not None
            assert cause[-1].deadline_s - cause[-1].t_s <= 5.0 + 1e-9
            assert row["t1_s"] <= max(a.deadline_s or 0.0 for a in starts
                                      if a.t_s <= row["t1_s"]) + 0.2
            if not unsafe_high:
                assert row["amplitude_ma"] <= driver.declared.ma_at_100 + 1e-9
            # whatever the board made of a line, never above the person's cap (HZ-01)
            assert row["amplitude_ma"] <= prepared.plan.channels[channel - 1].cap_ma + 1e-9
    assert outcome.result.end_reason in ("stopped", "completed", "fault")
