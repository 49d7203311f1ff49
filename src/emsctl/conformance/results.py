"""What a conformance check found: each step's outcome and result, the report, the exchanges.

Plain data, filled by the steps (:mod:`.steps`) and the runner (:mod:`.runner`) and rendered by
:mod:`emsctl.check_report`. No I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from ..wiretap import WireEvent

__all__ = ["Exchange", "Outcome", "Report", "Status", "StepNotPossible", "StepResult"]

Status = Literal["passed", "failed", "not_possible", "not_run"]


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


class StepNotPossible(Exception):
    """Raised inside a step that this device cannot do; the runner records the step as
    :meth:`Outcome.impossible` with ``reason``, as if the step had returned that."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
