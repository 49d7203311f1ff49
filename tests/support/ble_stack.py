"""A Bluetooth LE radio in one process: bumble peripherals serving emsctl's emulated devices, a
bumble central, and bleak on top — the real HCI, link-layer, L2CAP, ATT and GATT exchanges,
with no adapter, no BlueZ and no root.

* :class:`BleStack` joins the devices with bumble's virtual link (``bumble.link.LocalLink``, one
  virtual controller per device). It powers everything on lazily, on the loop that first needs
  it, so it works inside ``emsctl.runner.execute`` and under :class:`~emsctl.clock.VirtualClock`
  (bumble's timers follow the loop's clock). ``stack.backend`` is the bleak backend over the
  central (:mod:`support.bleak_bumble`); ``stack.link(name=…)`` is emsctl's real
  :class:`~emsctl.drivers.links.ble.BleakGattLink` on it.
* :class:`BridgedPeripheral` is a bumble peripheral in front of one of the simulator's
  in-memory :class:`~emsctl.simulator.transports.GattServer` objects. It advertises the
  device's name and serves a GATT table built from :class:`ServiceSpec`; every ATT write is
  handed to the emulator through a :class:`~emsctl.simulator.transports.MemoryGattLink` (so
  the emulator's latency and byte faults apply as on the in-memory path), reads are answered by
  the emulator, and the emulator's notifications go out as ATT notifications once the central
  has enabled them in the CCCD. When the emulator drops its radio link (a ``disconnect`` fault,
  a reset), the peripheral really disconnects.
* :func:`coyote_peripheral` and :func:`rn4020_peripheral` give the GATT tables of the DG-LAB
  Coyote V3 (services 0x180C and 0x180A, see docs/protocols/coyote3.md) and of the
  openEMSstim's RN4020 module (its private EMS service, properties 0x18).

**Breaking switch (tests only).** ``breakage=`` (or, when not given, the environment variable
``EMSCTL_TEST_BLE_BREAK``) makes a peripheral misbehave, to prove that the BLE tests notice:

* ``no-notify``: characteristics are declared without Notify/Indicate (so without a CCCD);
* ``silent``: the GATT table is right, but no notification is ever sent;
* ``no-write``: characteristics are declared without Write and Write Without Response; write
  requests are refused with "Write Not Permitted" and write commands are dropped.

Run e.g. ``EMSCTL_TEST_BLE_BREAK=no-notify pytest tests/ble`` to watch the suite fail.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bumble import hci
from bumble.att import (
    ATT_INVALID_ATTRIBUTE_LENGTH_ERROR,
    ATT_READ_NOT_PERMITTED_ERROR,
    ATT_UNLIKELY_ERROR_ERROR,
    ATT_WRITE_NOT_PERMITTED_ERROR,
    ATT_Error,
)
from bumble.controller import Controller
from bumble.core import UUID, AdvertisingData
from bumble.device import Connection, Device
from bumble.gatt import Characteristic, CharacteristicValue, Service
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

from emsctl.drivers.coyote3 import frames as coyote
from emsctl.drivers.links.ble import BleakBackendClasses, BleakGattLink
from emsctl.drivers.openems import protocol as openems
from emsctl.errors import DeviceError, ProtocolError
from emsctl.simulator.devices.coyote3 import EmulatedCoyote
from emsctl.simulator.devices.openems_front import Rn4020Front
from emsctl.simulator.transports import GattServer, MemoryGattLink
from support.bleak_bumble import bumble_backend

__all__ = ["BREAK_ENV", "AttWrite", "BleStack", "BridgedPeripheral", "CharacteristicSpec",
           "GattBreak", "ServiceSpec", "coyote_peripheral", "rn4020_peripheral"]

BREAK_ENV = "EMSCTL_TEST_BLE_BREAK"
#: Advertising interval of the peripherals: a scan hears each one within 100 ms.
ADVERTISING_INTERVAL_MS = 100
CENTRAL_ADDRESS = "F0:F0:F0:F0:F0:F0"

Props = Characteristic.Properties
_WRITES = Props.WRITE | Props.WRITE_WITHOUT_RESPONSE
_NOTIFIES = Props.NOTIFY | Props.INDICATE
_BASE_UUID_TAIL = "-0000-1000-8000-00805f9b34fb"


class GattBreak(StrEnum):
    """How a peripheral may be broken on purpose (see the module docstring)."""

    NONE = "none"
    NO_NOTIFY = "no-notify"
    SILENT = "silent"
    NO_WRITE = "no-write"


def break_from_env() -> GattBreak:
    """The breakage named by ``EMSCTL_TEST_BLE_BREAK`` (none when unset or empty).

    Raises:
        ValueError: an unknown name.
    """
    return GattBreak(os.environ.get(BREAK_ENV) or GattBreak.NONE)


@dataclass(frozen=True)
class CharacteristicSpec:
    """One characteristic of a peripheral's GATT table.

    Attributes:
        uuid: 128-bit UUID, lower case (a base-UUID one goes on air as 16 bits).
        properties: its declared properties.
        max_length: the longest value it accepts.
    """

    uuid: str
    properties: Characteristic.Properties
    max_length: int = 512


@dataclass(frozen=True)
class ServiceSpec:
    """One primary service and its characteristics."""

    uuid: str
    characteristics: tuple[CharacteristicSpec, ...]


@dataclass(frozen=True)
class AttWrite:
    """One write as the peripheral's ATT server received it.

    Attributes:
        kind: ``"request"`` (ATT Write Request) or ``"command"`` (ATT Write Command).
        uuid: the characteristic written.
        value: the bytes.
    """

    kind: str
    uuid: str
    value: bytes


#: The kind of the ATT write being handled; bumble runs each write in its own task, which
#: inherits this from the handler that started it.
_WRITE_KIND: contextvars.ContextVar[str] = contextvars.ContextVar("att_write_kind",
                                                                 default="request")


def coyote_peripheral(emulator: EmulatedCoyote, *, breakage: GattBreak | None = None
                      ) -> BridgedPeripheral:
    """The Coyote V3's GATT table in front of ``emulator``.

    Service 0x180C: 0x150A (Write Without Response and Write: the emulator takes both) and
    0x150B (Notify). Service 0x180A, a vendor battery service: 0x1500 (Read, Notify). It
    advertises its name only.
    """
    services = (
        ServiceSpec(coyote.SERVICE_UUID, (
            CharacteristicSpec(coyote.WRITE_CHARACTERISTIC_UUID,
                               Props.WRITE_WITHOUT_RESPONSE | Props.WRITE,
                               max_length=coyote.B0_LENGTH),
            CharacteristicSpec(coyote.NOTIFY_CHARACTERISTIC_UUID, Props.NOTIFY),
        )),
        ServiceSpec(coyote.BATTERY_SERVICE_UUID, (
            CharacteristicSpec(coyote.BATTERY_CHARACTERISTIC_UUID, Props.READ | Props.NOTIFY),
        )),
    )
    return BridgedPeripheral(emulator.server, services, breakage=breakage)


def rn4020_peripheral(front: Rn4020Front, *, breakage: GattBreak | None = None
                      ) -> BridgedPeripheral:
    """The RN4020's private EMS service in front of the emulated openEMSstim.

    One characteristic, Write and Notify (properties 0x18: no write without response), values
    up to 32 bytes. The board never notifies. It advertises its name only.
    """
    services = (ServiceSpec(openems.BLE_SERVICE_UUID, (
        CharacteristicSpec(openems.BLE_CHARACTERISTIC_UUID, Props.WRITE | Props.NOTIFY,
                           max_length=openems.BLE_MAX_VALUE_LEN),
    )),)
    return BridgedPeripheral(front.server, services, breakage=breakage)


def _bumble_uuid(uuid: str) -> UUID:
    uuid = uuid.lower()
    if uuid.startswith("0000") and uuid.endswith(_BASE_UUID_TAIL):
        return UUID.from_16_bits(int(uuid[4:8], 16))
    return UUID(uuid)


def _address(text: str) -> hci.Address:
    """The device's address, used on air as a random address: bumble's virtual link routes LE
    data by the sender's random address only, so a public one would lose every reply."""
    return hci.Address(text, hci.Address.RANDOM_DEVICE_ADDRESS)


