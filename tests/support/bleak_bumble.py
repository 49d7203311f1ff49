"""A bleak backend over a bumble central: bleak's real ``BleakClient``/``BleakScanner`` front end
on top of bumble's host stack (HCI, L2CAP, ATT, GATT client) instead of BlueZ, CoreBluetooth or
WinRT.

bleak picks its platform backend unless ``backend=`` names another; these classes implement
bleak's backend interface (``bleak.backends.client.BaseBleakClient`` and
``bleak.backends.scanner.BaseBleakScanner``, as in bleak 3.x) on a bumble ``Device`` acting as
the central. :func:`bumble_backend` binds them to one :class:`CentralSource` (the in-process
radio of :mod:`support.ble_stack`) and returns them as emsctl's ``BleakBackendClasses``.

Where platform stacks check something before going on air, so does this backend: notifications
on a characteristic that declares neither Notify nor Indicate are refused (as BlueZ's
``StartNotify`` is), and every GATT operation ends with an error, not a hang, when the link
drops under it. ATT errors become ``bleak.exc.BleakGATTProtocolError`` as in bleak 3.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, ClassVar, Protocol, TypeVar

from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError

try:  # bleak 3: ATT error responses have their own exception
    from bleak.exc import BleakGATTProtocolError
except ImportError:  # pragma: no cover - bleak < 3
    BleakGATTProtocolError = None
from bleak.uuids import normalize_uuid_str
from bumble import core
from bumble.att import ATT_Error
from bumble.core import AdvertisingData, PhysicalTransport
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.gatt import Characteristic
from bumble.hci import Address

from emsctl.drivers.links.ble import BleakBackendClasses

__all__ = ["BumbleBleakClient", "BumbleBleakScanner", "CentralSource", "bumble_backend"]

T = TypeVar("T")

#: Client Characteristic Configuration descriptor, where a client switches notifications on.
CCCD_UUID = normalize_uuid_str("2902")

_PROPERTY_NAMES = {
    Characteristic.Properties.BROADCAST: "broadcast",
    Characteristic.Properties.READ: "read",
    Characteristic.Properties.WRITE_WITHOUT_RESPONSE: "write-without-response",
    Characteristic.Properties.WRITE: "write",
    Characteristic.Properties.NOTIFY: "notify",
    Characteristic.Properties.INDICATE: "indicate",
    Characteristic.Properties.AUTHENTICATED_SIGNED_WRITES: "authenticated-signed-writes",
    Characteristic.Properties.EXTENDED_PROPERTIES: "extended-properties",
}
_UUID_LISTS = (
    AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
)


class CentralSource(Protocol):
    """Where the backend gets its bumble central (powered on, on the running loop)."""

    async def central(self) -> Device:
        """The central device."""


def bumble_backend(source: CentralSource) -> BleakBackendClasses:
    """bleak backend classes that use ``source``'s central."""
    bound = {"source": source}
    return BleakBackendClasses(
        client=type("BumbleBleakClient", (BumbleBleakClient,), bound),
        scanner=type("BumbleBleakScanner", (BumbleBleakScanner,), bound))


def bleak_uuid(uuid: core.UUID) -> str:
    """A bumble UUID as bleak writes UUIDs: 128-bit, lower case, with dashes."""
    return normalize_uuid_str(uuid.to_hex_str("-"))


# ---------------------------------------------------------------------- scanner


