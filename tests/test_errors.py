"""The exception tree is drawn in one place: every error class of emsctl is in errors.py's
drawing, under its real parent."""

from __future__ import annotations

import importlib
import pkgutil
import re

import emsctl
from emsctl import errors


def _all_error_classes() -> set[type[BaseException]]:
    for info in pkgutil.walk_packages(emsctl.__path__, "emsctl."):
        if ".cli" in info.name or info.name.endswith("__main__"):
            continue  # the CLI defines no errors of its own; importing it is not needed
        importlib.import_module(info.name)
    found: set[type[BaseException]] = set()
    todo: list[type[BaseException]] = [errors.EmsError]
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo.extend(cls.__subclasses__())
    return found


def _drawing() -> dict[str, int]:
    """Class name → its depth in the drawing."""
    doc = errors.__doc__ or ""
    lines = doc[doc.rindex("\n", 0, doc.index("EmsError\n")) + 1:].splitlines()
    margin = len(lines[0]) - len(lines[0].lstrip())  # the drawing's own indentation
    depths = {"EmsError": 0}
    for line in lines[1:]:
        match = re.match(r"^([ │]*)[├└]── (\w+)", line[margin:])
        if match:
            depths[match[2]] = len(match[1]) // 4 + 1
    return depths


def test_every_error_class_is_in_the_drawing_under_its_parent() -> None:
    drawing = _drawing()
    classes = {c for c in _all_error_classes() if not c.__name__.startswith("_")}
    missing = sorted(c.__name__ for c in classes if c.__name__ not in drawing)
    assert missing == []
    for cls in classes:
        parents = [b for b in cls.__mro__[1:] if b in classes]
        if parents:  # its depth is one more than its nearest emsctl parent's
            assert drawing[cls.__name__] == drawing[parents[0].__name__] + 1, cls.__name__
