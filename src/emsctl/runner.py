"""Preparing and running a session end to end: the Python API behind ``emsctl run``.

``prepare_run`` loads nothing itself: it takes a loaded program, resolves the person's
thresholds, compiles and verifies the plan against the effective limits and the device's
capabilities, and refuses with one clear sentence when anything is wrong. ``execute`` then runs
the session on the chosen clock with a journal, and returns what happened. The CLI is a thin
shell around these two functions.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .amplitude import Thresholds
from .clock import Clock, RealClock, VirtualClock
from .devices import OpenOptions, open_device, parse_device_url
from .drivers.base import Driver
from .errors import EmsError, InputError, ValidationFailed
from .limits import Limits
from .loader import LoadedProgram
from .plan import Plan, compile_plan
from .session import Session, SessionResult, SessionState
from .verify import Violation, verify

__all__ = ["SYNTHETIC_THRESHOLDS", "Prepared", "RunOutcome", "execute", "make_clock",
           "prepare_run"]

#: The simulator's shipped synthetic person: thresholds in mA for every channel.
SYNTHETIC_THRESHOLDS = Thresholds(st_ma=6.0, mt_ma=12.0, tol_ma=25.0)
#: L3: a channel's cap is 0.9 × TOL.
TOL_CAP_FACTOR = 0.9


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


@dataclass
class RunOutcome:
    """A finished session: its result, the journal path and the delivered figures."""

    result: SessionResult
    journal_path: Path | None
    delivered: dict[str, Any]


def make_clock(device_url: str, speed: str | None) -> Clock:
    """The clock for ``--speed``: real time unless a simulated device asks for more.

    Raises:
        InputError: a speed for a real device, or a speed that is not a number or "max".
    """
    if speed is None or speed in ("1", "1.0"):
        return RealClock() if speed is None else VirtualClock(1.0)
    if not parse_device_url(device_url).simulated:
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


def prepare_run(
    loaded: LoadedProgram,
    device_url: str,
    limits: Limits,
    *,
    options: OpenOptions | None = None,
    thresholds: dict[int, Thresholds] | None = None,
    frequency_hz: float | None = None,
    expert: bool = False,
) -> Prepared:
    """Check that ``loaded`` may run on ``device_url`` and build the plan and driver.

    Raises:
        InputError: an expert program without ``expert``, or a real device without a profile.
        ValidationFailed: the plan breaks a limit or the device's capabilities.
    """
    program = loaded.program
    if program.expert and not expert:
        raise InputError(f"'{program.name}' is an expert program; it needs --expert")
    url = parse_device_url(device_url)
    if thresholds is None:
        if not url.simulated:
            raise InputError("a real device needs your calibrated thresholds; run "
                             "'emsctl calibrate --device URL --channel N --site SITE' first")
        thresholds = {c.id: SYNTHETIC_THRESHOLDS for c in program.channels}
    missing = [c.id for c in program.channels if c.id not in thresholds]
    if missing:
        raise InputError(f"no calibrated thresholds for channel(s) {missing}")
    caps_ma = {ch: TOL_CAP_FACTOR * th.tol_ma for ch, th in thresholds.items()}
    plan = compile_plan(program, thresholds, profile_caps_ma=caps_ma, frequency_hz=frequency_hz)
    driver = open_device(device_url, options)
    found = verify(plan, limits, driver.capabilities)
    blocks = [v for v in found if v.severity == "block"]
    if blocks:
        raise ValidationFailed(f"'{program.name}' cannot run on {driver.capabilities.model}: "
                               + "; ".join(str(v) for v in blocks))
    return Prepared(loaded, plan, driver, limits, device_url, thresholds,
                    [v for v in found if v.severity == "warn"])


def execute(
    prepared: Prepared,
    clock: Clock,
    *,
    intensity_pct: float = 100.0,
    journal_dir: Path | None = None,
    on_start: Callable[[Session], None] | None = None,
    on_tick: Callable[[SessionState], None] | None = None,
    handle_signals: bool = True,
) -> RunOutcome:
    """Connect, run the session to its end, stop, close. The device is left at zero.

    ``on_start`` receives the session once it exists (for key handling); SIGINT, SIGTERM and
    SIGHUP stop the session immediately when ``handle_signals``.

    Raises:
        EmsError: the device could not be connected or the journal could not be written.
    """
    from .journal import Journal  # noqa: PLC0415 - only sessions write journals

    return clock.run(_execute(prepared, intensity_pct, journal_dir, on_start, on_tick,
                              handle_signals, Journal))


async def _execute(
    prepared: Prepared,
    intensity_pct: float,
    journal_dir: Path | None,
    on_start: Callable[[Session], None] | None,
    on_tick: Callable[[SessionState], None] | None,
    handle_signals: bool,
    journal_cls: Any,
) -> RunOutcome:
    loop = asyncio.get_running_loop()
    driver = prepared.driver
    program = prepared.loaded.program
    journal = journal_cls(journal_dir)
    path = journal.header(
        program=program.name, program_sha256=prepared.loaded.sha256,
        program_source="builtin" if prepared.loaded.builtin else prepared.loaded.source,
        device_url=prepared.device_url, device_model=driver.capabilities.model,
        limits=asdict(prepared.limits), profile_version=None, intensity_pct=intensity_pct,
        sites={c.id: c.site for c in program.channels},
    )
    session: Session | None = None
    installed: list[int] = []
    try:
        await driver.connect()
        session = Session(prepared.plan, driver, prepared.limits, intensity_pct=intensity_pct,
                          journal=journal, on_tick=on_tick)
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.add_signal_handler(sig, session.stop, "signal",
                                        f"stopped by {signal.Signals(sig).name}")
                installed.append(sig)
        if on_start is not None:
            on_start(session)
        result = await session.run()
    except EmsError as exc:
        result = SessionResult("fault", str(exc), 0.0, [], 1)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        try:
            await driver.close()
        except EmsError as exc:
            result = SessionResult("fault", f"stop not confirmed: {exc}", 0.0, [], 1)
    delivered = _delivered(driver, result)
    journal.footer(result.end_reason, delivered)
    journal.close()
    return RunOutcome(result, path, delivered)


def _delivered(driver: Driver, result: SessionResult) -> dict[str, Any]:
    """What was delivered: from the simulator's recorder, else from what the session sent."""
    recorder = getattr(driver, "recorder", None)
    figures: dict[str, Any] = {"stim_time_s": result.stim_time_s, "source": "commands",
                               "peak_ma_commanded": result.peak_ma}
    if recorder is not None:
        figures["source"] = "simulator"
        figures["channels"] = {str(ch): values for ch, values in recorder.summary().items()}
    return figures
