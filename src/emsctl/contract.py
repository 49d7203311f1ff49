"""The driver contract every device protocol implements, and the generic work around it.

Public methods of :class:`Driver` do the common work — argument checks, rounding down to the
device step, the stop latch, the lease bookkeeping, telemetry fan-out — and call protected
``_…_internal`` hooks that a concrete driver fills in (the python-can ``BusABC`` habit).

Lease semantics: ``apply(setpoints, lease_s)`` asks the device to hold the setpoints for at most
``lease_s``; a driver renews it only by another ``apply``. A device left without a renewed lease
must fall silent by itself, through its own watchdog (L21). ``stop()`` is the fastest path to zero:
idempotent, it never waits behind another command, and after it ``apply`` refuses anything but
zero until the driver is re-armed by a new ``connect()`` (HZ-03). ``close()`` always stops first.

This module must never import pyserial or bleak: links do that, lazily.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self, final

from .errors import DeviceError, EmsError, InputError
from .limit_table import (
    FREQUENCY_MAX_CEILING_HZ,
    FREQUENCY_MIN_CEILING_HZ,
    PEAK_CEILING_MA,
    PLAN_RISE_CEILING_MA_PER_S,
    PULSE_WIDTH_MAX_CEILING_US,
    PULSE_WIDTH_MIN_CEILING_US,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "ZERO",
    "Capabilities",
    "ChannelSetpoint",
    "Driver",
    "DriverStoppedError",
    "NoRecorderError",
    "OutputRecord",
    "SetpointGuard",
    "Telemetry",
    "TelemetryKind",
]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a device can do, as declared by its driver (and tightened by its profile)."""

    model: str
    channels: int
    amplitude_max_ma: float
    amplitude_step_ma: float
    pulse_width_min_us: float
    pulse_width_max_us: float
    frequency_min_hz: float
    frequency_max_hz: float
    frequency_per_channel: bool
    update_period_s: float
    max_lease_s: float
    has_output_watchdog: bool
    telemetry: frozenset[str] = field(default_factory=frozenset)
    #: Devices that count in steps declare how many mA one step is; mA devices leave None.
    ma_per_step: float | None = None
    #: Whether the device itself can time bursts (burst TENS); never emulated from the host.
    bursts: bool = False
    #: A device that makes its rates on a grid (period bins) and may make one faster than asked:
    #: ``rate_ratio(low_hz, high_hz)``, the most the rate it makes exceeds the rate asked, as a
    #: ratio, over rates asked in that range (exact for one rate). Verification then checks the
    #: rate-dependent limits at the rates it makes too. None: it makes no rate faster. Not
    #: compared: it describes the same grid as the driver's ``delivered_frequency_hz``.
    rate_ratio: Callable[[float, float], float] | None = field(default=None, compare=False,
                                                               repr=False)

    def quantize_ma(self, amplitude_ma: float) -> float:
        """Round ``amplitude_ma`` down to the device's amplitude step (never up)."""
        step = self.amplitude_step_ma
        if step <= 0:
            return amplitude_ma
        steps = math.floor(amplitude_ma / step + 1e-9)
        return steps * step


@dataclass(frozen=True, slots=True)
class ChannelSetpoint:
    """What one channel should do now. Amplitude 0 means no output."""

    amplitude_ma: float
    frequency_hz: float
    pulse_width_us: float
    #: Burst TENS: ``burst_pulses`` pulses at ``frequency_hz``, ``burst_rate_hz`` times a
    #: second, timed by the device (HZ-19). 0 means continuous pulses.
    burst_rate_hz: float = 0.0
    burst_pulses: int = 0

    @property
    def pulses_per_s(self) -> float:
        """N, the largest number of pulses in any 1 s window (what rms, density and duty are
        computed from): :func:`emsctl.pulse_window.pulses_per_s`."""
        from . import pulse_window  # noqa: PLC0415 - keeps numpy out of the drivers' imports

        return pulse_window.pulses_per_s(self.frequency_hz, self.burst_rate_hz, self.burst_pulses)


ZERO = ChannelSetpoint(0.0, 0.0, 0.0)

TelemetryKind = Literal[
    "connected",
    "ack",
    "applied",
    "stopped",
    "electrode_off",
    "electrode_ok",
    "battery",
    "strength",
    "device_error",
    "device_reset",
    "link_lost",
]


