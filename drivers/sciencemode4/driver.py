"""The ScienceMode4 host driver (Hasomed P24) over any :class:`~..links.base.ByteLink`.

Follows ``docs/protocols/sciencemode4.md`` §9–§10 and §14. Connect: Get_stim_status (a level a
dead host left running is stopped first: Ll_stop or Ml_stop), Get_device_id and
Get_extended_version (reported in the ``connected`` telemetry, so the journal has them), then
Ml_init with "stop every channel on any error". Apply: one Ml_update per change (each channel its
own period, a balanced biphasic pulse as two points), or an Ml_get_current_data poll when
nothing changed; a poll also runs before an update when the last one is older than
:data:`POLL_S`. A poll's channel states become telemetry: an electrode error is
``electrode_off`` (the P24 has already stopped every channel), a pulse timeout or too little
voltage is a ``device_error``; result 7 ("not initialised") means the device left mid level
behind the host's back (a reset) and is a ``device_reset``; a configured channel that stopped
without an error state means the device's own timeout ran out.

One command is outstanding at a time, each with its ack timeout (:data:`ACK_TIMEOUT_S`) and one
resend (every command the driver sends is absolute and idempotent). The exception is the stop
(HZ-03, L22): ``_stop_internal`` writes Ml_stop in its first step, without the command lock, so
it never waits behind an update that waits for its ack; an update is never written or resent
after a stop, and the device executes frames in the order they arrive, so the stop wins. If
Ml_stop is not acknowledged (one resend, then Get_stim_status), the driver falls silent.

The lease (L21): the P24's own mid-level timeout is fixed at 2 s (docs/protocols/sciencemode4.md §9)
and cannot be shortened. The host keeps the device alive only while the session's lease holds: each
``apply`` renews it (by the update or the poll it sends), there is no keep-alive of the driver's
own, and when a lease runs out without a renewal the driver sends Ml_stop itself. If the host dies,
nothing renews and the device's 2 s timeout ends output (SAFETY.md, L21's documented deviation).

This module must never import pyserial (the serial link does, lazily), the simulator, or read
the wall clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import Field

from ...contract import Capabilities, ChannelSetpoint, Telemetry
from ...device_params import DeviceParams, parse_params
from ...devices import DeviceUrl, OpenOptions
from ...errors import DeviceError, DeviceTimeoutError, InputError, LinkLostError
from ..links.base import ByteLink
from ..sciencemode.acks import Aborted
from ..sciencemode.host import PacketFrame, ScienceModeHost
from . import mapping
from . import protocol as p
from .prepared import Frames, PreparedUpdate, PreparedUpdates

__all__ = ["ACK_TIMEOUT_S", "DEVICE_TIMEOUT_S", "MAX_LEASE_S", "POLL_S", "TELEMETRY",
           "UPDATE_PERIOD_S", "DeviceInfo", "ScienceMode4Driver", "ScienceMode4Params",
           "capabilities", "open_serial"]

#: [emsctl rule] How long to wait for each ack; the emulator answers within 5 ms, USB CDC
#: adds a few ms, the rest is room for a loaded host.
ACK_TIMEOUT_S = 0.25
#: The P24's fixed mid-level timeout (docs/protocols/sciencemode4.md §9): the fallback when the host
#: is gone.
DEVICE_TIMEOUT_S = 2.0
#: The longest lease the driver accepts (L21), well inside the device's 2 s.
MAX_LEASE_S = 1.0
#: [emsctl rule] At most one update per 100 ms (docs/protocols/sciencemode4.md §14).
UPDATE_PERIOD_S = 0.1
#: A poll (Ml_get_current_data) at least this often while output runs: how soon an electrode
#: error is seen even while every tick changes the output (ramps).
POLL_S = 0.25
TELEMETRY = frozenset({"connected", "ack", "stopped", "electrode_off", "device_error",
                       "device_reset", "link_lost"})
_RESENDS = 1
_STATE_TEXT = {
    p.ChannelState.ELECTRODE_ERROR: "electrode error (check the pads)",
    p.ChannelState.PULSE_TIMEOUT: "pulse timeout (the period cannot hold the pulse)",
    p.ChannelState.PULSE_LOW_CURRENT: "pulse low current (the voltage is too low for the "
                                      "current: check the pads)",
}


def capabilities() -> Capabilities:
    """What a P24 can do through ScienceMode4 mid level
    (docs/protocols/sciencemode4.md §6, §11, §14)."""
    return Capabilities(
        model="Hasomed P24 (ScienceMode4)", channels=p.CHANNEL_COUNT,
        amplitude_max_ma=mapping.DEVICE_MAX_CURRENT_MA,
        amplitude_step_ma=mapping.AMPLITUDE_STEP_MA,
        pulse_width_min_us=float(mapping.MIN_PHASE_US),
        pulse_width_max_us=float(mapping.MAX_PHASE_US),
        frequency_min_hz=mapping.FREQUENCY_MIN_HZ, frequency_max_hz=mapping.FREQUENCY_MAX_HZ,
        frequency_per_channel=True, update_period_s=UPDATE_PERIOD_S, max_lease_s=MAX_LEASE_S,
        has_output_watchdog=True, telemetry=TELEMETRY, bursts=False,
        rate_ratio=mapping.largest_rate_ratio,
    )


@dataclass(frozen=True)
class DeviceInfo:
    """What the P24 says about itself at connect."""

    device_id: str
    firmware_version: tuple[int, int, int]
    sciencemode_version: tuple[int, int, int]
    firmware_hash: int

    def describe(self) -> str:
        """One line for the journal."""
        return (f"Hasomed P24 id {self.device_id}, firmware "
                f"{'.'.join(map(str, self.firmware_version))}, ScienceMode "
                f"{'.'.join(map(str, self.sciencemode_version))}, firmware hash "
                f"{self.firmware_hash:08x}")


class ScienceMode4Driver(ScienceModeHost[p.Message]):
    """A P24 in ScienceMode4 mid level behind a byte link.

    Args:
        link: the serial port, pty or in-memory pipe (opened by :meth:`connect`).
        url: the URL the driver was opened from, for the journal.
        ack_timeout_s: how long to wait for each ack.

    Raises:
        InputError: a non-positive ack timeout.
    """

    device_name = "P24"

    def delivered_frequency_hz(self, frequency_hz: float) -> float:
        """The rate of the period word the frequency becomes (0.5 ms steps)."""
        return mapping.delivered_frequency_hz(frequency_hz)

    def __init__(self, link: ByteLink, *, url: str = "",
                 ack_timeout_s: float = ACK_TIMEOUT_S) -> None:
        super().__init__(link, url=url, ack_timeout_s=ack_timeout_s, decoder=p.FrameDecoder(),
                         decode=p.decode_frame)
        if not (math.isfinite(ack_timeout_s) and ack_timeout_s > 0):
            raise InputError(f"ack timeout must be positive, got {ack_timeout_s} s")
        self.capabilities = capabilities()
        self.info: DeviceInfo | None = None
        self._pn = 0
        self._initialised = False  # Ml_init done and not undone by an Ml_stop
        #: The blocks of the last accepted Ml_update that the device is running (empty: none).
        self._running: dict[int, p.MlChannelConfig] = {}
        self._last_poll_s = -math.inf
        self._prepared = PreparedUpdates()

    # ------------------------------------------------------------------ driver hooks

    async def _connect_internal(self) -> None:
        """Open the link, stop whatever level a dead host left, read the identity, Ml_init.

        Raises:
            DeviceError: the port cannot be opened, nothing answers like a P24, or the device
                refused a command of the handshake.
        """
        if self._silenced or self._lost:
            raise DeviceError("the link to the P24 was given up after a fault; open the device "
                              "again")
        await self._open_link()
        self._fault = None
        async with self._lock:
            try:
                status = await self._command(p.Command.GET_STIM_STATUS, Frames.GET_STIM_STATUS,
                                             "Get_stim_status")
            except DeviceTimeoutError:
                raise DeviceError(f"no answer from a P24 on {self.link.description} within "
                                  f"{self.ack_timeout_s:g} s; is it plugged in, and is this "
                                  "its port? ('emsctl devices' lists the candidates)") from None
            assert isinstance(status, p.GetStimStatusAck)
            if status.stim_status == p.StimStatus.LOW_LEVEL:
                await self._command(p.Command.LL_STOP, Frames.LL_STOP, "Ll_stop")
            elif status.stim_status != p.StimStatus.NONE:
                await self._command(p.Command.ML_STOP, Frames.ML_STOP, "Ml_stop")
            self._initialised, self._running = False, {}
            ident = await self._command(p.Command.GET_DEVICE_ID, Frames.GET_DEVICE_ID,
                                        "Get_device_id")
            version = await self._command(p.Command.GET_EXTENDED_VERSION,
                                          Frames.GET_EXTENDED_VERSION, "Get_extended_version")
            assert isinstance(ident, p.GetDeviceIdAck)
            assert isinstance(version, p.GetExtendedVersionAck)
            self.info = DeviceInfo(ident.text, version.firmware_version,
                                   version.sciencemode_version, version.firmware_hash)
            await self._ml_init()
        self._tell("connected", self.info.describe())

    async def _apply_internal(self, setpoints: tuple[ChannelSetpoint, ...], lease_s: float) -> None:
        """Send the setpoints as one Ml_update, or renew them with a poll if unchanged.

        Raises:
            InputError: pulses the device cannot make together (its load limit,
            docs/protocols/sciencemode4.md §8). LinkLostError: the link is gone. DeviceError: the
            device refused a command, reset, timed out by itself, or reported
                a pulse timeout or low current.
            DeviceTimeoutError: no ack after the resend.
        """
        update = self._prepared.get(setpoints)
        configs = update.configs
        if configs and not update.load < mapping.LOAD_LIMIT:  # mapping.within_load_limit
            raise InputError(f"the P24 cannot make these pulses together: load "
                             f"{update.load:.0f} of at most "
                             f"{mapping.LOAD_LIMIT:g} (Σ (pulse µs + 60) / period ms)")
        if configs and self._fault is not None:
            raise DeviceError(self._fault)
        self._check_link()
        try:
            async with self._lock:
                if self.stopped:
                    return
                if not configs:
                    self._cancel_lease()
                    if self._running:
                        await self._update(update)
                    return
                sent_s = self._now()
                if not self._initialised:
                    await self._ml_init()
                unchanged = configs is self._running or configs == self._running
                due = unchanged or sent_s - self._last_poll_s >= POLL_S
                if self._running and due and not await self._poll():
                    return  # an electrode error: reported, the session pauses
                if not unchanged:
                    await self._update(update)
                if self.stopped:
                    return  # the stop that came meanwhile stands
                self._arm_lease(sent_s + lease_s)
                self._tell("ack", update.text, value=1.0)
        except Aborted:
            return

    async def _stop_internal(self) -> None:
        """Put Ml_stop on the wire now and wait for its ack.

        Raises:
            LinkLostError: the link is gone; the P24's 2 s timeout ends output.
            DeviceError: the stop was not confirmed; the driver has fallen silent so that the
                P24's 2 s timeout ends output.
        """
        self._cancel_lease()
        if self._lost:
            raise LinkLostError(f"link lost: the stop cannot reach the P24; its "
                                f"{DEVICE_TIMEOUT_S:g} s timeout ends output")
        if self._silenced:
            raise DeviceError(f"the driver has fallen silent after a fault "
                              f"({self._silence_reason}); the P24's {DEVICE_TIMEOUT_S:g} s "
                              "timeout ends output")
        if not self._opened:
            return  # never connected: the device makes no output
        try:
            await self._stop_on_wire()
        except LinkLostError:
            raise
        except DeviceError as exc:
            self._fall_silent(f"stop not confirmed: {exc}")
            raise DeviceError(f"the P24 did not confirm the stop ({exc}); emsctl stopped "
                              f"talking to it, so its {DEVICE_TIMEOUT_S:g} s timeout ends "
                              "output") from exc
        self._tell("stopped", "output stopped (Ml_stop acknowledged)")

    async def _close_internal(self) -> None:
        """Cancel the lease timer, fail pending acks, close the link."""
        self._cancel_lease()
        self._acks.fail_all(DeviceError("the driver was closed"))
        self._opened = False
        await self.link.close()

    # ------------------------------------------------------------------ mid level

    async def _ml_init(self) -> None:
        await self._command(p.Command.ML_INIT, Frames.ML_INIT, "Ml_init")
        self._initialised, self._running = True, {}

    async def _update(self, update: PreparedUpdate) -> None:
        await self._command(p.Command.ML_UPDATE, update.frame, "Ml_update", abortable=True)
        self._running = update.configs

    async def _poll(self) -> bool:
        """Ml_get_current_data: renews the device's timeout and checks every channel.

        Returns:
            False after an electrode error (reported as ``electrode_off``; the device stopped
            every channel), True when every configured channel runs.

        Raises:
            DeviceError: a pulse timeout or low current, or a configured channel the device
                stopped by itself (its timeout).
        """
        ack = await self._command(p.Command.ML_GET_CURRENT_DATA, Frames.ML_GET_CURRENT_DATA,
                                  "Ml_get_current_data", abortable=True,
                                  accept=frozenset({p.Result.ELECTRODE_ERROR,
                                                    p.Result.PULSE_TIMEOUT,
                                                    p.Result.PULSE_LOW_CURRENT}))
        self._last_poll_s = self._now()
        if not isinstance(ack, p.MlGetCurrentDataAck):
            raise self._failure(DeviceError("the P24 answered Ml_get_current_data in an older "
                                            "device's layout"))
        states = dict(enumerate(ack.channel_states, start=1))
        errors = {ch: s for ch, s in states.items() if s != p.ChannelState.OK}
        electrode = [ch for ch, s in errors.items() if s == p.ChannelState.ELECTRODE_ERROR]
        others = {ch: s for ch, s in errors.items() if s != p.ChannelState.ELECTRODE_ERROR}
        if errors:
            self._running = {}  # Ml_init bit 0 = 1: the device stopped every channel
            self._cancel_lease()
        if others:
            text = "; ".join(f"ch{ch} {_STATE_TEXT[s]}" for ch, s in sorted(others.items()))
            self._fault = f"the P24 stopped stimulation: {text}"
            raise self._failure(DeviceError(self._fault))
        if electrode:
            for ch in electrode:
                self._emit(Telemetry("electrode_off", self._now(), ch, None,
                                     f"the P24 reports an electrode error on channel {ch} and "
                                     "stopped every channel"))
            return False
        stopped = sorted(set(self._running) - set(ack.active_channels))
        if stopped:
            self._running = {}
            self._fault = (f"the P24 stopped channel(s) {', '.join(map(str, stopped))} by "
                           f"itself (its {DEVICE_TIMEOUT_S:g} s timeout ran out); start a new "
                           "session")
            raise self._failure(DeviceError(self._fault))
        return True

    async def _stop_on_wire(self) -> None:
        """Ml_stop, once more if unanswered, then Get_stim_status
        (docs/protocols/sciencemode4.md §10).

        Raises:
            DeviceError: neither the stop nor the status query confirmed it.
            LinkLostError: the link went away.
        """
        for _ in range(1 + _RESENDS):
            try:
                ack = await self._request(p.Command.ML_STOP, Frames.ML_STOP)
            except DeviceTimeoutError:
                continue
            if isinstance(ack, p.MlStopAck) and ack.result == p.Result.OK:
                break
        else:
            try:
                status = await self._request(p.Command.GET_STIM_STATUS, Frames.GET_STIM_STATUS)
            except DeviceTimeoutError:
                raise DeviceTimeoutError(f"no answer to Ml_stop ({1 + _RESENDS} tries) nor to "
                                         f"Get_stim_status, {self.ack_timeout_s:g} s each"
                                         ) from None
            if not (isinstance(status, p.GetStimStatusAck) and status.result == p.Result.OK
                    and status.stim_status != p.StimStatus.MID_LEVEL_RUNNING):
                raise DeviceError("Ml_stop was not acknowledged and the P24 still reports "
                                  "mid level running")
        self._initialised, self._running = False, {}

    # ------------------------------------------------------------------ the host lease

    def _output_on(self) -> bool:
        return bool(self._running)

    async def _end_lease(self) -> None:
        """No apply renewed the lease: the host stops the output itself, long before the
        device's own 2 s timeout would."""
        async with self._lock:
            if self.stopped or not self._lease_over() or not self._running:
                return  # renewed or stopped meanwhile
            try:
                await self._stop_on_wire()
            except DeviceError as exc:
                self._fall_silent(f"lease stop failed: {exc}")
                self._tell("device_error", f"the lease ran out and the stop failed ({exc}); "
                           f"the P24's {DEVICE_TIMEOUT_S:g} s timeout ends output")

    # ------------------------------------------------------------------ commands and acks

    async def _command(self, command: int, frame: PacketFrame, what: str, *,
                       abortable: bool = False,
                       accept: frozenset[p.Result] = frozenset()) -> p.Message:
        """Send a command until it is acknowledged (one resend on a timeout or a transfer
        error) and return the ack; results other than 0 and ``accept`` are faults.

        Raises:
            Aborted: ``abortable`` and the driver was stopped meanwhile (nothing resent).
            DeviceTimeoutError: no ack after the resend.
            DeviceError: a refusal, or result 7 (the device left mid level: a reset).
            LinkLostError: the link went away.
        """
        resends = 0
        while True:
            if abortable and self.stopped:
                raise Aborted  # HZ-03: never (re)send an update after a stop
            try:
                ack = await self._request(command, frame)
            except DeviceTimeoutError:
                if abortable and self.stopped:
                    raise Aborted from None
                if resends < _RESENDS:
                    resends += 1
                    continue
                raise self._failure(DeviceTimeoutError(
                    f"the P24 did not acknowledge {what} ({1 + resends} tries, "
                    f"{self.ack_timeout_s:g} s each)")) from None
            except LinkLostError:
                raise
            except DeviceError as exc:  # General_error or Unknown_cmd
                raise self._failure(DeviceError(f"the P24 refused {what}: {exc}")) from exc
            result = getattr(ack, "result", p.Result.OK)
            if result == p.Result.OK or result in accept:
                return ack
            if result == p.Result.TRANSFER_ERROR and resends < _RESENDS:
                resends += 1  # the frame arrived damaged: send it again
                continue
            if result == p.Result.NOT_INITIALISED and self._initialised:
                self._initialised, self._running = False, {}
                self._cancel_lease()
                self._fault = ("the P24 reset or left mid level by itself (its output "
                               "stopped); start a new session")
                self._tell("device_reset", self._fault)
                raise DeviceError(self._fault)
            raise self._failure(DeviceError(
                f"the P24 refused {what} with result {int(result)} ({_result_name(result)})"))

    async def _request(self, command: int, frame: PacketFrame) -> p.Message:
        """Write one command now (``frame(pn)``: its wire frame with a packet number) and wait
        for the frame that acknowledges it.

        Raises:
            DeviceTimeoutError: no ack within the timeout.
            LinkLostError: the link went away.
            DeviceError: the device answered General_error or Unknown_cmd.
        """
        self._check_link()
        pn = self._next_pn()
        return await self._acks.request(pn, command, frame(pn))

    def _next_pn(self) -> int:
        # packet numbers count 1, 2 … 63, 0, 1 … (docs/protocols/sciencemode4.md §10)
        self._pn = (self._pn + 1) % (p.MAX_PACKET_NUMBER + 1)
        return self._pn

    # ------------------------------------------------------------------ receiving

    def _usual_ack(self, command: int, packet_number: int) -> tuple[bytes, p.Message] | None:
        return p.usual_ack(command, packet_number)

    def _on_message(self, message: p.Message) -> None:
        if self._acks.resolve(message):
            return
        if isinstance(message, p.GeneralError | p.UnknownCommand):
            name = "General_error" if isinstance(message, p.GeneralError) else "Unknown_cmd"
            self._acks.refuse(message.packet_number, DeviceError(
                f"{name} with result {int(message.result)} ({_result_name(message.result)})"))

    def _on_lost(self, reason: str) -> None:
        if self._lost:
            return
        self._lost = True
        self._cancel_lease()
        self._acks.fail_all(LinkLostError(f"link to the P24 lost: {reason}"))
        self._tell("link_lost", f"link to the P24 lost ({reason}); its {DEVICE_TIMEOUT_S:g} s "
                   "timeout ends output (unplugged, it is off)")



