"""Every built-in program on every emulated device: pinned, documented, and run.

* The outcome of each pair (fits / adapted, each adaptation / refused, each one-line report) is
  pinned in ``expected.json``; the documents' generated tables agree with the code.
* Every pair that fits runs end to end in virtual time through the runner: it completes, ends at
  zero, and the delivered output follows the fitted plan — never above it, at most one device
  step (plus the plan's change over one update period) below its peak, at the fitted widths.
  The README's jobs run in the default suite; the rest of the pairs behind ``-m slow``.
* Hypothesis: for any program the model accepts and any device, the fit either refuses or
  changes only pulse widths (to within the device's range, and only in phases whose currents
  follow the person's thresholds), and the fitted program then verifies for any person whose
  thresholds the device can deliver.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from fit.matrix import DOCUMENTS, EMULATIONS, EXPECTED, outcomes, rendered
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_verify import programs
from virtual_run import run

from emsctl.amplitude import Thresholds
from emsctl.devices import open_device
from emsctl.drivers.openems.driver import OpenEmsDriver
from emsctl.fit import check_on_device, fit_program
from emsctl.limits import DEFAULTS
from emsctl.loader import builtin_names, load_program, parse_program_text
from emsctl.plan import compile_plan
from emsctl.profile import TOL_CAP_FACTOR
from emsctl.program import AmplitudeRamp, Ramp, Sweep
from emsctl.runner import prepare_run
from emsctl.verify import certify

PAIRS = [(p, d) for p in builtin_names() for d in EMULATIONS]
PINNED: dict[str, dict[str, object]] = json.loads(EXPECTED.read_text(encoding="utf-8"))
#: The jobs the README shows, run in the default suite; every other fitting pair is slow.
README_JOBS = {("relaxation", "sim+coyote3"), ("circulation", "sim+coyote3"),
               ("recovery", "sim+coyote3"), ("massage", "sim+coyote3"),
               ("relaxation", "sim+sciencemode2"), ("relaxation", "sim+sciencemode4"),
               ("tens", "sim+openems"), ("tens-modulated", "sim+openems+ble")}


def test_every_pair_s_outcome_is_pinned() -> None:
    assert outcomes() == PINNED


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.name)
def test_the_documents_tables_are_what_the_code_says(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert "<!-- generated: fit matrix -->" in text and "<!-- generated: device table -->" in text
    assert rendered(text) == text, f"run: python tests/fit/matrix.py ({path.name} is stale)"


def test_the_refusals_are_one_short_line_each_and_the_adaptations_name_phase_and_width() -> None:
    for pair, data in PINNED.items():
        lines = data["lines"]
        assert isinstance(lines, list)
        if data["outcome"] == "refused":
            assert lines and all(len(line) <= 200 and "\n" not in line for line in lines), pair
            assert all(" is outside what " in line or "cannot time bursts" in line
                       for line in lines), pair
        if data["outcome"] == "adapted":
            assert all("pulse width" in line and "µs →" in line for line in lines), pair


def _fitting_pairs(slow: bool) -> list[object]:
    out: list[object] = []
    for program, device in PAIRS:
        if PINNED[f"{program} on {device}"]["outcome"] == "refused" or device == "sim":
            continue  # the plain simulator's runs: tests/session/test_delivered_matches_plan.py
        if ((program, device) in README_JOBS) != slow:
            marks = [pytest.mark.slow] if slow else []
            out.append(pytest.param(program, device, marks=marks, id=f"{program}-{device}"))
    return out


def _runs_and_follows_the_fitted_plan(program: str, device: str, tmp_path: Path) -> None:
    prepared = prepare_run(load_program(program), device, DEFAULTS, expert=True)
    outcome, t0_s = run(prepared, tmp_path)
    assert outcome.result.end_reason == "completed", outcome.result.message
    driver = prepared.driver
    caps = driver.capabilities
    recorder = driver.recorder
    plan = prepared.plan
    for cplan in plan.channels:
        got = recorder.pulses(cplan.channel)
        assert got.size, f"{program} on {device}: channel {cplan.channel} delivered nothing"
        t_s = got["t_s"] - t0_s
        planned = plan.setpoints_at(t_s)
        row = [c.channel for c in plan.channels].index(cplan.channel)
        # never above the fitted plan as it was at most two update periods earlier: a device
        # holds a setpoint until the next one lands, and the openEMSstim's lines go out 50 ms
        # apart, channel after channel (so on a ramp down it may trail the plan by one more)
        ceiling = planned.amplitude_ma[row]
        for periods in (1, 2):
            earlier = plan.setpoints_at(np.maximum(t_s - periods * caps.update_period_s, 0.0))
            ceiling = np.maximum(ceiling, earlier.amplitude_ma[row])
        assert (got["amplitude_ma"] <= ceiling + 1e-6).all(), (program, device)
        # the peak within the device's rounding of the plan's: one step; the openEMSstim
        # rounds twice, to its average step and then down to an intensity whose predicted
        # current is not above it (the gaps between intensities are uneven)
        seg = cplan.segments
        plan_peak = float(np.maximum(seg["amp0_ma"], seg["amp1_ma"]).max())
        rounding_ma = caps.amplitude_step_ma
        if isinstance(driver, OpenEmsDriver):
            currents = [driver.declared.ma_at(i) for i in range(101)]
            rounding_ma += max(b - a for a, b in itertools.pairwise(currents))
        assert got["amplitude_ma"].max() >= plan_peak - rounding_ma - 1e-6
        # at the fitted widths, which the device can make
        widths = {float(w) for w in np.concatenate([seg["pw0_us"], seg["pw1_us"]])}
        assert got["pulse_width_us"].max() <= max(widths) + 1.0
        assert caps.pulse_width_min_us - 1e-6 <= got["pulse_width_us"].min()
        assert got["pulse_width_us"].max() <= caps.pulse_width_max_us + 1e-6
    # the emulated device's own record: every output at 0 mA, set and delivered
    final = driver.device.outputs_at(float("inf"))  # type: ignore[attr-defined]
    assert final and all(o.amplitude_ma == 0 and o.delivered_ma == 0 for o in final)


@pytest.mark.parametrize(("program", "device"), _fitting_pairs(slow=False))
def test_the_readme_jobs_run_and_follow_the_fitted_plan(program: str, device: str,
                                                        tmp_path: Path) -> None:
    _runs_and_follows_the_fitted_plan(program, device, tmp_path)


@pytest.mark.parametrize(("program", "device"), _fitting_pairs(slow=True))
def test_every_other_fitting_pair_runs_and_follows_the_fitted_plan(program: str, device: str,
                                                                   tmp_path: Path) -> None:
    _runs_and_follows_the_fitted_plan(program, device, tmp_path)


# --------------------------------------------------------------------------- any program


CAPABILITIES = {d: open_device(d).capabilities for d in EMULATIONS}


@st.composite
def person(draw: st.DrawFn, most_ma: float) -> Thresholds:
    """Thresholds the device can deliver (TOL within its maximum)."""
    tol = draw(st.floats(min_value=2.0, max_value=most_ma))
    mt = draw(st.floats(min_value=1.0, max_value=tol))
    st_ma = draw(st.floats(min_value=0.5, max_value=mt))
    return Thresholds(st_ma=st_ma, mt_ma=mt, tol_ma=tol)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(), st.sampled_from(EMULATIONS), st.data())
def test_any_program_is_refused_or_fitted_to_a_plan_that_verifies_on_the_device(
        text: str, device: str, data: st.DataObject) -> None:
    program = parse_program_text(text)
    caps = CAPABILITIES[device]
    fit = fit_program(program, caps)
    # only pulse widths change, only where currents are relative, and into the device's range
    assert fit.program.model_copy(update={
        "phases": program.phases,
        "calibration_pulse_width_us": program.calibration_pulse_width_us}) == program
    for before, after in zip(program.phases, fit.program.phases, strict=True):
        if before == after:
            continue
        assert before.model_copy(update={"pulse_width_us": after.pulse_width_us}) == after
        amplitude = before.amplitude
        levels = ((amplitude.start, amplitude.end) if isinstance(amplitude, AmplitudeRamp)
                  else () if amplitude is None else (amplitude,))
        assert not any(a.is_absolute and a.factor > 0 for a in levels), "a width set in mA"
        width = after.pulse_width_us
        ends = ((width.start, width.end) if isinstance(width, Ramp) else
                (width.low, width.high) if isinstance(width, Sweep) else (width,))
        assert all(w is not None and caps.pulse_width_min_us - 1e-9 <= w
                   <= caps.pulse_width_max_us + 1e-9 for w in ends)
    checked = check_on_device(program, DEFAULTS, caps)
    if checked.blocks:
        return  # refused, with its reasons: fine
    # it fits: for any person the device can serve, the person's plan verifies on the device
    most_ma = min(caps.amplitude_max_ma, 40.0)
    who = data.draw(person(most_ma))
    thresholds = {c.id: who for c in fit.program.channels}
    caps_ma = {c.id: TOL_CAP_FACTOR * who.tol_ma for c in fit.program.channels}
    plan = compile_plan(fit.program, thresholds, profile_caps_ma=caps_ma)
    certify(plan, DEFAULTS, caps)  # raises ValidationFailed if it does not verify
