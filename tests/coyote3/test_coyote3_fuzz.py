"""Random and mutated bytes never crash the Coyote decoders, driver or emulator, and never make
output that no valid command asked for (HZ-01, HZ-12).

The emulator is checked against a second, independent reading of the spec written here: the
strength arithmetic of docs/protocols/coyote3.md §4/§5 and the waveform validity rule, in a dozen
lines.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emsctl.clock import VirtualClock
from emsctl.contract import ChannelSetpoint
from emsctl.drivers.coyote3.config import CoyoteConfig
from emsctl.drivers.coyote3.driver import CoyoteDriver
from emsctl.drivers.coyote3.protocol import (
    BATTERY_CHARACTERISTIC_UUID,
    NOTIFY_CHARACTERISTIC_UUID,
    WRITE_CHARACTERISTIC_UUID,
    decode_command,
    decode_notification,
)
from emsctl.errors import DeviceError, ProtocolError
from emsctl.simulator.devices.coyote3 import EmulatedCoyote

K = 0.25
VALID_B0 = [bytes.fromhex(h) for h in (
    "B04F141E69696969282828282828282846464646",
    "B01F0A000A0A0A0A0A0A0A0A0A0A0A0A00000065",
    "B0000000141414143C3C3C3C141414143C3C3C3C",
    "B02801000A0A0A0A323232320A0A0A0A00000065",
    "B0140A00283C5064645A5A5A0000000000000065",
)]
VALID_BF = [bytes.fromhex("BF3C3C80808080"), bytes.fromhex("BF961E00000000")]


@st.composite
def writes(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["random", "mutated_b0", "mutated_bf", "valid"]))
    if kind == "random":
        return draw(st.binary(max_size=24))
    if kind == "valid":
        return draw(st.sampled_from(VALID_B0 + VALID_BF))
    base = bytearray(draw(st.sampled_from(VALID_B0 if kind == "mutated_b0" else VALID_BF)))
    for _ in range(draw(st.integers(1, 4))):
        base[draw(st.integers(1, len(base) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):  # sometimes truncate or extend too
        base = base[: draw(st.integers(0, len(base) + 2))] + bytes(draw(st.integers(0, 2)))
    return bytes(base)


class Reference:
    """An independent model of the device's strengths and limits
    (docs/protocols/coyote3.md §4, §5)."""

    def __init__(self) -> None:
        self.strength = [0, 0]
        self.limit = [200, 200]

    def take(self, data: bytes) -> list[bool | None]:
        """Apply a write; per channel, whether its waveform is valid (None: not a B0)."""
        if len(data) == 7 and data[0] == 0xBF:
            for c in range(2):
                if data[1 + c] <= 200:
                    self.limit[c] = data[1 + c]
                self.strength[c] = min(self.strength[c], self.limit[c])
            return [None, None]
        if len(data) != 20 or data[0] != 0xB0:
            return [None, None]
        for c in range(2):
            mode = (data[1] >> (2 if c == 0 else 0)) & 0b11
            value = data[2 + c] if data[2 + c] <= 200 else 0
            s = self.strength[c]
            s = {0: s, 1: s + value, 2: s - value, 3: value}[mode]
            self.strength[c] = max(0, min(s, self.limit[c]))
        valid = []
        for start in (4, 12):
            codes, levels = data[start:start + 4], data[start + 4:start + 8]
            valid.append(all(10 <= c <= 240 for c in codes) and all(v <= 100 for v in levels))
        return valid


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(writes(), min_size=1, max_size=25))
def test_emulator_output_follows_only_valid_commands(frames: list[bytes]) -> None:
    async def main() -> None:
        emulator = EmulatedCoyote(ma_per_step=K)
        reference = Reference()
        emulator.server.connected = True
        playing: list[bytes | None] = [None, None]
        for data in frames:
            emulator.server.on_write(WRITE_CHARACTERISTIC_UUID, data, False)  # type: ignore[misc]
            valid = reference.take(data)
            assert emulator.strengths_steps == reference.strength
            assert emulator.limits_steps == reference.limit
            for c in range(2):
                if valid[c] is not None:
                    playing[c] = data if valid[c] else None
            out = emulator.device.output_now()
            for c in range(2):
                frame = playing[c]
                if frame is None or reference.strength[c] == 0 or frame[8 + 8 * c] == 0:
                    assert out[c].amplitude_ma == 0.0, (c, data.hex())
                    continue
                assert out[c].amplitude_ma == reference.strength[c] * K
                assert 1.0 <= out[c].frequency_hz <= 100.0
                assert out[c].pulse_width_us == frame[8 + 8 * c]  # slot 0 intensity × 1 µs
            await asyncio.sleep(0.001)
    VirtualClock().run(main())


@given(st.binary(max_size=30))
def test_decoders_raise_only_protocol_errors(data: bytes) -> None:
    for decode in (decode_command, decode_notification):
        with contextlib.suppress(ProtocolError):
            decode(data)


class CaptureLink:
    """A GattLink that records writes and lets the test notify anything."""

    description = "capture"

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.handlers: dict[str, Any] = {}

    async def connect(self, timeout_s: float) -> None:
        pass

    async def write(self, uuid: str, data: bytes, *, response: bool) -> None:
        assert uuid == WRITE_CHARACTERISTIC_UUID
        self.writes.append(bytes(data))

    async def read(self, uuid: str) -> bytes:
        assert uuid == BATTERY_CHARACTERISTIC_UUID
        return bytes([90])

    async def subscribe(self, uuid: str, handler: Any) -> None:
        self.handlers[uuid] = handler

    def on_lost(self, handler: Any) -> None:
        pass

    async def disconnect(self) -> None:
        pass


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=8), st.integers(0, 40)), max_size=30))
def test_driver_never_asks_for_more_than_its_target_whatever_it_hears(
        noise: list[tuple[bytes, int]]) -> None:
    """Random notifications may stop the driver; they never raise a strength it sends."""
    async def main() -> None:
        link = CaptureLink()
        driver = CoyoteDriver(link, CoyoteConfig(ma_per_step=K))
        await driver.connect()
        notify = link.handlers[NOTIFY_CHARACTERISTIC_UUID]
        for data, target_steps in noise:
            sp = ChannelSetpoint(target_steps * K, 50.0, 80.0)
            try:
                await driver.apply([sp, sp], 1.0)
            except Exception:
                break  # a fault stopped it: fine, nothing more may go out but stops
            notify(NOTIFY_CHARACTERISTIC_UUID, data)
            await asyncio.sleep(0.03)
        with contextlib.suppress(DeviceError):
            await driver.close()  # nobody confirms the stop on this link
        targets = [t for _, t in noise] or [0]
        for frame in link.writes:
            if frame[0] == 0xB0 and frame[1] & 0x0F:
                assert frame[2] <= max(targets) and frame[3] <= max(targets)
        assert link.writes[-1][0] == 0xBF and link.writes[-1][1:3] == b"\x00\x00"
    VirtualClock().run(main())
