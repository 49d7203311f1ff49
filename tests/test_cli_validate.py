"""`emsctl validate` for people and for CI, through the real CLI: one report per problem (the
channels it affects, its phase and that phase's start), placed at a line and column, with a
human title; results on stdout and only what stops validate on stderr; -q, -v and -d."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from emsctl.cli import cli, main
from emsctl.cli.common import load_limits

ROOT = Path(__file__).resolve().parents[1]
OPENEMS = "sim+openems?ma_at_100=40&frequency_hz=80&pulse_width_us=180"

HEAD = '''\
name = "test"
title = "Test program"
purpose = "massage"
evidence = "none"
description = "A test."
placement = "Calf."
calibration_frequency_hz = 8
calibration_pulse_width_us = 250
'''
CHANNELS = '''
[[channels]]
id = 1
site = "calf-left"
electrode_area_cm2 = 20
max_amplitude_ma = 30

[[channels]]
id = 2
site = "calf-right"
electrode_area_cm2 = 20
max_amplitude_ma = 30
'''
PHASE = '''
[[phases]]
name = "{name}"
duration_s = 60
frequency_hz = 8
pulse_width_us = {width}
amplitude = "MT"
'''
#: Two channels; phase B starts at 1:00 and its pulse width (line 33) breaks L6 on both.
WIDE = HEAD + CHANNELS + PHASE.format(name="A", width=250) + PHASE.format(name="B", width=350)
#: A TOML syntax error at line 3, column 6.
BROKEN = 'name = "x"\ntitle = "y"\nrate x\n'
#: An unknown key (line 27) in phase A, and phase B (header: line 29) without a pulse width.
MISSPELT = (HEAD + CHANNELS + PHASE.format(name="A", width=250).replace("amplitude", "amplitde")
            + '\n[[phases]]\nname = "B"\nduration_s = 60\nfrequency_hz = 8\namplitude = "MT"\n')


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``emsctl ARGS`` through the console script's entry point: (exit, stdout, stderr)."""
    load_limits.cache_clear()
    try:
        main(list(args))
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code if isinstance(exit_info.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of program files (the current directory): one valid, one of each problem."""
    programs = tmp_path / "programs"
    (programs / "p2").mkdir(parents=True)
    (programs / "good.toml").write_text(HEAD + CHANNELS + PHASE.format(name="A", width=250))
    (programs / "wide.toml").write_text(WIDE)
    (programs / "p2" / "broken.toml").write_text(BROKEN)
    (programs / "p2" / "misspelt.toml").write_text(MISSPELT)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EMSCTL_LIMITS", raising=False)
    return tmp_path


def test_the_fixtures_break_where_the_tests_say() -> None:
    lines = WIDE.splitlines()
    assert lines[32] == "pulse_width_us = 350" and lines[28] == "[[phases]]"
    misspelt = MISSPELT.splitlines()
    assert misspelt[26].startswith("amplitde") and misspelt[28] == "[[phases]]"


# --------------------------------------------------------------------------- github annotations


def test_github_annotations_carry_file_line_col_and_a_human_title(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "validate", "programs/", "--format", "github")
    assert (code, err) == (2, "")
    assert out.splitlines() == [
        "ok       programs/good.toml",
        "::error file=programs/p2/broken.toml,line=3,col=6,title=Invalid TOML::"
        "Expected '=' after a key in a key/value pair",
        "::error file=programs/p2/misspelt.toml,line=27,col=1,title=Unknown key "
        "phases[1].amplitde::check its spelling and unit suffix",
        "::error file=programs/p2/misspelt.toml,line=29,col=1,title=Invalid phases[2]::"
        "a stim phase needs pulse_width_us",
        "::error file=programs/wide.toml,line=33,col=1,title=Pulse width above limit L6::"
        "channels 1, 2, phase 'B' (starts 1:00): 350 µs is outside 100–300 µs",
        "1 of 4 program files valid",
    ]


def test_the_same_problems_in_text_name_the_file_line_and_column(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "validate", "programs/wide.toml", "programs/p2/broken.toml")
    assert (code, err) == (2, "")
    assert out.splitlines() == [
        "FAIL     programs/wide.toml:33:1: Pulse width above limit L6: channels 1, 2, "
        "phase 'B' (starts 1:00): 350 µs is outside 100–300 µs",
        "invalid  programs/p2/broken.toml:3:6: Invalid TOML: Expected '=' after a key in a "
        "key/value pair",
        "0 of 2 program files valid",
    ]


def test_a_limit_broken_by_the_channel_cap_points_at_the_cap(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = WIDE.replace("max_amplitude_ma = 30\n\n[[channels]]\nid = 2",
                        "max_amplitude_ma = 45\n\n[[channels]]\nid = 2")
    Path("cap.toml").write_text(text)
    code, out, _ = _run(capsys, "validate", "cap.toml", "--format", "github")
    assert code == 1
    cap_line = text.splitlines().index("max_amplitude_ma = 45") + 1
    assert (f"::error file=cap.toml,line={cap_line},col=1,title=Peak current above limit L3::"
            "channel 1, phase 'A' (starts 0:00): 45.0 mA is over 40 mA") in out.splitlines()


def test_special_characters_in_annotations_are_escaped(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = Path("a,b:c")
    folder.mkdir()
    (folder / "x%.toml").write_text(BROKEN)
    _, out, _ = _run(capsys, "validate", str(folder), "--format", "github")
    assert out.splitlines()[0].startswith("::error file=a%2Cb%3Ac/x%25.toml,line=3,col=6,")


# --------------------------------------------------------------------------- one report per problem


def test_a_device_problem_is_one_report_per_phase_naming_both_channels(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """relaxation on an openEMSstim fixed at 80 Hz, 180 µs: each phase's rate, once, for
    channels 1 and 2, at the phase's own start ('fading out' starts at 13:00), each on its own
    line. Its widths would be fitted (its currents follow the person's thresholds); its rates
    are never changed."""
    monkeypatch.chdir(ROOT)
    relaxation = "programs/relaxation.toml"
    code, out, err = _run(capsys, "validate", relaxation, "-d", OPENEMS, "--format", "github")
    assert (code, err) == (1, "")
    lines = out.splitlines()
    assert lines[-1] == "0 of 1 program files valid"
    annotations = lines[:-1]
    assert len(annotations) == 3  # 3 stim phases × frequency; not repeated per channel
    assert all("channels 1, 2, phase '" in line for line in annotations)
    # short lines; phase names are words ("gentle twitches"), a little longer than letters
    assert all(len(line) <= 220 for line in lines), max(lines, key=len)
    text = (ROOT / "programs" / "relaxation.toml").read_text().splitlines()
    c_rate = next(n for n, line in enumerate(text, 1) if n > 100 and line.startswith(
        "frequency_hz = ") and n > next(m for m, t in enumerate(text, 1)
                                         if t.startswith('name = "fading out"')))
    assert (f"::error file={relaxation},line={c_rate},col=1,title=Frequency below the "
            "device's range::channels 1, 2, phase 'fading out' (starts 13:00): 2 Hz is outside "
            "what openEMSstim can do (only 80 Hz, its fixed rate)") in annotations
    assert "t=0.0" not in out and "(starts 0:00)" not in out


def test_json_has_the_same_reports_with_their_fields(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "validate", "programs/wide.toml", "--format", "json")
    assert (code, err) == (1, "")
    data = json.loads(out)
    assert data["valid"] is False and data["summary"] == "0 of 1 program files valid"
    [result] = data["files"]
    assert result["status"] == "violation" and result["warnings"] == []
    [problem] = result["problems"]
    assert problem == {
        "severity": "error", "title": "Pulse width above limit L6",
        "message": "350 µs is outside 100–300 µs", "limit": "L6",
        "setting": "pulse_width_max_us", "channels": [1, 2], "phase": "B",
        "phase_start_s": 60.0, "t_s": 60.0, "value": 350.0, "allowed": 300.0,
        "line": 33, "col": 1,
        "summary": "Pulse width above limit L6: channels 1, 2, phase 'B' (starts 1:00): "
                   "350 µs is outside 100–300 µs",
    }


def test_every_report_of_the_whole_corpus_is_one_short_line_with_a_worded_title(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT / "tests" / "corpus")
    _, out, err = _run(capsys, "validate", "programs")  # the report after "LABEL PATH:L:C: "
    reports = [re.sub(r"^\S+ +\S+?(:\d+)*: ", "", line) for line in out.splitlines()]
    assert err == "" and all(len(r) <= 200 for r in reports), max(reports, key=len)
    assert any(r.endswith("or a multiple ('0.6*TOL')") for r in reports)  # whole when it fits
    _, out, err = _run(capsys, "validate", "programs", "--format", "github")
    shown = [re.sub(r"^::\w+ .*?title=(.*?)::", r"\1: ", line) for line in out.splitlines()]
    assert err == "" and all(len(s) <= 200 for s in shown), max(shown, key=len)
    _, out, _ = _run(capsys, "validate", "programs", "--format", "github")
    titles = re.findall(r",title=([^:]*)::", out)
    assert len(titles) > 40
    for title in titles:
        assert not re.fullmatch(r"L\d+|device|input", title), title
        limit = re.search(r"\bL\d+\b", title)
        assert limit is None or len(title) > len(limit.group()) + 10, title
    _, out, _ = _run(capsys, "validate", "programs", "--format", "json")
    reports = [p for f in json.loads(out)["files"] for p in f["problems"] + f["warnings"]]
    assert reports and all(len(r["summary"]) <= 200 for r in reports)


def test_warnings_are_reports_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT / "tests" / "corpus")
    code, out, _ = _run(capsys, "validate", "programs/tiny-electrode.toml", "--format", "github")
    assert code == 1
    assert ("::warning file=programs/tiny-electrode.toml,line=18,col=1,title=Current density "
            "near limit L9::channel 1, phase 'A' (starts 0:00): current density 1.897 mA/cm² "
            "needs attention (≥ 1)") in out.splitlines()


# --------------------------------------------------------------------------- stdout and stderr


@pytest.mark.parametrize("fmt", ["text", "json", "github"])
def test_results_go_to_stdout_in_every_format(
    fmt: str, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for paths in (["programs/good.toml"], ["programs/"], ["programs/wide.toml"], ["nothing"]):
        code, out, err = _run(capsys, "validate", "--format", fmt, *paths)
        assert err == "", (paths, err)
        assert out.strip(), paths
        assert code == {"programs/good.toml": 0, "programs/wide.toml": 1}.get(paths[0], 2)


@pytest.mark.parametrize("fmt", ["text", "json", "github"])
def test_what_stops_validate_before_any_file_goes_to_stderr_only(
    fmt: str, repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("loose.toml").write_text("peak_ma = 90\n")
    for args in (["--limits", "loose.toml"], ["-d", "bogus://x"], ["--no-such-flag"]):
        code, out, err = _run(capsys, "validate", "--format", fmt, *args, "programs/")
        assert (code, out) == (2, ""), args
        assert err.strip(), args


# --------------------------------------------------------------------------- -q, -v, -d


def test_quiet_prints_only_failures(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "validate", "-q", "programs/good.toml")
    assert (code, out, err) == (0, "", "")
    code, out, _ = _run(capsys, "validate", "-q", "programs/good.toml", "programs/wide.toml")
    assert code == 1
    assert out.splitlines() == [
        "FAIL     programs/wide.toml:33:1: Pulse width above limit L6: channels 1, 2, "
        "phase 'B' (starts 1:00): 350 µs is outside 100–300 µs"]
    code, out, _ = _run(capsys, "validate", "--quiet", "--format", "json", "programs/")
    assert [f["path"] for f in json.loads(out)["files"]] == [
        "programs/p2/broken.toml", "programs/p2/misspelt.toml", "programs/wide.toml"]
    code, out, _ = _run(capsys, "validate", "-q", "--format", "github",
                        str(ROOT / "tests" / "corpus" / "programs" / "tiny-electrode.toml"))
    assert "::warning" not in out and out.count("::error") == 2


def test_verbose_lists_every_check_of_every_file(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "validate", "-v", "programs/good.toml", "programs/wide.toml",
                        "programs/p2/broken.toml")
    assert code == 2
    lines = out.splitlines()
    assert lines[0] == "ok       programs/good.toml"
    checks = [line.split() for line in lines if line.startswith("  ")]
    assert len(checks) == 3 * 16  # TOML, the model and 14 limits, for each file
    assert ["pass", "L6", "pulse", "width"] in checks[:16]
    assert ["FAIL", "L6", "pulse", "width"] in checks[16:32]
    assert checks[32][:2] == ["FAIL", "toml"] and {c[0] for c in checks[33:48]} == {"skip"}
    code, out, _ = _run(capsys, "validate", "--verbose", "-d", "sim", "--format", "json",
                        "programs/good.toml")
    [result] = json.loads(out)["files"]
    assert result["checks"][-1] == {"check": "device", "what": "what the device can do",
                                    "outcome": "pass"}
    code, _, err = _run(capsys, "validate", "-q", "-v", "programs/good.toml")
    assert code == 2 and "exclude each other" in err


def test_d_is_short_for_device(capsys: pytest.CaptureFixture[str]) -> None:
    tens = str(ROOT / "programs" / "tens.toml")
    long_form = _run(capsys, "validate", tens, "--device", "sim+sciencemode2")
    assert long_form == _run(capsys, "validate", tens, "-d", "sim+sciencemode2")
    assert long_form[0] == 1 and "80 Hz is outside what Hasomed RehaStim2" in long_form[1]


def test_the_click_command_runs_under_clirunner(repo: Path) -> None:
    result = CliRunner().invoke(cli, ["validate", "programs/wide.toml", "--format", "github"])
    assert result.exit_code == 1 and result.stderr == ""
    assert result.stdout.startswith("::error file=programs/wide.toml,line=33,col=1,")


# --------------------------------------------------------------------------- the installed script

SCRIPT = Path(sys.executable).with_name("emsctl")


@pytest.mark.skipif(not SCRIPT.exists(), reason="the emsctl console script is not installed")
def test_the_installed_script_annotates_for_github(repo: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMSCTL_")}
    done = subprocess.run([str(SCRIPT), "validate", "programs/", "--format", "github"],
                          capture_output=True, text=True, timeout=60, env=env, cwd=repo,
                          check=False)
    assert done.returncode == 2 and done.stderr == ""
    assert ("::error file=programs/p2/broken.toml,line=3,col=6,title=Invalid TOML::Expected '=' "
            "after a key in a key/value pair") in done.stdout.splitlines()
    assert done.stdout.splitlines()[-1] == "1 of 4 program files valid"


# --------------------------------------------------------------------------- run's refusal


def test_run_refuses_a_program_the_device_cannot_express_in_short_grouped_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EMSCTL_STATE_DIR", str(tmp_path))
    code, _, err = _run(capsys, "run", "relaxation", "--speed", "max", "-d", OPENEMS)
    assert code == 1
    refusal = err.splitlines()
    start = next(n for n, line in enumerate(refusal) if "cannot run on openEMSstim" in line)
    reports = refusal[start + 1:]
    assert len(reports) == 3 and all(line.startswith("  ") for line in reports)
    assert all(len(line) <= 200 for line in refusal[start:])
    assert ("  Frequency below the device's range: channels 1, 2, phase 'fading out' (starts "
            "13:00): 2 Hz is outside what openEMSstim can do (only 80 Hz, its fixed rate)"
            ) in reports
