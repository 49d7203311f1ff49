"""Driver conformance: the steps ``emsctl check`` runs and the conformance suite asserts.

Each step exercises one promise of the driver contract (docs/writing-a-driver.md §1, §2) and of
the family's wire facts (its protocol document): the handshake, identity, an update and its
acknowledgement, the round trip, a missing acknowledgement, the stop that wins a race, the lease,
the device falling silent by itself, electrode reports, no output without a new session, and one
command outstanding. A step observes only what a host observes on real hardware — the link's
bytes through a :class:`~emsctl.wiretap.ByteTap` / :class:`~emsctl.wiretap.GattTap`, the
driver's telemetry, the loop's time — plus, on an emulation only, the emulator's record of what
it delivered (``Driver.recorder``) as an extra check.

What a family's bytes mean is not known here: each family (one per protocol, in the drivers
layer) describes its wire facts in a :class:`Family`, found through :data:`FAMILIES` by module
path, as data, like the device table. A new family is one entry there plus its ``conformance``
module.

Output. With no person connected (``emsctl check`` asks the owner; simulated devices need
nothing) the profile and screening gates do not apply, but every ceiling does: each output goes
through a :class:`~emsctl.guard.Guard` with the effective limits first. Steps that put current
on the electrodes use channel 1 only, at the device's smallest non-zero step and never above
:data:`OUTPUT_MAX_MA`, with leases that end it within :data:`OUTPUT_MAX_S`; the run warns once
before the first of them. A device whose output cannot be held at a small minimum (the
openEMSstim passes another stimulator's output through) runs only the steps that need none.

Reads time only from the running loop (virtual on the simulator).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import math
import statistics
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from .contract import ZERO, ChannelSetpoint, Driver, DriverStoppedError, Telemetry
from .devices import OpenOptions, open_device, parse_device_url
from .errors import DeviceError, EmsError, InputError
from .guard import ChannelGuard, Guard
from .limits import DEFAULTS, Limits
from .wiretap import TapControls, WireEvent, WireLog

__all__ = [
    "FAMILIES",
    "OUTPUT_MAX_MA",
    "OUTPUT_MAX_S",
    "STEPS",
    "CheckOptions",
    "CheckRun",
    "Exchange",
    "Family",
    "FamilyEntry",
    "Outcome",
    "Report",
    "Status",
    "StepResult",
    "StepSpec",
    "family_entry_for",
    "load_family",
    "run_check",
    "smallest_output",
]

#: The most current a check may put on the electrodes: the smallest step, and never above this.
OUTPUT_MAX_MA = 2.0
#: The longest a check's output may last (each lease is shorter, and a stop follows).
OUTPUT_MAX_S = 1.0
#: The lease of an update step: the output ends by itself within it whatever happens next.
UPDATE_LEASE_S = 0.5
#: The lease of the lease step: short, so that its end is the thing observed.
SHORT_LEASE_S = 0.3
#: A step that takes longer than this has hung: it fails, and the next one opens a new session.
STEP_TIMEOUT_S = 30.0
#: How long the stop race holds the device's replies, waiting for the stop to go out.
RACE_HOLD_S = 1.0
#: How soon after it is requested a stop must be on the wire: "at once". Emulated time does not
#: pass while code runs; on a real clock this allows for scheduling, far below any ack timeout.
STOP_AT_ONCE_S = {True: 1e-3, False: 0.1}
#: On a real clock, how late a host timer may fire before it counts against the driver.
REAL_TIME_SLACK_S = 0.5

Status = Literal["passed", "failed", "not_possible", "not_run"]
Load = Literal["resistor", "open"]


# ---------------------------------------------------------------------- results


@dataclass
class Outcome:
    """What one step found.

    Attributes:
        problems: one sentence per broken promise; any makes the step fail.
        notes: what else a reader should know.
        measurements: name → value, seconds for times.
        facts: name → text (identity, versions).
        not_possible: why the step cannot run on this device (then it is neither passed nor
            failed).
    """

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    measurements: dict[str, float] = field(default_factory=dict)
    facts: dict[str, str] = field(default_factory=dict)
    not_possible: str | None = None

    @classmethod
    def impossible(cls, reason: str) -> Outcome:
        """An outcome for a step this device cannot do."""
        return cls(not_possible=reason)


@dataclass
class StepResult:
    """One step of a report.

    Attributes:
        id: the step's stable name (``handshake``, ``stop_race`` …).
        title: what it checks, in words.
        status: passed, failed, not possible on this device, or not run.
        detail: the problems (failed), the reason (not possible) or a summary (passed).
        cites: the sections that state the facts it checks.
        measurements: what it measured (seconds for times).
        facts: what it learnt (identity).
        output: whether it asked the device for current.
        wire: the bytes exchanged while it ran.
        t0_s: the loop's time when it began (wire times are shown relative to it).
    """

    id: str
    title: str
    status: Status
    detail: str
    cites: tuple[str, ...] = ()
    measurements: dict[str, float] = field(default_factory=dict)
    facts: dict[str, str] = field(default_factory=dict)
    output: bool = False
    wire: list[WireEvent] = field(default_factory=list)
    t0_s: float = 0.0


@dataclass
class Report:
    """Everything a check found, ready to render (:mod:`emsctl.check_report`).

    Attributes:
        url: the device URL checked.
        family: the protocol family.
        document: the family's protocol document.
        model: the driver's model name.
        simulated: an emulated device (its times are emulated time).
        load: what was across the outputs.
        person: how "no person connected" was established.
        output: the output the steps used, in words (None: no output step ran).
        identity: what the device told about itself.
        steps: one result per step, in order.
        describe: decodes one wire event into words (the family's codec).
    """

    url: str
    family: str
    document: str
    model: str
    simulated: bool
    load: str
    person: str
    output: str | None
    identity: dict[str, str]
    steps: list[StepResult]
    describe: Callable[[WireEvent], str] = field(repr=False, default=lambda _e: "")

    @property
    def exit_code(self) -> int:
        """0 when every step that was possible passed, 1 when one failed or did not run."""
        return 0 if all(s.status in ("passed", "not_possible") for s in self.steps) else 1

    def counts(self) -> dict[str, int]:
        """How many steps ended in each status."""
        out = {"passed": 0, "failed": 0, "not_possible": 0, "not_run": 0}
        for step in self.steps:
            out[step.status] += 1
        return out


@dataclass(frozen=True)
class Exchange:
    """A host command and the device's reply to it, as seen on the wire.

    Attributes:
        label: the command in words.
        sent: the host's write.
        reply: the device's reply, or None (none came, or the protocol has no reply and
            ``dt_s`` is the link's own completion time).
        dt_s: from the write to the reply (or the write's completion); None when unanswered.
    """

    label: str
    sent: WireEvent
    reply: WireEvent | None
    dt_s: float | None


# ---------------------------------------------------------------------- families


class Family:
    """A protocol family's wire facts, as the conformance steps need them.

    A family overrides what its protocol has; the defaults say "this protocol has none". Every
    method reads bytes a host sees (wire events) and the driver's public state; none may touch
    an emulator.
    """

    #: The family's name (the key of :data:`FAMILIES`).
    name = ""
    #: The device, in words.
    title = ""
    #: The protocol document, from the repository root.
    document = ""
    #: Per step id, the sections that state what the step checks.
    cites: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: The device checks the load before each pulse and reports an open one.
    electrode_check = False
    #: Why there is no electrode report (when ``electrode_check`` is False).
    no_electrode_reason = "the device reports no electrode state"
    #: How long to wait after an update for its acknowledgement to be seen.
    update_settle_s = 0.05
    #: On an emulation: how long after the host asks for zero the record must show it.
    emulated_settle_s = 0.05
    #: Whether a round trip needs output (the device answers only output changes).
    round_trip_needs_output = False
    #: Why some commands get no reply even when all is well ("" when all of them do).
    unanswered_reason = ""
    #: Per step id, fault reports (device_error, device_reset, link_lost) the step provokes on
    #: purpose, beyond those every family's step does (:attr:`StepSpec.provokes`).
    provoked: ClassVar[dict[str, frozenset[str]]] = {}

    def install_tap(self, driver: Driver, log: WireLog, session: int) -> TapControls:
        """Put a tap on ``driver``'s link before it connects; return the tap.

        Raises:
            InputError: the driver is not this family's.
        """
        raise InputError(f"{self.name}: no tap for {type(driver).__name__}")

    def describe(self, event: WireEvent) -> str:
        """One wire event in words (empty when the bytes mean nothing known)."""
        return ""

    def output_blocker(self, driver: Driver) -> str | None:
        """Why this device's output cannot be held at a small minimum, or None."""
        return None

    def check_handshake(self, events: Sequence[WireEvent], driver: Driver) -> list[str]:
        """Problems with the handshake's bytes."""
        return []

    def identify(self, events: Sequence[WireEvent],
                 driver: Driver) -> tuple[dict[str, str], list[str]]:
        """What the device said about itself, and problems (a missing version …)."""
        return {}, []

    async def probe_round_trips(self, run: CheckRun, driver: Driver) -> None:
        """Exchange a few commands that need no output, for the round trip."""

    def exchanges(self, events: Sequence[WireEvent]) -> list[Exchange]:
        """The commands in ``events`` and their replies."""
        return []

    def no_round_trip_reason(self, run: CheckRun) -> str | None:
        """Why no round trip can be measured on this device, or None when one can."""
        return None

    def update_problems(self, events: Sequence[WireEvent], telemetry: Sequence[Telemetry],
                        driver: Driver, setpoints: Sequence[ChannelSetpoint]) -> list[str]:
        """Problems with an update's bytes and its acknowledgement."""
        return []

    async def ack_timeout(self, run: CheckRun) -> Outcome:
        """Withhold one acknowledgement and see the driver time out and recover."""
        return Outcome.impossible("the protocol has no acknowledgements")

    def is_race_trigger(self, channel: str, data: bytes) -> bool:
        """Whether a host write is the update the stop race is started on."""
        return False

    def is_stop(self, channel: str, data: bytes) -> bool:
        """Whether a host write (to ``channel``) is the protocol's stop."""
        return False

    def output_requested_until(self, events: Sequence[WireEvent]) -> float | None:
        """Until when the host's writes in ``events`` ask for output: None when they never
        do, ``math.inf`` when they still do at the end."""
        return None

    async def device_watchdog(self, run: CheckRun) -> Outcome:
        """Let the host fall silent and see the device end its output by itself."""
        return Outcome.impossible("the device's own timeout cannot be observed from the host")

    async def electrode_wait(self, run: CheckRun, driver: Driver,
                             setpoints: Sequence[ChannelSetpoint]) -> None:
        """After the electrode step's update, until its stop: the time the device has to
        report its electrodes (a family whose device reports only when asked renews the
        update here, as a session does)."""
        await asyncio.sleep(0.3)

    def is_electrode_report(self, telemetry: Telemetry) -> bool:
        """Whether a telemetry report is the device's electrode (open load) report."""
        return telemetry.kind == "electrode_off"

    def outstanding_problems(self, events: Sequence[WireEvent], run: CheckRun) -> list[str]:
        """Commands written while another was still outstanding, in words."""
        return []

    def cite(self, step_id: str) -> tuple[str, ...]:
        """The sections a step cites for this family."""
        return self.cites.get(step_id, ())


@dataclass(frozen=True)
class FamilyEntry:
    """One row of :data:`FAMILIES`.

    Attributes:
        family: ``"module:attribute"`` of the family's :class:`Family` object.
        schemes: the device URL schemes that speak this protocol (real and emulated).
        emulations: the emulated devices the conformance suite runs on by default.
        open_load: emulations whose electrodes are on nothing (for the electrode step).
    """

    family: str
    schemes: tuple[str, ...]
    emulations: tuple[str, ...]
    open_load: tuple[str, ...] = ()


_OPENEMS_DECLARED = "ma_at_100=40&frequency_hz=80&pulse_width_us=180"

#: family name → where its wire facts live and which devices speak it.
FAMILIES: dict[str, FamilyEntry] = {
    "sciencemode2": FamilyEntry(
        "emsctl.drivers.sciencemode2.conformance:FAMILY",
        ("sciencemode2", "sim+sciencemode2"),
        ("sim+sciencemode2",),
        ("sim+sciencemode2?impedance_ohm=1000000",)),
    "coyote3": FamilyEntry(
        "emsctl.drivers.coyote3.conformance:FAMILY",
        ("coyote3", "sim+coyote3"),
        ("sim+coyote3?ma_per_step=0.2",)),
    "sciencemode4": FamilyEntry(
        "emsctl.drivers.sciencemode4.conformance:FAMILY",
        ("sciencemode4", "sim+sciencemode4"),
        ("sim+sciencemode4",),
        ("sim+sciencemode4?impedance_ohm=1000000",)),
    "openems": FamilyEntry(
        "emsctl.drivers.openems.conformance:FAMILY",
        ("openems", "openems+ble", "sim+openems", "sim+openems+ble"),
        (f"sim+openems?{_OPENEMS_DECLARED}", f"sim+openems+ble?{_OPENEMS_DECLARED}")),
}


def family_entry_for(url: str) -> tuple[str, FamilyEntry]:
    """The family a device URL belongs to.

    Raises:
        InputError: a bad URL, or a scheme no family lists.
    """
    scheme = parse_device_url(url).scheme
    for name, entry in FAMILIES.items():
        if scheme in entry.schemes:
            return name, entry
    known = sorted(s for entry in FAMILIES.values() for s in entry.schemes)
    raise InputError(f"there are no conformance steps for '{scheme}' devices; known: "
                     f"{', '.join(known)}")


def load_family(entry: FamilyEntry) -> Family:
    """Import a family's :class:`Family` object.

    Raises:
        InputError: the module or its object is missing.
    """
    module_name, _, attr = entry.family.partition(":")
    try:
        family = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"the conformance steps in {entry.family} are not available: "
                         f"{exc}") from exc
    if not isinstance(family, Family):
        raise InputError(f"{entry.family} is not a conformance family")
    return family


# ---------------------------------------------------------------------- the run


@dataclass
class CheckOptions:
    """How a check runs.

    Attributes:
        load: what is across the outputs: a test resistor, or electrodes on nothing.
        allow_output: False runs only the steps that need no output.
        limits: the effective limits every output is checked against (ceilings apply).
        fault_plan: a fault plan for a simulated device (opaque here).
        seed: seeds a simulated device's fault dice.
        steps: run only these step ids (None: all); the handshake always runs first.
        warn: called with a warning line before the first output (the CLI prints it).
        person: how "no person connected" was established, for the report.
    """

    load: Load = "resistor"
    allow_output: bool = True
    limits: Limits = DEFAULTS
    fault_plan: Any = None
    seed: int = 0
    steps: tuple[str, ...] | None = None
    warn: Callable[[str], None] = lambda _line: None
    person: str = "no person connected"


def smallest_output(driver: Driver, limits: Limits) -> tuple[tuple[ChannelSetpoint, ...], str]:
    """Channel 1 at the device's smallest non-zero step, every other channel at zero.

    The rate is 20 Hz and the width the narrowest both the device and the limits allow, each
    moved into the device's range where it has to be.

    Returns:
        The setpoints and a sentence describing them.

    Raises:
        InputError: the smallest step is above :data:`OUTPUT_MAX_MA`, or the device's ranges
            and the limits do not meet.
    """
    caps = driver.capabilities
    step_ma = caps.amplitude_step_ma if caps.amplitude_step_ma > 0 else 1.0
    amplitude_ma = caps.quantize_ma(step_ma)
    if not 0 < amplitude_ma <= OUTPUT_MAX_MA + 1e-9:
        raise InputError(f"its smallest step is {step_ma:g} mA, more than the {OUTPUT_MAX_MA:g} "
                         "mA a check may use")
    f_low = max(caps.frequency_min_hz, limits.frequency_min_hz)
    f_high = min(caps.frequency_max_hz, limits.frequency_max_hz)
    w_low = max(caps.pulse_width_min_us, limits.pulse_width_min_us)
    w_high = min(caps.pulse_width_max_us, limits.pulse_width_max_us)
    if f_low > f_high or w_low > w_high:
        raise InputError("its pulse rates or widths and the limits have nothing in common")
    frequency_hz = min(max(20.0, f_low), f_high)
    setpoint = ChannelSetpoint(amplitude_ma, frequency_hz, w_low)
    text = (f"channel 1 only, at {amplitude_ma:g} mA (the smallest step), {frequency_hz:g} Hz, "
            f"{w_low:g} µs, at most {OUTPUT_MAX_S:g} s at a time")
    return (setpoint,) + (ZERO,) * (caps.channels - 1), text


class CheckRun:
    """One check of one device: its sessions, the wire log, the telemetry, the steps' tools.

    Args:
        url: the device URL.
        family: its family's wire facts.
        options: how to run.
    """

    def __init__(self, url: str, family: Family, options: CheckOptions) -> None:
        self.url = url
        self.family = family
        self.options = options
        #: A driver never connected, for what can be known before connecting (capabilities).
        self.probe = open_device(url, self._open_options())
        self.log = WireLog()
        #: (session, report) for every telemetry report of every session.
        self.telemetry: list[tuple[int, Telemetry]] = []
        self.driver: Driver | None = None
        self.tap: TapControls | None = None
        self.session = -1
        self.broken = False
        self.output_used = False
        self.output_text: str | None = None
        self._drivers: list[Driver] = []
        self._warned = False

    # ------------------------------------------------------------------ sessions

    def open(self) -> Driver:
        """Make a new driver with a tap on its link (not connected).

        Raises:
            InputError: see :func:`emsctl.devices.open_device`.
        """
        driver = open_device(self.url, self._open_options())
        self.session += 1
        session = self.session
        self.tap = self.family.install_tap(driver, self.log, session)
        driver.add_listener(lambda t: self.telemetry.append((session, t)))
        self._drivers.append(driver)
        self.driver = driver
        self.broken = False
        return driver

    def _open_options(self) -> OpenOptions:
        return OpenOptions(fault_plan=self.options.fault_plan, seed=self.options.seed)

    async def fresh(self) -> Driver:
        """A new session: close the current driver, open a new one and connect it.

        Raises:
            DeviceError: the new session cannot connect.
        """
        await self._close_current()
        driver = self.open()
        try:
            await driver.connect()
        except BaseException:
            self.broken = True
            raise
        return driver

    async def ready(self) -> Driver:
        """The current driver, connected and armed (a new session if it broke).

        Raises:
            DeviceError: no session can be connected.
        """
        driver = self.driver
        if driver is None or self.broken:
            return await self.fresh()
        if driver.stopped:
            try:
                await driver.connect()  # re-arm: the same link, a new start from zero
            except EmsError:
                return await self.fresh()
        return driver

    async def close_all(self) -> None:
        """Close every driver this run opened (errors are ignored: the stop already went)."""
        for driver in self._drivers:
            with contextlib.suppress(EmsError, OSError):
                await driver.close()

    async def _close_current(self) -> None:
        if self.driver is not None:
            with contextlib.suppress(EmsError, OSError):
                await self.driver.close()
            self.driver = None

    # ------------------------------------------------------------------ output

    def output_blocker(self, *, electrode_step: bool = False) -> str | None:
        """Why output steps cannot run here, or None."""
        driver = self.probe
        reason = self.family.output_blocker(driver)
        if reason is not None:
            return reason
        if not self.options.allow_output:
            return "output was not allowed for this check (--no-output)"
        try:
            smallest_output(driver, self.options.limits)
        except InputError as exc:
            return f"{self.family.title}: {exc}"
        if self.options.load == "open" and self.family.electrode_check and not electrode_step:
            cites = ", ".join(self.family.cite("electrode"))
            return (f"not with the electrodes on nothing: the {self.family.title} checks the "
                    f"load before each pulse and refuses output ({cites})")
        return None

    def output_setpoints(self, driver: Driver) -> tuple[ChannelSetpoint, ...]:
        """The smallest output, checked against every ceiling; warns before the first.

        Raises:
            InputError: the device cannot be held at a small output.
            SafetyViolation: a limit would be broken (the check never sends it).
        """
        setpoints, text = smallest_output(driver, self.options.limits)
        caps = driver.capabilities
        limits = self.options.limits
        channels = [ChannelGuard(OUTPUT_MAX_MA if i == 0 else 0.0, limits.electrode_area_min_cm2)
                    for i in range(caps.channels)]
        Guard(limits, channels, caps.amplitude_step_ma, caps.update_period_s).check(
            self.now(), 0.0, setpoints)
        if not self._warned:
            self._warned = True
            self.options.warn(f"WARNING: the next steps put current on the outputs of "
                              f"{caps.model}: {text}. A test load only, no person.")
        self.output_used = True
        self.output_text = text
        return setpoints

    # ------------------------------------------------------------------ observations

    def now(self) -> float:
        """The loop's time."""
        return asyncio.get_running_loop().time()

    def telemetry_since(self, t_s: float, session: int | None = None) -> list[Telemetry]:
        """Reports from ``t_s`` on (of one session, when given)."""
        return [t for s, t in self.telemetry
                if t.t_s >= t_s and (session is None or s == session)]

    @property
    def recorder(self) -> Any:
        """The emulator's record of what it delivered (None on hardware)."""
        driver = self.driver
        return driver.recorder if driver is not None and driver.has_recorder else None

    def emulated_peak_problems(self, limit_ma: float) -> list[str]:
        """On an emulation: problems when any channel ever delivered more than ``limit_ma``."""
        recorder = self.recorder
        if recorder is None:
            return []
        problems = []
        for channel, figures in recorder.summary().items():
            peak = float(figures.get("peak_ma", 0.0))
            if peak > limit_ma + 1e-6:
                problems.append(f"(emulation) channel {channel} delivered {peak:g} mA, more than "
                                f"the {limit_ma:g} mA asked for")
        return problems


# ---------------------------------------------------------------------- the steps


StepFunction = Callable[[CheckRun], Awaitable[Outcome]]


@dataclass(frozen=True)
class StepSpec:
    """One conformance step: its id, what it checks, and the function that does it."""

    id: str
    title: str
    run: StepFunction
    generic_cites: tuple[str, ...] = ()
    #: Fault reports the step provokes on purpose; any other one during it is a failure.
    provokes: frozenset[str] = frozenset()


async def _handshake(run: CheckRun) -> Outcome:
    out = Outcome()
    mark, t0 = run.log.mark(), run.now()
    driver = await run.fresh()
    out.measurements["handshake_s"] = run.now() - t0
    if not any(t.kind == "connected" for t in run.telemetry_since(t0, run.session)):
        out.problems.append("the driver reported no 'connected' telemetry")
    out.problems += run.family.check_handshake(run.log.since(mark), driver)
    return out


async def _identity(run: CheckRun) -> Outcome:
    driver = await run.ready()
    facts, problems = run.family.identify(run.log.since(0, run.session), driver)
    out = Outcome(problems=problems)
    out.facts = {"model": driver.capabilities.model,
                 "channels": str(driver.capabilities.channels), **facts}
    return out


async def _update_ack(run: CheckRun) -> Outcome:
    blocker = run.output_blocker()
    if blocker is not None:
        return Outcome.impossible(blocker)
    driver = await run.ready()
    setpoints = run.output_setpoints(driver)
    out = Outcome()
    mark, t0 = run.log.mark(), run.now()
    try:
        await driver.apply(setpoints, UPDATE_LEASE_S)
        out.measurements["apply_s"] = run.now() - t0
        await asyncio.sleep(run.family.update_settle_s)
        recorder = run.recorder
        if recorder is not None and recorder.delivered_now_ma(1) <= 0:
            out.problems.append("(emulation) the device delivered nothing on channel 1 after the "
                                "update was acknowledged")
    finally:
        try:
            await driver.stop()
        except DeviceError as exc:
            run.broken = True
            out.problems.append(f"the stop after the update was not confirmed: {exc}")
    events = run.log.since(mark)
    out.problems += run.family.update_problems(events, run.telemetry_since(t0, run.session),
                                               driver, setpoints)
    answered = [x.dt_s for x in run.family.exchanges(events) if x.dt_s is not None]
    if answered:
        out.measurements["update_ack_s"] = max(answered)
    out.problems += run.emulated_peak_problems(setpoints[0].amplitude_ma)
    return out


async def _round_trip(run: CheckRun) -> Outcome:
    family = run.family
    driver = await run.ready()
    reason = family.no_round_trip_reason(run)
    if reason is None and family.round_trip_needs_output:
        blocker = run.output_blocker()
        if blocker is not None:
            reason = f"it answers only a change of output, and {blocker}"
    if reason is not None:
        return Outcome.impossible(reason)
    await family.probe_round_trips(run, driver)
    exchanges = family.exchanges(run.log.events)
    times = [x.dt_s for x in exchanges if x.dt_s is not None]
    out = Outcome()
    if not times:
        out.problems.append("no command was answered, so no round trip could be measured")
        return out
    out.measurements.update({
        "round_trip_min_s": min(times), "round_trip_median_s": statistics.median(times),
        "round_trip_max_s": max(times), "round_trip_count": float(len(times))})
    unanswered = sum(1 for x in exchanges if x.dt_s is None and x.sent.delivered)
    note = f"{len(times)} answered"
    if unanswered:
        note += f", {unanswered} without a reply"
        if family.unanswered_reason:
            note += f" ({family.unanswered_reason})"
    out.notes.append(note)
    return out


async def _ack_timeout(run: CheckRun) -> Outcome:
    return await run.family.ack_timeout(run)


async def _stop_race(run: CheckRun) -> Outcome:
    """Ask for a stop just as an update goes out, and hold the device's replies (on the host's
    side) until the stop is on the wire: a stop that waits for the update's reply never comes
    while they are held. Whatever the link's speed, the race is the same."""
    blocker = run.output_blocker()
    if blocker is not None:
        return Outcome.impossible(blocker)
    driver = await run.ready()
    setpoints = run.output_setpoints(driver)
    tap = run.tap
    assert tap is not None
    family = run.family
    out = Outcome()
    trigger: list[WireEvent] = []
    stop_written: list[WireEvent] = []
    requested: list[tuple[float, asyncio.Future[None] | None]] = []
    stop_out = asyncio.Event()

    def on_stop(event: WireEvent) -> None:
        stop_written.append(event)
        tap.release()
        stop_out.set()

    def on_trigger(event: WireEvent) -> None:  # just before the update reaches the link
        trigger.append(event)
        tap.hold_incoming()
        tap.on_next_write(family.is_stop, on_stop)
        requested.append((run.now(), driver.request_stop()))

    tap.on_next_write(family.is_race_trigger, on_trigger, before=True)
    mark, t0 = run.log.mark(), run.now()
    update = asyncio.ensure_future(driver.apply(setpoints, UPDATE_LEASE_S))
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(stop_out.wait()), RACE_HOLD_S)
        if trigger and not stop_out.is_set():
            out.problems.append(f"no stop went on the wire while the update waited for its "
                                f"reply (held {RACE_HOLD_S:g} s by the check): the stop waited "
                                "behind the update")
    finally:
        tap.release()
        with contextlib.suppress(DriverStoppedError):  # the stop latched first: no output
            await update
        if not trigger:
            await driver.stop()
    if not trigger:
        out.problems.append("the update wrote nothing the stop could race with")
        return out
    t_request, future = requested[0]
    if future is not None:
        try:
            await future
        except DeviceError as exc:
            out.problems.append(f"the stop was not confirmed: {exc}")
    events = run.log.since(mark, run.session)
    stops = stop_written or [e for e in events if e.from_host and e.delivered
                             and e.index > trigger[0].index and family.is_stop(e.channel, e.data)]
    if not stops:
        out.problems.append("no stop went on the wire after the stop was requested")
        return out
    stop = stops[0]
    out.measurements["stop_to_wire_s"] = stop.t_s - t_request
    if stop.t_s - t_request > STOP_AT_ONCE_S[driver.simulated]:
        out.problems.append(f"the stop went on the wire {(stop.t_s - t_request) * 1000:.0f} ms "
                            "after it was requested, not at once: it waited behind the update")
    confirmed = [t.t_s for t in run.telemetry_since(t_request, run.session) if t.kind == "stopped"]
    if confirmed:
        out.measurements["stop_confirmed_s"] = confirmed[0] - t_request
    elif future is not None:
        out.problems.append("the driver did not report the stop confirmed ('stopped' telemetry)")
    between = [e for e in events if trigger[0].index < e.index < stop.index]
    if family.output_requested_until(between) is not None:
        out.problems.append("output was written after the stop was requested, before the stop")
    if family.output_requested_until([e for e in events if e.index > stop.index]) is not None:
        out.problems.append("output was written after the stop")
    recorder = run.recorder
    if recorder is not None:
        zero_at = recorder.zero_after_s(1, t0)
        if zero_at is None or zero_at > stop.t_s + family.emulated_settle_s:
            out.problems.append("(emulation) channel 1 was still delivering after the stop "
                                "reached the device")
        out.problems += run.emulated_peak_problems(setpoints[0].amplitude_ma)
    return out


