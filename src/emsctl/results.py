"""What a run of :func:`emsctl.run` returns: typed, frozen records of a finished session.

A :class:`RunResult` holds how the session ended, one :class:`ChannelResult` per *program*
channel (with the device channel it ran on and what the simulated device delivered there), and
every command the session sent, as :class:`CommandRecord` objects. Delivered pulses are numpy
structured arrays of :data:`PULSE_DTYPE`, read-only.

Pure data: nothing here talks to a device, reads a clock or writes a file. The simulator's
recorder builds its pulse arrays with the same dtype.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .contract import ChannelSetpoint
from .session import EndReason  # a real import: typing.get_type_hints() resolves every field

__all__ = ["PULSE_DTYPE", "ChannelResult", "CommandRecord", "RunResult"]

#: One row per delivered pulse: ``t_s`` (float64, the pulse's start), ``amplitude_ma``
#: (float64, the delivered first-phase current, mA) and ``pulse_width_us`` (float64, the
#: first-phase width, µs). Only pulses that delivered current are listed.
PULSE_DTYPE: np.dtype[np.void] = np.dtype([("t_s", "f8"), ("amplitude_ma", "f8"),
                                           ("pulse_width_us", "f8")])


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """One command the session sent to the driver, after the guard passed it.

    Attributes:
        t_s: seconds from the session's start.
        lease_s: how long the device may hold these setpoints without a renewal.
        intensity_pct: the user intensity the setpoints were scaled by.
        setpoints: one per *device* channel, in order (index 0 is device channel 1); the
            channels the program does not use are at zero.
    """

    t_s: float
    lease_s: float
    intensity_pct: float
    setpoints: tuple[ChannelSetpoint, ...]

    def setpoint(self, device_channel: int) -> ChannelSetpoint:
        """The setpoint of ``device_channel`` (1-based), e.g. ``ChannelResult.device_channel``.

        Raises:
            IndexError: no such device channel.
        """
        if not 1 <= device_channel <= len(self.setpoints):
            raise IndexError(f"device channel {device_channel} is not 1–{len(self.setpoints)}")
        return self.setpoints[device_channel - 1]


@dataclass(frozen=True, slots=True)
class ChannelResult:
    """What one program channel delivered, as the simulated device recorded it.

    Attributes:
        id: the program's channel id.
        site: the electrode site of the program's channel.
        device_channel: the device channel (1-based) the program channel ran on.
        peak_ma: the largest delivered pulse current, mA (0 without pulses).
        rms_ma: root-mean-square current over the whole record, both phases counted, mA.
        max_phase_charge_uc: the largest first-phase charge of one pulse, µC.
        pulse_count: how many pulses delivered current.
        pulses: every pulse that delivered current, in time order: a read-only structured
            array of :data:`PULSE_DTYPE`, with ``t_s`` in seconds from the session's start
            (the time base of :attr:`RunResult.commands`).
    """

    id: int
    site: str
    device_channel: int
    peak_ma: float
    rms_ma: float
    max_phase_charge_uc: float
    pulse_count: int
    pulses: npt.NDArray[np.void] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class RunResult:
    """A finished run of :func:`emsctl.run`.

    Attributes:
        program: the program's name.
        device: the device URL it ran on. device_model: the device's model.
        end_reason: ``completed``, ``stopped``, ``signal``, ``fault`` or ``guard``.
        message: one sentence on how the session ended.
        exit_code: what ``emsctl run`` would exit with: 0 ok, 1 a fault or a limit,
            130 stopped.
        stimulation_s: time spent in stimulation phases (guide phases not counted), s.
        channels: one per program channel, in the program's order.
        commands: every command sent to the driver, in order.
        events: what else happened (pauses, unconfirmed stops, …), one sentence each.
        journal_path: the journal file, when a journal folder was given; else None.
    """

    program: str
    device: str
    device_model: str
    end_reason: EndReason
    message: str
    exit_code: int
    stimulation_s: float
    channels: tuple[ChannelResult, ...]
    commands: tuple[CommandRecord, ...] = field(repr=False)
    events: tuple[str, ...] = ()
    journal_path: Path | None = None

    @property
    def completed(self) -> bool:
        """True when the program ran to its end."""
        return self.end_reason == "completed"

    def channel(self, channel_id: int) -> ChannelResult:
        """The result of program channel ``channel_id``.

        Raises:
            KeyError: the program has no such channel.
        """
        for channel in self.channels:
            if channel.id == channel_id:
                return channel
        raise KeyError(channel_id)