class BumbleBleakScanner(BaseBleakScanner):
    """Scans with the bumble central; one advertisement report becomes one bleak detection.

    Like the platform stacks, a device's name and service UUIDs are kept from earlier reports
    (a scan response may carry neither).
    """

    source: ClassVar[CentralSource]

    def __init__(self, detection_callback: AdvertisementDataCallback | None,
                 service_uuids: list[str] | None, scanning_mode: str = "active",
                 **kwargs: Any) -> None:
        super().__init__(detection_callback, service_uuids)
        self._active = scanning_mode != "passive"
        self._central: Device | None = None

    async def start(self) -> None:
        central = await self.source.central()
        self._central = central
        self.seen_devices = {}
        central.on(central.EVENT_ADVERTISEMENT, self._on_advertisement)
        await central.start_scanning(active=self._active, filter_duplicates=False)

    async def stop(self) -> None:
        central, self._central = self._central, None
        if central is None:
            return
        central.remove_listener(central.EVENT_ADVERTISEMENT, self._on_advertisement)
        if central.scanning:
            await central.stop_scanning()

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        address = advertisement.address.to_string(False)
        data = advertisement.data
        before = self.seen_devices.get(address)
        name = _text(data.get(AdvertisingData.COMPLETE_LOCAL_NAME)) or _text(
            data.get(AdvertisingData.SHORTENED_LOCAL_NAME))
        uuids = [bleak_uuid(u) for kind in _UUID_LISTS for u in (data.get(kind) or [])]
        if before is not None:
            name = name or before[1].local_name
            uuids = uuids or list(before[1].service_uuids)
        if not self.is_allowed_uuid(uuids):
            return
        manufacturer = data.get(AdvertisingData.MANUFACTURER_SPECIFIC_DATA)
        adv = AdvertisementData(
            local_name=name,
            manufacturer_data={manufacturer[0]: bytes(manufacturer[1])} if manufacturer else {},
            service_data={}, service_uuids=uuids, tx_power=None, rssi=advertisement.rssi,
            platform_data=(advertisement,))
        device = self.create_or_update_device(address, address, name, advertisement.address, adv)
        self.call_detection_callbacks(device, adv)


def _att_failure(exc: ATT_Error) -> BleakError:
    """An ATT error response as bleak reports it (its own exception since bleak 3)."""
    if BleakGATTProtocolError is not None:
        return BleakGATTProtocolError(int(exc.error_code))
    reason = exc.error_name.replace("_", " ").title()  # e.g. "Write Not Permitted"
    return BleakError(f"GATT Protocol Error: {reason}")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# ---------------------------------------------------------------------- client


