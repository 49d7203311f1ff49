"""The fault matrix: every device family × every fault of the simulator's plan.

One table, :data:`CELLS`, says for each family and fault what must happen — the session stops
and the output is zero within the device's own lease/watchdog, or the protocol tolerates the
fault with output never above the plan, or the family cannot express the fault ("n/a", with the
reason). :func:`run_cell` runs the session in virtual time through ``emsctl.runner``
(``prepare_run``/``execute`` with a journal), and :func:`check_cell` returns every broken rule,
so the pytest matrix (``test_fault_matrix.py``) and the document agree by construction.

``python tests/faults/matrix.py`` runs every cell and writes ``docs/fault-matrix.md`` (the table
copied into SAFETY.md under "Fault matrix").

The program is ``fault-matrix.toml`` beside this file: two minutes of TENS at 40 Hz / 180 µs,
which every family can make (the RehaStim2 goes up to 50 Hz; the openEMSstim's external
stimulator is declared at 40 Hz / 180 µs in its URL). Faults start at 30 s into the plan's
steady part.
"""

from __future__ import annotations

import asyncio
import math
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from emsctl.clock import VirtualClock
from emsctl.devices import OpenOptions
from emsctl.journal import COMMAND_KEEPALIVE_S, read_journal
from emsctl.limits import DEFAULTS
from emsctl.loader import load_program
from emsctl.runner import Prepared, RunOutcome, execute, prepare_run
from emsctl.session import PAUSE_LIMIT_S, Session
from emsctl.simulator.faults import ArmedFaultPlan, Fault, FaultPlan, FaultTarget

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PROGRAM = HERE / "fault-matrix.toml"
DOC = ROOT / "docs" / "fault-matrix.md"
#: Faults start here (seconds after connect): past the 5 s soft start, in steady output.
AT_S = 30.0
#: A command takes effect at most this long after the plan asked for it (one 0.1 s tick, a
#: frame or a 50 ms line slot, wire time), so output is compared with the plan over this window.
LAG_S = 0.35


@dataclass(frozen=True)
class Family:
    """A device family: its simulator URL and how long its device holds output on its own."""

    key: str
    label: str
    url: str
    #: The device's own bound on output without the host: watchdog, lease, frame or on-time.
    holds_s: float
    mechanism: str


FAMILIES: dict[str, Family] = {f.key: f for f in (
    Family("sim", "sim", "sim", 1.0, "1.0 s device watchdog (L21)"),
    Family("sciencemode2", "ScienceMode2", "sim+sciencemode2", 1.2,
           "1.2 s RehaStim2 watchdog"),
    Family("sciencemode4", "ScienceMode4", "sim+sciencemode4", 2.0,
           "2 s P24 mid-level timeout (fixed by its firmware: a documented deviation of L21)"),
    Family("coyote3", "Coyote V3", "sim+coyote3?ma_per_step=0.2&us_per_intensity=3", 0.1,
           "100 ms B0 frame expiry"),
    # ma_at_100=16: 20.2 mA at full scale, within the synthetic person's 22.5 mA cap (a
    # declaration above 17.7 mA is refused: a corrupted line could open the board fully)
    Family("openems", "openEMSstim", "sim+openems?ma_at_100=16&frequency_hz=40"
           "&pulse_width_us=180", 1.05,
           "1.0 s on-time of each command, checked at the firmware's next loop pass (≤ 50 ms "
           "late while it blocks in a deactivation or a line read)"),
)}

