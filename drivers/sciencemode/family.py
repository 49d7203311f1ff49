"""What the conformance facts of both ScienceMode families do the same way.

:class:`ScienceModeFamily` is the base of the RehaStim2's and the P24's
:class:`~emsctl.conformance.Family`: both put a byte tap that cuts frames by the shared receiver
rules on the driver's link, and both answer a withheld ack of their stop command the same way —
wait the driver's own ack timeout, then send the stop once more
(``docs/protocols/sciencemode2.md`` §8, ``docs/protocols/sciencemode4.md`` §10 step 6). Each
family says which driver, splitter, reader and stop command are its own.

Reads only bytes (through the tap), the driver's public state and its telemetry.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ...conformance import CheckRun, Family, Outcome
from ...contract import Driver
from ...errors import DeviceError, InputError
from ...wiretap import ByteTap, TapControls, WireLog
from ..links.base import ByteLink
from .wire import FrameReader, FrameSplitter

__all__ = ["ScienceModeFamily"]


class ScienceModeFamily(Family):
    """A ScienceMode family's wire facts: the tap and the withheld stop ack shared."""

    electrode_check = True
    update_settle_s = 0.05
    emulated_settle_s = 0.05
    #: The protocol's name, for errors.
    protocol: ClassVar[str]
    #: The family's driver class (it has ``link`` and ``ack_timeout_s``).
    driver_type: ClassVar[type[Driver]]
    #: The family's frame splitter.
    splitter_type: ClassVar[type[FrameSplitter]] = FrameSplitter
    #: Reads the tap's units as the family's frames and messages.
    wire: ClassVar[FrameReader[Any, Any]]
    #: The stop command's number.
    stop_command: ClassVar[int]
    #: The stop command in words ("the Stop", "Ml_stop").
    stop_name: ClassVar[str]
    #: Where the document says that an unanswered stop is sent once more.
    stop_resend_cite: ClassVar[str]

    def install_tap(self, driver: Driver, log: WireLog, session: int) -> TapControls:
        """Wrap the driver's byte link.

        Raises:
            InputError: not this family's driver.
        """
        if not isinstance(driver, self.driver_type):
            raise InputError(f"not a {self.protocol} driver: {type(driver).__name__}")
        link: ByteLink = driver.link  # type: ignore[attr-defined]
        tap = ByteTap(link, log, session, self.splitter_type())
        driver.link = tap  # type: ignore[attr-defined]
        return tap

    async def ack_timeout(self, run: CheckRun) -> Outcome:
        """Withhold the ack of one stop: the driver must wait its ack timeout, then send the
        stop once more."""
        driver = await run.ready()
        assert isinstance(driver, self.driver_type) and run.tap is not None
        ack_timeout_s: float = driver.ack_timeout_s  # type: ignore[attr-defined]
        stop = self.stop_name
        out = Outcome()
        mark, t0 = run.log.mark(), run.now()
        run.tap.drop_next(lambda _c, data: self.wire.command(data) == self.stop_command + 1)
        try:
            await driver.stop()
        except DeviceError as exc:
            out.problems.append(f"the stop failed after one withheld ack: {exc}")
        events = run.log.since(mark, run.session)
        withheld = [e for e in events if not e.from_host and not e.delivered]
        stops = [e for e, f, _m in self.wire.messages(events, host=True)
                 if f.command == self.stop_command]
        if not withheld:
            out.problems.append(f"the device did not acknowledge {stop}, so no ack could be "
                                "withheld")
        elif len(stops) < 2:
            out.problems.append(f"after its ack was withheld, {stop} was not sent again "
                                f"({self.document} {self.stop_resend_cite})")
        else:
            gap = stops[1].t_s - stops[0].t_s
            out.measurements["ack_timeout_s"] = gap
            if gap < ack_timeout_s - 1e-3:
                out.problems.append(f"{stop} was resent after {gap * 1000:.0f} ms, before the "
                                    f"driver's own {ack_timeout_s * 1000:.0f} ms ack timeout")
        if not any(t.kind == "stopped" for t in run.telemetry_since(t0, run.session)):
            out.problems.append("the stop was not reported confirmed after the resend")
        return out
