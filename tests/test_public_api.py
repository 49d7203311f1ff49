"""``emsctl``'s public names: complete, importable, and typed for user code under mypy --strict.

``__all__`` must name every public class and function of the API modules, every name in it must
import, and the names mypy sees (the imports under ``TYPE_CHECKING``) must be the names the lazy
table serves at run time. The quick-start script of the README and docs/python-api.md must run
as written and pass ``mypy --strict`` against a normal (non-editable) install of the wheel.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import io
import os
import subprocess
import sys
import sysconfig
import typing
import venv
from pathlib import Path

import pytest

import emsctl

ROOT = Path(__file__).resolve().parents[1]
#: The modules of the Python API: everything public in them is exported from ``emsctl``.
API_MODULES = ("emsctl.api", "emsctl.results")

#: The quick start, exactly as README.md and docs/python-api.md show it.
QUICK_START = '''\
import emsctl
r = emsctl.run("circulation")                 # simulator, virtual time, no journal
print(r.end_reason, r.stimulation_s, [c.peak_ma for c in r.channels])
'''

#: Driver-level use as a user writes it: ``async with``, apply, and the recorder.
DRIVER_SCRIPT = '''\
import emsctl


async def main() -> float:
    async with emsctl.open_device("sim+sciencemode2") as dev:
        off = emsctl.ChannelSetpoint(0.0, 0.0, 0.0)
        await dev.apply([off] * dev.capabilities.channels, 0.5)
        return dev.recorder.delivered_now_ma(1) + dev.recorder.summary()[1]["peak_ma"]


print(emsctl.VirtualClock().run(main()))
'''


def _init_tree() -> ast.Module:
    return ast.parse(Path(emsctl.__file__).read_text())


def _typing_imports() -> dict[str, str]:
    """Name → module (relative, without the dot) of every import under ``TYPE_CHECKING``."""
    found: dict[str, str] = {}
    for node in _init_tree().body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.level == 1 and stmt.module
                for alias in stmt.names:
                    found[alias.asname or alias.name] = stmt.module
    return found


def _eager_imports() -> set[str]:
    names: set[str] = set()
    for node in _init_tree().body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names |= {alias.asname or alias.name for alias in node.names}
    return names


def test_all_has_each_name_once_and_every_name_imports() -> None:
    assert len(emsctl.__all__) == len(set(emsctl.__all__))
    for name in emsctl.__all__:
        namespace: dict[str, object] = {}
        exec(f"from emsctl import {name}", namespace)  # the form users write
        assert namespace[name] is getattr(emsctl, name)


def test_mypy_sees_exactly_the_names_served_at_run_time() -> None:
    lazy = emsctl._LAZY
    typing_names = _typing_imports()
    assert typing_names == lazy, "the TYPE_CHECKING imports and _LAZY must list the same names"
    assert set(emsctl.__all__) == set(typing_names) | _eager_imports() | {"__version__"}
    for name, module in lazy.items():
        assert getattr(emsctl, name) is getattr(importlib.import_module(f"emsctl.{module}"),
                                                name)


@pytest.mark.parametrize("module_name", API_MODULES)
def test_every_public_name_of_the_api_modules_is_exported(module_name: str) -> None:
    module = importlib.import_module(module_name)
    public = set(module.__all__) | {
        name for name, value in vars(module).items()
        if not name.startswith("_") and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == module_name
    }
    assert public, module_name
    missing = sorted(public - set(emsctl.__all__))
    assert missing == [], f"{module_name}: not in emsctl.__all__: {missing}"
    for name in public:
        assert getattr(emsctl, name) is getattr(module, name), name


def _emsctl_classes(hint: object) -> set[type]:
    """Every emsctl class named anywhere in a resolved type hint."""
    found: set[type] = set()
    if isinstance(hint, type) and hint.__module__.startswith("emsctl"):
        found.add(hint)
    for arg in typing.get_args(hint):
        found |= _emsctl_classes(arg)
    return found


def test_every_emsctl_type_in_the_api_signatures_is_exported() -> None:
    hints: list[object] = []
    for function in (emsctl.run, emsctl.open_device, emsctl.CommandRecord.setpoint,
                     emsctl.RunResult.channel):
        hints += typing.get_type_hints(function).values()
    for cls in (emsctl.RunResult, emsctl.ChannelResult, emsctl.CommandRecord):
        hints += typing.get_type_hints(cls).values()
    classes = set().union(*(_emsctl_classes(h) for h in hints))
    assert emsctl.ChannelSetpoint in classes  # the walk does reach nested types
    unexported = sorted(c.__qualname__ for c in classes
                        if getattr(emsctl, c.__name__, None) is not c)
    assert unexported == []


def test_quick_start_runs_in_process_as_written(tmp_path: Path) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(QUICK_START, "quick_start.py", "exec"), {"__name__": "__main__"})
    reason, stimulation, peaks = out.getvalue().strip().split(" ", 2)
    assert reason == "completed"
    assert float(stimulation) == pytest.approx(1200.0)  # circulation: 20 min of stimulation
    values = [float(v) for v in peaks.strip("[]").split(",")]
    assert len(values) == 2  # one per program channel
    assert all(0 < v <= emsctl.DEFAULTS.peak_ma for v in values)
    # no journal was written: the test's private state folder has none
    assert not (Path(os.environ["EMSCTL_STATE_DIR"]) / "journals").exists()


def test_the_documents_show_the_quick_start() -> None:
    for document in ("README.md", "docs/python-api.md"):
        assert QUICK_START in (ROOT / document).read_text(), document


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Python of a venv with only emsctl from ``wheel`` installed (dependencies: ours)."""
    where = tmp_path_factory.mktemp("wheel-venv")
    venv.create(where, with_pip=False)
    python = where / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    return python