async def _lease(run: CheckRun) -> Outcome:
    blocker = run.output_blocker()
    if blocker is not None:
        return Outcome.impossible(blocker)
    driver = await run.ready()
    setpoints = run.output_setpoints(driver)
    out = Outcome()
    mark, t0 = run.log.mark(), run.now()
    try:
        await driver.apply(setpoints, SHORT_LEASE_S)
        t1 = run.now()
        await asyncio.sleep(SHORT_LEASE_S + 0.5)  # no renewal: the lease runs out
    finally:
        events = run.log.since(mark, run.session)
        with contextlib.suppress(DeviceError):
            await driver.stop()
    until = run.family.output_requested_until(events)
    if until is None:
        out.problems.append("the update asked for no output")
        return out
    if math.isinf(until):
        out.problems.append(f"{SHORT_LEASE_S + 0.5:g} s after an update with a "
                            f"{SHORT_LEASE_S:g} s lease, the host still asked for output")
        return out
    # the driver may count its lease from when the update went out (after the acks it waits
    # for) rather than from the call: allow for that, plus timer lateness on a real clock
    slack = (t1 - t0) + (0.0 if driver.simulated else REAL_TIME_SLACK_S) + 0.03
    lease_end = t0 + SHORT_LEASE_S
    out.measurements["lease_to_off_s"] = until - lease_end
    if until > lease_end + slack:
        out.problems.append(f"the host asked for output until {until - t0:.3f} s after the "
                            f"update, past its {SHORT_LEASE_S:g} s lease")
    recorder = run.recorder
    if recorder is not None:
        zero_at = recorder.zero_after_s(1, t0)
        if zero_at is None or zero_at > until + run.family.emulated_settle_s:
            out.problems.append("(emulation) channel 1 kept delivering after the lease ended")
        out.problems += run.emulated_peak_problems(setpoints[0].amplitude_ma)
    return out


