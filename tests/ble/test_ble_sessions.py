"""Whole sessions over the real BLE host stack: runner → session → driver → BleakGattLink →
bleak → bumble central → virtual radio → bumble peripheral → emulated device.

Each run prepares a simulated device as usual (``sim+coyote3``, ``sim+openems+ble``: plan, caps,
emulator, recorder, fault plan), then swaps the driver's in-memory link for emsctl's bleak link
through :class:`support.ble_stack.BleStack`, whose peripheral serves that same emulator. What
the emulator recorded is then checked. A short program (15 s) keeps each run well under a
second of real time.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from support.ble_stack import (
    BleStack,
    BridgedPeripheral,
    GattBreak,
    coyote_peripheral,
    rn4020_peripheral,
)

from emsctl.clock import VirtualClock
from emsctl.contract import Telemetry
from emsctl.devices import OpenOptions
from emsctl.drivers.openems.transport import BleLines
from emsctl.limits import DEFAULTS
from emsctl.loader import load_program
from emsctl.runner import Prepared, RunOutcome, execute, prepare_run
from emsctl.session import Session
from emsctl.simulator.drivers.coyote3 import SimulatedCoyoteDriver
from emsctl.simulator.drivers.openems import SimulatedOpenEmsDriver
from emsctl.simulator.faults import Fault, FaultPlan
from emsctl.simulator.model import OFF

SHORT_PROGRAM = """\
name = "ble-short"
title = "Short TENS for the BLE stack tests"
purpose = "tens"
evidence = "Test program."
description = "Fifteen seconds of conventional TENS."
placement = "Lower back, one channel on each side of the spine."
calibration_frequency_hz = 80
calibration_pulse_width_us = 180
soft_start_s = 5
transition_s = 5
end_ramp_s = 3

[[channels]]
id = 1
site = "lower-back-left"
electrode_area_cm2 = 16
max_amplitude_ma = 40

[[channels]]
id = 2
site = "lower-back-right"
electrode_area_cm2 = 16
max_amplitude_ma = 40

[[phases]]
name = "1"
duration_s = 15
frequency_hz = 80
pulse_width_us = 180
amplitude = "MT-10%"
amplitude_cap = "MT"
"""
COYOTE_URL = "sim+coyote3?ma_per_step=0.2&us_per_intensity=3"
OPENEMS_URL = "sim+openems+ble?ma_at_100=16&frequency_hz=80&pulse_width_us=180"


def prepare(tmp_path: Path, url: str, *faults: Fault) -> Prepared:
    program = tmp_path / "ble-short.toml"
    program.write_text(SHORT_PROGRAM, encoding="utf-8")
    options = OpenOptions(fault_plan=FaultPlan(faults) if faults else None)
    return prepare_run(load_program(str(program)), url, DEFAULTS, options=options, expert=True)


def run(prepared: Prepared, tmp_path: Path) -> tuple[RunOutcome, float]:
    """Run to the end in virtual time; return the outcome and the session's start (NaN if the
    session never started because the connect failed)."""
    started: list[float] = []

    def on_start(session: Session) -> None:
        started.append(VirtualClock().now())

    outcome = execute(prepared, VirtualClock(), journal_dir=tmp_path, on_start=on_start,
                      handle_signals=False)
    return outcome, started[0] if started else math.nan


def over_the_stack_coyote(prepared: Prepared, breakage: GattBreak | None = None
                          ) -> tuple[SimulatedCoyoteDriver, BridgedPeripheral, list[Telemetry]]:
    """The Coyote driver's link replaced by the bleak link through a bumble radio."""
    driver = prepared.driver
    assert isinstance(driver, SimulatedCoyoteDriver)
    peripheral = coyote_peripheral(driver.emulator, breakage=breakage)
    driver.link = BleStack(peripheral).link(name="47L121000")
    events: list[Telemetry] = []
    driver.add_listener(events.append)
    return driver, peripheral, events


