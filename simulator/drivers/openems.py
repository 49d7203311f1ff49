"""The openEMSstim driver wired to an emulated board: what ``sim+openems`` and
``sim+openems+ble`` open.

:class:`SimulatedOpenEmsDriver` is the real :class:`~.driver.OpenEmsDriver` (every byte goes
through the same code as on hardware) plus handles for tests and the runner: ``device`` (the
simulator model that records the output), ``recorder``, ``emulator`` (the board) and ``front``
(its transport, whose ``faults`` is the fault target). A fault plan is armed on the first
``connect()``, so its ``at_s`` counts from then, and disarmed on ``close()``.

Imported only when a simulated device is opened.
"""

from __future__ import annotations

from pydantic import Field

from ...devices import DeviceUrl, OpenOptions
from ...drivers.openems.driver import OpenEmsDriver
from ...drivers.openems.params import (
    DECLARED_KEYS,
    DeclaredParams,
    DeclaredStimulator,
    parse_openems_params,
)
from ...drivers.openems.protocol import Firmware
from ...drivers.openems.transport import READY_TIMEOUT_S, BleLines, CommandLink, SerialLines
from ...errors import InputError
from ...limit_table import (
    FREQUENCY_MAX_CEILING_HZ,
    FREQUENCY_MIN_CEILING_HZ,
    PEAK_CEILING_MA,
    PULSE_WIDTH_MAX_CEILING_US,
    PULSE_WIDTH_MIN_CEILING_US,
)
from ..devices.openems import BOOT_S, ExternalStimulator, OpenEmsBoard, OpenEmsConfig
from ..devices.openems_front import Rn4020Front, UsbSerialFront
from ..faults import FaultArming, as_fault_plan, simulated_fault_plan
from ..model import SimulatedStimulator
from ..recorder import Recorder
from ..transports import MemoryGattLink

__all__ = ["SimulatedOpenEmsDriver", "external_for", "open_simulated", "open_simulated_ble"]


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
        super().__init__(link, declared, url=url, transport_name=transport_name)
        self.fault_arming = FaultArming(as_fault_plan(fault_plan), front.faults)
        self.front = front
        self.emulator: OpenEmsBoard = front.board
        self.device: SimulatedStimulator = front.board.device
        self.recorder = Recorder(self.device)

    async def _connect_internal(self) -> None:
        """Connect as on hardware, then arm the fault plan (first time only).

        Raises:
            DeviceError: the link cannot be opened, or it was lost earlier.
        """
        await super()._connect_internal()
        self.fault_arming.arm()

    async def _close_internal(self) -> None:
        """Disarm faults, then close as on hardware."""
        self.fault_arming.disarm()
        await super()._close_internal()


# ---------------------------------------------------------------------- factories


#: The emulated board's own external stimulator (a TENS unit at its usual setting), so that
#: ``sim+openems`` needs no parameters: 16 mA at I = 100 (20.2 mA at full scale, within the
#: synthetic person's cap), 80 Hz, 180 µs.
SIMULATED_STIMULATOR = {"ma_at_100": 16.0, "frequency_hz": 80.0, "pulse_width_us": 180.0}


class BoardParams(DeclaredParams):
    """What every simulated openEMSstim URL may say about the emulated board; the external
    stimulator behind it defaults to :data:`SIMULATED_STIMULATOR`."""

    ma_at_100: float = Field(SIMULATED_STIMULATOR["ma_at_100"], ge=0.1, le=PEAK_CEILING_MA,
                             description=DECLARED_KEYS["ma_at_100"].replace(
                                 "(required)", "(default 16)"))
    frequency_hz: float = Field(SIMULATED_STIMULATOR["frequency_hz"],
                                ge=FREQUENCY_MIN_CEILING_HZ, le=FREQUENCY_MAX_CEILING_HZ,
                                description=DECLARED_KEYS["frequency_hz"].replace(
                                    "(required)", "(default 80)"))
    pulse_width_us: float = Field(SIMULATED_STIMULATOR["pulse_width_us"],
                                  ge=PULSE_WIDTH_MIN_CEILING_US, le=PULSE_WIDTH_MAX_CEILING_US,
                                  description=DECLARED_KEYS["pulse_width_us"].replace(
                                      "(required)", "(default 180)"))

    debug: bool = Field(True, description="the board prints its debug lines: 1 or 0 (default 1)")
    firmware: Firmware = Field(Firmware.CURRENT, description="current or legacy (default current)")
    boot_s: float = Field(BOOT_S, ge=0.0, le=60.0, description=(
        "setup time after a reset, 0–60 s (default 11.4)"))
    loop_ms: float = Field(1.0, ge=0.01, le=100.0, description="main-loop period, ms (default 1)")
    blocking: bool = Field(True, description=(
        "model the 50 ms blocking waits: 1 or 0 (default 1)"))
    impedance_ohm: float = Field(1000.0, ge=1.0, le=1e6, description=(
        "electrode–skin impedance (default 1000)"))

    def board(self) -> OpenEmsBoard:
        """The emulated board these parameters describe; its external stimulator is exactly
        the declared one."""
        config = OpenEmsConfig(external_for(self.declared()), firmware=self.firmware,
                               debug=self.debug, loop_ms=self.loop_ms,
                               model_blocking=self.blocking, boot_s=self.boot_s,
                               impedance_ohm=self.impedance_ohm)
        return OpenEmsBoard(config)


class SimSerialParams(BoardParams):
    """``sim+openems?…`` parameters: the real serial driver's, plus the emulated board's."""

    ready_timeout_s: float = Field(READY_TIMEOUT_S, ge=0.0, le=60.0, description=(
        "how long to wait for the setup banner after opening (default 12)"))


class SimBleParams(BoardParams):
    """``sim+openems+ble?…`` parameters."""

    name: str = Field("openEMSstim01", min_length=1, max_length=20, description=(
        "the advertised name (default openEMSstim01)"))


def open_simulated(url: DeviceUrl, options: OpenOptions) -> SimulatedOpenEmsDriver:
    """``sim+openems?ma_at_100=…&frequency_hz=…&pulse_width_us=…``: serial to an emulated board.

    Raises:
        InputError: a target, a bad parameter, or a fault plan the board cannot carry out.
    """
    _no_target(url)
    p = parse_openems_params(SimSerialParams, url.params, url.scheme)
    front = UsbSerialFront(p.board(), seed=options.seed)
    lines = SerialLines(front.link, p.ready_timeout_s)
    driver = SimulatedOpenEmsDriver(lines, p.declared(), front, url=url.text,
                                    fault_plan=simulated_fault_plan(options))
    lines.on_reset = driver.board_reset
    lines.on_mismatch = driver.echo_mismatch
    return driver


def open_simulated_ble(url: DeviceUrl, options: OpenOptions) -> SimulatedOpenEmsDriver:
    """``sim+openems+ble?ma_at_100=…&…``: BLE writes to an emulated board's RN4020.

    Raises:
        InputError: a target, a bad parameter, or a fault plan the board cannot carry out.
    """
    _no_target(url)
    p = parse_openems_params(SimBleParams, url.params, url.scheme)
    front = Rn4020Front(p.board(), name=p.name, seed=options.seed)
    return SimulatedOpenEmsDriver(BleLines(MemoryGattLink(front.server)), p.declared(), front,
                                  url=url.text, fault_plan=simulated_fault_plan(options))


def _no_target(url: DeviceUrl) -> None:
    if url.target:
        raise InputError(f"{url.scheme} takes no target, got '{url.target}'")
