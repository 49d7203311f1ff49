"""A declarative fault plan: what goes wrong, when, on a simulated device or its link.

A plan is a tuple of frozen :class:`Fault` records, loaded strictly from TOML::

    [[faults]]
    kind = "electrode_off"
    at_s = 30.0
    channel = 1
    duration_s = 5.0

``at_s`` counts from the moment the plan is armed (the driver's ``connect()``). A fault with
``duration_s`` is undone at ``at_s + duration_s`` (a pad put back, the impedance restored, acks
flowing again); without it, it lasts. :meth:`FaultPlan.schedule` arms a plan on a loop against a
:class:`FaultTarget` — the ``sim`` driver's, a protocol emulation's or an emulated link's — which
decides what each kind means for it (:mod:`.fault_targets`); a simulated driver holds its plan in
a :class:`FaultArming`, which arms it on the first ``connect()``.

``busy`` makes a protocol emulation that has a busy answer (ScienceMode2's −8) give it to every
command while the fault lasts.

``wrong_current`` breaks the output stage: the device still acknowledges every setting but
applies ``value`` × the set current (1.5: half as much again; 0.5: half) on ``channel`` (None:
all) until ``duration_s`` ends it. It is done in the device model
(:meth:`~emsctl.simulator.model.SimulatedStimulator.set_current_error`), so every emulation
delivers the wrong current, and those whose protocol reports the strength (the ``sim`` driver,
the Coyote's B1) report what was applied.

Byte-level kinds (``corrupt_bytes``, ``duplicate_frames``, ``drop_frames``) are for transports
that carry bytes; a target that has none refuses them when the plan is armed. Their ``value`` is
defined by the transport (for example a probability). This module reads no clock itself; loading
a plan is its only I/O.
"""

from __future__ import annotations

import asyncio
import math
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, cast, get_args

from ..datafile import DataFileRefused, read_data_file
from ..errors import InputError

if TYPE_CHECKING:
    from ..devices import OpenOptions

__all__ = [
    "BYTE_FAULT_KINDS",
    "DEVICE_FAULT_KINDS",
    "FAULT_KINDS",
    "WRONG_CURRENT_MAX_FACTOR",
    "ArmedFaultPlan",
    "Fault",
    "FaultArming",
    "FaultKind",
    "FaultPlan",
    "FaultTarget",
    "as_fault_plan",
    "load_fault_plan",
    "simulated_fault_plan",
]

FaultKind = Literal["disconnect", "electrode_off", "electrode_on", "impedance", "drop_acks",
                    "late_acks", "device_reset", "battery_low", "corrupt_bytes",
                    "duplicate_frames", "drop_frames", "strength_change", "busy",
                    "wrong_current"]
FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))
#: Kinds that change the device or the body (done by
#: :class:`~.fault_targets.DeviceFaultInjector`).
DEVICE_FAULT_KINDS: frozenset[str] = frozenset(
    {"electrode_off", "electrode_on", "impedance", "device_reset", "battery_low",
     "strength_change", "wrong_current"})

#: Kinds that damage the bytes on a link (done by :class:`~.fault_targets.ByteFaults`).
BYTE_FAULT_KINDS: tuple[str, ...] = ("corrupt_bytes", "duplicate_frames", "drop_frames")
_VALUE_REQUIRED = {"impedance", "late_acks", "battery_low", "strength_change", "wrong_current"}
_VALUE_OPTIONAL = {"corrupt_bytes", "duplicate_frames", "drop_frames"}
_DURATION_ALLOWED = {"electrode_off", "impedance", "drop_acks", "late_acks", "corrupt_bytes",
                     "duplicate_frames", "drop_frames", "busy", "wrong_current"}
_CHANNEL_ALLOWED = {"electrode_off", "electrode_on", "impedance", "strength_change",
                    "wrong_current"}
