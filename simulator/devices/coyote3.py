"""The emulated DG-LAB Coyote V3: its GATT server, bytes in and bytes out, on the simulator model.

Device side of ``docs/protocols/coyote3.md`` §5–§7, §12: B0 applies both strength fields (clamped to
0…min(200, soft limit); a value byte above 200 acts as 0) whatever the waveform, answers with B1
when a strength changed and the sequence is > 0, and plays each channel's four 25 ms slots from
receipt. A channel whose eight waveform bytes are not all in range is silent for that frame. A
frame lasts 100 ms (+ ``frame_grace_ms`` in lenient mode); without the next one the channel falls
silent while its strength is kept. A frame that arrives early replaces the rest of the current one.
BF sets soft limits (a byte above 200 leaves a limit as it is) and balances, lowers a strength
above a new limit and reports that with sequence 0. Writes with another head or length, or to
another characteristic, are ignored without an answer. Both write commands and write requests
are accepted. The battery characteristic answers reads and notifies changes.

The strength in steps becomes a current through the declared ``ma_per_step`` (the simulation
assumes the user's calibration is right); waveform intensity becomes a pulse width through
``us_per_intensity``. Its ``faults`` is the fault target: ``strength_change`` turns the wheel
to an mA value (reported with sequence 0, as the wheel is), ``battery_low`` notifies the new
level, ``disconnect`` drops the radio link, ``device_reset`` zeroes and drops it, byte faults
tamper with the GATT traffic (frames are the host's writes, acks the B1 notifications:
``drop_acks`` / ``late_acks`` withhold or delay them), and body faults go to the model.
``wrong_current`` breaks the model's output stage: every B1 then reports the strength actually
applied (in steps, from the model's current), and the fault's start is reported at once with
sequence 0, as any strength change the host did not make. Nothing here reads the wall clock.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ...contract import ZERO, ChannelSetpoint
from ...datafile import DataFileRefused, read_data_file
from ...drivers.coyote3.frames import (
    ADVERTISED_NAME,
    BATTERY_CHARACTERISTIC_UUID,
    NOTIFY_CHARACTERISTIC_UUID,
    SLOT_DURATION_MS,
    SLOTS_PER_FRAME,
    STRENGTH_STEPS_MAX,
    WRITE_CHARACTERISTIC_UUID,
    B0Frame,
    BfFrame,
    ChannelWaveform,
    StrengthReport,
)
from ...drivers.coyote3.frequency import frequency_hz_from_code
from ...drivers.coyote3.protocol import decode_command, encode_b1, encode_battery_level
from ...drivers.coyote3.rules import apply_b0_strengths, apply_bf_limits, wheel_step
from ...errors import InputError, ProtocolError
from ..fault_targets import (
    BOTH_WAYS,
    FROM_DEVICE,
    FROM_HOST,
    ByteFaults,
    DeviceFaultInjector,
    FaultRouter,
    Route,
)
from ..faults import DEVICE_FAULT_KINDS, Fault
from ..model import DeviceSpec, SimulatedStimulator
from ..transports import GattServer

__all__ = ["COYOTE_FAULT_KINDS", "EmulatedCoyote", "coyote_device_spec"]

COYOTE_FAULT_KINDS: frozenset[str] = DEVICE_FAULT_KINDS | {
    "disconnect", "drop_acks", "late_acks", "corrupt_bytes", "duplicate_frames", "drop_frames"}
#: The GATT traffic's faults: frames are the host's writes, acks the device's B1 notifications.
_TRAFFIC_FAULTS = {"corrupt_bytes": BOTH_WAYS, "drop_frames": FROM_HOST,
                   "duplicate_frames": FROM_HOST, "drop_acks": FROM_DEVICE,
                   "late_acks": FROM_DEVICE}
_SLOT_S = SLOT_DURATION_MS / 1000.0
#: Float slack so a frame that arrives exactly 100 ms after the last one continues its output.
_EPSILON_S = 1e-6
_DECODE_CACHE_MAX = 4096
_STATE_MAX_BYTES = 64 * 1024


def coyote_device_spec(ma_per_step: float, us_per_intensity: float) -> DeviceSpec:
    """The model figures of a Coyote: 2 channels, 200 steps, 1–100 Hz, intensity 1–100.

    Raises:
        InputError: a non-positive factor.
    """
    return DeviceSpec(channels=2, amplitude_max_ma=STRENGTH_STEPS_MAX * ma_per_step,
                      frequency_min_hz=1.0, frequency_max_hz=100.0,
                      pulse_width_min_us=us_per_intensity,
                      pulse_width_max_us=100 * us_per_intensity,
                      watchdog_s=1.0, zero_on_disconnect=False)


_Outputs = tuple[ChannelSetpoint, ChannelSetpoint, ChannelSetpoint, ChannelSetpoint]


#: Per channel, the waveform a B0 plays, or None where it is invalid (the channel is silent).
_Waveforms = tuple[ChannelWaveform | None, ChannelWaveform | None]


def _playable(frame: B0Frame | BfFrame) -> _Waveforms:
    if not isinstance(frame, B0Frame):
        return None, None
    a, b = frame.waveform_a, frame.waveform_b
    return (a if a.is_valid else None), (b if b.is_valid else None)


@dataclass(slots=True)
class _Playing:
    """The frame a channel is playing: its waveform (None: invalid, silent) and start time."""

    waveform: ChannelWaveform | None
    t0_s: float
    outputs: _Outputs
    handle: asyncio.TimerHandle | None = None


class EmulatedCoyote:
    """A Coyote V3 behind an in-memory :class:`GattServer` (``self.server``).

    Args:
        ma_per_step: mA per strength step (the simulated calibration).
        us_per_intensity: µs of pulse width per waveform-intensity unit.
        device: the model underneath; by default a 2-channel Coyote spec.
        name: advertised name.
        address: Bluetooth address.
        battery_pct: initial battery level, 0–100.
        frame_grace_ms: lenient mode: how long a frame outlives its 100 ms
        (docs/protocols/coyote3.md §12), 0–50. ack_unchanged: also answer a sequenced change that
        changed nothing (docs/protocols/coyote3.md §6). zero_on_disconnect: set both strengths to 0
        when the link drops (default: keep them). persist_path: where soft limits and balances
        survive emulator restarts (docs/protocols/coyote3.md §5). seed: seed of the byte-fault
        randomness.

    Raises:
        InputError: a factor, grace or battery level out of range, or a mismatched device.
    """

    def __init__(self, *, ma_per_step: float, us_per_intensity: float = 1.0,
                 device: SimulatedStimulator | None = None, name: str = ADVERTISED_NAME,
                 address: str = "C0:FF:EE:00:00:03", battery_pct: float = 100.0,
                 frame_grace_ms: float = 0.0, ack_unchanged: bool = False,
                 zero_on_disconnect: bool = False, persist_path: Path | None = None,
                 seed: int = 0) -> None:
        if not (math.isfinite(ma_per_step) and ma_per_step > 0):
            raise InputError(f"ma_per_step must be positive, got {ma_per_step!r}")
        if not 0 <= frame_grace_ms <= 50:
            raise InputError(f"frame_grace_ms must be within 0–50, got {frame_grace_ms!r}")
        self.ma_per_step = ma_per_step
        self.us_per_intensity = us_per_intensity
        self.device = device or SimulatedStimulator(
            coyote_device_spec(ma_per_step, us_per_intensity), battery_pct=battery_pct)
        if self.device.spec.channels != 2:
            raise InputError("a Coyote has 2 channels")
        self.frame_grace_s = frame_grace_ms / 1000.0
        self.ack_unchanged = ack_unchanged
        self.zero_on_disconnect = zero_on_disconnect
        self.persist_path = persist_path
        self.strengths_steps = [0, 0]
        self.limits_steps = [STRENGTH_STEPS_MAX, STRENGTH_STEPS_MAX]
        self.balances = (0, 0, 0, 0)
        self._load_persisted()
        #: Every B1 sent, and counters a test can read.
        self.reports: list[StrengthReport] = []
        self.frames_received = 0
        self.writes_ignored = 0
        self.last_write_s: float | None = None
        self._playing: list[_Playing | None] = [None, None]
        self._decoded: dict[bytes, tuple[B0Frame | BfFrame, _Waveforms]] = {}
        self._outputs_cache: dict[tuple[int, ChannelWaveform | None], _Outputs] = {}
        self._injector = DeviceFaultInjector(self.device)
        self._traffic = ByteFaults(seed, directions=_TRAFFIC_FAULTS)
        #: The fault target: the radio link, the wheel, the battery, a reset and the GATT
        #: traffic here; the body's kinds on the model.
        self.faults = FaultRouter(COYOTE_FAULT_KINDS, 2, {
            "disconnect": Route(lambda _fault: self.server.drop_connection(
                "connection lost (out of range)")),
            "strength_change": Route(self._strength_changed),
            "battery_low": Route(self._battery_low),
            "device_reset": Route(lambda _fault: self.reset()),
            "wrong_current": Route(self._current_fault_started, self._current_fault_ended),
            **self._traffic.routes(),
        }, rest=self._injector.route())
        self.server = GattServer(name, address, on_write=self._on_write, on_read=self._on_read,
                                 on_disconnect=self._on_disconnect, tamper=self._traffic.tamper)

    # ------------------------------------------------------------------ scenario hooks

    def wheel(self, channel: int, *, up: bool = True) -> None:
        """Turn the physical wheel one step on ``channel`` (reported with sequence 0).

        Raises:
            InputError: no such channel.
        """
        index = self._index(channel)
        strengths = list(self.strengths_steps)
        strengths[index] = wheel_step(strengths[index], up=up,
                                      limit_steps=self.limits_steps[index])
        self._set_strengths(strengths, sequence=0)

    def change_strength_ma(self, channel: int | None, amplitude_ma: float) -> None:
        """Someone sets the strength on the device to ``amplitude_ma`` (rounded down to a step,
        clamped to the soft limit); reported with sequence 0, like the wheel.

        Raises:
            InputError: no such channel, or a negative or non-finite amplitude.
        """
        if not (math.isfinite(amplitude_ma) and amplitude_ma >= 0):
            raise InputError(f"strength must be finite and ≥ 0 mA, got {amplitude_ma!r}")
        steps = math.floor(amplitude_ma / self.ma_per_step + 1e-9)
        strengths = list(self.strengths_steps)
        for index in ([0, 1] if channel is None else [self._index(channel)]):
            strengths[index] = max(0, min(steps, self.limits_steps[index]))
        self._set_strengths(strengths, sequence=0)

    def set_battery(self, battery_pct: float) -> None:
        """The battery level changes; the host is notified.

        Raises:
            InputError: a level outside 0–100 %.
        """
        self.device.set_battery(battery_pct)
        self.server.notify(BATTERY_CHARACTERISTIC_UUID, self._battery_bytes())

    def reset(self) -> None:
        """A brown-out or power cycle: outputs and strengths at 0, the link drops."""
        for index in range(2):
            self._stop_playing(index)
        self.strengths_steps = [0, 0]
        self.device.reset()
        self.server.drop_connection("the device reset")

    # ------------------------------------------------------------------ GATT callbacks

    def _on_write(self, uuid: str, data: bytes, response: bool) -> None:
        self.last_write_s = asyncio.get_running_loop().time()
        if uuid != WRITE_CHARACTERISTIC_UUID:
            self.writes_ignored += 1
            return
        cached = self._decoded.get(data)
        if cached is None:
            try:
                frame = decode_command(data)
            except ProtocolError:
                self.writes_ignored += 1  # docs/protocols/coyote3.md §3: ignored, nothing sent back
                return
            if len(self._decoded) >= _DECODE_CACHE_MAX:
                self._decoded.clear()
            cached = (frame, _playable(frame))
            self._decoded[data] = cached
        frame, playable = cached
        if isinstance(frame, B0Frame):
            self._on_b0(frame, playable)
        else:
            self._on_bf(frame)

    def _on_b0(self, frame: B0Frame, playable: _Waveforms) -> None:
        self.frames_received += 1
        now_s = asyncio.get_running_loop().time()
        if frame.changes_strength:
            self._apply_strengths(frame)
        renewed: dict[int, ChannelSetpoint] = {}
        for index, waveform in enumerate(playable):
            steady = self._start_playing(index, waveform, now_s)
            if steady is not None:
                renewed[index + 1] = steady
        if renewed:  # both channels in one model call (the hot path of a steady program)
            self.device.set_outputs(renewed, self._frame_end_lease_s())

    def _apply_strengths(self, frame: B0Frame) -> None:
        update = apply_b0_strengths(frame, strengths_steps=self._pair(self.strengths_steps),
                                    limits_steps=self._pair(self.limits_steps),
                                    ack_unchanged=self.ack_unchanged)
        self.strengths_steps = [update.strength_a_steps, update.strength_b_steps]
        if update.report is not None:
            self._report(update.report)

    def _on_bf(self, frame: BfFrame) -> None:
        update = apply_bf_limits(frame, strengths_steps=self._pair(self.strengths_steps),
                                 limits_steps=self._pair(self.limits_steps))
        self.limits_steps = [update.limit_a_steps, update.limit_b_steps]
        self.balances = (frame.frequency_balance_a, frame.frequency_balance_b,
                         frame.intensity_balance_a, frame.intensity_balance_b)
        self._save_persisted()
        if update.report is not None:
            self._set_strengths([update.strength_a_steps, update.strength_b_steps], sequence=0)

    def _on_read(self, uuid: str) -> bytes:
        if uuid == BATTERY_CHARACTERISTIC_UUID:
            return self._battery_bytes()
        raise ProtocolError(f"characteristic {uuid} is not readable on a Coyote V3")

    def _on_disconnect(self) -> None:
        # docs/protocols/coyote3.md §7: output stops once the buffer runs out; the strength is kept
        # (worst case)
        if self.zero_on_disconnect:
            self._set_strengths([0, 0], sequence=None)

    # ------------------------------------------------------------------ playing frames

    def _start_playing(self, index: int, waveform: ChannelWaveform | None,
                       now_s: float) -> ChannelSetpoint | None:
        """Start playing a frame; return its output if it only renews a steady one."""
        previous = self._playing[index]
        outputs = self._frame_outputs(index, waveform)
        if previous is not None and previous.handle is None and previous.outputs == outputs \
                and outputs.count(outputs[0]) == SLOTS_PER_FRAME:
            # the same steady output again: only the frame's dead-man moves
            previous.waveform, previous.t0_s = waveform, now_s
            return outputs[0]
        self._stop_playing(index)
        self._playing[index] = _Playing(waveform, now_s, outputs)
        self._play_slot(index, 0)
        return None

    def _stop_playing(self, index: int) -> None:
        playing = self._playing[index]
        if playing is not None and playing.handle is not None:
            playing.handle.cancel()
        self._playing[index] = None

    def _play_slot(self, index: int, slot: int) -> None:
        """Output slot ``slot`` and the identical slots after it; schedule the next change."""
        playing = self._playing[index]
        if playing is None:
            return
        loop = asyncio.get_running_loop()
        playing.handle = None
        now_s = loop.time()
        outputs = playing.outputs
        output = outputs[slot]
        last = slot
        while last + 1 < SLOTS_PER_FRAME and outputs[last + 1] == output:
            last += 1
        end_s = playing.t0_s + (last + 1) * _SLOT_S
        if last + 1 < SLOTS_PER_FRAME:
            playing.handle = loop.call_at(end_s, self._play_slot, index, last + 1)
        else:
            # docs/protocols/coyote3.md §8 dead-man: the frame's end
            end_s += self.frame_grace_s + _EPSILON_S
        lease_s = max(end_s - now_s, _EPSILON_S)
        self.device.set_outputs({index + 1: output}, lease_s)

    def _frame_end_lease_s(self) -> float:
        return 4 * _SLOT_S + self.frame_grace_s + _EPSILON_S

    def _replay_now(self, index: int) -> None:
        """A strength changed mid-frame: play the rest of the current frame at the new one."""
        playing = self._playing[index]
        if playing is None:
            return
        elapsed_s = asyncio.get_running_loop().time() - playing.t0_s
        slot = math.floor(elapsed_s / _SLOT_S + 1e-9)
        if playing.handle is not None:
            playing.handle.cancel()
        playing.outputs = self._frame_outputs(index, playing.waveform)
        if slot < SLOTS_PER_FRAME:
            self._play_slot(index, slot)
        else:  # the frame has run out: the channel is silent already
            self.device.set_outputs({index + 1: ZERO}, _EPSILON_S)

    def _frame_outputs(self, index: int, waveform: ChannelWaveform | None) -> _Outputs:
        """What the channel puts out in each slot of ``waveform`` at its current strength."""
        strength = self.strengths_steps[index]
        key = (strength, waveform)
        outputs = self._outputs_cache.get(key)
        if outputs is None:
            a, b, c, d = (self._slot_output(strength, waveform, slot)
                          for slot in range(SLOTS_PER_FRAME))
            outputs = (a, b, c, d)
            if len(self._outputs_cache) >= _DECODE_CACHE_MAX:
                self._outputs_cache.clear()
            self._outputs_cache[key] = outputs
        return outputs

    def _slot_output(self, strength: int, waveform: ChannelWaveform | None,
                     slot: int) -> ChannelSetpoint:
        if waveform is None or strength <= 0 or waveform.intensities[slot] <= 0:
            # docs/protocols/coyote3.md §7: strength > 0, a valid slot and intensity > 0 are all
            # needed
            return ZERO
        return ChannelSetpoint(strength * self.ma_per_step,
                               frequency_hz_from_code(waveform.frequency_codes[slot]),
                               waveform.intensities[slot] * self.us_per_intensity)

    # ------------------------------------------------------------------ internals

    def _set_strengths(self, strengths: list[int], *, sequence: int | None) -> None:
        if strengths == self.strengths_steps:
            return
        changed = [i for i in range(2) if strengths[i] != self.strengths_steps[i]]
        self.strengths_steps = list(strengths)
        if sequence is not None:
            self._report(StrengthReport(sequence, strengths[0], strengths[1]))
        for index in changed:
            self._replay_now(index)

    def _report(self, report: StrengthReport) -> None:
        """Send a B1 with the strengths the output stage applies (the model's current)."""
        applied = self._applied_steps([report.strength_a_steps, report.strength_b_steps])
        report = StrengthReport(report.sequence, applied[0], applied[1])
        self.reports.append(report)
        self.server.notify(NOTIFY_CHARACTERISTIC_UUID, encode_b1(report))

    def _applied_steps(self, strengths: list[int]) -> list[int]:
        """The strengths, in steps, that settings of ``strengths`` actually apply."""
        return [max(0, min(STRENGTH_STEPS_MAX, round(
            self.device.applied_ma(index + 1, steps * self.ma_per_step) / self.ma_per_step)))
            for index, steps in enumerate(strengths)]

    def _report_applied(self) -> None:
        """The applied strength changed without a command: say so with sequence 0."""
        last = self.reports[-1] if self.reports else None
        shown = ([last.strength_a_steps, last.strength_b_steps] if last is not None
                 else list(self.strengths_steps))
        if self._applied_steps(self.strengths_steps) != shown:
            self._report(StrengthReport(0, self.strengths_steps[0], self.strengths_steps[1]))

    def _battery_bytes(self) -> bytes:
        return encode_battery_level(round(self.device.battery_pct))

    @staticmethod
    def _pair(values: list[int]) -> tuple[int, int]:
        return values[0], values[1]

    @staticmethod
    def _index(channel: int) -> int:
        if channel not in (1, 2):
            raise InputError(f"a Coyote has channels 1 and 2, not {channel}")
        return channel - 1

    def _load_persisted(self) -> None:
        if self.persist_path is None:
            return
        try:  # a regular file only, never blocking (a FIFO there must not hang the emulator)
            saved = json.loads(read_data_file(self.persist_path, _STATE_MAX_BYTES))
            limits = [int(v) for v in saved["limits_steps"]]
            balances = [int(v) for v in saved["balances"]]
        except DataFileRefused as exc:
            if exc.missing:
                return
            raise InputError(f"cannot read the emulator state {self.persist_path}: "
                             f"{exc.reason}") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"cannot read the emulator state {self.persist_path}: {exc}") from exc
        if len(limits) == 2 and all(0 <= v <= STRENGTH_STEPS_MAX for v in limits):
            self.limits_steps = limits
        if len(balances) == 4 and all(0 <= v <= 255 for v in balances):
            self.balances = (balances[0], balances[1], balances[2], balances[3])

    def _save_persisted(self) -> None:
        if self.persist_path is None:
            return
        # a new file renamed over the old: opening whatever is at the path for writing could
        # block (a FIFO) or write through a symlink
        text = json.dumps({"limits_steps": self.limits_steps, "balances": list(self.balances)})
        fd, fresh = tempfile.mkstemp(prefix=f".{self.persist_path.name}.", suffix=".tmp",
                                     dir=self.persist_path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(fresh, self.persist_path)

    # ------------------------------------------------------------------ fault routes

    def _strength_changed(self, fault: Fault) -> None:
        assert fault.value is not None
        self.change_strength_ma(fault.channel, fault.value)

    def _battery_low(self, fault: Fault) -> None:
        assert fault.value is not None
        self.set_battery(fault.value)

    def _current_fault_started(self, fault: Fault) -> None:
        self._injector.start(fault)
        self._report_applied()

    def _current_fault_ended(self, fault: Fault) -> None:
        self._injector.end(fault)
        self._report_applied()
