"""The emulated openEMSstim board as a :class:`~emsctl.simulator.pty.PtyDevice`.

``emsctl simulate openems --pty`` serves it through the generic pty server
(:mod:`emsctl.simulator.pty`, entry ``"openems"`` in its device table): any serial program —
emsctl's ``openems://<pty path>?…`` driver, the project's Python example, a terminal — talks to
the board's USB serial side byte for byte, in real time.

Options: ``extras`` may set the emulated external stimulator (``ma_at_100``, ``frequency_hz``,
``pulse_width_us``; default 40 mA, 80 Hz, 180 µs — a client declares the same in its URL) and
``boot_s``, ``firmware`` (current/legacy), ``debug`` (1/0). A pty has no DTR line, so opening it
does not reset the board as a USB cable does: the board boots once at power-on, and a client's
ready timeout covers the banner it did not see (``ready_timeout_s=0`` in its URL). The board has
no watchdog setting of its own: each command's on-time is its lease.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ...drivers.openems.protocol import Firmware
from ...errors import InputError
from ..model import ChannelOutput
from ..pty import Log, PtyDeviceOptions, Trace
from .openems import BOOT_S, ExternalStimulator, OpenEmsBoard, OpenEmsConfig

__all__ = ["OpenEmsPtyDevice", "pty_device"]

#: How often the output is looked at for the log (the on-time ends it with no input).
_WATCH_S = 0.001
_EXTRAS = {"ma_at_100": "40", "frequency_hz": "80", "pulse_width_us": "180",
           "boot_s": str(BOOT_S), "firmware": "current", "debug": "1"}


class OpenEmsPtyDevice:
    """Adapts :class:`OpenEmsBoard` to the pty server's device protocol.

    Args:
        board: the board.
        write: sends bytes to the pty client.
        trace: logs each chunk in both directions.
        log: logs device events (unsafe inputs, resets).
    """

    def __init__(self, board: OpenEmsBoard, write: Callable[[bytes], None], trace: Trace,
                 log: Log) -> None:
        self.board = board
        self._write = write
        self._trace = trace
        self._log = log
        self._unsafe_seen = 0
        self._shown = ""
        self._watch: asyncio.TimerHandle | None = None
        board.usb_writer = self._out

    def power_on(self) -> None:
        """Reset the board: setup runs and the banner follows after ``boot_s``."""
        self.board.reset()
        self._log(f"openEMSstim booting ({self.board.config.boot_s:g} s)")
        self._watch_outputs()

    def power_off(self) -> None:
        """Every output to zero at once (the relays open)."""
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        self.board.power_off()
        self._show()

    def _watch_outputs(self) -> None:
        # the board's on-time ends output without any input, so changes are looked for
        # every millisecond and logged like the other emulations ("output …", "output zero")
        self._show()
        self._watch = asyncio.get_running_loop().call_later(_WATCH_S, self._watch_outputs)

    def _show(self) -> None:
        outputs = self.board.device.output_now()
        shown = ", ".join(f"ch{c} {o.amplitude_ma:.2f} mA" for c, o in enumerate(outputs, 1)
                          if o.amplitude_ma > 0)
        if shown != self._shown:
            self._shown = shown
            self._log(f"output {shown or 'zero'}")

    def receive(self, data: bytes) -> None:
        """Bytes from the client, as on the board's USB serial port."""
        self._trace("host→device", data, data.decode("latin-1").strip())
        self.board.serial_receive(data)
        for event in self.board.unsafe_events[self._unsafe_seen:]:
            self._log(f"UNSAFE {event.kind}: {event.detail}")
        self._unsafe_seen = len(self.board.unsafe_events)

    def outputs(self) -> tuple[ChannelOutput, ...]:
        """Both channels' output now."""
        return self.board.device.output_now()

    def status(self) -> str:
        """Boot state, relays and wipers, unsafe-input count."""
        b = self.board
        state = "booting" if b.booting else "ready"
        channels = "; ".join(f"ch{c + 1} {'on' if b.active(c) else 'off'} wiper "
                             f"{b.wiper_steps(c)}" for c in (0, 1))
        return (f"openEMSstim ({b.config.firmware.value} firmware) {state}; {channels}; "
                f"unsafe inputs {len(b.unsafe_events)}")

    def _out(self, data: bytes) -> None:
        self._trace("device→host", data, data.decode("latin-1").strip())
        self._write(data)


def pty_device(options: PtyDeviceOptions, write: Callable[[bytes], None], trace: Trace,
               log: Log) -> OpenEmsPtyDevice:
    """The factory ``emsctl simulate openems --pty`` uses.

    Raises:
        InputError: an unknown or malformed extra, a watchdog setting, or a lenient profile.
    """
    unknown = set(options.extras) - set(_EXTRAS)
    if unknown:
        raise InputError(f"openems takes the extras {', '.join(_EXTRAS)}; got "
                         f"{', '.join(sorted(unknown))}")
    if options.watchdog_s is not None:
        raise InputError("openems has no watchdog setting: each command's on-time is its lease")
    if options.profile != "strict":
        raise InputError("openems has one behaviour, the firmware's: use the strict profile")
    extras = {**_EXTRAS, **options.extras}
    try:
        external = ExternalStimulator(float(extras["frequency_hz"]),
                                      float(extras["pulse_width_us"]),
                                      float(extras["ma_at_100"]))
        config = OpenEmsConfig(external, firmware=Firmware(extras["firmware"]),
                               debug=extras["debug"] not in ("0", "off", "false"),
                               boot_s=float(extras["boot_s"]),
                               impedance_ohm=options.impedance_ohm)
    except ValueError as exc:
        raise InputError(f"bad openems option: {exc}") from exc
    return OpenEmsPtyDevice(OpenEmsBoard(config), write, trace, log)
