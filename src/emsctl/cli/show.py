"""``emsctl show``, ``emsctl programs`` and ``emsctl schema``: look at programs without a device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .common import complete_program, json_text, limits_option, load_limits
from .words import Explainer, term_lines, wrap

__all__ = ["programs", "schema", "show", "worst_case"]


def worst_case(name_or_path: str, limits_path: Path | None = None,
               device_url: str | None = None) -> dict[str, Any]:
    """Phases, total time and per-channel worst-case figures of a program at its caps; with a
    device, of the program fitted to it, with the adaptations and the device's rounding."""
    import numpy as np  # noqa: PLC0415

    from .. import formulas, pulse_window  # noqa: PLC0415
    from ..loader import load_program  # noqa: PLC0415
    from ..plan import compile_plan  # noqa: PLC0415
    from ..reports import limit_reports  # noqa: PLC0415
    from ..verify import verify  # noqa: PLC0415

    loaded = load_program(name_or_path)
    program = loaded.program
    limits = load_limits(limits_path)
    device: dict[str, Any] | None = None
    if device_url is None:
        plan = compile_plan(program)
        violations = verify(plan, limits)
    else:
        device, program, plan, violations = _on_device(program, limits, device_url)
    channels = []
    for cplan in plan.channels:
        seg = cplan.segments
        live = (seg["amp0_ma"] > 0) | (seg["amp1_ma"] > 0)
        s = seg[live]
        peak = float(max(s["amp0_ma"].max(), s["amp1_ma"].max())) if s.size else 0.0
        pw = float(max(s["pw0_us"].max(), s["pw1_us"].max())) if s.size else 0.0
        rate = pulse_window.pulses_per_s_array(np.maximum(s["freq0_hz"], s["freq1_hz"]),
                                           s["burst_rate_hz"], s["burst_pulses"])
        pulses_per_s = float(rate.max()) if rate.size else 0.0
        area = cplan.electrode_area_cm2
        charge = formulas.phase_charge_uc(peak, pw)
        channels.append({
            "channel": cplan.channel,
            "site": cplan.site,
            "electrode_area_cm2": area,
            "peak_ma": peak,
            "rms_ma": formulas.rms_current_ma(peak, pw, pulses_per_s),
            "phase_charge_uc": charge,
            "shannon_k": formulas.shannon_k(charge, area) if charge > 0 else None,
            "current_density_ma_cm2": formulas.current_density_ma_cm2(peak, pw, pulses_per_s, area),
            "power_density_w_cm2": formulas.power_density_w_cm2(peak, pw, pulses_per_s, area),
        })
    phases = []
    for span, phase in zip(plan.phases, program.phases, strict=True):
        phases.append({
            "name": span.name, "kind": span.kind, "start_s": span.start_s,
            "duration_s": span.end_s - span.start_s,
            "frequency_hz": _describe(phase.frequency_hz),
            "pulse_width_us": _describe(phase.pulse_width_us),
            "amplitude": _describe(phase.amplitude),
            "duty": phase.duty.model_dump() if phase.duty else None,
            "burst": phase.burst.model_dump() if phase.burst else None,
        })
    return {
        "device": device,
        "name": program.name, "title": program.title, "purpose": program.purpose,
        "evidence": program.evidence, "expert": program.expert,
        "description": program.description, "placement": program.placement,
        "after": program.after,
        "source": loaded.source, "sha256": loaded.sha256,
        "duration_s": plan.duration_s, "phases": phases, "channels": channels,
        "violations": [str(v) for v in violations if v.severity == "block"],
        "warnings": [str(v) for v in violations if v.severity == "warn"],
        "violation_reports": [r.summary(10_000) for r in limit_reports(
            [v for v in violations if v.severity == "block"], program=program, plan=plan)],
        "warning_reports": [r.summary(10_000) for r in limit_reports(
            [v for v in violations if v.severity == "warn"], program=program, plan=plan)],
    }


def _on_device(program: Any, limits: Any, device_url: str) -> tuple[dict[str, Any], Any, Any,
                                                                     list[Any]]:
    """The program fitted to the device at ``device_url`` (made, never opened): what changed,
    the device's amplitude rounding for the synthetic person, the fitted program, its worst-case
    plan and its violations."""
    from ..devices import open_device  # noqa: PLC0415
    from ..fit import amplitude_rounding, check_on_device, frequency_rounding  # noqa: PLC0415
    from ..plan import compile_plan  # noqa: PLC0415
    from ..profile import SYNTHETIC_THRESHOLDS, TOL_CAP_FACTOR  # noqa: PLC0415

    driver = open_device(device_url)
    caps = driver.capabilities
    checked = check_on_device(program, limits, caps)
    fitted = checked.fit.program
    person = compile_plan(
        fitted, {c.id: SYNTHETIC_THRESHOLDS for c in fitted.channels},
        profile_caps_ma={c.id: min(TOL_CAP_FACTOR * SYNTHETIC_THRESHOLDS.tol_ma,
                                   caps.amplitude_max_ma) for c in fitted.channels})
    info = {
        "url": device_url, "model": caps.model, "simulated": driver.simulated,
        "adaptations": [str(a) for a in checked.fit.adaptations],
        "adaptations_why": checked.fit.why,
        "amplitude_step_ma": caps.amplitude_step_ma,
        "amplitude_rounding_ma": amplitude_rounding(person, caps),
        "frequency_rounding": dict(zip(("fraction", "planned_hz", "delivered_hz"),
                                       frequency_rounding(checked.plan,
                                                          driver.delivered_frequency_hz),
                                       strict=True)) if not checked.blocks else None,
        "fits": not checked.blocks,
    }
    return info, fitted, checked.plan, list(checked.violations)


