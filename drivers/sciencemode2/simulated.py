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
import random

from ...devices import DeviceUrl, OpenOptions
from ...errors import InputError
from ...simulator.body import BodyModel
from ...simulator.devices.sciencemode2 import RehaStim2, RehaStim2Config, rehastim2_spec
from ...simulator.faults import ArmedFaultPlan, DeviceFaultInjector, Fault, FaultPlan
from ...simulator.model import SimulatedStimulator
from ...simulator.recorder import Recorder
from ...simulator.transports import Direction, MemorySerialPipe
from ..links.base import LinkLostHandler, ReceiveHandler
from .driver import ACK_TIMEOUT_S, ScienceModeDriver, float_param

__all__ = ["SM2_FAULT_KINDS", "EmulatedLink", "SimulatedScienceModeDriver", "open_emulated"]

SM2_FAULT_KINDS: frozenset[str] = frozenset(
    {"disconnect", "drop_acks", "late_acks", "busy", "corrupt_bytes", "duplicate_frames",
     "drop_frames", "electrode_off", "electrode_on", "impedance", "device_reset"})
_BYTE_KINDS = ("corrupt_bytes", "duplicate_frames", "drop_frames")


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
        self._active: dict[str, list[Fault]] = {kind: [] for kind in _BYTE_KINDS}
        self._random = random.Random(seed)
        pipe.tamper = self._tamper
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
            self._active[fault.kind].append(fault)
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
            if fault in self._active[fault.kind]:
                self._active[fault.kind].remove(fault)
        else:
            self._injector.end(fault)

    def _chance(self, kind: str) -> bool:
        faults = self._active[kind]
        probability = max((1.0 if f.value is None else f.value for f in faults), default=0.0)
        return probability > 0 and self._random.random() < probability

    def _tamper(self, direction: Direction, data: bytes) -> list[tuple[float, bytes]]:
        if self._chance("drop_frames"):
            return []
        if data and self._chance("corrupt_bytes"):
            flipped = bytearray(data)
            flipped[self._random.randrange(len(data))] ^= 1 << self._random.randrange(8)
            data = bytes(flipped)
        if self._chance("duplicate_frames"):
            return [(0.0, data), (0.0, data)]
        return [(0.0, data)]


class SimulatedScienceModeDriver(ScienceModeDriver):
    """The ScienceMode2 driver on an :class:`EmulatedLink`, with the emulated device in reach.

    Attributes:
        device: the emulated output stage (outputs, watchdog, body).
        emulator: the emulated RehaStim2 (protocol state, fault hooks).
        recorder: what the device delivered (read by the CLI summary).
    """

    def __init__(self, link: EmulatedLink, *, url: str, ack_timeout_s: float) -> None:
        super().__init__(link, url=url, simulated=True, ack_timeout_s=ack_timeout_s)
        self.emulator = link.emulator
        self.device = link.emulator.device
        self.recorder = Recorder(self.device)


_PARAMS = {
    "profile": "emulator profile: strict (default) or lenient (§10)",
    "watchdog_s": "device watchdog in s, or 'log_only' (default 1.2; lenient 2.0)",
    "impedance_ohm": "electrode–skin impedance on every channel (default 1000)",
    "latency_s": "execution latency of stimulation commands (default 0.015)",
    "ack_timeout_s": "how long the driver waits for each ack (default 0.25)",
}


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
    params = dict(url.params)
    profile = params.pop("profile", "strict")
    if profile not in ("strict", "lenient"):
        raise InputError(f"sim+sciencemode2 profile must be strict or lenient, not {profile!r}")
    watchdog_text = params.pop("watchdog_s", None)
    numeric = DeviceUrl(url.text, url.scheme, url.target, params)
    impedance_ohm = float_param(numeric, _PARAMS, "impedance_ohm", 1000.0, 1.0, 1e6)
    latency_s = float_param(numeric, _PARAMS, "latency_s", 0.015, 0.0, 0.1)
    ack_timeout_s = float_param(numeric, _PARAMS, "ack_timeout_s", ACK_TIMEOUT_S, 0.01, 10.0)
    watchdog_s = parse_watchdog(watchdog_text)
    plan = options.fault_plan
    if plan is not None and not isinstance(plan, FaultPlan):
        raise InputError(f"fault_plan must be a FaultPlan, got {type(plan).__name__}")
    config = RehaStim2Config(profile="lenient" if profile == "lenient" else "strict",
                             watchdog_s=watchdog_s, execution_latency_s=latency_s)
    device = SimulatedStimulator(rehastim2_spec(config),
                                 BodyModel(8, impedance_ohm))
    pipe = MemorySerialPipe(baud=460800, bits_per_byte=11, description="memory serial 460800 8E1")
    emulator = RehaStim2(device, pipe.device_write, config)
    link = EmulatedLink(emulator, pipe, plan, options.seed)
    return SimulatedScienceModeDriver(link, url=url.text, ack_timeout_s=ack_timeout_s)


def parse_watchdog(text: str | None) -> float | None:
    """``None`` (profile default), a number of seconds, or ``log_only`` (``math.inf``).

    Raises:
        InputError: anything else, or a watchdog that is not positive.
    """
    if text is None:
        return None
    if text.replace("-", "_") == "log_only":
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"watchdog must be seconds or 'log_only', not {text!r}") from None
    if not (math.isfinite(value) and 0 < value <= 60):
        raise InputError(f"watchdog must be within 0–60 s, got {text}")
    return value
