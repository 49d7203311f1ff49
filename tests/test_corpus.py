"""The bad-input corpus (HZ-13): every hostile or broken input gets one exact
message and exit code from the CLI, and never a traceback.

The inputs are ``tests/corpus/programs/*.toml`` and ``tests/corpus/limits/*.toml`` plus the cases
made at run time by ``tests/corpus/cases.py`` (10 MB file, FIFO, symlink loops, …). The
expectations are ``tests/corpus/expected.toml``: per case and per command (``validate``,
``show``, ``limits`` = ``--limits FILE`` on ``validate`` and ``show``) the exit code and the exact
stderr lines, plus the exact stdout lines of ``validate`` (``{path}`` stands for the argument as
given; a line ending in ``…`` is a prefix). Every corpus file must have an entry, so a new file
cannot go untested.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from emsctl.cli import main
from emsctl.cli.common import load_limits

CORPUS = Path(__file__).parent / "corpus"
EXPECTED: list[dict[str, Any]] = tomllib.loads((CORPUS / "expected.toml").read_text())["case"]
COMMANDS = ("validate", "show", "limits")
#: A program that passes the shipped defaults, used as the target of ``--limits`` cases.
VALID = "programs/valid.toml"


def _generators() -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("corpus_cases", CORPUS / "cases.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.GENERATORS)


GENERATORS = _generators()


def _argv(command: str, arg: str) -> list[str]:
    if command == "validate":
        return ["validate", arg]
    if command == "show":
        return ["show", arg]
    return ["validate", "--limits", arg, VALID]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``emsctl.cli.main`` in-process; return exit code, stdout and stderr."""
    load_limits.cache_clear()  # a cached limits file from another case's folder must not leak
    try:
        result = main(argv)
        code = 0 if result is None else int(result)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def _unwrapped(text: str) -> list[str]:
    """``show``'s lines with its wrapping undone: an indented line continues the one above."""
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith(" ") and line.strip() and lines and lines[-1]:
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    return lines


def _matches(expected: list[str], actual: list[str]) -> bool:
    if len(expected) != len(actual):
        return False
    return all(a.startswith(e[:-1]) if e.endswith("…") else a == e
               for e, a in zip(expected, actual, strict=True))


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the corpus in a fresh folder, which is also the current directory."""
    folder = tmp_path / "work"
    folder.mkdir()
    shutil.copytree(CORPUS / "programs", folder / "programs")
    shutil.copytree(CORPUS / "limits", folder / "limits")
    monkeypatch.chdir(folder)
    monkeypatch.delenv("EMSCTL_LIMITS", raising=False)
    return folder


def _arg(case: dict[str, Any], work: Path) -> str:
    if "generate" in case:
        return str(GENERATORS[case["generate"]](work))
    return str(case["file"])


PARAMS = [
    pytest.param(case, command, id=f"{case['id']}-{command}")
    for case in EXPECTED
    for command in COMMANDS
    if command in case
]


@pytest.mark.parametrize(("case", "command"), PARAMS)
def test_bad_input_gets_its_exact_message_and_exit_code(
    case: dict[str, Any], command: str, work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arg = _arg(case, work)
    want = case[command]
    code, out, err = run_cli(_argv(command, arg), capsys)
    assert "Traceback" not in err + out
    expected_err = [line.replace("{path}", arg) for line in want.get("stderr", [])]
    assert _matches(expected_err, err.splitlines()), err
    assert code == want["exit"], err
    expected_out = [line.replace("{path}", arg) for line in want.get("stdout", [])]
    if command == "show":  # show prints the whole program; these lines must be among it
        for line in expected_out:
            assert line in _unwrapped(out), out
    else:  # validate: every result, in order, on stdout
        assert _matches(expected_out, out.splitlines()), out


def test_every_corpus_file_has_an_expectation() -> None:
    listed = {case["file"] for case in EXPECTED if "file" in case}
    on_disk = {f"{p.parent.name}/{p.name}" for p in CORPUS.glob("*/*.toml")}
    assert on_disk - listed == set()
    assert listed - on_disk == set()


def test_every_generated_case_has_an_expectation() -> None:
    assert {case["generate"] for case in EXPECTED if "generate" in case} == set(GENERATORS)


def test_limits_file_cases_also_fail_on_show(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--limits`` is read before anything else by every command that takes it."""
    for case in EXPECTED:
        if "limits" not in case or case["limits"]["exit"] == 0 or "generate" in case:
            continue
        code, _, err = run_cli(["show", "--limits", case["file"], "relaxation"], capsys)
        assert (code, err.splitlines()[0]) == (
            2, case["limits"]["stderr"][0].replace("{path}", case["file"])), case["id"]


def test_a_folder_of_the_whole_corpus_reports_every_file_and_exits_2(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["validate", "programs"], capsys)
    files = sorted(p.name for p in (work / "programs").glob("*.toml"))
    reported = [line for line in out.splitlines() if line.startswith(("ok ", "FAIL", "in"))]
    assert code == 2 and err == ""  # every result on stdout
    assert len({line.split(":")[0].split("/")[-1] for line in reported}) == len(files)
    valid = sum(1 for case in EXPECTED if str(case.get("file", "")).startswith("programs/")
                and case["validate"]["exit"] == 0)
    assert valid >= 2  # valid.toml and code-in-strings.toml
    assert out.splitlines()[-1] == f"{valid} of {len(files)} program files valid"
    assert "Traceback" not in out + err


# --- the same contract through the real console script (a few cases) -------------------------

SCRIPT = Path(sys.executable).with_name("emsctl")


@pytest.mark.skipif(not SCRIPT.exists(), reason="the emsctl console script is not installed")
@pytest.mark.parametrize(
    ("argv", "code", "first_line"),
    [
        (["validate", "--limits", "limits/peak-90.toml", VALID], 2,
         "emsctl: limits/peak-90.toml: key 'peak_ma': peak_ma = 90 would loosen L3 (ceiling "
         "80 mA); limits can only be tightened."),
        (["validate", "programs/cap-above-l3.toml"], 1,
         "FAIL     programs/cap-above-l3.toml:15:1: Peak current above limit L3: channel 1, "
         "phase 'A' (starts 0:00): 90.0 mA is over 40 mA"),
        (["run", "--speed", "max", "--format", "json", "../../../../../../../../etc/passwd"], 2,
         "emsctl: ../../../../../../../../etc/passwd: invalid TOML: …"),
        (["run", "--speed", "max", "../no-such-dir/x"], 2,
         "emsctl: ../no-such-dir/x: no such file"),
    ],
)
def test_console_script_gives_one_sentence_and_the_exit_code(
    argv: list[str], code: int, first_line: str, work: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMSCTL_")}
    env["EMSCTL_STATE_DIR"] = str(work / "state")
    done = subprocess.run([str(SCRIPT), *argv], capture_output=True, text=True, timeout=60,
                          env=env, cwd=work, check=False)
    lines = (done.stdout + done.stderr).splitlines()
    assert "Traceback" not in done.stderr
    assert done.returncode == code, done.stderr
    assert _matches([first_line], lines[:1]), lines
    if code == 2:
        assert len(done.stderr.splitlines()) == 1  # one sentence
    else:
        assert done.stderr == ""  # validate's results are all on stdout
