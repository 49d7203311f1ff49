"""The default ``sim`` driver: the driver contract over a :class:`SimulatedStimulator`, no bytes.

``open_device("sim?channels=2&impedance_ohm=800")`` returns a :class:`SimDriver`. Every
``apply`` reaches the device at once and waits for its ack, which comes on the next loop turn —
or late, or never, as the fault plan says — with an ack timeout and one retry; a retry is never
sent after a stop (HZ-03), nor once the first send's lease has run out (the device's watchdog
has switched the output off, and a resend would switch it back on at once: L14). ``stop``
zeroes the device synchronously, before any await, so it never waits behind a pending apply. A
``disconnect`` fault cuts the link: the host sees ``link_lost``, later commands raise
:class:`~emsctl.errors.LinkLostError`, and the device — which, like a pulled serial cable, does
not notice — falls silent by its own watchdog at the lease end (L21); the host never zeroes it
on the device's behalf.

This module must never import pyserial or bleak, and reads time only from the running loop.
"""

from __future__ import annotations

import asyncio
import math
from functools import partial

from pydantic import Field

from ...contract import Capabilities, ChannelSetpoint, Driver, Telemetry, TelemetryKind
from ...device_params import DeviceParams, parse_params
from ...devices import DeviceUrl, OpenOptions
from ...errors import DeviceError, DeviceTimeoutError, InputError, LinkLostError
from ..body import BodyModel
from ..fault_targets import DeviceFaultInjector, FaultRouter, Route, while_active
from ..faults import DEVICE_FAULT_KINDS, Fault, FaultArming, FaultPlan, simulated_fault_plan
from ..model import DeviceEvent, DeviceSpec, SimulatedStimulator
from ..recorder import Recorder

__all__ = ["SIM_FAULT_KINDS", "SimDriver", "open_sim"]

#: Fault kinds the direct simulator can inject (no bytes, so no byte-level kinds).
SIM_FAULT_KINDS: frozenset[str] = DEVICE_FAULT_KINDS | {"disconnect", "drop_acks", "late_acks"}
#: Device events the host hears about, as telemetry of the same kind.
_FORWARDED: dict[str, TelemetryKind] = {
    "electrode_off": "electrode_off",
    "electrode_ok": "electrode_ok",
    "battery": "battery",
    "device_error": "device_error",
    "device_reset": "device_reset",
    "strength": "strength",
}
_TELEMETRY = frozenset({"ack", "link_lost", *_FORWARDED.values()})
DEFAULT_ACK_TIMEOUT_S = 0.3
ACK_RETRIES = 1


