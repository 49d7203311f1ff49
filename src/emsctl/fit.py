"""Fitting a program to a device: the one place where a program is changed so that a device can
deliver it, and every change is named.

A device may be unable to make a program's pulse width: the DG-LAB Coyote V3 makes 1–100 µs, an
openEMSstim passes on the one width of the external stimulator behind it. Where a phase's
amplitudes are relative to the person's calibrated thresholds (``MT+10%``, ``0.6*TOL``), the
width can be fitted: the phase runs at the nearest width the device can make, and the person
calibrates at the fitted width (the program's calibration width is fitted with it), so the dose
is still the person's own — their MT at 100 µs is a higher current than at 250 µs, and the
calibration measures it. A phase whose current is set in mA is never fitted: the same mA at
another width is another charge per pulse, another dose, and nothing measured says what it does
to this person.

Nothing else is ever changed. Frequency, channel count, bursts and waveform are the program's
design: a phase outside the device's range is refused by :func:`emsctl.verify.verify`, naming
the phase, its start, the value and the device's range. Rounding an amplitude down to the
device's step is rounding, not an adaptation (see :func:`amplitude_rounding`).

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from .amplitude import AmplitudeExpr
from .contract import Capabilities
from .limits import Limits
from .plan import Plan, compile_plan
from .program import AmplitudeRamp, Phase, Program, Ramp, Sweep
from .reports import Report, limit_reports, minutes
from .source_lines import SourceMap
from .verify import verify
from .violation import Violation

__all__ = ["Adaptation", "Checked", "Fit", "amplitude_rounding", "check_on_device",
           "fit_program", "fit_verdict", "frequency_rounding"]

#: Widths within this of a range's edge are inside it (the verifier's tolerance).
_EPS = 1e-9


@dataclass(frozen=True)
class Adaptation:
    """One change the fit made: where, what it was, what it is now, and why."""

    #: The phase's name, or None for the program's calibration setting.
    phase: str | None
    #: The phase's start in program time (None for the calibration setting).
    start_s: float | None
    #: The phase's index in the program (None for the calibration setting).
    phase_index: int | None
    setting: str
    was: str
    now: str
    reason: str

    def __str__(self) -> str:
        what = f"{self.setting} {self.was} → {self.now}, {self.reason}"
        if self.phase is None:
            return what
        return f"phase '{self.phase}' (starts {minutes(self.start_s or 0.0)}): {what}"


@dataclass(frozen=True)
class Fit:
    """A program fitted to one device's capabilities."""

    #: The program as written.
    original: Program
    #: The program the device will run: ``original`` when nothing had to change.
    program: Program
    adaptations: tuple[Adaptation, ...] = ()
    #: Phase index → why its width, outside the device's range, was not fitted.
    unfitted: Mapping[int, str] = field(default_factory=dict)

    @property
    def why(self) -> str:
        """One sentence on why the adaptations keep the dose the person's own ('' when none)."""
        if not self.adaptations:
            return ""
        width = self.program.calibration_pulse_width_us
        return (f"Your thresholds are measured at {width:g} µs, the width the device uses, so "
                "the current still follows your own calibration.")

    @property
    def adapted(self) -> bool:
        """True when the device runs something other than the program as written."""
        return bool(self.adaptations)

    def reports(self, text: str = "") -> list[Report]:
        """Each adaptation as a notice, at the line of the setting it changed in ``text``."""
        source = SourceMap(text) if text else None
        out = []
        for a in self.adaptations:
            path: tuple[str | int, ...] = (("phases", a.phase_index, "pulse_width_us")
                                           if a.phase_index is not None
                                           else ("calibration_pulse_width_us",))
            found = source.exact(path) if source is not None else None
            out.append(Report("notice", "Fitted to the device",
                              f"{a.setting} {a.was} → {a.now}, {a.reason}",
                              limit="device", setting="pulse_width_us", phase=a.phase,
                              phase_start_s=a.start_s,
                              line=found[0] if found else None, col=found[1] if found else None))
        return out

    def explain(self, violations: Iterable[Violation]) -> list[Violation]:
        """``violations`` with the reason a width was not fitted added to the device's width
        report of that phase, so that a person reads why in the same sentence."""
        out = []
        for v in violations:
            reason = (self.unfitted.get(v.phase.index) if v.phase is not None
                      and v.limit_id == "device" and (v.setting or "").startswith("pulse_width")
                      else None)
            out.append(v if reason is None else replace(v, message=f"{v.message}; {reason}"))
        return out