FAULTS: dict[str, tuple[str, Fault]] = {
    "disconnect": ("link lost", Fault("disconnect", AT_S)),
    "corrupt_bytes": ("bytes corrupted (20 %, 60 s)",
                      Fault("corrupt_bytes", AT_S, duration_s=60.0, value=0.2)),
    "duplicate_frames": ("frames duplicated (50 %, 60 s)",
                         Fault("duplicate_frames", AT_S, duration_s=60.0, value=0.5)),
    "drop_frames": ("frames dropped (30 %, 60 s)",
                    Fault("drop_frames", AT_S, duration_s=60.0, value=0.3)),
    "drop_acks": ("acks dropped", Fault("drop_acks", AT_S)),
    "late_acks": ("acks late (+0.2 s, 20 s)", Fault("late_acks", AT_S, duration_s=20.0,
                                                     value=0.2)),
    "busy": ("device busy (10 s)", Fault("busy", AT_S, duration_s=10.0)),
    "device_reset": ("device reset", Fault("device_reset", AT_S)),
    "electrode_off": ("electrode off (ch 1)", Fault("electrode_off", AT_S, channel=1)),
    "impedance": ("impedance 8 kΩ (ch 1)", Fault("impedance", AT_S, channel=1, value=8000.0)),
    "battery_low": ("battery low (8 %)", Fault("battery_low", AT_S, value=8.0)),
    "strength_change": ("strength raised on the device (ch 1 → 25 mA)",
                        Fault("strength_change", AT_S, channel=1, value=25.0)),
    "wrong_current": ("output stage applies 1.5 × the set current (ch 1)",
                      Fault("wrong_current", AT_S, channel=1, value=1.5)),
}

Outcome = Literal["stop", "stop-later", "pause", "tolerated", "tolerated-unconfirmed",
                  "stop-replay", "undetected", "n/a"]


@dataclass(frozen=True)
class Expect:
    """What one cell must show.

    ``stop``: the session ends as a fault (exit 1) with ``words`` in its message, and the output
    is zero within the device's own bound after the fault. ``stop-later``: a random byte fault
    that the protocol survives for a while; the session ends as a fault before the fault is
    over and the output is zero within the device's bound after that end. ``pause``: output zero
    at once, the session waits for the user and ends at the pause limit (exit 1).
    ``tolerated``: the protocol recovers; the program completes (exit 0) and the output is never
    above the plan. ``tolerated-unconfirmed``: as tolerated, but the final stop cannot be
    confirmed, which is exit 1. ``stop-replay``: see the openEMSstim reset note.
    ``undetected``: a known limit, shown rather than hidden: the protocol gives the host no way
    to see the fault, the program completes (exit 0) and the output *is* above the plan after
    the fault (the cell fails if it is not, so the emulation provably applies it). ``n/a``: the
    family cannot express the fault; ``note`` says why.
    """

    outcome: Outcome
    words: str = ""
    note: str = ""
    #: For strength faults: how long the device may run above the plan before the stop lands.
    excess_s: float = 0.0


def _na(reason: str) -> Expect:
    return Expect("n/a", note=reason)


NO_BYTES = _na("the sim driver calls the device model directly: there are no bytes or frames "
               "to damage")
