"""The openEMSstim driver wired to an emulated board: what ``sim+openems`` and
``sim+openems+ble`` open.

:class:`SimulatedOpenEmsDriver` is the real :class:`~.driver.OpenEmsDriver` (every byte goes
through the same code as on hardware) plus handles for tests and the runner: ``device`` (the
simulator model that records the output), ``recorder``, ``emulator`` (the board) and ``front``
(its transport, which is also the fault target). A fault plan is armed on the first
``connect()``, so its ``at_s`` counts from then, and disarmed on ``close()``.

Imported only when a simulated device is opened.
"""

from __future__ import annotations

import asyncio

from ...errors import InputError
from ...simulator.devices.openems import ExternalStimulator, OpenEmsBoard
from ...simulator.devices.openems_front import Rn4020Front, UsbSerialFront
from ...simulator.faults import ArmedFaultPlan, FaultPlan
from ...simulator.model import SimulatedStimulator
from ...simulator.recorder import Recorder
from .driver import OpenEmsDriver
from .params import DeclaredStimulator
from .transport import CommandLink

__all__ = ["SimulatedOpenEmsDriver", "external_for"]


def external_for(declared: DeclaredStimulator) -> ExternalStimulator:
    """The emulated external stimulator that matches the user's declaration exactly."""
    return ExternalStimulator(declared.frequency_hz, declared.pulse_width_us,
                              declared.ma_at_100)


class SimulatedOpenEmsDriver(OpenEmsDriver):
    """:class:`OpenEmsDriver` on an emulated board.

    Args:
        link: the transport (over the front's in-memory link).
        declared: the declared external stimulator.
        front: the board's transport front, which carries out the fault plan.
        url: the device URL.
        fault_plan: faults to arm on the first ``connect()``.

    Raises:
        InputError: a fault plan that is not a :class:`FaultPlan` or that the board cannot
            carry out.
    """

    def __init__(self, link: CommandLink, declared: DeclaredStimulator,
                 front: UsbSerialFront | Rn4020Front, *, url: str = "",
                 fault_plan: object = None) -> None:
        transport_name = "BLE" if isinstance(front, Rn4020Front) else "serial"
        super().__init__(link, declared, url=url, simulated=True, transport_name=transport_name)
        if fault_plan is not None:
            if not isinstance(fault_plan, FaultPlan):
                raise InputError(f"fault_plan must be a FaultPlan, got "
                                 f"{type(fault_plan).__name__}")
            fault_plan.check(front.supported_fault_kinds, front.fault_channels)
        self.fault_plan: FaultPlan | None = fault_plan
        self.front = front
        self.emulator: OpenEmsBoard = front.board
        self.device: SimulatedStimulator = front.board.device
        self.recorder = Recorder(self.device)
        self._armed: ArmedFaultPlan | None = None

    async def _connect_internal(self) -> None:
        """Connect as on hardware, then arm the fault plan (first time only).

        Raises:
            DeviceError: the link cannot be opened, or it was lost earlier.
        """
        await super()._connect_internal()
        if self.fault_plan is not None and self._armed is None:
            self._armed = self.fault_plan.schedule(asyncio.get_running_loop(), self.front)

    async def _close_internal(self) -> None:
        """Disarm faults, then close as on hardware."""
        if self._armed is not None:
            self._armed.cancel()
        await super()._close_internal()