def _describe(value: object) -> str | float | None:
    if value is None:
        return None
    if isinstance(value, float | int):
        return float(value)
    from ..amplitude import AmplitudeExpr  # noqa: PLC0415
    from ..program import AmplitudeRamp, Ramp, Sweep  # noqa: PLC0415

    if isinstance(value, AmplitudeExpr):
        return str(value)
    if isinstance(value, AmplitudeRamp):
        return f"{value.start} → {value.end}"
    if isinstance(value, Ramp):
        return f"{value.start:g} → {value.end:g}"
    if isinstance(value, Sweep):
        return f"{value.low:g} ↔ {value.high:g} every {value.period_s:g} s"
    return str(value)


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}:{round(seconds % 60):02d}"


@click.command()
@click.argument("program", shell_complete=complete_program)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("-d", "--device", "device_url", default=None, metavar="URL",
              help="Show the program as this device runs it: fitted to what it can do, with "
              "every adaptation and its rounding (the device is not opened).")
@limits_option
def show(program: str, fmt: str, device_url: str | None, limits_path: Path | None) -> None:
    """Show PROGRAM (a built-in name or a file): what it is, where the pads go, what to do
    afterwards, its phases and the worst-case figures at its caps.

    Text is wrapped to the terminal; the threshold terms (ST, MT, TOL) are explained where they
    first appear. With -q (emsctl -q show) only the phases and figures.
    """
    from .common import verbosity  # noqa: PLC0415

    info = worst_case(program, limits_path, device_url)
    if fmt == "json":
        click.echo(json_text(info, ensure_ascii=False))
        return
    quiet = verbosity() < 0
    explain = Explainer()

    def say(text: str, label: str = "") -> None:
        click.echo("\n".join(wrap(text, label=label)))
        for line in explain.lines(text):
            click.echo(line)

    click.echo(f"{info['title']} ({info['name']}){'  [expert]' if info['expert'] else ''}")
    guide_s = sum(p["duration_s"] for p in info["phases"] if p["kind"] == "guide")
    length = f"Total time: {_minutes(info['duration_s'])} min"
    if guide_s:
        length += (f" ({_minutes(guide_s)} of guidance with no current, then "
                   f"{_minutes(info['duration_s'] - guide_s)} with current)")
    click.echo("\n".join(wrap(length)))
    if not quiet:
        click.echo("")
        say(info["description"])
        click.echo("")
        say(info["placement"], "Placement: ")
        if info["after"]:
            click.echo("")
            say(info["after"], "After the session: ")
        click.echo("")
        say(f"{info['evidence']}", "Evidence: ")
        click.echo(f"Purpose: {info['purpose']}.")
    table = [(p["name"], _minutes(p["start_s"]), _minutes(p["duration_s"]),
              _spec_text(p["frequency_hz"]), _spec_text(p["pulse_width_us"]),
              _amplitude_text(p)) for p in info["phases"]]
    terms = explain.new_terms(" ".join(row[5] for row in table))
    click.echo("")
    if terms:
        click.echo("Amplitudes follow your own thresholds:")
        for line in term_lines(terms):
            click.echo(line)
        click.echo("")
    name_width = max(len("phase"), *(len(row[0]) for row in table)) + 2
    click.echo(f"{'phase':<{name_width}}{'start':>6}{'length':>8}  {'Hz':<12}{'µs':<13}"
               "amplitude")
    for (name, start, length_text, hz, us, amplitude), phase in zip(table, info["phases"],
                                                                     strict=True):
        if phase["kind"] == "guide":
            click.echo(f"{name:<{name_width}}{start:>6}{length_text:>8}  no current: "
                       "guidance on screen")
            continue
        click.echo(f"{name:<{name_width}}{start:>6}{length_text:>8}  {hz:<12}{us:<13}"
                   f"{amplitude}")
    click.echo("")
    click.echo("\n".join(wrap("Worst case per channel, at the program's caps: the most it could "
                              "ever give; a session follows your thresholds and gives less.")))
    click.echo(f"{'ch':<4}{'site':<14}{'cm²':>6}{'peak mA':>9}{'rms mA':>8}{'µC':>7}{'k':>6}"
               f"{'mA/cm²':>8}{'W/cm²':>9}")
    for c in info["channels"]:
        k = f"{c['shannon_k']:.2f}" if c["shannon_k"] is not None else "—"
        click.echo(f"{c['channel']:<4}{c['site']:<14}{c['electrode_area_cm2']:>6g}"
                   f"{c['peak_ma']:>9.1f}{c['rms_ma']:>8.2f}{c['phase_charge_uc']:>7.2f}{k:>6}"
                   f"{c['current_density_ma_cm2']:>8.3f}{c['power_density_w_cm2']:>9.5f}")
    for label, key in (("VIOLATION ", "violation_reports"), ("warning ", "warning_reports")):
        for text in info[key]:
            click.echo("\n".join(wrap(text, label=label)))
    if info["device"] is not None:
        _device_text(info["device"], say)