NO_BUSY = "the protocol has no busy answer"
CELLS: dict[tuple[str, str], Expect] = {
    # ---------------------------------------------------------------- sim (no bytes)
    ("sim", "disconnect"): Expect("stop", "link to the device lost",
                                  "the device does not notice; its watchdog ends output"),
    ("sim", "corrupt_bytes"): NO_BYTES,
    ("sim", "duplicate_frames"): NO_BYTES,
    ("sim", "drop_frames"): NO_BYTES,
    ("sim", "drop_acks"): Expect("stop", "did not ack", "ack timeout, one retry, then a fault"),
    ("sim", "late_acks"): Expect("tolerated", note="0.2 s is within the 0.3 s ack timeout"),
    ("sim", "busy"): _na(f"{NO_BUSY} (the model accepts or refuses, never defers)"),
    ("sim", "device_reset"): Expect("stop", "device reset"),
    ("sim", "electrode_off"): Expect("pause", "paused for more than 10 min",
                                     "no-load flag → pause at 0; the user must resume"),
    ("sim", "impedance"): Expect("pause", "paused for more than 10 min",
                                 "Z > 5 kΩ trips the no-load flag (L12) → pause at 0"),
    ("sim", "battery_low"): Expect("stop", "battery low", "≤ 10 % ends the session (HZ-17)"),
    ("sim", "strength_change"): Expect("stop", "above the", "a strength above the one asked "
                                       "for is a device error (HZ-01)"),
    ("sim", "wrong_current"): Expect("stop", "above the", "the device reports the current it "
                                     "applies; one that differs from every amplitude asked for "
                                     "ends the session (HZ-01), lower ones too"),
    # ---------------------------------------------------------------- ScienceMode2 (serial)
    ("sciencemode2", "disconnect"): Expect("stop", "link to the device lost",
                                           "cable pulled: the RehaStim2 watchdog ends output"),
    ("sciencemode2", "corrupt_bytes"): Expect(
        "stop-later", "did not acknowledge",
        "CRC and stuffing drop damaged frames; an unanswered command ends the session"),
    ("sciencemode2", "duplicate_frames"): Expect(
        "tolerated", note="absolute setpoints: a repeated frame sets the same output"),
    ("sciencemode2", "drop_frames"): Expect(
        "stop-later", "answers neither", "a lost frame is retried; a lost retry is a fault"),
    ("sciencemode2", "drop_acks"): Expect("stop", "answers neither",
                                          "retry, then a fault; the watchdog ends output"),
    ("sciencemode2", "late_acks"): Expect("tolerated",
                                          note="0.2 s is within the 0.25 s ack timeout"),
    ("sciencemode2", "busy"): Expect("stop", "busy", "busy (−8) to an update is a fault"),
    ("sciencemode2", "device_reset"): Expect("stop", "reset"),
    ("sciencemode2", "electrode_off"): Expect("stop", "electrode error",
                                              "the RehaStim2 stops itself and reports it"),
    ("sciencemode2", "impedance"): Expect("stop", "electrode error",
                                          "skin resistance out of range: the device stops"),
    ("sciencemode2", "battery_low"): _na("mains-powered; ScienceMode2 has no battery report"),
    ("sciencemode2", "strength_change"): _na("the RehaStim2 has no strength control of its own "
                                             "in ScienceMode2 (the host sets every current)"),
    ("sciencemode2", "wrong_current"): Expect(
        "undetected", note="ScienceMode2 reports no delivered current: a miscalibrated output "
        "stage is invisible to the host (known limit; only a bench measurement finds it)"),
    # ---------------------------------------------------------------- ScienceMode4 (USB serial)
    ("sciencemode4", "disconnect"): Expect(
        "stop", "link to the device lost",
        "USB cable pulled: the bus-powered P24 switches off at once"),
    ("sciencemode4", "corrupt_bytes"): Expect(
        "stop-later", "device error",
        "LEN and CRC drop damaged frames; a damaged command is sent once more, an unanswered "
        "or refused resend ends the session"),
    ("sciencemode4", "duplicate_frames"): Expect(
        "tolerated", note="absolute setpoints: a repeated update sets the same output; a "
        "repeated ack is ignored (matched by packet number)"),
    ("sciencemode4", "drop_frames"): Expect(
        "stop-later", "did not acknowledge",
        "a lost frame is sent once more; a lost resend is a fault"),
    ("sciencemode4", "drop_acks"): Expect(
        "stop", "did not acknowledge",
        "one resend, then a fault; the stop cannot be confirmed, the driver falls silent and "
        "the P24's 2 s timeout ends output"),
    ("sciencemode4", "late_acks"): Expect("tolerated",
                                          note="0.2 s is within the 0.25 s ack timeout"),
    ("sciencemode4", "busy"): Expect("stop", "result 21", "busy (21) to an update is a fault"),
    ("sciencemode4", "device_reset"): Expect(
        "stop", "reset", "the next command gets result 7 (not initialised): reported as a "
        "reset, never re-initialised by the driver"),
    ("sciencemode4", "electrode_off"): Expect(
        "pause", "paused for more than 10 min",
        "the P24 stops every channel and reports an electrode error at the next poll → "
        "electrode_off → pause at 0"),
    ("sciencemode4", "impedance"): Expect(
        "pause", "paused for more than 10 min",
        "Z > 5 kΩ trips the no-load flag (L12): an electrode error → pause at 0"),
    ("sciencemode4", "battery_low"): _na("bus powered over USB: the P24 has no battery"),
    ("sciencemode4", "strength_change"): _na("the P24 has no strength control of its own (the "
                                             "host sets every current)"),
    ("sciencemode4", "wrong_current"): Expect(
        "undetected", note="the P24 reports electrode errors, not the current it delivers: a "
        "miscalibrated output stage is invisible to the host (known limit)"),
    # ---------------------------------------------------------------- Coyote V3 (BLE)
    ("coyote3", "disconnect"): Expect("stop", "link to the device lost",
                                      "frames stop; the last one expires within 100 ms"),
    ("coyote3", "corrupt_bytes"): Expect(
        "tolerated", note="a damaged B0 plays a silent or lower frame, or, when the damaged "
        "bytes stay in range, one frame at another frequency or width (the B0 has no checksum; "
        "tests/session/test_invariants.py); strengths are absolute and capped by the BF soft "
        "limits"),
    ("coyote3", "duplicate_frames"): Expect(
        "tolerated", note="absolute strengths with sequence numbers: a repeat changes nothing"),
    ("coyote3", "drop_frames"): Expect("tolerated",
                                       note="a lost frame is 100 ms of silence, never more"),
    ("coyote3", "drop_acks"): Expect(
        "tolerated-unconfirmed", "stop not confirmed",
        "B1 missing: a change is taken as applied after its timeout (protocol rule); the "
        "final stop cannot be confirmed → exit 1; frames end, output zero within 100 ms"),
    ("coyote3", "late_acks"): Expect("tolerated", note="B1 late: the tracker waits for it"),
    ("coyote3", "busy"): _na(f"{NO_BUSY} (writes without response)"),
    ("coyote3", "device_reset"): Expect("stop", "link to the device lost",
                                        "the reset drops the BLE link; output zero at once"),
    ("coyote3", "electrode_off"): Expect(
        "tolerated", note="no electrode report in the protocol: the open circuit carries 0 mA; "
        "the set output stays as planned"),
    ("coyote3", "impedance"): Expect(
        "tolerated", note="no impedance report in the protocol: the load limits the current"),
    ("coyote3", "battery_low"): Expect("stop", "battery low", "battery notification ≤ 10 %"),
    ("coyote3", "strength_change"): Expect(
        "stop", "above the", "B1 reports a strength nobody asked for (wheel); BF caps it",
        excess_s=0.05),
    ("coyote3", "wrong_current"): Expect(
        "stop", "above the", "B1 reports the strength applied (sequence 0 when it changes "
        "without a command): not the one asked for", excess_s=0.15),
    # ---------------------------------------------------------------- openEMSstim (serial)
    ("openems", "disconnect"): Expect("stop", "link to the device lost",
                                      "cable pulled: each channel's on-time ends output"),
    ("openems", "corrupt_bytes"): Expect(
        "stop-later", "which was not sent",
        "no checksum (docs/protocols/openemsstim.md §9): a flipped digit changes I or T, or leaves "
        "a field without digits or "
        "merges two fields, which the emulated firmware parses as it does (16-bit values, −1 "
        "for no digits); the board's debug echo differs from every command sent, so the "
        "driver shuts it down (C9G) and the session ends (serial only: BLE has no echo); "
        "whatever the intensity, the output stays within the cap, as the driver refuses an "
        "external stimulator whose full scale is above it"),
    ("openems", "duplicate_frames"): Expect("tolerated", note="a repeated line renews the same "
                                            "action"),
    ("openems", "drop_frames"): Expect("tolerated",
                                       note="a lost renewal: the on-time (≤ 1 s) ends output"),
    ("openems", "drop_acks"): _na("the board never answers (no acks to drop, "
                                  "docs/protocols/openemsstim.md §7)"),
    ("openems", "late_acks"): _na("the board never answers (no acks to delay, "
                                  "docs/protocols/openemsstim.md §7)"),
    ("openems", "busy"): _na(NO_BUSY),
    ("openems", "device_reset"): Expect(
        "stop-replay", "device reset",
        "relays open at the reset; the driver only learns of it from the setup banner after "
        "the 11.4 s boot, when the lines buffered during setup run for ≤ 0.1 s at the "
        "pre-reset level before its C9G shutdown (firmware limitation, not resumed)"),
    ("openems", "electrode_off"): Expect("tolerated", note="the board cannot sense the load; "
                                         "the open circuit carries 0 mA"),
    ("openems", "impedance"): Expect("tolerated", note="the board cannot sense the load"),
    ("openems", "battery_low"): _na("USB-powered board; no battery report"),
    ("openems", "strength_change"): _na("the external stimulator's knob is outside the "
                                        "protocol (declared fixed in the URL)"),
    ("openems", "wrong_current"): Expect(
        "undetected", note="the board's echo repeats the command, not the current: a wrong "
        "current is invisible to the host (known limit; only a bench measurement finds it)"),
}


