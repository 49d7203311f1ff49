"""Electrode–skin load: compliance limiting (L5) and the no-load flag (L12)."""

from __future__ import annotations

import asyncio

import pytest

from emsctl.clock import VirtualClock
from emsctl.contract import ChannelSetpoint
from emsctl.errors import InputError
from emsctl.simulator.body import BodyModel, ElectrodeLoad
from emsctl.simulator.model import DeviceEvent, DeviceSpec, SimulatedStimulator


def test_delivered_current_is_limited_by_compliance_over_impedance() -> None:
    load = ElectrodeLoad(impedance_ohm=2000.0, baseline_ohm=2000.0)
    assert load.delivered_ma(80.0, compliance_v=100.0) == pytest.approx(50.0)  # 100 V / 2 kΩ
    assert load.delivered_ma(30.0, compliance_v=100.0) == 30.0


def test_open_circuit_delivers_nothing() -> None:
    load = ElectrodeLoad(1000.0, 1000.0, attached=False)
    assert load.delivered_ma(20.0, compliance_v=100.0) == 0.0
    assert load.no_load


@pytest.mark.parametrize(("baseline_ohm", "impedance_ohm", "flagged"), [
    (1000.0, 1000.0, False),
    (1000.0, 1500.0, False),    # exactly +50 %: not yet
    (1000.0, 1501.0, True),     # L12: a rise over 50 %
    (4000.0, 5001.0, True),     # L12: over 5 kΩ although the rise is only 25 %
    (4000.0, 5000.0, False),
])
def test_no_load_flag_follows_l12(baseline_ohm: float, impedance_ohm: float,
                                  flagged: bool) -> None:
    assert ElectrodeLoad(impedance_ohm, baseline_ohm).no_load is flagged


def test_reattached_pad_takes_a_new_baseline() -> None:
    body = BodyModel(2)
    body.set_impedance(1, 1800.0)
    assert body.load(1).no_load
    body.detach(1)
    body.attach(1)
    assert not body.load(1).no_load
    with pytest.raises(InputError):
        body.set_impedance(3, 1000.0)
    with pytest.raises(InputError):
        body.set_impedance(1, 0.0)


def test_compliance_limits_what_the_device_delivers() -> None:
    async def main() -> None:
        device = SimulatedStimulator(DeviceSpec(compliance_v=100.0), BodyModel(4, 2000.0))
        device.set_outputs([ChannelSetpoint(80.0, 50.0, 250.0)] * 4, lease_s=1.0)
        out = device.output_now()[0]
        assert out.amplitude_ma == 80.0
        assert out.delivered_ma == pytest.approx(50.0)

    VirtualClock().run(main())


def test_electrode_off_delivers_zero_and_flags_no_load_then_ok_when_back() -> None:
    async def main() -> None:
        device = SimulatedStimulator()
        seen: list[DeviceEvent] = []
        device.add_listener(seen.append)
        device.set_outputs([ChannelSetpoint(20.0, 50.0, 250.0)] * 4, lease_s=1.0)
        await asyncio.sleep(0.2)
        device.electrode_off(2)
        out = device.output_now()
        assert out[1].delivered_ma == 0.0 and out[1].amplitude_ma == 20.0
        assert out[0].delivered_ma == 20.0
        await asyncio.sleep(0.2)
        device.electrode_on(2)
        assert device.output_now()[1].delivered_ma == 20.0
        assert [(e.kind, e.channel) for e in seen] == [("electrode_off", 2), ("electrode_ok", 2)]
        delivered = device.intervals(2)["delivered_ma"].tolist()
        assert delivered[:3] == [20.0, 0.0, 20.0]

    VirtualClock().run(main())


def test_lifting_pad_raises_impedance_and_trips_the_flag() -> None:
    async def main() -> None:
        device = SimulatedStimulator()
        seen: list[DeviceEvent] = []
        device.add_listener(seen.append)
        device.set_outputs([ChannelSetpoint(80.0, 50.0, 250.0)] * 4, lease_s=1.0)
        device.set_impedance(6000.0, channel=1)
        assert device.output_now()[0].delivered_ma == pytest.approx(100.0 / 6000.0 * 1000.0)
        assert [(e.kind, e.channel, e.value) for e in seen] == [("electrode_off", 1, 6000.0)]

    VirtualClock().run(main())
