"""Invariants proved under any sequence of events, on every device family.

Hypothesis drives sessions on ``sim``, ``sim+sciencemode2``, ``sim+sciencemode4``,
``sim+coyote3`` (Coyote V3 over its in-memory BLE link), ``sim+openems`` (serial) and
``sim+openems+ble`` (``ma_at_100=16``, as the other tests use) with random interleavings of
host freezes, pauses, resumes, intensity keys (+/−), stops, a lost link and the family's device
faults from the simulator's fault plans (tests/support/invariant_runs.py), each on a short
program at a lease drawn from the legal range (two command periods to L21's 1 s; the lease is
fixed for a session, so each sequence draws its own), in virtual time. Every run is judged on
the device's RECORDED OUTPUT — the simulator's record of what its output stage applied and the
pulses it made — never on the commands sent (tests/support/invariant_checks.py):

1. never above the verified plan × the user's intensity (one device step of rounding);
2. never a rise faster than the slew limit (L16's plan rise) from the level actually applied,
   zero after any drop (a pause, a lapsed lease, a lost link);
3. never more pulses in any 1 s window than N, the most pulses in any 1 s window of the plan;
4. zero at the end, and after a loss of the host (a freeze, a lost link) within the device's
   own documented bound: the lease (sim), the openEMSstim's on-time (+ ≤ 50 ms of firmware
   loop), the RehaStim2's 1.2 s watchdog, the P24's 2 s timeout, the Coyote's 100 ms frame; a
   user's stop on a healthy link (duplicated frames included) within L22's 300 ms;
5. a lost link ends the session as a fault, and the output never rises after it (no silent
   reconnect).

What is left out, and why (each a documented limit, not a fudge):

- Faults in which the output stage disobeys (``strength_change``, ``wrong_current``) are drawn
  only where the protocol reports the strength applied (sim, Coyote); elsewhere SAFETY.md's
  fault matrix shows them as undetected‡. From the fault until the session can see the report
  (at once on sim, the Coyote's 250 ms lag here; the matrix allows it 150 ms), that output is
  not judged: the fault is the device going past what it was asked, up to the cap and beyond.
- On the openEMSstim (no checksum), a corrupted line may set any level within the cap until the
  echo check ends the session; over BLE there is no echo, so corruption is not drawn there
  (SAFETY.md, HZ-12). The Coyote's B0 frames have no checksum either: a damaged frame that
  stays in range plays its 100 ms at another strength (within the BF soft limits), frequency or
  width (found by the slow run: one 25 ms slot at 58.8 Hz instead of 40 Hz, one pulse more in a
  second than N); only a strength that differs is reported. While corruption lasts, and a lease
  after, invariants 1–3 are not judged on these two families; the cap is. An openEMSstim board
  reset is not drawn: the board learns of it from its 11.4 s setup banner and replays buffered
  lines for ≤ 0.1 s first (the fault matrix's stop*).
- The openEMSstim's board runs its firmware loop on the host's loop, so a whole-process freeze
  would freeze the board and a line on its way too; freezes are not drawn for it
  (tests/session/test_safety_host_stall.py covers its stall rule on the driver).
- While commands can be lost or late (dropped or corrupted frames, late or dropped acks, a busy
  device, a lost link) or the host is frozen, the last command that got through may stay in
  force for its lease or the device's own bound (the contract's lease semantics; invariant 4
  checks the bound), so invariant 1 looks back that long. On the Coyote and the openEMSstim a
  lost frame or renewal cannot be seen by the host: the output is silent until the next one
  gets through with the level the host asks for then, and the device's pulse train starts
  again with it (fault matrix: tolerated), so in that window rises are not judged by
  invariant 2 nor pulses by invariant 3.
- The Coyote driver still sends a frame up to one 25 ms slot after the last one ran out (a late
  timer on a busy host) and fails beyond that: such a silence, and the output continuing at the
  level it had (its pulse train restarting), is that documented tolerance; the rise after it is
  judged from the level before it.
- The emulated Coyote holds each frame's output 1 µs past its 100 ms (so an on-time frame
  continues it); a pulse due exactly at the end of a frame that no frame follows at once falls
  in that microsecond and is not counted (the device makes no such pulse).
- The emulated links and devices share the host's loop: bytes on their way when the host froze
  arrive only when it thaws, all at that instant; a change of output at exactly that instant is
  not judged as a rise (a real link delivers them during the freeze).
- What flows into the body is the applied current limited by the load (checked never to be
  more); a pad put back on a device that cannot sense it lets the applied current flow again at
  once, which the fault matrix lists as a known limit.

Figures (measured on the development machine, 2 cores shared with other work; the same figures
are printed at the end of every run, for the sequences actually run):

- default suite (derandomized, the same sequences every run): 6 families × 60 sequences + the 12
  regression sequences = 372 sequences; events per sequence median 5, max 12; 12–20 s wall.
- ``-m slow`` (random, new sequences every run): 6 families × 1,500 = 9,000 sequences; events
  per sequence median 4, max 12; 340–610 s wall.

No assertion here depends on wall-clock time.
"""

from __future__ import annotations

import contextlib
import statistics
from collections import Counter
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.invariant_checks import check_run
from support.invariant_runs import FAMILIES, Event, Sequence, run_sequence, sequences

