"""Fault targets: how a simulated driver, device or link carries out a fault plan.

A :class:`~.faults.FaultPlan` only says what goes wrong and when; each target decides what a
kind means for it. Every target is a :class:`FaultRouter`: a table of :class:`Route` objects,
one per kind the target does itself (a lost link, acks withheld, a busy answer, a strength
turned on the device), and one route for the rest — usually the device-level kinds, which
:class:`DeviceFaultInjector` does the same way on any
:class:`~emsctl.simulator.model.SimulatedStimulator`, or the target underneath (an emulated link
hands on to its device what is not the link's own).

Links that carry bytes damage them with :class:`ByteFaults`, the one tamper hook of every
emulated link: while a fault lasts each chunk is dropped, damaged or sent twice with the fault's
probability, and on links whose acks are plain traffic (the Coyote's notifications) acks are
withheld or delayed. What a damaged chunk looks like is the link's: one bit flipped for binary
protocols (:func:`flip_bit`), one digit changed for the openEMSstim's text lines
(:func:`flip_digit`).

No I/O, no clock of its own: faults start and end when the armed plan calls them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..errors import InputError
from .faults import BYTE_FAULT_KINDS, Fault

if TYPE_CHECKING:
    from .model import SimulatedStimulator
    from .transports import Direction

__all__ = [
    "ACK_FAULT_KINDS",
    "BOTH_WAYS",
    "FROM_DEVICE",
    "FROM_HOST",
    "SERIAL_DIRECTIONS",
    "ByteFaults",
    "Damage",
    "DeviceFaultInjector",
    "FaultAction",
    "FaultRouter",
    "ReplyHooks",
    "Route",
    "flip_bit",
    "flip_digit",
    "reply_routes",
    "while_active",
]

#: What a route does with a fault when it starts or ends.
FaultAction = Callable[[Fault], None]
#: How a link damages one chunk: (the link's seeded dice, the bytes) → the damaged bytes.
Damage = Callable[[random.Random, bytes], bytes]

FROM_HOST: frozenset[Direction] = frozenset({"host→device"})
FROM_DEVICE: frozenset[Direction] = frozenset({"device→host"})
BOTH_WAYS: frozenset[Direction] = FROM_HOST | FROM_DEVICE
#: Kinds that withhold or delay acks: the emulated device's business, or, where acks are plain
#: traffic on the link, :class:`ByteFaults`'.
ACK_FAULT_KINDS: tuple[str, ...] = ("drop_acks", "late_acks")


def _nothing(fault: Fault) -> None:
    """The end of a fault that is not undone (a reset, a lost link)."""


@dataclass(frozen=True, slots=True)
class Route:
    """What one fault kind does on one target.

    Attributes:
        start: called when the fault begins.
        end: called when its ``duration_s`` is over (by default nothing is undone).
    """

    start: FaultAction
    end: FaultAction = _nothing


def while_active(active: list[Fault]) -> Route:
    """A route that keeps each fault in ``active`` while it lasts (the target reads the list)."""

    def end(fault: Fault) -> None:
        if fault in active:
            active.remove(fault)

    return Route(active.append, end)


class FaultRouter:
    """A :class:`~.faults.FaultTarget`: each kind goes to its own route, or else to ``rest``.

    Args:
        kinds: the kinds this target can inject (a plan with others is refused when armed).
        channels: how many channels the target has.
        routes: kind → what it does here.
        rest: where every other kind goes (device-level kinds, or the target underneath).
    """

    def __init__(self, kinds: Iterable[str], channels: int, routes: Mapping[str, Route], *,
                 rest: Route) -> None:
        self._kinds = frozenset(kinds)
        self._channels = channels
        self._routes = dict(routes)
        self._rest = rest

    @property
    def supported_fault_kinds(self) -> frozenset[str]:
        """The kinds this target can inject."""
        return self._kinds

    @property
    def fault_channels(self) -> int:
        """How many channels the target has."""
        return self._channels

    def fault_started(self, fault: Fault) -> None:
        """``fault`` begins now."""
        self._routes.get(fault.kind, self._rest).start(fault)

    def fault_ended(self, fault: Fault) -> None:
        """``fault`` (which has a ``duration_s``) is over now."""
        self._routes.get(fault.kind, self._rest).end(fault)

    def handed_on(self) -> Route:
        """This target as the ``rest`` of another (a link in front of this device)."""
        return Route(self.fault_started, self.fault_ended)


class ReplyHooks(Protocol):
    """An emulated device whose replies a fault can withhold, delay or turn into "busy"."""

    busy: bool
    drop_replies: bool
    reply_extra_delay_s: float


def reply_routes(device: ReplyHooks) -> dict[str, Route]:
    """``drop_acks``, ``late_acks`` and ``busy`` on an emulated device's reply hooks, for the
    fault's duration."""

    def set_drop(value: bool) -> FaultAction:
        def action(_fault: Fault) -> None:
            device.drop_replies = value
        return action

    def set_busy(value: bool) -> FaultAction:
        def action(_fault: Fault) -> None:
            device.busy = value
        return action

    def late(fault: Fault) -> None:
        device.reply_extra_delay_s = fault.value or 0.0

    def on_time(_fault: Fault) -> None:
        device.reply_extra_delay_s = 0.0

    return {"drop_acks": Route(set_drop(True), set_drop(False)),
            "late_acks": Route(late, on_time),
            "busy": Route(set_busy(True), set_busy(False))}


