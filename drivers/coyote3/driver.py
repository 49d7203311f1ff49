"""The Coyote V3 driver: the driver contract over any :class:`GattLink` (bleak or in-memory).

Connect (docs/protocols/coyote3.md §9): connect, subscribe to B1 and the battery, read the battery
(refuse a session on a nearly empty device, HZ-17), write BF soft limits = min(program cap, profile
cap) in steps on **every** connect, then set both strengths absolutely to 0 and wait for B1 (or the
timeout if the device was at 0 already) — a device left at a strength by a dead host starts from
zero (L14). Stream: a background task sends a B0 every 100 ms while a lease is valid; each frame
carries the next 100 ms of waveform, and the device's own expiry of that frame is the dead-man
(L21): a frame that would come more than one 25 ms slot after the last one's output ran out (a
stalled host) is not sent, as the device has fallen silent; the driver fails instead, like a
lease that ran out, so the output never comes back at once at the level it had (L14).
``apply`` renews the host lease and, when anything changed, sends a frame at once. Strength
changes are absolute, sequenced and confirmed by B1 (:mod:`.strength`); B1 is the source of truth,
and a strength nobody asked for stops the session (``device_error``). Stop
(docs/protocols/coyote3.md §10): a fresh-sequence set to 0/0 with intensity 0 goes on the wire
before anything else, streaming ends, and the B1 ``seq 0 0`` is awaited (retried; accepted after the
timeout if the device was at 0). Close writes BF limits 0/0 so the wheel cannot raise the strength
between sessions, then disconnects.

The driver never reconnects by itself: a lost link ends the session (L14); a new session
reconnects and starts from zero. This module must never import bleak (``open_ble`` imports the
adapter lazily) and reads time only from the running loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Mapping

from ...contract import ChannelSetpoint, Driver, Telemetry
from ...devices import DeviceUrl, OpenOptions
from ...errors import DeviceError, DeviceTimeoutError, InputError, LinkLostError, ProtocolError
from ..links.base import GattLink
from .config import CoyoteConfig, CoyoteParams, capabilities_for, parse_coyote_params
from .frames import (
    BATTERY_CHARACTERISTIC_UUID,
    FRAME_DURATION_MS,
    NOTIFY_CHARACTERISTIC_UUID,
    SLOT_DURATION_MS,
    WRITE_CHARACTERISTIC_UUID,
    BfFrame,
)
from .frequency import frequency_code_from_hz, frequency_hz_from_code
from .protocol import decode_battery_level, decode_notification, encode_bf
from .rules import check_host_bf
from .stream import ChannelWave, b0_bytes, slots_before
from .strength import ACK_TIMEOUT_S, StrengthTracker

__all__ = ["BATTERY_MIN_START_PCT", "CoyoteDriver", "open_ble"]

FRAME_PERIOD_S = FRAME_DURATION_MS / 1000.0
SLOT_S = SLOT_DURATION_MS / 1000.0
#: A frame may come this late after the last one's output ran out (a late timer on a busy
#: host): one slot of silence. Later, the device has fallen silent and the stream ends.
FRAME_GRACE_S = SLOT_S
#: HZ-17: refuse to start a session on a device this empty [E]; the session stops at 10 %.
BATTERY_MIN_START_PCT = 20
#: How many times the stop frame is sent before the stop is reported unconfirmed.
STOP_TRIES = 3
#: Let a write without response leave the radio before disconnecting (two connection events).
_SETTLE_S = 0.05

Waves = tuple[ChannelWave | None, ChannelWave | None]


class CoyoteDriver(Driver):
    """Drives one Coyote V3 over ``link``.

    Args:
        link: a GATT link to the device (not yet connected).
        config: calibration factors and BF balances.
        url: the URL the driver was opened from, for the journal.
    """

    def __init__(self, link: GattLink, config: CoyoteConfig, *,
                 url: str = "coyote3") -> None:
        super().__init__()
        self.link = link
        self.config = config
        self.url = url
        self.capabilities = capabilities_for(config)
        self.tracker = StrengthTracker()
        self.battery_pct: int | None = None
        self._caps_steps: tuple[int, int] = (config.max_steps, config.max_steps)
        self._waves: Waves = (None, None)
        self._lease_deadline_s = 0.0
        self._last_frame_s = -1.0
        #: When the output of the last frame sent ends (inf: it had none, nothing can lapse).
        self._output_until_s = math.inf
        self._link_up = False
        self._streamer: asyncio.Task[None] | None = None
        self._confirmed: asyncio.Event | None = None
        self._fault: DeviceError | None = None
        self._fault_stop: asyncio.Task[None] | None = None
        self._with_response = False
        self._idle = True

    # ------------------------------------------------------------------ configuration

    def set_channel_caps_ma(self, caps_ma: Mapping[int, float]) -> None:
        """Declare each channel's cap (min of program cap and profile cap) for the BF limits.

        Takes effect at the next ``connect()`` (BF is written on every connect). Channels not
        named keep the device maximum.

        Raises:
            InputError: an unknown channel or a negative or non-finite cap.
        """
        caps = list(self._caps_steps)
        for channel, cap_ma in caps_ma.items():
            if channel not in (1, 2):
                raise InputError(f"the Coyote V3 has channels 1 and 2, not {channel}")
            caps[channel - 1] = min(self.config.max_steps, self.config.steps_for_ma(
                min(cap_ma, self.capabilities.amplitude_max_ma)))
        self._caps_steps = (caps[0], caps[1])

    def delivered_frequency_hz(self, frequency_hz: float) -> float:
        """The rate of the period bin the frequency byte encodes
        (docs/protocols/coyote3.md §4)."""
        return frequency_hz_from_code(frequency_code_from_hz(frequency_hz))

    @property
    def declared_scaling(self) -> Mapping[str, float]:
        """``ma_per_step``, the declared current of one strength step, on which every mA rests,
        and the two BF balances, which change the effective pulse width at the same strength
        (docs/protocols/coyote3.md §5)."""
        config = self.config
        return {"ma_per_step": config.ma_per_step, "frequency_balance": config.frequency_balance,
                "intensity_balance": config.intensity_balance}

    # ------------------------------------------------------------------ driver hooks

    async def _connect_internal(self) -> None:
        """Connect, subscribe, check the battery, write BF, set both strengths to 0.

        Raises:
            DeviceTimeoutError: no connection within the configured timeout.
            DeviceError: the device is not a Coyote V3, its battery is too low, or it failed.
        """
        await self._end_stream()
        self._fault = None
        self.tracker = StrengthTracker()
        self._waves = (None, None)
        self._output_until_s = math.inf
        self._idle = True
        try:
            if not self._link_up:
                self.link.on_lost(self._on_link_lost)
                await self.link.connect(self.config.connect_timeout_s)
                self._link_up = True
            await self.link.subscribe(NOTIFY_CHARACTERISTIC_UUID, self._on_notify)
            await self.link.subscribe(BATTERY_CHARACTERISTIC_UUID, self._on_battery)
            self._take_battery(await self.link.read(BATTERY_CHARACTERISTIC_UUID))
            if self.battery_pct is not None and self.battery_pct < BATTERY_MIN_START_PCT:
                raise DeviceError(f"the Coyote's battery is at {self.battery_pct} %: charge it "
                                  f"to at least {BATTERY_MIN_START_PCT} % before a session "
                                  "(HZ-17)")
            await self._write_bf(self._caps_steps)
            await self._zero_and_confirm()
        except BaseException:
            await self._drop_link()
            raise
        self.tracker.armed = True
        self._emit(Telemetry("connected", self._now(), message=self.link.description))
        self._streamer = asyncio.ensure_future(self._stream())

    async def _apply_internal(self, setpoints: tuple[ChannelSetpoint, ...], lease_s: float) -> None:
        """Renew the lease and, if anything changed, send a frame now (no ack wait).

        Raises:
            LinkLostError: the link is gone.
            DeviceError: the device reported a strength nobody asked for, stopped confirming,
                or the setpoints cannot be expressed (a capabilities bug).
        """
        self._raise_if_failed()
        config = self.config
        steps = (config.steps_for_ma(setpoints[0].amplitude_ma),
                 config.steps_for_ma(setpoints[1].amplitude_ma))
        waves = (self._wave(setpoints[0]), self._wave(setpoints[1]))
        now_s = self._now()
        self._lease_deadline_s = now_s + lease_s
        # A decrease goes out at once; anything else rides the next frame of the stream (at
        # most 100 ms away), so a changing plan does not double the radio traffic.
        urgent = self._idle or _lower(steps, self.tracker.target) or _quieter(waves, self._waves)
        self.tracker.set_target(steps)
        self._waves = waves
        if urgent:
            await self._send_frame(now_s)

    async def _stop_internal(self) -> None:
        """Put the stop frame on the wire at once, end the stream, wait for B1 ``0 0``.

        Raises:
            LinkLostError: the link is gone, or went while the stop awaited its B1; the
                device's 100 ms frame expiry silences the output, but its strength stays set
                until the next connect zeroes it.
            DeviceTimeoutError: no confirmation after three stop frames.
        """
        self.tracker.set_target((0, 0))
        self._waves = (None, None)
        self._lease_deadline_s = 0.0
        if not self._link_up:
            raise LinkLostError("link lost: the stop cannot reach the Coyote; its 100 ms frame "
                                "expiry silences the output, and the next connect sets the "
                                "strength to 0")
        was_zero = self.tracker.known == (0, 0) and self.tracker.pending is None
        for _ in range(STOP_TRIES):
            confirmed = self._watch_confirmation()
            await self._write_b0(b0_bytes(self.tracker.force_change(self._now()), (None, None), 0))
            self._last_frame_s = self._now()
            self._output_until_s = math.inf
            answered = await self._wait_confirmed(confirmed)
            if not self._link_up:  # the lost link woke the wait: no B1 came
                raise LinkLostError("link lost before the Coyote confirmed the stop: its 100 ms "
                                    "frame expiry silences the output, and the next connect "
                                    "sets the strength to 0")
            if answered or was_zero:
                break
        else:
            raise DeviceTimeoutError("the Coyote did not confirm the stop: its output ends with "
                                     "the last frame, but its strength may still be set")
        self.tracker.known = (0, 0)
        self.tracker.pending = None
        self._emit(Telemetry("stopped", self._now(), message="strength 0 on both channels"))

    async def _close_internal(self) -> None:
        """Write BF limits 0/0 (so the wheel cannot raise the strength), then disconnect."""
        await self._end_stream()
        if self._link_up:
            with contextlib.suppress(DeviceError):
                await self._write_bf((0, 0))
                await asyncio.sleep(_SETTLE_S)
        await self._drop_link()

    # ------------------------------------------------------------------ streaming

    async def _stream(self) -> None:
        """Send a frame every 100 ms while a lease is valid or a change is pending."""
        loop = asyncio.get_running_loop()
        try:
            while not self.stopped and self._link_up and self._fault is None:
                delay_s = self._last_frame_s + FRAME_PERIOD_S - loop.time()
                if delay_s > 1e-9:
                    await asyncio.sleep(delay_s)
                    continue
                now_s = loop.time()
                if now_s >= self._lease_deadline_s and self._active():
                    self._fail(DeviceError("the host stopped renewing the lease; output stopped "
                                           "(L21)"))
                    return
                self._idle = now_s >= self._lease_deadline_s and self.tracker.settled
                if self._idle:
                    self._last_frame_s = now_s  # idle at zero: nothing to keep alive
                else:
                    await self._send_frame(now_s)
        except LinkLostError as exc:
            self._on_link_lost(str(exc))
        except DeviceError as exc:
            self._fail(exc)

    async def _send_frame(self, now_s: float) -> None:
        if self.stopped or self._fault is not None:
            return  # HZ-03: after a stop only the stop path writes
        silent_s = now_s - self._output_until_s
        if silent_s > FRAME_GRACE_S and self._waves != (None, None):
            # L14, L21: the last frame's output ran out (this computer stalled) and the
            # device fell silent; the next frame would bring the output back at once
            self._fail(DeviceError(f"no frame for {silent_s * 1000:.0f} ms after the last one "
                                   "ran out (this computer stalled): the Coyote's output "
                                   "stopped with it and does not come back (L21)"))
            return
        change, fault = self.tracker.change_for_frame(now_s)
        if fault is not None:
            self._fail(DeviceTimeoutError(fault))
            return
        slots_on = slots_before(self._lease_deadline_s, now_s)
        self._last_frame_s = now_s
        self._idle = False
        on = slots_on > 0 and self._waves != (None, None)
        self._output_until_s = now_s + slots_on * SLOT_S if on else math.inf
        await self._write_b0(b0_bytes(change, self._waves, slots_on))

    def _active(self) -> bool:
        return self.tracker.target != (0, 0) or self._waves != (None, None)

    def _wave(self, sp: ChannelSetpoint) -> ChannelWave | None:
        if sp.amplitude_ma <= 0:
            return None
        try:
            code = frequency_code_from_hz(sp.frequency_hz)
        except ProtocolError as exc:
            raise InputError(f"the Coyote cannot express {sp.frequency_hz:g} Hz: {exc}") from exc
        return ChannelWave(code, self.config.intensity_for_us(sp.pulse_width_us))

    async def _end_stream(self) -> None:
        task, self._streamer = self._streamer, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ------------------------------------------------------------------ connect helpers

    async def _zero_and_confirm(self) -> None:
        """docs/protocols/coyote3.md §9 step 3: set 0/0 absolutely and wait for B1; accept after the
        timeout."""
        self.tracker.set_target((0, 0))
        confirmed = self._watch_confirmation()
        await self._write_b0(b0_bytes(self.tracker.force_change(self._now()), (None, None), 0))
        self._last_frame_s = self._now()
        if not await self._wait_confirmed(confirmed):
            self.tracker.known = (0, 0)  # no B1: it was at 0 already (docs/protocols/coyote3.md §6)
            self.tracker.pending = None
        if self._fault is not None:
            raise self._fault

    async def _write_bf(self, limits_steps: tuple[int, int]) -> None:
        config = self.config
        frame = BfFrame(limits_steps[0], limits_steps[1], config.frequency_balance,
                        config.frequency_balance, config.intensity_balance,
                        config.intensity_balance)
        check_host_bf(frame)
        await self._write(encode_bf(frame))

    async def _write_b0(self, data: bytes) -> None:
        await self._write(data)

    async def _write(self, data: bytes) -> None:
        """Write without response; if the platform refuses that, use write requests
        (docs/protocols/coyote3.md §12)."""
        if not self._link_up:
            raise LinkLostError("the link to the Coyote is lost")
        try:
            await self.link.write(WRITE_CHARACTERISTIC_UUID, data, response=self._with_response)
        except LinkLostError:
            raise
        except DeviceError:
            if self._with_response:
                raise
            self._with_response = True
            await self.link.write(WRITE_CHARACTERISTIC_UUID, data, response=True)

    def _watch_confirmation(self) -> asyncio.Event:
        self._confirmed = asyncio.Event()
        return self._confirmed

    async def _wait_confirmed(self, confirmed: asyncio.Event) -> bool:
        try:
            await asyncio.wait_for(confirmed.wait(), ACK_TIMEOUT_S)
        except TimeoutError:
            return False
        return True

    async def _drop_link(self) -> None:
        self._link_up = False
        with contextlib.suppress(DeviceError):
            await self.link.disconnect()

    # ------------------------------------------------------------------ incoming

    def _on_notify(self, uuid: str, value: bytes) -> None:
        try:
            report = decode_notification(value)
        # a malformed B1 may hide a strength change (docs/protocols/coyote3.md §12)
        except ProtocolError as exc:
            self._fail(DeviceError(f"the Coyote sent a malformed strength report: {exc}"))
            return
        if report is None:
            # BE echo of old firmware, or another head: ignored (docs/protocols/coyote3.md §12)
            return
        now_s = self._now()
        verdict = self.tracker.on_report(report, now_s)
        known = self.tracker.known
        for channel in verdict.changed:
            steps = known[channel - 1] or 0
            self._emit(Telemetry("strength", now_s, channel, steps * self.config.ma_per_step,
                                 f"{steps} steps (seq {report.sequence})"))
        if verdict.fault is not None:
            self._fail(DeviceError(verdict.fault))
        elif verdict.confirmed and self._confirmed is not None:
            self._confirmed.set()

    def _on_battery(self, uuid: str, value: bytes) -> None:
        with contextlib.suppress(ProtocolError):
            self._take_battery(value)

    def _take_battery(self, value: bytes) -> None:
        pct = decode_battery_level(value)
        if pct != self.battery_pct:
            self.battery_pct = pct
            self._emit(Telemetry("battery", self._now(), value=float(pct)))

    def _on_link_lost(self, reason: str) -> None:
        if not self._link_up:
            return
        self._link_up = False
        if self._confirmed is not None:
            self._confirmed.set()  # wake a waiting stop: it re-checks the link
        self._emit(Telemetry("link_lost", self._now(), message=reason))

    # ------------------------------------------------------------------ faults

    def _fail(self, error: DeviceError) -> None:
        """Record a fault, tell the session, and put the stop on its way (HZ-16,
        docs/protocols/coyote3.md §9 step 5)."""
        if self._fault is not None:
            return
        self._fault = error
        self._emit(Telemetry("device_error", self._now(), message=str(error)))
        if not self.stopped and self._connected:
            self._fault_stop = asyncio.ensure_future(self._stop_quietly())

    async def _stop_quietly(self) -> None:
        with contextlib.suppress(DeviceError):
            await self.stop()

    def _raise_if_failed(self) -> None:
        if self._fault is not None:
            raise self._fault
        if not self._link_up:
            raise LinkLostError("the link to the Coyote is lost")


def _lower(new: tuple[int, int], old: tuple[int, int]) -> bool:
    return new[0] < old[0] or new[1] < old[1]


def _quieter(new: Waves, old: Waves) -> bool:
    """True if a channel goes silent or its intensity (pulse width) drops."""
    for after, before in zip(new, old, strict=True):
        if before is not None and (after is None or after.intensity < before.intensity):
            return True
    return False


# ---------------------------------------------------------------------- factories


def open_ble(url: DeviceUrl, options: OpenOptions) -> CoyoteDriver:
    """Make a driver for ``coyote3://AA:BB:CC:DD:EE:FF?ma_per_step=…`` or ``coyote3://name=…``.

    Raises:
        InputError: no target, a fault plan (real hardware has none), or bad parameters.
    """
    from ..links.ble import BleakGattLink  # noqa: PLC0415 - bleak only when a radio is used
    from .frames import ADVERTISED_NAME_PREFIX  # noqa: PLC0415

    if options.fault_plan is not None:
        raise InputError("fault plans only apply to simulated devices (sim+coyote3)")
    config = parse_coyote_params(CoyoteParams, url.params, url.scheme).config()
    target = url.target.strip("/")
    if not target:
        raise InputError("name the Coyote: 'coyote3://AA:BB:CC:DD:EE:FF?ma_per_step=…' or "
                         f"'coyote3://name={ADVERTISED_NAME_PREFIX}000?ma_per_step=…' (see "
                         "'emsctl devices --ble')")
    if target.startswith("name="):
        link = BleakGattLink(name=target.removeprefix("name="))
    else:
        link = BleakGattLink(address=target)
    return CoyoteDriver(link, config, url=url.text)
