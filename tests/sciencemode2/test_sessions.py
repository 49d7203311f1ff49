"""Built-in programs end to end through ``sim+sciencemode2`` (real codec, driver and emulator)
in virtual time, and the fault plan's faults: each ends at zero output, journaled, explained."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emsctl.clock import VirtualClock
from emsctl.devices import OpenOptions
from emsctl.limits import DEFAULTS
from emsctl.loader import load_program
from emsctl.plan import ChannelSampler
from emsctl.runner import RunOutcome, execute, prepare_run
from emsctl.simulator.drivers.sciencemode2 import SimulatedScienceModeDriver
from emsctl.simulator.faults import Fault, FaultPlan


def run_program(name: str, tmp_path: Path, *faults: Fault
                ) -> tuple[RunOutcome, SimulatedScienceModeDriver, Any, float]:
    options = OpenOptions(fault_plan=FaultPlan(faults) if faults else None)
    prepared = prepare_run(load_program(name), "sim+sciencemode2", DEFAULTS, options=options)
    driver = prepared.driver
    assert isinstance(driver, SimulatedScienceModeDriver)
    started: list[float] = []

    def on_start(_session: Any) -> None:
        import asyncio
        started.append(asyncio.get_running_loop().time())

    outcome = execute(prepared, VirtualClock(), journal_dir=tmp_path, on_start=on_start,
                      handle_signals=False)
    return outcome, driver, prepared.plan, started[0]


def journal(outcome: RunOutcome) -> list[dict[str, Any]]:
    assert outcome.journal_path is not None
    return [json.loads(line) for line in outcome.journal_path.read_text().splitlines()]


def test_circulation_delivers_the_plan_within_the_2_ma_step_and_ends_at_zero(
        tmp_path: Path) -> None:
    outcome, driver, plan, start_s = run_program("circulation", tmp_path)
    assert outcome.result.end_reason == "completed", outcome.result.message
    for cplan in plan.channels:
        sampler = ChannelSampler(cplan, plan.duration_s)
        track = driver.device.intervals(cplan.channel)
        times = np.arange(0.5, plan.duration_s - 0.5, 0.37)
        for t in times:
            device_ma = float(track["amplitude_ma"][np.searchsorted(track["t0_s"], start_s + t,
                                                                     side="right") - 1])
            # the device holds the command of the last tick (≤ 0.1 s old + 15 ms latency)
            window = [sampler.at(max(0.0, t - dt))[0] for dt in (0.0, 0.06, 0.12, 0.2)]
            assert device_ma <= max(window) + 1e-9, (t, device_ma, window)  # never above
            assert device_ma >= min(window) - 2.0 - 1e-9, (t, device_ma, window)  # 2 mA step
            if device_ma > 0:
                row = np.searchsorted(track["t0_s"], start_s + t, side="right") - 1
                assert track["frequency_hz"][row] == pytest.approx(sampler.at(t)[1], rel=0.01)
        assert driver.device.outputs_at(1e9)[cplan.channel - 1].amplitude_ma == 0.0
    peaks = outcome.delivered["channels"]
    assert float(peaks["1"]["peak_ma"]) > 0


def test_relaxation_changes_frequency_twice_and_completes(tmp_path: Path) -> None:
    outcome, driver, _plan, _ = run_program("relaxation", tmp_path)
    assert outcome.result.end_reason == "completed", outcome.result.message
    rates = set(np.round(driver.device.intervals(1)["frequency_hz"], 2).tolist()) - {0.0}
    assert rates == {6.01, 3.0, 2.0}  # t1 codes 331, 665, 998: 1000/(code/2+1) Hz
    assert driver.device.outputs_at(1e9)[0].amplitude_ma == 0.0


FAULTS = {
    "dropped acks": (Fault("drop_acks", 20.0), "answers neither"),
    "busy": (Fault("busy", 20.0, duration_s=10.0), "busy"),
    "electrode error": (Fault("electrode_off", 20.0, channel=1), "electrode error"),
    "device reset": (Fault("device_reset", 20.0), "reset"),
    "disconnect": (Fault("disconnect", 20.0), "lost"),
}


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_each_fault_ends_at_zero_output_with_a_journal_entry_and_a_clear_message(
        name: str, tmp_path: Path) -> None:
    fault, words = FAULTS[name]
    outcome, driver, _, start_s = run_program("circulation", tmp_path, fault)
    result = outcome.result
    assert result.end_reason == "fault" and result.exit_code == 1
    assert words in result.message, result.message
    assert result.stim_time_s < 30.0
    # zero output by the end: stop acknowledged, or the device's own 1.2 s watchdog
    fault_s = driver.emulator.device.t_start_s + fault.at_s  # type: ignore[operator]
    for channel in driver.device.channels:
        assert driver.device.outputs_at(fault_s + 1.2 + 0.5 + 1e-6)[channel - 1].amplitude_ma \
            == 0.0
    records = journal(outcome)
    told = [r for r in records if r.get("type") == "telemetry"
            and r.get("kind") in ("device_error", "device_reset", "link_lost")]
    assert told and words in " ".join(str(r.get("message")) for r in told)
    assert records[-1].get("type") == "footer"
    assert start_s >= 0
