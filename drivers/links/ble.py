"""The bleak adapter: a :class:`~emsctl.drivers.links.base.GattLink` over a real BLE radio.

This is the only module of emsctl that imports bleak, and only inside functions, so that
``import emsctl`` and ``emsctl validate`` never load it. The client and the scanner are injected
(``client_factory``, ``scanner``) so that tests run against fakes with bleak's signatures; or a
bleak backend other than the platform's is named (``backend``, a :class:`BleakBackendClasses`),
which bleak's own ``BleakClient``/``BleakScanner`` then use, so that tests run the real bleak
front end over an emulated Bluetooth stack.

- **Connect** by address (``BleakScanner.find_device_by_address``) or by advertised name. A
  name is resolved by one scan and must match exactly one device: two units with the same name
  in range are refused (HZ-11: never pair with a neighbour's unit). The scan must hear every
  unit in range, so it cannot end at the first match; it takes at most half of the connect
  timeout (:data:`SCAN_SHARE`, and never more than 5 s), so that the other half is left for the
  connection itself.
- **Reconnect policy** (L14): the link never reconnects by itself and never replays anything.
  When the connection drops, ``on_lost`` is told once and every later call raises
  :class:`~emsctl.errors.LinkLostError`. ``connect()`` may be called again; it makes a new client
  with no subscriptions, so the driver must subscribe and set everything up again from zero.
- **Errors**: bleak, OS and timeout errors are translated here, with ``raise … from``, into
  :class:`DeviceTimeoutError`, :class:`LinkLostError`, :class:`BluetoothUnavailableError` or
  :class:`DeviceError`, each with one clear sentence.

``scan(timeout_s)`` lists nearby devices and recognises the ones emsctl can drive.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ...errors import DeviceError, DeviceTimeoutError, InputError, LinkLostError
from ..coyote3.frames import ADVERTISED_NAME_PREFIX, SERVICE_UUID
from .base import LinkLostHandler, NotifyHandler

__all__ = ["BleakBackendClasses", "BleakGattLink", "BluetoothUnavailableError", "ClientLike",
           "ScanResult", "ScannerLike", "recognise", "scan", "translate_ble_error"]

SCAN_TIMEOUT_DEFAULT_S = 5.0
#: The share of a connect-by-name timeout the scan for the name may take; the rest is the
#: connection's.
SCAN_SHARE = 0.5


class BluetoothUnavailableError(DeviceError):
    """This computer has no usable Bluetooth: no adapter, no BlueZ service, or it is off."""


class ClientLike(Protocol):
    """The part of ``bleak.BleakClient`` the adapter uses."""

    @property
    def is_connected(self) -> bool:
        """True while connected."""

    async def connect(self, **kwargs: Any) -> None:
        """Connect."""

    async def disconnect(self) -> None:
        """Disconnect."""

    async def write_gatt_char(self, char_specifier: str, data: bytes,
                              response: bool | None = None) -> None:
        """Write a characteristic."""

    async def read_gatt_char(self, char_specifier: str) -> bytearray:
        """Read a characteristic."""

    async def start_notify(self, char_specifier: str,
                           callback: Callable[[Any, bytearray], Awaitable[None] | None]) -> None:
        """Subscribe to notifications."""


class ScannerLike(Protocol):
    """The part of ``bleak.BleakScanner`` (class methods) the adapter uses."""

    async def find_device_by_address(self, device_identifier: str, timeout: float = 10.0
                                     ) -> Any:
        """The BLEDevice with this address, or None."""

    async def discover(self, timeout: float = 5.0, *, return_adv: bool = False) -> Any:
        """Devices in range; with ``return_adv`` a dict address → (BLEDevice, AdvertisementData)."""


#: (device or address, disconnected_callback) → client.
ClientFactory = Callable[[Any, Callable[[Any], None]], ClientLike]


@dataclass(frozen=True, slots=True)
class BleakBackendClasses:
    """A bleak backend to use instead of the platform's (BlueZ, CoreBluetooth, WinRT).

    bleak's ``BleakClient`` and ``BleakScanner`` take such classes as ``backend=``; the adapter
    still goes through those front ends, so only what lies under them changes.

    Attributes:
        client: a subclass of ``bleak.backends.client.BaseBleakClient``.
        scanner: a subclass of ``bleak.backends.scanner.BaseBleakScanner``.
    """

    client: type[Any]
    scanner: type[Any]


@dataclass(frozen=True, slots=True)
class ScanResult:
    """One device heard during a scan.

    Attributes:
        address: Bluetooth address (a UUID on macOS).
        name: advertised local name, or None.
        rssi_dbm: signal strength, or None if unknown.
        protocol: the emsctl scheme that drives it (``"coyote3"``), or None if unrecognised.
    """

    address: str
    name: str | None
    rssi_dbm: int | None
    protocol: str | None


def recognise(name: str | None, service_uuids: list[str]) -> str | None:
    """Tell which emsctl scheme drives a device, from its advertised name and services.

    Returns:
        ``"coyote3"`` for a Coyote V3 pulse host (name prefix ``47L121`` or service 0x180C),
        else None. (``47L120100`` is a sensor, another product, and is not recognised.)
    """
    if name is not None and name.startswith(ADVERTISED_NAME_PREFIX):
        return "coyote3"
    if SERVICE_UUID in (u.lower() for u in service_uuids):
        return "coyote3"
    return None


def translate_ble_error(exc: BaseException, what: str) -> DeviceError:
    """Turn a bleak, OS or timeout error into the project's error with one clear sentence.

    Args:
        exc: the error raised by bleak or the OS.
        what: what was being done, e.g. "connecting to 47L121000".

    Returns:
        The error to raise (``raise translate_ble_error(exc, …) from exc``).
    """
    if isinstance(exc, DeviceError):
        return exc
    if isinstance(exc, TimeoutError):
        return DeviceTimeoutError(f"{what}: no answer in time; is the device on and in range?")
    detail = _detail(exc)
    if _no_bluetooth(exc):
        return BluetoothUnavailableError(
            f"Bluetooth is not available on this computer (no adapter, no BlueZ service, or "
            f"switched off): {detail}")
    if isinstance(exc, OSError):
        return LinkLostError(f"{what}: the operating system reported {detail}")
    return DeviceError(f"{what}: {detail}")


def _detail(exc: BaseException) -> str:
    """The error's own sentence.

    ``str()`` of an exception made with several arguments is the tuple of them: bleak 3's
    ``BleakGATTProtocolError`` is ``(code, "GATT Protocol Error: …")`` and
    ``BleakBluetoothNotAvailableError`` is ``(message, reason)``. Their text arguments are the
    sentence; an exception with a ``__str__`` of its own (``BleakDBusError``) says it itself.
    """
    if len(exc.args) > 1 and type(exc).__str__ is BaseException.__str__:
        texts = [arg for arg in exc.args if isinstance(arg, str) and arg]
        if texts:
            return "; ".join(texts)
    return str(exc) or type(exc).__name__


def _no_bluetooth(exc: BaseException) -> bool:
    from bleak.exc import BleakBluetoothNotAvailableError  # noqa: PLC0415 - bleak stays lazy

    if isinstance(exc, BleakBluetoothNotAvailableError | FileNotFoundError):
        return True  # FileNotFoundError: no D-Bus system bus socket, so no BlueZ
    text = str(exc).lower()
    return any(sign in text for sign in ("no bluetooth adapter", "org.bluez", "adapter not found",
                                         "bluetooth device is turned off", "no powered"))


class BleakGattLink:
    """A GATT connection to one peripheral through bleak.

    Give exactly one of ``address`` or ``name``.

    Args:
        address: the device's Bluetooth address (or macOS UUID).
        name: the device's advertised name; it must match exactly one device in range.
        client_factory: makes the client; default ``bleak.BleakClient``.
        scanner: finds the device; default ``bleak.BleakScanner``.
        backend: the bleak backend under ``bleak.BleakClient`` and ``bleak.BleakScanner``;
            default the platform's. Not together with ``client_factory`` or ``scanner``.

    Raises:
        InputError: neither or both of ``address`` and ``name``, or ``backend`` together with
            ``client_factory`` or ``scanner``.
    """

    def __init__(self, *, address: str | None = None, name: str | None = None,
                 client_factory: ClientFactory | None = None,
                 scanner: ScannerLike | None = None,
                 backend: BleakBackendClasses | None = None) -> None:
        if (address is None) == (name is None) or not (address or name):
            raise InputError("name the device by exactly one of its address or its name")
        if backend is not None and (client_factory is not None or scanner is not None):
            raise InputError("give a bleak backend or a client factory and scanner, not both")
        self.address = address
        self.name = name
        self.description = f"BLE {address}" if address else f"BLE device named {name!r}"
        self._factory = client_factory
        self._scanner = scanner
        self._backend = backend
        self._client: ClientLike | None = None
        self._lost: LinkLostHandler | None = None
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def is_connected(self) -> bool:
        """True while the current client is connected."""
        return self._client is not None and self._client.is_connected

    async def connect(self, timeout_s: float) -> None:
        """Find the device and connect within ``timeout_s``; a fresh client every time.

        Raises:
            DeviceTimeoutError: no connection within ``timeout_s``.
            BluetoothUnavailableError: this computer has no usable Bluetooth.
            DeviceError: the device was not found, is ambiguous, or refused.
        """
        if self.is_connected:
            raise DeviceError(f"{self.description}: already connected")
        self._loop = asyncio.get_running_loop()
        self._closing = False
        self._client = None
        what = f"connecting to {self.description}"
        try:
            async with asyncio.timeout(timeout_s):
                device = await self._find(timeout_s)
                client = self._make_client(device)
                await client.connect()
        except TimeoutError as exc:
            raise DeviceTimeoutError(f"{what}: no connection within {timeout_s:g} s; is the "
                                     "device switched on, charged and in range?") from exc
        except Exception as exc:
            raise translate_ble_error(exc, what) from exc
        self._client = client

    async def write(self, characteristic_uuid: str, data: bytes, *, response: bool) -> None:
        """Write a value with or without a write response.

        Raises:
            LinkLostError: not connected, or the connection dropped.
            DeviceError: the device or the platform refused the write.
        """
        client = self._connected_client()
        try:
            await client.write_gatt_char(characteristic_uuid, bytes(data), response=response)
        except Exception as exc:
            raise self._failed(exc, f"writing {characteristic_uuid}") from exc

    async def read(self, characteristic_uuid: str) -> bytes:
        """Read a value.

        Raises:
            LinkLostError: not connected, or the connection dropped.
            DeviceError: the characteristic is missing or not readable.
        """
        client = self._connected_client()
        try:
            return bytes(await client.read_gatt_char(characteristic_uuid))
        except Exception as exc:
            raise self._failed(exc, f"reading {characteristic_uuid}") from exc

    async def subscribe(self, characteristic_uuid: str, handler: NotifyHandler) -> None:
        """Deliver notifications of ``characteristic_uuid`` as ``handler(uuid, bytes)``.

        Raises:
            LinkLostError: not connected, or the connection dropped.
            DeviceError: the characteristic is missing or cannot notify.
        """
        client = self._connected_client()
        uuid = characteristic_uuid.lower()

        def deliver(_sender: Any, data: bytearray) -> None:
            if self._client is client:  # a stale client's late notification goes nowhere
                handler(uuid, bytes(data))

        try:
            await client.start_notify(characteristic_uuid, deliver)
        except Exception as exc:
            raise self._failed(exc, f"subscribing to {characteristic_uuid}") from exc

    def on_lost(self, handler: LinkLostHandler) -> None:
        """Call ``handler(reason)`` once when the connection drops without ``disconnect()``."""
        self._lost = handler

    async def disconnect(self) -> None:
        """Disconnect. Idempotent; errors while disconnecting are ignored."""
        client, self._client = self._client, None
        self._closing = True
        if client is not None:
            with contextlib.suppress(Exception):
                await client.disconnect()

    # ------------------------------------------------------------------ internals

    async def _find(self, timeout_s: float) -> Any:
        scanner = self._scanner or _default_scanner(self._backend)
        if self.address is not None:
            device = await scanner.find_device_by_address(self.address, timeout=timeout_s)
            if device is None:
                raise DeviceError(f"no device with address {self.address} is advertising; is "
                                  "it switched on and in range?")
            found_address = str(getattr(device, "address", ""))
            if found_address.upper() != self.address.upper():
                # HZ-11: only the named unit, even if a backend hands back another one
                raise DeviceError(f"asked for {self.address} but the scan returned "
                                  f"{found_address or 'a device without an address'}; "
                                  "not connecting to it")
            return device
        scan_s = min(timeout_s * SCAN_SHARE, SCAN_TIMEOUT_DEFAULT_S)  # the rest: connecting
        found = await scanner.discover(timeout=scan_s, return_adv=True)
        matches = [dev for dev, adv in found.values()
                   if (adv.local_name or getattr(dev, "name", None)) == self.name]
        if not matches:
            raise DeviceError(f"no device named {self.name!r} is advertising; is it switched on "
                              "and in range?")
        if len(matches) > 1:
            addresses = ", ".join(sorted(str(dev.address) for dev in matches))
            raise DeviceError(f"{len(matches)} devices named {self.name!r} are in range "
                              f"({addresses}); connect by address so it is yours (HZ-11)")
        return matches[0]

    def _make_client(self, device: Any) -> ClientLike:
        if self._factory is not None:
            return self._factory(device, self._on_disconnected)
        from bleak import BleakClient  # noqa: PLC0415 - bleak only when a radio is used

        backend = None if self._backend is None else self._backend.client  # None: the platform's
        client: ClientLike = BleakClient(device, disconnected_callback=self._on_disconnected,
                                         backend=backend)
        return client

    def _on_disconnected(self, client: Any) -> None:
        """bleak's disconnected_callback: report a drop we did not ask for, once."""
        if self._closing or (client is not self._client and self._client is not None):
            return
        self._client = None
        handler, loop = self._lost, self._loop
        if handler is None or loop is None:
            return
        reason = f"{self.description}: the connection dropped"
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is listening any more
            loop.call_soon_threadsafe(handler, reason)

    def _connected_client(self) -> ClientLike:
        client = self._client
        if client is None or not client.is_connected:
            raise LinkLostError(f"{self.description}: not connected")
        return client

    def _failed(self, exc: Exception, what: str) -> DeviceError:
        error = translate_ble_error(exc, f"{self.description}: {what}")
        client = self._client
        if client is None or not client.is_connected:
            return LinkLostError(f"{self.description}: the connection dropped while {what}")
        return error


