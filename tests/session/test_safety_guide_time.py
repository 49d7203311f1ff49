"""Guide phases have no output: they never count as stimulation time (L19), at run time as in
verify, in the guard, the result and the summary."""

from __future__ import annotations

from pathlib import Path

import pytest
from session_helpers import prepared, run_virtual

from emsctl.loader import load_program
from emsctl.runner import prepare_run

PROGRAM_WITH_LONG_GUIDE = """\
name = "long-guide"
title = "A long guide, then ten minutes of output"
purpose = "relaxation"
evidence = "test"
description = "test"
placement = "test"
calibration_frequency_hz = 6
calibration_pulse_width_us = 250
soft_start_s = 5
transition_s = 5
end_ramp_s = 3

[[channels]]
id = 1
site = "calf-left"
electrode_area_cm2 = 20
max_amplitude_ma = 30

[[phases]]
name = "read and stretch"
kind = "guide"
duration_s = 1500
instructions = "stretch"

[[phases]]
name = "twitches"
duration_s = 600
frequency_hz = 6
pulse_width_us = 250
amplitude = "MT"
"""


def test_guide_time_does_not_count_as_stimulation_time(tmp_path: Path) -> None:
    # 25 min of guidance and 10 min of output: the session cap (30 min) counts the output only,
    # as verify does; the session completes and reports 10 min of stimulation
    path = tmp_path / "long-guide.toml"
    path.write_text(PROGRAM_WITH_LONG_GUIDE)
    prep = prepare_run(load_program(str(path)), "sim", prepared().limits)
    run = run_virtual(prep, tmp_path)
    result = run.outcome.result
    assert result.end_reason == "completed", result.message
    assert result.stim_time_s == pytest.approx(600.0)
    delivered = run.outcome.delivered["channels"]["1"]
    assert delivered["pulse_count"] > 0
