"""The emulated P24's two stimulation levels: mid level (pulse trains) and low level (pulses).

:class:`MidLevel` holds what Ml_init and Ml_update set up: the stop-all-on-error flag, the pulse
trains of :class:`~.sciencemode4_output.PulseTrains`, and each channel's 4-bit error state
(``docs/protocols/sciencemode4.md`` §6, §9). A channel error sets that channel's state and clears
its active bit (every channel's with stop-all); the states persist until the next Ml_update or
Ml_init, and while any is set the result of Ml_get_current_data_ack is the code of the
lowest-numbered faulty channel. An electrode that reports no load when its channel starts or
while it runs is an electrode error; an output stage that cannot drive the set current through
the load (compliance) is a pulse-low-current error.

:class:`LowLevel` holds what Ll_init sets up and runs Ll_channel_config pulses one after the
other from a buffer of 10, each acknowledged when it has run (docs/protocols/sciencemode4.md §7).

Both run on the running asyncio loop; neither reads the wall clock nor does I/O: acks leave
through the ``send`` callable the device gives them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping

from ...contract import ZERO, ChannelSetpoint
from ...drivers.sciencemode4 import protocol as p
from ...drivers.sciencemode4.mapping import within_load_limit
from ..model import SimulatedStimulator
from .sciencemode4_output import PulseTrains, executed_duration_s, pulse_setpoint

__all__ = ["LOW_LEVEL_BUFFER", "LowLevel", "MidLevel", "level_refusal", "update_in_range"]

LOW_LEVEL_BUFFER = 10
"""Channel configs the device buffers in low level [docs/protocols/sciencemode4.md §7]."""
_MAX_HIGH_VOLTAGE_CODE = 6
_DELIVERY_TOLERANCE_MA = 1e-6
Say = Callable[[str], None]
Send = Callable[[p.AckBase, float], None]


def level_refusal(status: p.StimStatus, command: int) -> p.Result | None:
    """Result 7 when ``command`` belongs to a level that is not active in ``status``
    [docs/protocols/sciencemode4.md §9]."""
    low, none = p.StimStatus.LOW_LEVEL, p.StimStatus.NONE
    mid = status in (p.StimStatus.MID_LEVEL_INITIALISED, p.StimStatus.MID_LEVEL_RUNNING)
    refused = (
        (command in (p.Command.ML_INIT, p.Command.ML_STOP) and status == low)
        or (command in (p.Command.ML_UPDATE, p.Command.ML_GET_CURRENT_DATA)
            and status in (low, none))
        or (command in (p.Command.LL_INIT, p.Command.LL_STOP) and mid)
        or (command == p.Command.LL_CHANNEL_CONFIG and status != low))
    return p.Result.NOT_INITIALISED if refused else None


def update_in_range(message: p.MlUpdate) -> bool:
    """The device's checks of an Ml_update [docs/protocols/sciencemode4.md §8]: period code from 1
    up to 16383 ms, |I| ≤ 130 mA (current codes 40–560), and the load sum below 1000."""
    configs = list(message.enabled.values())
    for config in configs:
        period = config.period
        if period.code == 0 or period.period_ms > 16383:
            return False
        if any(not 40 <= point.current_code <= 560 for point in config.points):
            return False
    return within_load_limit(configs)


def _compliance_short(device: SimulatedStimulator, channel: int,
                      setpoint: ChannelSetpoint) -> bool:
    """Whether the load on ``channel`` takes less than the set current (voltage too low)."""
    load = device.body.load(channel)
    if not load.attached or setpoint.amplitude_ma <= 0:
        return False
    delivered = load.delivered_ma(setpoint.amplitude_ma, device.spec.compliance_v)
    return delivered < setpoint.amplitude_ma - _DELIVERY_TOLERANCE_MA


class MidLevel:
    """Mid-level state of one emulated P24.

    Args:
        device: the output stage.
        say: the device's human log.
        on_empty: called when the last running channel stops for any reason but a timeout or
            leaving the level (the device then falls back to "mid level initialised").
    """

    def __init__(self, device: SimulatedStimulator, say: Say, on_empty: Callable[[], None]
                 ) -> None:
        self.device = device
        self.stop_all_on_error = False
        self.states = [p.ChannelState.OK] * p.CHANNEL_COUNT
        self.trains = PulseTrains(device, self._check_output)
        self._say = say
        self._on_empty = on_empty
        self._updating = False

    @property
    def active_mask(self) -> int:
        """Bit i set ⇔ channel i + 1 is stimulating."""
        return self.trains.active_mask

    @property
    def result(self) -> p.Result:
        """0, or the error code of the lowest-numbered channel whose state is set."""
        return next((state.result for state in self.states if state), p.Result.OK)

    def init(self, stop_all_on_error: bool) -> None:
        """Ml_init: output stops, channel states are cleared, the error policy is set."""
        self.trains.stop_all()
        self.states = [p.ChannelState.OK] * p.CHANNEL_COUNT
        self.stop_all_on_error = stop_all_on_error

    def update(self, enabled: Mapping[int, p.MlChannelConfig]) -> None:
        """Ml_update: the complete pattern; channels left out stop, new ones start with their
        ramp, running ones change from their next period. Channel states are cleared first."""
        self.states = [p.ChannelState.OK] * p.CHANNEL_COUNT
        for channel in range(1, p.CHANNEL_COUNT + 1):
            if channel not in enabled:
                self.trains.stop(channel)
        self._updating = True  # the device state is settled once, after the whole pattern
        try:
            for channel, config in enabled.items():
                if self.stop_all_on_error and self.result != p.Result.OK:
                    break  # an error has stopped every channel: the rest do not start
                if not self.trains.running(channel) and self.device.body.load(channel).no_load:
                    self._fault(channel, p.ChannelState.ELECTRODE_ERROR, "no load at start")
                    continue
                self.trains.set(channel, config)
        finally:
            self._updating = False
        if self.active_mask:
            self._say("Ml_update: " + ", ".join(
                f"ch{ch} {_describe(cfg)}" for ch, cfg in enabled.items()
                if self.trains.running(ch)))
        else:
            self._on_empty()

    def current_data(self, pn: int, selection: int, refused: p.Result | None = None
                     ) -> p.MlGetCurrentDataAck | p.MlGetCurrentDataLegacyAck:
        """The ack 37 for a data selection: 4 (states of all channels), 2 or 3 (an older
        device's status bytes), or anything else (result 2, zero-filled); ``refused`` gives the
        zero-filled layout with that result."""
        if selection in p.LEGACY_SELECTIONS:
            if refused is not None:
                return p.MlGetCurrentDataLegacyAck(packet_number=pn, result=refused,
                                                   data_selection=selection, running=False,
                                                   electrode_error_mask=0)
            channels = 4 if selection == 2 else p.CHANNEL_COUNT
            errors = sum(1 << i for i in range(channels)
                         if self.states[i] == p.ChannelState.ELECTRODE_ERROR)
            return p.MlGetCurrentDataLegacyAck(packet_number=pn, result=self.result,
                                               data_selection=selection,
                                               running=bool(self.active_mask),
                                               electrode_error_mask=errors)
        if refused is not None or selection != p.ALL_CHANNEL_ERRORS:
            return p.MlGetCurrentDataAck.refusal(pn, refused or p.Result.PARAMETER_ERROR,
                                                 selection)
        return p.MlGetCurrentDataAck(packet_number=pn, result=self.result,
                                     data_selection=selection, active_mask=self.active_mask,
                                     channel_states=tuple(self.states))

    def renew(self, lease_end_s: float) -> None:
        """The keep-alive was renewed: outputs now end at ``lease_end_s``."""
        self.trains.renew(lease_end_s)

    def timeout(self) -> None:
        """The 2 s timeout: output stops, active mask 0; channel states stay as they are."""
        self.trains.stop_all()
        self.trains.lease_end_s = None

    def stop(self) -> None:
        """Leaving mid level (Ml_stop, reset, power off): output stops, everything is cleared."""
        self.trains.stop_all()
        self.trains.lease_end_s = None
        self.states = [p.ChannelState.OK] * p.CHANNEL_COUNT
        self.stop_all_on_error = False

    def stop_output(self) -> None:
        """The output stage stopped by itself: every channel stops, the device notices."""
        if self.active_mask:
            self.trains.stop_all()
            self._on_empty()

    def electrode_off(self, channel: int) -> None:
        """The pad of ``channel`` reports no load: an electrode error if it is running."""
        if self.trains.running(channel):
            self._fault(channel, p.ChannelState.ELECTRODE_ERROR, "no load")

    def channel_error(self, channel: int, state: p.ChannelState) -> None:
        """A fault hook: ``channel`` fails with ``state`` if it is running."""
        if self.trains.running(channel):
            self._fault(channel, state, "injected")
        else:
            self._say(f"channel error {state.name} on ch{channel} ignored: not stimulating")

    def _check_output(self, channel: int, setpoint: ChannelSetpoint) -> None:
        if _compliance_short(self.device, channel, setpoint):
            self._fault(channel, p.ChannelState.PULSE_LOW_CURRENT,
                        f"{setpoint.amplitude_ma:g} mA exceeds the compliance voltage")

    def _fault(self, channel: int, state: p.ChannelState, why: str) -> None:
        self.states[channel - 1] = state
        if self.stop_all_on_error:
            self.trains.stop_all()
        else:
            self.trains.stop(channel)
        scope = "all channels" if self.stop_all_on_error else f"ch{channel}"
        self._say(f"ch{channel} {state.name.lower().replace('_', ' ')} ({why}): {scope} stopped")
        if not self.active_mask and not self._updating:
            self._on_empty()


def _describe(config: p.MlChannelConfig) -> str:
    currents = "/".join(f"{pt.current_ma:g}" for pt in config.points)
    return (f"{currents} mA, {config.pulse_duration_us} µs, {config.period.period_ms:g} ms"
            + (f", ramp {config.ramp_pulses}" if config.ramp_pulses else ""))


class LowLevel:
    """Low-level state of one emulated P24.

    Args:
        device: the output stage.
        say: the device's human log.
        send: sends an ack (message, extra delay in s).
    """

    def __init__(self, device: SimulatedStimulator, say: Say, send: Send) -> None:
        self.device = device
        self.measurement = p.MeasurementType.NONE
        self.high_voltage_code = p.HIGH_VOLTAGE_OFF
        self._say = say
        self._send = send
        self._queue: deque[p.LlChannelConfig] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._pulse_channel: int | None = None

    def init(self, message: p.LlInit) -> p.Result:
        """Ll_init (also a re-init): measurement and high voltage; buffered pulses are dropped.

        Returns:
            2 for a high-voltage code above 6, else 0.
        """
        if message.high_voltage_code > _MAX_HIGH_VOLTAGE_CODE:
            return p.Result.PARAMETER_ERROR
        self.stop()
        self.measurement = message.measurement
        code = message.high_voltage_code
        self.high_voltage_code = p.HIGH_VOLTAGE_150V if code == 0 else code
        self._say(f"Ll_init: low level, measurement {self.measurement.name.lower()}, "
                  f"HV code {self.high_voltage_code}")
        return p.Result.OK

    def channel_config(self, message: p.LlChannelConfig) -> None:
        """Ll_channel_config: buffer the pulse (acked after it ran), or refuse it at once."""
        pn = message.packet_number
        if any(abs(pt.current_ma) > 130 for pt in message.points) \
                or len(self._queue) >= LOW_LEVEL_BUFFER:
            self._send(p.LlChannelConfigAck.refusal(pn, p.Result.PARAMETER_ERROR,
                                                    message.connector,
                                                    message.channel_in_connector), 0.0)
            return
        if not message.execute:
            self._send(self._ack(message, p.Result.OK), 0.0)
            return
        self._queue.append(message)
        if self._timer is None:
            self._next_pulse()

    def stop(self) -> None:
        """Ll_stop, reset, power: buffered pulses dropped unanswered, output zero, HV off."""
        self._queue.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._end_output()
        self.measurement = p.MeasurementType.NONE
        self.high_voltage_code = p.HIGH_VOLTAGE_OFF

    def _next_pulse(self) -> None:
        if not self._queue:
            return
        message = self._queue[0]
        duration_s = executed_duration_s(message.points)
        channel = message.channel
        setpoint = pulse_setpoint(message.points, 1.0)
        result = p.Result.OK
        if self.device.body.load(channel).no_load:
            result = p.Result.ELECTRODE_ERROR
        elif self.high_voltage_code == p.HIGH_VOLTAGE_OFF and setpoint.amplitude_ma > 0:
            result = p.Result.PULSE_LOW_CURRENT  # no voltage, no current
        else:
            if _compliance_short(self.device, channel, setpoint):
                result = p.Result.PULSE_LOW_CURRENT
            if setpoint.amplitude_ma > 0 and self.device.connected:
                self.device.set_outputs({channel: setpoint}, 2 * duration_s)
                self._pulse_channel = channel
        self._timer = asyncio.get_running_loop().call_later(duration_s, self._pulse_done,
                                                            result)

    def _pulse_done(self, result: p.Result) -> None:
        self._timer = None
        self._end_output()
        message = self._queue.popleft()
        self._send(self._ack(message, result), 0.0)
        self._next_pulse()

    def _end_output(self) -> None:
        if self._pulse_channel is not None and self.device.connected:
            self.device.set_outputs({self._pulse_channel: ZERO}, 1.0)
        self._pulse_channel = None

    def _ack(self, message: p.LlChannelConfig, result: p.Result) -> p.LlChannelConfigAck:
        # The emulator measures nothing: with a measurement type it sends 128 zero samples
        # over the pulse's duration.
        measured = self.measurement != p.MeasurementType.NONE
        duration_us = round(executed_duration_s(message.points) * 1e6) if message.points else 0
        return p.LlChannelConfigAck(
            packet_number=message.packet_number, result=result, connector=message.connector,
            channel_in_connector=message.channel_in_connector, measurement=self.measurement,
            sampling_time_us=max(1, -(-duration_us // p.MEASUREMENT_SAMPLES)) if measured else 0,
            samples=(0,) * p.MEASUREMENT_SAMPLES if measured else ())
