"""The openEMSstim and the person's cap: the board only attenuates an external stimulator, so
its full scale (wiper 0, which a corrupted line can reach) must be within the cap (HZ-01, HZ-12).

The protocol has no checksum: a flipped digit once ran as ``I264`` on the emulated board —
wiper 0, 50.6 mA from a stimulator declared at ``ma_at_100=40`` — for ~32 ms against a 12 mA
plan before the echo check shut the board down. (The firmware's 16-bit arithmetic actually makes
I264 wiper 255; but every I from 126 to 205, such as a flipped digit of I100, opens the wiper
fully.) The driver therefore drives nothing until it holds the session's verified caps, and
refuses caps below what the external stimulator gives at full scale.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from virtual_run import run

from emsctl.clock import VirtualClock
from emsctl.contract import ZERO, ChannelSetpoint
from emsctl.devices import open_device
from emsctl.drivers.openems.params import DeclaredStimulator
from emsctl.drivers.openems.protocol import WIPER_MAX_STEPS, intensity_pct_to_wiper_steps
from emsctl.errors import InputError, ValidationFailed
from emsctl.limits import DEFAULTS
from emsctl.loader import load_program
from emsctl.runner import Prepared, prepare_run
from emsctl.simulator.drivers.openems import SimulatedOpenEmsDriver

#: The fault matrix's program: two minutes of TENS at 40 Hz / 180 µs, MT − 10 % capped at MT.
PROGRAM = Path(__file__).resolve().parents[1] / "faults" / "fault-matrix.toml"
DECL = "frequency_hz=40&pulse_width_us=180"
ON = ChannelSetpoint(10.0, 40.0, 180.0)
#: A first step within the slew allowance from zero (one update period's worth).
LOW = replace(ON, amplitude_ma=6.0)
#: The synthetic person's cap on both channels of the matrix program: 0.9 × TOL 25 mA.
CAP_MA = 22.5


def sim(ma_at_100: float) -> SimulatedOpenEmsDriver:
    driver = open_device(f"sim+openems?ma_at_100={ma_at_100:g}&{DECL}&boot_s=0"
                         "&ready_timeout_s=0.1")
    assert isinstance(driver, SimulatedOpenEmsDriver)
    return driver


def prepare(ma_at_100: float) -> Prepared:
    return prepare_run(load_program(str(PROGRAM)), f"sim+openems?ma_at_100={ma_at_100:g}&{DECL}",
                       DEFAULTS)


def test_full_scale_is_what_the_board_passes_at_wiper_0() -> None:
    declared = DeclaredStimulator(40.0, 180.0, 40.0)
    # I 126–205 open the wiper fully (docs/protocols/openemsstim.md §4.2); the declared linear
    # calibration then gives 40 × (255 − 54) / (213 − 54) = 50.57 mA, the figure of the incident
    assert [intensity_pct_to_wiper_steps(i) for i in (125, 126, 190, 205)] == [2, 0, 0, 0]
    assert declared.full_scale_ma == pytest.approx(50.566, abs=1e-3)
    board = sim(40.0).emulator
    assert board.level_ma(0, 0) == pytest.approx(declared.full_scale_ma)
    assert max(board.level_ma(0, w) for w in range(WIPER_MAX_STEPS + 1)) == pytest.approx(
        declared.full_scale_ma)


def test_apply_with_output_is_refused_until_the_session_caps_are_set() -> None:
    async def main() -> None:
        async with sim(16.0) as driver:
            sent: list[bytes] = []
            original = driver.front.pipe.tamper  # type: ignore[union-attr]

            def spy(direction: str, data: bytes) -> list[tuple[float, bytes]]:
                if direction == "host→device":
                    sent.append(data)
                return original(direction, data) if original else [(0.0, data)]

            driver.front.pipe.tamper = spy  # type: ignore[union-attr]
            with pytest.raises(ValidationFailed, match="cap"):
                await driver.apply([LOW, ZERO], 1.0)
            await driver.apply([ZERO, ZERO], 1.0)  # zero needs no cap
            driver.set_channel_caps_ma({1: CAP_MA})
            await asyncio.sleep(0.1)  # one update period: a first step is within the slew
            with pytest.raises(ValidationFailed, match="channel 2"):
                await driver.apply([ZERO, LOW], 1.0)  # a channel without a cap gets nothing
            assert sent == []
            await asyncio.sleep(0.1)
            await driver.apply([LOW, ZERO], 1.0)
            assert len(sent) == 1

    VirtualClock().run(main())


def test_caps_below_the_full_scale_are_refused_with_one_sentence_to_turn_it_down() -> None:
    driver = sim(40.0)
    with pytest.raises(ValidationFailed) as info:
        driver.set_channel_caps_ma({1: CAP_MA, 2: 30.0})
    text = str(info.value)
    assert "turn the external stimulator down" in text and "re-measure ma_at_100" in text
    assert "50.6 mA" in text and "22.5 mA cap on channel 1" in text
    # the largest declaration that fits: 22.5 × 159 / 201 = 17.79 → 17.7 mA (rounded down)
    assert "at most 17.7 mA" in text
    assert "\n" not in text and text.count(". ") == 0 and text.endswith(".")


@pytest.mark.parametrize("caps", [{3: 30.0}, {1: math.nan}, {1: 0.0}, {1: -1.0}])
def test_caps_for_an_unknown_channel_or_not_a_positive_figure_are_input_errors(
        caps: dict[int, float]) -> None:
    with pytest.raises(InputError):
        sim(16.0).set_channel_caps_ma(caps)


def test_a_refused_cap_leaves_the_driver_without_caps() -> None:
    async def main() -> None:
        async with sim(16.0) as driver:
            driver.set_channel_caps_ma({1: CAP_MA, 2: CAP_MA})
            with pytest.raises(ValidationFailed):
                driver.set_channel_caps_ma({1: 12.0, 2: CAP_MA})  # 20.2 mA at full scale
            with pytest.raises(ValidationFailed):
                await driver.apply([LOW, LOW], 1.0)

    VirtualClock().run(main())


def test_prepare_run_refuses_a_stimulator_whose_full_scale_is_above_the_cap() -> None:
    with pytest.raises(ValidationFailed, match="turn the external stimulator down"):
        prepare(40.0)
    prepared = prepare(16.0)  # 20.2 mA at full scale, within the 22.5 mA cap
    assert [c.cap_ma for c in prepared.plan.channels] == [CAP_MA, CAP_MA]


def test_the_corrupted_line_of_the_incident_now_stays_within_the_cap(tmp_path: Path) -> None:
    """A corrupted intensity that opens the wiper fully (``C0I190T1000G``: the firmware makes
    the incident's I264 wiper 255, but I190 wiper 0) reaches the board mid-session."""
    with pytest.raises(ValidationFailed):
        prepare(40.0)  # the incident's declaration: 50.6 mA at full scale is refused
    prepared = prepare(16.0)
    driver = prepared.driver
    assert isinstance(driver, SimulatedOpenEmsDriver)
    pipe = driver.front.pipe  # type: ignore[union-attr]
    original = pipe.tamper
    corrupted = b"WV,0018," + b"C0I190T1000G".hex().upper().encode() + b".\n"
    done: list[float] = []

    def corrupt_once(direction: str, data: bytes) -> list[tuple[float, bytes]]:
        loop_time = asyncio.get_running_loop().time()
        if (direction == "host→device" and not done and loop_time > 40.0
                and data.startswith(b"WV,0018,4330")):  # a C0 action, 30 s into the session
            done.append(loop_time)
            data = corrupted
        return original(direction, data) if original else [(0.0, data)]

    pipe.tamper = corrupt_once
    outcome, _ = run(prepared, tmp_path)
    assert done, "the corrupted line was never sent"
    assert outcome.result.end_reason == "fault"
    assert "which was not sent" in outcome.result.message
    on = driver.device.intervals(1)
    on = on[on["amplitude_ma"] > 0]
    peak = float(on["amplitude_ma"].max())
    assert peak == pytest.approx(driver.declared.full_scale_ma)  # the wiper did open fully
    assert peak <= CAP_MA


def test_calibrating_on_an_openems_above_the_calibration_ceiling_is_refused(
        tmp_path: Path) -> None:
    """Calibration hands its cap (the 40 mA ceiling while TOL is unknown) to the driver too."""
    emsctl = Path(sys.executable).with_name("emsctl")
    env = {"EMSCTL_DATA_DIR": str(tmp_path), "NO_COLOR": "1", "PATH": "/usr/bin:/bin"}

    def calibrate(ma_at_100: float) -> subprocess.CompletedProcess[str]:
        url = f"sim+openems?ma_at_100={ma_at_100:g}&frequency_hz=8&pulse_width_us=250"
        return subprocess.run(
            [str(emsctl), "calibrate", "--device", url, "--channel", "1", "--site", "calf-left",
             "--virtual-user", "5,10,20", "--speed", "max", "--format", "json"],
            capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL,
            check=False)

    refused = calibrate(40.0)  # 50.6 mA at full scale
    assert refused.returncode == 1 and refused.stdout == ""
    assert "Traceback" not in refused.stderr
    (line,) = [t for t in refused.stderr.splitlines() if "openEMSstim" in t]
    assert "above this session's 40 mA cap on channel 1" in line
    assert "turn the external stimulator down" in line and "at most 31.6 mA" in line
    assert not (tmp_path / "profile.toml").exists()
    accepted = calibrate(30.0)  # 37.9 mA at full scale
    assert accepted.returncode == 0, accepted.stderr
    assert json.loads(accepted.stdout)["tol_ma"] == pytest.approx(20.0, abs=0.5)
