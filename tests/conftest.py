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

import subprocess
import sys
from pathlib import Path

import pytest

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
