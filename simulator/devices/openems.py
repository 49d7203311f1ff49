"""An emulated openEMSstim board: the firmware's device side, on the simulator model.

Follows ``docs/protocols/openemsstim.md`` (device side): lines are split and classified by
the codec's :class:`~emsctl.drivers.openems.protocol.LineParser` (trimming, the WV hex quirk,
``Connection End``, the single-character test handler, legacy plain text); actions follow the
state machine of docs/protocols/openemsstim.md §5 (sticky I/T per channel, T capped at 5000 ms, I
written to the wiper at once, an out-of-range channel shuts everything down); each channel's on-time
is its lease and expires on the first loop pass after its deadline.

Malformed input gets no kinder treatment than the firmware gives it. The parser's values are
the board's 16-bit ``int``: a letter without digits is −1 and is used (``I`` −1 is wiper 202,
``T`` −1 an on-time already over), and ``T40000`` is −25536, which slips past the 5000 ms cap.
The wiper comes from the firmware's 16-bit arithmetic (``firmware_wiper_steps``: I 206–375
close the wiper). Options are read with ``atol`` and stored unchecked. The deadline is the
firmware's ``endTime = millis() + onTime`` in unsigned 32-bit arithmetic: a negative on-time is
over at once, unless ``millis()`` is still smaller than it (the first 32.8 s after a reset),
when ``endTime`` wraps about 49.7 days ahead; an ``endTime`` of 0 never expires. ``millis()``
counts from the last reset; a board that was never reset here is taken to have finished its
setup just before its first action (the smallest uptime, which makes that wrap most likely).

Deactivation sets the wiper to 255 at once and blocks the loop for 50 ms (``model_blocking``),
as does the 50 ms read timeout of a line without ``\\n``. The board is an attenuator: what
flows is the external stimulator's output through the wiper (:class:`ExternalStimulator`),
recorded by a :class:`SimulatedStimulator`.

Transports are attached from outside (:mod:`.openems_front`): USB bytes arrive through
:meth:`OpenEmsBoard.serial_receive`, RN4020 lines through :meth:`OpenEmsBoard.ble_line`. Debug
output (docs/protocols/openemsstim.md §2) goes to the USB writer when ``debug`` is on. Unsafe inputs
(I > 100, negative values, the test handler, parameters without a channel, options that store a
bound outside 0–255) are carried out faithfully and logged in :attr:`OpenEmsBoard.unsafe_events`.

Everything runs on the running asyncio loop: no threads, no wall clock, no I/O of its own.
Nothing here may raise on received bytes.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from ...contract import ChannelSetpoint
from ...drivers.openems.protocol import (
    DEFAULT_WINDOW,
    MAX_INTENSITY_PCT,
    WIPER_MAX_STEPS,
    BlankLine,
    CalibrationOption,
    CalibrationWindow,
    ConnectionEnd,
    DebugKind,
    DeviceInput,
    Firmware,
    InertOption,
    LineParser,
    ParsedAction,
    SingleCharAction,
    SingleCharCommand,
    UnknownCommand,
    WindowBound,
    classify_line,
    decode_wv_line,
    encode_debug_line,
    firmware_wiper_steps,
    intensity_pct_to_wiper_steps,
)
from ...errors import InputError
from ..body import BodyModel
from ..model import DeviceSpec, SimulatedStimulator

__all__ = ["Activation", "ExternalStimulator", "OpenEmsBoard", "OpenEmsConfig", "UnsafeEvent",
           "WindowSteps"]

BLOCK_S = 0.050  # the firmware's delay(50) in deactivate()
READ_TIMEOUT_S = 0.050  # Serial.readStringUntil('\n') timeout
RX_BUFFER_BYTES = 64  # the Nano's receive buffer: bytes beyond it are lost while it is busy
BOOT_S = 11.4  # setup's fixed delays after a reset (4.2 s BLE reset + 7.2 s BLE init)
#: The model's own watchdog is not the board's: the on-time (or nothing, for the test handler's
#: toggle) switches off. This only bounds a record left running.
_MODEL_HOLD_S = 3600.0
#: How long after a due expiry the model's record may run on (a pass, plus margin).
_EXPIRY_SLACK_S = 0.01
_MILLIS_WRAP = 2**32  # millis() and endTime are unsigned long
SETUP_LINES = (b"openEMSstim booting", b"BLE module reset", b"BLE module initialised")


@dataclass(frozen=True, slots=True)
class ExternalStimulator:
    """The certified stimulator the board modulates; its settings never change from the host.

    The transfer through the attenuator is the declared calibration of
    docs/protocols/openemsstim.md §12 taken as true: the current is linear in the wiper's level
    across the window, 0 mA at the level of I = 0 and ``ma_at_100`` at the level of I = 100; levels
    beyond (I > 100, test-handler steps) pass proportionally more, up to wiper 0.

    Raises:
        InputError: a figure that is not finite and positive.
    """

    frequency_hz: float
    pulse_width_us: float
    ma_at_100: float

    def __post_init__(self) -> None:
        for name in ("frequency_hz", "pulse_width_us", "ma_at_100"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"external stimulator {name} must be positive, got {value}")


@dataclass(frozen=True, slots=True)
class OpenEmsConfig:
    """Emulator configuration (docs/protocols/openemsstim.md §5 table) plus the external stimulator
    and the load.

    Raises:
        InputError: a window whose I = 0 and I = 100 levels coincide, or a bad figure.
    """

    external: ExternalStimulator
    firmware: Firmware = Firmware.CURRENT
    debug: bool = True
    windows: tuple[CalibrationWindow, CalibrationWindow] = (DEFAULT_WINDOW, DEFAULT_WINDOW)
    loop_ms: float = 1.0
    model_blocking: bool = True
    boot_s: float = BOOT_S
    impedance_ohm: float = 1000.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.loop_ms) and 0 < self.loop_ms <= 100):
            raise InputError(f"loop_ms must be in (0, 100], got {self.loop_ms}")
        if not (math.isfinite(self.boot_s) and 0 <= self.boot_s <= 60):
            raise InputError(f"boot_s must be in [0, 60], got {self.boot_s}")
        for window in self.windows:
            if _level(0, window) == _level(MAX_INTENSITY_PCT, window):
                raise InputError(f"calibration window {window} maps I 0 and 100 alike")


@dataclass(frozen=True, slots=True)
class UnsafeEvent:
    """An input the host must never send, carried out as the firmware does."""

    t_s: float
    kind: str
    detail: str


@dataclass(frozen=True, slots=True)
class WindowSteps:
    """A channel's calibration window as the firmware holds it: whatever an option stored, not
    checked (the level is clamped to 0–255 only when an intensity is set)."""

    min_steps: int
    max_steps: int


@dataclass(frozen=True, slots=True)
class Activation:
    """A channel's relays closed (or kept closed) by an input, for tests and audits.

    ``deadline_s`` is None when nothing will switch the channel off: the test handler's toggle,
    which has no on-time, or an ``endTime`` that came out as 0.
    """

    t_s: float
    channel: int
    wiper_steps: int
    deadline_s: float | None
    source: str


@dataclass(slots=True)
class _Channel:
    active: bool = False
    wiper_steps: int = WIPER_MAX_STEPS
    on_time_ms: int = 1  # INITIAL_ON_TIME_MS
    deadline_s: float | None = None
    timer: asyncio.TimerHandle | None = None


def _level(intensity_pct: int, window: CalibrationWindow) -> int:
    return WIPER_MAX_STEPS - intensity_pct_to_wiper_steps(intensity_pct, window)


@dataclass
class _Inbox:
    usb: bytearray = field(default_factory=bytearray)
    ble: list[bytes] = field(default_factory=list)
    items: list[tuple[DeviceInput, bytes, str]] = field(default_factory=list)
    shutdowns: list[int] = field(default_factory=list)  # channels still to deactivate


class OpenEmsBoard:
    """The firmware of docs/protocols/openemsstim.md §5 on a 2-channel :class:`SimulatedStimulator`
    (channels 1 and 2).

    Args:
        config: firmware generation, debug output, windows, timing and the external unit.
    """

    def __init__(self, config: OpenEmsConfig) -> None:
        self.config = config
        ext = config.external
        self._ma_per_level = [ext.ma_at_100 / (_level(100, w) - _level(0, w))
                              for w in config.windows]
        self._zero_level = [_level(0, w) for w in config.windows]
        peak_ma = max(self._level_ma(ch, WIPER_MAX_STEPS) for ch in (0, 1))
        spec = DeviceSpec(channels=2, amplitude_max_ma=peak_ma,
                          frequency_min_hz=ext.frequency_hz, frequency_max_hz=ext.frequency_hz,
                          pulse_width_min_us=ext.pulse_width_us,
                          pulse_width_max_us=ext.pulse_width_us,
                          watchdog_s=_MODEL_HOLD_S, zero_on_disconnect=False)
        #: The output record; the board's own on-time does the switching off.
        self.device = SimulatedStimulator(spec, BodyModel(2, config.impedance_ohm))
        self.windows = [WindowSteps(w.min_steps, w.max_steps) for w in config.windows]
        self.unsafe_events: list[UnsafeEvent] = []
        self.activations: list[Activation] = []
        self.debug_lines: list[bytes] = []
        self.dropped_rx_bytes = 0
        self.usb_writer: Callable[[bytes], None] | None = None
        self._channels = [_Channel(), _Channel()]
        self._parser = LineParser(config.firmware)
        self._inbox = _Inbox()
        self._busy_until_s = 0.0
        self._reading_until_s = 0.0
        self._booting_until_s: float | None = None
        #: When millis() was 0: the last reset (None: never reset here; see :meth:`_millis`).
        self._powered_s: float | None = None
        self._service_timer: asyncio.TimerHandle | None = None
        self._read_timer: asyncio.TimerHandle | None = None
        self._boot_timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ observation

    def wiper_steps(self, channel: int) -> int:
        """The wiper of zero-based ``channel`` (255: no signal)."""
        return self._channels[channel].wiper_steps

    def active(self, channel: int) -> bool:
        """True while zero-based ``channel``'s relays are closed."""
        return self._channels[channel].active

    @property
    def booting(self) -> bool:
        """True while setup runs after a reset."""
        return self._booting_until_s is not None

    def level_ma(self, channel: int, wiper_steps: int) -> float:
        """What flows on zero-based ``channel`` with relays closed at ``wiper_steps``."""
        return self._level_ma(channel, WIPER_MAX_STEPS - wiper_steps)

    # ------------------------------------------------------------------ inputs

    def serial_receive(self, data: bytes) -> None:
        """Bytes from the USB serial port. Never raises."""
        inbox = self._inbox
        if self._blocked(self._now()):
            room = max(0, RX_BUFFER_BYTES - len(inbox.usb))
            self.dropped_rx_bytes += max(0, len(data) - room)
            inbox.usb += data[:room]
        else:
            inbox.usb += data
        self._service()

    def ble_line(self, line: bytes) -> None:
        """A line from the RN4020 module (``WV,001C,….`` or ``Connection End``). Never raises.

        Lines are lost while setup runs: the BLE module itself is being reset.
        """
        if self._booting_until_s is not None:
            return
        self._inbox.ble.append(line)
        self._service()

    def reset(self) -> None:
        """The microcontroller resets (port open, brown-out): relays open at once, setup runs."""
        now = self._now()
        for index, ch in enumerate(self._channels):
            self._cancel(ch)
            self._channels[index] = _Channel()
        self.device.reset()
        self._parser = LineParser(self.config.firmware)
        self._inbox = _Inbox()
        self._busy_until_s = self._reading_until_s = 0.0
        for timer in (self._service_timer, self._read_timer, self._boot_timer):
            if timer is not None:
                timer.cancel()
        self._service_timer = self._read_timer = None
        self._booting_until_s = now + self.config.boot_s
        self._powered_s = now
        self._print(DebugKind.OTHER, SETUP_LINES[0])
        self._boot_timer = asyncio.get_running_loop().call_at(self._booting_until_s,
                                                              self._boot_done)

    def power_off(self) -> None:
        """Power goes away: relays open at once, every timer stops. Never raises."""
        for index, ch in enumerate(self._channels):
            self._cancel(ch)
            self._channels[index] = _Channel()
        for timer in (self._service_timer, self._read_timer, self._boot_timer):
            if timer is not None:
                timer.cancel()
        self._service_timer = self._read_timer = self._boot_timer = None
        self._inbox = _Inbox()
        self.device.stop()

    def _boot_done(self) -> None:
        self._boot_timer = None
        self._booting_until_s = None
        for line in SETUP_LINES[1:]:
            self._print(DebugKind.OTHER, line)
        self._print(DebugKind.SETUP_DONE)
        self._service()

    # ------------------------------------------------------------------ the main loop

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _blocked(self, now: float) -> bool:
        return self._booting_until_s is not None or now < self._busy_until_s

    def _service(self) -> None:
        """Run loop passes until the board blocks or has nothing left to read."""
        now = self._now()
        if self._booting_until_s is not None:
            return  # _boot_done resumes
        if now < self._busy_until_s:
            self._wake_at(self._busy_until_s)
            return
        inbox = self._inbox
        while True:
            if inbox.shutdowns:
                self._deactivate(inbox.shutdowns.pop(0), now)
            elif inbox.ble:  # the BLE line is read at the top of a pass
                line = inbox.ble.pop(0)
                self._process(classify_line(line, self.config.firmware), line, "ble", now)
            elif inbox.items:
                item, raw, source = inbox.items.pop(0)
                self._process(item, raw, source, now)
            elif inbox.usb:
                # one line per read, as readStringUntil does: the rest stays in the buffer
                end = inbox.usb.find(b"\n") + 1 or len(inbox.usb)
                chunk = bytes(inbox.usb[:end])
                del inbox.usb[:end]
                self._feed_parser(chunk, now)
                continue
            else:
                return
            if now < self._busy_until_s:
                self._wake_at(self._busy_until_s)
                return

    def _feed_parser(self, data: bytes, now: float) -> None:
        raw_lines = (self._parser.pending + data).split(b"\n")[:-1]
        items = self._parser.feed(data)
        self._inbox.items.extend(zip(items, raw_lines, ["usb"] * len(items), strict=True))
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
        self._reading_until_s = 0.0
        if self._parser.pending:
            # readStringUntil waits 50 ms after the last byte; with blocking on, the loop waits
            # there (bytes still come in; deadlines are not checked)
            if self.config.model_blocking:
                self._reading_until_s = now + READ_TIMEOUT_S
            self._read_timer = asyncio.get_running_loop().call_at(now + READ_TIMEOUT_S,
                                                                  self._read_timeout)

    def _read_timeout(self) -> None:
        self._read_timer = None
        self._reading_until_s = 0.0
        if self._booting_until_s is not None:
            return
        raw = self._parser.pending
        items = self._parser.on_read_timeout()
        self._inbox.items.extend((item, raw, "usb") for item in items)
        self._service()

    def _wake_at(self, when_s: float) -> None:
        if self._service_timer is not None:
            self._service_timer.cancel()
        self._service_timer = asyncio.get_running_loop().call_at(when_s, self._wake)

    def _wake(self) -> None:
        self._service_timer = None
        self._service()

    # ------------------------------------------------------------------ processing

    def _process(self, item: DeviceInput, raw: bytes, source: str, now: float) -> None:
        if self.config.debug and raw.lstrip().startswith(b"WV"):
            self._print(DebugKind.HEX_ECHO, _echo_of(raw))
        if isinstance(item, ParsedAction):
            self._action(item, source, now)
        elif isinstance(item, ConnectionEnd):
            self._shutdown(now)
        elif isinstance(item, SingleCharCommand):
            self._single_char(item, now)
        elif isinstance(item, CalibrationOption):
            self._option(item, now)
        elif isinstance(item, InertOption):
            pass  # the option handler ignores it without a word
        elif isinstance(item, UnknownCommand):
            self._print(DebugKind.UNKNOWN_COMMAND, item.text)
        elif not isinstance(item, BlankLine):  # pragma: no cover - DeviceInput is closed
            raise AssertionError(item)

    def _action(self, action: ParsedAction, source: str, now: float) -> None:
        if action.has_undefined_effect:
            # The firmware writes channel −1's I/T: undefined; we change nothing, then shut down.
            self._unsafe(now, "undefined_channel", f"I/T without a valid channel: {action}")
        if not action.activates or action.channel is None:
            self._shutdown(now)
            return
        index = action.channel
        ch = self._channels[index]
        for name in action.negative_values:
            self._unsafe(now, f"{name.lower()}_negative", f"{action} (no digits, or wrapped)")
        on_time_ms = action.effective_on_time_ms  # a negative T passes the cap
        if on_time_ms is not None:
            ch.on_time_ms = on_time_ms
        if action.intensity_pct is not None:
            if action.exceeds_intensity_limit:
                self._unsafe(now, "intensity_over_100", f"I{action.intensity_pct} on C{index}")
            # written to the wiper at once; _activate below puts it on the output
            window = self.windows[index]
            ch.wiper_steps = firmware_wiper_steps(action.intensity_pct, window.min_steps,
                                                  window.max_steps)
        deadline_s = self._deadline_s(ch.on_time_ms, now)
        if deadline_s is None:
            self._unsafe(now, "on_time_never_ends", f"endTime 0 after {action}")
        self._activate(index, now, deadline_s, source)

    def _millis(self, now: float) -> int:
        """The firmware's ``millis()``: ms since the last reset.

        A board never reset here is taken to have just finished setup at its first input
        (``boot_s`` of uptime): the smallest plausible value, the worst case for the wrap of
        a negative on-time. Setup prints before the first read, so it is never 0 then.
        """
        if self._powered_s is None:
            self._powered_s = now - self.config.boot_s
        return max(1, math.floor((now - self._powered_s) * 1000 + 1e-9)) % _MILLIS_WRAP

    def _deadline_s(self, on_time_ms: int, now: float) -> float | None:
        """When ``check()`` switches the channel off: ``endTime = millis() + onTime`` (unsigned).

        Returns None for an ``endTime`` of 0, which ``check()`` skips: nothing switches the
        channel off then.
        """
        millis = self._millis(now)
        end_ms = (millis + on_time_ms) % _MILLIS_WRAP
        if end_ms == 0:
            return None
        if on_time_ms >= 0 or millis + on_time_ms >= 0:
            return now + on_time_ms / 1000  # a negative on-time is over at the next pass
        return now + (end_ms - millis) / 1000  # wrapped: about 49.7 days ahead

    def _single_char(self, command: SingleCharCommand, now: float) -> None:
        if command.action is SingleCharAction.UNKNOWN or command.channel is None:
            self._print(DebugKind.SINGLE_CHAR_UNKNOWN)
            return
        index = command.channel
        ch = self._channels[index]
        self._unsafe(now, f"test_{command.action.value}", f"'{command.key.decode('latin-1')}'")
        if command.action is SingleCharAction.TOGGLE_RELAYS:
            if ch.active:
                self._deactivate(index, now)
            else:
                self._activate(index, now, None, "test_handler")  # no on-time: stays on
        else:
            step = -1 if command.action is SingleCharAction.WIPER_DOWN else 1
            ch.wiper_steps = min(max(ch.wiper_steps + step, 0), WIPER_MAX_STEPS)
            self._output(index, now)

    def _option(self, option: CalibrationOption, now: float) -> None:
        steps = option.window_steps
        if not 0 <= steps <= WIPER_MAX_STEPS:  # stored all the same, as the firmware does
            self._unsafe(now, "option_out_of_range", f"{option} stores {steps}")
        old = self.windows[option.channel]
        if option.bound is WindowBound.MAX:
            self.windows[option.channel] = WindowSteps(old.min_steps, steps)
        else:
            self.windows[option.channel] = WindowSteps(steps, old.max_steps)

    # ------------------------------------------------------------------ channels

    def _activate(self, index: int, now: float, deadline_s: float | None, source: str) -> None:
        ch = self._channels[index]
        ch.active = True
        ch.deadline_s = deadline_s
        if deadline_s is None:
            self._cancel(ch)
        else:
            # the deadline is checked once per loop pass, the next one at the earliest
            when_s = max(deadline_s, now + self.config.loop_ms / 1000)
            if ch.timer is not None and ch.timer.when() > when_s:
                self._cancel(ch)  # a shorter on-time: expire earlier
            if ch.timer is None:  # a renewal keeps its timer, which re-arms itself on expiry
                ch.timer = asyncio.get_running_loop().call_at(when_s, self._expire, index)
        self.activations.append(Activation(now, index, ch.wiper_steps, deadline_s, source))
        self._output(index, now)

    def _expire(self, index: int) -> None:
        ch = self._channels[index]
        ch.timer = None
        now = self._now()
        if self._booting_until_s is not None:
            return  # the reset opened the relays already
        pass_s = max(self._busy_until_s, self._reading_until_s)
        if now < pass_s:  # a blocking wait delays the loop pass that checks deadlines
            ch.timer = asyncio.get_running_loop().call_at(pass_s, self._expire, index)
            self._output(index, now, until_s=pass_s)
            return
        if not ch.active or ch.deadline_s is None:
            return
        if ch.deadline_s > now:  # renewed since this timer was set
            ch.timer = asyncio.get_running_loop().call_at(ch.deadline_s, self._expire, index)
            return
        self._deactivate(index, now)
        self._service()

    def _deactivate(self, index: int, now: float) -> None:
        ch = self._channels[index]
        self._cancel(ch)
        ch.wiper_steps = WIPER_MAX_STEPS  # no signal at once; the relays open 50 ms later
        ch.active = False
        ch.deadline_s = None
        self._output(index, now)
        if self.config.model_blocking:
            self._busy_until_s = max(self._busy_until_s, now) + BLOCK_S

    def _shutdown(self, now: float) -> None:
        """Deactivate each channel in turn (each blocks 50 ms)."""
        self._deactivate(0, now)
        if self.config.model_blocking:
            self._inbox.shutdowns.insert(0, 1)
        else:
            self._deactivate(1, now)

    def _output(self, index: int, now: float, until_s: float | None = None) -> None:
        """Put the channel's state on the model, held until its deadline (or ``until_s``).

        The model's own hold ends a little after the board's expiry is due, so the record
        never runs on past what the board would do if its loop were stopped (the end of a
        virtual-time run); the board's deactivation normally comes first.
        """
        ch = self._channels[index]
        amplitude_ma = self.level_ma(index, ch.wiper_steps) if ch.active else 0.0
        if ch.deadline_s is None:
            hold_s = _MODEL_HOLD_S  # the test handler's toggle: on until switched off
        else:
            hold_s = max(ch.deadline_s, until_s or 0.0) - now + _EXPIRY_SLACK_S
        ext = self.config.external
        setpoint = ChannelSetpoint(amplitude_ma, ext.frequency_hz, ext.pulse_width_us)
        self.device.set_outputs({index + 1: setpoint}, hold_s)

    def _level_ma(self, index: int, level: int) -> float:
        return max(0.0, (level - self._zero_level[index]) * self._ma_per_level[index])

    @staticmethod
    def _cancel(ch: _Channel) -> None:
        if ch.timer is not None:
            ch.timer.cancel()
            ch.timer = None

    # ------------------------------------------------------------------ output text

    def _unsafe(self, now: float, kind: str, detail: str) -> None:
        self.unsafe_events.append(UnsafeEvent(now, kind, detail))

    def _print(self, kind: DebugKind, payload: bytes = b"") -> None:
        if not self.config.debug:
            return
        data = encode_debug_line(kind, payload)
        self.debug_lines.append(data.rstrip(b"\r\n"))
        if self.usb_writer is not None:
            self.usb_writer(data)


@functools.lru_cache(maxsize=1024)  # heartbeats repeat the same lines
def _echo_of(raw: bytes) -> bytes:
    """The command a ``WV`` line carries, as the firmware's hex echo prints it."""
    return decode_wv_line(raw.strip())
