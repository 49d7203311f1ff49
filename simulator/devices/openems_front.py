"""Transports and faults of the emulated openEMSstim board: USB serial, the RN4020, a fault plan.

* USB serial: :class:`UsbSerialFront` wires an :class:`~.openems.OpenEmsBoard` to a
  :class:`~emsctl.simulator.transports.MemorySerialPipe`; its host end is wrapped so that opening
  the port resets the Nano, as DTR does on the real board (docs/protocols/openemsstim.md §2), and
  setup runs again. A pulled cable goes unnoticed by the board: its on-time switches the output off
  (docs/protocols/openemsstim.md §9).
* BLE: :class:`Rn4020Front` serves the EMS characteristic on a
  :class:`~emsctl.simulator.transports.GattServer`; each write becomes the line
  ``WV,001C,<HEX>.`` and a disconnect the line ``Connection End`` (docs/protocols/openemsstim.md §2
  [emsctl rule]).
* Faults: each front's ``faults`` is a :class:`~emsctl.simulator.faults.FaultTarget`:
  ``disconnect``, ``device_reset``, byte faults on host→device traffic
  (:class:`~emsctl.simulator.fault_targets.ByteFaults` with
  :func:`~emsctl.simulator.fault_targets.flip_digit`: ``corrupt_bytes`` changes one digit of a
  line, ``drop_frames`` loses a line, ``duplicate_frames`` sends it twice; ``value`` is the
  probability per line, default 1) and the body's electrode faults. Randomness is seeded.

No threads, no wall clock; never raises on received bytes.
"""

from __future__ import annotations

import asyncio

from ...drivers.links.base import LinkLostHandler, ReceiveHandler
from ...drivers.openems.protocol import BLE_CHARACTERISTIC_UUID, CONNECTION_END, rn4020_line
from ...errors import ProtocolError
from ..fault_targets import (
    FROM_HOST,
    ByteFaults,
    DeviceFaultInjector,
    FaultRouter,
    Route,
    flip_digit,
)
from ..faults import BYTE_FAULT_KINDS
from ..transports import GattServer, MemorySerialPipe
from .openems import OpenEmsBoard

__all__ = ["OPENEMS_FAULT_KINDS", "DtrResetLink", "Rn4020Front", "UsbSerialFront"]

OPENEMS_FAULT_KINDS: frozenset[str] = frozenset(
    {"disconnect", "device_reset", "corrupt_bytes", "drop_frames", "duplicate_frames",
     "electrode_off", "electrode_on", "impedance", "wrong_current"})
SERIAL_BITS_PER_BYTE = 10  # 8N1
SERIAL_BAUD = 19_200


class _Front:
    """Fault handling shared by both fronts: ``faults`` is the board's fault target."""

    def __init__(self, board: OpenEmsBoard, seed: int) -> None:
        self.board = board
        # the board sends only debug text: its lines from the host are what faults damage
        self._bytes = ByteFaults(seed, directions=dict.fromkeys(BYTE_FAULT_KINDS, FROM_HOST),
                                 damage=flip_digit)
        self.faults = FaultRouter(OPENEMS_FAULT_KINDS, 2, {
            "disconnect": Route(lambda _fault: self.disconnect()),
            "device_reset": Route(lambda _fault: self.reset()),
            **self._bytes.routes(),
        }, rest=DeviceFaultInjector(board.device).route())

    def disconnect(self) -> None:  # pragma: no cover - overridden
        """Break the link."""
        raise NotImplementedError

    def reset(self) -> None:
        """The board resets."""
        self.board.reset()


class DtrResetLink:
    """The host end of the USB cable: opening it resets the board (DTR), as on a Nano.

    Implements :class:`~emsctl.drivers.links.base.ByteLink`.
    """

    def __init__(self, pipe: MemorySerialPipe, board: OpenEmsBoard) -> None:
        self._pipe = pipe
        self._board = board
        self.description = pipe.description

    async def open(self) -> None:
        """Open the port; the board resets and runs setup.

        Raises:
            DeviceError: the cable was pulled.
        """
        await self._pipe.host.open()
        self._board.reset()

    async def write(self, data: bytes) -> None:
        """Send bytes to the board.

        Raises:
            LinkLostError: the link is closed or the cable was pulled.
        """
        await self._pipe.host.write(data)

    def discard_unsent(self) -> int:
        """Drop the writes the cable has not taken yet; return the bytes dropped."""
        return self._pipe.host.discard_unsent()

    def on_receive(self, handler: ReceiveHandler) -> None:
        """Deliver the board's debug output to ``handler``."""
        self._pipe.host.on_receive(handler)

    def on_lost(self, handler: LinkLostHandler) -> None:
        """Report a pulled cable to ``handler``."""
        self._pipe.host.on_lost(handler)

    async def close(self) -> None:
        """Close the port (the board does not notice). Idempotent."""
        await self._pipe.host.close()


class UsbSerialFront(_Front):
    """The board's USB serial port on an in-memory cable at 19 200 baud 8N1.

    Args:
        board: the emulated board.
        seed: seed of the byte-fault dice.
    """

    def __init__(self, board: OpenEmsBoard, seed: int = 0) -> None:
        super().__init__(board, seed)
        self.pipe = MemorySerialPipe(SERIAL_BAUD, SERIAL_BITS_PER_BYTE,
                                     tamper=self._bytes.tamper,
                                     description="memory serial to emulated openEMSstim")
        self.pipe.on_device_receive(board.serial_receive)
        board.usb_writer = self.pipe.device_write
        self.link = DtrResetLink(self.pipe, board)

    def disconnect(self) -> None:
        """Pull the cable: the host is told; the board notices nothing
        (docs/protocols/openemsstim.md §9)."""
        self.pipe.cut("USB cable pulled")


class Rn4020Front(_Front):
    """The RN4020 module: the EMS characteristic on an in-memory GATT server.

    Args:
        board: the emulated board.
        name: the advertised name (the firmware default is ``TEST1``).
        address: the BLE address.
        seed: seed of the byte-fault dice.
    """

    def __init__(self, board: OpenEmsBoard, name: str = "openEMSstim01",
                 address: str = "00:1E:C0:00:00:01", seed: int = 0) -> None:
        super().__init__(board, seed)
        self.server = GattServer(name, address, on_write=self._on_write,
                                 on_disconnect=self._on_disconnect, tamper=self._bytes.tamper)

    def _on_write(self, characteristic_uuid: str, value: bytes, response: bool) -> None:
        if characteristic_uuid.lower() != BLE_CHARACTERISTIC_UUID:
            return
        try:
            line = rn4020_line(value)
        except ProtocolError:
            return  # the RN4020 refuses empty or over-long values
        self.board.ble_line(line)

    def _on_disconnect(self) -> None:
        self.board.ble_line(CONNECTION_END)

    def disconnect(self) -> None:
        """The radio link drops: the host is told and the board gets ``Connection End``."""
        self.server.drop_connection("BLE connection to openEMSstim lost")

    def reset(self) -> None:
        """The board resets; the RN4020 resets with it and the connection drops."""
        self.board.reset()
        if self.server.connected:
            asyncio.get_running_loop().call_soon(self.server.drop_connection,
                                                 "openEMSstim reset")
