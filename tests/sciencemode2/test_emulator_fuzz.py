"""HZ-12: random, truncated, duplicated and bit-flipped bytes never crash the emulated RehaStim2
and never make it output a current that no valid StartChannelListMode in the stream asked for."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from emsctl.clock import VirtualClock
from emsctl.drivers.sciencemode2 import protocol as p
from emsctl.simulator.devices.sciencemode2 import RehaStim2, RehaStim2Config, rehastim2_spec
from emsctl.simulator.model import SimulatedStimulator


def _start(pn: int, *currents: int) -> bytes:
    settings_ = tuple(p.ChannelSettings(p.PulseGroup.SINGLE, 250, c) for c in currents)
    return p.encode_message(p.StartChannelListMode(packet_number=pn, channel_settings=settings_))


INIT_ACK = p.encode_message(p.InitAck(packet_number=0, result=p.Result.OK))
VALID = [
    p.encode_message(p.InitChannelListMode(
        packet_number=1, low_frequency_factor=0, active_channel_mask=0b11,
        low_frequency_channel_mask=0, inter_pulse_interval_code=13, main_interval_code=248)),
    _start(2, 10, 12), _start(3, 30, 0), _start(4, 0, 44),
    p.encode_message(p.StopChannelListMode(packet_number=5)),
    p.encode_message(p.Watchdog(packet_number=6)),
    p.encode_message(p.GetStimulationMode(packet_number=7)),
    p.encode_message(p.SinglePulse(packet_number=8, channel_index=0, pulse_width_us=200,
                                   current_ma=18)),
]


@st.composite
def mangled(draw: st.DrawFn) -> bytes:
    """A frame from VALID, maybe truncated, duplicated or bit-flipped, or plain garbage."""
    kind = draw(st.sampled_from(["frame", "truncated", "duplicated", "flipped", "garbage"]))
    if kind == "garbage":
        return draw(st.binary(max_size=40))
    frame = bytearray(draw(st.sampled_from(VALID)))
    if kind == "truncated":
        return bytes(frame[: draw(st.integers(0, len(frame) - 1))])
    if kind == "duplicated":
        return bytes(frame + frame)
    if kind == "flipped":
        for _ in range(draw(st.integers(1, 3))):
            frame[draw(st.integers(0, len(frame) - 1))] ^= 1 << draw(st.integers(0, 7))
    return bytes(frame)


def _valid_currents(stream: bytes) -> set[float]:
    """Currents in every StartChannelListMode / SinglePulse that frames correctly (the oracle:
    an independent decoder over the same bytes)."""
    currents: set[float] = set()
    for item in p.FrameDecoder().feed(stream):
        if isinstance(item, p.BadFrame):
            continue
        try:
            message = p.decode_frame(item.payload)
        except p.ProtocolError:
            continue
        if isinstance(message, p.StartChannelListMode):
            currents |= {float(s.current_ma) for s in message.channel_settings}
        elif isinstance(message, p.SinglePulse):
            currents.add(float(message.current_ma))
    return currents


def _feed(chunks: list[bytes], profile: str) -> tuple[SimulatedStimulator, bytes]:
    config = RehaStim2Config(profile="lenient" if profile == "lenient" else "strict")
    device = SimulatedStimulator(rehastim2_spec(config))
    emulator = RehaStim2(device, lambda _wire: None, config)
    stream = INIT_ACK + b"".join(chunks)

    async def main() -> None:
        emulator.power_on()
        for chunk in [INIT_ACK, *chunks]:
            emulator.receive(chunk)
            await asyncio.sleep(0.004)
        await asyncio.sleep(0.05)

    VirtualClock().run(main())
    return device, stream


@settings(max_examples=150, deadline=None)
@given(chunks=st.lists(mangled(), max_size=12), profile=st.sampled_from(["strict", "lenient"]))
def test_mangled_streams_never_crash_nor_output_unrequested_current(
        chunks: list[bytes], profile: str) -> None:
    device, stream = _feed(chunks, profile)
    allowed = _valid_currents(stream)
    for channel in device.channels:
        delivered = set(device.intervals(channel)["amplitude_ma"].tolist()) - {0.0}
        assert delivered <= allowed, (channel, delivered, allowed)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=400))
def test_random_bytes_never_crash_nor_output_anything_without_a_valid_start(data: bytes) -> None:
    device, stream = _feed([data], "strict")
    if not _valid_currents(stream) - {0.0}:
        assert all(not (device.intervals(c)["amplitude_ma"] > 0).any() for c in device.channels)
