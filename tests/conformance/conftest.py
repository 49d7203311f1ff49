"""The conformance suite runs on every family's emulations, and on ``--hw-device URL``."""

from __future__ import annotations

import pytest
from conformance_cases import Target, targets


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target" not in metafunc.fixturenames:
        return
    hw_device = metafunc.config.getoption("--hw-device")
    params = []
    for target in targets(hw_device):
        if target.load == "open" and "open_load" not in metafunc.fixturenames:
            continue
        if target.load != "open" and "open_load" in metafunc.fixturenames:
            continue
        marks = []
        if target.url is None:
            marks.append(pytest.mark.skip(
                reason=f"no real {target.family} device: pass --hw-device URL (a test load, "
                       "no person; see docs/hardware-check.md)"))
        params.append(pytest.param(target, id=target.id, marks=marks))
    metafunc.parametrize("target", params)


@pytest.fixture
def open_load() -> bool:
    """Marks a test that runs on the open-load emulations (electrodes on nothing)."""
    return True


__all__ = ["Target"]
