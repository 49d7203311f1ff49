"""Fault plans against the emulated P24: the device-side kinds, following the RehaStim2 pattern.

:class:`P24FaultTarget` is a :class:`~emsctl.simulator.faults.FaultTarget` for a
:class:`~.sciencemode4.P24`: ``drop_acks`` / ``late_acks`` / ``busy`` switch the emulator's fault
hooks for the fault's duration (``busy`` answers result 21 to everything but the stops and
Reset), ``disconnect`` unplugs the bus-powered device (it switches off: output stops at once,
nothing answers), and ``electrode_off`` / ``electrode_on`` / ``impedance`` / ``device_reset`` act
on the output stage through :class:`~emsctl.simulator.faults.DeviceFaultInjector` (a pad that
falls off while its channel runs is an electrode error in Ml_get_current_data). Byte-level kinds
belong to whatever carries the bytes and are not offered here.

Reads time only from the loop the plan is scheduled on; no I/O.
"""

from __future__ import annotations

from ..faults import DeviceFaultInjector, Fault
from .sciencemode4 import P24

__all__ = ["P24_FAULT_KINDS", "P24FaultTarget"]

P24_FAULT_KINDS: frozenset[str] = frozenset(
    {"disconnect", "drop_acks", "late_acks", "busy", "electrode_off", "electrode_on",
     "impedance", "device_reset", "wrong_current"})


class P24FaultTarget:
    """Carries out a fault plan on one emulated P24.

    Args:
        emulator: the device the faults happen to.
    """

    def __init__(self, emulator: P24) -> None:
        self.emulator = emulator
        self._injector = DeviceFaultInjector(emulator.device)

    @property
    def supported_fault_kinds(self) -> frozenset[str]:
        """Every kind :data:`P24_FAULT_KINDS` lists."""
        return P24_FAULT_KINDS

    @property
    def fault_channels(self) -> int:
        """Eight channels."""
        return self.emulator.device.spec.channels

    def fault_started(self, fault: Fault) -> None:
        """Begin ``fault`` now."""
        emulator = self.emulator
        if fault.kind == "disconnect":
            emulator.power_off()
        elif fault.kind == "drop_acks":
            emulator.drop_replies = True
        elif fault.kind == "late_acks":
            emulator.reply_extra_delay_s = fault.value or 0.0
        elif fault.kind == "busy":
            emulator.busy = True
        else:
            self._injector.start(fault)

    def fault_ended(self, fault: Fault) -> None:
        """Undo a fault whose duration is over."""
        emulator = self.emulator
        if fault.kind == "drop_acks":
            emulator.drop_replies = False
        elif fault.kind == "late_acks":
            emulator.reply_extra_delay_s = 0.0
        elif fault.kind == "busy":
            emulator.busy = False
        else:
            self._injector.end(fault)