class SimDriver(Driver):
    """A driver wired straight to a simulated device.

    Args:
        device: the device; by default a 4-channel :class:`SimulatedStimulator` that does not
            notice a lost link (its watchdog is what zeroes it).
        fault_plan: faults armed on the first ``connect()``; ``at_s`` counts from then.
        ack_timeout_s: how long to wait for each ack before the one retry.
        url: the URL the driver was opened from, for the journal.

    Raises:
        InputError: a fault plan this driver cannot inject, or a non-positive ack timeout.
    """

    def __init__(self, device: SimulatedStimulator | None = None, *,
                 fault_plan: FaultPlan | None = None,
                 ack_timeout_s: float = DEFAULT_ACK_TIMEOUT_S, url: str = "sim") -> None:
        super().__init__()
        if not (math.isfinite(ack_timeout_s) and ack_timeout_s > 0):
            raise InputError(f"ack timeout must be positive, got {ack_timeout_s} s")
        self.device = device or SimulatedStimulator(DeviceSpec(zero_on_disconnect=False))
        self.recorder = Recorder(self.device)
        self.url = url
        self.ack_timeout_s = ack_timeout_s
        spec = self.device.spec
        self.capabilities = Capabilities(
            model="emsctl simulator",
            channels=spec.channels,
            amplitude_max_ma=spec.amplitude_max_ma,
            amplitude_step_ma=0.1,
            pulse_width_min_us=spec.pulse_width_min_us,
            pulse_width_max_us=spec.pulse_width_max_us,
            frequency_min_hz=spec.frequency_min_hz,
            frequency_max_hz=spec.frequency_max_hz,
            frequency_per_channel=True,
            update_period_s=0.1,
            max_lease_s=spec.watchdog_s,
            has_output_watchdog=True,
            telemetry=_TELEMETRY,
            bursts=True,
        )
        self._link_up = False
        self._listening = False
        self._dropping_acks: list[Fault] = []
        self._late_acks: list[Fault] = []
        self._pending: dict[asyncio.Future[bool], asyncio.Handle | None] = {}
        #: The fault target: the link and the acks here, the rest on the device.
        self.faults = FaultRouter(SIM_FAULT_KINDS, spec.channels, {
            "disconnect": Route(lambda _fault: self._lose_link()),
            "drop_acks": while_active(self._dropping_acks),
            "late_acks": while_active(self._late_acks),
        }, rest=DeviceFaultInjector(self.device).route())
        self.fault_arming = FaultArming(fault_plan, self.faults)

    @property
    def link_up(self) -> bool:
        """True between ``connect()`` and a lost link or ``close()``."""
        return self._link_up

    # ------------------------------------------------------------------ driver hooks

    async def _connect_internal(self) -> None:
        """Bring the link up, leave every output at zero, arm the fault plan (first time only).

        Raises:
            InputError: the fault plan cannot be armed.
        """
        self.device.connect()
        self.device.stop()  # the handshake leaves every output at 0
        self._link_up = True
        if not self._listening:
            self.device.add_listener(self._on_device_event)
            self._listening = True
        self.fault_arming.arm()

    async def _apply_internal(self, setpoints: tuple[ChannelSetpoint, ...], lease_s: float) -> None:
        """Send the setpoints and wait for the ack; retry once on timeout.

        Raises:
            LinkLostError: the link is gone (before or while waiting).
            DeviceError: the device refused the setpoints (it zeroed and reported device_error).
            DeviceTimeoutError: no ack after the retry, or no ack before the lease ran out
                (the retry is not sent: the device's watchdog has switched the output off).
        """
        output = any(sp.amplitude_ma > 0 for sp in setpoints)
        output_until_s = math.inf  # when the first send's lease runs out
        for _ in range(1 + ACK_RETRIES):
            if self.stopped:
                return  # HZ-03: a stop came in while we waited; never resend after it
            if not self._link_up:
                raise LinkLostError("the link to the simulated device is lost")
            if self._now() >= output_until_s:
                # L14/L21: the lease ran out while we waited for the ack, so the device's
                # watchdog has switched the output off; a resend would switch it back on at
                # once, from a level nobody saw being delivered
                raise DeviceTimeoutError(
                    f"the simulated device did not ack within {self.ack_timeout_s:g} s, and the "
                    "lease ran out meanwhile, so its watchdog switched the output off; the "
                    "command is not sent again")
            ack = self._send(setpoints, lease_s)
            if output and output_until_s == math.inf:
                output_until_s = self._now() + lease_s
            try:
                accepted = await asyncio.wait_for(ack, self.ack_timeout_s)
            except TimeoutError:
                continue
            except DeviceError:
                if self.stopped:
                    return  # stopped, then lost or closed: the stop's own outcome stands
                raise
            if not accepted:
                raise DeviceError("the simulated device refused the setpoints and zeroed "
                                  "its outputs")
            return
        if self.stopped:
            return
        raise DeviceTimeoutError(f"the simulated device did not ack within "
                                 f"{self.ack_timeout_s:g} s ({1 + ACK_RETRIES} tries)")

    async def _stop_internal(self) -> None:
        """Zero the device now, before any await.

        Raises:
            LinkLostError: the link is gone; the device's watchdog zeroes it at the lease end.
        """
        if not self._link_up:
            raise LinkLostError("link lost: the stop cannot reach the simulated device; its "
                                "watchdog zeroes the output at the lease end (L21)")
        self.device.stop()

    async def _close_internal(self) -> None:
        """Disarm faults, drop pending acks and stop listening. The device keeps its record."""
        self.fault_arming.disarm()
        self._link_up = False
        self._fail_pending(DeviceError("the driver was closed"))
        if self._listening:
            self.device.remove_listener(self._on_device_event)
            self._listening = False

    # ------------------------------------------------------------------ internals

    def _send(self, setpoints: tuple[ChannelSetpoint, ...], lease_s: float
              ) -> asyncio.Future[bool]:
        """Hand the command to the device now; return the future its ack will resolve."""
        loop = asyncio.get_running_loop()
        accepted = self.device.set_outputs(setpoints, lease_s)
        ack: asyncio.Future[bool] = loop.create_future()
        handle: asyncio.Handle | None = None  # dropped: the ack never comes
        if not self._dropping_acks:
            delay_s = max((f.value or 0.0 for f in self._late_acks), default=0.0)
            deliver = partial(self._deliver_ack, ack, accepted)
            handle = loop.call_later(delay_s, deliver) if delay_s > 0 else loop.call_soon(deliver)
        self._pending[ack] = handle
        ack.add_done_callback(self._forget)
        return ack

    def _forget(self, ack: asyncio.Future[bool]) -> None:
        self._pending.pop(ack, None)

    def _deliver_ack(self, ack: asyncio.Future[bool], accepted: bool) -> None:
        if not self._link_up:
            return  # nothing reaches the host over a lost link
        self._pending.pop(ack, None)
        if not ack.done():
            ack.set_result(accepted)
        self._emit(Telemetry("ack", self._now(), value=1.0 if accepted else 0.0,
                             message="accepted" if accepted else "refused"))

    def _lose_link(self) -> None:
        if not self._link_up:
            return
        self._link_up = False
        self.device.disconnect()  # the device zeroes only if it notices; else its watchdog does
        self._fail_pending(LinkLostError("the link to the simulated device was lost"))
        self._emit(Telemetry("link_lost", self._now(),
                             message="link to the simulated device lost"))

    def _fail_pending(self, error: DeviceError) -> None:
        for ack, handle in list(self._pending.items()):
            if handle is not None:
                handle.cancel()
            if not ack.done():
                ack.set_exception(error)
        self._pending.clear()

    def _on_device_event(self, event: DeviceEvent) -> None:
        kind = _FORWARDED.get(event.kind)
        if kind is None or not self._link_up:
            return
        now_s = self._now()
        self._emit(Telemetry(kind, now_s, event.channel, event.value, event.message))
        if kind == "strength" and event.channel is not None and event.value is not None:
            # HZ-01: the device is the source of truth; a strength above what the host asked
            # for (someone turned the device's own knob) ends the session, as on the Coyote
            asked_ma = self.last_applied[event.channel - 1].amplitude_ma \
                if len(self.last_applied) >= event.channel else 0.0
            if event.value > asked_ma + 1e-9:
                self._emit(Telemetry("device_error", now_s, event.channel, event.value,
                                     f"the device reports {event.value:g} mA on channel "
                                     f"{event.channel}, above the {asked_ma:g} mA asked for"))


