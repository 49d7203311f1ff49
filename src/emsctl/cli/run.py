"""``emsctl run PROGRAM``: run a session, by default on the bundled simulator.

Shows what will run (program, duration, description, placement, device, each threshold term
explained the first time it appears, all wrapped to the terminal), asks for confirmation on
real devices (``--yes`` skips it), runs with a live view in a terminal or plain lines in a pipe,
and ends with a final screen: whether the output is off (said only when the device confirmed
the stop; otherwise what to do), the program's advice for afterwards, and what the person had
(time with current, intensity, the highest current rounded to the device's step and why it
differs from the plan when it does). Exit codes: 0 completed,
1 aborted by a fault or refused by a limit (plan or dose ledger), 2 bad input or a gate
(profile, screening, red flag, cramp-training rules, a dose ledger that cannot be read),
130 stopped by the user.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .common import FiniteFloat, complete_program, json_text, limits_option, load_limits, verbosity
from .summary import (
    ChannelFigures,
    amount_ma,
    ending,
    minutes,
    peak_words,
    site_words,
    stop_confirmed,
)
from .words import Explainer, wrap

if TYPE_CHECKING:
    from ..plan import Plan
    from ..runner import Prepared, RunOutcome
    from ..session import Session, SessionState

__all__ = ["run"]


@click.command()
@click.argument("program", default="relaxation", shell_complete=complete_program)
@click.option("--device", "-d", "device_url", default="sim", envvar="EMSCTL_DEVICE",
              show_default=True, help="Device URL, e.g. sim, sim+sciencemode2, "
              "sciencemode2:///dev/ttyUSB0.")
@click.option("--speed", default=None, metavar="N|max",
              help="Simulator only: run N× faster than real time, or 'max' as fast as possible.")
@click.option("--intensity", "intensity_pct", type=FiniteFloat(0, 100), default=100.0,
              show_default=True, help="Start at this percentage of the program's amplitude.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (real devices).")
@click.option("--expert", is_flag=True, help="Allow expert programs (cramp-training).")
@click.option("--faults", "faults_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Simulator only: a fault plan (TOML) to inject.")
@click.option("--journal-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Where this session's journal is written [default: $EMSCTL_STATE_DIR/"
              "journals or the user state dir]. It does not move the dose ledger.")
@click.option("--pads", "pad_set", default="default", show_default=True,
              help="The pad set in use. It must be the one you calibrated with: other pads "
              "change the current per cm², so your thresholds would no longer hold (hazard "
              "HZ-14, invalid calibration).")
@click.option("--rescreen", is_flag=True, help="Answer the safety questionnaire again.")
@click.option("--sim-profile", is_flag=True,
              help="Simulator only: use your profile's 'sim' calibrations, not the synthetic "
              "person.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="'json' prints the summary as data.")
@limits_option
def run(program: str, device_url: str, speed: str | None, intensity_pct: float, yes: bool,
        expert: bool, faults_path: Path | None, journal_dir: Path | None, pad_set: str,
        rescreen: bool, sim_profile: bool, fmt: str, limits_path: Path | None) -> None:
    """Run PROGRAM (a built-in name or a .toml file); the default is 'relaxation'.

    Before any output: the calibrated profile (real devices; the simulator uses a synthetic
    person), the dose ledger (real devices: limit L20, dose per site, how much stimulation
    each body site may have per day and week), cramp-training's gates, the safety
    questionnaire, the checks before each session and the warnings (asked on real devices,
    shown on the simulator).

    With -q (emsctl -q run) the program's description and, on the simulator, the safety
    questions are left out; with -v the final screen adds every delivered figure and the
    journal's path.
    """
    from ..devices import OpenOptions  # noqa: PLC0415
    from ..errors import InputError  # noqa: PLC0415
    from ..loader import load_program  # noqa: PLC0415
    from ..local_time import local_now  # noqa: PLC0415
    from ..profile import Profile  # noqa: PLC0415
    from ..runner import execute, make_clock, open_driver, preflight, prepare_run  # noqa: PLC0415
    from .gates import pass_gates  # noqa: PLC0415

    options = OpenOptions()
    if faults_path is not None:
        from ..simulator.faults import load_fault_plan  # noqa: PLC0415

        options.fault_plan = load_fault_plan(faults_path)
    driver = open_driver(device_url, options)
    simulated = driver.simulated
    if faults_path is not None and not simulated:
        raise InputError("--faults only works with the simulator")
    clock = make_clock(driver, speed)
    if sim_profile and not simulated:
        raise InputError("--sim-profile only works with the simulator")
    loaded = load_program(program)
    limits = load_limits(limits_path)
    now = local_now()  # the system's time zone, never $TZ: cramp-training's daytime rule
    # profile, CTF, cramp-training and dose refusals come first: no question asked, no port opened
    # the dose ledger is the user's one file (read when past is None): --journal-dir moves only
    # the journal
    checked = preflight(loaded, driver, limits, expert=expert, pad_set=pad_set, now=now,
                        sim_profile=sim_profile)
    sites = [c.site for c in loaded.program.channels]
    level = verbosity()
    profile, answers = pass_gates(checked.profile or Profile(), sites, simulated,
                                  interactive=sys.stdin.isatty(), rescreen=rescreen, now=now,
                                  quiet=level < 0)
    if checked.profile is not None:
        version = checked.profile_version if checked.profile_version == "synthetic" \
            else profile.version
        checked = replace(checked, profile=profile, profile_version=version)
    prepared = prepare_run(loaded, driver, limits, expert=expert,
                           now=now, session_checks=answers, checked=checked)
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    _announce(prepared, quiet=level < 0)
    if not simulated and not yes:
        if not interactive:
            raise InputError("a real device needs confirmation: run in a terminal or pass --yes")
        click.confirm("Pads placed as described, and ready to start at 0 mA?", abort=True)
    site_map = {c.id: c.site for c in loaded.program.channels}
    seen = IntensitySeen(intensity_pct)
    live = interactive and fmt == "text"
    if live:
        outcome = _run_live(prepared, clock, intensity_pct, journal_dir, site_map, device_url,
                            seen)
    else:
        from .live import PlainView  # noqa: PLC0415

        view = PlainView(sys.stderr if fmt == "json" else None, plan=prepared.plan)

        def tick(state: SessionState) -> None:
            seen.update(state)
            view.update(state)

        # without a terminal nobody can press space to resume: a pause ends the session
        outcome = execute(prepared, clock, intensity_pct=intensity_pct, journal_dir=journal_dir,
                          on_tick=tick, pause_limit_s=0.0)
    _summarize(outcome, prepared, seen, clock, fmt, level, live=live)
    sys.exit(outcome.result.exit_code)


@dataclass
class IntensitySeen:
    """The intensity over a session: where it started and its range while current was on."""

    start_pct: float
    low_pct: float | None = None
    high_pct: float | None = None
    end_pct: float | None = None
    changes: list[float] = field(default_factory=list)

    def update(self, state: SessionState) -> None:
        """Record the intensity of one tick (its range only while output is on)."""
        if any(sp.amplitude_ma > 0 for sp in state.setpoints):
            pct = state.intensity_pct
            self.low_pct = pct if self.low_pct is None else min(self.low_pct, pct)
            self.high_pct = pct if self.high_pct is None else max(self.high_pct, pct)
        self.end_pct = state.target_intensity_pct

    def words(self) -> str:
        """"100 % all through", or where it started, its range and where it ended."""
        low = self.start_pct if self.low_pct is None else self.low_pct
        high = self.start_pct if self.high_pct is None else self.high_pct
        end = self.start_pct if self.end_pct is None else self.end_pct
        if abs(high - low) < 0.5 and abs(end - self.start_pct) < 0.5:
            return f"{self.start_pct:.0f} % all through"
        return (f"started at {self.start_pct:.0f} %, between {low:.0f} and {high:.0f} % "
                f"while the current was on, {end:.0f} % at the end")

    def as_dict(self) -> dict[str, float | None]:
        """The same as data."""
        return {"start_pct": self.start_pct, "low_pct": self.low_pct,
                "high_pct": self.high_pct, "end_pct": self.end_pct}


def _run_live(prepared: Prepared, clock: Any, intensity_pct: float, journal_dir: Path | None,
              sites: dict[int, str], device_url: str, seen: IntensitySeen) -> RunOutcome:
    from ..runner import execute  # noqa: PLC0415
    from .live import KeyReader, LiveView, cbreak  # noqa: PLC0415

    readers: list[KeyReader] = []
    program = prepared.loaded.program
    with cbreak(), LiveView(f"{program.title} ({program.name})", device_url, sites,
                            plan=prepared.plan, clock=clock) as view:

        def attach(session: Session) -> None:
            readers.append(KeyReader(session, notify=view.notice))

        def tick(state: SessionState) -> None:
            seen.update(state)
            view.update(state)

        return execute(prepared, clock, intensity_pct=intensity_pct, journal_dir=journal_dir,
                       on_start=attach, on_tick=tick)


def _echo(lines: list[str] | str) -> None:
    for line in [lines] if isinstance(lines, str) else lines:
        click.echo(line, file=sys.stderr)


def _announce(prepared: Prepared, *, quiet: bool = False) -> None:
    """What will run, in words that fit the terminal; threshold terms explained once."""
    from ..reports import limit_reports  # noqa: PLC0415

    program = prepared.loaded.program
    plan = prepared.plan
    explain = Explainer()
    guide_s = sum(s.end_s - s.start_s for s in plan.phases if s.kind != "stim")
    with_current = plan.duration_s - guide_s
    length = f"{minutes(plan.duration_s)} min"
    if guide_s > 0:
        length += (f": {minutes(guide_s)} of guidance with no current, then "
                   f"{minutes(with_current)} with current")
    _echo("")
    _echo(wrap(f"{program.title} ({program.name}), {length}."))
    _echo(wrap(f"{prepared.driver.capabilities.model} ({prepared.device_url})", label="Device: "))
    if prepared.fit is not None and prepared.fit.adapted:
        _echo("")
        _echo(wrap("This device cannot run the program exactly as written; it runs it with "
                   "these changes:"))
        for adaptation in prepared.fit.adaptations:
            _echo(wrap(str(adaptation), label="  - ", indent=4))
        _echo(wrap(prepared.fit.why))
    if not quiet:
        _echo("")
        _echo(wrap(program.description))
        _echo(explain.lines(program.description))
    _echo("")
    _echo(wrap(program.placement, label="Placement: "))
    _echo(explain.lines(program.placement))
    for channel in program.channels:
        cap = plan.channel(channel.id).cap_ma
        _echo(wrap(f"{site_words(channel.site)} ({channel.site}), "
                   f"{channel.electrode_area_cm2:g} cm² pads, at most {cap:.1f} mA",
                   label=f"  Channel {channel.id}: "))
    for note in [*prepared.notes, *plan.notes]:
        _echo(wrap(note, label="Note: "))
        _echo(explain.lines(note))
    for report in limit_reports(prepared.warnings):
        text = report.summary(10_000)
        _echo(wrap(text, label="Warning: "))
        _echo(explain.lines(text))
    first_s = next((s.start_s for s in plan.phases if s.kind == "stim"), 0.0)
    start = (f"The current starts after the guidance, {minutes(first_s)} in, from 0 mA."
             if first_s > 0 else "The current starts now, from 0 mA, and rises slowly.")
    _echo("")
    _echo(wrap(f"{start} Press q or Ctrl-C at any time to stop at once."))
    _echo("")


def planned_peak_ma(plan: Plan, channel: int, until_s: float) -> float:
    """The highest amplitude ``channel``'s plan asks for up to program time ``until_s``."""
    segments = plan.channel(channel).segments
    best = 0.0
    for t0, t1, a0, a1 in zip(segments["t0_s"], segments["t1_s"], segments["amp0_ma"],
                              segments["amp1_ma"], strict=True):
        if t0 >= until_s:
            break
        end_ma = a0 + (a1 - a0) * (until_s - t0) / (t1 - t0) if t1 > until_s > t0 else a1
        best = max(best, float(a0), float(end_ma))
    return best