class _TimedPlan(FaultPlan):
    """A fault plan that remembers the loop time it was armed at (``at_s`` counts from it)."""

    armed_s: float | None = None

    def schedule(self, loop: asyncio.AbstractEventLoop, target: FaultTarget, *,
                 start_s: float | None = None) -> ArmedFaultPlan:
        self.armed_s = loop.time() if start_s is None else start_s
        return super().schedule(loop, target, start_s=start_s)


@dataclass
class CellRun:
    """What one cell's session left behind."""

    family: Family
    fault: Fault
    prepared: Prepared
    outcome: RunOutcome
    start_s: float
    fault_s: float
    end_s: float
    problems: list[str] = field(default_factory=list)


def prepare_cell(family: str, fault: Fault | None) -> tuple[Prepared, _TimedPlan]:
    """The matrix program on a fresh simulated device of ``family`` with ``fault`` armed."""
    plan = _TimedPlan([fault] if fault is not None else [])
    prepared = prepare_run(load_program(str(PROGRAM)), FAMILIES[family].url, DEFAULTS,
                           options=OpenOptions(fault_plan=plan))
    return prepared, plan


def run_cell(family: str, fault_key: str, journal_dir: Path) -> CellRun:
    """Run the matrix program on ``family`` with the fault ``fault_key``, in virtual time."""
    fault = FAULTS[fault_key][1]
    prepared, plan = prepare_cell(family, fault)
    marks: dict[str, float] = {}

    def on_start(_session: Session) -> None:
        marks["start"] = asyncio.get_running_loop().time()

    def on_tick(state: object) -> None:
        if getattr(state, "status", "") == "stopped":
            marks["end"] = asyncio.get_running_loop().time()

    outcome = execute(prepared, VirtualClock(None), journal_dir=journal_dir, on_start=on_start,
                      on_tick=on_tick, handle_signals=False)
    assert plan.armed_s is not None, "the fault plan was never armed"
    return CellRun(FAMILIES[family], fault, prepared, outcome, marks["start"],
                   plan.armed_s + fault.at_s, marks.get("end", math.inf))