def over_the_stack_openems(prepared: Prepared, breakage: GattBreak | None = None
                           ) -> tuple[SimulatedOpenEmsDriver, BridgedPeripheral]:
    """The openEMSstim driver's BLE transport put on the bleak link through a bumble radio."""
    driver = prepared.driver
    assert isinstance(driver, SimulatedOpenEmsDriver)
    peripheral = rn4020_peripheral(driver.front, breakage=breakage)
    driver.link = BleLines(BleStack(peripheral).link(name="openEMSstim01"))
    return driver, peripheral


def check_coyote_session(prepared: Prepared, outcome: RunOutcome, start_s: float,
                         driver: SimulatedCoyoteDriver, peripheral: BridgedPeripheral) -> None:
    """A completed session: delivered within the plan's caps, every frame over ATT, the
    strength handshake answered by notifications, left at zero with the wheel locked."""
    result = outcome.result
    assert result.end_reason == "completed", result.message
    for cplan in prepared.plan.channels:
        peak_ma = driver.recorder.peak_ma(cplan.channel)
        assert 0 < peak_ma <= cplan.cap_ma + 1e-9
        # mid-program the device delivers what the plan asks for, to its step resolution
        planned = float(prepared.plan.setpoints_at(8.0).amplitude_ma[cplan.channel - 1, 0])
        delivered = driver.device.outputs_at(start_s + 8.0)[cplan.channel - 1].amplitude_ma
        assert math.isclose(delivered, driver.capabilities.quantize_ma(planned), abs_tol=0.2)
    kinds = {w.kind for w in peripheral.writes}
    assert kinds == {"command"}  # the Coyote's frames go as write commands
    frames = [w for w in peripheral.writes if w.value[0] == 0xB0]
    assert len(frames) >= 10 * 15  # one B0 every 100 ms
    assert driver.emulator.frames_received == len(frames)
    b1 = [value for _, value in peripheral.notified if value[0] == 0xB1]
    assert b1 and b1[-1][2:] == b"\x00\x00"  # the stop was confirmed by B1 0 0
    assert driver.device.outputs_at(math.inf) == (OFF, OFF)
    assert driver.emulator.strengths_steps == [0, 0]
    assert driver.emulator.limits_steps == [0, 0]  # closed with BF 0/0
    assert not peripheral.is_connected


def check_openems_session(prepared: Prepared, outcome: RunOutcome,
                          driver: SimulatedOpenEmsDriver, peripheral: BridgedPeripheral) -> None:
    """A completed session: commands as write requests, delivered within the caps, and
    everything off at the end (stop idiom, then Connection End on disconnect)."""
    assert outcome.result.end_reason == "completed", outcome.result.message
    assert {w.kind for w in peripheral.writes} == {"request"}
    sent = [w.value for w in peripheral.writes]
    assert any(v.startswith(b"C0I") and v.endswith(b"G") for v in sent)
    assert sent[-1] == b"C9G"  # the shutdown of every channel before the disconnect
    for cplan in prepared.plan.channels:
        peak_ma = driver.recorder.peak_ma(cplan.channel)
        assert 0 < peak_ma <= cplan.cap_ma + 1e-9
    assert [o.amplitude_ma for o in driver.device.outputs_at(1e9)] == [0.0, 0.0]
    assert not driver.emulator.active(0) and not driver.emulator.active(1)
    assert driver.emulator.unsafe_events == []
    assert not peripheral.is_connected


def test_a_short_coyote_session_over_the_ble_stack(tmp_path: Path) -> None:
    prepared = prepare(tmp_path, COYOTE_URL)
    driver, peripheral, _ = over_the_stack_coyote(prepared)
    outcome, start_s = run(prepared, tmp_path)
    check_coyote_session(prepared, outcome, start_s, driver, peripheral)


def test_a_short_openems_session_over_the_ble_stack(tmp_path: Path) -> None:
    prepared = prepare(tmp_path, OPENEMS_URL)
    driver, peripheral = over_the_stack_openems(prepared)
    outcome, _ = run(prepared, tmp_path)
    check_openems_session(prepared, outcome, driver, peripheral)


