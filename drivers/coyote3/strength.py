"""The host's view of the Coyote's two strengths: plan target, device truth, the change in flight.

docs/protocols/coyote3.md §9: strength changes are absolute (``SET``), carry a sequence number 1–15
and are confirmed by a B1 with the same number; one change is in flight at a time. emsctl rules on
top:

- a pending change is repeated, with the same sequence, in every frame until confirmed: absolute
  sets are idempotent, so a lost frame costs one frame, never a wrong strength (HZ-01, HZ-12);
- a *decrease* never waits behind an unconfirmed increase: it supersedes it with a fresh sequence
  (decreases and stops are never delayed, L17);
- B1 is the source of truth (HZ-16). A report above anything the host asked for recently, a
  confirmation that differs from what was asked, or any change reported with sequence 0 (the
  wheel, or a soft limit) once the session is armed is a fault: the driver stops
  (docs/protocols/coyote3.md §9 step 5);
- a change unconfirmed after 300 ms is taken as applied (every frame carried it) but counted;
  three such changes in a row mean the device no longer confirms anything, which is a fault.
  The frames may all have been lost (the device never had the change) as well as the B1 (it
  did): until a B1 shows the device at the target, or the next change, every frame sets the
  target again, absolute and with a fresh sequence but not awaited (a device already there
  changes nothing and says nothing, as docs/protocols/coyote3.md §12 asks of it).

This module is pure: no I/O, no clock (times are passed in), no asyncio.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .frames import StrengthReport
from .rules import next_sequence

__all__ = ["ACK_TIMEOUT_S", "PendingChange", "ReportVerdict", "StrengthTracker"]

#: docs/protocols/coyote3.md §8 (emsctl rule): wait 3 frames for the matching B1.
ACK_TIMEOUT_S = 0.3
#: How long a value the host sent counts as "asked for" when judging a late B1.
ASKED_WINDOW_S = 1.0
#: Unconfirmed changes in a row that make the device's reports untrustworthy.
MAX_UNCONFIRMED = 3

Pair = tuple[int, int]


@dataclass(frozen=True, slots=True)
class PendingChange:
    """An absolute strength change the device has not confirmed yet."""

    sequence: int
    values: Pair
    first_sent_s: float


@dataclass(frozen=True, slots=True)
class ReportVerdict:
    """What one B1 meant: ``fault`` is a sentence when the session must stop, else None.

    Attributes:
        changed: channels (1, 2) whose known strength changed with this report.
        confirmed: True if it confirmed the change in flight.
        fault: why the report is unacceptable, or None.
    """

    changed: tuple[int, ...] = ()
    confirmed: bool = False
    fault: str | None = None


class StrengthTracker:
    """Target, known (last B1) and pending strengths of both channels, in device steps.

    Args:
        ack_timeout_s: how long a change may stay unconfirmed before it is taken as applied.
    """

    def __init__(self, ack_timeout_s: float = ACK_TIMEOUT_S) -> None:
        self.ack_timeout_s = ack_timeout_s
        self.target: Pair = (0, 0)
        #: Last strengths the device reported (or that a timeout assumed); None before any.
        self.known: tuple[int | None, int | None] = (None, None)
        self.pending: PendingChange | None = None
        #: After arming, a sequence-0 report that changes a strength is a fault.
        self.armed = False
        self.unconfirmed_in_row = 0
        #: A change was taken as applied without a B1: frames set the target again.
        self.reasserting = False
        self._sequence = 0
        self._asked: deque[tuple[float, Pair]] = deque()

    @property
    def settled(self) -> bool:
        """True when nothing is pending and the device is known to be at the target."""
        return self.pending is None and self.known == self.target

    def set_target(self, values: Pair) -> None:
        """The plan now wants ``values`` (steps, already checked against the device range)."""
        self.target = values

    def force_change(self, now_s: float) -> PendingChange:
        """Start a change to the target now, with a fresh sequence (connect and stop)."""
        return self._start(now_s)

    def change_for_frame(self, now_s: float) -> tuple[PendingChange | None, str | None]:
        """Decide the strength instruction of the frame sent at ``now_s``.

        Returns:
            The change to put in the frame (absolute set of both channels), or None for
            ``KEEP``; and a fault sentence when changes keep going unconfirmed.
        """
        fault = None
        pending = self.pending
        if pending is not None and now_s - pending.first_sent_s >= self.ack_timeout_s - 1e-9:
            fault = self._timed_out(pending)
            pending = None
        if pending is not None:
            if any(t < p for t, p in zip(self.target, pending.values, strict=True)):
                return self._start(now_s), fault  # a decrease never waits (L17)
            self._asked.append((now_s, pending.values))
            return pending, fault
        if self.known != self.target:
            return self._start(now_s), fault
        if self.reasserting:
            # not pending: nothing waits for its B1, and a B1 it brings is a late answer
            self._forget_before(now_s - ASKED_WINDOW_S)
            self._sequence = next_sequence(self._sequence)
            self._asked.append((now_s, self.target))
            return PendingChange(self._sequence, self.target, now_s), fault
        return None, fault

    def on_report(self, report: StrengthReport, now_s: float) -> ReportVerdict:
        """Take in a B1 and judge it against what the host asked for."""
        values = (report.strength_a_steps, report.strength_b_steps)
        self._forget_before(now_s - ASKED_WINDOW_S)
        ceiling = [max(t, *(v[i] for _, v in self._asked)) if self._asked else t
                   for i, t in enumerate(self.target)]
        pending = self.pending
        if pending is not None:
            ceiling = [max(c, p) for c, p in zip(ceiling, pending.values, strict=True)]
        changed = tuple(i + 1 for i in range(2) if self.known[i] != values[i])
        # before arming (connect), the device may hold anything a dead host left: record it
        over = [i + 1 for i in range(2) if values[i] > ceiling[i]] if self.armed else []
        self.known = values
        if values == self.target:
            self.reasserting = False  # the device says it is where the host wants it
        if over:
            channel = over[0]
            return ReportVerdict(changed, False,
                                 f"the device reports strength {values[channel - 1]} on channel "
                                 f"{channel}, above the {ceiling[channel - 1]} steps asked for")
        if report.sequence == 0:
            if changed and self.armed:
                return ReportVerdict(changed, False, "the strength was changed on the device "
                                     f"itself (now {values[0]}/{values[1]} steps); emsctl stops "
                                     "when the device and the plan disagree")
            return ReportVerdict(changed)
        if pending is not None and values == pending.values:
            # the answer to this change, or to a superseded one that asked for the same values
            # (absolute sets): either way the device is where the host wants it
            self.pending = None
            self.unconfirmed_in_row = 0
            return ReportVerdict(changed, True)
        if pending is not None and report.sequence == pending.sequence:
            self.pending = None
            if values != pending.values:
                return ReportVerdict(changed, False,
                                     f"the device set {values[0]}/{values[1]} steps when "
                                     f"{pending.values[0]}/{pending.values[1]} were asked for")
            self.unconfirmed_in_row = 0
            return ReportVerdict(changed, True)
        return ReportVerdict(changed)  # the late answer to a superseded change

    def _start(self, now_s: float) -> PendingChange:
        self.reasserting = False  # the new change is awaited in its own right
        self._forget_before(now_s - ASKED_WINDOW_S)
        self._sequence = next_sequence(self._sequence)
        self.pending = PendingChange(self._sequence, self.target, now_s)
        self._asked.append((now_s, self.target))
        return self.pending

    def _timed_out(self, pending: PendingChange) -> str | None:
        """docs/protocols/coyote3.md §8: no B1 in time. Every frame carried the set, so take it as
        applied."""
        self.pending = None
        previous = self.known
        self.known = pending.values
        if previous == pending.values or not self.armed:
            return None  # already there: the device does not answer an unchanged strength
        self.reasserting = True  # the frames may all have been lost: set it again
        self.unconfirmed_in_row += 1
        if self.unconfirmed_in_row >= MAX_UNCONFIRMED:
            return (f"the device did not confirm {self.unconfirmed_in_row} strength changes in "
                    "a row; its actual strength is unknown")
        return None

    def _forget_before(self, t_s: float) -> None:
        while len(self._asked) > 1 and self._asked[0][0] < t_s:
            self._asked.popleft()