def test_user_scripts_type_check_and_run_against_the_installed_wheel(
    installed: Path, tmp_path: Path
) -> None:
    python = installed
    scripts = tmp_path / "user"
    scripts.mkdir()
    (scripts / "quick_start.py").write_text(QUICK_START)
    (scripts / "driver_level.py").write_text(DRIVER_SCRIPT)
    # dependencies come from the test environment, emsctl itself only from the wheel
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--verbose", "--cache-dir", os.devnull,
         "--python-executable", str(python), "quick_start.py", "driver_level.py"],
        cwd=scripts, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr[-3000:]
    assert "Success: no issues found in 2 source files" in checked.stdout
    parsed = [line for line in checked.stderr.splitlines()
              if "Parsing" in line and "(emsctl)" in line]
    assert len(parsed) == 1 and str(python.parents[1]) in parsed[0], parsed  # the wheel's
    ran = subprocess.run([str(python), "quick_start.py"], cwd=scripts, env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("completed 1200.0 [")
    ran = subprocess.run([str(python), "driver_level.py"], cwd=scripts, env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert ran.returncode == 0, ran.stderr
    assert float(ran.stdout) == 0.0


def test_mypy_rejects_a_wrong_use_of_the_api(installed: Path, tmp_path: Path) -> None:
    """The type check above can fail: the API's types reach user code."""
    python = installed
    (tmp_path / "wrong.py").write_text(
        "import emsctl\n"
        "r: int = emsctl.run('tens')\n"
        "c: str = emsctl.run('tens').channels[0].peak_ma\n")
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", os.devnull,
         "--python-executable", str(python), "wrong.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert checked.returncode == 1
    assert "Found 2 errors" in checked.stdout, checked.stdout


def test_driver_typing_is_an_async_context_manager_of_itself() -> None:
    hints = typing.get_type_hints(emsctl.Driver.__aenter__)
    assert hints["return"] is typing.Self
    assert typing.get_type_hints(emsctl.open_device)["return"] is emsctl.Driver
    recorder = emsctl.Driver.__dict__["recorder"]
    assert isinstance(recorder, property)
    assert typing.get_type_hints(recorder.fget)["return"] is emsctl.OutputRecord
    assert issubclass(emsctl.NoRecorderError, AttributeError)
    assert issubclass(emsctl.NoRecorderError, emsctl.DeviceError)
