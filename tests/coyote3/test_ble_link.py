"""The bleak adapter against fake clients with bleak's method signatures (no radio here)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from bleak.exc import BleakDeviceNotFoundError, BleakError

from emsctl.clock import VirtualClock
from emsctl.drivers.links.ble import (
    BleakGattLink,
    BluetoothUnavailableError,
    recognise,
    scan,
    translate_ble_error,
)
from emsctl.errors import DeviceError, DeviceTimeoutError, InputError, LinkLostError

ADDRESS = "C0:FF:EE:00:00:03"
WRITE = "0000150a-0000-1000-8000-00805f9b34fb"
NOTIFY = "0000150b-0000-1000-8000-00805f9b34fb"


@dataclass
class FakeDevice:
    address: str
    name: str | None


@dataclass
class FakeAdvertisement:
    local_name: str | None
    rssi: int = -60
    service_uuids: list[str] = field(default_factory=list)


class FakeClient:
    """A BleakClient look-alike: same method names, arguments and callback shapes."""

    def __init__(self, device: Any, disconnected_callback: Callable[[Any], None]) -> None:
        self.device = device
        self.disconnected_callback = disconnected_callback
        self._connected = False
        self.writes: list[tuple[str, bytes, bool | None]] = []
        self.notify: dict[str, Callable[[Any, bytearray], None]] = {}
        self.connect_delay_s = 0.0
        self.fail_with: BaseException | None = None
        self.disconnects = 0

    @property
    def is_connected(self) -> bool:
        return self._connected

    async def connect(self, **kwargs: Any) -> None:
        await asyncio.sleep(self.connect_delay_s)
        if self.fail_with is not None:
            raise self.fail_with
        self._connected = True

    async def disconnect(self) -> None:
        self.disconnects += 1
        self._connected = False
        self.disconnected_callback(self)  # bleak calls it for requested disconnects too

    async def write_gatt_char(self, char_specifier: str, data: bytes,
                              response: bool | None = None) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.writes.append((char_specifier, bytes(data), response))

    async def read_gatt_char(self, char_specifier: str) -> bytearray:
        if self.fail_with is not None:
            raise self.fail_with
        return bytearray(b"\x5a")

    async def start_notify(self, char_specifier: str,
                           callback: Callable[[Any, bytearray], None]) -> None:
        self.notify[char_specifier] = callback

    def drop(self) -> None:
        """The peripheral goes out of range."""
        self._connected = False
        self.disconnected_callback(self)


class FakeScanner:
    def __init__(self, devices: list[tuple[FakeDevice, FakeAdvertisement]],
                 error: BaseException | None = None) -> None:
        self.devices = devices
        self.error = error

    async def find_device_by_address(self, device_identifier: str, timeout: float = 10.0
                                     ) -> FakeDevice | None:
        if self.error is not None:
            raise self.error
        return next((d for d, _ in self.devices if d.address == device_identifier), None)

    async def discover(self, timeout: float = 5.0, *, return_adv: bool = False
                       ) -> dict[str, tuple[FakeDevice, FakeAdvertisement]]:
        if self.error is not None:
            raise self.error
        assert return_adv
        return {d.address: (d, a) for d, a in self.devices}


COYOTE = (FakeDevice(ADDRESS, "47L121000"), FakeAdvertisement("47L121000"))


def make_link(*devices: tuple[FakeDevice, FakeAdvertisement], name: str | None = None,
              error: BaseException | None = None
              ) -> tuple[BleakGattLink, list[FakeClient]]:
    clients: list[FakeClient] = []

    def factory(device: Any, callback: Callable[[Any], None]) -> FakeClient:
        client = FakeClient(device, callback)
        if error is not None:
            client.fail_with = error
        clients.append(client)
        return client
    scanner = FakeScanner(list(devices) or [COYOTE])
    if name is not None:
        return BleakGattLink(name=name, client_factory=factory, scanner=scanner), clients
    return BleakGattLink(address=ADDRESS, client_factory=factory, scanner=scanner), clients


def run(coro: Any) -> Any:
    return VirtualClock().run(coro)


def test_exactly_one_of_address_and_name() -> None:
    with pytest.raises(InputError):
        BleakGattLink()
    with pytest.raises(InputError):
        BleakGattLink(address=ADDRESS, name="47L121000")


def test_writes_carry_uuid_and_response_flag_and_notifications_reach_the_handler() -> None:
    async def main() -> None:
        link, clients = make_link()
        await link.connect(5.0)
        client = clients[0]
        assert client.device.address == ADDRESS  # connected to the device object found
        heard: list[tuple[str, bytes]] = []
        await link.subscribe(NOTIFY.upper(), lambda uuid, value: heard.append((uuid, value)))
        await link.write(WRITE, b"\xb0" + bytes(19), response=False)
        await link.write(WRITE, b"\xbf" + bytes(6), response=True)
        assert client.writes == [(WRITE, b"\xb0" + bytes(19), False),
                                 (WRITE, b"\xbf" + bytes(6), True)]
        client.notify[NOTIFY.upper()]("sender", bytearray(b"\xb1\x01\x02\x03"))
        assert heard == [(NOTIFY, b"\xb1\x01\x02\x03")]  # bytes, lower-case UUID
        assert await link.read("00001500-0000-1000-8000-00805f9b34fb") == b"\x5a"
        await link.disconnect()
        await link.disconnect()  # idempotent
        assert client.disconnects == 1
    run(main())


def test_connect_by_name_refuses_two_devices_with_that_name() -> None:
    async def main() -> None:
        twin = (FakeDevice("C0:FF:EE:00:00:04", "47L121000"), FakeAdvertisement("47L121000"))
        link, _ = make_link(COYOTE, twin, name="47L121000")
        with pytest.raises(DeviceError, match=r"2 devices named '47L121000'.*HZ-11"):
            await link.connect(5.0)
        link, clients = make_link(COYOTE, name="47L121000")
        await link.connect(5.0)
        assert clients[0].device.address == ADDRESS
        link, _ = make_link(COYOTE, name="47L999")
        with pytest.raises(DeviceError, match="no device named '47L999'"):
            await link.connect(5.0)
    run(main())


def test_an_unknown_address_is_a_clear_error() -> None:
    async def main() -> None:
        link, _ = make_link((FakeDevice("AA:AA:AA:AA:AA:AA", None), FakeAdvertisement(None)))
        with pytest.raises(DeviceError, match="no device with address"):
            await link.connect(5.0)
    run(main())


def test_connect_gives_up_after_its_timeout() -> None:
    async def main() -> None:
        link, _clients = make_link()
        original = FakeClient.__init__

        def slow(self: FakeClient, *args: Any) -> None:
            original(self, *args)
            self.connect_delay_s = 30.0
        FakeClient.__init__ = slow  # type: ignore[method-assign]
        try:
            with pytest.raises(DeviceTimeoutError, match="within 2 s"):
                await link.connect(2.0)
        finally:
            FakeClient.__init__ = original  # type: ignore[method-assign]
        assert asyncio.get_running_loop().time() == pytest.approx(2.0)
    run(main())


@pytest.mark.parametrize(("error", "expected", "words"), [
    (FileNotFoundError(2, "No such file or directory"), BluetoothUnavailableError,
     "Bluetooth is not available"),
    (BleakError("No Bluetooth adapters found."), BluetoothUnavailableError,
     "Bluetooth is not available"),
    (BleakDeviceNotFoundError(ADDRESS, "Device not found"), DeviceError, "Device not found"),
    (BleakError("Connection refused by peer"), DeviceError, "refused"),
    (TimeoutError(), DeviceTimeoutError, "no connection within 5 s"),
    (ConnectionResetError("reset"), LinkLostError, "operating system reported"),
])
def test_bleak_and_os_errors_become_project_errors_with_one_sentence(
        error: BaseException, expected: type[DeviceError], words: str) -> None:
    async def main() -> None:
        link, _ = make_link(error=error)
        with pytest.raises(expected, match=words) as caught:
            await link.connect(5.0)
        assert caught.value.__cause__ is error
        assert "\n" not in str(caught.value)
    run(main())


class _TwoArgumentError(BleakError):
    """Shaped like bleak 3's BleakGATTProtocolError: (code, sentence)."""

    def __init__(self, code: int) -> None:
        super().__init__(code, "GATT Protocol Error: Write Not Permitted")


