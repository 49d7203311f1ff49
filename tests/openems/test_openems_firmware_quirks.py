"""The emulated board is no kinder than the firmware on malformed input (HZ-12).

A corrupted line reaches the firmware's own parser, so fault tests are only as honest as the
emulation of that parser. The firmware finds each field by the first occurrence of its letter
and reads the digits after it with ``String::toInt()`` into a 16-bit ``int``; a letter without
digits gives −1, which it then *uses*; ``setIntensity`` multiplies in 16 bits; ``endTime`` is
``millis() + onTime`` in unsigned 32-bit arithmetic; options are read with ``atol``; and its
``String`` searches stop at a NUL byte. Each quirk is pinned here: in the parser, in the
intensity arithmetic, and on the emulated board.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from virtual_run import run as virtual_run

from emsctl.clock import VirtualClock
from emsctl.contract import Telemetry
from emsctl.devices import OpenOptions
from emsctl.drivers.openems.protocol import (
    CalibrationOption,
    Firmware,
    InertOption,
    ParsedAction,
    UnknownCommand,
    WindowBound,
    firmware_option_steps,
    firmware_wiper_steps,
    parse_command,
    to_int16,
)
from emsctl.limits import DEFAULTS
from emsctl.loader import load_program
from emsctl.runner import prepare_run
from emsctl.simulator.devices.openems import ExternalStimulator, OpenEmsBoard, OpenEmsConfig
from emsctl.simulator.drivers.openems import SimulatedOpenEmsDriver
from emsctl.simulator.faults import Fault, FaultPlan

EXT = ExternalStimulator(frequency_hz=80.0, pulse_width_us=180.0, ma_at_100=16.0)
LOOP_S = 0.001
DAY_S = 86_400.0
#: The fault matrix's openEMSstim: its program, URL and bound on output without the host.
MATRIX_PROGRAM = Path(__file__).resolve().parents[1] / "faults" / "fault-matrix.toml"
MATRIX_URL = "sim+openems?ma_at_100=16&frequency_hz=40&pulse_width_us=180"
MATRIX_HOLDS_S = 1.05


def wv(command: bytes) -> bytes:
    """The serial line the host would send for ``command`` (any bytes, even malformed)."""
    return b"WV,0018," + command.hex().upper().encode() + b".\n"


def run(test: Callable[[], Awaitable[None]]) -> None:
    VirtualClock().run(test())  # type: ignore[arg-type]


def now() -> float:
    return asyncio.get_running_loop().time()


async def powered_board(**overrides: object) -> OpenEmsBoard:
    """A board reset 1 ms ago (millis() = 1) whose setup took no time."""
    board = OpenEmsBoard(OpenEmsConfig(EXT, boot_s=0.0, **overrides))  # type: ignore[arg-type]
    board.reset()
    await asyncio.sleep(LOOP_S)
    return board


# ---------------------------------------------------------------------- the parser


@pytest.mark.parametrize(("text", "parsed"), [
    (b"C0IT1000G", ParsedAction(0, -1, 1000)),   # I without digits: −1, not absent
    (b"C0I50TG", ParsedAction(0, 50, -1)),       # T without digits
    (b"CI5G", ParsedAction(-1, 5, None)),        # C without digits: channel −1
    (b"C0I50G", ParsedAction(0, 50, None)),      # T absent: the on-time stays as it was
])
def test_a_letter_without_digits_is_minus_one_and_an_absent_letter_is_none(
        text: bytes, parsed: ParsedAction) -> None:
    assert parse_command(text) == parsed


@pytest.mark.parametrize(("text", "parsed"), [
    (b"C0I50T40000G", ParsedAction(0, 50, -25536)),   # wraps negative
    (b"C0I50T70000G", ParsedAction(0, 50, 4464)),     # 70000 − 65536
    (b"C65536I10T5G", ParsedAction(0, 10, 5)),        # channel 0
    (b"C65537I10T5G", ParsedAction(1, 10, 5)),
    (b"C0I65636T5G", ParsedAction(0, 100, 5)),
    (b"C0I32768T5G", ParsedAction(0, -32768, 5)),
    (b"C0I" + b"0" * 5000 + b"7T1G", ParsedAction(0, 7, 1)),  # leading zeros count for nothing
    (b"C0I" + b"9" * 5000 + b"T1G", ParsedAction(0, -1, 1)),  # 10^5000 − 1 ≡ −1 (mod 2^16)
])
def test_values_are_16_bit_ints_that_wrap(text: bytes, parsed: ParsedAction) -> None:
    assert parse_command(text) == parsed


def test_a_negative_on_time_slips_past_the_5000_ms_cap() -> None:
    parsed = parse_command(b"C0I50T40000G")
    assert isinstance(parsed, ParsedAction)
    assert parsed.effective_on_time_ms == -25536
    assert parsed.negative_values == ("T",)


def test_nothing_after_a_nul_byte_is_seen() -> None:
    # a flipped hex digit can decode "30" as "00": the firmware's strchr stops there
    assert parse_command(b"C0\x00I40T1000G") == UnknownCommand(b"C0\x00I40T1000G")
    assert parse_command(b"C0I40T1000G\x00G") == ParsedAction(0, 40, 1000)
    assert parse_command(b"C0I4\x000T1000G") == UnknownCommand(b"C0I4\x000T1000G")


@pytest.mark.parametrize(("text", "option", "steps"), [
    (b"OMA[0, 80]", CalibrationOption(WindowBound.MAX, 0, 80), 204),   # atol skips the space
    (b"OMI[ 1 ,+20]", CalibrationOption(WindowBound.MIN, 1, 20), 51),
    (b"OMA[,80]", CalibrationOption(WindowBound.MAX, 0, 80), 204),     # atol("") is 0
    (b"OMA[0,80] ", CalibrationOption(WindowBound.MAX, 0, 80), 204),
    (b"OMA[0,80]]", CalibrationOption(WindowBound.MAX, 0, 80), 204),   # the last ']' counts
    (b"OMA[0,128]", CalibrationOption(WindowBound.MAX, 0, 128), 326),  # stored unchecked
    (b"OMA[0,130]", CalibrationOption(WindowBound.MAX, 0, 130), -323),  # 255 · 130 wraps
    (b"OMI[0,-5]", CalibrationOption(WindowBound.MIN, 0, -5), -12),
    (b"OMA[65536,80]", CalibrationOption(WindowBound.MAX, 0, 80), 204),
])
def test_options_are_read_with_atol_into_16_bit_ints(text: bytes, option: CalibrationOption,
                                                     steps: int) -> None:
    parsed = parse_command(text)
    assert parsed == option
    assert isinstance(parsed, CalibrationOption) and parsed.window_steps == steps


@pytest.mark.parametrize("text", [b"OMA[0,80", b"OMX[0,80]", b"OMA[2,80]", b"OMA[-1,80]",
                                  b"OCT[0,80]", b"OMA]0,80[", b"O"])
def test_an_option_the_handler_cannot_use_is_ignored_without_a_word(text: bytes) -> None:
    assert parse_command(text) == InertOption(text)


# ---------------------------------------------------------------------- the arithmetic


@pytest.mark.parametrize(("intensity", "wiper"), [
    (-1, 202),                  # a bare I: setIntensity(−2)
    (0, 201), (100, 42), (125, 2), (126, 0), (150, 0), (205, 0),
    (206, 255), (264, 255), (375, 255),  # 160 · (I − 1) wraps negative: no signal
    (376, 254), (409, 202), (410, 200), (500, 57),  # and climbs back
    (-25536, 255), (-32768, 201), (32767, 202),
])
def test_the_firmware_wiper_wraps_in_16_bits(intensity: int, wiper: int) -> None:
    assert firmware_wiper_steps(intensity, 55, 215) == wiper


def test_int16_and_option_arithmetic() -> None:
    assert [to_int16(v) for v in (32767, 32768, 65535, 65536, 40000, -32769)] == [
        32767, -32768, -1, 0, -25536, 32767]
    assert [firmware_option_steps(p) for p in (0, 10, 80, 100, 128, 129)] == [
        0, 26, 204, 255, 326, -325]


# ---------------------------------------------------------------------- the board


def test_a_bare_intensity_sets_wiper_202_and_is_logged_unsafe() -> None:
    async def main() -> None:
        b = await powered_board()
        b.serial_receive(wv(b"C0IT1000G"))
        assert b.active(0) and b.wiper_steps(0) == 202
        assert [e.kind for e in b.unsafe_events] == ["i_negative"]

    run(main)


def test_a_bare_on_time_switches_the_channel_off_at_the_next_pass() -> None:
    async def main() -> None:
        b = await powered_board()
        await asyncio.sleep(1.0)
        b.serial_receive(wv(b"C0I50T1000G"))
        b.serial_receive(wv(b"C0I50TG"))  # on-time −1: endTime is already past
        assert b.active(0)
        await asyncio.sleep(2 * LOOP_S)
        assert not b.active(0)
        assert [e.kind for e in b.unsafe_events] == ["t_negative"]

    run(main)


def test_t40000_slips_past_the_5000_ms_cap_in_the_first_32_s_after_a_reset() -> None:
    async def main() -> None:
        b = await powered_board()
        await asyncio.sleep(10.0)  # millis() ≈ 10 000: 10 000 − 25 536 wraps to ≈ 49.7 days
        t0 = now()
        b.serial_receive(wv(b"C0I50T40000G"))
        (activation,) = b.activations
        assert activation.deadline_s is not None
        assert activation.deadline_s - t0 == pytest.approx((2**32 - 25536) / 1000)
        assert activation.deadline_s - t0 > 49 * DAY_S
        await asyncio.sleep(60.0)
        assert b.active(0)  # a minute on, no on-time in sight
        b.serial_receive(wv(b"C9G"))  # only a shutdown (or a new command) ends it
        assert not b.active(0)

    run(main)


def test_t40000_ends_at_once_once_millis_is_past_it() -> None:
    async def main() -> None:
        b = await powered_board()
        await asyncio.sleep(40.0)  # millis() 40 000 > 25 536: endTime is in the past
        b.serial_receive(wv(b"C0I50T40000G"))
        await asyncio.sleep(2 * LOOP_S)
        assert not b.active(0)

    run(main)


def test_t70000_is_an_on_time_of_4464_ms() -> None:
    async def main() -> None:
        b = await powered_board()
        t0 = now()
        b.serial_receive(wv(b"C1I50T70000G"))
        await asyncio.sleep(4.46)
        assert b.active(1)
        await asyncio.sleep(0.01)
        assert not b.active(1)
        on = b.device.intervals(2)
        assert on[on["amplitude_ma"] > 0][-1]["t1_s"] - t0 == pytest.approx(4.464, abs=LOOP_S)

    run(main)


def test_c65536_selects_channel_0() -> None:
    async def main() -> None:
        b = await powered_board()
        b.serial_receive(wv(b"C65536I50T1000G"))
        assert b.active(0) and not b.active(1) and b.wiper_steps(0) == 122

    run(main)


@pytest.mark.parametrize(("intensity", "wiper"), [(150, 0), (205, 0), (206, 255), (410, 200)])
def test_intensities_above_205_wrap_on_the_board(intensity: int, wiper: int) -> None:
    async def main() -> None:
        b = await powered_board()
        b.serial_receive(wv(b"C0I%dT1000G" % intensity))
        assert b.active(0) and b.wiper_steps(0) == wiper
        assert b.device.output_now()[0].amplitude_ma == pytest.approx(b.level_ma(0, wiper))

    run(main)


def test_the_legacy_option_with_a_space_is_accepted() -> None:
    async def main() -> None:
        b = await powered_board(firmware=Firmware.LEGACY)
        b.serial_receive(b"OMA[0, 80]\n")
        assert b.windows[0].max_steps == 204
        b.serial_receive(b"C0I100T1000G\n")
        assert b.wiper_steps(0) == firmware_wiper_steps(100, 55, 204)
        b.serial_receive(b"OMA[0,130]\n")  # stored unchecked: −323
        assert b.windows[0].max_steps == -323
        assert [e.kind for e in b.unsafe_events] == ["option_out_of_range"]
        b.serial_receive(b"OMX[0,80]\n")  # ignored, and nothing printed
        assert not b.debug_lines[-1].startswith(b"Unknown command")

    run(main)


def test_a_line_with_a_nul_byte_is_an_unknown_command_on_the_board() -> None:
    async def main() -> None:
        b = await powered_board()
        b.serial_receive(wv(b"C0I50T1000G"))
        b.serial_receive(wv(b"C0\x00I90T1000G"))  # the 0 of C0 flipped into the hex "00"
        assert b.active(0) and b.wiper_steps(0) == 122  # the previous action runs on
        assert b.debug_lines[-1].startswith(b"Unknown command: ")

    run(main)


# ---------------------------------------------------------------------- the fault matrix's faults


def test_corrupted_bytes_reach_the_firmware_quirks_and_stay_within_the_cap(tmp_path: Path
                                                                            ) -> None:
    """The fault matrix's byte corruption (one flipped digit in 20 % of the lines, from 30 s) on
    the matrix's openEMSstim, over 60 seeds instead of one: the flips reach the quirks (a
    letter flipped into a digit merges two fields; a digit flipped into a letter leaves a
    field without digits), every session ends as a fault when the echo differs, the output is
    zero soon after, and nothing ever exceeds the cap."""
    kinds: Counter[str] = Counter()
    for seed in range(60):
        plan = FaultPlan([Fault("corrupt_bytes", 30.0, duration_s=60.0, value=0.2)])
        prepared = prepare_run(load_program(str(MATRIX_PROGRAM)), MATRIX_URL, DEFAULTS,
                               options=OpenOptions(fault_plan=plan, seed=seed))
        driver = prepared.driver
        assert isinstance(driver, SimulatedOpenEmsDriver)
        errors: list[float] = []

        def on_telemetry(report: Telemetry, errors: list[float] = errors) -> None:
            if report.kind == "device_error":
                errors.append(report.t_s)

        driver.add_listener(on_telemetry)
        outcome, t0 = virtual_run(prepared, tmp_path)
        kinds.update(e.kind for e in driver.emulator.unsafe_events)
        assert outcome.result.end_reason == "fault", (seed, outcome.result.message)
        assert "which was not sent" in outcome.result.message
        assert errors and errors[0] <= t0 + 90.0  # found while the fault lasted
        for cplan in prepared.plan.channels:
            iv = driver.device.intervals(cplan.channel)
            on = iv[iv["amplitude_ma"] > 0]
            assert float(on["amplitude_ma"].max()) <= cplan.cap_ma + 1e-9, seed
            assert float(on["t1_s"].max()) <= errors[0] + MATRIX_HOLDS_S, seed
        assert all(o.amplitude_ma == 0 for o in driver.device.outputs_at(math.inf))
    # the flips reached what the firmware does with malformed fields, not a kinder parser
    assert kinds["t_negative"] > 0 and kinds["i_negative"] > 0, kinds