@dataclass(frozen=True, slots=True)
class Telemetry:
    """One report from a device. ``t_s`` is the session clock's time when it arrived."""

    kind: TelemetryKind
    t_s: float
    channel: int | None = None
    value: float | None = None
    message: str = ""


class OutputRecord(Protocol):
    """What a simulated device actually delivered, as the core reads it (the simulator's
    recorder implements it; real devices have none)."""

    def summary(self, until_s: float | None = None) -> dict[int, dict[str, float]]:
        """Per device channel: peak and rms mA, phase charge, pulse count, net DC."""
        ...

    def pulses(self, channel: int, until_s: float | None = None) -> npt.NDArray[np.void]:
        """Every pulse ``channel`` (1-based) delivered, in time order: a structured array of
        :data:`emsctl.results.PULSE_DTYPE` (``t_s``, ``amplitude_ma``, ``pulse_width_us``)."""
        ...

    def delivered_now_ma(self, channel: int) -> float:
        """The current the device delivers on ``channel`` (1-based) right now."""
        ...

    def zero_after_s(self, channel: int, t_s: float) -> float | None:
        """The first time at or after ``t_s`` when ``channel`` delivered zero (None: never)."""
        ...


#: Drivers opened from the reserved built-in ``sim`` / ``sim+*`` entries of the device table.
#: Only :func:`emsctl.devices.open_device` adds to it; nothing else can make a driver simulated.
_SIMULATED: weakref.WeakSet[Driver] = weakref.WeakSet()


def _mark_simulated(driver: Driver) -> None:
    """For the device table only: ``driver`` was opened from a reserved simulator entry."""
    _SIMULATED.add(driver)


class DriverStoppedError(DeviceError):
    """``apply`` was called with output after ``stop()``; nothing was sent."""


class NoRecorderError(DeviceError, AttributeError):
    """The driver has no output record: it drives a real device, which records nothing.

    Also an :class:`AttributeError`, so ``getattr(driver, "recorder", None)`` gives None.
    """


class SetpointGuard(Protocol):
    """A check every :meth:`Driver.apply` passes before anything is sent (see
    :meth:`Driver.set_guard`).

    The core's runtime guard behind :func:`emsctl.open_device` implements it; a session has
    its own guard and installs none.
    """

    def start(self, t_s: float) -> None:
        """A new session begins at ``t_s``: the driver has just been (re)connected."""
        ...

    def check(self, t_s: float, setpoints: tuple[ChannelSetpoint, ...], lease_s: float
              ) -> tuple[ChannelSetpoint, ...]:
        """Return ``setpoints`` (to be held for ``lease_s``) when they are within the limits;
        raise an :class:`EmsError` (such as :class:`~emsctl.errors.SafetyViolation`) when they
        are not."""
        ...