def _bleak_scanner() -> ScannerLike:
    from bleak import BleakScanner  # noqa: PLC0415 - bleak only when a radio is used

    scanner: ScannerLike = BleakScanner  # type: ignore[assignment]
    return scanner


def _default_scanner(backend: BleakBackendClasses | None) -> ScannerLike:
    """``BleakScanner`` on the platform's backend, or on ``backend``."""
    if backend is None:
        return _bleak_scanner()
    from bleak import BleakScanner  # noqa: PLC0415 - bleak only when a radio is used

    return _ScannerOnBackend(BleakScanner, backend.scanner)


class _ScannerOnBackend:
    """``BleakScanner``'s class methods with ``backend=`` filled in."""

    def __init__(self, front: Any, backend: type[Any]) -> None:
        self._front = front
        self._backend = backend

    async def find_device_by_address(self, device_identifier: str, timeout: float = 10.0
                                     ) -> Any:
        return await self._front.find_device_by_address(device_identifier, timeout=timeout,
                                                        backend=self._backend)

    async def discover(self, timeout: float = 5.0, *, return_adv: bool = False) -> Any:
        return await self._front.discover(timeout=timeout, return_adv=return_adv,
                                          backend=self._backend)


async def scan(timeout_s: float = SCAN_TIMEOUT_DEFAULT_S, *,
               scanner: ScannerLike | None = None,
               backend: BleakBackendClasses | None = None) -> list[ScanResult]:
    """Listen for ``timeout_s`` and list the devices heard, recognised ones first.

    ``backend`` names a bleak backend other than the platform's (as for :class:`BleakGattLink`);
    ``scanner``, when given, is used instead.

    Raises:
        BluetoothUnavailableError: this computer has no usable Bluetooth.
        DeviceError: the scan failed for another reason.
    """
    scanner = scanner or _default_scanner(backend)
    try:
        found = await scanner.discover(timeout=timeout_s, return_adv=True)
    except Exception as exc:
        raise translate_ble_error(exc, "scanning for Bluetooth devices") from exc
    results = []
    for device, adv in found.values():
        name = adv.local_name or getattr(device, "name", None)
        uuids = [str(u) for u in (getattr(adv, "service_uuids", None) or [])]
        rssi = getattr(adv, "rssi", None)
        results.append(ScanResult(str(device.address), name, rssi if isinstance(rssi, int)
                                  else None, recognise(name, uuids)))
    return sorted(results, key=lambda r: (r.protocol is None, -(r.rssi_dbm or -999), r.address))
