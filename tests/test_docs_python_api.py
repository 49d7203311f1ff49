"""docs/python-api.md: every ``python`` example runs as written, and the API is all documented.

The blocks run in order, in one namespace (later examples use earlier names), from the
repository root (they name ``programs/tens.toml``). Each block's own asserts check what the text
around it says.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "python-api.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, code) of every fenced ``python`` block of a Markdown text."""
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in _BLOCK.finditer(text)]


def test_the_extractor_finds_only_python_blocks() -> None:
    text = "# t\n\n```python\nx = 1\n```\n\n```\nnot run\n```\n\n```python\ny = x\n```\n"
    assert python_blocks(text) == [(4, "x = 1\n"), (12, "y = x\n")]


def test_every_python_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 7
    namespace: dict[str, object] = {"__name__": "python_api_doc"}
    out = io.StringIO()
    for line, code in blocks:
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"{DOC.name}:{line}", "exec"), namespace)
    printed = out.getvalue()
    assert printed.startswith("completed 1200.0 [")  # §1, as the text says
    assert "runs simulated devices only" in printed  # §2's refusal of a real device
    assert "80 Hz is outside what Hasomed RehaStim2 can do" in printed  # §2's ValidationFailed
    assert "L16/L17" in printed  # §6: the jump is refused by the rise limit
    # nothing went into the (test's private) journal folder: §4 used a folder of its own
    assert not (Path(os.environ["EMSCTL_STATE_DIR"]) / "journals").exists()


@pytest.mark.parametrize("module_name", ["emsctl.api", "emsctl.results"])
def test_every_public_name_of_the_api_is_documented(module_name: str) -> None:
    text = DOC.read_text(encoding="utf-8")
    module = importlib.import_module(module_name)
    missing = [name for name in module.__all__ if name not in text]
    assert missing == []
