"""Every built-in program, run end to end on the simulator in virtual time, delivers its plan.

The reference is an independent compile of the program with the simulator's synthetic person
(``SYNTHETIC_THRESHOLDS``) and the runner's caps (0.9 × TOL, L3), expanded to pulses with
``Plan.expand_pulses``. What the device delivered is the simulator's recorder. Per channel and
per stimulation phase:

* **peak amplitude** within one device amplitude step (0.1 mA);
* **pulse count** within an explained edge tolerance (below);
* **charge (µC per phase, summed over the phase's pulses)** within a bound built from the same
  causes;

and at the end every output is zero, through an explicit stop (no watchdog still pending).

Why counts may differ a little, and by how much (``count_tolerance``): the session samples the
plan once per update period P (0.1 s) and the device holds each sample (rounded *down* to the
0.1 mA step) until the next one. So (1) a run of output that starts from 0 mA starts on the
device at the first tick whose sample is at least one step: plan pulses before it are missing;
(2) at the end of a run the device holds the last non-zero sample for up to one period: a few
pulses the plan no longer has; (3) the device's pulse generator restarts its phase at every run
start while the plan's pulse phase runs on, so each run may gain or lose one pulse. Hence the
tolerance: every plan pulse within one period of a point where the plan is below one step
("edge pulses"), plus two per run of output in the phase. The charge bound adds, per pulse, the
rounding (≤ one step) and the hold error (|slope| × P) times the pulse width, plus the charge of
the edge pulses and of two full pulses per run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from session_helpers import all_zero, prepared, run_virtual

from emsctl.loader import builtin_names, load_program
from emsctl.plan import Plan, compile_plan
from emsctl.runner import SYNTHETIC_THRESHOLDS, TOL_CAP_FACTOR

BUILTINS = builtin_names()
STEP_MA = 0.1  # the simulator's amplitude step
EPS = 1e-6


def reference_plan(name: str) -> Plan:
    program = load_program(name).program
    thresholds = {c.id: SYNTHETIC_THRESHOLDS for c in program.channels}
    caps = {c.id: TOL_CAP_FACTOR * SYNTHETIC_THRESHOLDS.tol_ma for c in program.channels}
    return compile_plan(program, thresholds, profile_caps_ma=caps)


def edge_mask(plan: Plan, channel: int, times_s: np.ndarray, period_s: float) -> np.ndarray:
    """Plan pulses within one update period of a point where the plan is below one step."""
    row = [c.channel for c in plan.channels].index(channel)
    near = np.zeros(times_s.size, dtype=bool)
    for shift in np.linspace(-period_s, period_s, 9):
        near |= plan.setpoints_at(times_s + shift).amplitude_ma[row] < STEP_MA + EPS
    return near


def runs_in(plan: Plan, channel: int, start_s: float, end_s: float) -> int:
    """Runs of output that start from zero inside [start_s, end_s)."""
    seg = plan.channel(channel).segments
    rising = (seg["amp0_ma"] <= 0) & (seg["amp1_ma"] > 0)
    return int(((seg["t0_s"] >= start_s) & (seg["t0_s"] < end_s) & rising).sum())


def slope_at(plan: Plan, channel: int, times_s: np.ndarray) -> np.ndarray:
    seg = plan.channel(channel).segments
    i = np.clip(np.searchsorted(seg["t0_s"], times_s, side="right") - 1, 0, len(seg) - 1)
    span = seg["t1_s"][i] - seg["t0_s"][i]
    return np.abs(seg["amp1_ma"][i] - seg["amp0_ma"][i]) / np.where(span > 0, span, 1.0)


@pytest.mark.parametrize("name", BUILTINS)
def test_delivered_output_equals_the_plan_and_ends_at_zero(name: str, tmp_path: Path) -> None:
    prep = prepared(name)
    run = run_virtual(prep, tmp_path)
    assert run.outcome.result.end_reason == "completed", run.outcome.result.message
    assert run.outcome.result.exit_code == 0
    driver = prep.driver
    device, recorder = driver.device, driver.recorder  # type: ignore[attr-defined]
    period_s = driver.capabilities.update_period_s
    assert driver.capabilities.amplitude_step_ma == STEP_MA
    t0_s = run.session._start_s  # plan time 0 on the loop's clock

    plan = reference_plan(name)
    assert plan.duration_s == prep.plan.duration_s
    planned = plan.expand_pulses()
    checked_phases = 0
    for cplan in plan.channels:
        ch = cplan.channel
        mine = planned[planned["channel"] == ch]
        got = recorder.pulses(ch)
        got_t = got["t_s"] - t0_s
        assert got_t.size and got_t.min() >= 0 and got_t.max() < plan.duration_s + period_s
        for span in plan.phases:
            if span.kind != "stim":
                in_phase = (got_t >= span.start_s + period_s) & (got_t < span.end_s)
                assert not in_phase.any(), f"{name} ch{ch}: output during guide '{span.name}'"
                continue
            checked_phases += 1
            p = mine[(mine["t_s"] >= span.start_s) & (mine["t_s"] < span.end_s)]
            d = got[(got_t >= span.start_s) & (got_t < span.end_s)]
            where = f"{name} ch{ch} phase '{span.name}'"
            # peak amplitude within one device step
            plan_peak, got_peak = float(p["amplitude_ma"].max()), float(d["amplitude_ma"].max())
            assert abs(got_peak - plan_peak) <= STEP_MA + EPS, (where, plan_peak, got_peak)
            # pulse count within the edge tolerance
            edge = edge_mask(plan, ch, p["t_s"], period_s)
            runs = runs_in(plan, ch, span.start_s, span.end_s)
            count_tolerance = int(edge.sum()) + 2 * runs + 2
            assert abs(d.size - p.size) <= count_tolerance, (where, p.size, d.size,
                                                             count_tolerance)
            # µC per phase: sum of I·PW over the phase's pulses
            q_plan = float((p["amplitude_ma"] * p["pulse_width_us"]).sum()) / 1000
            q_got = float((d["amplitude_ma"] * d["pulse_width_us"]).sum()) / 1000
            per_pulse_ma = STEP_MA + slope_at(plan, ch, p["t_s"]) * period_s
            q_max = float((p["amplitude_ma"] * p["pulse_width_us"]).max()) / 1000
            bound = (float((per_pulse_ma * p["pulse_width_us"]).sum()) / 1000
                     + float((p["amplitude_ma"][edge] * p["pulse_width_us"][edge]).sum()) / 1000
                     + (2 * runs + 2) * q_max)
            assert abs(q_got - q_plan) <= bound, (where, q_plan, q_got, bound)
            # and the bound is a real constraint, not a blanket: well under the phase's charge
            assert bound < 0.1 * q_plan, (where, bound, q_plan)
    assert checked_phases >= 2
    # the final output is zero, by an explicit stop (no lease left for a watchdog to end)
    assert all_zero(run.outputs_at_stop)
    assert all_zero(device.outputs_at(float("inf")))
    assert all(device.lease_deadline_s(c) is None for c in device.channels)


def test_cramp_training_needs_the_expert_flag() -> None:
    from emsctl.errors import InputError
    from emsctl.limits import DEFAULTS
    from emsctl.runner import prepare_run

    with pytest.raises(InputError, match="expert"):
        prepare_run(load_program("cramp-training"), "sim", DEFAULTS)
