"""An emulated Hasomed RehaStim2 speaking ScienceMode2, bytes in and bytes out.

:class:`RehaStim2` follows the device side of ``docs/protocols/sciencemode2.md``: it sends Init
every 500 ms until an InitAck with result 0 arrives (docs/protocols/sciencemode2.md §5), runs the
stimulation-mode state machine (0 start, 1 initialised, 2 started), checks parameters with the
device's own result codes, keeps the communication watchdog (1.2 s by default; 2.0 s and gap logging
in the ``lenient`` profile; ``log_only`` never expires), applies output after the execution latency
(15 ms by default), reports electrode errors from the body model as StimulationError −2, and
tolerates the clients in the field that docs/protocols/sciencemode2.md §10 describes. Output goes to
a :class:`SimulatedStimulator`, whose recorder says what was delivered; the model's own per-channel
lease is set to the same watchdog deadline, so the record shows output zeroed exactly when the
watchdog expires.

It runs on the running asyncio loop (virtual or real time) and never reads the wall clock, sleeps
or does I/O itself: bytes leave through the ``write`` callable it is given. Its one invariant
(HZ-12): no output unless a valid, acknowledged StartChannelListMode or SinglePulse asked for it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from ...contract import ZERO, ChannelSetpoint
from ...drivers.sciencemode2 import protocol as p
from ...errors import InputError
from ..body import BodyModel
from ..model import DeviceEvent, DeviceSpec, SimulatedStimulator
from .sciencemode_emulator import Log, ScienceModeEmulator, Trace

if TYPE_CHECKING:
    from ..pty import PtyDeviceOptions

__all__ = ["INIT_PERIOD_S", "REHASTIM2_FAULT_KINDS", "Log", "RehaStim2", "RehaStim2Config",
           "Trace", "pty_device", "rehastim2_spec"]

INIT_PERIOD_S = 0.5
STRICT_WATCHDOG_S = 1.2
LENIENT_WATCHDOG_S = 2.0
#: Stand-in for "never" in the model's lease when the watchdog only logs.
_NEVER_S = 1e9
_SLOT_S = 0.0015  # each active channel occupies a 1.5 ms slot
_XOR_GET_MODE = p.Command.GET_STIMULATION_MODE ^ 0x55  # 0x5F from clients that XOR in place
_ACKED_REQUESTS = frozenset({10, 12, 30, 32, 34, 36, *range(50, 87, 2)})

#: What a fault plan can do to the device itself (its cable's kinds are the link's).
REHASTIM2_FAULT_KINDS: frozenset[str] = frozenset(
    {"drop_acks", "late_acks", "busy", "electrode_off", "electrode_on", "impedance",
     "device_reset", "wrong_current"})


@dataclass(frozen=True)
class RehaStim2Config:
    """How the emulated device behaves.

    Attributes:
        profile: ``strict`` follows the spec literally; ``lenient`` tolerates field clients.
        watchdog_s: communication watchdog; None = profile default (1.2 s strict, 2.0 s
            lenient); ``math.inf`` = ``log_only`` (never expires, logs gaps over 1.2 s).
        reply_delay_s: time to answer a command (the spec allows up to 100 ms).
        execution_latency_s: time from a stimulation command to its effect on the output.
        init_period_s: Init repetition while not connected.
        protocol_version: sent in Init.
        compliance_v: the output stage's compliance voltage (L5).

    Raises:
        InputError: an unknown profile or a negative or non-finite time.
    """

    profile: Literal["strict", "lenient"] = "strict"
    watchdog_s: float | None = None
    reply_delay_s: float = 0.0
    execution_latency_s: float = 0.015
    init_period_s: float = INIT_PERIOD_S
    protocol_version: int = 1
    compliance_v: float = 100.0

    def __post_init__(self) -> None:
        if self.profile not in ("strict", "lenient"):
            raise InputError(f"profile must be 'strict' or 'lenient', not {self.profile!r}")
        if self.watchdog_s is not None and not (self.watchdog_s > 0):
            raise InputError(f"watchdog must be positive, got {self.watchdog_s} s")
        times = (self.reply_delay_s, self.execution_latency_s, self.init_period_s)
        if not all(math.isfinite(t) and t >= 0 for t in times) or self.init_period_s <= 0:
            raise InputError("emulator times must be finite and non-negative")

    @property
    def effective_watchdog_s(self) -> float:
        """The watchdog in force (``math.inf`` when it only logs)."""
        if self.watchdog_s is not None:
            return self.watchdog_s
        return LENIENT_WATCHDOG_S if self.profile == "lenient" else STRICT_WATCHDOG_S


def rehastim2_spec(config: RehaStim2Config) -> DeviceSpec:
    """The :class:`DeviceSpec` of a RehaStim2 output stage for ``config``."""
    watchdog_s = config.effective_watchdog_s
    return DeviceSpec(channels=p.CHANNEL_COUNT, amplitude_max_ma=float(p.MAX_CURRENT_MA),
                      frequency_min_hz=0.1, frequency_max_hz=125.0, pulse_width_min_us=20.0,
                      pulse_width_max_us=float(p.MAX_PULSE_WIDTH_US),
                      watchdog_s=watchdog_s if math.isfinite(watchdog_s) else _NEVER_S,
                      compliance_v=config.compliance_v, zero_on_disconnect=False)


class RehaStim2(ScienceModeEmulator[p.Frame, p.BadFrame]):
    """The emulated device: feed it host bytes with :meth:`receive`; it writes replies.

    Its fault hooks (:class:`~.sciencemode_emulator.ScienceModeEmulator`): ``busy`` answers −8
    to every acked command but Stop; Init and StimulationError are never withheld or delayed. A
    reset (a brown-out) zeroes the output, resets the modes and sends Init again.

    Args:
        device: the output stage (8 channels; see :func:`rehastim2_spec`).
        write: called with each outgoing frame (one call per frame).
        config: behaviour; defaults to the strict profile.
        trace: optional frame log, see :data:`Trace`.
        log: optional human log (watchdog, clamps, errors, output changes).

    Raises:
        InputError: a device without 8 channels.
    """

    def __init__(self, device: SimulatedStimulator, write: Callable[[bytes], None],
                 config: RehaStim2Config | None = None, *, trace: Trace | None = None,
                 log: Log | None = None) -> None:
        if device.spec.channels != p.CHANNEL_COUNT:
            raise InputError(f"a RehaStim2 has {p.CHANNEL_COUNT} channels")
        super().__init__(device, write, p.FrameDecoder(), fault_kinds=REHASTIM2_FAULT_KINDS,
                         trace=trace, log=log)
        self.config = config or RehaStim2Config()
        self.connected = False
        self.mode = p.StimulationMode.START
        self.clm: p.InitChannelListMode | None = None
        self.settings: tuple[p.ChannelSettings, ...] = ()
        self._device_pn = 0
        self._last_valid_s: float | None = None
        self._init_timer: asyncio.TimerHandle | None = None
        self._watchdog_timer: asyncio.TimerHandle | None = None
        self._pending: list[asyncio.TimerHandle] = []
        self._generation = 0  # bumps on stop/reset: output scheduled before is void
        self._shown = ""  # the output last logged ("" = zero)
        device.add_listener(self._on_device_event)

    # ------------------------------------------------------------------ power

    def power_on(self) -> None:
        """Switch on (into ScienceMode2): not connected, sending Init every 500 ms."""
        if self.powered:
            return
        self.powered = True
        self._disconnect("powered on")

    def power_off(self) -> None:
        """Switch off: output zero, all timers cancelled."""
        self.powered = False
        self._stop_output()
        self.connected = False
        for timer in (self._init_timer, self._watchdog_timer):
            if timer is not None:
                timer.cancel()
        self._init_timer = self._watchdog_timer = None

    def stimulation_error(self, code: p.StimulationErrorCode) -> None:
        """The output stage fails (emergency switch, electrode, module): stop, report, mode 0."""
        self._stop_output()
        self.mode = p.StimulationMode.START
        self.clm = None
        self._say(f"stimulation error {code.name} ({int(code)}): output stopped")
        self._send(p.StimulationError(packet_number=self._next_device_pn(), error=code))

    def status(self) -> str:
        """Connection, mode and counters in one line."""
        state = f"connected, mode {int(self.mode)} ({self.mode.name.lower()})" \
            if self.connected else "not connected (sending Init)"
        return (f"{state}; frames in {self.frames_in}, bad {self.bad_frames_in}; "
                f"watchdog {self.config.effective_watchdog_s:g} s, {self.config.profile}")

    @property
    def reply_delay_s(self) -> float:
        """The configured time to answer a command."""
        return self.config.reply_delay_s

    # ------------------------------------------------------------------ bytes in

    def _bad_frame(self, bad: p.BadFrame) -> None:
        self._trace_frame("host→device", bad.wire, f"bad frame ({bad.reason})")
        payload = bad.payload
        transfer = bad.reason in (p.BadFrameReason.LENGTH_MISMATCH,
                                  p.BadFrameReason.CHECKSUM_MISMATCH)
        if not (self.connected and transfer and payload is not None and len(payload) >= 2):
            return  # not connected, or nothing to echo: dropped without a reply
        pn, command = payload[0], payload[1]
        if command in _ACKED_REQUESTS:  # Watchdog and InitAck get no reply
            self._send_raw(bytes((pn, command + 1, 0xFF)), f"ack of {command}: −1 (transfer)")

    def _frame(self, frame: p.Frame) -> None:
        pn, command = frame.packet_number, frame.command
        if command == _XOR_GET_MODE and self.config.profile == "lenient":
            command = p.Command.GET_STIMULATION_MODE
        try:
            message: p.Message | None = p.decode_frame(bytes((pn, command)) + frame.payload[2:])
            problem = ""
        except p.UnknownCommandError:
            message, problem = None, "unknown"
        except p.MessageDecodeError as exc:
            message, problem = None, str(exc)
        self._trace_frame("host→device", frame.wire,
                          type(message).__name__ if message else f"command {command}: {problem}")
        if not self.connected:
            if isinstance(message, p.InitAck) and message.result == p.Result.OK:
                self._connect()
            # everything else is ignored until the handshake (docs/protocols/sciencemode2.md §5)
            return
        self._renew_watchdog()
        if message is None:
            self._refuse(pn, command, problem)
        elif self.busy and command in _ACKED_REQUESTS and command != 34:
            self._busy(pn, command)
        else:
            self._dispatch(message)

    def _refuse(self, pn: int, command: int, problem: str) -> None:
        if problem == "unknown":
            if p.is_motomed_command(command) and command % 2 == 0 and command != 12:
                self._send_raw(bytes((pn, command + 1, 0xFC)), f"MOTOmed {command}: −4")
            elif command == 12:  # GetMotomedMode: result 0, mode −1
                self._send_raw(bytes((pn, 13, 0, 0xFF)), "GetMotomedModeAck: 0, mode −1")
            elif not p.is_motomed_command(command):
                self._send(p.UnknownCommand(packet_number=pn, received_command=command))
            return
        if command in (p.Command.WATCHDOG, p.Command.INIT_ACK):
            return  # never answered
        # A wrong byte count or a value out of range: −2, state unchanged. Stop and
        # GetStimulationMode acks cannot carry −2 (docs/protocols/sciencemode2.md §4), so they get
        # −1.
        result = 0xFF if command in (10, 34) else 0xFE
        if command in _ACKED_REQUESTS:
            self._send_raw(bytes((pn, command + 1, result)), f"ack of {command}: refused")

    def _busy(self, pn: int, command: int) -> None:
        self._send_raw(bytes((pn, command + 1, 0xF8)), f"ack of {command}: −8 (busy)")

    # ------------------------------------------------------------------ commands

    def _dispatch(self, message: p.Message) -> None:
        pn = message.packet_number
        mode = self.mode
        if isinstance(message, p.GetStimulationMode):
            self._send(p.GetStimulationModeAck(packet_number=pn, result=p.Result.OK, mode=mode))
        elif isinstance(message, p.StopChannelListMode):
            self._stop_output()
            self.mode, self.clm = p.StimulationMode.START, None
            self._send(p.StopChannelListModeAck(packet_number=pn, result=p.Result.OK))
        elif isinstance(message, p.InitChannelListMode):
            result = self._init_clm(message) if mode == p.StimulationMode.START \
                else p.Result.WRONG_MODE
            self._send(p.InitChannelListModeAck(packet_number=pn, result=result))
        elif isinstance(message, p.StartChannelListMode):
            result = self._start(message) if mode != p.StimulationMode.START \
                else p.Result.WRONG_MODE
            self._send(p.StartChannelListModeAck(packet_number=pn, result=result))
        elif isinstance(message, p.SinglePulse):
            result = self._single_pulse(message) if mode == p.StimulationMode.START \
                else p.Result.WRONG_MODE
            self._send(p.SinglePulseAck(packet_number=pn, result=result))
        elif not isinstance(message, p.Watchdog | p.InitAck):
            # a device→host message sent to the device: not a command it knows
            self._send(p.UnknownCommand(packet_number=pn, received_command=message.command))

    def _init_clm(self, msg: p.InitChannelListMode) -> p.Result:
        if msg.active_channel_mask == 0:
            return p.Result.PARAMETER_ERROR
        t2, t1 = msg.inter_pulse_interval_code, msg.main_interval_code
        below = t2 < p.MIN_INTER_PULSE_INTERVAL_CODE or 0 < t1 < p.MIN_MAIN_INTERVAL_CODE
        if below:
            if self.config.profile == "strict":
                return p.Result.PARAMETER_ERROR
            self._say(f"InitChannelListMode: t2 code {t2} / t1 code {t1} below the 8 ms "
                      "firmware minimum: clamped to 8 ms (lenient)")
            t2 = max(t2, p.MIN_INTER_PULSE_INTERVAL_CODE)
            t1 = t1 if t1 == 0 else max(t1, p.MIN_MAIN_INTERVAL_CODE)
        self.clm = replace(msg, inter_pulse_interval_code=t2, main_interval_code=t1,
                           low_frequency_channel_mask=msg.low_frequency_channel_mask
                           & msg.active_channel_mask)
        self.mode = p.StimulationMode.INITIALISED
        return p.Result.OK

    def _start(self, msg: p.StartChannelListMode) -> p.Result:
        clm = self.clm
        assert clm is not None
        if len(msg.channel_settings) != len(clm.active_channels):
            return p.Result.PARAMETER_ERROR
        settings = tuple(replace(s, pulse_width_us=20) if 0 < s.pulse_width_us < 20 else s
                         for s in msg.channel_settings)  # the device raises 1–19 µs to 20
        groups = 1 + max(int(s.pulse_group) for s in settings)
        t1_ms = clm.main_interval_ms
        t2_ms = clm.inter_pulse_interval_ms
        if t1_ms is not None and t1_ms < groups * t2_ms:
            if self.config.profile == "strict" or t1_ms / groups < 8.0:
                return p.Result.PARAMETER_ERROR
            self._say(f"t1 {t1_ms:g} ms < {groups}·t2: t2 clamped to {t1_ms / groups:g} ms")
            t2_ms = t1_ms / groups
        unchanged = (self.mode == p.StimulationMode.STARTED and settings == self.settings
                     and t1_ms is not None)
        self.mode = p.StimulationMode.STARTED
        self.settings = settings
        if not unchanged:  # an identical update changes nothing on the output
            self._schedule(self._apply, clm, settings, t2_ms)
        return p.Result.OK

    def _single_pulse(self, msg: p.SinglePulse) -> p.Result:
        width = 20 if 0 < msg.pulse_width_us < 20 else msg.pulse_width_us
        if msg.current_ma and width:
            setting = {msg.channel_index + 1: ChannelSetpoint(float(msg.current_ma), 1.0,
                                                              float(width))}
            self._schedule(self._pulse_once, setting, _SLOT_S)
        return p.Result.OK

    # ------------------------------------------------------------------ output

    def _schedule(self, action: Callable[..., None], *args: object) -> None:
        loop = asyncio.get_running_loop()
        generation = self._generation
        handle = loop.call_later(self.config.execution_latency_s, self._run_if_current,
                                 generation, action, args)
        self._pending.append(handle)

    def _run_if_current(self, generation: int, action: Callable[..., None],
                        args: tuple[object, ...]) -> None:
        self._pending = [h for h in self._pending if not h.cancelled() and h.when() >
                         asyncio.get_running_loop().time()]
        if generation == self._generation and self.connected:
            action(*args)

    def _apply(self, clm: p.InitChannelListMode, settings: tuple[p.ChannelSettings, ...],
               t2_ms: float) -> None:
        t1_ms = clm.main_interval_ms
        outputs: dict[int, ChannelSetpoint] = {}
        for channel, s in zip(clm.active_channels, settings, strict=True):
            if s.current_ma == 0 or s.pulse_width_us == 0:
                continue
            if self.device.body.load(channel).no_load:
                self.stimulation_error(p.StimulationErrorCode.ELECTRODE_ERROR)
                # the skin-resistance test fails before the first pulse
                # (docs/protocols/sciencemode2.md §2)
                return
            rate_hz = 1.0 if t1_ms is None else 1000.0 / t1_ms
            if channel in clm.low_frequency_channels:
                rate_hz /= clm.low_frequency_factor + 1
            outputs[channel] = _setpoint(s, rate_hz, t2_ms)
        if t1_ms is None:  # one-shot: the list runs once per command
            self._pulse_once(outputs, _SLOT_S * len(clm.active_channels) + 3 * t2_ms / 1000)
            return
        self._set(outputs)

    def _pulse_once(self, outputs: dict[int, ChannelSetpoint], duration_s: float) -> None:
        self._set(outputs)
        asyncio.get_running_loop().call_later(duration_s, self._end_pulse, self._generation)

    def _end_pulse(self, generation: int) -> None:
        if generation == self._generation:
            self._set({})

    def _set(self, outputs: dict[int, ChannelSetpoint]) -> None:
        deadline = self._watchdog_deadline_s()
        lease_s = _NEVER_S if deadline is None else deadline - asyncio.get_running_loop().time()
        if lease_s <= 0:
            return
        full = [outputs.get(c, ZERO) for c in self.device.channels]
        # the model's lease ends exactly at the watchdog deadline: the record shows the zero
        if not self.device.set_outputs(full, lease_s):
            self.stimulation_error(p.StimulationErrorCode.STIMULATION_MODULE_ERROR)
            return
        shown = ", ".join(f"ch{c} {sp.amplitude_ma:g} mA {sp.pulse_width_us:g} µs "
                          f"{sp.frequency_hz:.2f} Hz" for c, sp in sorted(outputs.items()))
        if shown != self._shown:  # log changes, not every identical update
            self._shown = shown
            self._say(f"output {shown or 'zero'}")

    def _stop_output(self) -> None:
        self._generation += 1
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()
        self.settings = ()
        self.device.stop()
        if self._shown:
            self._shown = ""
            self._say("output zero")

    # ------------------------------------------------------------------ connection, watchdog

    def _connect(self) -> None:
        if self._init_timer is not None:
            self._init_timer.cancel()
            self._init_timer = None
        self.connected = True
        self.mode, self.clm = p.StimulationMode.START, None
        self._say("connected (InitAck 0)")
        self._renew_watchdog()

    def _disconnect(self, why: str) -> None:
        self._stop_output()
        self.connected = False
        self.mode, self.clm = p.StimulationMode.START, None
        self._last_valid_s = None
        if self._watchdog_timer is not None:
            self._watchdog_timer.cancel()
            self._watchdog_timer = None
        self._say(f"not connected ({why}): sending Init every {self.config.init_period_s:g} s")
        if self._init_timer is not None:
            self._init_timer.cancel()
        self._send_init()

    def _send_init(self) -> None:
        self._init_timer = None
        if not self.powered or self.connected:
            return
        self._send(p.Init(packet_number=self._next_device_pn(),
                          protocol_version=self.config.protocol_version))
        self._init_timer = asyncio.get_running_loop().call_later(self.config.init_period_s,
                                                                 self._send_init)

    def _watchdog_deadline_s(self) -> float | None:
        watchdog_s = self.config.effective_watchdog_s
        if self._last_valid_s is None or not math.isfinite(watchdog_s):
            return None
        return self._last_valid_s + watchdog_s

    def _renew_watchdog(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._last_valid_s is not None and now - self._last_valid_s > STRICT_WATCHDOG_S:
            self._say(f"keep-alive gap of {now - self._last_valid_s:.3f} s (> 1.2 s)")
        self._last_valid_s = now
        watchdog_s = self.config.effective_watchdog_s
        if self._shown:  # output is on: move its lease to the new deadline
            self.device.keep_alive(watchdog_s if math.isfinite(watchdog_s) else _NEVER_S)
        if self._watchdog_timer is None and math.isfinite(watchdog_s):
            self._watchdog_timer = loop.call_at(now + watchdog_s, self._watchdog_expired)

    def _watchdog_expired(self) -> None:
        # One lazy timer: a renewal only moves the deadline; the timer re-arms itself there.
        self._watchdog_timer = None
        deadline = self._watchdog_deadline_s()
        if deadline is None:
            return
        loop = asyncio.get_running_loop()
        if loop.time() < deadline:
            self._watchdog_timer = loop.call_at(deadline, self._watchdog_expired)
            return
        self._disconnect(f"watchdog: no valid packet for {self.config.effective_watchdog_s:g} s")

    def _on_device_event(self, event: DeviceEvent) -> None:
        if event.kind == "device_reset" and self.powered:
            self._device_pn = 0
            self._disconnect("device reset")
        elif event.kind == "electrode_off" and self.mode == p.StimulationMode.STARTED:
            clm = self.clm
            if clm is not None and any(
                    s.current_ma > 0 and ch == event.channel
                    for ch, s in zip(clm.active_channels, self.settings, strict=False)):
                self.stimulation_error(p.StimulationErrorCode.ELECTRODE_ERROR)

    # ------------------------------------------------------------------ bytes out

    def _next_device_pn(self) -> int:
        pn = self._device_pn
        self._device_pn = (pn + 1) & 0xFF
        return pn

    def _send(self, message: p.Message) -> None:
        self._send_raw(p.encode_payload(message), type(message).__name__)

    def _send_raw(self, payload: bytes, text: str) -> None:
        unsolicited = payload[1] in (p.Command.INIT, p.Command.STIMULATION_ERROR)
        self._reply(p.encode_frame(payload), text, unsolicited=unsolicited)


def _setpoint(s: p.ChannelSettings, rate_hz: float, t2_ms: float) -> ChannelSetpoint:
    """One channel's output: singles at ``rate_hz``; doublets/triplets as bursts spaced t2."""
    if s.pulse_group == p.PulseGroup.SINGLE:
        return ChannelSetpoint(float(s.current_ma), rate_hz, float(s.pulse_width_us))
    return ChannelSetpoint(float(s.current_ma), 1000.0 / t2_ms, float(s.pulse_width_us),
                           burst_rate_hz=rate_hz, burst_pulses=int(s.pulse_group) + 1)


def pty_device(options: PtyDeviceOptions, write: Callable[[bytes], None], trace: Trace,
               log: Log) -> RehaStim2:
    """The factory ``emsctl simulate sciencemode2 --pty`` uses (see :mod:`..pty`).

    Raises:
        InputError: bad options.
    """
    if options.extras:
        raise InputError(f"sciencemode2 takes no extra options, got {sorted(options.extras)}")
    profile: Literal["strict", "lenient"] = "lenient" if options.profile == "lenient" \
        else "strict"
    if options.profile not in ("strict", "lenient"):
        raise InputError(f"profile must be strict or lenient, not {options.profile!r}")
    config = RehaStim2Config(profile=profile, watchdog_s=options.watchdog_s)
    device = SimulatedStimulator(rehastim2_spec(config),
                                 BodyModel(p.CHANNEL_COUNT, options.impedance_ohm))
    return RehaStim2(device, write, config, trace=trace, log=log)
