"""An emulated Hasomed P24 speaking ScienceMode4, bytes in and bytes out.

:class:`P24` follows the device side of ``docs/protocols/sciencemode4.md``: it sends nothing but
replies (docs/protocols/sciencemode4.md §2), answers every host command with its ack (command + 1,
the request's packet number, a result byte and the full success layout,
docs/protocols/sciencemode4.md §4–§8), runs the level state machine of
docs/protocols/sciencemode4.md §9 (none, low level, mid level initialised, mid level running),
checks parameters with the device's result codes (2 out of range, 7 not initialised, 1 transfer
error, Unknown_cmd for everything else), keeps the fixed 2 s mid-level timeout (only an accepted
Ml_update or Ml_get_current_data renews it; on expiry output stops and the state falls back to "mid
level initialised"), and reports channel errors (electrode, pulse timeout, low current) in
Ml_get_current_data. Mid-level output goes through :class:`~.sciencemode4_output.PulseTrains`,
low-level pulses straight to the :class:`SimulatedStimulator`, whose recorder says what was
delivered.

Fault hooks like the RehaStim2 emulation's: :attr:`P24.busy` (result 21 to everything but the
stops and Reset), :attr:`P24.drop_replies`, :attr:`P24.reply_extra_delay_s`, :meth:`P24.reset`
(via the model, as a brown-out) and :meth:`P24.channel_error`. :attr:`P24.faults` is the fault
target of the device itself: ``drop_acks`` / ``late_acks`` / ``busy`` switch those hooks for the
fault's duration, ``disconnect`` unplugs the bus-powered device (it switches off: output stops at
once, nothing answers), and ``electrode_off`` / ``electrode_on`` / ``impedance`` /
``device_reset`` / ``wrong_current`` act on the output stage (a pad that falls off while its
channel runs is an electrode error in Ml_get_current_data). Byte-level kinds belong to whatever
carries the bytes.

It runs on the running asyncio loop (virtual or real time) and never reads the wall clock,
sleeps or does I/O itself: bytes leave through the ``write`` callable, one call per frame. Its
invariant: no output unless an accepted Ml_update or Ll_channel_config asked for it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...drivers.sciencemode4 import protocol as p
from ...drivers.sciencemode4.mapping import DEVICE_MAX_CURRENT_MA
from ...errors import InputError
from ..fault_targets import Route
from ..model import DeviceEvent, DeviceSpec, SimulatedStimulator
from .sciencemode4_levels import LowLevel, MidLevel, level_refusal, update_in_range
from .sciencemode_emulator import Log, ScienceModeEmulator, Trace

if TYPE_CHECKING:
    pass

__all__ = ["ML_TIMEOUT_S", "P24", "P24_FAULT_KINDS", "P24Config", "p24_spec"]

ML_TIMEOUT_S = 2.0
"""The device's fixed mid-level timeout [docs/protocols/sciencemode4.md §9]."""
_NEVER_BUSY = frozenset({p.Command.ML_STOP, p.Command.LL_STOP, p.Command.RESET})
_NO_PARAMETER_ERROR = frozenset({p.Command.GET_STIM_STATUS, p.Command.GET_EXTENDED_VERSION,
                                 p.Command.GET_DEVICE_ID, p.Command.RESET, p.Command.ML_STOP,
                                 p.Command.LL_STOP})
"""Their acks carry only 0 and 1 [docs/protocols/sciencemode4.md §8]: bad data gets 1 there."""

#: What a fault plan can do to the device itself (byte-level kinds are its cable's).
P24_FAULT_KINDS: frozenset[str] = frozenset(
    {"disconnect", "drop_acks", "late_acks", "busy", "electrode_off", "electrode_on",
     "impedance", "device_reset", "wrong_current"})


@dataclass(frozen=True)
class P24Config:
    """How the emulated device identifies itself and how fast it answers.

    Attributes:
        reply_delay_s: time to answer a command (the emulation promises under 5 ms).
        device_id: the 10-byte id of Get_device_id_ack.
        firmware_version: firmware major, minor, revision.
        sciencemode_version: protocol major, minor, revision.
        firmware_hash: the first 4 bytes of the firmware hash.
        compliance_v: the output stage's compliance voltage (at most 150 V).

    Raises:
        InputError: a negative or non-finite delay, or an id that is not 10 bytes.
    """

    reply_delay_s: float = 0.0
    device_id: bytes = b"P24EMU0001"
    firmware_version: tuple[int, int, int] = (1, 0, 0)
    sciencemode_version: tuple[int, int, int] = (4, 0, 0)
    firmware_hash: int = 0x12345678
    compliance_v: float = 150.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.reply_delay_s) and self.reply_delay_s >= 0):
            raise InputError(f"reply delay must be finite and ≥ 0, got {self.reply_delay_s}")
        if not isinstance(self.device_id, bytes) or len(self.device_id) != p.DEVICE_ID_LEN:
            raise InputError(f"a device id has 10 bytes, not {self.device_id!r}")


