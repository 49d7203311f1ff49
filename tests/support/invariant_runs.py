"""Random sequences of host and device events, run on every simulated device family.

A :class:`Sequence` is one session: a family, a short program, a lease from the legal range, a
starting intensity and a list of timed :class:`Event` — host stalls, pauses, resumes, intensity
keys, stops, a lost link and the family's device faults (the simulator's fault plans).
:func:`run_sequence` runs it in virtual time (``VirtualClock``) with the driver the device table
opens, and returns a :class:`Run`: the driver (whose ``device`` holds the simulator's record of
what was delivered), the session's result and the host-side facts the checks need (when each
event happened, the program time and the user's intensity at every tick).
:mod:`support.invariant_checks` judges the record.

Host stalls (``freeze``): the whole process stops (suspend, swap, a stalled VM): virtual time
jumps by ``value`` seconds inside one callback, so no host code runs and no timer fires
meanwhile. The emulated devices share the host's loop, so they freeze too; the model's watchdog
still zeroes each channel at its exact deadline, so the record is what a real device would have
done. The openEMSstim's board enforces its on-time in its own emulated firmware loop, which a
freeze stops with the host, and a line on its way is frozen with it
(tests/session/test_safety_host_stall.py says the same): freezes are not drawn for it. A host
that is slow rather than stopped — waiting for late or lost acks, a busy device — comes from
the fault plans (``late_acks``, ``drop_acks``, ``busy``): the session then waits inside the
driver while the driver's own timers and the device run on.

This module must never read the wall clock: time is the virtual loop's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from emsctl.clock import VirtualClock
from emsctl.contract import ChannelSetpoint
from emsctl.devices import OpenOptions
from emsctl.errors import EmsError
from emsctl.limits import DEFAULTS, Limits, tighten
from emsctl.loader import LoadedProgram, parse_program_text
from emsctl.runner import Prepared, prepare_run
from emsctl.session import Session, SessionResult
from emsctl.simulator.faults import ArmedFaultPlan, Fault, FaultPlan, FaultTarget

__all__ = ["FAMILIES", "PROGRAMS", "Event", "Family", "Run", "Sequence", "run_sequence",
           "sequences"]

#: Device faults in which the output stage itself disobeys (it applies a current it was not
#: asked for). Only a device that reports the current it applies can be caught doing it
#: (sim, Coyote B1); SAFETY.md's fault matrix shows the others as known limits (undetected‡),
#: so these are drawn only for the families that report strength.
DISOBEYING_FAULTS = frozenset({"strength_change", "wrong_current"})


@dataclass(frozen=True)
class Family:
    """A device family as the invariants see it.

    Attributes:
        key: short name. url: what the device table opens.
        host_bound_s: the device's own bound on output after its host is gone, as SAFETY.md
            documents it, given the session's lease: the lease itself (sim, openEMSstim on-time,
            plus the ≤ 50 ms the firmware's loop pass may be late), the RehaStim2's 1.2 s
            watchdog, the P24's fixed 2 s timeout, the Coyote's 100 ms frame.
        lag_s: the longest a command takes from the host's tick to the device's output (wire
            time, execution latency, the Coyote's next 100 ms frame, the openEMSstim's 50 ms
            line slots): output is compared with what the host asked for within this window.
        programs: the test programs this family can make.
        faults: the fault kinds drawn for it (those its emulation supports, less the ones the
            docstring of :mod:`tests.session.test_invariants` leaves out, with the reason).
        freeze: whether whole-process freezes are drawn (see the module docstring).
        per_pulse: the device applies a changed setting from the channel's next pulse period
            (the P24, docs/protocols/sciencemode4.md §9), so a change may also wait one period of
            the slowest frequency of the plan.
        blind: the host cannot see a command lost on the link (the Coyote's B0 frames are
            written without response; the openEMSstim gives no answer to a renewal): a lost
            frame or renewal silences the output (SAFETY.md, fault matrix: "a lost frame is
            100 ms of silence", "a lost renewal: the on-time ends output") until the next one
            gets through with the level the host asks for then.
        checksum: whether the protocol protects its commands. The openEMSstim's lines have no
            checksum: a corrupted digit can set any intensity, which the driver's caps keep
            within the verified cap, until the board's echo shows it and the driver shuts the
            board down (SAFETY.md, HZ-12 and "openEMSstim: what the host cannot check"). The
            Coyote's B0 frames have none either: a damaged frame that stays in range plays
            for its 100 ms at another strength (within the BF soft limits), frequency or
            width, and only a strength that differs is reported (B1) and ends the session.
    """

    key: str
    url: str
    host_bound_s: Callable[[float], float]
    lag_s: float
    programs: tuple[str, ...]
    faults: tuple[str, ...]
    freeze: bool = True
    per_pulse: bool = False
    blind: bool = False
    checksum: bool = True


_COMMON = ("disconnect", "device_reset", "electrode_off", "impedance", "late_acks")
_BYTES = ("corrupt_bytes", "duplicate_frames", "drop_frames")
_OPENEMS = "ma_at_100=16&frequency_hz=40&pulse_width_us=180"

FAMILIES: dict[str, Family] = {f.key: f for f in (
    Family("sim", "sim", lambda lease_s: lease_s, 0.0,
           ("steady", "trains", "twitch", "bursts"),
           (*_COMMON, "drop_acks", "battery_low", "strength_change", "wrong_current")),
    Family("sciencemode2", "sim+sciencemode2", lambda lease_s: 1.2, 0.1,
           ("steady", "trains", "twitch"),
           (*_COMMON, "drop_acks", "busy", *_BYTES)),
    Family("sciencemode4", "sim+sciencemode4", lambda lease_s: 2.0, 0.1,
           ("steady", "trains", "twitch"),
           (*_COMMON, "drop_acks", "busy", *_BYTES), per_pulse=True),
    Family("coyote3", "sim+coyote3?ma_per_step=0.2&us_per_intensity=3", lambda lease_s: 0.1,
           0.25, ("steady", "trains", "twitch"),
           (*_COMMON, "drop_acks", "battery_low", "strength_change", "wrong_current", *_BYTES),
           blind=True, checksum=False),
    # openEMSstim: no acks (nothing to drop or delay); a reset is learnt only from the setup
    # banner 11.4 s later, and the lines buffered during setup run at the pre-reset level for
    # ≤ 0.1 s first (SAFETY.md, fault matrix, stop*): a documented firmware limit, not drawn
    Family("openems", f"sim+openems?{_OPENEMS}", lambda lease_s: lease_s + 0.05, 0.25,
           ("steady", "trains"),
           ("disconnect", "electrode_off", "impedance", *_BYTES), freeze=False, blind=True,
           checksum=False),
    Family("openems+ble", f"sim+openems+ble?{_OPENEMS}", lambda lease_s: lease_s + 0.05, 0.25,
           ("steady", "trains"),
           ("disconnect", "electrode_off", "impedance", "duplicate_frames", "drop_frames"),
           freeze=False, blind=True),
)}

_HEAD = """\
name = "{name}"
title = "Invariant test program"
purpose = "{purpose}"
evidence = "Test data for tests/session/test_invariants.py; no clinical use."
description = "A short program for the invariant tests."
placement = "Test data."
calibration_frequency_hz = {cal_hz}
calibration_pulse_width_us = {cal_us}
soft_start_s = 5
transition_s = 2
end_ramp_s = 3

[[channels]]
id = 1
site = "{site}-left"
electrode_area_cm2 = 20
max_amplitude_ma = 40

[[channels]]
id = 2
site = "{site}-right"
electrode_area_cm2 = 20
max_amplitude_ma = 40
"""

#: Short programs every family in its list can make. 40 Hz / 180 µs is what the openEMSstim's
#: external stimulator is declared at; sensory level (capped at MT) keeps 40 Hz trains exempt
#: from L18; ``twitch`` changes frequency between phases (N is the larger); ``bursts`` is
#: burst TENS, which only the sim device times.
PROGRAMS: dict[str, str] = {
    "steady": _HEAD.format(name="inv-steady", purpose="tens", cal_hz=40, cal_us=180,
                           site="lower-back") + """
[[phases]]
name = "steady"
duration_s = 12
frequency_hz = 40
pulse_width_us = 180
amplitude = "MT-10%"
amplitude_cap = "MT"
""",
    "trains": _HEAD.format(name="inv-trains", purpose="tens", cal_hz=40, cal_us=180,
                           site="lower-back") + """
[[phases]]
name = "trains"
duration_s = 14
frequency_hz = 40
pulse_width_us = 180
amplitude = "MT-10%"
amplitude_cap = "MT"
duty = { on_s = 1, off_s = 1, ramp_up_s = 1, ramp_down_s = 1 }
""",
    "twitch": _HEAD.format(name="inv-twitch", purpose="circulation", cal_hz=8, cal_us=250,
                           site="calf") + """
[[phases]]
name = "quick"
duration_s = 7
frequency_hz = 8
pulse_width_us = 250
amplitude = "MT+20%"
duty = { on_s = 1, off_s = 1, ramp_up_s = 1, ramp_down_s = 1 }

[[phases]]
name = "slow"
duration_s = 6
frequency_hz = 3
pulse_width_us = 250
amplitude = "MT+10%"
""",
    "bursts": _HEAD.format(name="inv-bursts", purpose="tens", cal_hz=100, cal_us=180,
                           site="lower-back") + """
[[phases]]
name = "bursts"
duration_s = 12
frequency_hz = 100
pulse_width_us = 180
amplitude = "MT-10%"
amplitude_cap = "MT"
burst = { rate_hz = 2, pulses = 10 }
""",
}


def _loaded(name: str) -> LoadedProgram:
    text = PROGRAMS[name]
    return LoadedProgram(parse_program_text(text, f"<{name}>"), f"<{name}>",
                         hashlib.sha256(text.encode()).hexdigest(), False, text)


_LOADED: dict[str, LoadedProgram] = {}


def loaded_program(name: str) -> LoadedProgram:
    """The test program ``name``, parsed once."""
    if name not in _LOADED:
        _LOADED[name] = _loaded(name)
    return _LOADED[name]


@dataclass(frozen=True)
class Event:
    """One thing that happens at ``t_s`` seconds after the session started.

    ``kind`` is a host action (``pause``, ``resume``, ``plus``, ``minus``, ``stop``), a host
    stall (``freeze``: ``value`` seconds) or a fault kind of the simulator's plans
    (``disconnect`` is the lost link), with the fault's ``channel``, ``duration_s`` and
    ``value``.
    """

    t_s: float
    kind: str
    value: float | None = None
    channel: int | None = None
    duration_s: float | None = None

    @property
    def is_fault(self) -> bool:
        """True for the simulator's fault kinds (armed through a fault plan)."""
        return self.kind not in _HOST_KINDS

    def fault(self) -> Fault:
        """This event as a fault of the simulator's plan (``at_s`` = ``t_s``)."""
        return Fault(self.kind, self.t_s, self.channel, self.duration_s, self.value)  # type: ignore[arg-type]


_HOST_KINDS = frozenset({"pause", "resume", "plus", "minus", "stop", "freeze"})


@dataclass(frozen=True)
class Sequence:
    """One session's worth of events on one family.

    ``copies``: how many times a line hit by ``duplicate_frames`` arrives, on the families
    whose emulated board sits behind an in-memory serial cable (the openEMSstim). The fault
    plans send it twice (two overlapping faults: still twice); 4 is what two overlapping faults
    made when they each doubled the line, which is how a storm that the 19 200-baud line cannot
    carry was found (SAFETY.md, Invariants). Never drawn: only the regression sequences set it.
    """

    family: str
    program: str
    lease_s: float
    intensity_pct: float
    seed: int
    events: tuple[Event, ...]
    copies: int = 2

    def limits(self) -> Limits:
        """The defaults with the watchdog (and so the lease) tightened to ``lease_s``."""
        if self.lease_s >= DEFAULTS.watchdog_s:
            return DEFAULTS
        return tighten(DEFAULTS, watchdog_s=self.lease_s,
                       heartbeat_s=min(DEFAULTS.heartbeat_s, self.lease_s / 2))


# ---------------------------------------------------------------------- strategies

_TICK_S = 0.1
#: A pause longer than this ends the session (Session's ``pause_limit_s``): long enough for
#: the resumes drawn, short enough that a forgotten pause costs little virtual time.
PAUSE_LIMIT_S = 4.0
#: Stalls: shorter than any lease, about a lease, longer than every device's bound.
_STALLS_S = (0.05, 0.15, 0.3, 0.6, 0.95, 1.05, 1.3, 2.5)
#: Leases from the legal range: at least two command periods (0.2 s), at most L21's 1 s.
_LEASES_S = (0.2, 0.25, 0.4, 0.5, 0.75, 1.0)


def _times(duration_s: float) -> st.SearchStrategy[float]:
    """Event times: on a tick, a hair either side of one, or anywhere (1 ms grid)."""
    ticks = int(duration_s / _TICK_S)
    on_tick = st.integers(0, ticks).map(lambda k: round(k * _TICK_S, 6))
    near = st.tuples(st.integers(0, ticks), st.sampled_from([-0.001, 0.0005, 0.001, 0.05])).map(
        lambda p: max(0.0, round(p[0] * _TICK_S + p[1], 6)))
    anywhere = st.integers(0, int(duration_s * 1000)).map(lambda ms: ms / 1000)
    return st.one_of(on_tick, near, anywhere)


def _fault_event(kind: str, t_s: float, draw: Any) -> Event:
    channel = draw(st.sampled_from([None, 1, 2]))
    if kind in ("disconnect", "device_reset", "drop_acks"):
        return Event(t_s, kind)
    if kind == "busy":
        return Event(t_s, kind, duration_s=draw(st.sampled_from([0.3, 2.0])))
    if kind == "late_acks":
        return Event(t_s, kind, value=draw(st.sampled_from([0.05, 0.2])),
                     duration_s=draw(st.sampled_from([1.0, 5.0])))
    if kind == "battery_low":
        return Event(t_s, kind, value=draw(st.sampled_from([8.0, 40.0])))
    if kind == "electrode_off":
        return Event(t_s, kind, channel=channel,
                     duration_s=draw(st.sampled_from([None, 0.5, 3.0])))
    if kind == "impedance":
        return Event(t_s, kind, channel=channel, value=draw(st.sampled_from([3000.0, 8000.0])),
                     duration_s=draw(st.sampled_from([None, 1.0])))
    if kind == "strength_change":
        return Event(t_s, kind, channel=channel or 1,
                     value=draw(st.sampled_from([0.0, 4.0, 25.0])))
    if kind == "wrong_current":
        return Event(t_s, kind, channel=channel, value=draw(st.sampled_from([0.5, 1.5])),
                     duration_s=draw(st.sampled_from([None, 1.0])))
    # byte faults: a probability per chunk for a while
    return Event(t_s, kind, value=draw(st.sampled_from([0.05, 0.3, 1.0])),
                 duration_s=draw(st.sampled_from([0.3, 2.0])))


@st.composite
def _event(draw: Any, family: Family, duration_s: float) -> Event:
    t_s = draw(_times(duration_s))
    kinds = ["pause", "resume", "plus", "minus", "stop", "fault"]
    weights = [3, 3, 4, 3, 1, 6]
    if family.freeze:
        kinds.append("freeze")
        weights.append(2)
    index = draw(st.integers(0, sum(weights) - 1))
    kind = next(k for k, w in zip(kinds, _cumulative(weights), strict=True) if index < w)
    if kind == "freeze":
        return Event(t_s, kind, value=draw(st.sampled_from(_STALLS_S)))
    if kind == "fault":
        return _fault_event(draw(st.sampled_from(family.faults)), t_s, draw)
    return Event(t_s, kind)


def _cumulative(weights: list[int]) -> list[int]:
    total, out = 0, []
    for w in weights:
        total += w
        out.append(total)
    return out


@st.composite
def sequences(draw: Any, families: tuple[str, ...], max_events: int = 12) -> Sequence:
    """A family, a program it can make, a lease, an intensity and up to ``max_events`` events
    within the program's length (plus a little, so some land after its end)."""
    family = FAMILIES[draw(st.sampled_from(families))]
    program = draw(st.sampled_from(family.programs))
    duration_s = loaded_program(program).program.duration_s
    events = draw(st.lists(_event(family, duration_s + 1.0), min_size=1, max_size=max_events))
    return Sequence(
        family=family.key, program=program,
        lease_s=draw(st.sampled_from(_LEASES_S)),
        intensity_pct=draw(st.sampled_from([100.0, 60.0, 30.0])),
        seed=draw(st.integers(0, 2**16)),
        events=tuple(sorted(events, key=lambda e: e.t_s)))


# ---------------------------------------------------------------------- running


@dataclass(frozen=True)
class Tick:
    """One tick of the session (loop time), the program time it sampled the plan at, and the
    user's target intensity then (what the person had asked for: the intensity in force is
    never above it)."""

    t_s: float
    stim_time_s: float
    target_pct: float


class _WatchedSession(Session):
    """A session that notes each tick's program time and target intensity as it samples the
    plan, before anything is sent (``on_tick`` comes only after a send that may hang or fail,
    and by then the state may have moved on)."""

    ticks: list[Tick]

    def _setpoints(self, now_s: float, stim_time_s: float) -> list[ChannelSetpoint]:
        self.ticks.append(Tick(now_s, stim_time_s, self.state.target_intensity_pct))
        return super()._setpoints(now_s, stim_time_s)


@dataclass
class Run:
    """What one sequence left behind."""

    sequence: Sequence
    family: Family
    prepared: Prepared
    result: SessionResult
    #: Loop times: the session's start, and when ``run()`` returned (the device stopped).
    start_s: float
    end_s: float
    ticks: list[Tick]
    #: (loop time, event, whether the session was still running then) for every event fired.
    fired: list[tuple[float, Event, bool]] = field(default_factory=list)

    @property
    def device(self) -> Any:
        """The simulated device whose record the checks read."""
        return self.prepared.driver.device  # type: ignore[attr-defined]


class _DeferredPlan(FaultPlan):
    """A fault plan armed when the session starts (not at connect, which takes the
    openEMSstim's 11.4 s boot), so event times count from the session's start."""

    def __init__(self, faults: tuple[Fault, ...], on_fire: Callable[[Fault], None]) -> None:
        super().__init__(faults)
        self._on_fire = on_fire
        self._target: FaultTarget | None = None
        self._handles: list[asyncio.TimerHandle] = []

    def schedule(self, loop: asyncio.AbstractEventLoop, target: FaultTarget, *,
                 start_s: float | None = None) -> ArmedFaultPlan:
        self.check(target.supported_fault_kinds, target.fault_channels)
        self._target = target
        return ArmedFaultPlan(self._handles)  # cancelled on close, with whatever is armed

    def arm(self, loop: asyncio.AbstractEventLoop, start_s: float) -> None:
        assert self._target is not None, "the driver never armed its fault plan"
        target, on_fire = self._target, self._on_fire

        class _Watched:
            supported_fault_kinds = target.supported_fault_kinds
            fault_channels = target.fault_channels

            @staticmethod
            def fault_started(fault: Fault) -> None:
                on_fire(fault)
                target.fault_started(fault)

            @staticmethod
            def fault_ended(fault: Fault) -> None:
                target.fault_ended(fault)

        armed = FaultPlan.schedule(self, loop, _Watched(), start_s=start_s)
        self._handles.extend(armed._handles)


def run_sequence(sequence: Sequence) -> Run:
    """Run ``sequence`` in virtual time and return what it left behind."""
    family = FAMILIES[sequence.family]
    by_fault: dict[Fault, Event] = {}
    fired: list[tuple[float, Event, bool]] = []
    box: dict[str, Any] = {}

    def on_fire(fault: Fault) -> None:
        session: Session = box["session"]
        fired.append((asyncio.get_running_loop().time(), by_fault[fault], _running(session)))

    faults = []
    for event in sequence.events:
        if event.is_fault:
            fault = event.fault()
            by_fault[fault] = event
            faults.append(fault)
    plan = _DeferredPlan(tuple(faults), on_fire)
    prepared = prepare_run(loaded_program(sequence.program), family.url, sequence.limits(),
                           options=OpenOptions(fault_plan=plan, seed=sequence.seed))
    if sequence.copies != 2:
        _duplicate_more(prepared, sequence.copies)
    ticks: list[Tick] = []

    async def main() -> SessionResult:
        loop = asyncio.get_running_loop()
        driver = prepared.driver
        await driver.connect()
        assert prepared.verified is not None
        try:
            session = _WatchedSession(prepared.verified, driver,
                                      intensity_pct=sequence.intensity_pct,
                                      pause_limit_s=PAUSE_LIMIT_S)
            session.ticks = ticks
            box["session"] = session
            start_s = box["start_s"] = loop.time()
            plan.arm(loop, start_s)
            for event in sequence.events:
                if not event.is_fault:
                    loop.call_at(start_s + event.t_s, _act, session, event, fired)
            result = await session.run()
            box["end_s"] = loop.time()
        finally:
            # as the runner does: a close whose stop is not confirmed (a lost link) is one
            # more fact, not an error of the run
            with contextlib.suppress(EmsError):
                await driver.close()
        return result

    result = VirtualClock(None).run(main())
    return Run(sequence, family, prepared, result, box["start_s"], box["end_s"], ticks, fired)


def _duplicate_more(prepared: Prepared, copies: int) -> None:
    """Make a line that the fault plan duplicates arrive ``copies`` times instead of twice."""
    pipe = getattr(getattr(prepared.driver, "front", None), "pipe", None)
    assert pipe is not None and pipe.tamper is not None, \
        "copies is only for a family behind an in-memory serial cable (the openEMSstim)"
    tamper = pipe.tamper

    def more(direction: str, data: bytes) -> list[tuple[float, bytes]]:
        chunks = tamper(direction, data)
        return [chunks[0]] * copies if len(chunks) == 2 else chunks

    pipe.tamper = more


def _running(session: Session) -> bool:
    return session.state.status in ("running", "paused", "starting")


def _act(session: Session, event: Event, fired: list[tuple[float, Event, bool]]) -> None:
    loop = asyncio.get_running_loop()
    fired.append((loop.time(), event, _running(session)))
    kind = event.kind
    if kind == "pause":
        session.pause()
    elif kind == "resume":
        session.resume()
    elif kind in ("plus", "minus"):
        session.change_intensity(5.0 if kind == "plus" else -5.0)
    elif kind == "stop":
        session.stop()
    elif kind == "freeze":
        assert event.value is not None
        loop.advance(event.value)  # type: ignore[attr-defined]  # the VirtualEventLoop
