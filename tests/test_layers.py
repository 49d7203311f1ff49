"""Imports flow one way: core ← drivers ← simulator, with the CLI on top; no cycles at all.

Every import of every module counts: at the top, inside functions and under ``TYPE_CHECKING``.
The core (``src/emsctl`` outside ``cli``) owns the driver contract and reaches drivers only
through the device table (by module path, as data); real drivers never import the simulator.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"src/emsctl": "emsctl", "drivers": "emsctl.drivers", "simulator": "emsctl.simulator"}
RANK = {"core": 0, "drivers": 1, "simulator": 2, "cli": 3}


def _modules() -> Iterator[tuple[str, Path, bool]]:
    for folder, prefix in FOLDERS.items():
        base = ROOT / folder
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            package = parts[-1] == "__init__"
            if package:
                parts = parts[:-1]
            yield ".".join([prefix, *parts]), path, package


MODULES = {name: (path, package) for name, path, package in _modules()}


def layer(module: str) -> str:
    """The layer a module belongs to."""
    for prefix, name in (("emsctl.simulator", "simulator"), ("emsctl.drivers", "drivers"),
                         ("emsctl.cli", "cli")):
        if module == prefix or module.startswith(prefix + "."):
            return name
    return "core"


def imports(module: str) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import in ``module``, relative ones resolved."""
    path, package = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    here = module.split(".") if package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(here[:len(here) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:  # "from . import protocol" imports a module
                if f"{target}.{alias.name}" in MODULES:
                    yield node.lineno, f"{target}.{alias.name}"


def _known(target: str) -> str | None:
    while target:
        if target in MODULES:
            return target
        target = target.rpartition(".")[0]
    return None


def test_the_folders_hold_the_expected_layers() -> None:
    assert "emsctl.contract" in MODULES and layer("emsctl.contract") == "core"
    assert layer("emsctl.simulator.drivers.sim") == "simulator"
    assert len(MODULES) > 80


def test_imports_never_run_against_the_layers() -> None:
    wrong = [f"{MODULES[m][0].relative_to(ROOT)}:{line}: {layer(m)} imports {layer(t)} ({t})"
             for m in MODULES for line, target in imports(m)
             if (t := _known(target)) is not None and RANK[layer(t)] > RANK[layer(m)]]
    assert wrong == []


def test_there_is_no_import_cycle() -> None:
    # a package's __init__ importing its own submodules is how packages work, not a cycle
    graph = {m: {t for _, target in imports(m)
                 if (t := _known(target)) is not None and t != m and not t.startswith(m + ".")}
             for m in MODULES}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert cycles == []


@pytest.mark.parametrize("bad", [
    "import emsctl.simulator.model\n",
    "from ...simulator.model import SimulatedStimulator\n",
    "def f():\n    from ...simulator import faults\n",
    "if TYPE_CHECKING:\n    from ...simulator.recorder import R\n",
])
def test_the_checker_sees_every_form_of_import(bad: str, tmp_path: Path) -> None:
    # a driver module with one bad import, in every form: the walk must catch each
    module = "emsctl.drivers.coyote3.fake"
    path = tmp_path / "fake.py"
    path.write_text(bad)
    MODULES[module] = (path, False)
    try:
        found = [t for _, target in imports(module) if (t := _known(target))]
    finally:
        del MODULES[module]
    assert found and all(layer(t) == "simulator" for t in found)
