"""BLE connects only to the named device (HZ-11), with two fake units in range.

The bleak adapter (:class:`~emsctl.drivers.links.ble.BleakGattLink`) is given a fake scanner that
hears two Coyotes, and a client factory that records which device a client was made for: a name
must match exactly one advertised name (not a prefix), and an address must be the address of
the device connected to, even if the scanning backend hands back another one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from emsctl.clock import VirtualClock
from emsctl.drivers.links.ble import BleakGattLink
from emsctl.errors import DeviceError

MINE = "C0:FF:EE:00:00:03"
NEIGHBOUR = "C0:FF:EE:00:00:99"


@dataclass
class Device:
    address: str
    name: str | None


@dataclass
class Advertisement:
    local_name: str | None
    rssi: int = -60


class Client:
    def __init__(self, device: Any, _callback: Callable[[Any], None]) -> None:
        self.device = device
        self.is_connected = False

    async def connect(self, **_kwargs: Any) -> None:
        self.is_connected = True

    async def disconnect(self) -> None:
        self.is_connected = False


class Scanner:
    """Hears ``devices``; ``by_address`` overrides what an address lookup returns."""

    def __init__(self, devices: list[Device], by_address: Device | None = None) -> None:
        self.devices = devices
        self.by_address = by_address

    async def find_device_by_address(self, device_identifier: str, timeout: float = 10.0
                                     ) -> Device | None:
        if self.by_address is not None:
            return self.by_address
        # bleak compares addresses without regard to case
        return next((d for d in self.devices
                     if d.address.lower() == device_identifier.lower()), None)

    async def discover(self, timeout: float = 5.0, *, return_adv: bool = False
                       ) -> dict[str, tuple[Device, Advertisement]]:
        return {d.address: (d, Advertisement(d.name)) for d in self.devices}


def connect(scanner: Scanner, clients: list[Client] | None = None, **target: str
            ) -> list[Client]:
    clients = [] if clients is None else clients

    def factory(device: Any, callback: Callable[[Any], None]) -> Client:
        clients.append(Client(device, callback))
        return clients[-1]

    async def main() -> None:
        link = BleakGattLink(client_factory=factory, scanner=scanner, **target)  # type: ignore[arg-type]
        await link.connect(5.0)

    VirtualClock().run(main())
    return clients


TWO_UNITS = [Device(NEIGHBOUR, "47L121099"), Device(MINE, "47L121003")]


def test_by_name_only_the_unit_with_exactly_that_name_is_connected() -> None:
    clients = connect(Scanner(TWO_UNITS), name="47L121003")
    assert [c.device.address for c in clients] == [MINE]


def test_a_name_that_is_only_a_prefix_of_a_unit_in_range_matches_nothing() -> None:
    with pytest.raises(DeviceError, match="no device named '47L12100' is advertising"):
        connect(Scanner(TWO_UNITS), name="47L12100")


def test_two_units_with_the_named_name_are_refused_and_neither_is_connected() -> None:
    twins = [Device(NEIGHBOUR, "47L121003"), Device(MINE, "47L121003")]
    made: list[Client] = []
    with pytest.raises(DeviceError, match=r"2 devices named '47L121003'.*connect by address"):
        connect(Scanner(twins), made, name="47L121003")
    assert made == []


def test_by_address_the_unit_with_that_address_is_connected_whatever_its_name() -> None:
    clients = connect(Scanner(TWO_UNITS), address=MINE.lower())
    assert [c.device.address for c in clients] == [MINE]


def test_a_backend_that_returns_another_unit_for_an_address_is_refused() -> None:
    scanner = Scanner(TWO_UNITS, by_address=TWO_UNITS[0])
    made: list[Client] = []
    with pytest.raises(DeviceError, match=f"asked for {MINE} but the scan returned {NEIGHBOUR}"):
        connect(scanner, made, address=MINE)
    assert made == []