def _on_rows(prepared: Prepared) -> list[tuple[int, np.ndarray]]:
    device = prepared.driver.device  # type: ignore[attr-defined]
    out = []
    for cplan in prepared.plan.channels:
        iv = device.intervals(cplan.channel)
        out.append((cplan.channel, iv[iv["amplitude_ma"] > 0]))
    return out


def last_output_s(run: CellRun) -> float:
    """Loop time when the last non-zero output ended (−inf if there was none)."""
    ends = [float(rows["t1_s"].max()) for _, rows in _on_rows(run.prepared) if len(rows)]
    return max(ends, default=-math.inf)


def excess_above_plan_s(run: CellRun, *, after_s: float = -math.inf) -> float:
    """Seconds during which some channel delivered more than the plan asked in the last LAG_S."""
    plan = run.prepared.plan
    total = 0.0
    step = 0.01
    for row_index, (_, rows) in enumerate(_on_rows(run.prepared)):
        for row in rows:
            t = np.arange(max(row["t0_s"], after_s), row["t1_s"], step)
            if t.size == 0:
                continue
            stim = t - run.start_s
            windows = np.max([plan.setpoints_at(stim - lag).amplitude_ma[row_index]
                              for lag in np.linspace(0.0, LAG_S, 8)], axis=0)
            total += float(np.count_nonzero(row["amplitude_ma"] > windows + 1e-9)) * step
    return total


def check_journal(run: CellRun) -> list[str]:
    """The journal is complete up to the fault, then a stop and a footer with the end reason."""
    problems: list[str] = []
    path = run.outcome.journal_path
    if path is None:
        return ["no journal was written"]
    journal = read_journal(path)
    result = run.outcome.result
    if journal.truncated:
        problems.append("journal truncated")
    if journal.header.get("program") != "fault-matrix":
        problems.append(f"journal header names {journal.header.get('program')!r}")
    # commands are written once the driver took them, so an ack that came meanwhile may be
    # written first: each kind of record is in time order, not the file as a whole
    for kind in ("command", "telemetry", "event"):
        times = [float(r["t_s"]) for r in journal.records if r["type"] == kind]
        if times != sorted(times):
            problems.append(f"journal {kind} records out of time order")
    fault_t = run.fault_s - run.start_s
    before = [r for r in journal.records if r["type"] == "command" and float(r["t_s"]) <= fault_t]
    if not before or fault_t - float(before[-1]["t_s"]) > COMMAND_KEEPALIVE_S + 1e-6:
        problems.append("no command recorded in the keep-alive interval before the fault")
    elif max(sp["amplitude_ma"] for r in before for sp in r["setpoints"]) <= 0:
        problems.append("the journal shows no output before the fault")
    stops = [r for r in journal.records if r["type"] == "stop"]
    if len(stops) != 1:
        problems.append(f"{len(stops)} stop records, expected 1")
    elif any(r["type"] == "command" and float(r["t_s"]) > float(stops[0]["t_s"]) + 1e-9
             for r in journal.records):
        problems.append("a command recorded after the stop")
    if journal.footer is None:
        problems.append("no footer")
    elif journal.footer.get("end_reason") != result.end_reason:
        problems.append(f"footer end_reason {journal.footer.get('end_reason')!r} != "
                        f"{result.end_reason!r}")
    return problems