#: The largest current factor a ``wrong_current`` fault may apply.
WRONG_CURRENT_MAX_FACTOR = 10.0
_KEYS = ("kind", "at_s", "channel", "duration_s", "value")
_PLAN_MAX_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault.

    Attributes:
        kind: what goes wrong (see :data:`FaultKind`).
        at_s: when, in seconds after the plan is armed.
        channel: the channel it hits (1…N), or None for all; only for electrode, impedance and
            strength faults.
        duration_s: how long it lasts before it is undone; None for good. Only for kinds that
            can be undone.
        value: impedance Ω, ack delay s, battery %, strength mA, current factor
            (``wrong_current``), or a transport-defined figure.

    Raises:
        InputError: an unknown kind, or a field that is missing, not allowed or out of range.
    """

    kind: FaultKind
    at_s: float
    channel: int | None = None
    duration_s: float | None = None
    value: float | None = None

    def __post_init__(self) -> None:
        kind = self.kind
        if kind not in FAULT_KINDS:
            known = ", ".join(sorted(FAULT_KINDS))
            raise InputError(f"unknown fault kind {kind!r}; known: {known}")
        if not (math.isfinite(self.at_s) and self.at_s >= 0):
            raise InputError(f"{kind}: at_s must be finite and ≥ 0, got {self.at_s}")
        if self.channel is not None:
            if kind not in _CHANNEL_ALLOWED:
                raise InputError(f"{kind}: takes no channel")
            if self.channel < 1:
                raise InputError(f"{kind}: channels count from 1, got {self.channel}")
        if self.duration_s is not None:
            if kind not in _DURATION_ALLOWED:
                raise InputError(f"{kind}: takes no duration_s (it cannot be undone)")
            if not (math.isfinite(self.duration_s) and self.duration_s > 0):
                raise InputError(f"{kind}: duration_s must be finite and > 0")
        self._check_value()

    def _check_value(self) -> None:
        kind, value = self.kind, self.value
        if value is None:
            if kind in _VALUE_REQUIRED:
                raise InputError(f"{kind}: needs a value")
            return
        if kind not in _VALUE_REQUIRED | _VALUE_OPTIONAL:
            raise InputError(f"{kind}: takes no value")
        if not math.isfinite(value) or value < 0:
            raise InputError(f"{kind}: value must be finite and ≥ 0, got {value}")
        if kind == "impedance" and value <= 0:
            raise InputError("impedance: value (Ω) must be > 0")
        if kind == "late_acks" and value <= 0:
            raise InputError("late_acks: value (delay, s) must be > 0")
        if kind == "battery_low" and value > 100:
            raise InputError(f"battery_low: value is a charge in %, got {value}")
        if kind == "wrong_current" and not 0 < value <= WRONG_CURRENT_MAX_FACTOR:
            raise InputError(f"wrong_current: value is the factor applied to the set current, "
                             f"> 0 and ≤ {WRONG_CURRENT_MAX_FACTOR:g}, got {value}")


class FaultTarget(Protocol):
    """What a fault plan is armed against: a driver, an emulation, a transport."""

    @property
    def supported_fault_kinds(self) -> frozenset[str]:
        """The kinds this target can inject."""

    @property
    def fault_channels(self) -> int:
        """How many channels the target has (for checking ``Fault.channel``)."""

    def fault_started(self, fault: Fault) -> None:
        """``fault`` begins now."""

    def fault_ended(self, fault: Fault) -> None:
        """``fault`` (which has a ``duration_s``) is over now."""


class ArmedFaultPlan:
    """The timers of a scheduled plan; :meth:`cancel` disarms what has not fired yet."""

    def __init__(self, handles: list[asyncio.TimerHandle]) -> None:
        self._handles = handles

    def cancel(self) -> None:
        """Disarm every pending fault. Idempotent."""
        for handle in self._handles:
            handle.cancel()
        self._handles.clear()


class FaultArming:
    """A simulated driver's fault plan: checked against its target when the driver is made,
    armed on the first connect (``at_s`` counts from then), disarmed when the driver closes;
    a plan is armed once per driver, so a reconnect does not start it again.

    Args:
        plan: the plan, or None for none.
        target: what the faults happen to.

    Raises:
        InputError: the target cannot carry out the plan (see :meth:`FaultPlan.check`).
    """

    def __init__(self, plan: FaultPlan | None, target: FaultTarget) -> None:
        if plan is not None:
            plan.check(target.supported_fault_kinds, target.fault_channels)
        self.plan = plan
        self.target = target
        self._armed: ArmedFaultPlan | None = None

    def arm(self) -> None:
        """Arm the plan on the running loop, the first time only."""
        if self.plan is not None and self._armed is None:
            self._armed = self.plan.schedule(asyncio.get_running_loop(), self.target)

    def disarm(self) -> None:
        """Cancel every fault that has not fired yet. Idempotent."""
        if self._armed is not None:
            self._armed.cancel()


class FaultPlan:
    """An ordered, immutable collection of :class:`Fault`.

    Args:
        faults: the faults, in any order; equal times fire in the given order.

    Raises:
        InputError: an element that is not a :class:`Fault`.
    """

    __slots__ = ("faults",)

    def __init__(self, faults: Iterable[Fault] = ()) -> None:
        self.faults: tuple[Fault, ...] = tuple(faults)
        for fault in self.faults:
            if not isinstance(fault, Fault):
                raise InputError(f"a fault plan holds Fault records, not {fault!r}")

    def __iter__(self) -> Iterator[Fault]:
        return iter(self.faults)

    def __len__(self) -> int:
        return len(self.faults)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FaultPlan) and self.faults == other.faults

    def __hash__(self) -> int:
        return hash(self.faults)

    def __repr__(self) -> str:
        return f"FaultPlan({list(self.faults)!r})"

    @property
    def kinds(self) -> frozenset[str]:
        """Every kind the plan uses."""
        return frozenset(f.kind for f in self.faults)

    def check(self, supported_kinds: frozenset[str], channels: int) -> None:
        """Refuse a plan that a target cannot carry out.

        Raises:
            InputError: a kind the target does not support, or a channel it does not have.
        """
        unsupported = self.kinds - supported_kinds
        if unsupported:
            raise InputError(f"this device cannot inject {', '.join(sorted(unsupported))}; "
                             f"it supports {', '.join(sorted(supported_kinds))}")
        for fault in self.faults:
            if fault.channel is not None and fault.channel > channels:
                raise InputError(f"{fault.kind} at {fault.at_s:g} s: channel {fault.channel} "
                                 f"does not exist (1–{channels})")

    def schedule(self, loop: asyncio.AbstractEventLoop, target: FaultTarget, *,
                 start_s: float | None = None) -> ArmedFaultPlan:
        """Arm the plan: call ``target.fault_started``/``fault_ended`` at the right loop times.

        Faults already due (``at_s = 0`` with the default start) start before this returns.

        Args:
            loop: the loop whose clock the plan follows.
            target: what the faults happen to.
            start_s: loop time that ``at_s`` counts from; default now.

        Raises:
            InputError: the target cannot carry out the plan (see :meth:`check`).
        """
        self.check(target.supported_fault_kinds, target.fault_channels)
        t0_s = loop.time() if start_s is None else start_s
        actions: list[tuple[float, int, int, Callable[[Fault], None], Fault]] = []
        for i, fault in enumerate(self.faults):
            actions.append((t0_s + fault.at_s, 1, i, target.fault_started, fault))
            if fault.duration_s is not None:  # an end at the same instant goes before a start
                actions.append((t0_s + fault.at_s + fault.duration_s, 0, i,
                                target.fault_ended, fault))
        actions.sort(key=lambda a: (a[0], a[1], a[2]))
        handles = []
        now_s = loop.time()
        # One timer per instant: asyncio does not order timers that share a deadline.
        for when_s, group in groupby(actions, key=lambda a: a[0]):
            calls = [(a[3], a[4]) for a in group]
            if when_s <= now_s:
                _run_all(calls)  # due already (at_s = 0): in force before the first command
            else:
                handles.append(loop.call_at(when_s, _run_all, calls))
        return ArmedFaultPlan(handles)

    @classmethod
    def from_toml(cls, text: str, source: str = "<fault plan>") -> FaultPlan:
        """Parse a plan from TOML text (strict: unknown keys and kinds are refused).

        Raises:
            InputError: the text is not TOML, or the plan is invalid.
        """
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{source}: not valid TOML: {exc}") from exc
        return _parse(data, source)


def simulated_fault_plan(options: OpenOptions) -> FaultPlan | None:
    """The fault plan carried opaquely by a driver's open options, checked to be one.

    Raises:
        InputError: something other than a :class:`FaultPlan` was passed.
    """
    return as_fault_plan(options.fault_plan)


def as_fault_plan(plan: object) -> FaultPlan | None:
    """``plan``, checked to be a :class:`FaultPlan` or None.

    Raises:
        InputError: something else was passed.
    """
    if plan is not None and not isinstance(plan, FaultPlan):
        raise InputError(f"fault_plan must be a FaultPlan, got {type(plan).__name__}")
    return plan


def load_fault_plan(path: str | Path) -> FaultPlan:
    """Load a fault plan from a TOML file.

    The file is read only if it is a regular file, without blocking, at most 1 MiB.

    Raises:
        InputError: the file cannot be read, is not a regular file, is not TOML, or holds an
            invalid plan.
    """
    try:
        text = read_data_file(path, _PLAN_MAX_BYTES).decode("utf-8")
    except DataFileRefused as exc:
        raise InputError(f"cannot read fault plan {path}: {exc.reason}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"cannot read fault plan {path}: {exc}") from exc
    return FaultPlan.from_toml(text, source=str(path))


def _run_all(calls: list[tuple[Callable[[Fault], None], Fault]]) -> None:
    for call, fault in calls:
        call(fault)


def _parse(data: Mapping[str, object], source: str) -> FaultPlan:
    extra = set(data) - {"faults"}
    if extra:
        raise InputError(f"{source}: unknown top-level key(s) {', '.join(sorted(extra))}; "
                         "a fault plan has only [[faults]]")
    entries = data.get("faults", [])
    if not isinstance(entries, list):
        raise InputError(f"{source}: 'faults' must be an array of tables ([[faults]])")
    faults = []
    for n, entry in enumerate(entries, start=1):
        where = f"{source}: fault #{n}"
        if not isinstance(entry, dict):
            raise InputError(f"{where}: must be a table")
        unknown = set(entry) - set(_KEYS)
        if unknown:
            raise InputError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
                             f"allowed: {', '.join(_KEYS)}")
        kind = entry.get("kind")
        if not isinstance(kind, str):
            raise InputError(f"{where}: 'kind' is required and must be a string")
        if "at_s" not in entry:
            raise InputError(f"{where}: 'at_s' is required")
        try:
            faults.append(Fault(
                kind=cast(FaultKind, kind),
                at_s=_number(entry["at_s"], "at_s"),
                channel=_integer(entry.get("channel")),
                duration_s=_optional_number(entry.get("duration_s"), "duration_s"),
                value=_optional_number(entry.get("value"), "value"),
            ))
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from exc
    return FaultPlan(faults)


def _number(raw: object, key: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise InputError(f"'{key}' must be a number, got {raw!r}")
    return float(raw)


def _optional_number(raw: object, key: str) -> float | None:
    return None if raw is None else _number(raw, key)


def _integer(raw: object) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise InputError(f"'channel' must be an integer, got {raw!r}")
    return raw
