"""``sim+sciencemode2``: the real ScienceMode2 driver wired to the emulated RehaStim2.

The driver talks through a :class:`~emsctl.simulator.transports.MemorySerialPipe` (460800 baud
8E1 wire time, virtual-clock aware) to :class:`~emsctl.simulator.devices.sciencemode2.RehaStim2`,
so every byte goes through the same codec and driver code as on a real port. Opening the link
switches the emulated device on and arms the fault plan; ``at_s`` counts from then. Fault kinds:
byte-level ones through the pipe's tamper hook (``corrupt_bytes``: probability per chunk that
one bit flips, default 1; ``drop_frames`` / ``duplicate_frames``: probability per chunk,
default 1), ``drop_acks`` / ``late_acks`` / ``busy`` in the emulated device, ``disconnect`` cuts
the cable (the device does not notice; its watchdog ends output), and the body and reset kinds
through :class:`~emsctl.simulator.faults.DeviceFaultInjector`.

This module must never be imported by the real-device path; it reads time only from the loop.
"""

from __future__ import annotations

import asyncio
import math
from typing import Literal

from pydantic import Field, field_validator

from ...device_params import DeviceParams, parse_params
from ...devices import DeviceUrl, OpenOptions
from ...drivers.links.base import LinkLostHandler, ReceiveHandler
from ...drivers.sciencemode2.driver import ACK_TIMEOUT_S, ScienceModeDriver
from ...errors import InputError
from ..body import BodyModel
from ..devices.sciencemode2 import RehaStim2, RehaStim2Config, rehastim2_spec
from ..faults import (
    BYTE_FAULT_KINDS,
    ArmedFaultPlan,
    ByteFaults,
    DeviceFaultInjector,
    Fault,
    FaultPlan,
    simulated_fault_plan,
)
from ..model import SimulatedStimulator
from ..recorder import Recorder
from ..transports import MemorySerialPipe

__all__ = ["SM2_FAULT_KINDS", "EmulatedLink", "SimulatedScienceModeDriver", "open_emulated"]

SM2_FAULT_KINDS: frozenset[str] = frozenset(
    {"disconnect", "drop_acks", "late_acks", "busy", "corrupt_bytes", "duplicate_frames",
     "drop_frames", "electrode_off", "electrode_on", "impedance", "device_reset",
     "wrong_current"})
_BYTE_KINDS = BYTE_FAULT_KINDS


