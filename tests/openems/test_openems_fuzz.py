"""The emulated board fed random and mutated input: it never crashes, and it never outputs
current that no parsed command (or a logged unsafe input) asked for (HZ-12)."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emsctl.clock import VirtualClock
from emsctl.drivers.openems.protocol import (
    SHUTDOWN,
    ActionCommand,
    Firmware,
    HostCommand,
    encode_ble,
    encode_serial,
    intensity_pct_to_wiper_steps,
)
from emsctl.simulator.devices.openems import ExternalStimulator, OpenEmsBoard, OpenEmsConfig
from emsctl.simulator.devices.openems_front import Rn4020Front
from emsctl.simulator.transports import MemoryGattLink

EXT = ExternalStimulator(80.0, 180.0, 40.0)
SLACK_S = 1.0  # blocking waits and read timeouts can delay an expiry; random input chains them
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

commands = st.one_of(
    st.builds(ActionCommand, st.integers(0, 1), st.integers(0, 100), st.integers(0, 5000)),
    st.just(SHUTDOWN))
chunks = st.lists(st.tuples(st.floats(0.0, 0.3), st.binary(max_size=40)), max_size=30)


def check_board(board: OpenEmsBoard, until_s: float) -> None:
    """Every output interval is explained by an activation; unsafe inputs were logged."""
    unsafe = {e.kind for e in board.unsafe_events}
    toggled = any(a.source == "test_handler" for a in board.activations)
    for channel in (0, 1):
        starts = [a for a in board.activations if a.channel == channel]
        iv = board.device.intervals(channel + 1, until_s)
        for row in iv[iv["amplitude_ma"] > 0]:
            cause = [a for a in starts if a.t_s <= row["t0_s"] + 1e-9]
            assert cause, f"channel {channel}: output at {row['t0_s']} with no activation"
            last = cause[-1]
            assert row["amplitude_ma"] <= board.level_ma(channel, 0) + 1e-9
            if not unsafe:
                # only parsed actions with I ≤ 100: never above I100, never past the on-time
                assert row["amplitude_ma"] <= EXT.ma_at_100 + 1e-9
                assert last.deadline_s is not None
                assert last.deadline_s - last.t_s <= 5.0 + 1e-9
                ends = [a.deadline_s for a in starts
                        if a.t_s <= row["t1_s"] and a.deadline_s is not None]
                assert row["t1_s"] <= max(ends) + SLACK_S
            elif not toggled:
                # the firmware's endTime = millis() + T can be 0 (T read as -1 just after a
                # reset): check() then never ends the channel; the board logged it as unsafe
                assert last.deadline_s is not None or "on_time_never_ends" in unsafe


def feed(board: OpenEmsBoard, items: list[tuple[float, bytes]], via_ble: bool = False
         ) -> float:
    async def main() -> float:
        link = None
        if via_ble:
            front = Rn4020Front(board)
            link = MemoryGattLink(front.server)
            await link.connect(1.0)
        for delay_s, data in items:
            await asyncio.sleep(delay_s)
            if link is None:
                board.serial_receive(data)
            elif data:
                await link.write("454d532d-5374-6575-6572-756e672d4348", data[:32],
                                 response=True)
        await asyncio.sleep(7.0)  # past every on-time
        return asyncio.get_running_loop().time()

    return VirtualClock().run(main())


@FUZZ
@given(chunks, st.sampled_from(list(Firmware)))
def test_random_serial_bytes_never_crash_and_never_give_unexplained_output(
        items: list[tuple[float, bytes]], firmware: Firmware) -> None:
    board = OpenEmsBoard(OpenEmsConfig(EXT, boot_s=0.0, firmware=firmware))
    end_s = feed(board, items)
    check_board(board, end_s)


@FUZZ
@given(chunks)
def test_random_ble_values_never_crash_and_never_give_unexplained_output(
        items: list[tuple[float, bytes]]) -> None:
    board = OpenEmsBoard(OpenEmsConfig(EXT, boot_s=0.0))
    end_s = feed(board, items, via_ble=True)
    check_board(board, end_s)


@st.composite
def mutated_streams(draw: st.DrawFn) -> tuple[list[HostCommand], list[tuple[float, bytes]]]:
    sent = draw(st.lists(commands, min_size=1, max_size=12))
    stream = bytearray(b"".join(encode_serial(c) for c in sent))
    for _ in range(draw(st.integers(0, 6))):
        if not stream:
            break
        i = draw(st.integers(0, len(stream) - 1))
        how = draw(st.sampled_from(["flip", "drop", "dup", "byte"]))
        if how == "flip":
            stream[i] ^= 1 << draw(st.integers(0, 7))
        elif how == "drop":
            del stream[i]
        elif how == "dup":
            stream.insert(i, stream[i])
        else:
            stream[i] = draw(st.integers(0, 255))
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    pieces = [bytes(stream[a:b]) for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    delays = draw(st.lists(st.floats(0.0, 0.2), min_size=len(pieces), max_size=len(pieces)))
    return sent, list(zip(delays, pieces, strict=True))


@FUZZ
@given(mutated_streams())
def test_mutated_host_lines_never_give_unexplained_output(
        case: tuple[list[HostCommand], list[tuple[float, bytes]]]) -> None:
    _, items = case
    board = OpenEmsBoard(OpenEmsConfig(EXT, boot_s=0.0))
    end_s = feed(board, items)
    check_board(board, end_s)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(commands, min_size=1, max_size=10), st.booleans())
def test_unmutated_host_commands_do_exactly_what_they_say(sent: list[HostCommand],
                                                         via_ble: bool) -> None:
    board = OpenEmsBoard(OpenEmsConfig(EXT, boot_s=0.0))
    # spaced beyond the longest blocking wait (a shutdown: 2 × 50 ms); closer spacing after
    # shutdowns overflows the Nano's 64-byte buffer, as on the real board
    items = [(0.11, encode_ble(c) if via_ble else encode_serial(c)) for c in sent]
    end_s = feed(board, items, via_ble=via_ble)
    assert board.unsafe_events == [] and board.dropped_rx_bytes == 0
    actions = [c for c in sent if isinstance(c, ActionCommand)]
    assert [(a.channel, a.wiper_steps) for a in board.activations] == [
        (c.channel, intensity_pct_to_wiper_steps(c.intensity_pct)) for c in actions]
    check_board(board, end_s)


def test_shutdowns_closer_than_their_blocking_wait_overflow_the_receive_buffer() -> None:
    board = OpenEmsBoard(OpenEmsConfig(EXT, boot_s=0.0))
    feed(board, [(0.05, encode_serial(SHUTDOWN))] * 16)  # 20 lines/s, 10 processed/s
    assert board.dropped_rx_bytes > 0  # why the driver never sends shutdowns back to back