#: Sequences per family: the default suite, and the long run behind ``-m slow``.
DEFAULT_PER_FAMILY = 60
SLOW_PER_FAMILY = 1500

_SEEN: list[Sequence] = []


@pytest.fixture(scope="module", autouse=True)
def _figures(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print what was run: sequences, events per sequence, families and event kinds."""
    _SEEN.clear()
    yield
    if not _SEEN:
        return
    events = [len(s.events) for s in _SEEN]
    families = Counter(s.family for s in _SEEN)
    kinds = Counter(e.kind for s in _SEEN for e in s.events)
    lines = [
        f"invariants: {len(_SEEN)} sequences; events per sequence median "
        f"{statistics.median(events):g}, max {max(events)}",
        "invariants: families " + ", ".join(f"{k} {n}" for k, n in sorted(families.items())),
        "invariants: events " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())),
    ]
    # shown with or without -s: output capture is suspended for these lines
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print("\n" + "\n".join(lines))


def _check(sequence: Sequence) -> None:
    _SEEN.append(sequence)
    run = run_sequence(sequence)
    problems = check_run(run)
    assert problems == [], (f"{sequence}\nended {run.result.end_reason}: "
                            f"{run.result.message}\n" + "\n".join(problems))


def _ev(t_s: float, kind: str, value: float | None = None, channel: int | None = None,
        duration_s: float | None = None) -> Event:
    return Event(t_s, kind, value, channel, duration_s)


# The sequences that found bugs run every time (each fix also has its
# own regression test beside the code it fixed).
REGRESSIONS = [
    # a lease of two periods: the heartbeat went every other tick (float noise) — the sim
    # session ended as a stall, the P24 stopped at every other tick, the Coyote chopped
    Sequence("sciencemode4", "twitch", 0.2, 100.0, 0, ()),
    Sequence("coyote3", "steady", 0.2, 100.0, 0, ()),
    # a 0.125 s heartbeat went every 0.2 s: the Coyote's frames ran out of lease
    Sequence("coyote3", "trains", 0.25, 100.0, 1690, ()),
    # dropped acks and a 0.2 s lease: the sim driver's retry came after the watchdog
    Sequence("sim", "steady", 0.2, 100.0, 0, (_ev(8.0, "drop_acks"),)),
    # a 0.3 s freeze inside the lease: the Coyote's frames had run out, then came back at once
    Sequence("coyote3", "steady", 1.0, 60.0, 1547, (_ev(5.5, "freeze", 0.3),)),
    # the knob turned to 0 on the device: the report matched an old ask, the next command
    # brought the output back at once
    Sequence("sim", "twitch", 0.5, 100.0, 9272, (_ev(4.899, "strength_change", 0.0, 2),)),
    # a freeze through an off phase: after it, each tick's +1 step of rounding added up
    Sequence("sim", "twitch", 0.2, 100.0, 65536, (_ev(3.835, "freeze", 0.95),)),
    # every frame of a Coyote decrease lost while its B1 was awaited: taken as applied, the
    # device stayed at the higher strength (found by the long run)
    Sequence("coyote3", "steady", 0.2, 100.0, 0,
             (_ev(5.2, "minus"), _ev(5.2, "drop_frames", 1.0, duration_s=0.3))),
    # the knob turned to 0 within one device step of the level asked for: the session still
    # thought the output on and restarted the 8 Hz train at once (found by the long run)
    Sequence("sim", "twitch", 0.2, 30.0, 0, (_ev(0.201, "strength_change", 0.0, 1),)),
    # every openEMSstim line four times for 2 s at the shortest lease (two overlapping
    # duplicate_frames faults, as they stacked when it was found): more than the 19 200-baud
    # line carries, so a backlog built up and the stop waited behind it — output 0.55 s after
    # the session ended (found by the long run)
    Sequence("openems", "steady", 0.2, 100.0, 0,
             (_ev(3.0, "duplicate_frames", 1.0, duration_s=2.0),), copies=4),
    # the link lost while the Coyote's stop at the end of the program awaited its B1: the
    # stop took the loss as the confirmation, and the session ended "completed" (long run)
    Sequence("coyote3", "twitch", 0.2, 100.0, 0, (_ev(13.2, "disconnect"),)),
    # a wrong output stage from 7.1 s while the output was off: it showed when the output came
    # back at 7.507 s and was reported 15 ms later, but the checks counted the Coyote's lag
    # from the fault and judged the output (a gap in the checks, found by the long run)
    Sequence("coyote3", "twitch", 0.2, 100.0, 0, (_ev(7.1, "wrong_current", 1.5),)),
]


@pytest.mark.parametrize("sequence", REGRESSIONS, ids=lambda s: f"{s.family}-{s.program}")
def test_the_sequences_that_found_bugs_keep_the_invariants(sequence: Sequence) -> None:
    _check(sequence)


@pytest.mark.parametrize("family", list(FAMILIES))
@settings(max_examples=DEFAULT_PER_FAMILY, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_invariants_hold_on_the_recorded_output(family: str, data: st.DataObject) -> None:
    _check(data.draw(sequences((family,)), label="sequence"))


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
@settings(max_examples=SLOW_PER_FAMILY, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_invariants_hold_on_the_recorded_output_long_run(family: str,
                                                         data: st.DataObject) -> None:
    _check(data.draw(sequences((family,)), label="sequence"))
