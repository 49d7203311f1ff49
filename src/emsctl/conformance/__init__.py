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

The package, one idea a module: :mod:`.results` (what a check found), :mod:`.run` (the run the
steps share, the :class:`Family` interface, the bounds on output), :mod:`.families` (the family
table), :mod:`.steps` (the steps) and :mod:`.runner` (running them). Every public name is here.

Reads time only from the running loop (virtual on the simulator).
"""

from __future__ import annotations

from .families import FAMILIES, FamilyEntry, family_entry_for, load_family
from .results import Exchange, Outcome, Report, Status, StepNotPossible, StepResult
from .run import (
    OUTPUT_MAX_MA,
    OUTPUT_MAX_S,
    RACE_HOLD_S,
    REAL_TIME_SLACK_S,
    SHORT_LEASE_S,
    STEP_TIMEOUT_S,
    STOP_AT_ONCE_S,
    UPDATE_LEASE_S,
    CheckOptions,
    CheckRun,
    Family,
    Load,
    smallest_output,
)
from .runner import FAULT_REPORTS, run_check, run_steps
from .steps import STEPS, StepSpec

__all__ = [
    "FAMILIES",
    "FAULT_REPORTS",
    "OUTPUT_MAX_MA",
    "OUTPUT_MAX_S",
    "RACE_HOLD_S",
    "REAL_TIME_SLACK_S",
    "SHORT_LEASE_S",
    "STEPS",
    "STEP_TIMEOUT_S",
    "STOP_AT_ONCE_S",
    "UPDATE_LEASE_S",
    "CheckOptions",
    "CheckRun",
    "Exchange",
    "Family",
    "FamilyEntry",
    "Load",
    "Outcome",
    "Report",
    "Status",
    "StepNotPossible",
    "StepResult",
    "StepSpec",
    "family_entry_for",
    "load_family",
    "run_check",
    "run_steps",
    "smallest_output",
]