def _channel_figures(outcome: RunOutcome, prepared: Prepared) -> list[ChannelFigures]:
    plan = prepared.plan
    caps = prepared.driver.capabilities
    result = outcome.result
    reached_s = plan.duration_s
    if result.end_reason != "completed":
        reached_s = _program_time_reached(plan, result.stim_time_s)
    delivered = outcome.delivered.get("channels") or {}
    figures = []
    for channel in prepared.loaded.program.channels:
        # the session maps program channel n to device channel n (runner's default)
        device = delivered.get(str(channel.id)) or {}
        if device:
            peak = float(device.get("peak_ma", 0.0))
            rms = device.get("rms_ma")
            charge = device.get("max_phase_charge_uc")
        else:
            peaks = result.peak_ma
            peak = float(peaks[channel.id - 1]) if len(peaks) >= channel.id else 0.0
            rms = charge = None
        figures.append(ChannelFigures(channel.id, channel.site, peak,
                                      planned_peak_ma(plan, channel.id, reached_s),
                                      caps.amplitude_step_ma, rms, charge))
    return figures


def _program_time_reached(plan: Plan, stim_s: float) -> float:
    """Program time at which ``stim_s`` seconds of stimulation phases had passed."""
    done = 0.0
    for span in plan.phases:
        if span.kind != "stim":
            continue
        length = span.end_s - span.start_s
        if done + length >= stim_s:
            return span.start_s + (stim_s - done)
        done += length
    return plan.duration_s


