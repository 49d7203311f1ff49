"""What the P24 driver builds once instead of for every command: frames and prepared updates.

The hot path of a session is an Ml_update and its ack, or a poll; the stop must go out at once.
So the frames of the commands without varying data exist once per packet number
(:class:`Frames`), and an Ml_update is prepared once per distinct set of setpoints
(:class:`PreparedUpdate`: its blocks, its stuffed data, its load and its words), kept in a
small cache (:class:`PreparedUpdates`); only the packet number's stuffed prefix is joined at
send time. The bytes are exactly what the codec's ``encode_message`` makes.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from ...contract import ChannelSetpoint
from ..sciencemode.host import PacketFrame
from . import mapping
from . import protocol as p

__all__ = ["Frames", "PreparedUpdate", "PreparedUpdates", "frames_of"]

#: Prepared updates kept per driver (setpoints → blocks, stuffed data, description); a session
#: repeats few distinct setpoints between ramps, and the cache starts afresh when full.
_PREPARED_MAX = 512


def frames_of(make: Callable[[int], p.Request]) -> PacketFrame:
    """The wire frame of a command without varying data, for each packet number, built once
    (the stop and the poll are on the hot path)."""
    return tuple(p.encode_message(make(pn)) for pn in range(p.MAX_PACKET_NUMBER + 1)).__getitem__


class Frames:
    """The frames of the commands the driver sends without varying data."""

    GET_STIM_STATUS: ClassVar[PacketFrame] = frames_of(
        lambda pn: p.GetStimStatus(packet_number=pn))
    GET_DEVICE_ID: ClassVar[PacketFrame] = frames_of(lambda pn: p.GetDeviceId(packet_number=pn))
    GET_EXTENDED_VERSION: ClassVar[PacketFrame] = frames_of(
        lambda pn: p.GetExtendedVersion(packet_number=pn))
    ML_INIT: ClassVar[PacketFrame] = frames_of(
        lambda pn: p.MlInit(packet_number=pn, stop_all_on_error=True))
    ML_GET_CURRENT_DATA: ClassVar[PacketFrame] = frames_of(
        lambda pn: p.MlGetCurrentData(packet_number=pn))
    ML_STOP: ClassVar[PacketFrame] = frames_of(lambda pn: p.MlStop(packet_number=pn))
    LL_STOP: ClassVar[PacketFrame] = frames_of(lambda pn: p.LlStop(packet_number=pn))


#: The stuffed command prefix of Ml_update for each packet number.
_ML_UPDATE_PREFIX = tuple(p.stuff(p.command_prefix(pn, p.Command.ML_UPDATE))
                          for pn in range(p.MAX_PACKET_NUMBER + 1))


@dataclass(frozen=True, slots=True)
class PreparedUpdate:
    """An Ml_update prepared once per distinct set of setpoints.

    Attributes:
        configs: channel → block, as :func:`blocks` makes them (never mutated).
        data: the update's data (enable mask and blocks), stuffed: the same bytes as
            ``p.stuff(p.MlUpdate.of(pn, configs).data())`` for any packet number.
        load: the device's load sum of the blocks (:func:`mapping.update_load`).
        text: the blocks in words, for the ``ack`` telemetry.
    """

    configs: dict[int, p.MlChannelConfig]
    data: bytes
    load: float
    text: str

    @classmethod
    def of(cls, configs: dict[int, p.MlChannelConfig]) -> PreparedUpdate:
        """Prepare the update of ``configs`` (the codec checks every field once, here)."""
        message = p.MlUpdate.of(0, configs)
        return cls(configs, p.stuff(message.data()), mapping.update_load(configs.values()),
                   describe(configs))

    def frame(self, packet_number: int) -> bytes:
        """The wire frame with ``packet_number``: ``p.encode_message`` of the Ml_update."""
        return p.frame_from_stuffed(_ML_UPDATE_PREFIX[packet_number] + self.data)


class PreparedUpdates:
    """The updates prepared so far, by setpoints (the cache starts afresh when full)."""

    def __init__(self) -> None:
        self._prepared: dict[tuple[tuple[float, float, float], ...], PreparedUpdate] = {}

    def get(self, setpoints: Sequence[ChannelSetpoint]) -> PreparedUpdate:
        """The update of ``setpoints``, prepared once (blocks, frame data, load, words).

        Raises:
            InputError: a setpoint the mid level cannot express.
        """
        key = tuple((sp.amplitude_ma, sp.pulse_width_us, sp.frequency_hz) for sp in setpoints)
        update = self._prepared.get(key)
        if update is None:
            update = PreparedUpdate.of(blocks(setpoints))
            if len(self._prepared) >= _PREPARED_MAX:
                self._prepared.clear()
            self._prepared[key] = update
        return update


def blocks(setpoints: Sequence[ChannelSetpoint]) -> dict[int, p.MlChannelConfig]:
    """One Ml_update block per channel with output (the base class checked the ranges).

    Raises:
        InputError: a setpoint the mid level cannot express.
    """
    configs: dict[int, p.MlChannelConfig] = {}
    for channel, sp in enumerate(setpoints, start=1):
        if sp.amplitude_ma <= 0:
            continue
        config = mapping.channel_config(sp.amplitude_ma, sp.pulse_width_us, sp.frequency_hz)
        if config is not None:
            configs[channel] = config
    return configs


def describe(configs: dict[int, p.MlChannelConfig]) -> str:
    """The blocks in words, for the ``ack`` telemetry."""
    return ", ".join(
        f"ch{ch} {c.points[0].current_ma:g} mA {c.points[0].duration_us} µs "
        f"{mapping.frequency_hz_from_period(c.period):.2f} Hz" for ch, c in configs.items())
