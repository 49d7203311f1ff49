"""The emulated openEMSstim board against the device side of the spec
(docs/protocols/openemsstim.md §3, §4, §5, §10)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from emsctl.clock import VirtualClock
from emsctl.drivers.openems.protocol import (
    ActionCommand,
    Firmware,
    encode_ble,
    encode_serial,
)
from emsctl.simulator.devices.openems import (
    BLOCK_S,
    ExternalStimulator,
    OpenEmsBoard,
    OpenEmsConfig,
)
from emsctl.simulator.devices.openems_front import Rn4020Front, UsbSerialFront
from emsctl.simulator.transports import MemoryGattLink

EXT = ExternalStimulator(frequency_hz=80.0, pulse_width_us=180.0, ma_at_100=40.0)
LOOP_S = 0.001


def board(**overrides: object) -> OpenEmsBoard:
    return OpenEmsBoard(OpenEmsConfig(EXT, boot_s=0.0, **overrides))  # type: ignore[arg-type]


def run(test: Callable[[], Awaitable[None]]) -> None:
    VirtualClock().run(test())  # type: ignore[arg-type]


def now() -> float:
    return asyncio.get_running_loop().time()


def amp(b: OpenEmsBoard, channel: int) -> float:
    return b.device.output_now()[channel].amplitude_ma


def test_action_closes_relays_at_wiper_42_and_switches_off_after_its_on_time() -> None:
    async def main() -> None:
        b = board()
        t0 = now()
        b.serial_receive(b"WV,0018,433049313030543130303047.\n")  # C0I100T1000G (O)
        assert b.active(0) and b.wiper_steps(0) == 42
        assert amp(b, 0) == pytest.approx(40.0)
        await asyncio.sleep(0.999)
        assert amp(b, 0) == pytest.approx(40.0)
        await asyncio.sleep(0.01)
        assert not b.active(0) and b.wiper_steps(0) == 255 and amp(b, 0) == 0.0
        on = b.device.intervals(1)
        assert on[-1]["amplitude_ma"] == pytest.approx(40.0)
        assert on[-1]["t1_s"] - t0 == pytest.approx(1.0, abs=LOOP_S)

    run(main)


def test_the_same_action_within_its_on_time_renews_it_without_a_gap() -> None:
    async def main() -> None:
        b = board()
        line = encode_serial(ActionCommand(0, 50, 1000))
        t0 = now()
        for _ in range(5):
            b.serial_receive(line)
            await asyncio.sleep(0.75)  # [AND] resends every 0.75·T
        await asyncio.sleep(1.1)
        on = b.device.intervals(1)
        on = on[on["amplitude_ma"] > 0]
        assert len(on) == 1  # one unbroken interval
        assert on[0]["t1_s"] - t0 == pytest.approx(4 * 0.75 + 1.0, abs=LOOP_S)

    run(main)


def test_a_shorter_on_time_moves_the_deadline_earlier() -> None:
    async def main() -> None:
        b = board()
        b.serial_receive(encode_serial(ActionCommand(0, 50, 1000)))
        await asyncio.sleep(0.2)
        b.serial_receive(b"C0T50G\n".replace(b"C0T50G", b"WV,0018," + b"C0T50G".hex().upper()
                                             .encode() + b"."))
        await asyncio.sleep(0.06)
        assert not b.active(0)

    run(main)


def test_i0_t0_is_the_stop_idiom_wiper_201_then_off_on_the_next_pass() -> None:
    async def main() -> None:
        b = board()
        b.serial_receive(b"WV,0018,43304930543047.\n")  # C0I0T0G (C)
        assert b.active(0) and b.wiper_steps(0) == 201
        assert amp(b, 0) == 0.0  # I0's level carries no current in the declared calibration
        await asyncio.sleep(2 * LOOP_S)
        assert not b.active(0) and b.wiper_steps(0) == 255

    run(main)


@pytest.mark.parametrize("line", [b"WV,0018,433947.\n", b"WV,0018,47.\n"])  # C9G, bare G
def test_an_out_of_range_channel_or_a_bare_g_shuts_every_channel_down(line: bytes) -> None:
    async def main() -> None:
        b = board()
        b.serial_receive(encode_serial(ActionCommand(0, 60, 1000)))
        b.serial_receive(encode_serial(ActionCommand(1, 60, 1000)))
        await asyncio.sleep(0.2)
        t = now()
        b.serial_receive(line)
        assert amp(b, 0) == 0.0 and amp(b, 1) > 0  # deactivation blocks 50 ms per channel
        await asyncio.sleep(BLOCK_S)
        assert amp(b, 1) == 0.0 and not b.active(0) and not b.active(1)
        assert b.device.intervals(2)[-1]["t1_s"] == pytest.approx(t + BLOCK_S)
        assert all(a.t_s < t for a in b.activations)  # nothing was activated

    run(main)


def test_on_time_above_5000_ms_is_clamped_to_5000() -> None:
    async def main() -> None:
        b = board()
        t0 = now()
        b.serial_receive(b"WV,0018," + b"C0I50T7000G".hex().upper().encode() + b".\n")
        await asyncio.sleep(6.0)
        on = b.device.intervals(1)
        on = on[on["amplitude_ma"] > 0]
        assert on[0]["t1_s"] - t0 == pytest.approx(5.0, abs=LOOP_S)

    run(main)


def test_a_command_without_g_is_ignored_and_reported_unknown() -> None:
    async def main() -> None:
        b = board()
        b.serial_receive(b"WV,0018," + b"C0I100T1000".hex().upper().encode() + b".\n")
        assert not b.active(0)
        assert b.debug_lines[-1] == b"Unknown command: C0I100T1000"

    run(main)


def test_without_the_dot_the_last_digit_is_lost_and_the_action_ignored() -> None:
    async def main() -> None:
        b = board()
        b.serial_receive(b"WV,0018,433049313030543130303047\n")
        assert not b.active(0) and amp(b, 0) == 0.0

    run(main)


def test_the_first_action_after_boot_without_t_lasts_1_ms() -> None:
    async def main() -> None:
        b = board()
        b.serial_receive(b"WV,0018," + b"C0I50G".hex().upper().encode() + b".\n")
        assert b.active(0)
        await asyncio.sleep(0.002)
        assert not b.active(0)

    run(main)


def test_a_line_without_newline_is_processed_after_the_50_ms_read_timeout() -> None:
    async def main() -> None:
        b = board()
        b.serial_receive(encode_serial(ActionCommand(0, 50, 1000)).rstrip(b"\n"))
        await asyncio.sleep(0.049)
        assert not b.active(0)
        await asyncio.sleep(0.002)
        assert b.active(0)

    run(main)


@pytest.mark.parametrize("line", [
    b"WV,0018,433049353054313030303047.\r\n",  # CRLF
    b"wv,0018,433049353054313030303047.\n".replace(b"wv", b"WV"),
    b"WV,ABCD,433049353054313030303047.\n",  # any handle
    b"  WV,001C,433049353054313030303047.  \n",  # surrounding whitespace
])
def test_field_variants_of_the_wv_form_still_work(line: bytes) -> None:
    async def main() -> None:
        b = board()
        b.serial_receive(line)
        assert b.active(0) and b.wiper_steps(0) == 122  # I50

    run(main)


def test_lowercase_hex_of_an_action_decodes_like_uppercase() -> None:
    async def main() -> None:
        b = board()
        b.serial_receive(b"WV,0018," + b"C0I50T1000G".hex().encode() + b".\n")
        assert b.active(0) and b.wiper_steps(0) == 122

    run(main)


def test_intensity_over_100_follows_the_formula_and_is_logged_unsafe() -> None:
    async def main() -> None:
        b = board()
        b.serial_receive(b"WV,0018," + b"C1I150T500G".hex().upper().encode() + b".\n")
        assert b.wiper_steps(1) == 0
        assert amp(b, 1) > EXT.ma_at_100  # the firmware does not clamp: more than I100
        assert [e.kind for e in b.unsafe_events] == ["intensity_over_100"]

    run(main)


def test_plain_text_action_goes_to_the_test_handler_on_current_firmware() -> None:
    async def main() -> None:
        b = board()
        b.serial_receive(b"C0I100T1000G\n")
        assert not b.active(0)
        assert b.debug_lines[-1] == b"ERROR: SINGLE-CHAR Command Unknown"

    run(main)


def test_plain_text_action_is_executed_on_legacy_firmware() -> None:
    async def main() -> None:
        b = board(firmware=Firmware.LEGACY)
        b.serial_receive(b"C0I100T1000G\n")
        assert b.active(0) and b.wiper_steps(0) == 42

    run(main)


def test_test_handler_toggle_stays_on_without_on_time_and_is_logged_unsafe() -> None:
    async def main() -> None:
        b = board()
        b.serial_receive(b"q\n")  # one step more signal on channel 1 (relays still open)
        b.serial_receive(b"1\n")
        assert b.active(0) and b.wiper_steps(0) == 254
        await asyncio.sleep(30.0)
        assert b.active(0)  # no on-time: only a toggle or a shutdown ends it
        assert [e.kind for e in b.unsafe_events] == ["test_wiper_down", "test_toggle_relays"]
        b.serial_receive(b"Connection End\n")
        assert not b.active(0)

    run(main)


def test_options_are_corrupted_in_wv_form_and_work_as_legacy_plain_text() -> None:
    async def main() -> None:
        b = board()
        b.serial_receive(b"WV,0018,4F4D415B302C38305D.\n")  # OMA[0,80] in WV form (C)
        assert b.windows[0].max_steps == 215
        assert b.debug_lines[-1].startswith(b"Unknown command: ")
        legacy = board(firmware=Firmware.LEGACY)
        legacy.serial_receive(b"OMA[0,80]\n")
        assert legacy.windows[0].max_steps == 204

    run(main)


def test_expiry_waits_for_a_blocking_deactivation() -> None:
    async def main() -> None:
        b = board()
        b.serial_receive(encode_serial(ActionCommand(1, 50, 100)))
        await asyncio.sleep(0.09)
        b.serial_receive(encode_serial(ActionCommand(0, 0, 0)))  # ch0 stop idiom: blocks 50 ms
        await asyncio.sleep(0.02)  # ch1's deadline (0.1 s) passes while the loop is blocked
        assert b.active(1)
        await asyncio.sleep(0.03 + LOOP_S)  # the next pass comes when the 50 ms wait ends
        assert not b.active(1)

    run(main)


def test_bytes_beyond_the_64_byte_buffer_are_lost_while_the_board_blocks() -> None:
    async def main() -> None:
        b = board()
        b.serial_receive(b"WV,0018,433947.\n")  # shutdown: blocks 100 ms
        line = encode_serial(ActionCommand(0, 50, 1000))
        b.serial_receive(line + line + line)  # 96 bytes while blocked
        assert b.dropped_rx_bytes == 3 * len(line) - 64
        await asyncio.sleep(0.2)
        assert b.active(0)  # the first complete line survived

    run(main)


def test_debug_output_echoes_the_decoded_command_and_can_be_switched_off() -> None:
    async def main() -> None:
        b = board()
        written: list[bytes] = []
        b.usb_writer = written.append
        b.serial_receive(encode_serial(ActionCommand(1, 75, 500)))
        assert written == [b"EMS_CMD: Converted HEX command: C1I75T500G\r\n"]
        quiet = board(debug=False)
        quiet.usb_writer = written.append
        quiet.serial_receive(encode_serial(ActionCommand(1, 75, 500)))
        assert len(written) == 1

    run(main)


def test_opening_the_port_resets_the_board_which_boots_and_prints_the_banner() -> None:
    async def main() -> None:
        b = OpenEmsBoard(OpenEmsConfig(EXT))  # default boot 11.4 s
        front = UsbSerialFront(b)
        seen = bytearray()
        front.link.on_receive(seen.extend)
        await front.link.open()
        assert b.booting
        await front.link.write(encode_serial(ActionCommand(0, 50, 1000)))
        await asyncio.sleep(11.3)
        assert b"SETUP DONE" not in seen and not b.active(0)
        await asyncio.sleep(0.2)
        assert b"SETUP DONE (LED 13 WILL BE ON)\r\n" in seen
        assert b.active(0)  # the line waited in the receive buffer through setup

    run(main)


def test_ble_writes_become_wv_lines_and_a_disconnect_shuts_everything_down() -> None:
    async def main() -> None:
        b = board()
        front = Rn4020Front(b)
        link = MemoryGattLink(front.server)
        await link.connect(1.0)
        await link.write("454d532d-5374-6575-6572-756e672d4348",
                         encode_ble(ActionCommand(0, 100, 1000)), response=True)
        assert b.active(0) and b.wiper_steps(0) == 42
        assert b.debug_lines[-1] == b"EMS_CMD: Converted HEX command: C0I100T1000G"
        await link.write("454d532d-5374-6575-6572-756e672d4348", b"x" * 33, response=True)
        assert b.active(0)  # an over-long value never reaches the board
        await link.disconnect()
        assert not b.active(0) and amp(b, 0) == 0.0

    run(main)


def test_ble_link_loss_shuts_down_at_once() -> None:
    async def main() -> None:
        b = board()
        front = Rn4020Front(b)
        link = MemoryGattLink(front.server)
        await link.connect(1.0)
        await link.write("454d532d-5374-6575-6572-756e672d4348",
                         encode_ble(ActionCommand(1, 80, 1000)), response=True)
        front.disconnect()
        assert amp(b, 1) == 0.0 or (await asyncio.sleep(BLOCK_S + 0.001)) is None
        assert amp(b, 1) == 0.0 and not b.active(1)

    run(main)