def fit_program(program: Program, capabilities: Capabilities) -> Fit:
    """Fit ``program``'s pulse widths to what ``capabilities`` can make (see the module's
    docstring for the rule).

    Returns:
        The fit: the program to run, each adaptation made, and each phase whose width could
        not be fitted (left as written, for verification to refuse).
    """
    low, high = capabilities.pulse_width_min_us, capabilities.pulse_width_max_us
    model = capabilities.model.split(" (")[0]
    phases: list[Phase] = []
    adaptations: list[Adaptation] = []
    unfitted: dict[int, str] = {}
    start_s = 0.0
    for index, written in enumerate(program.phases):
        phase, width = written, written.pulse_width_us
        if phase.kind == "stim" and width is not None and not _within(width, low, high):
            if _absolute(phase):
                unfitted[index] = (
                    "its current is set in mA, and the same mA at another width is another "
                    "dose, so emsctl does not change it (set the current relative to your "
                    "calibration, such as 'MT+10%', and the width can be fitted)")
            else:
                fitted = _clamped(width, low, high)
                edge = "widest" if max(_ends(width)) > high else "narrowest"
                adaptations.append(Adaptation(
                    phase.name, start_s, index, "pulse width", _width_text(width),
                    _width_text(fitted),
                    f"the {edge} the {model} can make"))
                phase = phase.model_copy(update={"pulse_width_us": fitted})
        phases.append(phase)
        start_s += phase.duration_s
    update: dict[str, object] = {"phases": phases}
    calibration_us = program.calibration_pulse_width_us
    if adaptations and not low - _EPS <= calibration_us <= high + _EPS:
        fitted_us = min(max(calibration_us, low), high)
        update["calibration_pulse_width_us"] = fitted_us
        adaptations.append(Adaptation(
            None, None, None, "calibration pulse width", f"{calibration_us:g} µs",
            f"{fitted_us:g} µs",
            "so that your thresholds are measured at the width the phases now use"))
    fitted_program = program.model_copy(update=update) if adaptations else program
    return Fit(program, fitted_program, tuple(adaptations), unfitted)


@dataclass(frozen=True)
class Checked:
    """A program fitted, compiled (at its caps: the worst case) and verified for a device."""

    fit: Fit
    plan: Plan
    violations: tuple[Violation, ...]

    @property
    def blocks(self) -> tuple[Violation, ...]:
        """The violations that refuse the program on this device."""
        return tuple(v for v in self.violations if v.severity == "block")


def check_on_device(program: Program, limits: Limits, capabilities: Capabilities) -> Checked:
    """Fit ``program`` to ``capabilities``, compile the fitted program at its caps and verify
    it against ``limits`` and the device: what ``validate``, ``show`` and ``programs`` report
    with ``--device``."""
    fit = fit_program(program, capabilities)
    # the worst case: every relative amplitude at the channel's cap, or at the most the device
    # can deliver when that is less (a person's own thresholds decide at run time)
    plan = compile_plan(fit.program, profile_caps_ma={
        c.id: capabilities.amplitude_max_ma for c in fit.program.channels})
    return Checked(fit, plan, tuple(fit.explain(verify(plan, limits, capabilities))))