# ---------------------------------------------------------------------- factory

class SimParams(DeviceParams):
    """``sim?…`` parameters."""

    channels: int = Field(4, ge=1, le=8, description="number of channels, 1–8 (default 4)")
    impedance_ohm: float = Field(1000.0, ge=1.0, le=1e6, description=(
        "electrode–skin impedance on every channel (default 1000)"))
    compliance_v: float = Field(100.0, ge=1.0, le=150.0, description=(
        "compliance voltage, ≤ 150 V (default 100, limit L5)"))
    watchdog_s: float = Field(1.0, ge=0.01, le=1.0, description=(
        "device watchdog = longest lease, ≤ 1.0 s (default 1.0, limit L21)"))
    ack_timeout_s: float = Field(DEFAULT_ACK_TIMEOUT_S, ge=0.001, le=10.0, description=(
        "how long the driver waits for each ack (default 0.3)"))
    battery_pct: float = Field(100.0, ge=0.0, le=100.0, description=(
        "initial battery charge (default 100)"))


def open_sim(url: DeviceUrl, options: OpenOptions) -> SimDriver:
    """Make a :class:`SimDriver` from ``sim?key=value&…`` (strict parameters).

    Raises:
        InputError: a target, an unknown or malformed parameter, a value out of range, or a
            fault plan that is not a :class:`FaultPlan` or that this driver cannot inject.
    """
    if url.target:
        raise InputError(f"the simulator takes no target, got '{url.target}'; use e.g. "
                         "'sim?channels=2'")
    p = parse_params(SimParams, url.params, "sim")
    plan = simulated_fault_plan(options)
    spec = DeviceSpec(channels=p.channels, watchdog_s=p.watchdog_s, compliance_v=p.compliance_v,
                      zero_on_disconnect=False)
    device = SimulatedStimulator(spec, BodyModel(p.channels, p.impedance_ohm),
                                 battery_pct=p.battery_pct)
    return SimDriver(device, fault_plan=plan, ack_timeout_s=p.ack_timeout_s, url=url.text)