class BumbleBleakClient(BaseBleakClient):
    """A GATT client on a bumble connection, behind bleak's ``BleakClient``.

    ``address_or_ble_device`` is a ``BLEDevice`` from :class:`BumbleBleakScanner` (its details
    hold the bumble address, with its type) or an address string (taken as a random address).
    ``disconnected_callback`` is called once, on a disconnection this client did not ask for.
    """

    source: ClassVar[CentralSource]

    def __init__(self, address_or_ble_device: BLEDevice | str, **kwargs: Any) -> None:
        super().__init__(address_or_ble_device,
                         disconnected_callback=kwargs.get("disconnected_callback"),
                         timeout=kwargs.get("timeout", 10.0))
        if isinstance(address_or_ble_device, BLEDevice):
            self._peer_address = address_or_ble_device.details
            self._name = address_or_ble_device.name or self.address
        else:
            self._peer_address = Address(address_or_ble_device)
            self._name = self.address
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._gone: asyncio.Future[int] | None = None
        self._asked_to_disconnect = False

    # ------------------------------------------------------------------ connection

    @property
    def name(self) -> str:
        return self._name

    @property
    def mtu_size(self) -> int:
        return self._connection.att_mtu if self._connection is not None else 23

    @property
    def is_connected(self) -> bool:
        return self._connection is not None and self._gone is not None \
            and not self._gone.done()

    async def connect(self, pair: bool = False, **kwargs: Any) -> None:
        central = await self.source.central()
        timeout_s = kwargs.get("timeout", self._timeout)
        try:
            connection = await central.connect(self._peer_address,
                                               transport=PhysicalTransport.LE,
                                               timeout=timeout_s)
        except core.TimeoutError as exc:
            raise TimeoutError(f"no connection to {self.address} within {timeout_s:g} s") from exc
        except core.BaseBumbleError as exc:
            raise BleakError(f"connecting to {self.address} failed: {exc}") from exc
        loop = asyncio.get_running_loop()
        self._gone = loop.create_future()
        self._asked_to_disconnect = False
        self._connection = connection
        connection.on(connection.EVENT_DISCONNECTION, self._on_disconnection)
        self._peer = Peer(connection)
        try:
            self.services = await self._discover(self._peer)
        except BaseException:
            await self.disconnect()
            raise

    async def disconnect(self) -> None:
        connection = self._connection
        if connection is None or not self.is_connected:
            return
        self._asked_to_disconnect = True
        await connection.disconnect()

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("pairing is not part of this test backend")

    async def unpair(self) -> None:
        raise NotImplementedError("pairing is not part of this test backend")

    def _on_disconnection(self, reason: int) -> None:
        if self._gone is not None and not self._gone.done():
            self._gone.set_result(reason)
        callback = self._disconnected_callback
        if not self._asked_to_disconnect and callback is not None:
            callback()

    async def _discover(self, peer: Peer) -> BleakGATTServiceCollection:
        """Primary services, their characteristics and descriptors, as bleak's collection."""
        collection = BleakGATTServiceCollection()
        for service in await self._gatt(peer.discover_services(), "discovering services"):
            bleak_service = BleakGATTService(service, service.handle, bleak_uuid(service.uuid))
            collection.add_service(bleak_service)
            found = await self._gatt(peer.discover_characteristics(service=service),
                                     "discovering characteristics")
            for characteristic in found:
                properties = [name for flag, name in _PROPERTY_NAMES.items()
                              if characteristic.properties & flag]
                bleak_characteristic = BleakGATTCharacteristic(
                    characteristic, characteristic.handle, bleak_uuid(characteristic.uuid),
                    properties, self._max_write_without_response, bleak_service)
                collection.add_characteristic(bleak_characteristic)
                descriptors = await self._gatt(peer.discover_descriptors(characteristic),
                                               "discovering descriptors")
                for descriptor in descriptors:
                    collection.add_descriptor(BleakGATTDescriptor(
                        descriptor, descriptor.handle, bleak_uuid(descriptor.type),
                        bleak_characteristic))
        return collection

    def _max_write_without_response(self) -> int:
        return self.mtu_size - 3

    # ------------------------------------------------------------------ GATT operations

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, **kwargs: Any
                             ) -> bytearray:
        peer = self._live_peer()
        return bytearray(await self._gatt(peer.read_value(characteristic.obj),
                                          f"reading {characteristic.uuid}"))

    async def read_gatt_descriptor(self, descriptor: BleakGATTDescriptor, **kwargs: Any
                                   ) -> bytearray:
        peer = self._live_peer()
        return bytearray(await self._gatt(peer.read_value(descriptor.obj),
                                          f"reading descriptor {descriptor.handle}"))

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: Any,
                              response: bool) -> None:
        peer = self._live_peer()
        await self._gatt(peer.write_value(characteristic.obj, bytes(data),
                                          with_response=response),
                         f"writing {characteristic.uuid}")

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
        peer = self._live_peer()
        await self._gatt(peer.write_value(descriptor.obj, bytes(data), with_response=True),
                         f"writing descriptor {descriptor.handle}")

    async def start_notify(self, characteristic: BleakGATTCharacteristic,
                           callback: NotifyCallback, **kwargs: Any) -> None:
        peer = self._live_peer()
        if not {"notify", "indicate"} & set(characteristic.properties):
            raise BleakError(f"characteristic {characteristic.uuid} supports neither "
                             "notifications nor indications")
        if characteristic.get_descriptor(CCCD_UUID) is None:
            raise BleakError(f"characteristic {characteristic.uuid} has no client "
                             "characteristic configuration descriptor")

        def deliver(value: bytes) -> None:
            callback(bytearray(value))

        await self._gatt(peer.subscribe(characteristic.obj, deliver),
                         f"subscribing to {characteristic.uuid}")

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        peer = self._live_peer()
        await self._gatt(peer.unsubscribe(characteristic.obj),
                         f"unsubscribing from {characteristic.uuid}")

    def _live_peer(self) -> Peer:
        if self._peer is None or not self.is_connected:
            raise BleakError("Not connected")
        return self._peer

    async def _gatt(self, operation: Awaitable[T], what: str) -> T:
        """Run a GATT operation; an ATT error or a drop of the link ends it with an error."""
        gone = self._gone
        task = asyncio.ensure_future(operation)
        if gone is None:
            task.cancel()
            raise BleakError("Not connected")
        try:
            await asyncio.wait([task, gone], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if task.done() and not task.cancelled() and task.exception() is None:
            return task.result()
        if gone.done() or task.cancelled():  # bumble cancels what is pending on a drop
            task.cancel()
            raise BleakError(f"disconnected while {what}")
        try:
            return task.result()
        except ATT_Error as exc:
            raise _att_failure(exc) from exc
        except core.BaseBumbleError as exc:
            raise BleakError(f"{what}: {exc}") from exc