def _summarize(outcome: RunOutcome, prepared: Prepared, seen: IntensitySeen, clock: Any,
               fmt: str, level: int = 0, *, live: bool = False) -> None:
    result = outcome.result
    confirmed = stop_confirmed(result.message, result.events)
    figures = _channel_figures(outcome, prepared)
    plan = prepared.plan
    stim_total_s = plan.stimulation_s(plan.duration_s)
    speed_note = _speed_note(clock)
    data: dict[str, Any] = {
        "end_reason": result.end_reason, "message": result.message,
        "stim_time_s": round(result.stim_time_s, 3), "exit_code": result.exit_code,
        "journal": str(outcome.journal_path) if outcome.journal_path else None,
        "delivered": outcome.delivered,
        "output_off_confirmed": confirmed,
        "intensity": seen.as_dict(),
        "channels": [{"channel": f.channel, "site": f.site, "peak_ma": f.peak_ma,
                      "planned_peak_ma": f.planned_ma, "device_step_ma": f.step_ma}
                     for f in figures],
        "speed_note": speed_note,
    }
    if fmt == "json":
        click.echo(json_text(data))
        return
    program = prepared.loaded.program
    if not live:  # the live view's place is already a blank line
        click.echo("")
    for line in ending(result.end_reason, result.message, confirmed):
        click.echo("\n".join(wrap(line)))
    if program.after and level >= 0:
        click.echo("")
        click.echo("\n".join(wrap(program.after)))
    click.echo("")
    click.echo("What you had:")
    rows = [("Time with current", f"{minutes(result.stim_time_s)} of {minutes(stim_total_s)} "
             "min" + (f" (after {minutes(plan.duration_s - stim_total_s)} of guidance "
                      "without current)" if stim_total_s < plan.duration_s else ""))]
    rows.append(("Intensity", seen.words()))
    intensity = seen.high_pct if seen.high_pct is not None else seen.start_pct
    reached_end = result.end_reason == "completed"
    peak_lines = peak_words(figures, prepared.driver.capabilities.model, intensity, reached_end)
    if peak_lines:
        rows.append(("Highest current", peak_lines[0]))
        rows += [("", line) for line in peak_lines[1:]]
    label_width = max(len(label) for label, _ in rows) + 2
    for label, text in rows:
        head = f"  {label:<{label_width}}"
        click.echo("\n".join(wrap(text, label=head, indent=len(head))))
    if level > 0:
        click.echo("")
        for fig in figures:
            extra = "" if fig.rms_ma is None else (
                f", rms {fig.rms_ma:.2f} mA, at most {fig.charge_uc:.2f} µC per pulse phase")
            click.echo(f"  channel {fig.channel} ({fig.site}): peak "
                       f"{amount_ma(fig.peak_ma, fig.step_ma)}{extra}")
        if outcome.journal_path:
            click.echo(f"  journal: {outcome.journal_path}")
    if speed_note:
        click.echo("")
        click.echo("\n".join(wrap(speed_note)))
    session_id = _session_id(outcome)
    if session_id:
        click.echo("")
        click.echo(f"Saved as session {session_id}: 'emsctl history {session_id}' shows it again.")


def _session_id(outcome: RunOutcome) -> str:
    path = outcome.journal_path
    if path is None:
        return ""
    return path.stem.rsplit("-", 1)[-1]


def _speed_note(clock: Any) -> str:
    """Said when a paced simulator run could not keep to its --speed."""
    speed = getattr(clock, "speed", None)
    achieved = getattr(clock, "achieved_speed", None)
    if speed is None or not getattr(clock, "at_maximum", False) or not achieved:
        return ""
    asked = f"{speed:.0f}" if float(speed).is_integer() else f"{speed:g}"
    return (f"This machine could not keep up with --speed {asked}: the simulated session "
            f"ran at about {achieved:,.0f}× real time, its maximum.")