class DeviceFaultInjector:
    """Carries out the device-level kinds (:data:`~.faults.DEVICE_FAULT_KINDS`) on a simulated
    device.

    Args:
        device: the device the faults happen to.
    """

    def __init__(self, device: SimulatedStimulator) -> None:
        self.device = device
        self._saved_impedance_ohm: dict[Fault, list[float]] = {}

    def route(self) -> Route:
        """The injector as a target's route (usually its ``rest``)."""
        return Route(self.start, self.end)

    def start(self, fault: Fault) -> None:
        """Make ``fault`` happen now.

        Raises:
            InputError: ``fault`` is not a device-level kind.
        """
        device, channel, value = self.device, fault.channel, fault.value
        channels = list(device.channels) if channel is None else [channel]
        if fault.kind == "electrode_off":
            device.electrode_off(channel)
        elif fault.kind == "electrode_on":
            device.electrode_on(channel)
        elif fault.kind == "impedance":
            assert value is not None
            self._saved_impedance_ohm[fault] = [device.body.load(c).impedance_ohm
                                                for c in channels]
            device.set_impedance(value, channel)
        elif fault.kind == "device_reset":
            device.reset()
        elif fault.kind == "battery_low":
            assert value is not None
            device.set_battery(value)
        elif fault.kind == "strength_change":
            assert value is not None
            for c in channels:
                device.change_strength(c, value)
        elif fault.kind == "wrong_current":
            assert value is not None
            device.set_current_error(value, channel)
        else:
            raise InputError(f"{fault.kind} is not a device-level fault")

    def end(self, fault: Fault) -> None:
        """Undo a fault whose ``duration_s`` is over (pad back on, impedance restored)."""
        if fault.kind == "electrode_off":
            self.device.electrode_on(fault.channel)
        elif fault.kind == "impedance":
            saved = self._saved_impedance_ohm.pop(fault, [])
            channels = list(self.device.channels) if fault.channel is None else [fault.channel]
            for c, impedance_ohm in zip(channels, saved, strict=False):
                self.device.set_impedance(impedance_ohm, c)
        elif fault.kind == "wrong_current":
            self.device.set_current_error(None, fault.channel)


def flip_bit(dice: random.Random, data: bytes) -> bytes:
    """One bit of one byte flipped: how a binary frame is damaged."""
    flipped = bytearray(data)
    flipped[dice.randrange(len(data))] ^= 1 << dice.randrange(8)
    return bytes(flipped)


def flip_digit(dice: random.Random, data: bytes) -> bytes:
    """One ASCII digit changed to another (none: unchanged): how a text line is damaged."""
    digits = [i for i, b in enumerate(data) if 0x30 <= b <= 0x39]
    if not digits:
        return data
    i = dice.choice(digits)
    new = dice.choice([d for d in b"0123456789" if d != data[i]])
    return data[:i] + bytes([new]) + data[i + 1:]


#: Every byte-level kind in both directions: a serial cable.
SERIAL_DIRECTIONS: Mapping[str, frozenset[Direction]] = {
    kind: BOTH_WAYS for kind in BYTE_FAULT_KINDS}


class ByteFaults:
    """The byte-level faults of a link, as its tamper hook.

    While a fault lasts, each chunk that travels in one of the fault's directions is dropped,
    damaged or sent twice with the fault's probability (its ``value``, default 1; two faults of
    a kind: the larger), in that order; ``drop_acks`` withholds and ``late_acks`` delays (by its
    ``value`` in s) every chunk in its directions. Seeded, so a run repeats exactly.

    Args:
        seed: seeds the dice.
        directions: kind → the directions it acts on; its keys are the kinds handled here.
        damage: what a damaged chunk becomes.
    """

    def __init__(self, seed: int = 0, *,
                 directions: Mapping[str, frozenset[Direction]] = SERIAL_DIRECTIONS,
                 damage: Damage = flip_bit) -> None:
        self._directions = dict(directions)
        self._active: dict[str, list[Fault]] = {kind: [] for kind in directions}
        self._random = random.Random(seed)
        self._damage = damage

    @property
    def kinds(self) -> frozenset[str]:
        """The kinds this link damages its traffic with."""
        return frozenset(self._directions)

    def routes(self) -> dict[str, Route]:
        """Every kind handled here, as a target's routes."""
        return {kind: Route(self.start, self.end) for kind in self._directions}

    def start(self, fault: Fault) -> None:
        """Begin a byte fault."""
        self._active[fault.kind].append(fault)

    def end(self, fault: Fault) -> None:
        """End a byte fault whose duration is over."""
        if fault in self._active[fault.kind]:
            self._active[fault.kind].remove(fault)

    def _in_force(self, kind: str, direction: Direction) -> list[Fault]:
        faults = self._active.get(kind)
        return faults if faults and direction in self._directions[kind] else []

    def _chance(self, kind: str, direction: Direction) -> bool:
        faults = self._in_force(kind, direction)
        probability = max((1.0 if f.value is None else f.value for f in faults), default=0.0)
        return probability > 0 and self._random.random() < probability

    def tamper(self, direction: Direction, data: bytes) -> list[tuple[float, bytes]]:
        """What reaches the other end of the link: (delay, bytes) chunks."""
        if not any(self._active.values()):  # no fault: every chunk of every session
            return [(0.0, data)]
        if self._in_force("drop_acks", direction) or self._chance("drop_frames", direction):
            return []
        if data and self._chance("corrupt_bytes", direction):
            data = self._damage(self._random, data)
        copies = 2 if self._chance("duplicate_frames", direction) else 1
        delay_s = max((f.value or 0.0 for f in self._in_force("late_acks", direction)),
                      default=0.0)
        return [(delay_s, data)] * copies
