"""emsctl's bleak link through bleak's real front end and a real BLE host stack (bumble).

Every call here goes BleakGattLink → bleak.BleakClient/BleakScanner → the bumble backend →
HCI → bumble's virtual controllers and link → the peripheral's ATT/GATT server → the emulated
device. Time is virtual (VirtualClock) unless a test says otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from bleak import BleakClient, BleakScanner
from support.ble_stack import (
    BleStack,
    BridgedPeripheral,
    GattBreak,
    coyote_peripheral,
    rn4020_peripheral,
)

from emsctl.clock import VirtualClock
from emsctl.drivers.coyote3 import frames as coyote
from emsctl.drivers.links.ble import BleakGattLink, scan
from emsctl.drivers.openems import protocol as openems
from emsctl.errors import DeviceError, InputError, LinkLostError
from emsctl.simulator.devices.coyote3 import EmulatedCoyote
from emsctl.simulator.devices.openems import ExternalStimulator, OpenEmsBoard, OpenEmsConfig
from emsctl.simulator.devices.openems_front import Rn4020Front
from emsctl.simulator.faults import Fault

WRITE = coyote.WRITE_CHARACTERISTIC_UUID
NOTIFY = coyote.NOTIFY_CHARACTERISTIC_UUID
BATTERY = coyote.BATTERY_CHARACTERISTIC_UUID
#: The drivers' default connect timeout; a connect by name scans for 5 s of it first.
CONNECT_S = 10.0


def b0_set(sequence: int, a: int, b: int) -> bytes:
    """B0: set both strengths absolutely, 100 Hz (period 10 ms), intensity 50 on both."""
    wave = bytes([10] * 4 + [50] * 4)
    return bytes([coyote.HEAD_B0, sequence << 4 | 0b1111, a, b]) + wave + wave


def bf(limit_a: int, limit_b: int) -> bytes:
    return bytes([coyote.HEAD_BF, limit_a, limit_b, 0, 0, 0, 0])


def coyote_world(**emulator_args: Any) -> tuple[EmulatedCoyote, BridgedPeripheral, BleStack]:
    emulator = EmulatedCoyote(ma_per_step=0.2, **emulator_args)
    peripheral = coyote_peripheral(emulator)
    return emulator, peripheral, BleStack(peripheral)


def openems_world() -> tuple[OpenEmsBoard, Rn4020Front, BridgedPeripheral]:
    board = OpenEmsBoard(OpenEmsConfig(ExternalStimulator(80.0, 180.0, 40.0)))
    front = Rn4020Front(board)
    return board, front, rn4020_peripheral(front)


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    VirtualClock().run(main())


def test_scan_hears_both_devices_by_name_and_recognises_the_coyote() -> None:
    async def main() -> None:
        _, _, peripheral = openems_world()
        _, coyote_side, _ = coyote_world()
        stack = BleStack(coyote_side, peripheral)
        found = await scan(1.0, backend=stack.backend)
        assert [(r.name, r.address, r.protocol) for r in found] == [
            ("47L121000", "C0:FF:EE:00:00:03", "coyote3"),
            ("openEMSstim01", "00:1E:C0:00:00:01", None)]
        assert all(r.rssi_dbm is not None for r in found)
        # bleak's own scanner API on the same backend
        device = await BleakScanner.find_device_by_name("openEMSstim01", timeout=2.0,
                                                        backend=stack.backend.scanner)
        assert device is not None and device.address == "00:1E:C0:00:00:01"
    run(main)


def test_connect_by_name_then_by_address_and_nothing_else_is_connected() -> None:
    async def main() -> None:
        emulator, peripheral, stack = coyote_world()
        link = stack.link(name="47L121000")
        await link.connect(CONNECT_S)
        await asyncio.sleep(0.01)  # the emulator takes the connection one interval later
        assert link.is_connected and peripheral.is_connected and emulator.server.connected
        await link.disconnect()
        await asyncio.sleep(0.05)
        assert not peripheral.is_connected and not emulator.server.connected
        link = stack.link(address="c0:ff:ee:00:00:03")  # any letter case
        await link.connect(CONNECT_S)
        assert peripheral.connections == 2
        await link.disconnect()
        with pytest.raises(DeviceError, match="no device named '47L999'"):
            await stack.link(name="47L999").connect(CONNECT_S)
    run(main)


def test_service_discovery_shows_the_coyote_gatt_table_through_bleak() -> None:
    async def main() -> None:
        _, _, stack = coyote_world()
        device = await BleakScanner.find_device_by_address("C0:FF:EE:00:00:03", timeout=2.0,
                                                           backend=stack.backend.scanner)
        assert device is not None
        async with BleakClient(device, backend=stack.backend.client) as client:
            services = client.services
            assert services.get_service(coyote.SERVICE_UUID) is not None
            assert services.get_service(coyote.BATTERY_SERVICE_UUID) is not None
            write = services.get_characteristic(WRITE)
            notify = services.get_characteristic(NOTIFY)
            battery = services.get_characteristic(BATTERY)
            assert write is not None and notify is not None and battery is not None
            assert write.service_uuid == coyote.SERVICE_UUID
            assert sorted(write.properties) == ["write", "write-without-response"]
            assert notify.properties == ["notify"]
            assert notify.get_descriptor("00002902-0000-1000-8000-00805f9b34fb") is not None
            assert battery.service_uuid == coyote.BATTERY_SERVICE_UUID
            assert sorted(battery.properties) == ["notify", "read"]
            assert write.max_write_without_response_size == 20  # default MTU 23 carries a B0
            # 0x180A here is the vendor's battery service, not Device Information
            assert [c.uuid for c in services.get_service(coyote.BATTERY_SERVICE_UUID)
                    .characteristics] == [BATTERY]
    run(main)


def test_service_discovery_shows_the_rn4020_ems_characteristic_through_bleak() -> None:
    async def main() -> None:
        _, _, peripheral = openems_world()
        stack = BleStack(peripheral)
        device = await BleakScanner.find_device_by_name("openEMSstim01", timeout=2.0,
                                                        backend=stack.backend.scanner)
        assert device is not None
        async with BleakClient(device, backend=stack.backend.client) as client:
            service = client.services.get_service(openems.BLE_SERVICE_UUID)
            assert service is not None
            [characteristic] = service.characteristics
            assert characteristic.uuid == openems.BLE_CHARACTERISTIC_UUID
            assert sorted(characteristic.properties) == ["notify", "write"]  # 0x18
    run(main)


def test_notifications_reach_the_handler_once_subscribed() -> None:
    async def main() -> None:
        emulator, peripheral, stack = coyote_world()
        link = stack.link(name="47L121000")
        await link.connect(CONNECT_S)
        heard: list[tuple[str, bytes]] = []
        emulator.wheel(1)  # before the subscription: not notified (the CCCD is off)
        await asyncio.sleep(0.05)
        await link.subscribe(NOTIFY.upper(), lambda uuid, value: heard.append((uuid, value)))
        await link.subscribe(BATTERY, lambda uuid, value: heard.append((uuid, value)))
        emulator.wheel(2)
        emulator.set_battery(55)
        await link.write(WRITE, b0_set(3, 7, 9), response=False)
        await asyncio.sleep(0.05)
        assert heard == [(NOTIFY, bytes([coyote.HEAD_B1, 0, 1, 1])),  # wheel: seq 0
                         (BATTERY, bytes([55])),
                         (NOTIFY, bytes([coyote.HEAD_B1, 3, 7, 9]))]  # the B0's sequence
        assert peripheral.notified == heard
        assert await link.read(BATTERY) == bytes([55])
        await link.disconnect()
    run(main)


def test_write_without_response_travels_as_an_att_write_command() -> None:
    async def main() -> None:
        emulator, peripheral, stack = coyote_world()
        link = stack.link(name="47L121000")
        await link.connect(CONNECT_S)
        await link.write(WRITE, b0_set(1, 12, 0), response=False)
        assert emulator.frames_received == 0  # no response: the call returned before delivery
        await asyncio.sleep(0.05)
        assert [(w.kind, w.uuid, w.value) for w in peripheral.writes] == [
            ("command", WRITE, b0_set(1, 12, 0))]
        assert emulator.frames_received == 1 and emulator.strengths_steps == [12, 0]
        await link.disconnect()
    run(main)


def test_write_with_response_travels_as_an_att_write_request_and_waits_for_it() -> None:
    async def main() -> None:
        emulator, peripheral, stack = coyote_world()
        link = stack.link(name="47L121000")
        await link.connect(CONNECT_S)
        await link.write(WRITE, bf(30, 40), response=True)
        # the ATT Write Response came back only after the device had the value
        assert emulator.limits_steps == [30, 40]
        assert [(w.kind, w.value) for w in peripheral.writes] == [("request", bf(30, 40))]
        await link.disconnect()
    run(main)


def test_the_rn4020_takes_write_requests_and_refuses_what_its_characteristic_cannot() -> None:
    async def main() -> None:
        board, _, peripheral = openems_world()
        stack = BleStack(peripheral)
        link = stack.link(name="openEMSstim01")
        await link.connect(CONNECT_S)
        await link.write(openems.BLE_CHARACTERISTIC_UUID, b"C0I100T1000G", response=True)
        await asyncio.sleep(0.3)  # the board reads its BLE serial line every 100 ms
        assert board.active(0) and board.wiper_steps(0) == 42
        # no Write Without Response on this characteristic: a write command is dropped
        await link.write(openems.BLE_CHARACTERISTIC_UUID, b"C1I100T1000G", response=False)
        await asyncio.sleep(0.3)
        assert not board.active(1)
        # values longer than 32 bytes are refused by the ATT server
        with pytest.raises(DeviceError, match=r"(?i)length"):
            await link.write(openems.BLE_CHARACTERISTIC_UUID, b"C0I1T1000G" * 4, response=True)
        assert [w.kind for w in peripheral.writes] == ["request", "command", "request"]
        await link.disconnect()
        await asyncio.sleep(0.3)
        assert not board.active(0)  # "Connection End" shut everything down
    run(main)


def test_a_drop_from_the_device_side_is_reported_once_and_a_reconnect_starts_afresh() -> None:
    async def main() -> None:
        emulator, peripheral, stack = coyote_world()
        link = stack.link(name="47L121000")
        lost: list[str] = []
        link.on_lost(lost.append)
        await link.connect(CONNECT_S)
        await link.subscribe(NOTIFY, lambda uuid, value: None)
        await asyncio.sleep(0.01)
        emulator.faults.fault_started(Fault("disconnect", 0.0))  # out of range
        await asyncio.sleep(0.05)
        assert len(lost) == 1 and "dropped" in lost[0]
        assert not link.is_connected and not peripheral.is_connected
        with pytest.raises(LinkLostError):
            await link.write(WRITE, b0_set(1, 5, 5), response=False)
        with pytest.raises(LinkLostError):
            await link.read(BATTERY)
        # a reconnect is explicit and starts with no subscription
        await link.connect(CONNECT_S)
        assert peripheral.connections == 2
        emulator.wheel(1)
        await asyncio.sleep(0.05)
        assert peripheral.notified == []
        await link.disconnect()
        await asyncio.sleep(0.05)
        assert len(lost) == 1  # asking to disconnect is not a loss
    run(main)


def test_a_backend_and_injected_fakes_do_not_mix() -> None:
    _, _, stack = coyote_world()
    with pytest.raises(InputError, match="not both"):
        BleakGattLink(name="47L121000", backend=stack.backend,
                      client_factory=lambda device, callback: None)  # type: ignore[arg-type,return-value]


def test_the_stack_also_runs_in_real_time() -> None:
    """Not only under the virtual clock: connect by address (no fixed scan), write, notify."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        _, _, stack = coyote_world()
        link = stack.link(address="C0:FF:EE:00:00:03")
        await link.connect(CONNECT_S)
        heard: list[bytes] = []
        await link.subscribe(NOTIFY, lambda uuid, value: heard.append(value))
        await link.write(WRITE, b0_set(2, 4, 6), response=True)
        await asyncio.sleep(0.05)
        assert heard == [bytes([coyote.HEAD_B1, 2, 4, 6])]
        await link.disconnect()
        assert loop.time() - started < 2.0
    asyncio.run(main())


@pytest.mark.parametrize("timeout_s", [5.0, 2.0])
def test_a_connect_by_name_within_5_s_succeeds(timeout_s: float) -> None:
    """The scan for the name takes half of the timeout, the connection the rest (only the real
    scanner shows it; fakes answer at once)."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        _, _, stack = coyote_world()
        link = stack.link(name="47L121000")
        started = loop.time()
        await link.connect(timeout_s)
        assert link.is_connected
        assert loop.time() - started < timeout_s
        await link.disconnect()
    run(main)


def test_a_write_the_device_refuses_is_one_clear_sentence() -> None:
    async def main() -> None:
        _, front, _ = openems_world()
        stack = BleStack(rn4020_peripheral(front, breakage=GattBreak.NO_WRITE))
        link = stack.link(name="openEMSstim01")
        await link.connect(CONNECT_S)
        with pytest.raises(DeviceError) as caught:
            await link.write(openems.BLE_CHARACTERISTIC_UUID, b"C9G", response=True)
        assert str(caught.value).endswith(": GATT Protocol Error: Write Not Permitted")
    run(main)