def test_a_link_dropped_mid_session_ends_it_at_zero_output(tmp_path: Path) -> None:
    prepared = prepare(tmp_path, COYOTE_URL, Fault("disconnect", 8.0))
    driver, peripheral, events = over_the_stack_coyote(prepared)
    outcome, start_s = run(prepared, tmp_path)
    result = outcome.result
    assert (result.end_reason, result.exit_code) == ("fault", 1)
    assert "link" in result.message and "lost" in result.message
    assert [e.kind for e in events].count("link_lost") == 1
    assert result.stim_time_s == pytest.approx(8.0, abs=0.3)
    # output was on before the drop; the device's last frame ran out within 100 ms
    drop_s = start_s + 8.0
    assert any(o.amplitude_ma > 0 for o in driver.device.outputs_at(drop_s - 0.5))
    assert driver.device.outputs_at(drop_s + 0.11) == (OFF, OFF)
    assert driver.device.outputs_at(math.inf) == (OFF, OFF)
    assert not peripheral.is_connected and not driver.emulator.server.connected
    assert peripheral.connections == 1  # nobody reconnected behind the user's back (L14)


def test_an_openems_link_dropped_mid_session_ends_it_at_zero_output(tmp_path: Path) -> None:
    prepared = prepare(tmp_path, OPENEMS_URL, Fault("disconnect", 8.0))
    driver, peripheral = over_the_stack_openems(prepared)
    outcome, start_s = run(prepared, tmp_path)
    result = outcome.result
    assert (result.end_reason, result.exit_code) == ("fault", 1)
    assert "link lost" in result.message
    lost_s = start_s + 8.0
    for channel in (1, 2):
        iv = driver.device.intervals(channel)
        on = iv[iv["amplitude_ma"] > 0]
        assert len(on) and on["t1_s"].max() <= lost_s + 1.0 + 0.02  # within the on-time
    # the run ends before the board's timers fire; its record still ends at zero
    assert [o.amplitude_ma for o in driver.device.outputs_at(lost_s + 1.1)] == [0.0, 0.0]
    assert not peripheral.is_connected and peripheral.connections == 1


# ---------------------------------------------------------------------- the breaking switch


def test_a_coyote_without_notify_property_fails_the_connect_with_a_clear_error(
        tmp_path: Path) -> None:
    prepared = prepare(tmp_path, COYOTE_URL)
    driver, peripheral, _ = over_the_stack_coyote(prepared, GattBreak.NO_NOTIFY)
    outcome, _ = run(prepared, tmp_path)
    assert outcome.result.end_reason == "fault"
    assert "subscribing to 0000150b" in outcome.result.message
    assert "neither notifications nor indications" in outcome.result.message
    assert driver.recorder.peak_ma(1) == 0.0 and driver.recorder.peak_ma(2) == 0.0
    with pytest.raises(AssertionError, match="completed"):
        check_coyote_session(prepared, outcome, 0.0, driver, peripheral)


def test_a_coyote_that_never_notifies_fails_the_session(tmp_path: Path) -> None:
    prepared = prepare(tmp_path, COYOTE_URL)
    driver, peripheral, _ = over_the_stack_coyote(prepared, GattBreak.SILENT)
    outcome, start_s = run(prepared, tmp_path)
    assert outcome.result.end_reason == "fault", outcome.result.message
    assert peripheral.notified == []
    assert driver.device.outputs_at(math.inf) == (OFF, OFF)
    with pytest.raises(AssertionError):
        check_coyote_session(prepared, outcome, start_s, driver, peripheral)


def test_an_rn4020_that_refuses_writes_fails_the_session(tmp_path: Path) -> None:
    prepared = prepare(tmp_path, OPENEMS_URL)
    driver, peripheral = over_the_stack_openems(prepared, GattBreak.NO_WRITE)
    outcome, _ = run(prepared, tmp_path)
    assert outcome.result.end_reason == "fault"
    assert "Write Not Permitted" in outcome.result.message
    assert driver.recorder.peak_ma(1) == 0.0 and driver.recorder.peak_ma(2) == 0.0
    with pytest.raises(AssertionError):
        check_openems_session(prepared, outcome, driver, peripheral)
