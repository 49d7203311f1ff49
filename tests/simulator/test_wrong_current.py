"""``wrong_current``: a device that acknowledges a setting but applies a different current.

The fault lives in the device model, so every emulation delivers the wrong current; those whose
protocol reports the strength (the ``sim`` driver's strength events, the Coyote's B1) report
what is applied, and the session must end as a fault with the output at zero — higher *or lower*
than asked: the knob check of the drivers only caught increases.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

from emsctl.clock import VirtualClock
from emsctl.contract import ChannelSetpoint
from emsctl.devices import OpenOptions
from emsctl.errors import InputError
from emsctl.limits import DEFAULTS
from emsctl.loader import load_program
from emsctl.runner import RunOutcome, execute, prepare_run
from emsctl.simulator.faults import Fault, FaultPlan
from emsctl.simulator.model import DeviceEvent, SimulatedStimulator

PROGRAM = Path(__file__).resolve().parents[1] / "faults" / "fault-matrix.toml"
AT_S = 30.0
URLS = {"sim": ("sim", 1.0),  # url, the device's own bound on output without the host
        "coyote3": ("sim+coyote3?ma_per_step=0.2&us_per_intensity=3", 0.1)}


def test_the_fault_needs_a_positive_factor_and_may_end() -> None:
    with pytest.raises(InputError, match="wrong_current: needs a value"):
        Fault("wrong_current", 1.0)
    for bad in (0.0, 10.5):
        with pytest.raises(InputError, match="factor applied to the set current"):
            Fault("wrong_current", 1.0, value=bad)
    plan = FaultPlan.from_toml('[[faults]]\nkind = "wrong_current"\nat_s = 2.0\nchannel = 1\n'
                               'duration_s = 3.0\nvalue = 0.5\n')
    assert plan.faults == (Fault("wrong_current", 2.0, channel=1, duration_s=3.0, value=0.5),)


def test_the_model_applies_the_factor_acks_the_setting_and_reports_the_strength() -> None:
    async def scenario() -> tuple[list[DeviceEvent], list[float], bool]:
        device = SimulatedStimulator()
        events: list[DeviceEvent] = []
        device.add_listener(events.append)
        on = ChannelSetpoint(10.0, 40.0, 180.0)
        device.set_outputs({1: on, 2: on}, 0.5)
        device.set_current_error(1.5, channel=1)  # the steady output changes at once
        applied = [device.output_now()[0].amplitude_ma, device.output_now()[1].amplitude_ma]
        accepted = device.set_outputs({1: ChannelSetpoint(8.0, 40.0, 180.0)}, 0.5)
        applied.append(device.output_now()[0].amplitude_ma)
        device.set_current_error(None, channel=1)  # repaired: the setting applies again
        applied.append(device.output_now()[0].amplitude_ma)
        return events, applied, accepted

    events, applied, accepted = asyncio.run(scenario())
    assert accepted  # acknowledged like any good setting
    assert applied == [15.0, 10.0, 12.0, 8.0]
    assert [(e.kind, e.channel, e.value) for e in events] == [
        ("strength", 1, 15.0), ("strength", 1, 12.0), ("strength", 1, 8.0)]


def _run(family: str, factor: float, tmp_path: Path) -> tuple[RunOutcome, object, float]:
    url, _ = URLS[family]
    plan = FaultPlan([Fault("wrong_current", AT_S, channel=1, value=factor)])
    prepared = prepare_run(load_program(str(PROGRAM)), url, DEFAULTS,
                           options=OpenOptions(fault_plan=plan))
    marks: dict[str, float] = {}

    def on_start(_session: object) -> None:
        marks["start"] = asyncio.get_running_loop().time()

    outcome = execute(prepared, VirtualClock(None), journal_dir=tmp_path, on_start=on_start,
                      handle_signals=False)
    return outcome, prepared.driver, marks["start"]


@pytest.mark.parametrize("family", list(URLS))
@pytest.mark.parametrize(("factor", "where"), [(1.5, "above"), (0.5, "below")])
def test_a_session_on_a_device_applying_another_current_ends_as_a_fault_at_zero(
        family: str, factor: float, where: str, tmp_path: Path) -> None:
    outcome, driver, start_s = _run(family, factor, tmp_path)
    result = outcome.result
    assert (result.end_reason, result.exit_code) == ("fault", 1), result.message
    assert f"on channel 1, {where} the" in result.message and "\n" not in result.message
    assert AT_S - 0.5 <= result.stim_time_s <= AT_S + 0.5
    device = driver.device  # type: ignore[attr-defined]
    recorder = driver.recorder  # type: ignore[attr-defined]
    assert recorder.summary()[1]["peak_ma"] > 0  # it did stimulate before the fault
    # zero within the device's own bound after the fault (armed at connect, before the start),
    # and left at zero
    latest_fault_s = start_s + AT_S
    bound_s = URLS[family][1] + 0.02
    for channel in (1, 2):
        zero_s = recorder.zero_after_s(channel, latest_fault_s)
        assert zero_s is not None and zero_s <= latest_fault_s + bound_s
        on = device.intervals(channel)
        on = on[on["amplitude_ma"] > 0]
        assert float(on["t1_s"].max()) <= latest_fault_s + bound_s
    assert all(o.amplitude_ma == 0 for o in device.outputs_at(math.inf))
