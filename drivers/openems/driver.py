"""The openEMSstim driver: the :class:`~emsctl.contract.Driver` contract over serial or BLE.

The board attenuates a separate stimulator (docs/protocols/openemsstim.md §12): frequency and pulse
width are declared and fixed, so :class:`~emsctl.contract.Capabilities` pins both to the declared
values and verification refuses any plan that needs another; the amplitude is ``I`` percent of a
declared ``ma_at_100`` (linearity assumed explicitly, across the wiper levels the firmware's
docs/protocols/openemsstim.md §4.2 mapping gives), rounded down — the board never gets more than
asked — and never above 100.

The board holds no limit of its own and the protocol has no checksum: a corrupted digit can
make the firmware open the wiper fully, and then the external stimulator's whole output flows
(its full scale, 1.26 × ``ma_at_100``). So the driver sends no output until it holds the
session's verified per-channel caps (:meth:`OpenEmsDriver.set_channel_caps_ma`, which
``prepare_run`` calls), and it refuses caps below that full scale: whatever a corrupted line
makes of the intensity, the current stays within the person's cap (HZ-01, HZ-12).

Each active channel gets ``C<ch>I<pct>T<lease ms>G``; the on-time is the lease and the board
switches the channel off by itself when it runs out (the output watchdog, L21), so the session's
heartbeat renews it at ≤ 0.5·T. A channel going to zero gets the stop idiom ``C<ch>I0T0G``
(``I0`` alone is not off). Commands go out at least 50 ms apart (the Nano's 64-byte buffer);
``stop()`` does not wait for that spacing or for a pending write: it drops the lines the link has
not started to send (superseded setpoints: a storm of duplicated lines can build a queue the
19 200-baud line cannot carry) and puts docs/protocols/openemsstim.md §8's sequence on the wire
at once, behind at most what the line is sending — ``C<ch>I0T0G`` for each channel that may
still be on, then ``C9G``. The shutdown after a reset or a corrupted echo does the same; an
update that finds lines of the one before still waiting ends as a fault (the line cannot carry
what is written, so every later command, a decrease too, would come later still). ``close()``
adds the transport's backstop (``Connection End`` on serial, the disconnect on BLE). The board
never answers: no acks, no read-back (docs/protocols/openemsstim.md §7); a setup banner on
serial means it reset, which is reported and never resumed.

This module must never import pyserial or bleak; the factories import the links lazily.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Mapping

from ...contract import Capabilities, ChannelSetpoint, Driver, Telemetry
from ...errors import DeviceError, InputError, LinkLostError, ValidationFailed
from .params import DeclaredStimulator
from .protocol import (
    MAX_INTENSITY_PCT,
    MAX_ON_TIME_MS,
    SHUTDOWN,
    ActionCommand,
    HostCommand,
    stop_sequence,
)
from .transport import CommandLink

__all__ = ["LINE_SPACING_S", "MAX_LEASE_S", "OpenEmsDriver"]

# docs/protocols/openemsstim.md §6 [emsctl rule]: commands at least 50 ms apart
LINE_SPACING_S = 0.050
# docs/protocols/openemsstim.md §9 [emsctl rule]: T ≤ 1000 ms by default (the board accepts up to
# 5 s)
MAX_LEASE_S = 1.0
UPDATE_PERIOD_S = 0.1  # two channels × 50 ms spacing fit in one tick
#: A channel counts as possibly on until its on-time has surely run out on the board: wire time,
#: the loop pass and the blocking waits can make the board's expiry late by ≈ 100 ms
#: (docs/protocols/openemsstim.md §6).
ACTIVE_MARGIN_S = 0.5
#: The board's stop work: shutdown 2 × 50 ms, the stop idiom's 50 ms per channel, one more line.
CLOSE_DRAIN_S = 0.3
TELEMETRY = frozenset({"connected", "link_lost", "device_reset"})


class OpenEmsDriver(Driver):
    """openEMSstim over a :class:`~.transport.CommandLink` (serial WV lines or BLE writes).

    Args:
        link: the transport to the board.
        declared: the external stimulator's declared rate, width and mA at I = 100.
        url: the device URL, for the journal.
        transport_name: "serial" or "BLE", for the model name.
    """

    def __init__(self, link: CommandLink, declared: DeclaredStimulator, *, url: str = "",
                 transport_name: str = "serial") -> None:
        super().__init__()
        self.link = link
        self.declared = declared
        self.url = url
        f, pw = declared.frequency_hz, declared.pulse_width_us
        self.capabilities = Capabilities(
            model=f"openEMSstim ({transport_name}; external stimulator fixed at {f:g} Hz, "
                  f"{pw:g} µs)",
            channels=2,
            # I ≤ 100 always (docs/protocols/openemsstim.md §12)
            amplitude_max_ma=declared.ma_at_100,
            amplitude_step_ma=declared.ma_per_pct,
            pulse_width_min_us=pw,
            pulse_width_max_us=pw,
            frequency_min_hz=f,
            frequency_max_hz=f,
            frequency_per_channel=False,
            update_period_s=UPDATE_PERIOD_S,
            max_lease_s=MAX_LEASE_S,
            has_output_watchdog=True,  # the on-time: the board switches off by itself
            telemetry=TELEMETRY,
            ma_per_step=declared.ma_per_pct,
        )
        self._opened = False
        self._link_up = False
        self._reset_seen = False
        self._last_write_s = -math.inf
        self._on_until_s = [-math.inf, -math.inf]
        #: When each channel's last on-time surely ended on the board (no margin): a line that
        #: would turn a channel on after that restarts it from zero, which is never done.
        self._off_by_s = [math.inf, math.inf]
        self._lease_ms = 0
        self._intensity_cache: dict[float, int] = {}
        self._shutdown_task: asyncio.Future[None] | None = None
        self._fault: DeviceError | None = None
        #: The session's verified caps per channel (1, 2); a channel without one gets no output.
        self._caps_ma: dict[int, float] = {}

    @property
    def declared_scaling(self) -> Mapping[str, float]:
        """The declared external stimulator: ``ma_at_100``, the current at I = 100 on which
        every mA rests, and the fixed rate and width it delivers them at."""
        declared = self.declared
        return {"ma_at_100": declared.ma_at_100, "frequency_hz": declared.frequency_hz,
                "pulse_width_us": declared.pulse_width_us}

    @property
    def link_up(self) -> bool:
        """True between a successful open and a lost link or ``close()``."""
        return self._link_up

    # ------------------------------------------------------------------ configuration

    def set_channel_caps_ma(self, caps_ma: Mapping[int, float]) -> None:
        """Take the session's verified per-channel caps; output goes only to channels named.

        The board cannot hold a limit, and a corrupted line can open its wiper fully, so each
        cap must be at least the external stimulator's full scale
        (:attr:`~.params.DeclaredStimulator.full_scale_ma`). The caps replace any earlier ones;
        a refusal leaves the driver with none, so nothing but zero can be applied.

        Raises:
            InputError: a channel other than 1 or 2, or a cap that is not a positive figure.
            ValidationFailed: the full scale is above a cap (the sentence says to turn the
                external stimulator down and re-measure ``ma_at_100``).
        """
        self._caps_ma = {}
        for channel, cap_ma in caps_ma.items():
            if channel not in (1, 2):
                raise InputError(f"openEMSstim has channels 1 and 2, not {channel}")
            if not (math.isfinite(cap_ma) and cap_ma > 0):
                raise InputError(f"channel {channel}: a cap must be a positive figure in mA, "
                                 f"got {cap_ma}")
        if not caps_ma:
            return
        channel, cap_ma = min(caps_ma.items(), key=lambda item: (item[1], item[0]))
        declared = self.declared
        if declared.full_scale_ma > cap_ma + 1e-9:
            most = math.floor(declared.largest_ma_at_100_within(cap_ma) * 10) / 10
            raise ValidationFailed(
                f"openEMSstim holds no limit of its own and a corrupted command can open it to "
                f"full scale, where your external stimulator gives "
                f"{declared.full_scale_ma:.1f} mA (ma_at_100={declared.ma_at_100:g}), above "
                f"this session's {cap_ma:g} mA cap on channel {channel}: turn the external "
                f"stimulator down, re-measure ma_at_100 and declare the new value (at most "
                f"{most:g} mA).")
        self._caps_ma = dict(caps_ma)

    # ------------------------------------------------------------------ driver hooks

    async def _connect_internal(self) -> None:
        """Open the link (first time), then shut every channel down with ``C9G``.

        Raises:
            DeviceError: the link cannot be opened, or it was lost earlier.
        """
        if not self._opened:
            self.link.on_lost(self._lost)
            await self.link.open()
            self._opened = self._link_up = True
        elif not self._link_up:
            raise LinkLostError("the link to openEMSstim is lost; open the device again")
        self._reset_seen = False
        self._fault = None
        await self._write_now(SHUTDOWN)
        self._emit(Telemetry("connected", self._now(), message=self.link.description))

    async def _apply_internal(self, setpoints: tuple[ChannelSetpoint, ...], lease_s: float) -> None:
        """Send one action per channel that is on or must go off, ≥ 50 ms apart.

        Raises:
            ValidationFailed: output on a channel without a verified cap (nothing is sent).
            LinkLostError: the link is gone.
            DeviceError: the board reset mid-session (nothing is resumed automatically), or
                the serial line does not carry the commands in time (the lines of the last
                update are still waiting: they are dropped, so the stop goes next).
            DeviceTimeoutError: a BLE write did not complete within 500 ms.
        """
        for channel, setpoint in enumerate(setpoints, start=1):
            if setpoint.amplitude_ma > 0 and channel not in self._caps_ma:
                raise ValidationFailed(
                    f"openEMSstim sends no output on channel {channel} without the session's "
                    "verified cap for it (prepare_run hands the caps over), because the board "
                    "holds no limit of its own")
        if not self._link_up:
            raise LinkLostError("the link to openEMSstim is lost")
        self._check_board()
        if self.link.discard_unsent():
            # lines of an earlier update still wait for the line (they were written ≥ 50 ms
            # apart): it carries less than is written, so every later command — a decrease
            # too — would reach the board later still; the stop that follows goes next
            raise DeviceError("the serial line to openEMSstim cannot carry the commands in "
                              "time (lines of the last update were still waiting to be sent)")
        on_time_ms = min(MAX_ON_TIME_MS, max(1, math.floor(lease_s * 1000)))
        for channel, setpoint in enumerate(setpoints):
            intensity_pct = self.intensity_pct(setpoint.amplitude_ma)
            if intensity_pct >= 1:
                command = ActionCommand(channel, intensity_pct, on_time_ms)
            elif self._possibly_on(channel):
                command = ActionCommand(channel, 0, 0)  # the stop idiom: I0 alone is not off
            else:
                continue
            if not await self._paced_write(command):
                return  # stop() took the wire: nothing more of this update goes out

    async def _stop_internal(self) -> None:
        """Put docs/protocols/openemsstim.md §8's stop sequence on the wire now, the first line
        without waiting.

        Raises:
            LinkLostError: the link is gone; each channel switches off within its on-time.
            DeviceTimeoutError: a BLE write did not complete within 500 ms.
        """
        if not self._link_up:
            raise LinkLostError(
                f"link lost: the stop cannot reach openEMSstim; its on-time switches every "
                f"channel off within {self._lease_ms} ms of the last command (L21)")
        # setpoints the link has not started to send are superseded: the stop goes next
        self.link.discard_unsent()
        on = [ch for ch in (0, 1) if self._possibly_on(ch)]
        for index, command in enumerate(stop_sequence(on)):
            if index:
                await asyncio.sleep(LINE_SPACING_S)
            await self._write_now(command)

    async def _close_internal(self) -> None:
        """Send the transport's backstop, release the link, and give the board time to act.

        The board works through the stop sequence and the backstop with blocking waits
        (50 ms per channel and shutdown, docs/protocols/openemsstim.md §5); returning only after
        :data:`CLOSE_DRAIN_S` means a caller that powers down or reopens the port next does not cut
        them short.
        """
        was_up = self._link_up
        try:
            if was_up:
                await self._sleep_for_slot()
                await self.link.backstop()
        except DeviceError:
            pass  # the stop already went out; the backstop is only a second line of defence
        finally:
            self._link_up = False
            await self.link.close()
        if was_up:
            await asyncio.sleep(CLOSE_DRAIN_S)

    # ------------------------------------------------------------------ helpers

    def intensity_pct(self, amplitude_ma: float) -> int:
        """The ``I`` for ``amplitude_ma``: the largest whose declared current is not above it.

        Computed through the firmware's I → wiper mapping (docs/protocols/openemsstim.md §4.2) and
        the declared calibration (docs/protocols/openemsstim.md §12); never above 100 (the firmware
        does not clamp, so the host does, docs/protocols/openemsstim.md §9).
        """
        return min(self._intensity_by_ma(amplitude_ma), MAX_INTENSITY_PCT)

    def _intensity_by_ma(self, amplitude_ma: float) -> int:
        cache = self._intensity_cache
        found = cache.get(amplitude_ma)
        if found is None:
            found = cache[amplitude_ma] = self.declared.intensity_for(amplitude_ma)
        return found

    def _check_board(self) -> None:
        """Raise if the board reset or executed a corrupted line: its shutdown (``C9G``) is on
        its way, and no update line may follow it.

        Raises:
            DeviceError: the board reset, or echoed a line that was not sent.
        """
        if self._reset_seen:
            raise DeviceError("openEMSstim reset during the session; its outputs are off and "
                              "emsctl does not resume by itself")
        if self._fault is not None:
            raise self._fault

    def _possibly_on(self, channel: int) -> bool:
        return self._now() < self._on_until_s[channel]

    async def _sleep_for_slot(self) -> None:
        wait_s = self._last_write_s + LINE_SPACING_S - self._now()
        if wait_s > 0:
            await asyncio.sleep(wait_s)

    async def _paced_write(self, command: HostCommand) -> bool:
        await self._sleep_for_slot()
        if self.stopped or not self._link_up:
            return False
        self._check_board()  # a reset or a corrupted echo while this update waited its slot
        if isinstance(command, ActionCommand) and command.intensity_pct > 0 \
                and self._now() >= self._off_by_s[command.channel]:
            # the host stalled while this update waited for its slot and the board's on-time
            # ran out: the channel is off, and output never restarts at a level from before
            raise DeviceError(f"openEMSstim channel {command.channel + 1} switched off by its "
                              "on-time while this computer stalled; the update was not sent")
        await self._write_now(command)
        return True

    async def _write_now(self, command: HostCommand) -> None:
        now = self._now()
        self._last_write_s = now
        if isinstance(command, ActionCommand):
            if command.on_time_ms > 0:
                self._lease_ms = command.on_time_ms
                self._on_until_s[command.channel] = (now + command.on_time_ms / 1000
                                                     + ACTIVE_MARGIN_S)
                self._off_by_s[command.channel] = now + command.on_time_ms / 1000
            else:
                self._on_until_s[command.channel] = -math.inf
                self._off_by_s[command.channel] = math.inf
        else:
            self._on_until_s = [-math.inf, -math.inf]
            self._off_by_s = [math.inf, math.inf]
        try:
            await self.link.send(command)
        except LinkLostError:
            self._link_up = False
            raise

    async def _shutdown_after_reset(self) -> None:
        with contextlib.suppress(DeviceError):
            self.link.discard_unsent()  # superseded setpoints: C9G goes next
            await self._write_now(SHUTDOWN)

    def _lost(self, reason: str) -> None:
        if not self._link_up:
            return
        self._link_up = False
        self._emit(Telemetry("link_lost", self._now(),
                             message=f"{reason}; the board switches its outputs off within "
                                     f"its on-time ({self._lease_ms} ms)"))

    def echo_mismatch(self, executed: bytes) -> None:
        """The board echoed a command that was not sent: a line corrupted on the way (HZ-12).

        The protocol has no checksum, so the echo is the only read-back: the board is shut
        down at once (``C9G``), further updates are refused, and the session is told.
        """
        text = executed.decode("ascii", "replace")
        self._fault = DeviceError(f"openEMSstim executed {text!r}, which was not sent (a "
                                  "corrupted line; the protocol has no checksum)")
        if self._link_up and (self._shutdown_task is None or self._shutdown_task.done()):
            self._shutdown_task = asyncio.ensure_future(self._shutdown_after_reset())
        self._emit(Telemetry("device_error", self._now(), message=str(self._fault)))

    def board_reset(self) -> None:
        """The board printed its setup banner mid-session: it reset and every channel is off.

        Lines sent while it was booting wait in its receive buffer and run right after setup,
        so a shutdown (``C9G``) follows them at once; further updates are refused
        (docs/protocols/openemsstim.md §7 step 5).
        """
        self._reset_seen = True
        if self._link_up:
            self._shutdown_task = asyncio.ensure_future(self._shutdown_after_reset())
        self._emit(Telemetry("device_reset", self._now(),
                             message="openEMSstim reset (setup banner mid-session); outputs "
                                     "are off and are not resumed"))