def p24_spec(config: P24Config | None = None) -> DeviceSpec:
    """The :class:`DeviceSpec` of a P24 output stage: 8 channels, 130 mA, 150 V, the 2 s
    mid-level timeout as the model's lease ceiling, and the whole wire range of periods and
    pulse widths (the emulator checks the device's own limits before the model sees them)."""
    config = config or P24Config()
    return DeviceSpec(channels=p.CHANNEL_COUNT, amplitude_max_ma=DEVICE_MAX_CURRENT_MA,
                      frequency_min_hz=0.06, frequency_max_hz=4000.0, pulse_width_min_us=10.0,
                      pulse_width_max_us=16 * 4095.0, watchdog_s=ML_TIMEOUT_S,
                      compliance_v=config.compliance_v, zero_on_disconnect=True)


class P24(ScienceModeEmulator[p.Frame, p.BadFrame]):
    """The emulated device: feed it host bytes with :meth:`receive`; it writes replies.

    A reset (a brown-out) switches everything off and goes back to "no level".

    Args:
        device: the output stage (8 channels; see :func:`p24_spec`).
        write: called with each outgoing frame (one call per frame).
        config: identity and reply timing.
        trace: optional frame log, see :data:`Trace`.
        log: optional human log (state changes, timeouts, channel errors, output).

    Raises:
        InputError: a device without 8 channels.
    """

    def __init__(self, device: SimulatedStimulator, write: Callable[[bytes], None],
                 config: P24Config | None = None, *, trace: Trace | None = None,
                 log: Log | None = None) -> None:
        if device.spec.channels != p.CHANNEL_COUNT:
            raise InputError(f"a P24 has {p.CHANNEL_COUNT} channels")
        super().__init__(device, write, p.FrameDecoder(), fault_kinds=P24_FAULT_KINDS,
                         fault_routes={"disconnect": Route(lambda _fault: self.power_off())},
                         trace=trace, log=log)
        self.config = config or P24Config()
        self.stim_status = p.StimStatus.NONE
        self.mid = MidLevel(device, self._say, self._on_mid_level_empty)
        self.low = LowLevel(device, self._say, self._send)
        self._last_keepalive_s: float | None = None
        self._timeout_timer: asyncio.TimerHandle | None = None
        device.add_listener(self._on_device_event)

    # ------------------------------------------------------------------ power and status

    def power_on(self) -> None:
        """Plug in: the device boots into "no level", high voltage off; it says nothing."""
        if not self.powered:
            self.powered = True
            self._everything_off("powered on")

    def power_off(self) -> None:
        """Unplug (bus powered, no battery): output zero at once, all timers cancelled."""
        if self.powered:
            self._everything_off("powered off")
            self.powered = False

    def channel_error(self, channel: int, state: p.ChannelState) -> None:
        """A running mid-level channel fails (fault hook): its state is set, its output stops
        (every channel's with Ml_init bit 0 = 1), and Ml_get_current_data reports it.

        Raises:
            InputError: a channel outside 1–8 or the state OK.
        """
        if not 1 <= channel <= p.CHANNEL_COUNT or state == p.ChannelState.OK:
            raise InputError(f"channel error needs a channel 1–8 and an error state, got "
                             f"{channel}, {state!r}")
        self.mid.channel_error(channel, p.ChannelState(state))

    @property
    def high_voltage_code(self) -> int:
        """Get_stim_status byte 2: 1 off, 6 = 150 V on (2–5 for legacy low-level codes)."""
        if self.stim_status == p.StimStatus.LOW_LEVEL:
            return self.low.high_voltage_code
        if self.stim_status in (p.StimStatus.MID_LEVEL_INITIALISED,
                                p.StimStatus.MID_LEVEL_RUNNING):
            return p.HIGH_VOLTAGE_150V
        return p.HIGH_VOLTAGE_OFF

    def status(self) -> str:
        """Level, high voltage, active channels and counters in one line."""
        return (f"{self.stim_status.name.lower().replace('_', ' ')}, HV code "
                f"{self.high_voltage_code}, active mask 0x{self.mid.active_mask:02X}; "
                f"frames in {self.frames_in}, bad {self.bad_frames_in}")

    @property
    def reply_delay_s(self) -> float:
        """The configured time to answer a command."""
        return self.config.reply_delay_s

    # ------------------------------------------------------------------ bytes in

    def _bad_frame(self, bad: p.BadFrame) -> None:
        self._trace_frame("host→device", bad.wire, f"bad frame ({bad.reason})")
        prefix = bad.prefix
        transfer = bad.reason in (p.BadFrameReason.LENGTH_MISMATCH,
                                  p.BadFrameReason.CHECKSUM_MISMATCH)
        if not transfer or prefix is None:
            return  # nothing to echo: dropped without a reply
        pn, command = prefix
        if command in p.HOST_COMMANDS:
            self._send(p.refusal(command, pn, p.Result.TRANSFER_ERROR))
        else:
            self._send(p.GeneralError(packet_number=pn, result=p.Result.TRANSFER_ERROR))

    def _frame(self, frame: p.Frame) -> None:
        pn, command = frame.packet_number, frame.command
        if command not in p.HOST_COMMANDS:  # acks, 37/38 from a host, other devices' numbers
            self._trace_frame("host→device", frame.wire, f"command {command}: unknown")
            self._send(p.UnknownCommand(packet_number=pn))
            return
        try:
            message = p.decode_request(frame.payload)
        except p.MessageDecodeError as exc:
            self._trace_frame("host→device", frame.wire, str(exc))
            self._refuse_bad_data(command, pn)
            return
        self._trace_frame("host→device", frame.wire, type(message).__name__)
        if self.busy and command not in _NEVER_BUSY:
            self._send(p.refusal(command, pn, p.Result.BUSY))
            return
        self._dispatch(message)

    def _refuse_bad_data(self, command: int, pn: int) -> None:
        level = level_refusal(self.stim_status, command)
        if level is not None:
            self._send(p.refusal(command, pn, level))
        elif command in _NO_PARAMETER_ERROR:
            self._send(p.refusal(command, pn, p.Result.TRANSFER_ERROR))
        else:
            self._send(p.refusal(command, pn, p.Result.PARAMETER_ERROR))

    # ------------------------------------------------------------------ commands

    def _dispatch(self, message: p.Request) -> None:
        pn = message.packet_number
        level = level_refusal(self.stim_status, message.command)
        if level is not None:
            if isinstance(message, p.MlGetCurrentData):
                self._send(self.mid.current_data(pn, message.data_selection, level))
            elif isinstance(message, p.LlChannelConfig):
                self._send(p.LlChannelConfigAck.refusal(
                    pn, level, message.connector, message.channel_in_connector))
            else:
                self._send(p.refusal(message.command, pn, level))
            return
        if isinstance(message, p.GetStimStatus):
            self._send(p.GetStimStatusAck(packet_number=pn, result=p.Result.OK,
                                          stim_status=self.stim_status,
                                          high_voltage=self.high_voltage_code))
        elif isinstance(message, p.GetDeviceId):
            self._send(p.GetDeviceIdAck(packet_number=pn, result=p.Result.OK,
                                        device_id=self.config.device_id))
        elif isinstance(message, p.GetExtendedVersion):
            self._send(self._version_ack(pn))
        elif isinstance(message, p.Reset):
            self._send(p.ResetAck(packet_number=pn, result=p.Result.OK))
            self.device.reset()  # the model's event turns everything off
        elif isinstance(message, p.MlInit):
            self._ml_init(message)
        elif isinstance(message, p.MlUpdate):
            self._ml_update(message)
        elif isinstance(message, p.MlGetCurrentData):
            self._ml_get_current_data(message)
        elif isinstance(message, p.MlStop):
            if self.stim_status != p.StimStatus.NONE:
                self._everything_off("Ml_stop")
            self._send(p.MlStopAck(packet_number=pn, result=p.Result.OK))
        elif isinstance(message, p.LlInit):
            result = self.low.init(message)
            if result == p.Result.OK:
                self.stim_status = p.StimStatus.LOW_LEVEL
            self._send(p.LlInitAck(packet_number=pn, result=result))
        elif isinstance(message, p.LlChannelConfig):
            self.low.channel_config(message)
        else:  # LlStop
            if self.stim_status != p.StimStatus.NONE:
                self._everything_off("Ll_stop")
            self._send(p.LlStopAck(packet_number=pn, result=p.Result.OK))

    def _version_ack(self, pn: int) -> p.GetExtendedVersionAck:
        c = self.config
        return p.GetExtendedVersionAck(packet_number=pn, result=p.Result.OK,
                                       firmware_version=c.firmware_version,
                                       sciencemode_version=c.sciencemode_version,
                                       firmware_hash=c.firmware_hash, hash_type=p.HashType.GIT,
                                       hash_valid=True)

    def _ml_init(self, message: p.MlInit) -> None:
        if self.stim_status == p.StimStatus.NONE:
            self._say("Ml_init: mid level initialised, high voltage on")
        self.mid.init(message.stop_all_on_error)
        self._stop_timeout()
        self.stim_status = p.StimStatus.MID_LEVEL_INITIALISED
        self._send(p.MlInitAck(packet_number=message.packet_number, result=p.Result.OK))

    def _ml_update(self, message: p.MlUpdate) -> None:
        pn = message.packet_number
        if not update_in_range(message):
            self._send(p.MlUpdateAck(packet_number=pn, result=p.Result.PARAMETER_ERROR))
            return
        self._renew_keepalive()
        self._send(p.MlUpdateAck(packet_number=pn, result=p.Result.OK))
        if message.enable_mask:
            self.stim_status = p.StimStatus.MID_LEVEL_RUNNING
        self.mid.update(message.enabled)  # may fall back to "initialised" (mask 0, errors)

    def _ml_get_current_data(self, message: p.MlGetCurrentData) -> None:
        ack = self.mid.current_data(message.packet_number, message.data_selection)
        if ack.result != p.Result.PARAMETER_ERROR:
            self._renew_keepalive()
        self._send(ack)

    def _everything_off(self, why: str) -> None:
        self.mid.stop()
        self.low.stop()
        self._stop_timeout()
        self.stim_status = p.StimStatus.NONE
        self.device.stop()
        self._say(f"{why}: no level, high voltage off")

    def _on_mid_level_empty(self) -> None:
        """Every channel has stopped (mask 0 or channel errors): back to "initialised"."""
        if self.stim_status == p.StimStatus.MID_LEVEL_RUNNING:
            self.stim_status = p.StimStatus.MID_LEVEL_INITIALISED
            self._stop_timeout()

    # ------------------------------------------------------------------ the 2 s timeout

    def _renew_keepalive(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._last_keepalive_s = now
        self.mid.renew(now + ML_TIMEOUT_S)
        if self._timeout_timer is None:
            self._timeout_timer = loop.call_at(now + ML_TIMEOUT_S, self._timeout_due)

    def _stop_timeout(self) -> None:
        self._last_keepalive_s = None
        if self._timeout_timer is not None:
            self._timeout_timer.cancel()
            self._timeout_timer = None

    def _timeout_due(self) -> None:
        # One lazy timer: a renewal only moves the deadline; the timer re-arms itself there.
        self._timeout_timer = None
        if self._last_keepalive_s is None:
            return
        loop = asyncio.get_running_loop()
        deadline = self._last_keepalive_s + ML_TIMEOUT_S
        if loop.time() < deadline:
            self._timeout_timer = loop.call_at(deadline, self._timeout_due)
            return
        self._last_keepalive_s = None
        if self.stim_status == p.StimStatus.MID_LEVEL_RUNNING:
            self.mid.timeout()
            self.stim_status = p.StimStatus.MID_LEVEL_INITIALISED
            self._say(f"mid-level timeout: no Ml_update or Ml_get_current_data for "
                      f"{ML_TIMEOUT_S:g} s; output stopped")

    # ------------------------------------------------------------------ events

    def _on_device_event(self, event: DeviceEvent) -> None:
        if not self.powered:
            return
        if event.kind == "device_reset":
            self._everything_off("device reset")
        elif event.kind == "electrode_off" and event.channel is not None:
            self.mid.electrode_off(event.channel)
        elif event.kind == "device_error":
            self._say(f"output stage refused a setpoint ({event.message}): all stopped")
            self.mid.stop_output()

    # ------------------------------------------------------------------ bytes out

    def _send(self, message: p.AckBase, extra_delay_s: float = 0.0) -> None:
        self._reply(p.encode_message(message), type(message).__name__,
                    extra_delay_s=extra_delay_s)

