"""The project's own working habits hold: pre-commit config, warnings as errors, changelog.

These check the files a contributor relies on (CONTRIBUTING.md describes them), not emsctl's
behaviour: the pre-commit config is valid and runs the same tools as CI, pytest turns every
warning into an error, and the changelog and contributing guide name what they must.
"""

from __future__ import annotations

import re
import shlex
import tomllib
import warnings
from pathlib import Path

import pytest

import emsctl

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".pre-commit-config.yaml"


def test_the_pre_commit_config_is_valid_and_runs_ruff_and_mypy_from_the_venv() -> None:
    clientlib = pytest.importorskip("pre_commit.clientlib")
    config = clientlib.load_config(str(CONFIG))
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}
    assert set(hooks) == {"ruff", "mypy"}
    assert shlex.split(hooks["ruff"]["entry"])[:2] == [".venv/bin/ruff", "check"]
    assert shlex.split(hooks["mypy"]["entry"]) == [".venv/bin/mypy", "-p", "emsctl"]
    assert hooks["mypy"]["pass_filenames"] is False
    # mypy runs for a change to any of the mapped package folders, and not for a test file
    files = re.compile(hooks["mypy"]["files"])
    for path in ("src/emsctl/api.py", "drivers/sciencemode2/driver.py", "simulator/model.py"):
        assert files.search(path), path
    assert not files.search("tests/test_api.py")
    # the same tools as CI (.ci/run)
    ci = (ROOT / ".ci" / "run").read_text()
    assert ".venv/bin/ruff check ." in ci and ".venv/bin/mypy -p emsctl" in ci


def test_pytest_turns_warnings_into_errors() -> None:
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert options["filterwarnings"][0] == "error"
    with pytest.raises(UserWarning):  # and it is in force in this very run
        warnings.warn("a warning", UserWarning, stacklevel=1)


def test_contributing_covers_the_set_up_tests_and_each_kind_of_addition() -> None:
    text = (ROOT / "CONTRIBUTING.md").read_text()
    for needed in ("editable_mode=strict", "python -m pytest", "ruff check", "mypy -p emsctl",
                   "pre-commit install", "## Adding a program",
                   "## Adding a driver", "## Adding a benchmark"):
        assert needed in text, needed


def test_the_changelog_has_an_entry_for_the_current_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["dynamic"] == ["version"]  # one place: emsctl.__version__
    version = emsctl.__version__
    text = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## \[?{re.escape(version)}\]?", text, re.M), version
