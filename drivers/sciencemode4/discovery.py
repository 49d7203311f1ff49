"""Finding a P24 among the serial ports: ``sciencemode4://`` without a port.

The P24 enumerates as a USB CDC port with VID 0483 / PID 5740 (``docs/protocols/sciencemode4.md``
docs/protocols/sciencemode4.md §2). That is STMicroelectronics' generic virtual-COM-port id, so
other devices share it: a port with this id is only a *candidate*. :class:`DiscoveredPort` is a
:class:`~..links.base.ByteLink` that, when it is opened, asks every candidate for its device id
(Get_device_id) and keeps the one port that answers like a P24; with none, or more than one, it
refuses with one sentence that lists the candidates and what each answered, so the user can name the
port.

It opens ports only in :meth:`DiscoveredPort.open` (never when the driver is made, and never
for ``emsctl devices``, which only lists). pyserial is imported here lazily; this module never
reads the wall clock (time comes from the loop).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from ...errors import DeviceError, LinkLostError
from ..links.base import ByteLink, LinkLostHandler, ReceiveHandler
from ..links.serial import SerialLink
from . import protocol as p

__all__ = ["P24_USB_ID", "PROBE_TIMEOUT_S", "DiscoveredPort", "ProbeResult", "candidate_ports",
           "probe", "serial_link"]

P24_USB_ID = (0x0483, 0x5740)
"""USB VID, PID of the P24's CDC port: the chip maker's generic id, shared by other devices."""
PROBE_TIMEOUT_S = 0.5
"""How long a candidate has to answer Get_device_id."""
_BAUD = 3_000_000


def serial_link(port: str) -> SerialLink:
    """The P24's line as the vendor documents it: 3 Mbaud 8N2 with RTS/CTS (CDC ignores it)."""
    return SerialLink(port, baud=_BAUD, parity="N", bytesize=8, stopbits=2, rtscts=True)


def candidate_ports() -> list[str]:
    """Every serial port with the P24's USB id, sorted by name."""
    from serial.tools import list_ports  # noqa: PLC0415 - pyserial only when looking

    return sorted(info.device for info in list_ports.comports()
                  if (info.vid, info.pid) == P24_USB_ID)


@dataclass
class ProbeResult:
    """What one candidate port answered.

    Attributes:
        port: the port's path.
        device_id: the id of a P24 that answered, else None.
        problem: why it is not taken as a P24 (None when it is one).
        link: the open link of a port that answered (closed for every other port).
    """

    port: str
    device_id: str | None
    problem: str | None
    link: SerialLink | None = None

    def describe(self) -> str:
        """``/dev/ttyACM0 (P24 id …)`` or ``/dev/ttyACM1 (no answer …)``."""
        what = f"P24 id {self.device_id}" if self.device_id is not None else self.problem
        return f"{self.port} ({what})"


async def probe(port: str, timeout_s: float = PROBE_TIMEOUT_S) -> ProbeResult:
    """Open ``port``, send Get_device_id and wait for a good Get_device_id_ack.

    The port stays open (in :attr:`ProbeResult.link`) only if a P24 answered.
    """
    link = serial_link(port)
    try:
        await link.open()
    except DeviceError as exc:
        return ProbeResult(port, None, f"cannot be opened: {exc}")
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[p.GetDeviceIdAck] = loop.create_future()
    decoder = p.FrameDecoder()
    request = p.GetDeviceId(packet_number=1)

    def on_bytes(data: bytes) -> None:
        for item in decoder.feed(data):
            if isinstance(item, p.BadFrame):
                continue
            with contextlib.suppress(Exception):
                message = p.decode_frame(item.payload)
                if (isinstance(message, p.GetDeviceIdAck) and p.acknowledges(message, request)
                        and message.result == p.Result.OK and not answer.done()):
                    answer.set_result(message)

    link.on_receive(on_bytes)
    try:
        await link.write(p.encode_message(request))
        ack = await asyncio.wait_for(answer, timeout_s)
    except (TimeoutError, DeviceError):
        await link.close()
        return ProbeResult(port, None, f"no P24 answer to Get_device_id within {timeout_s:g} s")
    return ProbeResult(port, ack.text, None, link)


class DiscoveredPort:
    """A :class:`ByteLink` to the one P24 among the candidate ports, found when opened.

    Args:
        timeout_s: how long each candidate has to answer.
    """

    def __init__(self, timeout_s: float = PROBE_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self.description = "the P24 found among the ports with USB id 0483:5740"
        self._link: ByteLink | None = None
        self._receive: ReceiveHandler | None = None
        self._lost: LinkLostHandler | None = None

    async def open(self) -> None:
        """Probe every candidate and keep the one P24's port open.

        Raises:
            DeviceError: no candidate port, none answered as a P24, or more than one did (the
                sentence lists each candidate with what it answered).
        """
        if self._link is not None:
            return
        ports = candidate_ports()
        if not ports:
            raise DeviceError("sciencemode4:// found no port with the P24's USB id 0483:5740; "
                              "plug the P24 in, or name its port: sciencemode4:///dev/ttyACM0 "
                              "('emsctl devices' lists the ports)")
        results = [await probe(port, self.timeout_s) for port in ports]
        found = [r for r in results if r.link is not None]
        if len(found) != 1:
            for r in found:
                assert r.link is not None
                await r.link.close()
            listed = "; ".join(r.describe() for r in results)
            if not found:
                raise DeviceError(f"sciencemode4:// found no P24: no port with USB id 0483:5740 "
                                  f"answered Get_device_id as a P24 ({listed}); name the port: "
                                  "sciencemode4:///dev/ttyACM0")
            raise DeviceError(f"sciencemode4:// found {len(found)} P24s, so it will not choose "
                              f"one ({listed}); name the port, e.g. "
                              f"sciencemode4://{found[0].port}")
        link = found[0].link
        assert link is not None
        self.description = f"{link.description}, found as P24 id {found[0].device_id}"
        if self._receive is not None:
            link.on_receive(self._receive)
        if self._lost is not None:
            link.on_lost(self._lost)
        self._link = link

    async def write(self, data: bytes) -> None:
        """Send bytes to the P24.

        Raises:
            LinkLostError: not open, or the port went away.
        """
        if self._link is None:
            raise LinkLostError("the P24's port is not open")
        await self._link.write(data)

    def discard_unsent(self) -> int:
        """Drop the writes the port has not handed on yet; return the bytes dropped."""
        return self._link.discard_unsent() if self._link is not None else 0

    def on_receive(self, handler: ReceiveHandler) -> None:
        """Deliver received bytes to ``handler``."""
        self._receive = handler
        if self._link is not None:
            self._link.on_receive(handler)

    def on_lost(self, handler: LinkLostHandler) -> None:
        """Report a lost port to ``handler``."""
        self._lost = handler
        if self._link is not None:
            self._link.on_lost(handler)

    async def close(self) -> None:
        """Close the port. Idempotent."""
        link, self._link = self._link, None
        if link is not None:
            await link.close()