def check_cell(run: CellRun, expect: Expect) -> list[str]:
    """Every rule of ``expect`` that ``run`` breaks (empty: the cell passes)."""
    problems = check_journal(run)
    result = run.outcome.result
    device = run.prepared.driver.device  # type: ignore[attr-defined]
    holds_s = run.family.holds_s
    slack_s = 0.02
    if any(o.amplitude_ma != 0 for o in device.outputs_at(math.inf)):
        problems.append("the device is left with output after the run")
    excess = excess_above_plan_s(run)
    if expect.outcome == "undetected":
        if excess_above_plan_s(run, after_s=run.fault_s) <= 0:
            problems.append("the output never went above the plan: the fault was not applied")
        if (result.end_reason, result.exit_code) != ("completed", 0):
            problems.append(f"ended {result.end_reason} / {result.exit_code}: the fault was "
                            "caught after all; this cell is no longer a known limit")
    elif excess > expect.excess_s + 1e-9:
        problems.append(f"output above the plan for {excess:.3f} s")
    if result.stim_time_s < AT_S - 0.5:
        problems.append(f"stimulation time {result.stim_time_s:g} s lost (fault at {AT_S:g} s)")
    if expect.words and expect.words not in result.message:
        problems.append(f"message {result.message!r} lacks {expect.words!r}")
    last_on_s = last_output_s(run)
    outcome = expect.outcome
    ends_as_fault = outcome in ("stop", "stop-later", "stop-replay", "pause",
                                "tolerated-unconfirmed")
    if ends_as_fault and (result.end_reason, result.exit_code) != ("fault", 1):
        problems.append(f"ended {result.end_reason} / exit {result.exit_code}, "
                        "expected fault / 1")
    if outcome == "stop" and last_on_s > run.fault_s + holds_s + slack_s:
        problems.append(f"output {last_on_s - run.fault_s:.3f} s after the fault "
                        f"(bound {holds_s:g} s)")
    if outcome == "stop-later":
        fault_end_s = run.fault_s + (run.fault.duration_s or 0.0)
        if run.end_s > fault_end_s:
            problems.append("the session outlived the byte fault without ending")
        if last_on_s > run.end_s + holds_s + slack_s:
            problems.append(f"output {last_on_s - run.end_s:.3f} s after the session ended")
    if outcome == "pause":
        if last_on_s > run.fault_s + slack_s:
            problems.append(f"output {last_on_s - run.fault_s:.3f} s after the electrode fault")
        if result.stim_time_s > AT_S + 0.5:
            problems.append("the program clock ran on during the pause")
        if run.end_s - run.fault_s < PAUSE_LIMIT_S - 1.0:
            problems.append("the pause ended before its limit without the user")
    if outcome in ("tolerated", "tolerated-unconfirmed"):
        if abs(result.stim_time_s - run.prepared.plan.duration_s) > 1e-6:
            problems.append(f"stopped at {result.stim_time_s:g} s: {result.message}")
        if last_on_s > run.end_s + holds_s + slack_s:
            problems.append("output after the session ended")
    if outcome == "tolerated" and (result.end_reason, result.exit_code) != ("completed", 0):
        problems.append(f"ended {result.end_reason} / {result.exit_code}: {result.message}")
    if outcome == "stop-replay":
        if excess_above_plan_s(run, after_s=run.fault_s) > 0:
            problems.append("the replay went above the plan")
        replay = [rows[rows["t0_s"] > run.fault_s] for _, rows in _on_rows(run.prepared)]
        replay_s = max((float((r["t1_s"] - r["t0_s"]).sum()) for r in replay), default=0.0)
        if replay_s > 0.1 + 1e-9:
            problems.append(f"{replay_s:.3f} s of replayed output after the reset")
    return problems


