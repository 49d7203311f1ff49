"""The ScienceMode2 host driver (Hasomed RehaStim2) over any :class:`~..links.base.ByteLink`.

Follows ``docs/protocols/sciencemode2.md`` §7–§8: answer the device's Init, keep the link alive
with Watchdog every 250 ms (L21; the device's watchdog is 1.2 s), run channel-list mode
(Stop → InitChannelListMode → Start, then Start again for each update; a frequency change or a
new channel needs that whole sequence, which briefly interrupts output,
docs/protocols/sciencemode2.md §12), one command outstanding with a 250 ms ack timeout, one resend
(after GetStimulationMode on a timeout) and a few resends on busy (−8). Error acks,
StimulationError, a device reset (Init while connected) and a lost link become telemetry (journaled
by the session) and errors; output never resumes by itself after any of them.

Stop (HZ-03, L22): ``_stop_internal`` writes StopChannelListMode in its first step, without the
command lock, so it never waits behind an update that waits for its ack; apply never writes
after a stop. If the Stop is not acknowledged (one resend, then GetStimulationMode), the driver
falls silent — no keep-alive, nothing — so the device's watchdog ends output
(docs/protocols/sciencemode2.md §8 last resort). The protocol has no lease: the driver enforces each
``apply``'s lease itself and sends Stop when it runs out.

This module must never import pyserial (the serial link does, lazily) nor read the wall clock.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

from pydantic import Field

from ...contract import ChannelSetpoint
from ...device_params import DeviceParams, parse_params
from ...devices import DeviceUrl, OpenOptions
from ...errors import DeviceError, DeviceTimeoutError, InputError, LinkLostError
from ..links.base import ByteLink
from ..sciencemode.acks import Aborted, ignore_result
from ..sciencemode.host import PacketFrame, ScienceModeHost
from . import mapping
from . import protocol as p

__all__ = ["ACK_TIMEOUT_S", "INIT_WAIT_S", "KEEPALIVE_S", "ScienceModeDriver",
           "ScienceModeParams", "open_serial"]

#: [emsctl rule] 250 ms rather than the spec's 100 ms, for OS latency
#: (docs/protocols/sciencemode2.md §7).
ACK_TIMEOUT_S = 0.25
#: Three Init periods (docs/protocols/sciencemode2.md §7).
INIT_WAIT_S = 1.5
#: L21 heartbeat; the spec asks for at least every 500 ms.
KEEPALIVE_S = 0.25
_RESENDS = 1
_BUSY_RESENDS = 3
_BUSY_BACKOFF_S = 0.02
_RESULT_TEXT = {
    p.Result.TRANSFER_ERROR: "a transfer error (−1)",
    p.Result.PARAMETER_ERROR: "a parameter error (−2)",
    p.Result.WRONG_MODE: "wrong mode (−3)",
    p.Result.MOTOMED_CONNECTION_ERROR: "a MOTOmed error (−4)",
    p.Result.INCOMPATIBLE_VERSION: "an incompatible version (−5)",
    p.Result.BUSY: "busy (−8)",
}
_ERROR_TEXT = {
    p.StimulationErrorCode.EMERGENCY_SWITCH: "emergency switch pressed or not connected (−1)",
    p.StimulationErrorCode.ELECTRODE_ERROR: "electrode error: skin resistance out of range, "
                                            "check the pads (−2)",
    p.StimulationErrorCode.STIMULATION_MODULE_ERROR: "stimulation module error (−3)",
}


def _frames_of(make: Callable[[int], p.Message]) -> PacketFrame:
    """The wire frame of a command without varying data, built once per packet number (the
    stop is on the hot path)."""
    return functools.cache(lambda pn: p.encode_message(make(pn)))


_STOP = _frames_of(lambda pn: p.StopChannelListMode(packet_number=pn))
_GET_MODE = _frames_of(lambda pn: p.GetStimulationMode(packet_number=pn))
_WATCHDOG = _frames_of(lambda pn: p.Watchdog(packet_number=pn))


class ScienceModeDriver(ScienceModeHost[p.Message]):
    """A RehaStim2 in ScienceMode2 behind a byte link.

    Args:
        link: the serial port, pty or in-memory pipe (opened by :meth:`connect`).
        url: the URL the driver was opened from, for the journal.
        ack_timeout_s: how long to wait for each ack.

    Raises:
        InputError: a non-positive ack timeout.
    """

    device_name = "RehaStim2"

    def delivered_frequency_hz(self, frequency_hz: float) -> float:
        """The rate of the main interval code the frequency becomes (0.5 ms steps)."""
        return mapping.delivered_frequency_hz(frequency_hz)

    def __init__(self, link: ByteLink, *, url: str = "",
                 ack_timeout_s: float = ACK_TIMEOUT_S) -> None:
        super().__init__(link, url=url, ack_timeout_s=ack_timeout_s, decoder=p.FrameDecoder(),
                         decode=p.decode_frame)
        if not ack_timeout_s > 0:
            raise InputError(f"ack timeout must be positive, got {ack_timeout_s} s")
        self.capabilities = mapping.capabilities()
        self.protocol_version: int | None = None
        self._pn = 0
        self._init_waiter: asyncio.Future[p.Init] | None = None
        self._handshaken = False
        self._mode = p.StimulationMode.START
        self._config: tuple[int, int] | None = None  # (t1 code, active mask) in force
        self._mask = 0
        self._last_sent_s = 0.0
        self._keepalive: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ driver hooks

    async def _connect_internal(self) -> None:
        """Open the link, answer the device's Init, and confirm mode 0 with a Stop.

        Raises:
            DeviceError: the port cannot be opened, or the device sent no Init within 1.5 s or
                did not acknowledge the Stop.
        """
        if self._silenced or self._lost:
            raise DeviceError("the link to the device was given up after a fault; open the "
                              "device again")
        loop = asyncio.get_running_loop()
        await self._open_link()
        if not self._handshaken:
            self._init_waiter = loop.create_future()
            try:
                init = await asyncio.wait_for(self._init_waiter, INIT_WAIT_S)
            except TimeoutError:
                raise DeviceError(f"no Init from a RehaStim2 on {self.link.description} within "
                                  f"{INIT_WAIT_S:g} s; is it on, in ScienceMode2 (chosen on the "
                                  "device's start screen), and is this its port?") from None
            finally:
                self._init_waiter = None
            await self._handshake(init)
        self._fault, self._mask = None, 0
        async with self._lock:
            await self._transact(p.Command.STOP_CHANNEL_LIST_MODE, _STOP, "Stop")
        self._mode, self._config = p.StimulationMode.START, None
        self._tell("connected", f"RehaStim2 protocol version {self.protocol_version}")

    async def _apply_internal(self, setpoints: tuple[ChannelSetpoint, ...], lease_s: float) -> None:
        """Send the setpoints as channel-list commands and wait for each ack.

        Raises:
            InputError: different frequencies on active channels, or widths of 1–19 µs.
            LinkLostError: the link is gone.
            DeviceError: the device refused a command, reset, or reported a stimulation error.
            DeviceTimeoutError: no ack after the resend.
        """
        output = mapping.plan_output(setpoints, self._mask)
        if output is not None and self._fault is not None:
            raise DeviceError(self._fault)
        self._check_link()
        try:
            async with self._lock:
                if self.stopped:
                    return
                if output is None:
                    self._cancel_lease()
                    if self._mode != p.StimulationMode.START:
                        await self._send_stop_locked()
                    return
                await self._run(output, lease_s)
        except Aborted:
            return

    async def _stop_internal(self) -> None:
        """Put StopChannelListMode on the wire now and wait for its ack.

        Raises:
            LinkLostError: the link is gone; the device's watchdog ends output within 1.2 s.
            DeviceError: the stop was not confirmed; the driver has fallen silent so that the
                device's watchdog ends output within 1.2 s.
        """
        self._cancel_lease()
        if self._lost:
            raise LinkLostError("link lost: the stop cannot reach the RehaStim2; its watchdog "
                                "ends output within 1.2 s")
        if self._silenced:
            raise DeviceError(f"the driver has fallen silent after a fault "
                              f"({self._silence_reason}); the RehaStim2's watchdog ends output "
                              "within 1.2 s")
        if not self._handshaken:
            return  # not connected: the device makes no output
        try:
            await self._transact(p.Command.STOP_CHANNEL_LIST_MODE, _STOP, "Stop",
                                 expected_mode=p.StimulationMode.START)
        except LinkLostError:
            raise
        except DeviceError as exc:
            self._fall_silent(f"stop not confirmed: {exc}")
            raise DeviceError(f"the RehaStim2 did not confirm the stop ({exc}); emsctl stopped "
                              "talking to it, so its watchdog ends output within 1.2 s") from exc
        self._mode, self._config = p.StimulationMode.START, None
        self._tell("stopped", "output stopped (StopChannelListMode acknowledged)")

    async def _close_internal(self) -> None:
        """Stop the keep-alive and the lease timer, fail pending acks, close the link."""
        self._cancel_lease()
        self._cancel_keepalive()
        self._acks.fail_all(DeviceError("the driver was closed"))
        self._handshaken = self._opened = False
        await self.link.close()

    # ------------------------------------------------------------------ channel list

    async def _run(self, output: mapping.ListOutput, lease_s: float) -> None:
        reconfigure = (self._mode == p.StimulationMode.START
                       or self._config != (output.main_interval_code, output.active_mask))
        # a new frequency or channel: Stop → Init → Start (docs/protocols/sciencemode2.md §12)
        if reconfigure:
            if self._mode != p.StimulationMode.START:
                await self._send_stop_locked()
            await self._transact(p.Command.INIT_CHANNEL_LIST_MODE, lambda pn: p.encode_message(
                p.InitChannelListMode(
                    packet_number=pn, low_frequency_factor=0,
                    active_channel_mask=output.active_mask, low_frequency_channel_mask=0,
                    inter_pulse_interval_code=p.MIN_INTER_PULSE_INTERVAL_CODE,
                    main_interval_code=output.main_interval_code)), "InitChannelListMode",
                expected_mode=p.StimulationMode.INITIALISED, abortable=True)
            self._mode = p.StimulationMode.INITIALISED
            self._config = (output.main_interval_code, output.active_mask)
            self._mask = output.active_mask
        sent_s = asyncio.get_running_loop().time()
        await self._transact(p.Command.START_CHANNEL_LIST_MODE, output.start_frame,
                             "StartChannelListMode", abortable=True)
        if self.stopped:
            return  # the stop that came meanwhile stands
        self._mode = p.StimulationMode.STARTED
        self._arm_lease(sent_s + lease_s)
        if self._listeners:  # the words are built only when someone reads them
            self._tell("ack", output.describe(), value=1.0)

    async def _send_stop_locked(self) -> None:
        await self._transact(p.Command.STOP_CHANNEL_LIST_MODE, _STOP, "Stop",
                             expected_mode=p.StimulationMode.START)
        self._mode, self._config = p.StimulationMode.START, None

    def _output_on(self) -> bool:
        return self._mode != p.StimulationMode.START

    async def _end_lease(self) -> None:
        """No apply renewed the lease: the host stops the output itself
        (docs/protocols/sciencemode2.md §12)."""
        async with self._lock:
            if self.stopped or not self._lease_over():
                return  # renewed or stopped meanwhile
            try:
                await self._send_stop_locked()
            except DeviceError as exc:
                self._fall_silent(f"lease stop failed: {exc}")
                self._tell("device_error", f"lease ran out and the stop failed ({exc}); the "
                           "device's watchdog ends output within 1.2 s")

    # ------------------------------------------------------------------ commands and acks

    async def _transact(self, command: int, frame: PacketFrame, what: str, *,
                        expected_mode: p.StimulationMode | None = None,
                        abortable: bool = False) -> None:
        """Send a command (``frame(pn)``: its wire frame with a packet number) until it is
        acknowledged with 0 (one resend; busy a few times).

        Raises:
            Aborted: ``abortable`` and the driver was stopped meanwhile (nothing resent).
            DeviceTimeoutError: no ack, and GetStimulationMode unanswered or inconclusive.
            DeviceError: a non-zero result other than busy or a transfer error.
        """
        resends = busy = 0
        while True:
            if abortable and self.stopped:
                raise Aborted  # HZ-03: never (re)send an update after a stop
            try:
                ack = await self._request(command, frame)
            except DeviceTimeoutError:
                if abortable and self.stopped:
                    raise Aborted from None
                if expected_mode == p.StimulationMode.START and resends < _RESENDS:
                    # a lost Stop: resend it at once, then ask (docs/protocols/sciencemode2.md §8)
                    resends += 1
                    continue
                mode = await self._query_mode(what)
                if expected_mode is not None and mode == expected_mode:
                    return  # it took effect; only the ack was lost
                if resends >= _RESENDS:
                    raise self._failure(DeviceTimeoutError(
                        f"the RehaStim2 did not acknowledge {what} "
                        f"({1 + resends} tries, {self.ack_timeout_s:g} s each)")) from None
                resends += 1
                continue
            except LinkLostError:
                raise
            except DeviceError as exc:  # UnknownCommand, or the device reset meanwhile
                if self._fault is None:
                    self._tell("device_error", str(exc))
                raise
            result = getattr(ack, "result", p.Result.OK)
            if result == p.Result.OK:
                return
            if result == p.Result.BUSY and busy < _BUSY_RESENDS:
                busy += 1
                await asyncio.sleep(_BUSY_BACKOFF_S)
                continue
            if result == p.Result.TRANSFER_ERROR and resends < _RESENDS:
                resends += 1
                continue
            raise self._failure(DeviceError(
                f"the RehaStim2 refused {what} with {_RESULT_TEXT.get(result, str(result))}"))

    async def _query_mode(self, what: str) -> p.StimulationMode | None:
        try:
            reply = await self._request(p.Command.GET_STIMULATION_MODE, _GET_MODE)
        except DeviceTimeoutError:
            raise self._failure(DeviceTimeoutError(
                f"the RehaStim2 answers neither {what} nor GetStimulationMode within "
                f"{self.ack_timeout_s:g} s")) from None
        return reply.mode if isinstance(reply, p.GetStimulationModeAck) else None

    async def _request(self, command: int, frame: PacketFrame) -> p.Message:
        """Write one command now (``frame(pn)``) and wait for the frame that acknowledges it.

        Raises:
            DeviceTimeoutError: no ack within the timeout.
            LinkLostError: the link went away.
            DeviceError: the device answered UnknownCommand, or reset meanwhile.
        """
        self._check_link()
        pn = self._next_pn()
        return await self._acks.request(pn, command, frame(pn))

    async def _write(self, frame: bytes) -> None:
        self._last_sent_s = asyncio.get_running_loop().time()
        await self.link.write(frame)

    def _next_pn(self) -> int:
        pn = self._pn
        self._pn = (pn + 1) & 0xFF
        return pn

    # ------------------------------------------------------------------ receiving

    def _usual_ack(self, command: int, packet_number: int) -> tuple[bytes, p.Message] | None:
        return p.usual_ack(command, packet_number)

    def _on_message(self, message: p.Message) -> None:
        if isinstance(message, p.Init):
            self._on_init(message)
        elif isinstance(message, p.StimulationError):
            self._mode, self._config = p.StimulationMode.START, None
            self._cancel_lease()
            text = _ERROR_TEXT.get(message.error, str(message.error))
            self._fault = f"the RehaStim2 stopped stimulation: {text}"
            self._tell("device_error", self._fault, value=float(message.error))
        elif isinstance(message, p.UnknownCommand):
            self._acks.refuse(message.packet_number, DeviceError(
                f"the RehaStim2 does not know command {message.received_command}"))
        else:
            self._acks.resolve(message)

    def _on_init(self, init: p.Init) -> None:
        if self._init_waiter is not None and not self._init_waiter.done():
            self._init_waiter.set_result(init)
            return
        if not self._handshaken or self._silenced:
            return
        # The device reset (its watchdog, a brown-out): its output has stopped. Re-handshake so
        # a stop can be confirmed, report it, and never resume by ourselves
        # (docs/protocols/sciencemode2.md §7, HZ-17).
        self._mode, self._config = p.StimulationMode.START, None
        self._cancel_lease()
        self._fault = "the RehaStim2 reset (its output stopped); start a new session"
        self._acks.fail_all(DeviceError(self._fault))
        task = asyncio.ensure_future(self._handshake(init))
        task.add_done_callback(ignore_result)
        self._tell("device_reset", self._fault)

    async def _handshake(self, init: p.Init) -> None:
        self.protocol_version = init.protocol_version
        await self._write(p.encode_message(
            p.InitAck(packet_number=init.packet_number, result=p.Result.OK)))
        self._handshaken = True
        self._schedule_keepalive()

    def _on_lost(self, reason: str) -> None:
        if self._lost:
            return
        self._lost = True
        self._cancel_keepalive()
        self._cancel_lease()
        self._acks.fail_all(LinkLostError(f"link to the RehaStim2 lost: {reason}"))
        self._tell("link_lost", f"link to the RehaStim2 lost ({reason}); its watchdog ends "
                   "output within 1.2 s")

    # ------------------------------------------------------------------ keep-alive, silence

    def _schedule_keepalive(self) -> None:
        self._cancel_keepalive()
        loop = asyncio.get_running_loop()
        due_s = max(self._last_sent_s + KEEPALIVE_S, loop.time())
        self._keepalive = loop.call_at(due_s, self._keepalive_due)

    def _keepalive_due(self) -> None:
        self._keepalive = None
        if self._silenced or self._lost or not self._handshaken:
            return
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_sent_s >= KEEPALIVE_S - 1e-6:
            task = asyncio.ensure_future(self._write(_WATCHDOG(self._next_pn())))
            task.add_done_callback(ignore_result)
            self._last_sent_s = loop.time()
        self._schedule_keepalive()

    def _cancel_keepalive(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None

    def _fall_silent(self, reason: str) -> None:
        """docs/protocols/sciencemode2.md §8 last resort: send nothing more (no keep-alive
        either), so the device's watchdog ends output."""
        super()._fall_silent(reason)
        self._cancel_keepalive()


