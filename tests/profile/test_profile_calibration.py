"""The calibration procedure on the simulator with a scripted person (in-process, virtual time)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from emsctl.calibration import Calibration, CalibrationResult, CalibrationSettings
from emsctl.clock import VirtualClock
from emsctl.contract import ZERO, ChannelSetpoint
from emsctl.devices import open_device
from emsctl.errors import InputError, SafetyViolation
from emsctl.limits import DEFAULTS, tighten
from emsctl.virtual_user import VirtualUser, parse_virtual_user

RELAXATION = CalibrationSettings(channel=1, frequency_hz=6.0, pulse_width_us=250.0,
                                 electrode_area_cm2=20.0)


def calibrate(settings: CalibrationSettings, user: VirtualUser | None,
              presses: list[tuple[float, str]] = ()) -> tuple[CalibrationResult, Any]:
    """Run one calibration on a fresh simulator; returns the result and the driver."""
    async def main() -> tuple[CalibrationResult, Any]:
        driver = open_device("sim")
        await driver.connect()
        cal = Calibration(driver, settings, DEFAULTS)
        loop = asyncio.get_running_loop()
        for delay_s, key in presses:
            loop.call_later(delay_s, cal.press, key)
        watcher = asyncio.ensure_future(user.watch(cal)) if user else None
        result = await cal.run()
        if watcher is not None:
            await watcher
        await driver.close()
        return result, driver
    return VirtualClock(None).run(main())


def output_at(driver: Any, channel: int, t_s: float) -> float:
    rows = driver.device.intervals(channel)
    inside = rows[(rows["t0_s"] <= t_s) & (rows["t1_s"] > t_s)]
    return float(inside["delivered_ma"][0]) if inside.size else 0.0


def test_the_virtual_user_finds_its_thresholds() -> None:
    result, _ = calibrate(RELAXATION, VirtualUser(5.0, 10.0, 20.0))
    assert result.outcome == "complete" and result.complete and result.exit_code == 0
    assert (result.st_ma, result.mt_ma, result.tol_ma) == (5.0, 10.0, 20.0)


def test_too_much_drops_the_output_to_zero_at_once() -> None:
    result, driver = calibrate(RELAXATION, VirtualUser(5.0, 10.0, 20.0))
    pressed_s = result.loop_start_s + (result.too_much_at_s or 0.0)
    assert output_at(driver, 1, pressed_s - 0.01) == pytest.approx(20.0)
    assert output_at(driver, 1, pressed_s + 1e-6) == 0.0  # zero in the same instant
    rows = driver.device.intervals(1)
    assert not rows[(rows["t0_s"] >= pressed_s) & (rows["delivered_ma"] > 0)].size


def test_it_rises_half_a_milliampere_every_two_seconds_and_never_above_the_ceiling() -> None:
    result, driver = calibrate(RELAXATION, VirtualUser(5.0, 10.0, 60.0))
    assert result.outcome == "ceiling"
    rows = driver.device.intervals(1)
    assert rows["amplitude_ma"].max() <= RELAXATION.ceiling_ma + 1e-9
    start = result.loop_start_s
    assert output_at(driver, 1, start + 1.9) == pytest.approx(0.5)
    assert output_at(driver, 1, start + 3.9) == pytest.approx(1.0)
    assert output_at(driver, 1, start + 21.9) == pytest.approx(5.5)


def test_the_ceiling_is_a_hard_stop_and_becomes_tol() -> None:
    result, driver = calibrate(RELAXATION, VirtualUser(5.0, 10.0, 60.0))
    assert result.outcome == "ceiling" and result.complete
    assert result.tol_ma == 40.0 == result.peak_ma
    assert driver.device.intervals(1)["amplitude_ma"].max() == 40.0
    end_s = result.loop_start_s + RELAXATION.ceiling_hold_end_s()
    assert output_at(driver, 1, end_s + 0.01) == 0.0
    assert RELAXATION.ceiling_hold_end_s() <= RELAXATION.max_duration_s


def test_a_lower_ceiling_from_the_program_is_never_passed() -> None:
    settings = CalibrationSettings(1, 6.0, 250.0, 20.0, ceiling_ma=30.0)
    result, driver = calibrate(settings, VirtualUser(5.0, 10.0, 35.0))
    assert result.tol_ma == 30.0 and driver.device.intervals(1)["amplitude_ma"].max() == 30.0


def test_abort_zeroes_and_saves_nothing() -> None:
    result, driver = calibrate(RELAXATION, None, [(7.3, "feel"), (12.0, "abort")])
    assert result.outcome == "aborted" and not result.complete and result.exit_code == 130
    assert result.st_ma == pytest.approx(2.0)
    assert output_at(driver, 1, result.loop_start_s + 12.0 + 1e-6) == 0.0


def test_too_much_before_a_twitch_saves_nothing() -> None:
    result, _ = calibrate(RELAXATION, None, [(11.0, "feel"), (30.0, "too_much")])
    assert result.outcome == "no_twitch" and not result.complete and result.exit_code == 1
    assert result.tol_ma == pytest.approx(7.5)


def test_a_twitch_without_a_feeling_sets_both() -> None:
    result, _ = calibrate(RELAXATION, None, [(20.6, "twitch"), (30.6, "too_much")])
    assert result.st_ma == result.mt_ma == pytest.approx(5.5)
    assert result.tol_ma == pytest.approx(8.0)


def test_every_command_stays_within_the_guard_and_the_session_ends_at_zero() -> None:
    result, driver = calibrate(RELAXATION, VirtualUser(3.0, 6.0, 12.0))
    rows = driver.device.intervals(1)
    on = rows[rows["amplitude_ma"] > 0]
    assert set(np.unique(on["frequency_hz"])) == {6.0}
    assert set(np.unique(on["pulse_width_us"])) == {250.0}
    assert result.tol_ma == 12.0
    assert np.diff(rows["amplitude_ma"]).max() <= 0.1 + 1e-9  # 0.5 mA over 0.5 s (L17)
    for channel in (2, 3, 4):
        assert driver.device.intervals(channel)["amplitude_ma"].max(initial=0.0) == 0.0
    assert all(o.amplitude_ma == 0 for o in driver.device.outputs_at(1e9))


def test_train_mode_soft_starts_and_keeps_l18_on_off() -> None:
    trains = CalibrationSettings(1, 52.0, 150.0, 20.0, mode="trains", start_ma=10.0,
                                 known_st_ma=5.0, known_mt_ma=10.0, max_duration_s=300.0)
    t = np.arange(0.0, 60.0, 0.05)
    amp = np.array([trains.amplitude_at(x) for x in t])
    assert amp[t < 5.0].max() < 10.0 and trains.amplitude_at(5.0) == pytest.approx(10.0)
    on = amp > 0
    edges = t[1:][np.diff(on.astype(int)) != 0]  # switch-on and switch-off times
    assert edges[0] == pytest.approx(0.05)  # output starts from 0 at once, rising
    durations = np.diff(edges)
    on_s, off_s = durations[0::2], durations[1::2]
    assert on_s[0] == pytest.approx(6.0, abs=0.06)  # 5 s soft start (L15) + 1 s down
    assert np.allclose(on_s[1:], 5.0, atol=0.06) and on_s.max() <= 10.0  # L18 ON ≤ 10 s
    assert np.allclose(off_s, 10.0, atol=0.06) and off_s.min() >= on_s.max()  # OFF ≥ ON
    assert trains.amplitude_at(16.0 + 3.0) == pytest.approx(12.0)  # 2 mA more per train
    result, _driver = calibrate(trains, VirtualUser(5.0, 10.0, 15.0))
    assert result.outcome == "complete" and result.tol_ma is not None
    assert 14.0 <= result.tol_ma <= 16.0 and (result.st_ma, result.mt_ma) == (5.0, 10.0)


def test_a_channel_the_device_does_not_have_is_refused() -> None:
    with pytest.raises(InputError, match="no channel 9"):
        calibrate(CalibrationSettings(9, 6.0, 250.0, 20.0), None)


def test_settings_whose_ceiling_breaks_a_limit_are_refused_before_output() -> None:
    with pytest.raises(InputError, match="L6"):
        CalibrationSettings(1, 6.0, 350.0, 20.0).check(DEFAULTS)
    RELAXATION.check(DEFAULTS)


@pytest.mark.parametrize("text", ["5,10", "a,b,c", "10,5,20", "0,1,2"])
def test_a_bad_virtual_user_is_refused(text: str) -> None:
    with pytest.raises(InputError):
        parse_virtual_user(text)


def test_the_calibration_guard_checks_the_rate_the_device_makes() -> None:
    # the P24 makes 97.6 Hz (10.25 ms) as 100 Hz (10 ms): over a 99 Hz ceiling
    driver = open_device("sim+sciencemode4")
    settings = CalibrationSettings(1, 97.6, 180.0, 20.0)
    cal = Calibration(driver, settings, tighten(DEFAULTS, frequency_max_hz=99.0))
    setpoints = (ChannelSetpoint(0.5, 97.6, 180.0),) + (ZERO,) * 7
    with pytest.raises(SafetyViolation, match=r"97\.6 Hz is made as 100 Hz"):
        cal.guard.check(0.0, 0.0, setpoints)