async def _device_watchdog(run: CheckRun) -> Outcome:
    return await run.family.device_watchdog(run)


async def _electrode(run: CheckRun) -> Outcome:
    family = run.family
    if not family.electrode_check:
        return Outcome.impossible(family.no_electrode_reason)
    blocker = run.output_blocker(electrode_step=True)
    if blocker is not None:
        return Outcome.impossible(blocker)
    driver = await run.ready()
    setpoints = run.output_setpoints(driver)
    out = Outcome()
    t0 = run.now()
    try:
        await driver.apply(setpoints, UPDATE_LEASE_S)
    except DeviceError as exc:
        if run.options.load != "open":
            out.problems.append(f"the update was refused: {exc}")
    await family.electrode_wait(run, driver, setpoints)
    with contextlib.suppress(DeviceError):
        await driver.stop()
    reports = [t for t in run.telemetry_since(t0, run.session) if family.is_electrode_report(t)]
    if run.options.load == "open":
        if not reports:
            out.problems.append("with the electrodes on nothing, the device reported no "
                                "electrode error")
        else:
            out.notes.append(f"reported: {reports[0].message}")
    elif reports:
        out.problems.append(f"the device reported an electrode error with the test load in "
                            f"place ({reports[0].message}); is a 500 Ω–1 kΩ resistor across "
                            "channel 1's outputs?")
    else:
        out.notes.append("no electrode error with the test load in place; run with --load open "
                         "and the electrodes on nothing to see the device report one")
    return out