# ---------------------------------------------------------------------- factories


class ScienceModeParams(DeviceParams):
    """``sciencemode2://PORT?…`` parameters."""

    ack_timeout_s: float = Field(ACK_TIMEOUT_S, ge=0.01, le=10.0, description=(
        "how long to wait for each ack (default 0.25)"))


def open_serial(url: DeviceUrl, options: OpenOptions) -> ScienceModeDriver:
    """A driver for a RehaStim2 on ``sciencemode2:///dev/ttyUSB0`` (or any pyserial URL).

    Raises:
        InputError: no port in the URL, an unknown parameter, or a fault plan (simulator only).
    """
    from ..links.serial import SerialLink  # noqa: PLC0415 - pyserial only for real ports

    if not url.target:
        raise InputError("sciencemode2 needs a port, e.g. 'sciencemode2:///dev/ttyUSB0'; run "
                         "'emsctl devices' to list serial ports")
    if options.fault_plan is not None:
        raise InputError("fault plans only work with the simulator (sim+sciencemode2)")
    params = parse_params(ScienceModeParams, url.params, url.scheme)
    link = SerialLink(url.target, baud=460800, parity="E", bytesize=8, stopbits=1)
    return ScienceModeDriver(link, url=url.text, ack_timeout_s=params.ack_timeout_s)
