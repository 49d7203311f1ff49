"""The fault matrix: every device family × every fault of the simulator's plan.

The cells, their expected outcome and the checks live in ``matrix.py`` beside this file (also
run as a script to write docs/fault-matrix.md). Here each cell is one test: a run cell runs the
session in virtual time through the runner and must break no rule; an "n/a" cell proves that
the family really cannot express the fault (opening it with that fault is refused with one
sentence), so it is a checked statement, not a silent skip. The real CLI runs one or two faults
per family, and the checks themselves are shown to fail on a broken run.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from matrix import (
    CELLS,
    FAMILIES,
    FAULTS,
    PROGRAM,
    Expect,
    check_cell,
    check_journal,
    run_and_check,
    run_cell,
)

from emsctl.devices import OpenOptions, open_device
from emsctl.errors import InputError
from emsctl.simulator.faults import FaultPlan

EMSCTL = str(Path(sys.executable).with_name("emsctl"))
RUN_CELLS = [cell for cell, expect in CELLS.items() if expect.outcome != "n/a"]
NA_CELLS = [cell for cell, expect in CELLS.items() if expect.outcome == "n/a"]


def test_the_matrix_covers_every_family_and_every_fault_kind_once() -> None:
    from emsctl.simulator.faults import FAULT_KINDS

    assert set(CELLS) == {(f, k) for f in FAMILIES for k in FAULTS}
    # electrode_on only undoes electrode_off (a pad put back); every other kind has a column
    assert set(FAULTS) == FAULT_KINDS - {"electrode_on"}
    assert all(e.note for e in CELLS.values() if e.outcome == "n/a")


@pytest.mark.parametrize(("family", "fault"), RUN_CELLS, ids=[f"{f}-{k}" for f, k in RUN_CELLS])
def test_fault_cell(family: str, fault: str, tmp_path: Path) -> None:
    run, problems = run_and_check(family, fault, tmp_path)
    assert problems == [], f"{run.outcome.result}"


@pytest.mark.parametrize(("family", "fault"), NA_CELLS, ids=[f"{f}-{k}" for f, k in NA_CELLS])
def test_a_fault_a_family_cannot_express_is_refused_when_opening(family: str,
                                                                  fault: str) -> None:
    plan = FaultPlan([FAULTS[fault][1]])
    with pytest.raises(InputError, match=f"cannot (inject|carry out).*{fault}"):
        open_device(FAMILIES[family].url, OpenOptions(fault_plan=plan))


def test_the_checks_fail_on_a_run_that_breaks_them(tmp_path: Path) -> None:
    # a tolerated run judged as a stop cell: it neither ended as a fault nor said so
    run = run_cell("sim", "late_acks", tmp_path)
    problems = check_cell(run, Expect("stop", "link to the device lost"))
    assert any("expected fault / 1" in p for p in problems)
    assert any("lacks 'link to the device lost'" in p for p in problems)
    # a lost link on a device whose own bound were half as long: the output ran on too long
    lost = run_cell("sim", "disconnect", tmp_path)
    assert check_cell(lost, CELLS["sim", "disconnect"]) == []
    strict = dataclasses.replace(lost, family=dataclasses.replace(lost.family, holds_s=0.5))
    assert any("after the fault (bound 0.5 s)" in p
               for p in check_cell(strict, CELLS["sim", "disconnect"]))
    # a journal without its stop and footer
    assert lost.outcome.journal_path is not None
    lines = lost.outcome.journal_path.read_text().splitlines()
    lost.outcome.journal_path.write_text(
        "\n".join(line for line in lines if '"type": "stop"' not in line
                  and '"type":"stop"' not in line and "footer" not in line) + "\n")
    broken = check_journal(lost)
    assert "0 stop records, expected 1" in broken and "no footer" in broken


# ---------------------------------------------------------------------- the real CLI

CLI_CASES = [
    ("sim", "disconnect", "link to the device lost"),
    ("sciencemode2", "disconnect", "link to the device lost"),
    ("coyote3", "disconnect", "link to the device lost"),
    ("openems", "disconnect", "link to the device lost"),
    ("sciencemode2", "busy", "busy"),
    ("coyote3", "strength_change", "above the"),
    ("sim", "wrong_current", "above the"),
    ("openems", "corrupt_bytes", "which was not sent"),
]


@pytest.mark.parametrize(("family", "fault", "words"), CLI_CASES,
                         ids=[f"{f}-{k}" for f, k, _ in CLI_CASES])
def test_emsctl_run_with_a_fault_plan_exits_1_with_one_sentence_and_a_journal(
        family: str, fault: str, words: str, tmp_path: Path) -> None:
    spec = FAULTS[fault][1]
    fields = {k: v for k, v in dataclasses.asdict(spec).items() if v is not None}
    plan = tmp_path / "faults.toml"
    plan.write_text("[[faults]]\n" + "".join(
        f"{k} = {json.dumps(v)}\n" for k, v in fields.items()), encoding="utf-8")
    env = {"EMSCTL_STATE_DIR": str(tmp_path / "state"), "NO_COLOR": "1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [EMSCTL, "run", str(PROGRAM), "--device", FAMILIES[family].url, "--faults", str(plan),
         "--speed", "max", "--format", "json", "--journal-dir", str(tmp_path / "journals")],
        capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL,
        check=False)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["end_reason"] == "fault" and summary["exit_code"] == 1
    assert words in summary["message"]
    assert summary["message"].count("\n") == 0
    assert 29.0 <= summary["stim_time_s"] <= 34.0  # the time before the fault is kept
    records = [json.loads(line) for line in Path(summary["journal"]).read_text().splitlines()]
    assert records[0]["type"] == "header" and records[-1]["type"] == "footer"
    assert records[-1]["end_reason"] == "fault"
    assert [r["type"] for r in records].count("stop") == 1