def test_an_error_made_of_several_arguments_is_its_sentence_not_a_tuple() -> None:
    error = translate_ble_error(_TwoArgumentError(3), "writing 150b")
    assert str(error) == "writing 150b: GATT Protocol Error: Write Not Permitted"


def test_a_connect_by_name_scans_half_of_its_timeout_at_most_5_s() -> None:
    async def main() -> None:
        link, _ = make_link(COYOTE, name="47L121000")
        scans: list[float] = []
        scanner = link._scanner
        assert scanner is not None
        discover = scanner.discover

        async def recording(timeout: float = 5.0, *, return_adv: bool = False) -> Any:
            scans.append(timeout)
            return await discover(timeout=timeout, return_adv=return_adv)

        scanner.discover = recording  # type: ignore[method-assign]
        for timeout_s in (2.0, 10.0, 30.0):
            await link.connect(timeout_s)
            await link.disconnect()
        assert scans == [1.0, 5.0, 5.0]
    run(main())


def test_an_unrequested_disconnect_is_reported_once_and_nothing_is_resumed() -> None:
    async def main() -> None:
        link, clients = make_link()
        lost: list[str] = []
        link.on_lost(lost.append)
        await link.connect(5.0)
        await link.subscribe(NOTIFY, lambda uuid, value: None)
        clients[0].drop()
        await asyncio.sleep(0)
        assert len(lost) == 1 and "dropped" in lost[0]
        with pytest.raises(LinkLostError):
            await link.write(WRITE, b"\xb0" + bytes(19), response=False)
        with pytest.raises(LinkLostError):
            await link.read(WRITE)
        # L14: a reconnect is explicit and starts from nothing: a new client, no subscriptions
        await link.connect(5.0)
        assert len(clients) == 2 and clients[1].notify == {} and clients[1].writes == []
        await link.disconnect()
        await asyncio.sleep(0)
        assert len(lost) == 1  # a requested disconnect is not a loss
    run(main())


