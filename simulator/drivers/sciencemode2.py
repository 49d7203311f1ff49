"""``sim+sciencemode2``: the real ScienceMode2 driver wired to the emulated RehaStim2.

The driver talks through a :class:`~emsctl.simulator.transports.MemorySerialPipe` (460800 baud
8E1 wire time, virtual-clock aware) to :class:`~emsctl.simulator.devices.sciencemode2.RehaStim2`,
so every byte goes through the same codec and driver code as on a real port. The link is an
:class:`~.serial_emulation.EmulatedSerialLink`: opening it switches the emulated device on and
arms the fault plan; ``at_s`` counts from then. Fault kinds: byte-level ones on the cable
(``corrupt_bytes``: probability per chunk that one bit flips, default 1; ``drop_frames`` /
``duplicate_frames``: probability per chunk, default 1), ``disconnect`` cuts the cable (the
device does not notice; its watchdog ends output), and ``drop_acks`` / ``late_acks`` / ``busy``
and the body and reset kinds in the emulated device (``RehaStim2.faults``).

This module must never be imported by the real-device path; it reads time only from the loop.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator

from ...device_params import DeviceParams, parse_params
from ...devices import DeviceUrl, OpenOptions
from ...drivers.sciencemode2.driver import ACK_TIMEOUT_S, ScienceModeDriver
from ...errors import InputError
from ..body import BodyModel
from ..devices.sciencemode2 import RehaStim2, RehaStim2Config, rehastim2_spec
from ..faults import simulated_fault_plan
from ..model import SimulatedStimulator
from ..transports import MemorySerialPipe
from .serial_emulation import EmulatedSerialDriver, EmulatedSerialLink

__all__ = ["SimScienceModeParams", "SimulatedScienceModeDriver", "open_emulated"]


class SimulatedScienceModeDriver(ScienceModeDriver, EmulatedSerialDriver[RehaStim2]):
    """The ScienceMode2 driver on an :class:`EmulatedSerialLink`, with the emulated RehaStim2
    in reach (``emulator``, ``device``, ``recorder``: :class:`EmulatedSerialDriver`)."""

    def __init__(self, link: EmulatedSerialLink[RehaStim2], *, url: str,
                 ack_timeout_s: float) -> None:
        super().__init__(link, url=url, ack_timeout_s=ack_timeout_s)
        self._reach_emulation(link)


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
    link = EmulatedSerialLink(emulator, pipe, name="RehaStim2",
                              unplugged="cable pulled (fault plan)", fault_plan=plan,
                              seed=options.seed)
    return SimulatedScienceModeDriver(link, url=url.text, ack_timeout_s=p.ack_timeout_s)
