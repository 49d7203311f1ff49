"""The small Python API: run a program on the simulator, or open a device for driver-level work.

:func:`run` is ``emsctl run`` for Python code and simulated devices: it loads the program,
checks and verifies it exactly as the CLI does (shipped limits, the simulator's synthetic
person), runs the session in virtual time, and returns a typed :class:`~emsctl.results.RunResult`
with one result per *program* channel. It writes no journal unless it is given a folder, and
it installs no signal handlers, so it may run off the main thread. A real device goes through
``emsctl run``, which asks the safety questions and keeps the dose ledger.

:func:`open_device` opens any device for driver-level work (``async with``) and puts the
runtime guard of the limits in front of every ``apply``: peak, width, frequency, charge,
rms, current and power density on the stated pads, the rise rate and the session length.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from .clock import VirtualClock
from .contract import ZERO, Capabilities, ChannelSetpoint, Driver, Telemetry
from .devices import OpenOptions
from .devices import open_device as _open_driver
from .errors import InputError, ProgramError
from .guard import ChannelGuard, Guard
from .journal import Journal, JournalSink, NullJournal
from .limit_table import ELECTRODE_AREA_MIN_CEILING_CM2
from .limits import DEFAULTS, Limits
from .loader import LoadedProgram, load_program, load_program_file
from .program import Program
from .results import PULSE_DTYPE, ChannelResult, CommandRecord, RunResult
from .runner import execute, prepare_run

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from datetime import datetime

    from .session import Session

__all__ = ["open_device", "run"]

#: The largest pace a run accepts, in virtual seconds per real second.
_MAX_SPEED = 1e6
#: Pads larger than this are not electrodes emsctl knows (the program model's bound).
_MAX_ELECTRODE_AREA_CM2 = 400.0


def run(
    program: str | os.PathLike[str] | Program | LoadedProgram,
    device: str = "sim",
    *,
    speed: float | Literal["max"] = "max",
    intensity_pct: float = 100.0,
    journal: str | os.PathLike[str] | None = None,
) -> RunResult:
    """Run ``program`` on a simulated device and return what it delivered.

    Args:
        program: a built-in name (``"relaxation"``), a path to a program file (``str`` with a
            ``/`` or ``.toml``, or a :class:`~pathlib.Path`), a :class:`~emsctl.Program`, or a
            :class:`~emsctl.loader.LoadedProgram`.
        device: a simulated device URL: ``sim`` or ``sim+<protocol>``, with its parameters.
        speed: ``"max"`` runs in virtual time as fast as possible; a number paces virtual time
            at that many times real time (``1`` is real time).
        intensity_pct: the intensity, 0–100 % of the program's amplitudes.
        journal: a folder to write the session's journal in (``RunResult.journal_path`` is
            the file); None writes no journal at all.

    Returns:
        How the session ended, one :class:`~emsctl.ChannelResult` per program channel, and
        every command sent.

    Raises:
        InputError: a real device, an expert program, a bad speed, intensity or journal
            folder, an unknown device URL.
        ProgramError: the program cannot be loaded.
        ValidationFailed: the program breaks a limit or the device's capabilities.
        EmsError: the journal could not be written.
    """
    clock = _clock(speed)
    pct = _intensity(intensity_pct)
    folder = _journal_folder(journal)
    driver = _open_driver(device)
    if not driver.simulated:
        raise InputError(f"emsctl.run() runs simulated devices only ('sim', 'sim+<protocol>'); "
                         f"run a real device with `emsctl run PROGRAM -d {device}`, which asks "
                         "the safety questions first")
    loaded = _load(program)
    if loaded.program.expert:
        raise InputError(f"'{loaded.program.name}' is an expert program; run it with "
                         f"`emsctl run {loaded.program.name} --expert`")
    prepared = prepare_run(loaded, driver, DEFAULTS)
    tap = _CommandTap(NullJournal() if folder is None else Journal(folder))
    start = _SessionStart()
    outcome = execute(prepared, clock, intensity_pct=pct, journal=tap, on_start=start,
                      handle_signals=False)
    session = outcome.result
    summary = driver.recorder.summary()
    channels = []
    for channel in loaded.program.channels:
        device_channel = start.channel_map.get(channel.id, channel.id)
        figures = summary.get(device_channel, {})
        pulses = _session_time(driver.recorder.pulses(device_channel), start.t_s)
        channels.append(ChannelResult(
            id=channel.id, site=channel.site, device_channel=device_channel,
            peak_ma=figures.get("peak_ma", 0.0), rms_ma=figures.get("rms_ma", 0.0),
            max_phase_charge_uc=figures.get("max_phase_charge_uc", 0.0),
            pulse_count=int(figures.get("pulse_count", 0.0)), pulses=pulses))
    return RunResult(
        program=loaded.program.name, device=prepared.device_url,
        device_model=driver.capabilities.model, end_reason=session.end_reason,
        message=session.message, exit_code=session.exit_code,
        stimulation_s=session.stim_time_s, channels=tuple(channels),
        commands=tuple(tap.commands), events=tuple(session.events),
        journal_path=outcome.journal_path)


def open_device(
    url: str = "sim",
    options: OpenOptions | None = None,
    *,
    limits: Limits | None = None,
    electrode_area_cm2: float = ELECTRODE_AREA_MIN_CEILING_CM2,
) -> Driver:
    """Make (not connect) the driver for ``url``, with the limits' guard on every ``apply``.

    The driver is an async context manager: ``async with open_device("sim") as dev:``
    connects it and always stops and closes it at the end. Every ``apply`` first passes the
    driver contract (the device's capabilities) and then the same runtime guard a session
    uses, restarted at each connect: the peak (``limits.peak_ma``), pulse width, frequency,
    phase charge and Shannon k, rms current, current and power density on pads of
    ``electrode_area_cm2``, the rise rate (output soft-starts: a rise of at most
    ``limits.plan_rise_ma_per_s`` over one update period, plus one device step), and the
    session length counted from the first output. A refused ``apply`` sends nothing, stops
    the driver and raises :class:`~emsctl.SafetyViolation`.

    Args:
        url: the device URL (``sim``, ``sim+sciencemode2``, … or a real device's).
        options: fault plan and seed for simulated devices.
        limits: the limits to guard with (default: the shipped defaults).
        electrode_area_cm2: the area of the smallest pad in use; the default is the smallest
            pad emsctl allows, which gives the tightest density limits.

    Raises:
        InputError: unknown scheme, a bad URL, or a pad area outside 4–400 cm².
    """
    if not (math.isfinite(electrode_area_cm2)
            and ELECTRODE_AREA_MIN_CEILING_CM2 <= electrode_area_cm2 <= _MAX_ELECTRODE_AREA_CM2):
        raise InputError(f"electrode_area_cm2 must be {ELECTRODE_AREA_MIN_CEILING_CM2:g}–"
                         f"{_MAX_ELECTRODE_AREA_CM2:g} cm², not {electrode_area_cm2}")
    driver = _open_driver(url, options)
    driver.set_guard(_LimitsGuard(limits or DEFAULTS, driver.capabilities, electrode_area_cm2,
                                  driver.delivered_frequency_hz))
    return driver


# ---------------------------------------------------------------------- helpers


def _clock(speed: object) -> VirtualClock:
    if speed == "max":
        return VirtualClock(None)
    if isinstance(speed, bool) or not isinstance(speed, int | float):
        raise InputError(f"speed must be a number or 'max', not {speed!r}")
    if not (math.isfinite(speed) and 0 < speed <= _MAX_SPEED):
        raise InputError(f"speed must be more than 0 and at most {_MAX_SPEED:g}, or 'max'")
    return VirtualClock(float(speed))


def _intensity(intensity_pct: object) -> float:
    if isinstance(intensity_pct, bool) or not isinstance(intensity_pct, int | float) \
            or not (math.isfinite(intensity_pct) and 0 <= intensity_pct <= 100):
        raise InputError(f"intensity_pct must be a number from 0 to 100, not {intensity_pct!r}")
    return float(intensity_pct)


def _journal_folder(journal: object) -> Path | None:
    if journal is None:
        return None
    if not isinstance(journal, str | os.PathLike):
        raise InputError(f"journal must be a folder (str or Path), not {type(journal).__name__}")
    folder = Path(journal)
    if folder.suffix == ".jsonl" or folder.is_file():
        raise InputError(f"journal is the folder the journal file goes in, not a file: {folder}")
    return folder


def _load(program: object) -> LoadedProgram:
    if isinstance(program, LoadedProgram):
        return program
    if isinstance(program, Program):
        text = program.model_dump_json()
        try:  # a model built with model_construct() or changed since is checked again here
            checked = Program.model_validate_json(text)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ProgramError(f"the Program object is not valid: {where}: {first['msg']}",
                               ) from None
        sha256 = hashlib.sha256(text.encode()).hexdigest()
        return LoadedProgram(checked, f"{checked.name} (Program object)", sha256, False)
    if isinstance(program, str):
        return load_program(program)
    if isinstance(program, os.PathLike):
        return load_program_file(Path(program))
    raise InputError("program must be a built-in name, a path or a Program, not "
                     f"{type(program).__name__}")


def _session_time(pulses: npt.NDArray[np.void], start_s: float) -> npt.NDArray[np.void]:
    out = np.array(pulses, dtype=PULSE_DTYPE, copy=True)
    out["t_s"] -= start_s
    out.flags.writeable = False
    return out


class _SessionStart:
    """``on_start`` for :func:`execute`: when the session starts, and its channel map."""

    def __init__(self) -> None:
        self.t_s = 0.0
        self.channel_map: dict[int, int] = {}

    def __call__(self, session: Session) -> None:
        # execute calls this right before session.run(), which takes its start time from the
        # loop before its first await: the same instant
        self.t_s = asyncio.get_running_loop().time()
        self.channel_map = dict(session.channel_map)


class _CommandTap:
    """A journal that keeps every command in memory and passes everything on to ``inner``."""

    def __init__(self, inner: JournalSink) -> None:
        self.inner = inner
        self.commands: list[CommandRecord] = []

    @property
    def session_id(self) -> str:
        return self.inner.session_id

    def header(self, *, program: str, program_sha256: str, program_source: str,
               device_url: str, device_model: str, limits: Mapping[str, object],
               profile_version: str | None, intensity_pct: float,
               sites: Mapping[int, str] | None = None, started_utc: datetime | None = None,
               simulated: bool | None = None,
               thresholds: Mapping[int, Mapping[str, float]] | None = None) -> Path | None:
        return self.inner.header(
            program=program, program_sha256=program_sha256, program_source=program_source,
            device_url=device_url, device_model=device_model, limits=limits,
            profile_version=profile_version, intensity_pct=intensity_pct, sites=sites,
            started_utc=started_utc, simulated=simulated, thresholds=thresholds)

    def command(self, t_s: float, setpoints: Sequence[ChannelSetpoint], lease_s: float,
                intensity_pct: float) -> None:
        self.commands.append(CommandRecord(t_s, lease_s, intensity_pct, tuple(setpoints)))
        self.inner.command(t_s, setpoints, lease_s, intensity_pct)

    def stop(self, t_s: float, reason: str) -> None:
        self.inner.stop(t_s, reason)

    def telemetry(self, t_s: float, telemetry: Telemetry) -> None:
        self.inner.telemetry(t_s, telemetry)

    def event(self, t_s: float, kind: str, **fields: Any) -> None:
        self.inner.event(t_s, kind, **fields)

    def footer(self, end_reason: str, delivered: Mapping[str, object], *,
               t_s: float | None = None, message: str | None = None) -> None:
        self.inner.footer(end_reason, delivered, t_s=t_s, message=message)

    def close(self) -> None:
        self.inner.close()


@dataclass
class _LimitsGuard:
    """The runtime guard of a session, in front of a bare driver (see :func:`open_device`)."""

    limits: Limits
    capabilities: Capabilities
    electrode_area_cm2: float
    made_hz: Callable[[float], float]
    _guard: Guard | None = None
    _first_output_s: float | None = None
    _output_until_s: float | None = None

    def start(self, t_s: float) -> None:
        # the handshake leaves every output at zero: rises count from there and from now
        guard = self._fresh_guard()
        guard.check(t_s, 0.0, (ZERO,) * self.capabilities.channels)
        self._first_output_s = None
        self._output_until_s = None

    def _fresh_guard(self) -> Guard:
        caps = self.capabilities
        channel = ChannelGuard(self.limits.peak_ma, self.electrode_area_cm2)
        self._guard = Guard(self.limits, [channel] * caps.channels, caps.amplitude_step_ma,
                            caps.update_period_s, self.made_hz)
        return self._guard

    def check(self, t_s: float, setpoints: tuple[ChannelSetpoint, ...], lease_s: float
              ) -> tuple[ChannelSetpoint, ...]:
        guard = self._guard
        if guard is None or (self._output_until_s is not None and t_s >= self._output_until_s):
            # installed after connect(), or the last output's lease ran out and the device's
            # watchdog has switched it off: rises count from zero again (soft start), while
            # the session's stimulation time keeps counting
            guard = self._fresh_guard()
        on = any(sp.amplitude_ma > 0 for sp in setpoints)
        if self._first_output_s is None and on:
            self._first_output_s = t_s
        stimulation_s = 0.0 if self._first_output_s is None else t_s - self._first_output_s
        checked = guard.check(t_s, stimulation_s, setpoints)
        self._output_until_s = t_s + lease_s if on else None
        return checked
