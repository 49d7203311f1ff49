"""emsctl in other people's CI: the pre-commit hook shipped in .pre-commit-hooks.yaml and the
GitHub Actions workflow of docs/ci.md.

The fast tests check the hook manifest (with pre-commit's own schema) and the workflow's steps.
The slow ones (``-m slow``) install a fresh environment each: ``pre-commit try-repo`` on a
temporary git repository of program files, and the workflow's install step (``pip install
"emsctl @ git+…"``, here from a ``git+file://`` URL of a copy of this checkout) followed by
its validate step.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
HOOKS = ROOT / ".pre-commit-hooks.yaml"
CI_DOC = ROOT / "docs" / "ci.md"
VALID = (ROOT / "tests" / "corpus" / "programs" / "valid.toml").read_text()
#: The valid program with a pulse width above L6 (300 µs) on its line 21.
WIDE = VALID.replace("pulse_width_us = 250", "pulse_width_us = 350")

yaml = pytest.importorskip("yaml", reason="PyYAML comes with pre-commit (the dev extra)")


def _git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=True, timeout=120)
    return done.stdout


def _copy_of_the_checkout(target: Path) -> Path:
    """A git repository holding this checkout's files as they are now (committed or not)."""
    listed = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT)
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    _git("init", "-q", cwd=target)
    _git("add", "-A", cwd=target)
    _git("commit", "-q", "-m", "emsctl as checked out", cwd=target)
    return target


def _program_repo(target: Path) -> Path:
    """A git repository of program files: one valid, one breaking L6, and a pyproject.toml."""
    (target / "programs").mkdir(parents=True)
    (target / "programs" / "valid.toml").write_text(VALID)
    (target / "programs" / "wide.toml").write_text(WIDE)
    _git("init", "-q", cwd=target)
    _git("add", "-A", cwd=target)
    return target


# --------------------------------------------------------------------------- pre-commit hook


def _hooks() -> list[dict[str, Any]]:
    hooks = yaml.safe_load(HOOKS.read_text())
    assert isinstance(hooks, list)
    return hooks


def test_the_hook_manifest_is_valid_for_pre_commit() -> None:
    clientlib = pytest.importorskip("pre_commit.clientlib")
    [hook] = clientlib.load_manifest(str(HOOKS))
    assert hook["id"] == "emsctl-validate" and hook["language"] == "python"
    assert hook["entry"] == "emsctl validate"
    assert re.search(hook["files"], "programs/relaxation.toml")
    assert not re.search(hook["files"], "programs/notes.md")


def test_the_hook_runs_the_console_script_that_the_package_installs() -> None:
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for hook in _hooks():
        assert shlex.split(hook["entry"])[0] in scripts


@pytest.mark.slow
def test_pre_commit_try_repo_runs_the_hook_on_a_repository_of_program_files(
    tmp_path: Path,
) -> None:
    """pre-commit builds the hook's environment from the checkout and runs it: the broken file
    fails with its line, and the valid one alone passes."""
    pre_commit = Path(sys.executable).with_name("pre-commit")
    if not pre_commit.exists():
        pytest.skip("pre-commit is not installed (it comes with the dev extra)")
    emsctl = _copy_of_the_checkout(tmp_path / "emsctl")
    programs = _program_repo(tmp_path / "programs-repo")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "cache")}
    env = {k: v for k, v in env.items() if not k.startswith("EMSCTL_")}

    def try_repo(*files: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(pre_commit), "try-repo", str(emsctl), "emsctl-validate", "--color", "never",
             "--verbose", "--files", *files],
            cwd=programs, env=env, capture_output=True, text=True, timeout=900, check=False)

    failed = try_repo("programs/valid.toml", "programs/wide.toml")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "emsctl validate" in failed.stdout and "Failed" in failed.stdout
    assert ("FAIL     programs/wide.toml:21:1: Pulse width above limit L6: channel 1, phase 'A' "
            "(starts 0:00): 350 µs is outside 100–300 µs") in failed.stdout.splitlines()
    assert "1 of 2 program files valid" in failed.stdout
    passed = try_repo("programs/valid.toml")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "Passed" in passed.stdout


# --------------------------------------------------------------------------- GitHub Actions doc


def _workflow() -> dict[str, Any]:
    text = CI_DOC.read_text()
    match = re.search(r"<!-- workflow -->\n```yaml\n(.*?)```", text, re.DOTALL)
    assert match, "docs/ci.md has no workflow block after <!-- workflow -->"
    workflow = yaml.safe_load(match.group(1))
    assert isinstance(workflow, dict)
    return workflow


def _run_steps() -> list[str]:
    [job] = _workflow()["jobs"].values()
    return [step["run"] for step in job["steps"] if "run" in step]


def test_the_documented_workflow_installs_from_git_and_annotates() -> None:
    workflow = _workflow()
    [job] = workflow["jobs"].values()
    uses = [step.get("uses", "") for step in job["steps"]]
    assert any(u.startswith("actions/checkout@") for u in uses)
    assert any(u.startswith("actions/setup-python@") for u in uses)
    install, check = _run_steps()
    assert re.fullmatch(r'pip install "emsctl @ git\+https://[^"]+"', install)
    assert check == "emsctl validate programs/ --format github"


@pytest.mark.slow
def test_the_documented_install_and_validate_steps_work_from_a_git_url(tmp_path: Path) -> None:
    """The workflow's own two commands, with the URL pointing at a git copy of this checkout."""
    emsctl = _copy_of_the_checkout(tmp_path / "emsctl")
    install, check = _run_steps()
    # file://localhost/…: pip before 24.1 refuses a git+file:/// URL without a host
    install = re.sub(r"git\+https://[^\"]+", f"git+file://localhost{emsctl}", install)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMSCTL_", "VIRTUAL_ENV"))}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(["bash", "-c", install], env=env, capture_output=True, text=True,
                          timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (bin_dir / "emsctl").exists()
    programs = _program_repo(tmp_path / "programs-repo")
    done = subprocess.run(["bash", "-c", check], cwd=programs, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 1 and done.stderr == "", done.stderr
    assert done.stdout.splitlines() == [
        "ok       programs/valid.toml",
        "::error file=programs/wide.toml,line=21,col=1,title=Pulse width above limit L6::"
        "channel 1, phase 'A' (starts 0:00): 350 µs is outside 100–300 µs",
        "1 of 2 program files valid",
    ]
