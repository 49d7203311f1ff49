"""The in-memory serial cable between a real driver and an emulated serial device.

:class:`EmulatedSerialLink` is the :class:`~emsctl.drivers.links.base.ByteLink` that
``sim+sciencemode2`` and ``sim+sciencemode4`` hand their real drivers, and
:class:`EmulatedSerialDriver` what those drivers add: the emulated device in reach. The link wires
the driver to
the emulation through a :class:`~emsctl.simulator.transports.MemorySerialPipe` (wire time on
the loop's clock) and is the fault target of the plan. Opening the link switches the emulated
device on (a serial device is powered with its cable) and arms the plan, so ``at_s`` counts
from then. The cable's own kinds are done here — byte-level ones through the pipe's tamper hook
(:class:`~emsctl.simulator.fault_targets.ByteFaults`: ``corrupt_bytes`` flips one bit,
``drop_frames`` / ``duplicate_frames`` drop or repeat a chunk, each with the fault's probability,
default 1) and ``disconnect``, which cuts the cable (a device that notices an unplugged cable,
such as the bus-powered P24, is told too); everything else is the emulated device's
(its ``faults``).

This module must never be imported by the real-device path; it reads time only from the loop.
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

from ...contract import Driver
from ...drivers.links.base import LinkLostHandler, ReceiveHandler
from ..fault_targets import ByteFaults, FaultRouter, Route
from ..faults import Fault, FaultArming, FaultPlan
from ..model import SimulatedStimulator
from ..recorder import Recorder
from ..transports import MemorySerialPipe

__all__ = ["EmulatedSerialDriver", "EmulatedSerialLink", "SerialEmulator"]


class SerialEmulator(Protocol):
    """An emulated serial device as the link sees it."""

    device: SimulatedStimulator
    faults: FaultRouter

    def power_on(self) -> None:
        """Switch on (idempotent)."""

    def receive(self, data: bytes) -> None:
        """Bytes from the host."""


Emulator = TypeVar("Emulator", bound=SerialEmulator)


class EmulatedSerialLink(Generic[Emulator]):
    """A :class:`ByteLink` to an emulated serial device, and the fault target of its plan.

    Args:
        emulator: the emulated device (switched on by :meth:`open`).
        pipe: the in-memory cable between the host and the emulator.
        name: the device's name, for the link's description.
        unplugged: what the host is told when a ``disconnect`` fault cuts the cable.
        fault_plan: armed on the first :meth:`open`.
        seed: seeds the byte-fault dice, so a run repeats exactly.

    Raises:
        InputError: a fault plan with kinds or channels this link cannot inject.
    """

    def __init__(self, emulator: Emulator, pipe: MemorySerialPipe, *, name: str,
                 unplugged: str, fault_plan: FaultPlan | None = None, seed: int = 0) -> None:
        self.emulator = emulator
        self.pipe = pipe
        self.description = f"emulated {name} ({pipe.description})"
        self._unplugged = unplugged
        self._bytes = ByteFaults(seed)
        device_faults = emulator.faults
        #: The fault target: the cable's kinds here, the rest on the emulated device.
        self.faults = FaultRouter(
            device_faults.supported_fault_kinds | self._bytes.kinds | {"disconnect"},
            device_faults.fault_channels,
            {"disconnect": Route(self._unplug), **self._bytes.routes()},
            rest=device_faults.handed_on())
        self.fault_arming = FaultArming(fault_plan, self.faults)
        pipe.tamper = self._bytes.tamper
        pipe.on_device_receive(emulator.receive)

    async def open(self) -> None:
        """Plug the cable in: the device is switched on, the fault plan armed (first time).

        Raises:
            DeviceError: the cable was cut.
        """
        self.emulator.power_on()
        self.fault_arming.arm()
        await self.pipe.host.open()

    async def write(self, data: bytes) -> None:
        """Send bytes to the emulated device.

        Raises:
            LinkLostError: the cable was cut or the link is closed.
        """
        await self.pipe.host.write(data)

    def discard_unsent(self) -> int:
        """Drop the writes the cable has not taken yet; return the bytes dropped."""
        return self.pipe.host.discard_unsent()

    def on_receive(self, handler: ReceiveHandler) -> None:
        """Deliver the device's bytes to ``handler``."""
        self.pipe.host.on_receive(handler)

    def on_lost(self, handler: LinkLostHandler) -> None:
        """Report a cut cable to ``handler``."""
        self.pipe.host.on_lost(handler)

    async def close(self) -> None:
        """Close the port: the device stays on (closing a port is not noticed; its watchdog or
        timeout ends output); pending faults are disarmed."""
        self.fault_arming.disarm()
        await self.pipe.host.close()

    def _unplug(self, fault: Fault) -> None:
        self.pipe.cut(self._unplugged)
        if "disconnect" in self.emulator.faults.supported_fault_kinds:
            self.emulator.faults.fault_started(fault)  # it notices: bus powered, it goes off


class EmulatedSerialDriver(Driver, Generic[Emulator]):
    """A real serial driver on an :class:`EmulatedSerialLink`, with the emulated device in reach.

    A ``sim+`` driver subclasses its real driver and this, and calls :meth:`_reach_emulation`
    once its real driver is built.

    Attributes:
        emulator: the emulated device (protocol state, fault hooks).
        device: its output stage (outputs, watchdog or lease, body).
        recorder: what the device delivered (read by the CLI summary).
    """

    emulator: Emulator
    device: SimulatedStimulator

    def _reach_emulation(self, link: EmulatedSerialLink[Emulator]) -> None:
        self.emulator = link.emulator
        self.device = link.emulator.device
        self.recorder = Recorder(self.device)
