"""One check of one device: how it may run, the smallest output, and the run the steps share.

:class:`CheckRun` holds a check's sessions (a new driver with a tap on its link each), the wire
log, the telemetry, and the tools a step uses to put output on the device: every output is the
device's smallest step on channel 1 (:func:`smallest_output`), checked by a
:class:`~emsctl.guard.Guard` with the effective limits first, and warned about once.
:class:`Family` is what the run consults about a protocol: each family's wire facts (in the
drivers layer) subclass it. The numbers that bound a check's output and time are here.

Reads time only from the running loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from ..contract import ZERO, ChannelSetpoint, Driver, Telemetry
from ..devices import OpenOptions, open_device
from ..errors import EmsError, InputError
from ..guard import ChannelGuard, Guard
from ..limits import DEFAULTS, Limits
from ..wiretap import TapControls, WireEvent, WireLog
from .results import Exchange, Outcome, StepNotPossible

__all__ = [
    "OUTPUT_MAX_MA",
    "OUTPUT_MAX_S",
    "RACE_HOLD_S",
    "REAL_TIME_SLACK_S",
    "SHORT_LEASE_S",
    "STEP_TIMEOUT_S",
    "STOP_AT_ONCE_S",
    "UPDATE_LEASE_S",
    "CheckOptions",
    "CheckRun",
    "Family",
    "Load",
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

Load = Literal["resistor", "open"]


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

    async def output_ready(self, *, electrode_step: bool = False
                           ) -> tuple[Driver, tuple[ChannelSetpoint, ...]]:
        """The opening of a step that puts output on the device: the current driver, ready
        (:meth:`ready`), and the smallest output for it (:meth:`output_setpoints`).

        Raises:
            StepNotPossible: output steps cannot run here (:meth:`output_blocker`, checked
                before any session is touched).
            DeviceError: no session can be connected.
            InputError, SafetyViolation: see :meth:`output_setpoints`.
        """
        blocker = self.output_blocker(electrode_step=electrode_step)
        if blocker is not None:
            raise StepNotPossible(blocker)
        driver = await self.ready()
        return driver, self.output_setpoints(driver)

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
