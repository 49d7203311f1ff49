"""Preparing and running a session end to end: the Python API behind ``emsctl run``.

``preflight`` does the checks that need no terminal and open no port: expert flag, the
person's calibrated thresholds from the profile (the simulator falls back to the synthetic
person), cramp-training's CTF and gates, and the dose ledger (real devices only).
``prepare_run`` adds the stored screening and the before-session answers (real devices), then
compiles and verifies the plan against the effective limits and the device's capabilities, and
refuses with one clear sentence when anything is wrong. ``execute`` then runs
the session on the chosen clock with a journal, and returns what happened. The CLI is a thin
shell around these two functions.

The dose ledger (L20) is one file in the user's state directory (:mod:`emsctl.ledger`), never
the journal folder: ``preflight`` reads it, and ``execute`` checks it again under its lock and
records a real-device session as started before the device is connected, then its real length
at the end — wherever the journal goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .amplitude import Thresholds
from .clock import Clock, RealClock, VirtualClock
from .contract import Driver, Telemetry
from .devices import OpenOptions, open_device
from .dose_rules import PastSession, check_cramp_training, check_dose
from .errors import EmsError, InputError, LedgerError
from .fit import Adaptation, Fit, fit_program
from .ledger import LedgerEntry, begin_session, end_session, past_sessions
from .limits import Limits
from .loader import LoadedProgram
from .local_time import local_now
from .plan import Plan, compile_plan
from .profile import SYNTHETIC_THRESHOLDS, TOL_CAP_FACTOR, Profile, ProfileError, load_profile
from .screening import GateRefused, check_session_answers, evaluate
from .session import PAUSE_LIMIT_S, Session, SessionResult, SessionState, session_lease_s
from .thresholds import PER_SESSION_MAX_AGE, resolve_thresholds
from .verify import VerifiedPlan, Violation, certify, refusal, verify

if TYPE_CHECKING:
    from .journal import JournalSink

__all__ = ["SYNTHETIC_THRESHOLDS", "TOL_CAP_FACTOR", "Preflight", "Prepared", "RunOutcome",
           "execute", "make_clock", "open_driver", "preflight", "prepare_run"]

#: cramp-training's frequency: the clinician-measured CTF + 30 Hz, capped at 80 Hz (P8).
CTF_OFFSET_HZ, CTF_FREQUENCY_CAP_HZ = 30.0, 80.0
#: The simulator's synthetic person has this CTF: + 30 Hz gives the file's 55 Hz (W7).
SYNTHETIC_CTF_HZ = 25.0
#: What a stop by each signal says: in words a person knows, never the signal's name.
SIGNAL_WORDS: dict[int, str] = {
    signal.SIGINT: "stopped with Ctrl-C",
    signal.SIGTERM: "stopped: emsctl was asked to quit",
    signal.SIGHUP: "stopped: the terminal was closed",
}
#: docs/programs-basis.md §4: ask for a CTF re-measurement after 6 weeks [E].
CTF_REMEASURE_AFTER = timedelta(weeks=6)


@dataclass(frozen=True)
class Preflight:
    """What the non-interactive checks decided: thresholds, caps, frequency, profile version."""

    thresholds: dict[int, Thresholds]
    caps_ma: dict[int, float]
    frequency_hz: float | None
    profile: Profile | None
    profile_version: str | None
    notes: list[str] = field(default_factory=list)


@dataclass
class Prepared:
    """Everything checked and ready: the plan, the (unconnected) driver and the limits."""

    loaded: LoadedProgram
    plan: Plan
    driver: Driver
    limits: Limits
    device_url: str
    thresholds: dict[int, Thresholds]
    warnings: list[Violation] = field(default_factory=list)
    profile_version: str | None = None
    notes: list[str] = field(default_factory=list)
    #: The plan as verified for this driver: the only form a session runs.
    verified: VerifiedPlan | None = None
    #: How the program was fitted to the device (``loaded.program`` is the fitted program).
    fit: Fit | None = None

    @property
    def adaptations(self) -> tuple[Adaptation, ...]:
        """What the device runs differently from the program as written (none: as written)."""
        return () if self.fit is None else self.fit.adaptations


@dataclass
class RunOutcome:
    """A finished session: its result, the journal path and the delivered figures."""

    result: SessionResult
    journal_path: Path | None
    delivered: dict[str, Any]


def open_driver(device: str | Driver, options: OpenOptions | None = None) -> Driver:
    """``device`` itself when it is an opened driver, else the driver its URL names.

    Raises:
        InputError: see :func:`emsctl.devices.open_device`.
    """
    return device if isinstance(device, Driver) else open_device(device, options)


def make_clock(driver: Driver, speed: str | None) -> Clock:
    """The clock for ``--speed``: real time unless a simulated device asks for more.

    Raises:
        InputError: a speed for a real device, or a speed that is not a number or "max".
    """
    if speed is None:
        return RealClock()
    if not driver.simulated:
        raise InputError("--speed only works with the simulator; real devices run in real time")
    if speed == "max":
        return VirtualClock(None)
    try:
        factor = float(speed)
    except ValueError:
        raise InputError(f"--speed must be a number or 'max', not '{speed}'") from None
    if not 0 < factor <= 1e6:
        raise InputError("--speed must be between 0 and 1000000")
    return VirtualClock(factor)


def preflight(
    loaded: LoadedProgram,
    device: str | Driver,
    limits: Limits,
    *,
    profile: Profile | None = None,
    thresholds: dict[int, Thresholds] | None = None,
    frequency_hz: float | None = None,
    expert: bool = False,
    pad_set: str = "default",
    now: datetime | None = None,
    past: Sequence[PastSession] | None = None,
    sim_profile: bool = False,
) -> Preflight:
    """The checks that need no terminal and open no port: expert flag, profile, CTF, dose.

    Real devices need a valid, unexpired calibration for every channel (HZ-14), pass the dose
    ledger (L20) and, for ``cramp-training``, its gates (CTF, daytime, weekly count, 72 h). The
    simulator never blocks here: it falls back to the synthetic person and is not in the ledger.

    Args:
        loaded: the program. device: the driver it runs on (or its URL). limits: the
            effective limits.
        profile: the user's profile (read from the data directory when None).
        thresholds: explicit thresholds per channel (API and tests); skips the profile lookup.
        frequency_hz: replaces every stim frequency (default for cramp-training: CTF + 30 Hz).
        expert: allow expert programs. pad_set: the pad set in use.
        now: the current time, aware (local time decides cramp-training's daytime rule).
        past: counted sessions (read from the dose ledger when None; tests give their own).
        sim_profile: on the simulator, use the profile instead of the synthetic person.

    Raises:
        InputError: an expert program without ``expert``; a real device without a valid
            profile (ProfileError) or a gate (GateRefused: no CTF, night-time).
        DoseLimitReached: a dose limit would be exceeded (exit 1), with the next allowed time.
        LedgerError: a real device and a dose ledger that cannot be read or trusted (exit 2).
    """
    program = loaded.program
    if program.expert and not expert:
        raise InputError(f"'{program.name}' is an expert program; it needs --expert")
    driver = open_driver(device)
    simulated = driver.simulated
    now = now or local_now()  # the system's zone, never $TZ (the daytime rule)
    if simulated and not sim_profile:
        profile = None  # the shipped synthetic person; the user's files play no part
    elif profile is None:
        profile = _load_profile(simulated)
    notes: list[str] = []
    sites = [c.site for c in program.channels]
    training = program.purpose == "training"
    if training and frequency_hz is None:
        frequency_hz = _training_frequency_hz(profile, simulated, now, notes)
    if thresholds is None:
        resolved = resolve_thresholds(
            profile, program, driver, now=now, peak_limit_ma=limits.peak_ma,
            pad_set=pad_set, frequency_hz=frequency_hz if training else None,
            max_age=PER_SESSION_MAX_AGE if training else None,
            program_ref=program.name if loaded.builtin else loaded.source)
        thresholds, caps, synthetic = resolved.thresholds, resolved.caps_ma, resolved.synthetic
        notes += resolved.notes
    else:
        caps = {ch: min(TOL_CAP_FACTOR * th.tol_ma, limits.peak_ma)
                for ch, th in thresholds.items()}
        synthetic = False
    missing = [c.id for c in program.channels if c.id not in thresholds]
    if missing:
        raise InputError(f"no calibrated thresholds for channel(s) {missing}")
    if not simulated:
        past = past_sessions() if past is None else past
        if training:
            check_cramp_training(past, sites, now, program=program.name,
                                 bedtime_local=profile.bedtime_local if profile else None)
        check_dose(past, sites, program.duration_s, now, limits)
    elif training:
        notes.append("simulator: the cramp-training daytime and weekly rules are not applied")
    version = "synthetic" if synthetic else (profile.version if profile else None)
    return Preflight(thresholds, caps, frequency_hz, profile, version, notes)


def _load_profile(simulated: bool) -> Profile | None:
    try:
        return load_profile()
    except ProfileError:
        if simulated:
            return None  # the simulator never blocks: it uses the synthetic person
        raise


def _training_frequency_hz(profile: Profile | None, simulated: bool, now: datetime,
                           notes: list[str]) -> float:
    ctf = profile.ctf if profile is not None else None
    if ctf is None:
        if not simulated:
            raise GateRefused("cramp-training needs a cramp threshold frequency measured by a "
                              "clinician, with its date and who measured it, in your profile "
                              "(section [ctf])")
        notes.append(f"simulator: synthetic cramp threshold frequency {SYNTHETIC_CTF_HZ:g} Hz")
        ctf_hz = SYNTHETIC_CTF_HZ
    else:
        ctf_hz = ctf.frequency_hz
        if now.date() - ctf.measured_on > CTF_REMEASURE_AFTER:
            notes.append(f"your cramp threshold frequency was measured on {ctf.measured_on}; "
                         "ask for a re-measurement (after 6 weeks of training)")
    return min(ctf_hz + CTF_OFFSET_HZ, CTF_FREQUENCY_CAP_HZ)


def prepare_run(
    loaded: LoadedProgram,
    device: str | Driver,
    limits: Limits,
    *,
    options: OpenOptions | None = None,
    thresholds: dict[int, Thresholds] | None = None,
    frequency_hz: float | None = None,
    expert: bool = False,
    profile: Profile | None = None,
    pad_set: str = "default",
    now: datetime | None = None,
    past: Sequence[PastSession] | None = None,
    session_checks: Mapping[str, bool] | None = None,
    checked: Preflight | None = None,
) -> Prepared:
    """Check that ``loaded`` may run on ``device_url`` and build the plan and driver.

    Runs :func:`preflight` (unless ``checked`` is given), then on a real device the stored
    screening (L24) and the answers to the before-session checks, then compiles and verifies.
    No port is opened: the driver is made, not connected.

    Raises:
        InputError: see :func:`preflight`; GateRefused for the screening or a check answered yes,
            or a real device without ``session_checks``.
        DoseLimitReached: see :func:`preflight`.
        ValidationFailed: the plan breaks a limit or the device's capabilities, or the
            device refuses the verified caps (it could go past them).
    """
    driver = open_driver(device, options)
    if options is not None and options.fault_plan is not None and not driver.simulated:
        raise InputError("fault plans only work with the simulator")
    session_lease_s(driver.capabilities, limits)  # a lease the device can keep, before all else
    # the device runs the fitted program: its calibration width is the one the phases use, so
    # the thresholds below are the ones measured at it
    fit = fit_program(loaded.program, driver.capabilities)
    loaded = replace(loaded, program=fit.program)
    program = loaded.program
    if checked is None:
        checked = preflight(loaded, driver, limits, profile=profile, thresholds=thresholds,
                            frequency_hz=frequency_hz, expert=expert, pad_set=pad_set, now=now,
                            past=past)
    if not driver.simulated:
        sites = [c.site for c in program.channels]
        now = now or datetime.now(UTC)
        evaluate(checked.profile.screening if checked.profile else None, sites, now)
        if session_checks is None:
            raise GateRefused("the checks before each session (calf red flag, skin) have not "
                              "been answered")
        check_session_answers(dict(session_checks))
    plan = compile_plan(program, checked.thresholds, profile_caps_ma=checked.caps_ma,
                        frequency_hz=checked.frequency_hz)
    if not driver.capabilities.has_output_watchdog:
        raise InputError(  # HZ-04: without a device watchdog a host crash leaves output on
            f"{driver.capabilities.model} has no output watchdog, so emsctl cannot guarantee "
            "that output stops if this computer fails; it does not run sessions on it "
            "(use the device's own presets and its stop button)")
    if fit.unfitted:  # say why a width was not fitted, in the sentence that refuses it
        blocks = [v for v in fit.explain(verify(plan, limits, driver.capabilities))
                  if v.severity == "block"]
        if blocks:
            raise refusal(plan.program_name, driver.capabilities.model, blocks)
    verified = certify(plan, limits, driver.capabilities)
    # a device that can hold its own limits gets the verified caps (Coyote: BF soft limits, so
    # neither its wheel nor a stray frame can go past them; HZ-01); one that cannot refuses
    # them when its full scale is above a cap (openEMSstim: a corrupted line can open it fully,
    # HZ-12), and then sends no output at all
    driver.set_channel_caps_ma({c.channel: c.cap_ma for c in plan.channels})
    return Prepared(loaded, plan, driver, limits, driver.url, checked.thresholds,
                    list(verified.warnings), checked.profile_version, list(checked.notes),
                    verified, fit)


def execute(
    prepared: Prepared,
    clock: Clock,
    *,
    intensity_pct: float = 100.0,
    journal_dir: Path | None = None,
    on_start: Callable[[Session], None] | None = None,
    on_tick: Callable[[SessionState], None] | None = None,
    handle_signals: bool = True,
    pause_limit_s: float = PAUSE_LIMIT_S,
    journal: JournalSink | None = None,
) -> RunOutcome:
    """Connect, run the session to its end, stop, close. The device is left at zero.

    A real device's session is first checked against the dose ledger again and recorded in it
    as started (before the device is connected, so a killed session counts), and its real
    length is recorded at the end; ``journal_dir`` moves only the journal, never the ledger.
    ``on_start`` receives the session once it exists (for key handling); SIGINT, SIGTERM and
    SIGHUP stop the session immediately when ``handle_signals``. A pause longer than
    ``pause_limit_s`` ends the session (0: at once, for runs where nobody can resume).

    The session is recorded in a new :class:`~emsctl.journal.Journal` in ``journal_dir``
    (default: the user's journal folder), or in ``journal`` when given: a simulated device
    may run with a :class:`~emsctl.journal.NullJournal`, which writes nothing; a real device
    always writes a journal file (HZ-22).

    Raises:
        InputError: ``journal`` together with ``journal_dir``, or a ``journal`` that is not a
            journal file for a real device.
        DoseLimitReached: a real device, and the ledger refuses the session now.
        LedgerError: a real device, and the ledger cannot be read, trusted or written.
        EmsError: the device could not be connected or the journal could not be written.
    """
    from .journal import Journal  # noqa: PLC0415 - only sessions write journals

    if journal is None:
        journal = Journal(journal_dir)
    elif journal_dir is not None:
        raise InputError("give either a journal or a journal folder, not both")
    elif not prepared.driver.simulated and not isinstance(journal, Journal):
        raise InputError(f"a session on {prepared.driver.capabilities.model} is always "
                         "recorded in a journal file")
    return clock.run(_execute(prepared, intensity_pct, journal, on_start, on_tick,
                              handle_signals, pause_limit_s))


async def _execute(
    prepared: Prepared,
    intensity_pct: float,
    journal: JournalSink,
    on_start: Callable[[Session], None] | None,
    on_tick: Callable[[SessionState], None] | None,
    handle_signals: bool,
    pause_limit_s: float,
) -> RunOutcome:
    loop = asyncio.get_running_loop()
    driver = prepared.driver
    program = prepared.loaded.program
    entry: LedgerEntry | None = None
    started_s = loop.time()
    if not driver.simulated:  # counted whatever the journal folder: one ledger per person
        entry = begin_session(session_id=journal.session_id, program=program.name,
                              sites=[c.site for c in program.channels],
                              planned_s=prepared.plan.duration_s, limits=prepared.limits,
                              device_url=prepared.device_url)
    try:
        path = journal.header(
            program=program.name, program_sha256=prepared.loaded.sha256,
            program_source="builtin" if prepared.loaded.builtin else prepared.loaded.source,
            device_url=prepared.device_url, device_model=driver.capabilities.model,
            simulated=driver.simulated,
            limits=asdict(prepared.limits), profile_version=prepared.profile_version,
            intensity_pct=intensity_pct,
            sites={c.id: c.site for c in program.channels},
            thresholds={ch: asdict(th) for ch, th in prepared.thresholds.items()},
        )
        for adaptation in prepared.adaptations:  # what runs differs from the file: on record
            journal.event(0.0, "adaptation", text=str(adaptation))
    except EmsError:
        if entry is not None:  # nothing was delivered; the session still counts as one
            with contextlib.suppress(LedgerError):  # else it counts with its planned length
                end_session(entry, 0.0, "journal not written")
        raise
    session: Session | None = None
    result: SessionResult | None = None
    installed: list[int] = []
    # what the driver reports while it connects (the device's identity and versions) comes
    # before the session listens: it is journaled here, at t = 0
    connect_reports: list[Telemetry] = []

    def keep(telemetry: Telemetry) -> None:
        if session is None:
            connect_reports.append(telemetry)

    driver.add_listener(keep)
    try:
        await driver.connect()
        for report in connect_reports:
            journal.telemetry(0.0, report)
        verified = prepared.verified or certify(prepared.plan, prepared.limits,
                                                driver.capabilities)
        session = Session(verified, driver, intensity_pct=intensity_pct,
                          journal=journal, on_tick=on_tick, pause_limit_s=pause_limit_s)
        if handle_signals:
            for sig, why in SIGNAL_WORDS.items():
                loop.add_signal_handler(sig, session.stop, "signal", why)
                installed.append(sig)
        if on_start is not None:
            on_start(session)
        result = await session.run()
    except EmsError as exc:
        result = SessionResult("fault", str(exc), 0.0, [], 1)
    finally:
        for installed_sig in installed:
            loop.remove_signal_handler(installed_sig)
        try:
            await driver.close()
        except EmsError as exc:
            result = _unconfirmed(result, exc)
    assert result is not None  # set by the session, its connect failure or the close
    delivered = _delivered(driver, result)
    journal.footer(result.end_reason, delivered, message=result.message)
    journal.close()
    if entry is not None:
        try:
            end_session(entry, loop.time() - started_s, result.end_reason, path)
        except LedgerError as exc:  # the start record stays: it counts with its planned length
            note = f"the session's length was not recorded: {exc}"
            result = replace(result, message=f"{result.message}; {note}",
                             exit_code=max(result.exit_code, 1), events=[*result.events, note])
    return RunOutcome(result, path, delivered)


def _unconfirmed(result: SessionResult | None, exc: EmsError) -> SessionResult:
    """The session's own result with the failed stop confirmation added, never replacing it.

    What the session ended with (its reason, message, stimulation time and peaks) is what the
    user and the journal must see (HZ-22); the close's unconfirmed stop is one more fact, and it
    makes the exit code 1 whatever the session's own reason was.
    """
    note = f"stop not confirmed: {exc}"
    if result is None:
        return SessionResult("fault", note, 0.0, [], 1, [note])
    events = [*result.events, note] if note not in result.events else list(result.events)
    message = result.message if note in result.message else f"{result.message}; {note}"
    reason = result.end_reason if result.end_reason in ("fault", "guard") else "fault"
    return SessionResult(reason, message, result.stim_time_s, list(result.peak_ma), 1, events)


def _delivered(driver: Driver, result: SessionResult) -> dict[str, Any]:
    """What was delivered: from the simulator's recorder, else from what the session sent."""
    figures: dict[str, Any] = {"stim_time_s": result.stim_time_s, "source": "commands",
                               "peak_ma_commanded": result.peak_ma}
    if driver.has_recorder:
        figures["source"] = "simulator"
        figures["channels"] = {str(ch): values
                               for ch, values in driver.recorder.summary().items()}
    return figures
