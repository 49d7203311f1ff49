"""The tap on a driver's link: what it records, what it withholds, and the family splitters that
cut received bytes into whole frames (ScienceMode2) and lines (openEMSstim) however a port
delivers them."""

from __future__ import annotations

import asyncio
import random

from emsctl.drivers.openems.conformance import LineSplitter
from emsctl.drivers.sciencemode2.conformance import FrameSplitter
from emsctl.wiretap import DEVICE_TO_HOST, HOST_TO_DEVICE, ByteTap, WireLog

# docs/protocols/sciencemode2.md §11: the escaped header byte is a raw 0F, F0 and 81 in turn
FRAMES = [bytes.fromhex(h) for h in (
    "F0 81 0F 81 57 DC 04 0F", "F0 81 F0 81 57 C4 04 0F", "F0 81 81 81 57 86 04 0F",
    "F0 81 35 81 5D 04 20 00 00 81 A5 81 5A 0F", "F0 81 47 81 56 00 01 01 0F")]


def test_frames_come_out_whole_whatever_the_chunking() -> None:
    stream = b"".join(FRAMES)
    rng = random.Random(7)
    for _ in range(200):
        splitter = FrameSplitter()
        cuts = sorted(rng.sample(range(1, len(stream)), rng.randrange(0, 12)))
        out: list[bytes] = []
        for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
            out += splitter.feed(stream[start:end])
        assert out == FRAMES


def test_stray_bytes_pass_and_a_bare_start_restarts_the_frame() -> None:
    splitter = FrameSplitter()
    assert splitter.feed(b"\x00\x01" + FRAMES[4]) == [b"\x00\x01", FRAMES[4]]
    assert splitter.feed(b"\xf0\x81\x47" + FRAMES[0]) == [b"\xf0\x81\x47", FRAMES[0]]


def test_lines_come_out_whole() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"SETUP DO") == []
    assert splitter.feed(b"NE\r\nEMS_CMD: C9G\r\npart") == [b"SETUP DONE\r\n", b"EMS_CMD: C9G\r\n"]


class _Pipe:
    description = "test pipe"

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.handler = None

    async def open(self) -> None:
        pass

    async def write(self, data: bytes) -> None:
        self.written.append(data)

    def on_receive(self, handler) -> None:  # type: ignore[no-untyped-def]
        self.handler = handler

    def on_lost(self, handler) -> None:  # type: ignore[no-untyped-def]
        pass

    async def close(self) -> None:
        pass


def test_the_tap_records_mutes_drops_and_holds() -> None:
    async def main() -> None:
        pipe, log = _Pipe(), WireLog()
        tap = ByteTap(pipe, log, 3, FrameSplitter())
        got: list[bytes] = []
        tap.on_receive(got.append)
        await tap.open()
        await tap.write(b"one")
        tap.mute()
        await tap.write(b"two")
        tap.unmute()
        assert pipe.written == [b"one"]
        tap.drop_next(lambda _c, data: data == FRAMES[1])
        pipe.handler(FRAMES[0] + FRAMES[1] + FRAMES[2])  # type: ignore[misc]
        assert got == [FRAMES[0], FRAMES[2]]
        tap.hold_incoming()
        pipe.handler(FRAMES[3] + FRAMES[4])  # type: ignore[misc]
        assert got == [FRAMES[0], FRAMES[2]]
        tap.release()
        assert got == [FRAMES[0], FRAMES[2], FRAMES[3], FRAMES[4]]
        assert [(e.direction, e.delivered, e.session) for e in log.events[:2]] == [
            (HOST_TO_DEVICE, True, 3), (HOST_TO_DEVICE, False, 3)]
        notes = [e.note for e in log.events if e.direction == DEVICE_TO_HOST]
        assert notes == ["", "dropped by the check: not delivered to the driver", "",
                         "held by the check, delivered later", "held by the check, delivered later"]
        assert tap.last_delivered_write_s is not None

    asyncio.run(main())


def test_what_the_check_sends_itself_goes_out_while_muted_and_is_marked() -> None:
    async def main() -> None:
        pipe, log = _Pipe(), WireLog()
        tap = ByteTap(pipe, log, 0)
        await tap.open()
        await tap.write(b"driver")
        last = tap.last_delivered_write_s
        tap.mute()
        await tap.write(b"muted")
        event = await tap.send_own(b"probe")
        assert pipe.written == [b"driver", b"probe"]
        assert event.by_check and event.delivered and event.from_host
        assert event.note == "sent by the check: a probe"
        assert not any(e.by_check for e in log.events[:2])
        assert tap.last_delivered_write_s == last  # the driver's last write, not the probe

    asyncio.run(main())