async def _reconnect_refused(run: CheckRun) -> Outcome:
    driver = await run.ready()
    out = Outcome()
    await driver.stop()
    # the base class refuses output after a stop before the driver sees it; on a device whose
    # output cannot be held small, not even that refusal is tried
    if run.output_blocker() is None:
        setpoints = run.output_setpoints(driver)  # checked and warned for, to be refused
        mark = run.log.mark()
        try:
            await driver.apply(setpoints, UPDATE_LEASE_S)
            out.problems.append("after a stop, an update with output was accepted")
        except DriverStoppedError:
            pass
        if run.family.output_requested_until(run.log.since(mark)) is not None:
            out.problems.append("after a stop, output went on the wire")
    else:
        out.notes.append("output after a stop not tried: output is not possible here")
    await driver.close()
    mark = run.log.mark()
    try:
        await driver.connect()
        out.problems.append("a closed driver connected again; only a new session may")
    except DeviceError:
        pass
    if any(e.from_host for e in run.log.since(mark)):
        out.problems.append("a closed driver wrote to the device")
    run.broken = True
    try:
        await run.fresh()
    except DeviceError as exc:
        out.problems.append(f"a new session could not connect: {exc}")
    return out


async def _one_outstanding(run: CheckRun) -> Outcome:
    out = Outcome()
    out.problems += run.family.outstanding_problems(run.log.events, run)
    commands = sum(1 for e in run.log.events if e.from_host and e.delivered)
    out.measurements["host_writes"] = float(commands)
    return out


