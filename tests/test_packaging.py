"""The wheel ships every package and program file; the layout rules of docs/architecture.md hold."""

from __future__ import annotations

import ast
import os
import subprocess
import sysconfig
import tomllib
import venv
import zipfile
from pathlib import Path

import emsctl

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = {"emsctl": "src/emsctl", "emsctl.drivers": "drivers",
                "emsctl.simulator": "simulator", "emsctl.programs": "programs"}


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _packages_on_disk() -> set[str]:
    found = set()
    for package, folder in PACKAGE_DIRS.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            found.add(".".join([package, *rel.parts]) if rel.parts else package)
    return found


def test_every_package_folder_is_listed_in_pyproject() -> None:
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])  # type: ignore[index]
    assert _packages_on_disk() == listed


def test_no_module_imports_the_mapped_folders_by_their_bare_names() -> None:
    offenders = []
    for folder in PACKAGE_DIRS.values():
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                offenders += [f"{path}: {n}" for n in names
                              if n.split(".")[0] in {"drivers", "simulator", "programs"}]
    assert offenders == []


def test_public_api_all_names_exist() -> None:
    # the order is ruff's (RUF022: constants, classes, then the rest); each name once
    assert len(emsctl.__all__) == len(set(emsctl.__all__))
    for name in emsctl.__all__:
        assert hasattr(emsctl, name), name


def test_wheel_contains_every_module_and_program_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for package, folder in PACKAGE_DIRS.items():
        base = ROOT / folder
        prefix = package.replace(".", "/")
        for path in base.rglob("*"):
            shipped = path.suffix in {".py", ".toml"} or path.name == "py.typed"
            if shipped and "__pycache__" not in path.parts:
                expected.add(f"{prefix}/{path.relative_to(base).as_posix()}")
    assert expected - names == set()


def test_installed_wheel_imports_every_package_and_loads_every_program(
    wheel: Path, tmp_path: Path
) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True, timeout=300)
    packages = sorted(_packages_on_disk())
    script = (
        "import importlib, emsctl\n"
        "assert 'site-packages' in emsctl.__file__, emsctl.__file__\n"
        f"for name in {packages!r}: importlib.import_module(name)\n"
        "from emsctl.loader import builtin_names, load_program\n"
        "names = builtin_names()\n"
        "for n in names: load_program(n)\n"
        "print(len(names))\n"
    )
    # dependencies come from the test environment; emsctl itself only from the wheel
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    result = subprocess.run([str(python), "-c", script], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) == len(list((ROOT / "programs").glob("*.toml")))
