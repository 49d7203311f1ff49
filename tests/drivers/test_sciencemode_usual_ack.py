"""The usual ack of a ScienceMode request, taken byte for byte without the decoder.

A request's usual answer (result 0, no data) is known before it comes; bytes that are exactly
that frame resolve the request at once. These tests hold the shortcut to what the decoder would
have made of the same bytes, and show that anything else still goes through the decoder.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from emsctl.clock import VirtualClock
from emsctl.contract import ZERO, ChannelSetpoint
from emsctl.devices import open_device
from emsctl.drivers.sciencemode.acks import PendingAcks
from emsctl.drivers.sciencemode2 import protocol as p2
from emsctl.drivers.sciencemode4 import protocol as p4
from emsctl.errors import DeviceError
from emsctl.simulator.drivers.sciencemode4 import SimulatedScienceMode4Driver

#: generation → (its protocol, its host commands, the largest packet number)
GENERATIONS: dict[str, tuple[ModuleType, list[int], int]] = {
    "sciencemode2": (p2, [int(c) for c in p2.Command], 255),
    "sciencemode4": (p4, [int(c) for c in p4.Command], 63),
}


@pytest.mark.parametrize("generation", sorted(GENERATIONS))
def test_the_usual_ack_is_what_the_decoder_makes_of_its_bytes(generation: str) -> None:
    protocol, commands, max_pn = GENERATIONS[generation]
    with_ack = 0
    for command in commands:
        for pn in range(max_pn + 1):
            ack = protocol.ok_ack(command, pn)
            if ack is None:
                continue
            with_ack += 1
            assert protocol.decode_message(protocol.encode_message(ack)) == ack
            assert (ack.command, ack.packet_number, int(ack.result)) == (command + 1, pn, 0)
            assert ack.data() == b"\x00"  # nothing but the result byte
    assert with_ack >= 3 * (max_pn + 1)  # at least init, update (start) and stop


def test_acks_that_carry_data_have_no_usual_form() -> None:
    for command in (p4.Command.ML_GET_CURRENT_DATA, p4.Command.GET_DEVICE_ID,
                    p4.Command.GET_STIM_STATUS, p4.Command.GET_EXTENDED_VERSION,
                    p4.Command.LL_CHANNEL_CONFIG):
        assert p4.ok_ack(command, 5) is None
    assert p2.ok_ack(p2.Command.GET_STIMULATION_MODE, 5) is None
    assert p2.ok_ack(p2.Command.WATCHDOG, 5) is None


def _pending() -> tuple[PendingAcks[Any], list[bytes]]:
    written: list[bytes] = []

    async def write(frame: bytes) -> None:
        written.append(frame)

    def usual(command: int, pn: int) -> tuple[bytes, Any] | None:
        ack = p4.ok_ack(command, pn)
        return None if ack is None else (p4.encode_message(ack), ack)

    return PendingAcks(1.0, write, usual), written


def _in_loop(body: Callable[[], Any]) -> Any:
    return asyncio.run(body())


def test_exactly_the_usual_bytes_resolve_the_request_and_nothing_else_does() -> None:
    async def body() -> None:
        acks, _written = _pending()
        update = int(p4.Command.ML_UPDATE)
        task = asyncio.ensure_future(acks.request(7, update, b"frame"))
        await asyncio.sleep(0)
        refused = p4.encode_message(p4.refusal(update, 7, p4.Result.TRANSFER_ERROR))
        other_pn = p4.encode_message(p4.MlUpdateAck(packet_number=8, result=p4.Result.OK))
        usual = p4.encode_message(p4.MlUpdateAck(packet_number=7, result=p4.Result.OK))
        assert not acks.take_usual(refused)  # a refusal is decoded as ever
        assert not acks.take_usual(other_pn)
        assert not acks.take_usual(usual[:5])  # half a frame
        assert not acks.take_usual(usual + usual[:1])  # a frame and the start of another
        assert not task.done()
        assert acks.take_usual(usual)
        reply = await task
        assert reply == p4.MlUpdateAck(packet_number=7, result=p4.Result.OK)
        assert not acks.take_usual(usual)  # the request is over: its bytes are forgotten

    _in_loop(body)


def test_a_request_whose_ack_carries_data_is_never_taken_by_its_bytes() -> None:
    async def body() -> None:
        acks, _written = _pending()
        poll = int(p4.Command.ML_GET_CURRENT_DATA)
        task = asyncio.ensure_future(acks.request(3, poll, b"frame"))
        await asyncio.sleep(0)
        zero_filled = p4.encode_message(p4.refusal(poll, 3, p4.Result.OK))
        assert not acks.take_usual(zero_filled)
        acks.fail_all(DeviceError("done"))
        with pytest.raises(DeviceError, match="done"):
            await task

    _in_loop(body)


def _on(amplitude_ma: float) -> list[ChannelSetpoint]:
    return [ChannelSetpoint(amplitude_ma, 20.0, 200.0)] + [ZERO] * 7


def test_the_driver_takes_the_usual_ack_without_decoding_and_decodes_the_rest() -> None:
    driver = open_device("sim+sciencemode4")
    assert isinstance(driver, SimulatedScienceMode4Driver)

    async def body() -> None:
        await driver.connect()
        decoded = driver._decoder.frames  # type: ignore[attr-defined]
        await driver.apply(_on(6.0), 1.0)  # an update: its ack is the usual one
        assert driver._decoder.frames == decoded  # type: ignore[attr-defined]
        assert driver.emulator.outputs()[0].amplitude_ma == 6.0
        await driver.apply(_on(6.0), 1.0)  # unchanged: a poll, whose ack carries data
        assert driver._decoder.frames == decoded + 1  # type: ignore[attr-defined]
        await driver.close()

    VirtualClock().run(body())
