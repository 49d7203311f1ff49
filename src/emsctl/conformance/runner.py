"""Running the conformance steps on a device: the step runner and the check as a whole.

:func:`run_steps` runs :data:`~.steps.STEPS` in order on one device (the handshake first; if
it fails nothing else runs), each bounded by :data:`~.run.STEP_TIMEOUT_S`, each ending with the
device stopped, and turns each outcome into a :class:`~.results.StepResult`; :func:`run_check`
does it on a loop of its own, in virtual time on a simulated device.

Reads time only from the running loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..devices import OpenOptions, open_device
from ..errors import EmsError, InputError
from .families import family_entry_for, load_family
from .results import Outcome, Report, Status, StepNotPossible, StepResult
from .run import STEP_TIMEOUT_S, CheckOptions, CheckRun
from .steps import STEPS, StepSpec

__all__ = ["FAULT_REPORTS", "run_check", "run_steps"]


#: Telemetry that means the device or the link failed.
FAULT_REPORTS = frozenset({"device_error", "device_reset", "link_lost"})


async def _run_step(run: CheckRun, spec: StepSpec) -> StepResult:
    mark, t0 = run.log.mark(), run.now()
    run.output_used = False
    reports_before = len(run.telemetry)
    try:
        outcome = await asyncio.wait_for(spec.run(run), STEP_TIMEOUT_S)
    except StepNotPossible as exc:
        outcome = Outcome.impossible(exc.reason)
    except EmsError as exc:  # first: a DeviceTimeoutError is a TimeoutError too
        run.broken = True
        outcome = Outcome(problems=[str(exc)])
    except TimeoutError:
        run.broken = True
        outcome = Outcome(problems=[f"the step did not finish within {STEP_TIMEOUT_S:g} s"])
    if run.tap is not None:
        run.tap.reset()  # nothing the step withheld outlives it
    if run.driver is not None and not run.broken:
        try:  # every step leaves the device stopped; the next one re-arms from zero
            await asyncio.wait_for(run.driver.stop(), STEP_TIMEOUT_S)
        except (EmsError, TimeoutError):
            run.broken = True
    provoked = spec.provokes | run.family.provoked.get(spec.id, frozenset())
    faults = [t for _s, t in run.telemetry[reports_before:]
              if t.kind in FAULT_REPORTS and t.kind not in provoked]
    said = " ".join(outcome.problems)
    faults = [t for t in faults if not t.message or t.message not in said]  # not twice
    if faults and outcome.not_possible is None:
        outcome.problems += [f"the driver reported {t.kind}: {t.message}" for t in faults[:3]]
    cites = run.family.cite(spec.id) + spec.generic_cites
    if outcome.not_possible is not None:
        status: Status = "not_possible"
        detail = outcome.not_possible
    elif outcome.problems:
        status, detail = "failed", "; ".join(outcome.problems)
    else:
        status, detail = "passed", "; ".join(outcome.notes)
    if outcome.notes and status == "failed":
        detail += " (" + "; ".join(outcome.notes) + ")"
    return StepResult(spec.id, spec.title, status, detail, cites, outcome.measurements,
                      outcome.facts, run.output_used, run.log.events[mark:], t0)


async def run_steps(url: str, options: CheckOptions | None = None) -> Report:
    """Run the conformance steps on the device at ``url`` (in the running loop).

    Raises:
        InputError: a bad URL, an unknown family, an unknown step id.
    """
    options = options or CheckOptions()
    _name, entry = family_entry_for(url)
    family = load_family(entry)
    known = {s.id for s in STEPS}
    wanted = set(options.steps) if options.steps is not None else known
    if wanted - known:
        raise InputError(f"unknown step(s) {', '.join(sorted(wanted - known))}; known: "
                         f"{', '.join(s.id for s in STEPS)}")
    run = CheckRun(url, family, options)
    probe = run.probe
    results: list[StepResult] = []
    try:
        for spec in STEPS:
            if spec.id != "handshake" and spec.id not in wanted:
                continue
            if results and results[0].status == "failed":
                results.append(StepResult(spec.id, spec.title, "not_run",
                                          "not run: the handshake failed",
                                          family.cite(spec.id) + spec.generic_cites))
                continue
            results.append(await _run_step(run, spec))
    finally:
        await run.close_all()
    identity = next((s.facts for s in results if s.id == "identity"), {})
    return Report(url=url, family=family.name, document=family.document,
                  model=probe.capabilities.model, simulated=probe.simulated,
                  load=_LOAD_TEXT[options.load], person=options.person,
                  output=run.output_text, identity=identity, steps=results,
                  describe=family.describe)


_LOAD_TEXT = {"resistor": "a test resistor across the outputs (500 Ω–1 kΩ)",
              "open": "electrodes on nothing (open outputs)"}


def run_check(url: str, options: CheckOptions | None = None, *, clock: Any = None) -> Report:
    """Run :func:`run_steps` on a new loop: ``clock`` (an :class:`emsctl.clock.Clock`), or
    virtual time for a simulated device and real time for hardware.

    Raises:
        InputError: see :func:`run_steps`.
    """
    if clock is None:
        from ..clock import RealClock, VirtualClock  # noqa: PLC0415

        simulated = open_device(url, OpenOptions(fault_plan=(options or CheckOptions()).fault_plan)
                                ).simulated
        clock = VirtualClock(None) if simulated else RealClock()
    result: Report = clock.run(run_steps(url, options))
    return result