def _spawn(coroutine: Coroutine[Any, Any, Any], tasks: set[asyncio.Task[Any]]) -> None:
    task = asyncio.ensure_future(coroutine)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


def _device(link: LocalLink, name: str, address: str) -> Device:
    controller = Controller(name, link=link)
    return Device(name=name, address=_address(address),
                  host=Host(controller, AsyncPipeSink(controller)))


class BridgedPeripheral:
    """A bumble peripheral whose GATT server is an emulated device's :class:`GattServer`.

    Args:
        server: the emulator's GATT server (name, address, callbacks).
        services: the GATT table to serve.
        breakage: see :class:`GattBreak`; None reads ``EMSCTL_TEST_BLE_BREAK``.

    Attributes:
        writes: every ATT write received, in order.
        notified: every notification sent, as (characteristic UUID, value).
        connections: how many centrals have connected so far.
    """

    def __init__(self, server: GattServer, services: tuple[ServiceSpec, ...], *,
                 breakage: GattBreak | None = None) -> None:
        self.server = server
        self.services = services
        self.breakage = break_from_env() if breakage is None else breakage
        self.writes: list[AttWrite] = []
        self.notified: list[tuple[str, bytes]] = []
        self.connections = 0
        self._device: Device | None = None
        self._connection: Connection | None = None
        self._link: MemoryGattLink | None = None
        self._ready: asyncio.Task[None] | None = None
        self._characteristics: dict[str, Characteristic[Any]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def __repr__(self) -> str:
        return f"<BridgedPeripheral {self.name} {self.address} breakage={self.breakage}>"

    @property
    def name(self) -> str:
        """The advertised name."""
        return self.server.name

    @property
    def address(self) -> str:
        """The Bluetooth address, as bleak reports it."""
        return self.server.address

    @property
    def is_connected(self) -> bool:
        """True while a central is connected."""
        return self._connection is not None

    # ------------------------------------------------------------------ building

    def build(self, link: LocalLink) -> Device:
        """Make the bumble device on ``link`` with its GATT table (called by the stack)."""
        device = _device(link, self.name, self.address)
        for spec in self.services:
            device.add_service(Service(_bumble_uuid(spec.uuid),
                                       [self._characteristic(c) for c in spec.characteristics]))
        device.on(device.EVENT_CONNECTION, self._on_connection)
        device.on("characteristic_subscription", self._on_subscription)
        # Tag each write with its ATT kind before bumble runs it in a task of its own, so the
        # value callback knows a Write Request from a Write Command (bumble hands it only the
        # bytes).
        gatt_server = device.gatt_server
        for handler, kind in (("on_att_write_request", "request"),
                              ("on_att_write_command", "command")):
            setattr(gatt_server, handler, _tagged(getattr(gatt_server, handler), kind))
        self._device = device
        return device

    def _characteristic(self, spec: CharacteristicSpec) -> Characteristic[Any]:
        properties = spec.properties
        if self.breakage is GattBreak.NO_NOTIFY:
            properties &= ~_NOTIFIES
        elif self.breakage is GattBreak.NO_WRITE:
            properties &= ~_WRITES
        permissions = Characteristic.Permissions(0)
        if properties & Props.READ:
            permissions |= Characteristic.READABLE
        if properties & _WRITES:
            permissions |= Characteristic.WRITEABLE
        effective = CharacteristicSpec(spec.uuid, properties, spec.max_length)

        async def read(connection: Connection) -> bytes:
            return await self._read(effective)

        async def write(connection: Connection, value: bytes) -> None:
            await self._write(effective, bytes(value))

        characteristic: Characteristic[Any] = Characteristic(
            _bumble_uuid(spec.uuid), properties, permissions,
            CharacteristicValue(read=read, write=write))
        self._characteristics[spec.uuid] = characteristic
        return characteristic

    async def start(self) -> None:
        """Power on and advertise (connectable, name only; again after each disconnection)."""
        device = self._device
        assert device is not None, "build() first"
        await device.power_on()
        flags = bytes([AdvertisingData.LE_GENERAL_DISCOVERABLE_MODE_FLAG
                       | AdvertisingData.BR_EDR_NOT_SUPPORTED_FLAG])
        advertising = AdvertisingData([(AdvertisingData.FLAGS, flags),
                                       (AdvertisingData.COMPLETE_LOCAL_NAME,
                                        self.name.encode())])
        await device.start_advertising(
            own_address_type=hci.OwnAddressType.RANDOM, auto_restart=True,
            advertising_data=bytes(advertising),
            advertising_interval_min=ADVERTISING_INTERVAL_MS,
            advertising_interval_max=ADVERTISING_INTERVAL_MS)

    # ------------------------------------------------------------------ the radio side

    def _on_connection(self, connection: Connection) -> None:
        if self._connection is not None:  # one central at a time, as on the real devices
            _spawn(connection.disconnect(), self._tasks)
            return
        self.connections += 1
        self._connection = connection
        link = MemoryGattLink(self.server)
        link.on_lost(lambda reason: self._emulator_dropped(connection))
        self._link = link
        self._ready = asyncio.ensure_future(link.connect(timeout_s=1.0))
        connection.on(connection.EVENT_DISCONNECTION,
                      lambda reason: self._on_disconnection(connection, link))

    def _on_disconnection(self, connection: Connection, link: MemoryGattLink) -> None:
        if self._connection is not connection:
            return
        self._connection = None
        if self._ready is not None and not self._ready.done():
            self._ready.cancel()
        self._ready = None
        self._link = None
        _spawn(link.disconnect(), self._tasks)  # the emulator sees its host go

    def _emulator_dropped(self, connection: Connection) -> None:
        """The emulated device lost its radio link: end the connection on air too."""
        if self._connection is connection:
            _spawn(connection.disconnect(), self._tasks)

    async def _emulator(self) -> MemoryGattLink:
        """The link to the emulator, once it has taken the connection."""
        link, ready = self._link, self._ready
        if link is None or ready is None:
            raise ATT_Error(ATT_UNLIKELY_ERROR_ERROR)
        await ready
        return link

    async def _write(self, spec: CharacteristicSpec, value: bytes) -> None:
        kind = _WRITE_KIND.get()
        self.writes.append(AttWrite(kind, spec.uuid, value))
        allowed = Props.WRITE if kind == "request" else Props.WRITE_WITHOUT_RESPONSE
        if not spec.properties & allowed:
            if kind == "request":
                raise ATT_Error(ATT_WRITE_NOT_PERMITTED_ERROR)
            return  # a write command the characteristic does not take is dropped
        if len(value) > spec.max_length:
            if kind == "request":
                raise ATT_Error(ATT_INVALID_ATTRIBUTE_LENGTH_ERROR)
            return
        link = await self._emulator()
        try:
            await link.write(spec.uuid, value, response=kind == "request")
        except DeviceError as exc:  # the emulator dropped the link meanwhile
            raise ATT_Error(ATT_UNLIKELY_ERROR_ERROR) from exc

    async def _read(self, spec: CharacteristicSpec) -> bytes:
        if not spec.properties & Props.READ:
            raise ATT_Error(ATT_READ_NOT_PERMITTED_ERROR)
        link = await self._emulator()
        try:
            return await link.read(spec.uuid)
        except (DeviceError, ProtocolError) as exc:
            raise ATT_Error(ATT_READ_NOT_PERMITTED_ERROR) from exc

    def _on_subscription(self, connection: Connection, characteristic: Characteristic[Any],
                         notify_enabled: bool, indicate_enabled: bool) -> None:
        uuid = next((u for u, c in self._characteristics.items() if c is characteristic), None)
        if uuid is None or not (notify_enabled or indicate_enabled):
            return  # bumble's own services, or notifications switched off (bumble gates those)
        _spawn(self._subscribe(connection, uuid, characteristic), self._tasks)

    async def _subscribe(self, connection: Connection, uuid: str,
                         characteristic: Characteristic[Any]) -> None:
        link = await self._emulator()
        device = self._device
        assert device is not None

        def send(_uuid: str, value: bytes) -> None:
            if self.breakage is GattBreak.SILENT or self._connection is not connection:
                return
            self.notified.append((uuid, bytes(value)))
            _spawn(device.notify_subscriber(connection, characteristic, bytes(value)),
                   self._tasks)

        await link.subscribe(uuid, send)

    async def drop(self) -> None:
        """The radio link goes away from the peripheral's side (e.g. out of range)."""
        connection = self._connection
        if connection is not None:
            await connection.disconnect()


def _tagged(handler: Callable[..., Any], kind: str) -> Callable[..., Any]:
    def tagged(*args: Any) -> Any:
        token = _WRITE_KIND.set(kind)
        try:
            return handler(*args)
        finally:
            _WRITE_KIND.reset(token)
    return tagged


class BleStack:
    """Peripherals and one central on bumble's in-process virtual radio.

    Args:
        peripherals: the devices on air.
    """

    def __init__(self, *peripherals: BridgedPeripheral) -> None:
        self.peripherals = list(peripherals)
        self.backend: BleakBackendClasses = bumble_backend(self)
        self._central: Device | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._starting: asyncio.Task[Device] | None = None

    def link(self, *, name: str | None = None, address: str | None = None) -> BleakGattLink:
        """emsctl's bleak link to the device with this name or address, through this stack."""
        return BleakGattLink(name=name, address=address, backend=self.backend)

    async def central(self) -> Device:
        """The central, after everything is powered on and advertising (first call only)."""
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop is not loop:
            raise RuntimeError("a BleStack serves the event loop it was started on only")
        self._loop = loop
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start())
        return await asyncio.shield(self._starting)

    async def _start(self) -> Device:
        radio = LocalLink()
        central = _device(radio, "emsctl host", CENTRAL_ADDRESS)
        for peripheral in self.peripherals:
            peripheral.build(radio)
        await central.power_on()
        for peripheral in self.peripherals:
            await peripheral.start()
        self._central = central
        return central
