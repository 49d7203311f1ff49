"""Plain words through the real CLI: what ``show``, ``run`` and ``--help`` say to a person.

- ``show`` prints the description, the placement and the advice for afterwards, wrapped to
  the terminal's width at word boundaries, and explains a threshold term where it first
  appears;
- ``run`` in a pipe: the countdown line before the first current, the final screen (output off,
  the advice, what the person had), the device's current step explained, an unconfirmed stop
  that says to unplug the device, and a speed the machine cannot keep up with;
- every ``--help`` text gives limit and hazard IDs with words, documents the environment
  variables and shell completion; ``EMSCTL_DEBUG`` works like ``--debug``;
- a program file's calibration hint names the file, which ``calibrate --program`` accepts.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from emsctl.cli.words import HAZARD_NAMES, TERMS, wrap
from emsctl.limit_table import LIMIT_NAMES

ROOT = Path(__file__).resolve().parents[1]
EMSCTL = Path(sys.executable).with_name("emsctl")
COMMANDS = ("run", "validate", "show", "programs", "schema", "history", "simulate", "devices",
            "calibrate", "plot")


def emsctl(*args: str, columns: int = 80, env: dict[str, str] | None = None,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "COLUMNS": str(columns), "NO_COLOR": "1", **(env or {})}
    full.pop("EMSCTL_DEVICE", None)
    return subprocess.run([str(EMSCTL), *args], capture_output=True, text=True, env=full,
                          timeout=timeout, check=False)


def unwrapped(text: str) -> str:
    return " ".join(text.split())


# ------------------------------------------------------------------------------------- show


@pytest.mark.parametrize("columns", [60, 80, 120])
def test_show_prints_description_placement_and_advice_wrapped_between_words(
        columns: int) -> None:
    done = emsctl("show", "relaxation", columns=columns)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    width = min(columns, 100)
    prose = out.split("\nphase ", 1)[0]  # the tables after it have fixed columns
    assert all(len(line) <= width for line in prose.splitlines())
    flat = unwrapped(out)
    assert "A calm evening routine for your calves" in flat
    assert ("Placement: One channel per calf, two pads on each calf (about 20 cm² each). "
            "Upper pad: high on the calf") in flat
    assert "After the session: For the rest of the evening: drink enough over the day." in flat
    assert "legs slightly raised" in flat and "See a doctor" in flat
    # every word of the placement is whole on its line
    words = set(re.findall(r"[A-Za-z]+", "One channel per calf two pads Upper pad high on the "
                                        "calf just below where the two calf muscle heads begin"))
    assert words <= set(re.findall(r"[A-Za-z]+", out))


def test_show_explains_a_threshold_term_where_it_first_appears() -> None:
    out = emsctl("show", "relaxation").stdout
    explained = out.index("MT = the level where the muscle starts to twitch, for you, "
                          "from calibration")
    first_use = out.index("MT → MT+10%")
    assert explained < first_use
    assert out.count("MT = ") == 1
    tens = emsctl("show", "cramp-training").stdout
    assert "TOL = the highest level you still find comfortable" in tens


def test_show_names_phases_in_words() -> None:
    out = emsctl("show", "relaxation").stdout
    for name in ("stretch", "gentle twitches", "slower twitches", "fading out"):
        assert re.search(rf"^{name} +\d+:\d\d", out, re.MULTILINE), name


# --------------------------------------------------------------------------- run in a pipe


def test_run_in_a_pipe_counts_down_and_ends_with_a_calm_final_screen(tmp_path: Path) -> None:
    done = emsctl("run", "relaxation", "--speed", "max",
                  env={"EMSCTL_STATE_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "[02:50] current starts in 10 s — Ctrl-C stops" in out
    assert "[03:00] phase gentle twitches" in out
    flat = unwrapped(out)
    assert "Finished. Output is off: you can take the pads off now." in flat
    assert "drink enough over the day" in flat and "pull your toes towards your knee" in flat
    assert "Time with current 13:00 of 13:00 min" in flat
    assert "Intensity 100 % all through" in flat
    assert "Highest current 13.2 mA on each calf" in flat
    assert "µC" not in out and "/journals/" not in out  # raw figures and paths only with -v
    session = re.search(r"Saved as session ([0-9a-f]{8}): 'emsctl history \1'", out)
    assert session
    # the text before the live view: wrapped between words, terms explained once
    err = done.stderr
    assert all(len(line) <= 80 for line in err.splitlines())
    assert "Upper pad" in unwrapped(err)
    assert unwrapped(err).count("MT = the level where the muscle starts to twitch") == 1


def test_run_verbose_adds_the_figures_and_quiet_leaves_out_the_description(
        tmp_path: Path) -> None:
    env = {"EMSCTL_STATE_DIR": str(tmp_path)}
    loud = emsctl("-v", "run", "relaxation", "--speed", "max", env=env)
    assert loud.returncode == 0 and "µC per pulse phase" in loud.stdout
    assert "journal: " in loud.stdout
    quiet = emsctl("-q", "run", "relaxation", "--speed", "max", env=env)
    assert quiet.returncode == 0
    assert "A calm evening routine" not in quiet.stderr
    assert "Do you have a cardiac pacemaker" not in quiet.stderr
    assert "Before you start:" in quiet.stderr  # the warnings are always shown
    assert "Placement:" in quiet.stderr
    both = emsctl("-q", "-v", "show", "relaxation")
    assert both.returncode == 2


def test_the_device_step_explains_why_the_peak_is_lower_than_the_plan(tmp_path: Path) -> None:
    done = emsctl("run", "relaxation", "-d", "sim+sciencemode2", "--speed", "max",
                  env={"EMSCTL_STATE_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    flat = unwrapped(done.stdout)
    assert "Highest current 12 mA on each calf" in flat
    assert ("The plan asked for up to 13.2 mA; the Hasomed RehaStim2 (ScienceMode2) sets "
            "current in 2 mA steps, so 13.2 mA became 12 mA.") in flat


def test_an_unconfirmed_stop_says_what_is_known_and_to_unplug_the_device(
        tmp_path: Path) -> None:
    faults = tmp_path / "faults.toml"
    faults.write_text('[[faults]]\nkind = "disconnect"\nat_s = 200\n')
    done = emsctl("run", "relaxation", "--speed", "max", "--faults", str(faults),
                  env={"EMSCTL_STATE_DIR": str(tmp_path)})
    assert done.returncode == 1
    flat = unwrapped(done.stdout)
    assert "Output is off" not in flat
    assert "The session ended early: link to the device lost" in flat
    assert "the device did not confirm that its output is off" in flat
    assert "unplug the device or switch it off now" in flat
    assert "(heartbeat and watchdog, limit L21)" in flat  # an ID from a driver, with words


def test_a_speed_beyond_the_machine_says_it_ran_at_its_maximum(tmp_path: Path) -> None:
    # 16 minutes in a millisecond: no machine keeps up, so the run says what it did instead
    done = emsctl("run", "relaxation", "--speed", "1000000",
                  env={"EMSCTL_STATE_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    flat = unwrapped(done.stdout)
    assert "could not keep up with --speed 1000000" in flat and "its maximum" in flat
    normal = emsctl("run", "relaxation", "--speed", "max",
                    env={"EMSCTL_STATE_DIR": str(tmp_path)})
    assert "could not keep up" not in normal.stdout


# ----------------------------------------------------------------------------------- --help


def _ids_without_words(text: str) -> list[str]:
    flat = unwrapped(text)
    missing = []
    for match in re.finditer(r"\b(L\d{1,2}|HZ-\d\d)\b", flat):
        identifier = match.group(1)
        name = (HAZARD_NAMES.get(identifier) if identifier.startswith("HZ-")
                else LIMIT_NAMES.get(identifier, ""))
        around = flat[max(0, match.start() - 120):match.end() + 120].lower()
        if not name or name.lower() not in around:
            missing.append(f"{identifier}: …{flat[max(0, match.start() - 60):match.end() + 60]}…")
    return missing


@pytest.mark.parametrize("command", COMMANDS)
def test_every_help_text_gives_ids_with_words(command: str) -> None:
    done = emsctl(command, "--help", columns=100)
    assert done.returncode == 0, done.stderr
    assert _ids_without_words(done.stdout) == []


def test_top_level_help_documents_the_environment_and_completion() -> None:
    out = emsctl("--help").stdout
    for name in ("EMSCTL_DEVICE", "EMSCTL_LIMITS", "EMSCTL_DEBUG", "EMSCTL_DATA_DIR",
                 "EMSCTL_STATE_DIR", "_EMSCTL_COMPLETE=bash_source", "-q, --quiet",
                 "-v, --verbose"):
        assert name in out, name
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in ("EMSCTL_DEVICE", "EMSCTL_LIMITS", "EMSCTL_DEBUG", "EMSCTL_DATA_DIR",
                 "EMSCTL_STATE_DIR", "_EMSCTL_COMPLETE"):
        assert name in readme, name


def test_shell_completion_completes_commands_and_options() -> None:
    script = emsctl(env={"_EMSCTL_COMPLETE": "bash_source"})
    assert script.returncode == 0 and "complete " in script.stdout
    words = emsctl(env={"_EMSCTL_COMPLETE": "bash_complete", "COMP_WORDS": "emsctl ru",
                        "COMP_CWORD": "1"})
    assert "plain,run" in words.stdout.splitlines()
    programs = emsctl(env={"_EMSCTL_COMPLETE": "bash_complete", "COMP_WORDS": "emsctl run rel",
                           "COMP_CWORD": "2"})
    assert "plain,relaxation" in programs.stdout.splitlines()


def test_emsctl_debug_shows_the_traceback_like_debug() -> None:
    plain = emsctl("show", "nosuch")
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    debug = emsctl("show", "nosuch", env={"EMSCTL_DEBUG": "1"})
    assert "Traceback" in debug.stderr
    off = emsctl("show", "nosuch", env={"EMSCTL_DEBUG": "0"})
    assert "Traceback" not in off.stderr


def test_the_calibration_hint_for_a_program_file_names_the_file(tmp_path: Path) -> None:
    text = (ROOT / "programs" / "relaxation.toml").read_text(encoding="utf-8")
    program = tmp_path / "my relax.toml"
    program.write_text(text.replace('name = "relaxation"', 'name = "my-relax"'))
    env = {"EMSCTL_STATE_DIR": str(tmp_path / "state"), "EMSCTL_DATA_DIR": str(tmp_path)}
    done = emsctl("run", str(program), "-d", "sciencemode2:///dev/emsctl-test-nothing-here",
                  env=env)
    assert done.returncode == 2
    hint = re.search(r"run '(emsctl calibrate [^']*)'", unwrapped(done.stderr.replace("'\"'\"'",
                                                                                       "")))
    assert hint is not None, done.stderr
    assert f"--program '{program}'" in done.stderr
    # the suggested --program is one calibrate accepts (here it stops later, at the device)
    check = emsctl("calibrate", "-d", "sim", "--channel", "1", "--program", str(program),
                   "--virtual-user", "6,12,25", "--speed", "max", env=env)
    assert "no built-in program" not in check.stderr, check.stderr


def test_wrap_never_breaks_a_word_or_a_number_from_its_unit() -> None:
    text = "Upper pad: high on the calf, 85.0 mA is over 40 mA at 250 µs " * 4
    for width in (40, 53, 80):
        lines = wrap(text, width=width, label="Placement: ")
        assert all(len(line) <= width for line in lines)
        assert unwrapped(" ".join(lines)) == "Placement: " + unwrapped(text)
        assert not any(line.rstrip().endswith(("85.0", "40", "250")) for line in lines)


def test_calibrate_explains_the_terms_before_it_reports_them(tmp_path: Path) -> None:
    env = {"EMSCTL_STATE_DIR": str(tmp_path / "state"), "EMSCTL_DATA_DIR": str(tmp_path)}
    done = emsctl("calibrate", "-d", "sim", "--channel", "1", "--site", "calf-left",
                  "--virtual-user", "6,12,25", "--speed", "max", env=env)
    assert done.returncode == 0, done.stderr
    err = done.stderr
    first_report = err.index("ST —")
    for term, meaning in TERMS.items():
        assert err.index(f"{term} = {meaning}") < first_report