def fit_verdict(program: Program, limits: Limits, capabilities: Capabilities
                ) -> tuple[str, str]:
    """Whether ``program`` fits the device, in a word and one sentence.

    Returns:
        ``("fits", "")``, ``("adapted", what changed)`` or ``("refused", the first problem,
        and how many more)``.
    """
    checked = check_on_device(program, limits, capabilities)
    if checked.blocks:
        reports = limit_reports(checked.blocks, program=checked.fit.program, plan=checked.plan)
        more = len(reports) - 1
        return "refused", reports[0].detail + (f" (and {more} more problem{'s' * (more > 1)})"
                                               if more else "")
    if not checked.fit.adapted:
        return "fits", ""
    changes = sorted({f"{a.was} → {a.now}" for a in checked.fit.adaptations
                      if a.phase is not None})
    return "adapted", f"pulse width {', '.join(changes)}"


def frequency_rounding(plan: Plan, delivered_hz: Callable[[float], float]
                       ) -> tuple[float, float, float]:
    """The largest relative difference between a rate the plan asks for and the rate the
    device makes (``delivered_hz``, a driver's ``delivered_frequency_hz``), at the ends and the
    middle of every segment with output: ``(fraction, planned Hz, delivered Hz)``."""
    worst = (0.0, 0.0, 0.0)
    for cplan in plan.channels:
        seg = cplan.segments
        live = np.maximum(seg["amp0_ma"], seg["amp1_ma"]) > 0
        rates = np.concatenate([seg["freq0_hz"][live], seg["freq1_hz"][live],
                                (seg["freq0_hz"][live] + seg["freq1_hz"][live]) / 2])
        for planned in np.unique(rates):
            made = delivered_hz(float(planned))
            fraction = abs(made - planned) / planned
            if fraction > worst[0]:
                worst = (fraction, float(planned), made)
    return worst


def amplitude_rounding(plan: Plan, capabilities: Capabilities) -> float:
    """The largest amount (mA) by which the device's amplitude step rounds a plan value down.

    Looked at where the plan's amplitudes are held (segment ends): the figure a person sees
    differ from the plan (13.2 mA in the plan, 12.0 mA from a device with 2 mA steps).
    """
    step = capabilities.amplitude_step_ma
    if step <= 0:
        return 0.0
    largest = 0.0
    for cplan in plan.channels:
        seg = cplan.segments
        values = np.concatenate([seg["amp0_ma"], seg["amp1_ma"]])
        rounded = np.floor(values / step + 1e-9) * step
        largest = max(largest, float((values - rounded).max(initial=0.0)))
    return largest


def _within(width: float | Ramp | Sweep, low: float, high: float) -> bool:
    values = _ends(width)
    return all(low - _EPS <= v <= high + _EPS for v in values)


def _ends(width: float | Ramp | Sweep) -> tuple[float, ...]:
    if isinstance(width, Ramp):
        return (width.start, width.end)
    if isinstance(width, Sweep):
        return (width.low, width.high)
    return (width,)


def _clamped(width: float | Ramp | Sweep, low: float, high: float) -> float | Ramp | Sweep:
    """The nearest width(s) within [low, high]; a ramp or sweep whose ends meet becomes one."""
    def clamp(v: float) -> float:
        return min(max(v, low), high)

    if isinstance(width, Ramp):
        start, end = clamp(width.start), clamp(width.end)
        return start if start == end else Ramp.model_validate({"from": start, "to": end})
    if isinstance(width, Sweep):
        lo, hi = clamp(width.low), clamp(width.high)
        return lo if lo == hi else Sweep(low=lo, high=hi, period_s=width.period_s)
    return clamp(width)


def _absolute(phase: Phase) -> bool:
    """Whether any amplitude of ``phase`` is a fixed current (mA), not relative to a
    threshold."""
    amplitude = phase.amplitude
    ends: tuple[AmplitudeExpr, ...] = (
        (amplitude.start, amplitude.end) if isinstance(amplitude, AmplitudeRamp)
        else () if amplitude is None else (amplitude,))
    return any(e.is_absolute and e.factor > 0 for e in ends)


def _width_text(width: float | Ramp | Sweep) -> str:
    if isinstance(width, Ramp):
        return f"{width.start:g} → {width.end:g} µs"
    if isinstance(width, Sweep):
        return f"{width.low:g}–{width.high:g} µs"
    return f"{width:g} µs"

