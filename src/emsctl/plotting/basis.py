"""Which amplitudes a program picture shows, and the words that say so under its title.

At the channel caps (validation's worst case), for the simulator's synthetic person, or for your
calibration on a device (in the device's current steps). Opens a device to read its
capabilities and profile, never connects it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..amplitude import Thresholds
from ..plan import Plan, compile_plan
from ..program import Program

__all__ = ["AmplitudeBasis", "PlotBasis", "plan_for_plot", "plot_basis"]

#: Which amplitudes a program plot shows: the channel caps (validation's worst case) or the
#: simulator's synthetic person.
AmplitudeBasis = Literal["caps", "synthetic"]


def plan_for_plot(program: Program, basis: AmplitudeBasis = "caps") -> Plan:
    """Compile ``program`` for a picture: at its channel caps, or at the synthetic thresholds."""
    if basis == "caps":
        return compile_plan(program)
    from ..profile import SYNTHETIC_THRESHOLDS, TOL_CAP_FACTOR  # noqa: PLC0415

    thresholds = {c.id: SYNTHETIC_THRESHOLDS for c in program.channels}
    caps_ma = {c.id: TOL_CAP_FACTOR * SYNTHETIC_THRESHOLDS.tol_ma for c in program.channels}
    return compile_plan(program, thresholds, profile_caps_ma=caps_ma)


@dataclass(frozen=True)
class PlotBasis:
    """A plan to draw and what its amplitudes are: ``note`` says it under the title."""

    plan: Plan
    note: str
    #: the device's current step when drawn for a device (amplitudes rounded down to it)
    step_ma: float | None = None


def _thresholds_text(plan_thresholds: dict[int, Thresholds]) -> str:
    distinct = list(dict.fromkeys(plan_thresholds.values()))
    if len(distinct) == 1:
        th = distinct[0]
        return f"ST {th.st_ma:g}, MT {th.mt_ma:g}, TOL {th.tol_ma:g} mA"
    return "; ".join(f"ch {ch}: ST {th.st_ma:g}, MT {th.mt_ma:g}, TOL {th.tol_ma:g} mA"
                     for ch, th in sorted(plan_thresholds.items()))


def plot_basis(program: Program, basis: Literal["person", "caps"] = "person",
               device_url: str | None = None) -> PlotBasis:
    """The plan a program plot draws, and its label.

    ``caps``: at the channel caps (validation's worst case). ``person`` without a device: the
    simulator's synthetic person. ``person`` with ``device_url``: the thresholds and caps your
    profile gives on that device (the simulator's person on a simulated one), drawn in the
    device's current steps. The device is opened, never connected.

    Raises:
        InputError: an unknown device URL; ProfileError (an InputError) for a real device
            without a valid calibration for ``program``.
    """
    if basis == "caps":
        return PlotBasis(compile_plan(program),
                         "amplitudes at the channel caps: the worst case that validation checks")
    if device_url is None:
        return PlotBasis(plan_for_plot(program, "synthetic"),
                         "amplitudes for the simulator's synthetic person ("
                         + _thresholds_text({0: _synthetic()}) + "); yours follow your "
                         "calibration (plot -d URL)")
    from datetime import UTC, datetime  # noqa: PLC0415

    from ..devices import open_device  # noqa: PLC0415
    from ..fit import fit_program  # noqa: PLC0415
    from ..limits import DEFAULTS  # noqa: PLC0415
    from ..profile import load_profile  # noqa: PLC0415
    from ..thresholds import resolve_thresholds  # noqa: PLC0415

    driver = open_device(device_url)
    fit = fit_program(program, driver.capabilities)  # drawn as the device runs it
    program = fit.program
    profile = None if driver.simulated else load_profile()
    resolved = resolve_thresholds(profile, program, driver, now=datetime.now(UTC),
                                  peak_limit_ma=DEFAULTS.peak_ma)
    plan = compile_plan(program, resolved.thresholds, profile_caps_ma=resolved.caps_ma)
    caps = driver.capabilities
    who = "the simulator's synthetic person" if resolved.synthetic else "your calibration"
    note = (f"amplitudes for {who} on {caps.model} ({_thresholds_text(resolved.thresholds)}),"
            f" as the device sets them in {caps.amplitude_step_ma:g} mA steps"
            + ("; pulse widths fitted to what the device makes" if fit.adapted else ""))
    return PlotBasis(plan, note, caps.amplitude_step_ma)


def _synthetic() -> Thresholds:
    from ..profile import SYNTHETIC_THRESHOLDS  # noqa: PLC0415

    return SYNTHETIC_THRESHOLDS
