"""L13: EMS programs need pads of at least 16 cm²; only TENS programs may go down to 4 cm².

A program is EMS (muscle stimulation) unless its purpose is "tens". The rule is a property of
the program alone (purpose and pad areas), so the program model refuses it when a file is
loaded, and verify checks it again on the compiled plan (a plan of unknown purpose counts as
EMS, the stricter).
"""

from __future__ import annotations

import dataclasses
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from emsctl.cli import cli
from emsctl.errors import ProgramError
from emsctl.limits import DEFAULTS
from emsctl.loader import builtin_names, load_program, parse_program_text
from emsctl.plan import SEGMENT_DTYPE, ChannelPlan, PhaseSpan, Plan, compile_plan
from emsctl.program import Program
from emsctl.verify import verify

TENS_BUILTINS = ["tens", "tens-burst", "tens-modulated"]
EMS_BUILTINS = [n for n in builtin_names() if n not in TENS_BUILTINS]


def _text(name: str) -> str:
    return (resources.files("emsctl.programs") / f"{name}.toml").read_text()


def _with_pads(text: str, area_cm2: float) -> str:
    new, count = re.subn(r"^electrode_area_cm2 = .*$", f"electrode_area_cm2 = {area_cm2!r}",
                         text, flags=re.MULTILINE)
    assert count > 0
    return new


def _pads_changed_without_validation(name: str, area_cm2: float) -> Program:
    """A built-in with other pads, past the model (model_copy does not validate): what verify
    must catch on its own."""
    program = load_program(name).program
    channels = [c.model_copy(update={"electrode_area_cm2": area_cm2}) for c in program.channels]
    return program.model_copy(update={"channels": channels})


def _l13(plan: Plan) -> list[tuple[int | None, float, float, str]]:
    return [(v.channel, v.value, v.allowed, v.message) for v in verify(plan, DEFAULTS)
            if v.limit_id == "L13" and v.severity == "block"]


def test_the_builtin_programs_are_ems_or_tens_as_these_tests_assume() -> None:
    assert {load_program(n).program.purpose for n in TENS_BUILTINS} == {"tens"}
    assert all(load_program(n).program.purpose != "tens" for n in EMS_BUILTINS)
    assert len(EMS_BUILTINS) == 5


@pytest.mark.parametrize("name", EMS_BUILTINS)
def test_validate_refuses_an_ems_program_on_4_cm2_pads(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}-small-pads.toml"
    path.write_text(_with_pads(_text(name), 4))
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2, result.output  # not a valid program
    assert "0 of 1 program files valid" in result.output
    assert "pads of 4 cm² are too small for an EMS program" in result.output
    assert "at least 16 cm²" in result.output  # the line is cut at ~200 characters
    full = CliRunner().invoke(cli, ["validate", "--format", "json", str(path)]).output
    assert "L13" in full and "at least 16 cm²" in full


@pytest.mark.parametrize("name", EMS_BUILTINS)
def test_validate_accepts_an_ems_program_on_16_cm2_pads(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}-16.toml"
    path.write_text(_with_pads(_text(name), 16))
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 0, result.output


def test_validate_accepts_a_tens_program_on_4_cm2_pads(tmp_path: Path) -> None:
    path = tmp_path / "tens-small-pads.toml"
    path.write_text(_with_pads(_text("tens"), 4))
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 0, result.output  # 1.70 mA/cm²: an L9 warning only
    assert "L13" not in result.output


@pytest.mark.parametrize("area_cm2", [4.0, 15.9])
def test_the_model_refuses_ems_programs_on_pads_under_16_cm2(area_cm2: float) -> None:
    with pytest.raises(ProgramError) as refused:
        parse_program_text(_with_pads(_text("massage"), area_cm2), "massage.toml")
    message = str(refused.value)
    assert message.startswith("massage.toml: ")
    assert f"channel 1: pads of {area_cm2:g} cm² are too small for an EMS program" in message
    assert "only TENS programs may use smaller pads, down to 4 cm²" in message


def test_the_model_names_every_channel_on_small_pads() -> None:
    with pytest.raises(ProgramError, match=r"channel 1: pads of 4 cm² are too small for an EMS "
                       r"program \(and on channel 2\): a 'relaxation' program"):
        parse_program_text(_with_pads(_text("relaxation"), 4))


@pytest.mark.parametrize("name", EMS_BUILTINS)
@pytest.mark.parametrize("area_cm2", [4.0, 15.9])
def test_verify_refuses_an_ems_plan_on_pads_under_16_cm2(name: str, area_cm2: float) -> None:
    plan = compile_plan(_pads_changed_without_validation(name, area_cm2))
    found = _l13(plan)
    assert [(ch, value, allowed) for ch, value, allowed, _ in found] == [
        (c.channel, area_cm2, 16.0) for c in plan.channels]
    assert f"electrode area {area_cm2:g} cm² is under 16 cm², the smallest pad for EMS" \
        in found[0][3]


@pytest.mark.parametrize("name", EMS_BUILTINS)
def test_verify_passes_an_ems_plan_on_16_cm2_pads(name: str) -> None:
    assert _l13(compile_plan(_pads_changed_without_validation(name, 16.0))) == []


@pytest.mark.parametrize("name", TENS_BUILTINS)
def test_verify_lets_tens_plans_use_pads_down_to_4_cm2(name: str) -> None:
    assert _l13(compile_plan(_pads_changed_without_validation(name, 4.0))) == []
    assert [v[1:3] for v in _l13(compile_plan(_pads_changed_without_validation(name, 3.9)))
            ][:1] == [(3.9, 4.0)]


def test_verify_checks_a_plan_of_unknown_purpose_as_ems() -> None:
    rows = [(0.0, 10.0, 0.0, 10.0, 8.0, 8.0, 250.0, 250.0, 0.0, 0, 0),
            (10.0, 60.0, 10.0, 10.0, 8.0, 8.0, 250.0, 250.0, 0.0, 0, 0)]
    channel = ChannelPlan(1, "calf-left", 8.0, 30.0, np.array(rows, dtype=SEGMENT_DTYPE))
    plan = Plan("hand-made", 60.0, (PhaseSpan(0, "A", "stim", 0.0, 60.0, None),), (channel,),
                5.0)
    assert [v[:3] for v in _l13(plan)] == [(1, 8.0, 16.0)]
    assert _l13(dataclasses.replace(plan, purpose="tens")) == []
