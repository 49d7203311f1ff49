"""The emulated Coyote V3 follows the device side of the spec
(docs/protocols/coyote3.md §3–§7, §12), byte for byte."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from emsctl.clock import VirtualClock
from emsctl.drivers.coyote3.protocol import (
    BATTERY_CHARACTERISTIC_UUID,
    NOTIFY_CHARACTERISTIC_UUID,
    WRITE_CHARACTERISTIC_UUID,
)
from emsctl.errors import ProtocolError
from emsctl.simulator.devices.coyote3 import EmulatedCoyote
from emsctl.simulator.faults import Fault
from emsctl.simulator.model import OFF
from emsctl.simulator.transports import MemoryGattLink

K = 0.2  # mA per step
LATENCY_S = 0.0075


def run(coro: Coroutine[Any, Any, None]) -> None:
    VirtualClock().run(coro)


class Host:
    """A bare GATT host: writes hex frames, collects notifications."""

    def __init__(self, emulator: EmulatedCoyote) -> None:
        self.emulator = emulator
        self.link = MemoryGattLink(emulator.server)
        self.b1: list[str] = []
        self.battery: list[bytes] = []

    async def connect(self) -> None:
        await self.link.connect(1.0)
        await self.link.subscribe(NOTIFY_CHARACTERISTIC_UUID, lambda u, v: self.b1.append(v.hex()))
        await self.link.subscribe(BATTERY_CHARACTERISTIC_UUID, lambda u, v: self.battery.append(v))

    async def send(self, frame_hex: str, *, settle_s: float = 0.02, response: bool = False) -> None:
        await self.link.write(WRITE_CHARACTERISTIC_UUID, bytes.fromhex(frame_hex),
                              response=response)
        await asyncio.sleep(settle_s)


def with_host(test: Callable[[EmulatedCoyote, Host], Coroutine[Any, Any, None]],
              **options: Any) -> None:
    async def main() -> None:
        emulator = EmulatedCoyote(ma_per_step=K, **options)
        host = Host(emulator)
        await host.connect()
        await test(emulator, host)
    run(main())


def amplitudes(emulator: EmulatedCoyote) -> list[float]:
    return [o.amplitude_ma for o in emulator.device.output_now()]


def test_sequenced_add_is_answered_with_b1_like_the_vendor_example() -> None:
    async def body(emulator: EmulatedCoyote, host: Host) -> None:
        await host.send("B00405000A0A0A0A000A141E0000000000000065")  # seq 0, A +5: no B1
        await host.send("B00405000A0A0A0A000A141E0000000000000065")  # 10 in total
        await host.send("B0140A00283C5064645A5A5A0000000000000065")  # seq 1, A +10 → 20
        assert emulator.strengths_steps == [20, 0]
        assert host.b1 == ["b1011400"]
    with_host(body)


def test_limits_from_bf_clamp_a_set_and_b1_reports_the_clamped_values() -> None:
    async def body(emulator: EmulatedCoyote, host: Host) -> None:
        await host.send("BF961E00000000")
        await host.send("B02FB4280A0A0A0A000000000A0A0A0A00000000")  # seq 2, set 180/40
        assert emulator.strengths_steps == [150, 30]
        assert host.b1 == ["b102961e"]
    with_host(body)


def test_bf_below_the_strength_lowers_it_and_reports_with_sequence_0() -> None:
    async def body(emulator: EmulatedCoyote, host: Host) -> None:
        await host.send("B01F3C280A0A0A0A000000000A0A0A0A00000000")  # seq 1, set 60/40
        await host.send("BF1EC880808080")  # limit A 30, B byte 200 (B stays ≤ 200)
        assert emulator.strengths_steps == [30, 40]
        assert host.b1 == ["b1013c28", "b1001e28"]
        assert emulator.balances == (128, 128, 128, 128)
    with_host(body)


def test_a_valid_frame_plays_for_100_ms_then_the_channel_falls_silent() -> None:
    async def body(emulator: EmulatedCoyote, host: Host) -> None:
        # seq 4, set A = 20 (4 mA), B = 30 (6 mA); A 8 Hz intensity 40, B 25 Hz intensity 70
        await host.send("B04F141E69696969282828282828282846464646", settle_s=LATENCY_S + 0.05)
        out = emulator.device.output_now()
        assert out[0].amplitude_ma == pytest.approx(4.0)
        assert out[0].frequency_hz == pytest.approx(8.0)  # P 125 ms
        assert out[0].pulse_width_us == 40.0
        assert (out[1].amplitude_ma, out[1].frequency_hz) == (pytest.approx(6.0), 25.0)
        await asyncio.sleep(0.06)  # 110 ms after receipt
        assert amplitudes(emulator) == [0.0, 0.0]
        # docs/protocols/coyote3.md §7: the strength is kept
        assert emulator.strengths_steps == [20, 30]
    with_host(body)


def test_an_out_of_range_byte_silences_only_that_channel_but_strengths_still_apply() -> None:
    async def body(emulator: EmulatedCoyote, host: Host) -> None:
        # set 20/30; A has intensity 101 in one slot (invalid), B valid
        await host.send("B04F141E69696969282828652828282846464646", settle_s=LATENCY_S + 0.01)
        assert emulator.strengths_steps == [20, 30]
        assert amplitudes(emulator) == [0.0, pytest.approx(6.0)]
        # frequency byte 0 in B (the vendor's padding): B silent for that frame
        await host.send("B0000000696969692828282800282828464646", settle_s=0.01)
        assert emulator.writes_ignored == 1  # 19 bytes: wrong length, ignored
        await host.send("B000000069696969282828280028282846464646", settle_s=0.01)
        assert amplitudes(emulator) == [pytest.approx(4.0), 0.0]
    with_host(body)


def test_slots_play_in_25_ms_steps_and_intensity_0_is_silence() -> None:
    async def body(emulator: EmulatedCoyote, host: Host) -> None:
        # set A = 10; A intensities 0, 10, 0, 10 at 100 Hz; B silent (intensity 101)
        await host.send("B01F0A000A0A0A0A000A000A0A0A0A0A00000065", settle_s=LATENCY_S + 0.001)
        seen = []
        for _ in range(4):
            seen.append(amplitudes(emulator)[0])
            await asyncio.sleep(0.025)
        assert seen == [0.0, pytest.approx(2.0), 0.0, pytest.approx(2.0)]
    with_host(body)


@pytest.mark.parametrize("frame_hex", [
    "B1011900",                                   # a device head written by the host
    "BE3C3C80808080",                             # deprecated echo head
    "B00000",                                     # too short
    "B0000000141414143C3C3C3C141414143C3C3C3C00",  # too long
    "BF3C3C808080",                               # BF too short
    "",
])
def test_writes_with_another_head_or_length_are_ignored_without_answer(frame_hex: str) -> None:
    async def body(emulator: EmulatedCoyote, host: Host) -> None:
        await host.send(frame_hex)
        assert emulator.writes_ignored == 1 and host.b1 == []
        assert emulator.strengths_steps == [0, 0] and amplitudes(emulator) == [0.0, 0.0]
    with_host(body)


def test_write_requests_are_accepted_like_write_commands() -> None:
    async def body(emulator: EmulatedCoyote, host: Host) -> None:
        await host.send("B03C2800141414143C3C3C3C0A0A0A0A00000065", response=True)
        assert emulator.strengths_steps == [40, 0] and host.b1 == ["b1032800"]
    with_host(body)


def test_repeated_absolute_sets_are_idempotent_and_answered_once() -> None:
    async def body(emulator: EmulatedCoyote, host: Host) -> None:
        for _ in range(5):  # a field client: set with seq 1 in every frame, ignoring B1
            await host.send("B01F0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A", settle_s=0.1)
        assert emulator.strengths_steps == [10, 10] and host.b1 == ["b1010a0a"]
    with_host(body)


def test_ack_unchanged_mode_answers_a_change_that_changed_nothing() -> None:
    async def body(emulator: EmulatedCoyote, host: Host) -> None:
        await host.send("B01F00000A0A0A0A000000000A0A0A0A00000000")
        assert host.b1 == ["b1010000"]
    with_host(body, ack_unchanged=True)


def test_frame_grace_keeps_a_late_frame_continuous_in_lenient_mode() -> None:
    async def body(emulator: EmulatedCoyote, host: Host) -> None:
        frame = "B01F0A000A0A0A0A0A0A0A0A0A0A0A0A00000065"
        await host.send(frame, settle_s=LATENCY_S + 0.12)
        assert amplitudes(emulator)[0] == pytest.approx(2.0)  # 120 ms: still inside 100 + 50
        await asyncio.sleep(0.04)
        assert amplitudes(emulator)[0] == 0.0
    with_host(body, frame_grace_ms=50)


def test_the_wheel_and_a_strength_fault_are_reported_with_sequence_0() -> None:
    async def body(emulator: EmulatedCoyote, host: Host) -> None:
        await host.send("B01F0A000A0A0A0A0A0A0A0A0A0A0A0A00000065", settle_s=0.01)
        emulator.wheel(1, up=True)
        emulator.faults.fault_started(Fault("strength_change", 0.0, channel=2, value=3.0))
        await asyncio.sleep(0.02)
        assert host.b1 == ["b1010a00", "b1000b00", "b1000b0f"]
        assert amplitudes(emulator)[0] == pytest.approx(2.2)  # the running frame, new strength
    with_host(body)


def test_battery_is_read_and_notified() -> None:
    async def body(emulator: EmulatedCoyote, host: Host) -> None:
        assert await host.link.read(BATTERY_CHARACTERISTIC_UUID) == bytes([77])
        emulator.faults.fault_started(Fault("battery_low", 0.0, value=9))
        await asyncio.sleep(0.02)
        assert host.battery == [bytes([9])]
        with pytest.raises(ProtocolError):
            await host.link.read(WRITE_CHARACTERISTIC_UUID)
    with_host(body, battery_pct=77)


def test_disconnect_keeps_the_strength_but_the_output_runs_out() -> None:
    async def body(emulator: EmulatedCoyote, host: Host) -> None:
        await host.send("B01F0A000A0A0A0A0A0A0A0A0A0A0A0A00000065", settle_s=0.01)
        emulator.faults.fault_started(Fault("disconnect", 0.0))
        await asyncio.sleep(0.1)
        assert amplitudes(emulator) == [0.0, 0.0] and emulator.strengths_steps == [10, 0]
    with_host(body)


def test_reset_zeroes_strength_and_output_and_drops_the_link() -> None:
    async def body(emulator: EmulatedCoyote, host: Host) -> None:
        await host.send("B01F0A000A0A0A0A0A0A0A0A0A0A0A0A00000065", settle_s=0.01)
        emulator.faults.fault_started(Fault("device_reset", 0.0))
        assert emulator.device.output_now() == (OFF, OFF)
        assert emulator.strengths_steps == [0, 0] and not emulator.server.connected
    with_host(body)


def test_limits_and_balances_persist_across_emulator_restarts(tmp_path: Path) -> None:
    state = tmp_path / "coyote.json"

    async def body(emulator: EmulatedCoyote, host: Host) -> None:
        await host.send("BF3C1E01020304")
    with_host(body, persist_path=state)
    again = EmulatedCoyote(ma_per_step=K, persist_path=state)
    assert again.limits_steps == [60, 30] and again.balances == (1, 2, 3, 4)