def _result_name(result: int) -> str:
    try:
        return p.Result(result).name.lower().replace("_", " ")
    except ValueError:
        return "unknown"


# ---------------------------------------------------------------------- factories


class ScienceMode4Params(DeviceParams):
    """``sciencemode4://PORT?…`` parameters."""

    ack_timeout_s: float = Field(ACK_TIMEOUT_S, ge=0.01, le=10.0, description=(
        "how long to wait for each ack (default 0.25)"))


def open_serial(url: DeviceUrl, options: OpenOptions) -> ScienceMode4Driver:
    """A driver for a P24 on ``sciencemode4:///dev/ttyACM0`` (or any pyserial URL).

    Without a port (``sciencemode4://``) the driver opens, at connect, the one port with the
    P24's USB id (0483:5740) that answers Get_device_id as a P24, and refuses when there is no
    such port or more than one (:class:`~.discovery.DiscoveredPort`). Nothing is opened here.

    Raises:
        InputError: an unknown parameter, or a fault plan (simulator only).
    """
    if options.fault_plan is not None:
        raise InputError("fault plans only work with the simulator (sim+sciencemode4)")
    params = parse_params(ScienceMode4Params, url.params, url.scheme)
    from .discovery import DiscoveredPort, serial_link  # noqa: PLC0415 - pyserial on open only

    link: ByteLink = serial_link(url.target) if url.target else DiscoveredPort()
    return ScienceMode4Driver(link, url=url.text, ack_timeout_s=params.ack_timeout_s)
