"""`emsctl validate --device URL`: a program the device cannot express fails before anything
is sent; the device is made but never opened."""

from __future__ import annotations

from pathlib import Path

import pytest

from emsctl.cli import main


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    try:
        main(["validate", *args])
        code = 0
    except SystemExit as exit_info:
        code = int(exit_info.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_a_program_within_the_device_passes(capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = _run(capsys, "programs/relaxation.toml", "--device", "sim+sciencemode2")
    assert code == 0


def test_a_frequency_the_device_cannot_make_fails_with_the_device_named(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, text = _run(capsys, "programs/tens.toml", "--device", "sim+sciencemode2")
    assert code == 1
    assert "80 Hz is outside what Hasomed RehaStim2" in text


def test_bursts_on_a_device_that_cannot_time_them_fail(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, text = _run(capsys, "programs/tens-burst.toml", "--device", "sim+sciencemode2")
    assert code == 1
    assert "cannot time bursts" in text


def test_a_real_port_is_not_opened_to_validate(capsys: pytest.CaptureFixture[str]) -> None:
    url = "openems:///dev/does-not-exist?ma_at_100=40&frequency_hz=80&pulse_width_us=180"
    code, text = _run(capsys, "programs/tens.toml", "--device", url)
    assert code == 0, text


def test_an_unknown_device_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _run(capsys, "programs/tens.toml", "--device", "bogus://x")
    assert code == 2
    assert "unknown device 'bogus'" in text


def test_a_rate_the_coyote_makes_above_the_frequency_ceiling_fails(
    capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    # 97 Hz is within a person's 97 Hz ceiling; the Coyote's period bins make it 100 Hz
    program = tmp_path / "tens-97.toml"
    program.write_text(Path("programs/tens.toml").read_text()
                       .replace("frequency_hz = 80", "frequency_hz = 97"))
    limits = tmp_path / "limits.toml"
    limits.write_text("frequency_max_hz = 97\n")
    code, text = _run(capsys, str(program), "--limits", str(limits))
    assert code == 0, text
    code, text = _run(capsys, str(program), "--limits", str(limits), "--device",
                      "sim+coyote3?us_per_intensity=3")
    assert code == 1
    assert "100 Hz is outside 1–97 Hz (DG-LAB Coyote V3 makes 97 Hz as 100 Hz)" in text
