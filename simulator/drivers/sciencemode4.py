"""``sim+sciencemode4``: the real ScienceMode4 driver wired to the emulated Hasomed P24.

The driver talks through a :class:`~emsctl.simulator.transports.MemorySerialPipe` (3 Mbaud 8N2
wire time, virtual-clock aware) to :class:`~emsctl.simulator.devices.sciencemode4.P24`, so every
byte goes through the same codec and driver code as on a real port. Opening the link plugs the
emulated device in (bus powered: it switches on) and arms the fault plan; ``at_s`` counts from
then. Fault kinds, as for the RehaStim2 family: byte-level ones through the pipe's tamper hook
(``corrupt_bytes``: probability per chunk that one bit flips, default 1; ``drop_frames`` /
``duplicate_frames``: probability per chunk, default 1); ``drop_acks`` / ``late_acks`` /
``busy`` in the emulated device; ``disconnect`` pulls the USB cable (the bus-powered P24
switches off at once); the body and reset kinds on the output stage
(:class:`~emsctl.simulator.devices.sciencemode4_faults.P24FaultTarget`). A battery and a
strength control of its own are not part of a P24, so those kinds are refused.

This module must never be imported by the real-device path; it reads time only from the loop.
"""

from __future__ import annotations

import asyncio

from pydantic import Field

from ...device_params import DeviceParams, parse_params
from ...devices import DeviceUrl, OpenOptions
from ...drivers.links.base import LinkLostHandler, ReceiveHandler
from ...drivers.sciencemode4.driver import ACK_TIMEOUT_S, ScienceMode4Driver
from ...drivers.sciencemode4.protocol import CHANNEL_COUNT
from ...errors import InputError
from ..body import BodyModel
from ..devices.sciencemode4 import P24, P24Config, p24_spec
from ..devices.sciencemode4_faults import P24FaultTarget
from ..faults import (
    BYTE_FAULT_KINDS,
    ArmedFaultPlan,
    ByteFaults,
    Fault,
    FaultPlan,
    simulated_fault_plan,
)
from ..model import SimulatedStimulator
from ..recorder import Recorder
from ..transports import MemorySerialPipe

__all__ = ["SM4_FAULT_KINDS", "EmulatedLink", "SimScienceMode4Params",
           "SimulatedScienceMode4Driver", "open_emulated"]

_BYTE_KINDS = BYTE_FAULT_KINDS
SM4_FAULT_KINDS: frozenset[str] = frozenset(
    {"disconnect", "drop_acks", "late_acks", "busy", *_BYTE_KINDS, "electrode_off",
     "electrode_on", "impedance", "device_reset", "wrong_current"})


