"""A host that stalls longer than the device lease (suspend, swap, a stalled VM) finds the
output off; the session never sends output again: it ends as a fault and says so."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from session_helpers import prepared, run_virtual

from emsctl.limits import DEFAULTS
from emsctl.loader import load_program
from emsctl.runner import prepare_run

#: A program the Coyote can carry (its widths end at 100 µs), 10 min of twitches on one calf.
COYOTE_FIT = """\
name = "coyote-twitch"
title = "Twitches the Coyote can make"
purpose = "relaxation"
evidence = "test"
description = "test"
placement = "test"
calibration_frequency_hz = 6
calibration_pulse_width_us = 100
soft_start_s = 5
transition_s = 5
end_ramp_s = 3

[[channels]]
id = 1
site = "calf-left"
electrode_area_cm2 = 20
max_amplitude_ma = 30

[[phases]]
name = "twitches"
duration_s = 600
frequency_hz = 6
pulse_width_us = 100
amplitude = "MT"
"""


def _stall(seconds: float, ends: list[float]) -> None:
    """Block the event loop, as a suspended or swapping host does: virtual time jumps on while
    nothing runs; the device's own watchdog fires for the time that passed."""
    loop = asyncio.get_running_loop()
    loop.advance(seconds)  # type: ignore[attr-defined]  # the VirtualEventLoop
    ends.append(loop.time())


# The openEMSstim's emulated board and its wire run on the host's loop, so a loop-level stall
# also freezes a line already on its way, which a real board would have run before the stall;
# its stall rule is tested on the driver below instead.
@pytest.mark.parametrize("url", ["sim", "sim+sciencemode2", "sim+coyote3?ma_per_step=0.2"])
def test_a_host_stall_longer_than_the_lease_ends_the_session_as_a_fault(
        url: str, tmp_path: Path) -> None:
    if "coyote3" in url:
        path = tmp_path / "coyote.toml"
        path.write_text(COYOTE_FIT)
        prep = prepare_run(load_program(str(path)), url, DEFAULTS)
    else:
        prep = prepared("relaxation", url=url)
    lease_s = prep.driver.capabilities.max_lease_s
    stall_at_s = 400.0  # well into output
    ends: list[float] = []
    run = run_virtual(prep, tmp_path, at=[(stall_at_s, lambda s: _stall(lease_s * 3, ends))])
    result = run.outcome.result
    assert result.end_reason == "fault" and result.exit_code == 1
    assert "stalled" in result.message and "output is off" in result.message
    # the record: after the stall no output ever came back
    recorder = prep.driver.recorder
    assert recorder is not None
    for channel in range(1, prep.driver.capabilities.channels + 1):
        for row in recorder.intervals(channel):
            if row["t0_s"] >= ends[0]:
                assert row["delivered_ma"] == 0.0, (channel, row)


def test_an_openems_update_that_waited_out_a_stall_is_not_sent() -> None:
    # two channels go out 50 ms apart; the host stalls between them for longer than the
    # board's on-time: channel 2 is off, and its line from before the stall is never sent
    from emsctl.clock import VirtualClock
    from emsctl.contract import ChannelSetpoint
    from emsctl.devices import open_device
    from emsctl.errors import DeviceError

    driver = open_device("sim+openems?ma_at_100=16&frequency_hz=80&pulse_width_us=180&boot_s=0")
    on = ChannelSetpoint(4.0, 80.0, 180.0)

    driver.set_channel_caps_ma({1: 25.0, 2: 25.0})  # as prepare_run hands them over

    async def body() -> None:
        await driver.connect()
        loop = asyncio.get_running_loop()
        for _ in range(5):  # ramp both channels up, one slew step at a time
            await driver.apply((on, on), 1.0)
            await asyncio.sleep(0.1)
        # the next update: the first line goes out, the stall comes while the second waits
        loop.call_later(0.01, loop.advance, 3.0)  # type: ignore[attr-defined]
        with pytest.raises(DeviceError, match="switched off by its on-time"):
            await driver.apply((on, on), 1.0)
        await driver.close()

    VirtualClock().run(body())
    recorder = driver.recorder
    assert recorder is not None
    late = [row for row in recorder.intervals(2) if row["delivered_ma"] > 0
            and row["t0_s"] > 1.6]
    assert late == []


def test_the_guards_rise_allowance_never_accumulates_over_a_gap() -> None:
    from emsctl.contract import ChannelSetpoint
    from emsctl.errors import SafetyViolation
    from emsctl.guard import ChannelGuard, Guard

    guard = Guard(DEFAULTS, [ChannelGuard(30.0, 20.0)], amplitude_step_ma=0.1, period_s=0.1)
    guard.check(0.0, 0.0, [ChannelSetpoint(0.0, 6.0, 250.0)])
    # five quiet seconds later, one big step is still one big step
    with pytest.raises(SafetyViolation, match=r"rose 12\.00 mA"):
        guard.check(5.0, 5.0, [ChannelSetpoint(12.0, 6.0, 250.0)])
    fresh = Guard(DEFAULTS, [ChannelGuard(30.0, 20.0)], amplitude_step_ma=0.1, period_s=0.1)
    fresh.check(0.0, 0.0, [ChannelSetpoint(0.0, 6.0, 250.0)])
    assert fresh.rise_ceiling_ma(0, 5.0) == pytest.approx(DEFAULTS.plan_rise_ma_per_s * 0.1 + 0.1)


def test_a_stall_longer_than_a_coyote_frame_never_brings_the_output_back(tmp_path: Path) -> None:
    # The Coyote's own bound is its 100 ms frame: a host that stalls for 0.3 s (well inside
    # the 1 s lease) finds the output silent since the last frame ran out. The stream used to
    # send the next frame at the full level at once when the host came back (6.4 mA from
    # zero, found by tests/session/test_invariants.py); the silence is the device's watchdog
    # firing, so the session ends as a fault and the output stays off.
    path = tmp_path / "coyote.toml"
    path.write_text(COYOTE_FIT)
    prep = prepare_run(load_program(str(path)), "sim+coyote3?ma_per_step=0.2", DEFAULTS)
    ends: list[float] = []
    run = run_virtual(prep, tmp_path, at=[(400.0, lambda s: _stall(0.3, ends))])
    result = run.outcome.result
    assert (result.end_reason, result.exit_code) == ("fault", 1), result.message
    recorder = prep.driver.recorder
    assert recorder is not None
    for channel in (1, 2):
        back = [row for row in recorder.intervals(channel)
                if row["t0_s"] >= ends[0] and row["amplitude_ma"] > 0]
        assert back == [], (channel, back)
