"""Suite-wide pytest hooks.

Every test gets its own emsctl state and data folders (``EMSCTL_STATE_DIR``,
``EMSCTL_DATA_DIR``, inherited by the subprocesses it starts): a test never reads or writes the
user's profile, journals or dose ledger, and real-device sessions run by one test never count
toward another's dose. Tests that want particular folders set the variables themselves.

``--hw-device URL`` adds a real device to the conformance suite (``tests/conformance``); without
it those tests are skipped.

``slow`` tests (long fuzz runs, soaks) are opt-in: a plain ``pytest`` skips them, with the
reason shown by ``-ra``. They run with ``--run-slow``, or when the marker expression names
``slow`` (``pytest -m slow``, ``-m "slow or realtime"``); ``-m "not slow"`` still excludes them.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import emsctl

#: Folders that pyproject.toml maps into the package (package-dir) from the top of the tree.
_MAPPED_FOLDERS = ("drivers", "simulator", "programs")


class _MappedFolderFinder(importlib.abc.MetaPathFinder):
    """Finds ``emsctl.drivers``, ``emsctl.simulator`` and ``emsctl.programs`` in ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.partition(".")
        if package != "emsctl" or name not in _MAPPED_FOLDERS:
            return None  # submodules (emsctl.drivers.links) follow the package's __path__
        folder = self.root / name
        return importlib.util.spec_from_file_location(
            fullname, folder / "__init__.py", submodule_search_locations=[str(folder)])


def _map_folders_into_a_bare_copy() -> None:
    """Make the mapped folders importable when emsctl is imported from a bare copy of src/.

    mutmut (docs/mutation.md) imports the package from its copy ``mutants/src/emsctl``, which
    has only what ``src/emsctl`` has; the mapped folders are copied beside ``tests/`` (its
    ``also_copy``). An installed package (editable or not) has them inside: nothing changes.
    """
    package = Path(emsctl.__file__).parent
    root = Path(__file__).resolve().parent.parent
    if all((package / name).is_dir() for name in _MAPPED_FOLDERS):
        return
    if not all((root / name / "__init__.py").is_file() for name in _MAPPED_FOLDERS):
        return
    sys.meta_path.insert(0, _MappedFolderFinder(root))


_map_folders_into_a_bare_copy()

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _private_emsctl_folders(tmp_path_factory: pytest.TempPathFactory,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("emsctl-home")
    monkeypatch.setenv("EMSCTL_STATE_DIR", str(Path(home, "state")))
    monkeypatch.setenv("EMSCTL_DATA_DIR", str(Path(home, "data")))


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """emsctl built as a wheel from this checkout, once per test run."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    wheels = list(out.glob("emsctl-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="also run tests marked slow (long fuzz and soak runs)",
    )
    parser.addoption(
        "--hw-device",
        action="store",
        default=None,
        metavar="URL",
        help="also run the conformance suite (tests/conformance) on this real device, e.g. "
        "sciencemode2:///dev/ttyUSB0: a test load across the outputs and NO person connected "
        "(docs/hardware-check.md); never given in CI",
    )


def _slow_requested(config: pytest.Config) -> bool:
    if config.getoption("--run-slow"):
        return True
    expression = str(config.getoption("markexpr", "") or "")
    # "-m slow" or "-m 'slow and …'" asks for them; "-m 'not slow'" does not.
    words = expression.replace("(", " ").replace(")", " ").split()
    return any(
        word == "slow" and (index == 0 or words[index - 1] != "not")
        for index, word in enumerate(words)
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _slow_requested(config):
        return
    skip = pytest.mark.skip(reason="slow: opt in with --run-slow or -m slow")
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip)