_CONTRACT = "docs/writing-a-driver.md"

STEPS: tuple[StepSpec, ...] = (
    StepSpec("handshake", "Connect and handshake", _handshake, (f"{_CONTRACT} §2",)),
    StepSpec("identity", "Device and firmware identity", _identity),
    StepSpec("update_ack", "An update and its acknowledgement", _update_ack),
    StepSpec("round_trip", "Round trip of a command", _round_trip),
    StepSpec("ack_timeout", "A missing acknowledgement times out", _ack_timeout),
    StepSpec("stop_race", "A stop wins the race with a pending update", _stop_race,
             (f"{_CONTRACT} §2, §4",)),
    StepSpec("lease", "Output ends when the lease is not renewed", _lease, (f"{_CONTRACT} §4",)),
    StepSpec("device_watchdog", "The device falls silent by itself", _device_watchdog,
             (f"{_CONTRACT} §1",), frozenset({"device_reset"})),
    StepSpec("electrode", "Electrode and error reports", _electrode, (f"{_CONTRACT} §5",),
             frozenset({"device_error"})),
    StepSpec("reconnect_refused", "No output again without a new session", _reconnect_refused,
             (f"{_CONTRACT} §1, §2",)),
    StepSpec("one_outstanding", "One command outstanding at a time", _one_outstanding),
)


#: Telemetry that means the device or the link failed.
FAULT_REPORTS = frozenset({"device_error", "device_reset", "link_lost"})


async def _run_step(run: CheckRun, spec: StepSpec) -> StepResult:
    mark, t0 = run.log.mark(), run.now()
    run.output_used = False
    reports_before = len(run.telemetry)
    try:
        outcome = await asyncio.wait_for(spec.run(run), STEP_TIMEOUT_S)
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
        from .clock import RealClock, VirtualClock  # noqa: PLC0415

        simulated = open_device(url, OpenOptions(fault_plan=(options or CheckOptions()).fault_plan)
                                ).simulated
        clock = VirtualClock(None) if simulated else RealClock()
    result: Report = clock.run(run_steps(url, options))
    return result
