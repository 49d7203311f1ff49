"""``sim+coyote3``: the real Coyote driver wired to the emulated device through an in-memory link.

Every byte the driver writes crosses :class:`~emsctl.simulator.transports.MemoryGattLink` (with
its BLE latency, on the session's clock) into :class:`~emsctl.simulator.devices.coyote3.
EmulatedCoyote`, so the simulator path runs the same driver code as the radio path. A fault plan
is armed against the emulated device on the first ``connect()``.

Extra URL parameters (besides the driver's own): ``battery_pct`` (initial level, default 100),
``impedance_ohm`` (load on both channels, default 1000) and ``frame_grace_ms`` (the emulator's
lenient mode, 0–50, default 0). This module never imports bleak.
"""

from __future__ import annotations

from pydantic import Field

from ...devices import DeviceUrl, OpenOptions
from ...drivers.coyote3.config import (
    MA_PER_STEP_MAX,
    MA_PER_STEP_MIN,
    SIMULATED_BALANCE,
    SIMULATED_MA_PER_STEP,
    CoyoteConfig,
    CoyoteParams,
    parse_coyote_params,
)
from ...drivers.coyote3.driver import CoyoteDriver
from ...drivers.coyote3.frames import BALANCE_MAX
from ...errors import InputError
from ..body import BodyModel
from ..devices.coyote3 import EmulatedCoyote, coyote_device_spec
from ..faults import FaultArming, FaultPlan, simulated_fault_plan
from ..model import SimulatedStimulator
from ..recorder import Recorder
from ..transports import MemoryGattLink

__all__ = ["SimulatedCoyoteDriver", "open_simulated_coyote"]


class SimulatedCoyoteDriver(CoyoteDriver):
    """A :class:`CoyoteDriver` whose link leads to an emulated Coyote.

    Args:
        emulator: the emulated device (its ``server`` is what the link connects to).
        config: the driver's calibration (the emulator should use the same factors).
        fault_plan: faults armed against the emulator on the first connect.
        url: the URL the driver was opened from.

    Raises:
        InputError: a fault plan the emulator cannot carry out.
    """

    def __init__(self, emulator: EmulatedCoyote, config: CoyoteConfig, *,
                 fault_plan: FaultPlan | None = None, url: str = "sim+coyote3") -> None:
        super().__init__(MemoryGattLink(emulator.server), config, url=url)
        self.fault_arming = FaultArming(fault_plan, emulator.faults)
        self.emulator = emulator
        self.device: SimulatedStimulator = emulator.device
        self.recorder = Recorder(emulator.device)

    async def _connect_internal(self) -> None:
        """Connect as the real driver does, then arm the fault plan (first connect only).

        Raises:
            DeviceError: as :meth:`CoyoteDriver._connect_internal`.
        """
        await super()._connect_internal()
        self.fault_arming.arm()

    async def _close_internal(self) -> None:
        """Disarm pending faults, then close as the real driver does."""
        self.fault_arming.disarm()
        await super()._close_internal()


class SimCoyoteParams(CoyoteParams):
    """``sim+coyote3?…`` parameters: the Coyote's own, with the emulated unit's calibration and
    the synthetic profile's balances as defaults, plus the emulation's."""

    ma_per_step: float = Field(SIMULATED_MA_PER_STEP, ge=MA_PER_STEP_MIN, le=MA_PER_STEP_MAX,
                               description=("mA per strength step (default 0.2, the emulated "
                                            "unit's own)"))
    frequency_balance: int = Field(SIMULATED_BALANCE, ge=0, le=BALANCE_MAX, description=(
        "BF frequency balance 0–255 (default 128, the synthetic profile)"))
    intensity_balance: int = Field(SIMULATED_BALANCE, ge=0, le=BALANCE_MAX, description=(
        "BF intensity balance 0–255 (default 128, the synthetic profile)"))
    battery_pct: float = Field(100.0, ge=0.0, le=100.0, description=(
        "initial battery level (default 100)"))
    impedance_ohm: float = Field(1000.0, ge=1.0, le=1e6, description=(
        "load on both channels (default 1000)"))
    frame_grace_ms: float = Field(0.0, ge=0.0, le=50.0, description=(
        "the emulator's lenient frame timing, 0–50 ms (default 0)"))


def open_simulated_coyote(url: DeviceUrl, options: OpenOptions) -> SimulatedCoyoteDriver:
    """Make a driver wired to a fresh emulated Coyote from ``sim+coyote3`` (``?ma_per_step=…``
    and the rest optional).

    Raises:
        InputError: a target, an unknown or bad parameter, or a
            fault plan that is not a :class:`FaultPlan` or that the emulator cannot carry out.
    """
    if url.target:
        raise InputError(f"sim+coyote3 takes no target, got '{url.target}'; use 'sim+coyote3' "
                         "or e.g. 'sim+coyote3?ma_per_step=0.25'")
    p = parse_coyote_params(SimCoyoteParams, url.params, url.scheme)
    config = p.config()
    plan = simulated_fault_plan(options)
    spec = coyote_device_spec(config.ma_per_step, config.us_per_intensity)
    device = SimulatedStimulator(spec, BodyModel(2, p.impedance_ohm), battery_pct=p.battery_pct)
    emulator = EmulatedCoyote(ma_per_step=config.ma_per_step,
                              us_per_intensity=config.us_per_intensity, device=device,
                              frame_grace_ms=p.frame_grace_ms, seed=options.seed)
    return SimulatedCoyoteDriver(emulator, config, fault_plan=plan, url=url.text)