class EmulatedLink:
    """A :class:`ByteLink` to an emulated P24, and the fault target of its plan.

    Args:
        emulator: the emulated device (plugged in by :meth:`open`).
        pipe: the in-memory cable between the host and the emulator.
        fault_plan: armed on the first :meth:`open`.
        seed: seeds the byte-fault dice, so a run repeats exactly.

    Raises:
        InputError: a fault plan with kinds or channels this link cannot inject.
    """

    def __init__(self, emulator: P24, pipe: MemorySerialPipe,
                 fault_plan: FaultPlan | None = None, seed: int = 0) -> None:
        self.emulator = emulator
        self.pipe = pipe
        self.description = f"emulated P24 ({pipe.description})"
        if fault_plan is not None:
            fault_plan.check(SM4_FAULT_KINDS, self.fault_channels)
        self.fault_plan = fault_plan
        self._armed: ArmedFaultPlan | None = None
        self._device_faults = P24FaultTarget(emulator)
        self._bytes = ByteFaults(seed)
        pipe.tamper = self._bytes.tamper
        pipe.on_device_receive(emulator.receive)

    async def open(self) -> None:
        """Plug the cable in: the device switches on, the fault plan is armed (first time).

        Raises:
            DeviceError: the cable was cut.
        """
        self.emulator.power_on()
        if self.fault_plan is not None and self._armed is None:
            self._armed = self.fault_plan.schedule(asyncio.get_running_loop(), self)
        await self.pipe.host.open()

    async def write(self, data: bytes) -> None:
        """Send bytes to the emulated device.

        Raises:
            LinkLostError: the cable was cut or the link is closed.
        """
        await self.pipe.host.write(data)

    def on_receive(self, handler: ReceiveHandler) -> None:
        """Deliver the device's bytes to ``handler``."""
        self.pipe.host.on_receive(handler)

    def on_lost(self, handler: LinkLostHandler) -> None:
        """Report a cut cable to ``handler``."""
        self.pipe.host.on_lost(handler)

    async def close(self) -> None:
        """Close the port: the device stays powered (closing is not noticed,
        docs/protocols/sciencemode4.md §9); pending faults are disarmed."""
        if self._armed is not None:
            self._armed.cancel()
        await self.pipe.host.close()

    # ------------------------------------------------------------------ fault target

    @property
    def supported_fault_kinds(self) -> frozenset[str]:
        """Every kind :data:`SM4_FAULT_KINDS` lists."""
        return SM4_FAULT_KINDS

    @property
    def fault_channels(self) -> int:
        """Eight channels."""
        return self.emulator.device.spec.channels

    def fault_started(self, fault: Fault) -> None:
        """Begin ``fault`` now."""
        if fault.kind == "disconnect":
            self.pipe.cut("USB cable pulled (fault plan)")
            self._device_faults.fault_started(fault)  # bus powered: it switches off
        elif fault.kind in _BYTE_KINDS:
            self._bytes.start(fault)
        else:
            self._device_faults.fault_started(fault)

    def fault_ended(self, fault: Fault) -> None:
        """Undo a fault whose duration is over."""
        if fault.kind in _BYTE_KINDS:
            self._bytes.end(fault)
        elif fault.kind != "disconnect":
            self._device_faults.fault_ended(fault)


class SimulatedScienceMode4Driver(ScienceMode4Driver):
    """The ScienceMode4 driver on an :class:`EmulatedLink`, with the emulated device in reach.

    Attributes:
        device: the emulated output stage (outputs, lease, body).
        emulator: the emulated P24 (protocol state, fault hooks).
        recorder: what the device delivered (read by the CLI summary).
    """

    def __init__(self, link: EmulatedLink, *, url: str, ack_timeout_s: float) -> None:
        super().__init__(link, url=url, ack_timeout_s=ack_timeout_s)
        self.emulator = link.emulator
        self.device = link.emulator.device
        self.recorder = Recorder(self.device)


class SimScienceMode4Params(DeviceParams):
    """``sim+sciencemode4?…`` parameters."""

    impedance_ohm: float = Field(1000.0, ge=1.0, le=1e6, description=(
        "electrode–skin impedance on every channel (default 1000)"))
    reply_delay_s: float = Field(0.0, ge=0.0, le=0.1, description=(
        "how long the emulated P24 takes to answer a command (default 0)"))
    ack_timeout_s: float = Field(ACK_TIMEOUT_S, ge=0.01, le=10.0, description=(
        "how long the driver waits for each ack (default 0.25)"))


def open_emulated(url: DeviceUrl, options: OpenOptions) -> SimulatedScienceMode4Driver:
    """Build the driver, the pipe and the emulated P24 from ``sim+sciencemode4?…``.

    The driver has ``device``, ``emulator`` and ``recorder`` attributes for tests and the CLI
    summary.

    Raises:
        InputError: a target, an unknown or bad parameter, or a fault plan that is not a
            :class:`FaultPlan` or that cannot be injected here.
    """
    if url.target:
        raise InputError(f"sim+sciencemode4 takes no target, got '{url.target}'")
    params = parse_params(SimScienceMode4Params, url.params, url.scheme)
    plan = simulated_fault_plan(options)
    config = P24Config(reply_delay_s=params.reply_delay_s)
    device = SimulatedStimulator(p24_spec(config), BodyModel(CHANNEL_COUNT, params.impedance_ohm))
    pipe = MemorySerialPipe(baud=3_000_000, bits_per_byte=11,
                            description="memory serial 3 Mbaud 8N2")
    emulator = P24(device, pipe.device_write, config)
    link = EmulatedLink(emulator, pipe, plan, options.seed)
    return SimulatedScienceMode4Driver(link, url=url.text, ack_timeout_s=params.ack_timeout_s)