class EmulatedLink:
    """A :class:`ByteLink` to an emulated RehaStim2, and the fault target of its plan.

    Args:
        emulator: the emulated device (switched on by :meth:`open`).
        pipe: the in-memory cable between the host and the emulator.
        fault_plan: armed on the first :meth:`open`.
        seed: seeds the byte-fault dice, so a run repeats exactly.

    Raises:
        InputError: a fault plan with kinds or channels this link cannot inject.
    """

    def __init__(self, emulator: RehaStim2, pipe: MemorySerialPipe,
                 fault_plan: FaultPlan | None = None, seed: int = 0) -> None:
        self.emulator = emulator
        self.pipe = pipe
        self.description = f"emulated RehaStim2 ({pipe.description})"
        if fault_plan is not None:
            fault_plan.check(SM2_FAULT_KINDS, self.fault_channels)
        self.fault_plan = fault_plan
        self._armed: ArmedFaultPlan | None = None
        self._injector = DeviceFaultInjector(emulator.device)
        self._bytes = ByteFaults(seed)
        pipe.tamper = self._bytes.tamper
        pipe.on_device_receive(emulator.receive)

    async def open(self) -> None:
        """Plug the cable in: the device is switched on, the fault plan armed (first time).

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
        """Unplug: the device stays on (its watchdog notices); pending faults are disarmed."""
        if self._armed is not None:
            self._armed.cancel()
        await self.pipe.host.close()

    # ------------------------------------------------------------------ fault target

    @property
    def supported_fault_kinds(self) -> frozenset[str]:
        """Every kind :data:`SM2_FAULT_KINDS` lists."""
        return SM2_FAULT_KINDS

    @property
    def fault_channels(self) -> int:
        """Eight channels."""
        return self.emulator.device.spec.channels

    def fault_started(self, fault: Fault) -> None:
        """Begin ``fault`` now."""
        emulator = self.emulator
        if fault.kind == "disconnect":
            self.pipe.cut("cable pulled (fault plan)")
        elif fault.kind == "drop_acks":
            emulator.drop_replies = True
        elif fault.kind == "late_acks":
            emulator.reply_extra_delay_s = fault.value or 0.0
        elif fault.kind == "busy":
            emulator.busy = True
        elif fault.kind in _BYTE_KINDS:
            self._bytes.start(fault)
        else:
            self._injector.start(fault)

    def fault_ended(self, fault: Fault) -> None:
        """Undo a fault whose duration is over."""
        emulator = self.emulator
        if fault.kind == "drop_acks":
            emulator.drop_replies = False
        elif fault.kind == "late_acks":
            emulator.reply_extra_delay_s = 0.0
        elif fault.kind == "busy":
            emulator.busy = False
        elif fault.kind in _BYTE_KINDS:
            self._bytes.end(fault)
        else:
            self._injector.end(fault)


class SimulatedScienceModeDriver(ScienceModeDriver):
    """The ScienceMode2 driver on an :class:`EmulatedLink`, with the emulated device in reach.

    Attributes:
        device: the emulated output stage (outputs, watchdog, body).
        emulator: the emulated RehaStim2 (protocol state, fault hooks).
        recorder: what the device delivered (read by the CLI summary).
    """

    def __init__(self, link: EmulatedLink, *, url: str, ack_timeout_s: float) -> None:
        super().__init__(link, url=url, ack_timeout_s=ack_timeout_s)
        self.emulator = link.emulator
        self.device = link.emulator.device
        self.recorder = Recorder(self.device)


class SimScienceModeParams(DeviceParams):
    """``sim+sciencemode2?…`` parameters."""

    profile: Literal["strict", "lenient"] = Field("strict", description=(
        "emulator profile: strict (default) or lenient"))
    watchdog_s: float | Literal["log_only"] | None = Field(None, description=(
        "device watchdog in s (0–60), or 'log_only' (default 1.2; lenient 2.0)"))
    impedance_ohm: float = Field(1000.0, ge=1.0, le=1e6, description=(
        "electrode–skin impedance on every channel (default 1000)"))
    latency_s: float = Field(0.015, ge=0.0, le=0.1, description=(
        "execution latency of stimulation commands (default 0.015)"))
    ack_timeout_s: float = Field(ACK_TIMEOUT_S, ge=0.01, le=10.0, description=(
        "how long the driver waits for each ack (default 0.25)"))

    @field_validator("watchdog_s")
    @classmethod
    def _watchdog_range(cls, value: float | str | None) -> float | str | None:
        if isinstance(value, float) and not 0 < value <= 60:
            raise ValueError("the watchdog must be within 0–60 s")
        return value


def open_emulated(url: DeviceUrl, options: OpenOptions) -> SimulatedScienceModeDriver:
    """Build the driver, the pipe and the emulated device from ``sim+sciencemode2?…``.

    The driver has ``device``, ``emulator`` and ``recorder`` attributes for tests and the CLI
    summary.

    Raises:
        InputError: a target, an unknown or bad parameter, or a fault plan that is not a
            :class:`FaultPlan` or that cannot be injected here.
    """
    if url.target:
        raise InputError(f"sim+sciencemode2 takes no target, got '{url.target}'")
    p = parse_params(SimScienceModeParams, url.params, url.scheme)
    plan = simulated_fault_plan(options)
    watchdog_s = math.inf if p.watchdog_s == "log_only" else p.watchdog_s
    config = RehaStim2Config(profile=p.profile, watchdog_s=watchdog_s,
                             execution_latency_s=p.latency_s)
    device = SimulatedStimulator(rehastim2_spec(config), BodyModel(8, p.impedance_ohm))
    pipe = MemorySerialPipe(baud=460800, bits_per_byte=11, description="memory serial 460800 8E1")
    emulator = RehaStim2(device, pipe.device_write, config)
    link = EmulatedLink(emulator, pipe, plan, options.seed)
    return SimulatedScienceModeDriver(link, url=url.text, ack_timeout_s=p.ack_timeout_s)