def run_and_check(family: str, fault_key: str, journal_dir: Path) -> tuple[CellRun, list[str]]:
    """Run one (non n/a) cell and check it."""
    run = run_cell(family, fault_key, journal_dir)
    return run, check_cell(run, CELLS[family, fault_key])


# ---------------------------------------------------------------------- the document

_SYMBOL = {"stop": "stop", "stop-later": "stop", "stop-replay": "stop*", "pause": "pause",
           "tolerated": "tolerated", "tolerated-unconfirmed": "tolerated†",
           "undetected": "undetected‡", "n/a": "n/a"}


def render(results: dict[tuple[str, str], str]) -> str:
    """The matrix as Markdown: one row per fault, one column per family, then the notes."""
    families = list(FAMILIES.values())
    lines = [
        "| Fault | " + " | ".join(f.label for f in families) + " |",
        "|---|" + "---|" * len(families),
    ]
    for key, (label, _) in FAULTS.items():
        cells = []
        for family in families:
            expect = CELLS[family.key, key]
            verdict = results.get((family.key, key), "not run")
            text = _SYMBOL[expect.outcome]
            cells.append(text if expect.outcome == "n/a" else f"{text}: {verdict}")
        lines.append(f"| {label} (`{key}`) | " + " | ".join(cells) + " |")
    ran = [r for r in results.values() if r != "n/a"]
    passed = sum(r == "pass" for r in ran)
    na = sum(e.outcome == "n/a" for e in CELLS.values())
    known = sum(e.outcome == "undetected" for e in CELLS.values())
    lines += [
        "",
        f"{len(FAULTS)} faults × {len(families)} families = {len(CELLS)} cells: "
        f"{passed} of {len(ran)} run cells pass ({known} of them known limits, ‡), {na} n/a. "
        "Plus the host killed (SIGKILL) "
        "over a real pty for ScienceMode2 and openEMSstim "
        "(`tests/faults/test_host_killed.py`).",
        "",
        "**stop**: the session ends as a fault (exit 1, one sentence) and every output is zero "
        "within the device's own bound after the fault — "
        + "; ".join(f"{f.label}: {f.mechanism}" for f in families)
        + ". **pause**: output zero at once, the session waits for the user and ends (exit 1) "
        "at the 10-minute pause limit. **tolerated**: the protocol recovers, the program "
        "completes (exit 0) and output is never above the plan. † the final stop cannot be "
        "confirmed: exit 1 with that sentence. ‡ **undetected**: a known limit — the protocol "
        "gives the host no way to see the fault; the program completes and the output is above "
        "the plan (the cell checks that it is, so the limit stays documented). \\* see the "
        "note. In every run cell the journal "
        "has its header, commands up to the fault, one stop and a footer with the end reason, "
        "and the device is left at zero.",
        "",
        "Notes per cell:",
        "",
    ]
    for family in families:
        for key, (label, _) in FAULTS.items():
            note = CELLS[family.key, key].note
            if note:
                lines.append(f"- {family.label}, {label}: {note}.")
    return "\n".join(lines) + "\n"


def main() -> int:
    """Run every cell, print failures, write docs/fault-matrix.md; exit 1 if a cell failed."""
    results: dict[tuple[str, str], str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for (family, key), expect in CELLS.items():
            if expect.outcome == "n/a":
                results[family, key] = "n/a"
                continue
            _, problems = run_and_check(family, key, Path(tmp))
            results[family, key] = "pass" if not problems else "FAIL"
            for problem in problems:
                print(f"{family} × {key}: {problem}", file=sys.stderr)
    DOC.write_text("# Fault matrix\n\nGenerated by `python tests/faults/matrix.py`; the same "
                   "cells run as `tests/faults/test_fault_matrix.py::test_fault_cell`.\n\n"
                   + render(results), encoding="utf-8")
    print(f"wrote {DOC}")
    return 0 if all(r in ("pass", "n/a") for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
