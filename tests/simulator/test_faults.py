"""The declarative fault plan: strict TOML loading and scheduling in loop (virtual) time."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from emsctl.clock import VirtualClock
from emsctl.errors import InputError
from emsctl.simulator.faults import Fault, FaultPlan, load_fault_plan

VALID = """
[[faults]]
kind = "electrode_off"
at_s = 30
channel = 1
duration_s = 5.0

[[faults]]
kind = "late_acks"
at_s = 10.0
value = 0.2
duration_s = 3

[[faults]]
kind = "disconnect"
at_s = 60.5
"""


def test_valid_plan_loads_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(VALID, encoding="utf-8")
    plan = load_fault_plan(path)
    assert plan == FaultPlan([
        Fault("electrode_off", 30.0, channel=1, duration_s=5.0),
        Fault("late_acks", 10.0, duration_s=3.0, value=0.2),
        Fault("disconnect", 60.5),
    ])
    assert plan.kinds == {"electrode_off", "late_acks", "disconnect"}


@pytest.mark.parametrize(("text", "match"), [
    ('[[faults]]\nkind = "disconect"\nat_s = 1', "unknown fault kind"),
    ('[[faults]]\nkind = "disconnect"\nat_s = 1\nat = 2', "unknown key"),
    ('mode = "x"\n[[faults]]\nkind = "disconnect"\nat_s = 1', "top-level"),
    ('[[faults]]\nkind = "disconnect"', "at_s"),
    ('[[faults]]\nkind = "impedance"\nat_s = 1', "needs a value"),
    ('[[faults]]\nkind = "disconnect"\nat_s = 1\nvalue = 3', "takes no value"),
    ('[[faults]]\nkind = "device_reset"\nat_s = 1\nduration_s = 3', "no duration_s"),
    ('[[faults]]\nkind = "battery_low"\nat_s = 1\nchannel = 1\nvalue = 5', "no channel"),
    ('[[faults]]\nkind = "battery_low"\nat_s = 1\nvalue = 150', "charge in %"),
    ('[[faults]]\nkind = "disconnect"\nat_s = -1', "at_s"),
    ('[[faults]]\nkind = "disconnect"\nat_s = "soon"', "number"),
    ('[[faults]]\nkind = "electrode_off"\nat_s = 1\nchannel = 1.5', "integer"),
    ("[[faults]\nkind = 1", "TOML"),
])
def test_invalid_plans_are_input_errors(text: str, match: str) -> None:
    with pytest.raises(InputError, match=match):
        FaultPlan.from_toml(text)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        load_fault_plan(tmp_path / "nope.toml")


class Target:
    supported_fault_kinds = frozenset({"electrode_off", "disconnect", "drop_acks"})
    fault_channels = 2

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float]] = []

    def fault_started(self, fault: Fault) -> None:
        self.calls.append(("start", fault.kind, asyncio.get_running_loop().time()))

    def fault_ended(self, fault: Fault) -> None:
        self.calls.append(("end", fault.kind, asyncio.get_running_loop().time()))


def test_schedule_calls_the_target_at_the_planned_times_in_order() -> None:
    plan = FaultPlan([
        Fault("electrode_off", 2.0, channel=1, duration_s=1.0),
        Fault("drop_acks", 3.0),
        Fault("disconnect", 3.0),
    ])

    async def main() -> list[tuple[str, str, float]]:
        await asyncio.sleep(10.0)
        target = Target()
        plan.schedule(asyncio.get_running_loop(), target)
        await asyncio.sleep(5.0)
        return target.calls

    assert VirtualClock().run(main()) == [
        ("start", "electrode_off", 12.0),
        ("end", "electrode_off", 13.0),   # an end at the same instant goes before a start
        ("start", "drop_acks", 13.0),
        ("start", "disconnect", 13.0),
    ]


def test_cancelled_plan_fires_nothing() -> None:
    async def main() -> list[tuple[str, str, float]]:
        target = Target()
        armed = FaultPlan([Fault("disconnect", 1.0)]).schedule(asyncio.get_running_loop(),
                                                               target)
        armed.cancel()
        await asyncio.sleep(2.0)
        return target.calls

    assert VirtualClock().run(main()) == []


def test_schedule_refuses_kinds_and_channels_the_target_lacks() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with pytest.raises(InputError, match="corrupt_bytes"):
            FaultPlan([Fault("corrupt_bytes", 1.0)]).schedule(loop, Target())
        with pytest.raises(InputError, match="channel 3"):
            FaultPlan([Fault("electrode_off", 1.0, channel=3)]).schedule(loop, Target())

    VirtualClock().run(main())
