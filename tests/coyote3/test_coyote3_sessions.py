"""Whole sessions through ``sim+coyote3``: built-in programs, every exit path, faults.

The run goes through the public runner (prepare_run → execute) on a VirtualClock, so the plan,
guard, session, driver, in-memory GATT link and emulated device all take part.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from virtual_run import run

from emsctl.clock import VirtualClock
from emsctl.devices import OpenOptions
from emsctl.drivers.coyote3.frequency import frequency_code_from_hz, frequency_hz_from_code
from emsctl.errors import ValidationFailed
from emsctl.limits import DEFAULTS
from emsctl.loader import builtin_names, load_program
from emsctl.plan import ChannelSampler
from emsctl.runner import Prepared, execute, prepare_run
from emsctl.simulator.drivers.coyote3 import SimulatedCoyoteDriver
from emsctl.simulator.faults import Fault, FaultPlan
from emsctl.simulator.model import OFF

K_MA = 0.2
US_PER_INTENSITY = 3.0
URL = f"sim+coyote3?ma_per_step={K_MA}&us_per_intensity={US_PER_INTENSITY:g}"
RUNNABLE = [n for n in builtin_names() if n != "tens-burst"]  # the Coyote cannot time bursts


def prepare(name: str, *faults: Fault, url: str = URL) -> Prepared:
    options = OpenOptions(fault_plan=FaultPlan(faults) if faults else None)
    prepared = prepare_run(load_program(name), url, DEFAULTS, options=options, expert=True)
    # prepare_run gives the driver the verified caps (BF = min(program cap, profile cap))
    assert isinstance(prepared.driver, SimulatedCoyoteDriver)
    return prepared


def driver_of(prepared: Prepared) -> SimulatedCoyoteDriver:
    driver = prepared.driver
    assert isinstance(driver, SimulatedCoyoteDriver)
    return driver


def assert_left_at_zero(prepared: Prepared, *, strengths_zero: bool = True) -> None:
    driver = driver_of(prepared)
    assert driver.device.outputs_at(math.inf) == (OFF, OFF)
    if strengths_zero:
        assert driver.emulator.strengths_steps == [0, 0]


def device_frequency_hz(frequency_hz: float) -> float:
    return frequency_hz_from_code(frequency_code_from_hz(frequency_hz))


@pytest.mark.parametrize("name", RUNNABLE)
def test_builtin_program_is_delivered_as_planned_within_device_resolution(
        name: str, tmp_path: Path) -> None:
    prepared = prepare(name)
    outcome, start_s = run(prepared, tmp_path)
    assert outcome.result.end_reason == "completed", outcome.result.message
    driver = driver_of(prepared)
    caps = driver.capabilities
    plan = prepared.plan
    for cplan in plan.channels:
        sampler = ChannelSampler(cplan, plan.duration_s)
        peak_ma = 0.0
        s = 0.5
        while s < plan.duration_s - 0.5:
            out = driver.device.outputs_at(start_s + s)[cplan.channel - 1]
            # what the session asked for at its ticks (every 100 ms of stimulation time) in
            # the last 350 ms: one tick + one frame + BLE latency, with margin
            ticks = range(math.ceil((s - 0.35) / 0.1), math.floor(s / 0.1) + 1)
            window = [sampler.at(j * 0.1) for j in ticks]
            amps = [caps.quantize_ma(w[0]) for w in window]
            assert min(amps) - 1e-9 <= out.amplitude_ma <= max(amps) + 1e-9, (name, s)
            if out.amplitude_ma > 0:
                freqs = [device_frequency_hz(w[1]) for w in window if w[0] > 0]
                widths = [math.floor(w[2] / US_PER_INTENSITY + 1e-6) * US_PER_INTENSITY
                          for w in window if w[0] > 0]
                assert min(freqs) - 1e-9 <= out.frequency_hz <= max(freqs) + 1e-9
                assert min(widths) - 1e-9 <= out.pulse_width_us <= max(widths) + 1e-9
            peak_ma = max(peak_ma, out.amplitude_ma)
            s += 0.37
        assert peak_ma <= cplan.cap_ma + 1e-9
        assert driver.recorder.peak_ma(cplan.channel) <= cplan.cap_ma + 1e-9
    assert_left_at_zero(prepared)
    # closed with BF 0/0 (docs/protocols/coyote3.md §10 step 3)
    assert driver.emulator.limits_steps == [0, 0]


def test_a_program_the_coyote_cannot_time_is_refused_before_connecting() -> None:
    with pytest.raises(ValidationFailed, match="cannot time bursts"):
        prepare_run(load_program("tens-burst"), URL, DEFAULTS)
    # relaxation's widths (200–250 µs) are fitted to the Coyote's widest, 100 µs: its currents
    # are relative to the person's thresholds, which are then measured at 100 µs
    fitted = prepare_run(load_program("relaxation"), "sim+coyote3", DEFAULTS)
    assert [a.now for a in fitted.adaptations] == ["100 µs"] * 4
    assert fitted.loaded.program.calibration_pulse_width_us == 100.0


def test_user_stop_ends_at_zero(tmp_path: Path) -> None:
    prepared = prepare("tens")
    outcome, _ = run(prepared, tmp_path, stop_at_s=30.0)
    assert (outcome.result.end_reason, outcome.result.exit_code) == ("stopped", 130)
    assert outcome.result.stim_time_s == pytest.approx(30.0, abs=0.2)
    assert_left_at_zero(prepared)


def test_an_exception_in_the_caller_still_ends_at_zero(tmp_path: Path) -> None:
    prepared = prepare("tens")

    def on_tick(state: object) -> None:
        if getattr(state, "stim_time_s", 0.0) > 20.0:
            raise RuntimeError("the live view crashed")
    with pytest.raises(RuntimeError, match="live view"):
        execute(prepared, VirtualClock(), journal_dir=tmp_path, on_tick=on_tick,
                handle_signals=False)
    assert_left_at_zero(prepared)


def test_a_strength_raised_on_the_device_stops_the_session(tmp_path: Path) -> None:
    prepared = prepare("tens", Fault("strength_change", 60.0, channel=2, value=25.0))
    outcome, _start_s = run(prepared, tmp_path)
    result = outcome.result
    assert (result.end_reason, result.exit_code) == ("fault", 1)
    assert "strength" in result.message and "channel 2" in result.message
    assert result.stim_time_s == pytest.approx(60.0, abs=0.5)
    assert_left_at_zero(prepared)
    # the raised strength lasted no longer than one B1 round trip plus the stop frame
    intervals = driver_of(prepared).recorder.intervals(2)
    cap_ma = prepared.plan.channels[1].cap_ma
    over = intervals[intervals["amplitude_ma"] > cap_ma + 1e-9]
    assert (over["t1_s"] - over["t0_s"]).sum() <= 0.05


def test_a_dropped_link_ends_the_session_with_zero_output_and_a_clear_message(
        tmp_path: Path) -> None:
    prepared = prepare("tens", Fault("disconnect", 45.0))
    outcome, start_s = run(prepared, tmp_path)
    result = outcome.result
    assert (result.end_reason, result.exit_code) == ("fault", 1)
    assert "link" in result.message and "lost" in result.message
    driver = driver_of(prepared)
    # nothing reaches the device after the drop; its last frame runs out within 100 ms
    assert driver.device.outputs_at(start_s + 45.0 + 0.11) == (OFF, OFF)
    # docs/protocols/coyote3.md §7: the strength is kept
    assert_left_at_zero(prepared, strengths_zero=False)
    assert not driver.emulator.server.connected


def test_a_low_battery_stops_the_session(tmp_path: Path) -> None:
    prepared = prepare("relaxation", Fault("battery_low", 200.0, value=9))
    outcome, _ = run(prepared, tmp_path)
    assert outcome.result.end_reason == "fault" and "battery low" in outcome.result.message
    assert_left_at_zero(prepared)


def test_a_device_reset_ends_the_session_at_zero(tmp_path: Path) -> None:
    prepared = prepare("tens", Fault("device_reset", 100.0))
    outcome, _ = run(prepared, tmp_path)
    assert outcome.result.end_reason == "fault"
    assert_left_at_zero(prepared)


def test_lost_frames_and_duplicates_never_exceed_the_plan(tmp_path: Path) -> None:
    prepared = prepare("relaxation", Fault("drop_frames", 180.0, duration_s=60.0, value=0.2),
                       Fault("duplicate_frames", 300.0, duration_s=60.0, value=0.5))
    outcome, _ = run(prepared, tmp_path)
    assert outcome.result.end_reason in ("completed", "fault"), outcome.result.message
    driver = driver_of(prepared)
    for cplan in prepared.plan.channels:
        assert driver.recorder.peak_ma(cplan.channel) <= cplan.cap_ma + 1e-9
    assert_left_at_zero(prepared)