def _device_text(device: dict[str, Any], say: Any) -> None:
    """What the device changes: its adaptations, then its rounding, in words."""
    click.echo("")
    verdict = ("does not fit it (see above)" if not device["fits"]
               else "fits it with the adaptations below" if device["adaptations"]
               else "fits it as written")
    say(f"On {device['model']} ({device['url']}): the program {verdict}.")
    for text in device["adaptations"]:
        say(text, "  adapted: ")
    if device["adaptations_why"]:
        say(device["adaptations_why"])
    step = device["amplitude_step_ma"]
    if step > 0:
        largest = device["amplitude_rounding_ma"]
        say(f"Rounding: the device sets current in steps of {step:g} mA, and emsctl always "
            "rounds down, never up: a current can be up to one step below the plan"
            + (f" (for the synthetic person, up to {largest:.1f} mA below)."
               if largest >= 0.05 else " (for the synthetic person, nothing is rounded)."))
    rate = device["frequency_rounding"]
    if rate is not None and rate["fraction"] >= 0.0005:
        say(f"Rates: the device makes a rate from a period on its own grid, so the rate can "
            f"differ a little from the plan; the most in this program is "
            f"{rate['planned_hz']:g} Hz made as {rate['delivered_hz']:.3g} Hz "
            f"({rate['fraction'] * 100:.1f} %).")


def _spec_text(value: str | float | None) -> str:
    if value is None:
        return ""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _amplitude_text(phase: dict[str, Any]) -> str:
    text = str(phase["amplitude"] or "")
    if phase["duty"]:
        d = phase["duty"]
        text += f"  on {d['on_s']:g} s / off {d['off_s']:g} s"
    if phase["burst"]:
        text += f"  bursts {phase['burst']['rate_hz']:g}/s × {phase['burst']['pulses']}"
    return text


@click.command()
@click.argument("folder", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("-d", "--device", "device_url", default=None, metavar="URL",
              help="Also say whether each program fits this device: as written, with "
              "adaptations (named), or not (why). The device is not opened.")
@limits_option
def programs(folder: Path | None, fmt: str, device_url: str | None,
             limits_path: Path | None) -> None:
    """List the built-in programs, and those in FOLDER when given."""
    from ..errors import EmsError  # noqa: PLC0415
    from ..loader import builtin_names, find_program_files, load_program  # noqa: PLC0415

    capabilities = None
    if device_url is not None:
        from ..devices import open_device  # noqa: PLC0415

        capabilities = open_device(device_url).capabilities  # made, never connected
    limits = load_limits(limits_path)
    sources = builtin_names() + ([str(p) for p in find_program_files([folder])] if folder else [])
    rows: list[dict[str, Any]] = []
    for source in sources:
        try:
            program = load_program(source).program
        except EmsError as exc:
            rows.append({"name": source, "error": str(exc)})
            continue
        row = {"name": program.name if source in builtin_names() else source,
               "title": program.title, "purpose": program.purpose,
               "duration_s": program.duration_s, "expert": program.expert,
               "builtin": source in builtin_names()}
        if capabilities is not None:
            from ..fit import fit_verdict  # noqa: PLC0415

            row["fit"], row["fit_detail"] = fit_verdict(program, limits, capabilities)
        rows.append(row)
    if fmt == "json":
        click.echo(json_text(rows, ensure_ascii=False))
        return
    click.echo(f"{'name':<18}{'min':>6}  {'purpose':<12}title")
    for r in rows:
        if "error" in r:
            click.echo(f"{r['name']:<18}  invalid: {r['error']}")
            continue
        flag = " [expert]" if r["expert"] else ""
        click.echo(f"{r['name']:<18}{r['duration_s'] / 60:>6.1f}  {r['purpose']:<12}"
                   f"{r['title']}{flag}")
        if "fit" in r:
            words = {"fits": "fits", "adapted": "fits with adaptations",
                     "refused": "does not fit"}[r["fit"]]
            detail = f": {r['fit_detail']}" if r["fit_detail"] else ""
            click.echo("\n".join(wrap(f"{words}{detail}", label=" " * 26)))


@click.command()
def schema() -> None:
    """Print the JSON Schema of program files."""
    from ..program import Program  # noqa: PLC0415

    click.echo(json_text(Program.model_json_schema(by_alias=True), ensure_ascii=False))