class Driver(ABC):
    """Base class of every device driver; an async context manager (connect … close).

    Subclasses set :attr:`capabilities` and fill the ``_…_internal`` hooks.
    """

    capabilities: Capabilities
    #: The URL the driver was opened from (for the journal).
    url: str = ""
    _recorder: OutputRecord | None = None
    _guard: SetpointGuard | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "simulated" in cls.__dict__:
            raise TypeError(f"{cls.__name__} may not define 'simulated': only the device table "
                            "marks a driver as simulated")
        if "calibration_key" in cls.__dict__:
            raise TypeError(f"{cls.__name__} may not define 'calibration_key': declare the values "
                            "that turn settings into mA in 'declared_scaling'")

    def __init__(self) -> None:
        self._listeners: list[Callable[[Telemetry], None]] = []
        self._stopped = True
        self._connected = False
        self._closed = False
        self._stop_task: asyncio.Task[None] | None = None
        #: How many times stop() was called (a stop during connect() must stay latched).
        self._stops = 0
        self.last_applied: tuple[ChannelSetpoint, ...] = ()
        #: When the last setpoints were applied, and the lease they carried: after it ran out
        #: the device is at zero, and any rise starts again from there.
        self._applied_at_s = -math.inf
        self._applied_lease_s = 0.0

    # ------------------------------------------------------------------ public API

    async def connect(self) -> None:
        """Open the link, handshake, and arm the driver with all outputs at zero.

        A ``stop()`` while this runs wins: the driver comes up stopped (outputs at zero).

        Raises:
            DeviceError: the device could not be reached or refused the handshake.
        """
        if self._closed:
            raise DeviceError("this driver was closed; open the device again")
        stops_before = self._stops
        await self._connect_internal()
        self._connected = True
        # HZ-03: a stop() that came while the handshake ran wins over the re-arm; the device
        # is at zero (the handshake leaves it so) and stays latched until the next connect()
        self._stopped = self._stops != stops_before
        self.last_applied = (ZERO,) * self.capabilities.channels
        self._applied_at_s, self._applied_lease_s = -math.inf, 0.0
        if self._guard is not None:
            self._guard.start(self._now())

    async def apply(self, setpoints: Sequence[ChannelSetpoint], lease_s: float) -> None:
        """Send absolute setpoints for every channel, valid for at most ``lease_s``.

        Amplitudes are rounded down to the device step; nothing else is adjusted.

        Raises:
            InputError: wrong number of channels, or values outside the device's capabilities.
            DriverStoppedError: the driver was stopped and the setpoints are not all zero.
            DeviceError: the device did not accept the command.
            EmsError: the driver's guard (:meth:`set_guard`) refused the setpoints; nothing was
                sent and the driver is stopping (e.g. SafetyViolation).
        """
        caps = self.capabilities
        if len(setpoints) != caps.channels:
            raise InputError(f"{caps.model} has {caps.channels} channels, got {len(setpoints)}")
        if not 0 < lease_s <= caps.max_lease_s:
            raise InputError(f"lease {lease_s} s is outside 0–{caps.max_lease_s} s")
        # ZERO is off and within every ceiling: the channels a program leaves unused cost nothing
        rounded = tuple(sp if sp is ZERO else self._checked(i, sp)
                        for i, sp in enumerate(setpoints, start=1))
        if self._stopped:
            if any(sp.amplitude_ma > 0 for sp in rounded):
                raise DriverStoppedError("the device is stopped; start a new session to resume")
            return
        if not self._connected:
            raise DeviceError("apply() before connect()")
        now_s = self._now()
        self._check_rise(rounded, now_s)
        if self._guard is not None:
            try:
                rounded = self._guard.check(now_s, rounded, lease_s)
            except EmsError:
                self.request_stop()  # a refused command ends the output, as in a session
                raise
        self._applied_at_s, self._applied_lease_s = now_s, lease_s
        await self._apply_internal(rounded, lease_s)
        if self._stopped:  # stop() ran while we waited for the ack: its zero stands
            return
        self.last_applied = rounded

    async def stop(self) -> None:
        """Bring every output to zero now. Idempotent; never waits behind another command.

        Raises:
            DeviceError: the stop could not be confirmed (the device watchdog still silences
                the output, L21).
        """
        task = self.request_stop()
        if task is not None:
            await asyncio.shield(task)

    def request_stop(self) -> asyncio.Future[None] | None:
        """Latch the stop now, synchronously, and start putting it on the wire.

        For callers that cannot wait (a key handler, a signal handler): from the moment this
        returns, ``apply`` refuses output, even if the stop task has not run yet (HZ-03).

        Returns:
            The stop in progress (await it for confirmation), or None when not connected.
        """
        self._stopped = True
        self._stops += 1
        self.last_applied = (ZERO,) * self.capabilities.channels
        if not self._connected:
            return None
        if self._stop_task is None or self._stop_task.done():
            self._stop_task = asyncio.ensure_future(self._stop_internal())
        return self._stop_task

    async def close(self) -> None:
        """Stop, then release the link. Idempotent.

        Raises:
            DeviceError: the stop could not be confirmed; the link is released anyway.
        """
        if self._closed:
            return
        try:
            await self.stop()
        finally:
            self._closed = True
            if self._connected:
                self._connected = False
                await self._close_internal()

    def delivered_frequency_hz(self, frequency_hz: float) -> float:
        """The rate the device really makes when asked for ``frequency_hz`` (within its
        range): devices set a period on a grid (the RehaStim2 in 0.5 ms steps, the Coyote in
        1–10 ms bins). Exact by default. ``emsctl show --device`` reports the largest
        difference as rounding."""
        return frequency_hz

    @property
    def declared_scaling(self) -> Mapping[str, float]:
        """The values declared in the URL that decide what a setting delivers to the person.

        Empty for a device that is set in mA. A driver whose currents rest on a declaration
        (the Coyote's ``ma_per_step`` and balances, the openEMSstim's external stimulator)
        returns every declared value that changes the current or the pulse a setting gives;
        :attr:`calibration_key` binds a person's calibration to them.
        """
        return {}

    @final
    @property
    def calibration_key(self) -> str:
        """What a person's calibration on this device is stored under.

        The URL's scheme (each emulation has its own: ``sim+coyote3`` is not ``coyote3``), then
        every value of :attr:`declared_scaling`: ``coyote3?ma_per_step=0.2``. Thresholds in mA
        measured under one declaration are wrong under another (the same strength step gives a
        different current), so a different declaration needs a new calibration.
        """
        scheme = self.url.partition("://")[0].partition("?")[0].lower() or type(self).__name__
        declared = "&".join(f"{name}={float(value)!r}"
                            for name, value in sorted(self.declared_scaling.items()))
        return f"{scheme}?{declared}" if declared else scheme

    @property
    def recorder(self) -> OutputRecord:
        """What the device actually delivered; only simulated devices have one.

        Raises:
            NoRecorderError: a real device (see :attr:`has_recorder`).
        """
        if self._recorder is None:
            model = getattr(self, "capabilities", None)
            name = model.model if model is not None else type(self).__name__
            raise NoRecorderError(f"{name} records nothing: only simulated devices have a "
                                  "recorder")
        return self._recorder

    @recorder.setter
    def recorder(self, record: OutputRecord | None) -> None:
        self._recorder = record

    @property
    def has_recorder(self) -> bool:
        """True when :attr:`recorder` can tell what the device delivered (simulated devices)."""
        return self._recorder is not None

    def set_guard(self, guard: SetpointGuard | None) -> None:
        """Pass every later :meth:`apply` through ``guard`` (None: no guard of the driver's own).

        :func:`emsctl.open_device` installs the runtime guard of the limits; the guard is
        restarted at every :meth:`connect`.
        """
        self._guard = guard

    @final
    @property
    def simulated(self) -> bool:
        """True only for drivers opened from the built-in ``sim`` / ``sim+*`` device entries."""
        return self in _SIMULATED

    def set_channel_caps_ma(self, caps_ma: Mapping[int, float]) -> None:  # noqa: B027 - optional
        """Hand the verified per-channel caps to a device that can hold limits of its own.

        The default does nothing: most devices cannot. Keys are program channel ids, which are
        the device channel numbers. A driver whose output could go past a cap whatever it is
        sent (openEMSstim: a corrupted line can open it to its external stimulator's full
        scale) refuses the caps, and then refuses output on a channel without one.

        Raises:
            InputError: a channel the device does not have, or a cap that is not a figure.
            ValidationFailed: the device cannot keep its output within these caps.
        """

    @property
    def stopped(self) -> bool:
        """True from ``stop()`` until the next ``connect()``."""
        return self._stopped

    def add_listener(self, listener: Callable[[Telemetry], None]) -> None:
        """Call ``listener`` with every telemetry report (from the loop's thread)."""
        self._listeners.append(listener)

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ for subclasses

    def _emit(self, telemetry: Telemetry) -> None:
        """Deliver ``telemetry`` to every listener."""
        for listener in list(self._listeners):
            listener(telemetry)

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _check_rise(self, setpoints: tuple[ChannelSetpoint, ...], now_s: float) -> None:
        """Refuse a rise faster than the slew ceiling from what the device delivers now.

        The device delivers the last setpoints while their lease holds, and zero after it; the
        allowance covers at most one update period, however long ago the last command was,
        plus one device step.
        """
        caps = self.capabilities
        dt_s = max(0.0, now_s - self._applied_at_s)
        held = dt_s < self._applied_lease_s and len(self.last_applied) == len(setpoints)
        allowed_ma = PLAN_RISE_CEILING_MA_PER_S * min(dt_s, caps.update_period_s) \
            + caps.amplitude_step_ma + 1e-9
        for channel, sp in enumerate(setpoints, start=1):
            delivered_ma = self.last_applied[channel - 1].amplitude_ma if held else 0.0
            if sp.amplitude_ma - delivered_ma > allowed_ma:
                raise InputError(
                    f"channel {channel}: a rise from {delivered_ma:g} to {sp.amplitude_ma:g} mA "
                    f"at once is faster than {PLAN_RISE_CEILING_MA_PER_S:g} mA/s (limit L16); "
                    "raise the output step by step")

    def _checked(self, channel: int, sp: ChannelSetpoint) -> ChannelSetpoint:
        caps = self.capabilities
        amplitude_ma = sp.amplitude_ma
        # finite and non-negative (NaN fails every comparison); this runs for every channel
        # of every update, so without a generator
        if not (0.0 <= amplitude_ma < math.inf and 0.0 <= sp.frequency_hz < math.inf
                and 0.0 <= sp.pulse_width_us < math.inf):
            raise InputError(f"channel {channel}: setpoints must be finite and non-negative")
        if amplitude_ma == 0:  # off, within every ceiling; only a -0.0 needs a copy
            return sp if math.copysign(1.0, amplitude_ma) > 0 else replace(sp, amplitude_ma=0.0)
        if sp.amplitude_ma > PEAK_CEILING_MA:
            raise InputError(f"channel {channel}: {sp.amplitude_ma:g} mA is over emsctl's "
                             f"absolute ceiling of {PEAK_CEILING_MA:g} mA (limit L3)")
        if sp.amplitude_ma > 0:
            _check_ceilings(channel, sp)
        if sp.amplitude_ma > caps.amplitude_max_ma:
            raise InputError(f"channel {channel}: {sp.amplitude_ma:g} mA is over the device "
                             f"maximum of {caps.amplitude_max_ma:g} mA")
        if sp.burst_rate_hz > 0 and not caps.bursts:
            raise InputError(f"channel {channel}: {caps.model} cannot time bursts")
        if not caps.frequency_min_hz <= sp.frequency_hz <= caps.frequency_max_hz:
            raise InputError(f"channel {channel}: {sp.frequency_hz:g} Hz is outside "
                             f"{caps.frequency_min_hz:g}–{caps.frequency_max_hz:g} Hz")
        if not caps.pulse_width_min_us <= sp.pulse_width_us <= caps.pulse_width_max_us:
            raise InputError(f"channel {channel}: {sp.pulse_width_us:g} µs is outside "
                             f"{caps.pulse_width_min_us:g}–{caps.pulse_width_max_us:g} µs")
        quantized_ma = caps.quantize_ma(amplitude_ma)
        # the session already sends device steps: keep its object rather than copying it
        return sp if quantized_ma == amplitude_ma else replace(sp, amplitude_ma=quantized_ma)

    @abstractmethod
    async def _connect_internal(self) -> None:
        """Open the link and handshake; leave every output at zero."""

    @abstractmethod
    async def _apply_internal(self, setpoints: tuple[ChannelSetpoint, ...], lease_s: float) -> None:
        """Send already checked, rounded setpoints. May wait for an ack."""

    @abstractmethod
    async def _stop_internal(self) -> None:
        """Put a stop on the wire at once, without waiting for any pending command."""

    @abstractmethod
    async def _close_internal(self) -> None:
        """Release the link. Called once, after a stop."""


def _check_ceilings(channel: int, sp: ChannelSetpoint) -> None:
    """The absolute ceilings that hold whatever the electrode or the person (L6, L7).

    The charge-per-phase ceiling (L8, 32 µC) is the product of the peak and the width
    ceilings (80 mA × 400 µs), so with those two it holds too.

    Raises:
        InputError: a pulse width or frequency beyond its ceiling.
    """
    if not PULSE_WIDTH_MIN_CEILING_US <= sp.pulse_width_us <= PULSE_WIDTH_MAX_CEILING_US:
        raise InputError(f"channel {channel}: {sp.pulse_width_us:g} µs is outside emsctl's "
                         f"absolute range of {PULSE_WIDTH_MIN_CEILING_US:g}–"
                         f"{PULSE_WIDTH_MAX_CEILING_US:g} µs (limit L6)")
    if not FREQUENCY_MIN_CEILING_HZ <= sp.frequency_hz <= FREQUENCY_MAX_CEILING_HZ:
        raise InputError(f"channel {channel}: {sp.frequency_hz:g} Hz is outside emsctl's "
                         f"absolute range of {FREQUENCY_MIN_CEILING_HZ:g}–"
                         f"{FREQUENCY_MAX_CEILING_HZ:g} Hz (limit L7)")
