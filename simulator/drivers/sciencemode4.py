"""``sim+sciencemode4``: the real ScienceMode4 driver wired to the emulated Hasomed P24.

The driver talks through a :class:`~emsctl.simulator.transports.MemorySerialPipe` (3 Mbaud 8N2
wire time, virtual-clock aware) to :class:`~emsctl.simulator.devices.sciencemode4.P24`, so every
byte goes through the same codec and driver code as on a real port. The link is an
:class:`~.serial_emulation.EmulatedSerialLink`: opening it plugs the emulated device in (bus
powered: it switches on) and arms the fault plan; ``at_s`` counts from then. Fault kinds, as for
the RehaStim2 family: byte-level ones on the cable (``corrupt_bytes``: probability per chunk that
one bit flips, default 1; ``drop_frames`` / ``duplicate_frames``: probability per chunk,
default 1); ``disconnect`` pulls the USB cable (the bus-powered P24 switches off at once);
``drop_acks`` / ``late_acks`` / ``busy`` and the body and reset kinds in the emulated device
(``P24.faults``). A battery and a strength control of its own are not part of a P24, so those
kinds are refused.

This module must never be imported by the real-device path; it reads time only from the loop.
"""

from __future__ import annotations

from pydantic import Field

from ...device_params import DeviceParams, parse_params
from ...devices import DeviceUrl, OpenOptions
from ...drivers.sciencemode4.driver import ACK_TIMEOUT_S, ScienceMode4Driver
from ...drivers.sciencemode4.protocol import CHANNEL_COUNT
from ...errors import InputError
from ..body import BodyModel
from ..devices.sciencemode4 import P24, P24Config, p24_spec
from ..faults import simulated_fault_plan
from ..model import SimulatedStimulator
from ..transports import MemorySerialPipe
from .serial_emulation import EmulatedSerialDriver, EmulatedSerialLink

__all__ = ["SimScienceMode4Params", "SimulatedScienceMode4Driver", "open_emulated"]


class SimulatedScienceMode4Driver(ScienceMode4Driver, EmulatedSerialDriver[P24]):
    """The ScienceMode4 driver on an :class:`EmulatedSerialLink`, with the emulated P24 in reach
    (``emulator``, ``device``, ``recorder``: :class:`EmulatedSerialDriver`)."""

    def __init__(self, link: EmulatedSerialLink[P24], *, url: str,
                 ack_timeout_s: float) -> None:
        super().__init__(link, url=url, ack_timeout_s=ack_timeout_s)
        self._reach_emulation(link)


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
    link = EmulatedSerialLink(emulator, pipe, name="P24",
                              unplugged="USB cable pulled (fault plan)", fault_plan=plan,
                              seed=options.seed)
    return SimulatedScienceMode4Driver(link, url=url.text, ack_timeout_s=params.ack_timeout_s)