def test_a_write_that_fails_because_the_link_dropped_is_a_lost_link() -> None:
    async def main() -> None:
        link, clients = make_link()
        await link.connect(5.0)
        clients[0]._connected = False
        clients[0].fail_with = BleakError("Not connected")
        with pytest.raises(LinkLostError):
            await link.write(WRITE, b"\x00", response=False)
    run(main())


def test_a_refused_write_on_a_live_link_is_a_device_error() -> None:
    async def main() -> None:
        link, clients = make_link()
        await link.connect(5.0)
        clients[0].fail_with = BleakError("Write not permitted")
        with pytest.raises(DeviceError, match="Write not permitted") as caught:
            await link.write(WRITE, b"\x00", response=False)
        assert not isinstance(caught.value, LinkLostError)
    run(main())


def test_scan_recognises_coyotes_by_name_or_service_and_lists_them_first() -> None:
    async def main() -> None:
        scanner = FakeScanner([
            (FakeDevice("11:11:11:11:11:11", "Phone"), FakeAdvertisement("Phone", rssi=-40)),
            COYOTE,
            (FakeDevice("22:22:22:22:22:22", None),
             FakeAdvertisement(None, rssi=-80,
                               service_uuids=["0000180C-0000-1000-8000-00805F9B34FB"])),
            (FakeDevice("33:33:33:33:33:33", "47L120100"), FakeAdvertisement("47L120100")),
        ])
        found = await scan(1.0, scanner=scanner)
        assert [(r.address, r.protocol) for r in found] == [
            (ADDRESS, "coyote3"), ("22:22:22:22:22:22", "coyote3"),
            ("11:11:11:11:11:11", None), ("33:33:33:33:33:33", None)]
        assert found[0].rssi_dbm == -60 and found[0].name == "47L121000"
    run(main())


def test_scan_without_bluetooth_is_one_clear_sentence() -> None:
    async def main() -> None:
        with pytest.raises(BluetoothUnavailableError, match="Bluetooth is not available"):
            await scan(1.0, scanner=FakeScanner([], FileNotFoundError(2, "No such file")))
    run(main())


def test_recognise_does_not_take_the_sensor_for_a_pulse_host() -> None:
    assert recognise("47L121000", []) == "coyote3"
    assert recognise("47L120100", []) is None
    assert recognise(None, []) is None
    assert isinstance(translate_ble_error(DeviceError("x"), "y"), DeviceError)


def test_this_machine_has_no_bluetooth_and_real_bleak_says_so_clearly() -> None:
    """No radio here: the real bleak scan must end in one sentence, not a traceback."""
    async def main() -> None:
        try:
            results = await asyncio.wait_for(scan(0.5), 10.0)
        except BluetoothUnavailableError as exc:
            assert "Bluetooth is not available" in str(exc)
        else:  # a machine with a radio: then the scan simply works
            assert isinstance(results, list)
    asyncio.run(main())
