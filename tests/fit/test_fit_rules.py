"""The fitting rules on hand-made programs: what is fitted, what is refused and why."""

from __future__ import annotations

import pytest

from emsctl.devices import open_device
from emsctl.errors import ValidationFailed
from emsctl.fit import check_on_device, fit_program
from emsctl.limits import DEFAULTS
from emsctl.loader import LoadedProgram, load_program, parse_program_text
from emsctl.runner import prepare_run

COYOTE = open_device("sim+coyote3").capabilities


def _relaxation_with(amplitude: str) -> str:
    text = load_program("relaxation").text
    return text.replace('amplitude = { from = "MT+10%", to = 0 }',
                        f'amplitude = {{ from = "{amplitude}", to = 0 }}')


def test_a_phase_set_in_ma_is_not_fitted_and_its_refusal_says_why_in_one_sentence() -> None:
    text = _relaxation_with("12mA")  # the last phase, 'fading out', at 200 µs, in mA
    program = parse_program_text(text)
    fit = fit_program(program, COYOTE)
    fading = [i for i, p in enumerate(program.phases) if p.name == "fading out"]
    assert list(fit.unfitted) == fading
    assert all(a.phase != "fading out" for a in fit.adaptations)  # the others are fitted
    checked = check_on_device(program, DEFAULTS, COYOTE)
    widths = [v for v in checked.blocks if v.setting == "pulse_width_max_us"]
    assert [v.channel for v in widths] == [1, 2]  # one per channel, merged in reports
    assert widths[0].message == (
        "200 µs is outside what DG-LAB Coyote V3 can do (1–100 µs); its current is set in mA, "
        "and the same mA at another width is another dose, so emsctl does not change it (set "
        "the current relative to your calibration, such as 'MT+10%', and the width can be "
        "fitted)")
    loaded = LoadedProgram(program, "<text>", "0" * 64, False, text)
    with pytest.raises(ValidationFailed, match=r"phase 'fading out' \(starts 13:00\): 200 µs .*"
                                               r"its current is set in mA"):
        prepare_run(loaded, "sim+coyote3", DEFAULTS)


def test_a_relative_phase_is_fitted_to_the_nearest_width_and_nothing_else_changes() -> None:
    program = load_program("relaxation").program
    fit = fit_program(program, COYOTE)
    assert fit.program.calibration_pulse_width_us == 100.0
    for before, after in zip(program.phases, fit.program.phases, strict=True):
        assert after.frequency_hz == before.frequency_hz and after.amplitude == before.amplitude
        if before.kind == "stim":
            assert after.pulse_width_us == 100.0
    assert fit.why.startswith("Your thresholds are measured at 100 µs")


def test_a_program_the_device_can_make_is_not_touched() -> None:
    program = load_program("relaxation").program
    fit = fit_program(program, open_device("sim+sciencemode2").capabilities)
    assert fit.program is program and not fit.adapted and fit.why == ""


def test_show_device_reports_the_rounding_of_current_and_rate() -> None:
    from emsctl.cli.show import worst_case

    sm2 = worst_case("relaxation", None, "sim+sciencemode2")["device"]
    assert sm2["amplitude_step_ma"] == 2.0
    assert sm2["amplitude_rounding_ma"] == pytest.approx(1.2)  # 13.2 mA made as 12.0 mA
    coyote = worst_case("relaxation", None, "sim+coyote3")["device"]["frequency_rounding"]
    # 3 Hz is a 333.3 ms period: the Coyote's 5 ms bin starts at 330 ms, i.e. 3.03 Hz
    assert coyote["planned_hz"] == 3.0
    assert coyote["delivered_hz"] == pytest.approx(1000 / 330)
    assert worst_case("relaxation", None, "sim")["device"]["frequency_rounding"]["fraction"] == 0
