"""The ceilings live where no caller can miss them.

The driver contract refuses, whoever calls ``apply()``, any setpoint beyond the absolute
ceilings (peak current, pulse width, charge per phase, frequency range) and any rise faster than
the slew ceiling from the level the device is actually delivering. (The charge-per-phase
ceiling, 32 µC, is the product of the peak and width ceilings, 80 mA × 400 µs, so those two
hold it.) A session runs only a plan
that ``certify`` verified, so the soft start and the tetanic-rest rule hold for every session.
"""

from __future__ import annotations

import asyncio

import pytest

from emsctl.clock import VirtualClock
from emsctl.contract import ChannelSetpoint, Driver
from emsctl.devices import open_device
from emsctl.errors import InputError, ValidationFailed
from emsctl.limits import DEFAULTS, PLAN_RISE_CEILING_MA_PER_S
from emsctl.loader import load_program
from emsctl.plan import compile_plan
from emsctl.profile import SYNTHETIC_THRESHOLDS
from emsctl.session import Session
from emsctl.verify import VerifiedPlan, certify

ZERO4 = (ChannelSetpoint(0.0, 0.0, 0.0),) * 4


def _delivered_max_ma(driver: Driver) -> float:
    recorder = driver.recorder
    assert recorder is not None
    return max((figures["peak_ma"] for figures in recorder.summary().values()), default=0.0)


def _ramp(driver: Driver, level_ma: float, sp: ChannelSetpoint, channels: int):  # type: ignore[no-untyped-def]
    async def body() -> None:
        step_ma = PLAN_RISE_CEILING_MA_PER_S * driver.capabilities.update_period_s / 2
        amp = 0.0
        while amp < level_ma:
            amp = min(level_ma, amp + step_ma)
            await driver.apply((ChannelSetpoint(amp, sp.frequency_hz, sp.pulse_width_us),)
                               + (ChannelSetpoint(0.0, 0.0, 0.0),) * (channels - 1), 1.0)
            await asyncio.sleep(driver.capabilities.update_period_s)
    return body()


@pytest.mark.parametrize(("url", "setpoint", "words"), [
    ("sim", ChannelSetpoint(95.0, 50.0, 400.0), "80 mA"),
    ("sim", ChannelSetpoint(20.0, 50.0, 600.0), "400 µs"),
    ("sim", ChannelSetpoint(20.0, 180.0, 200.0), "150 Hz"),
    ("sim", ChannelSetpoint(79.0, 50.0, 410.0), "400 µs"),
    ("sim+sciencemode2", ChannelSetpoint(100.0, 50.0, 300.0), "80 mA"),
])
def test_apply_refuses_setpoints_beyond_the_absolute_ceilings(
        url: str, setpoint: ChannelSetpoint, words: str) -> None:
    driver = open_device(url)
    channels = driver.capabilities.channels

    async def body() -> None:
        async with driver:
            with pytest.raises(InputError, match=words):
                await driver.apply((setpoint,) + (ChannelSetpoint(0.0, 0.0, 0.0),)
                                   * (channels - 1), 1.0)
    VirtualClock().run(body())
    assert _delivered_max_ma(driver) == 0.0


@pytest.mark.parametrize("url", ["sim", "sim+sciencemode2", "sim+coyote3?ma_per_step=0.2"])
def test_apply_refuses_a_jump_and_allows_a_paced_rise(url: str) -> None:
    driver = open_device(url)
    channels = driver.capabilities.channels
    width = min(100.0, driver.capabilities.pulse_width_max_us)
    sp = ChannelSetpoint(0.0, 20.0, width)

    async def body() -> None:
        async with driver:
            with pytest.raises(InputError, match="rise"):
                await driver.apply((ChannelSetpoint(20.0, 20.0, width),)
                                   + (ChannelSetpoint(0.0, 0.0, 0.0),) * (channels - 1), 1.0)
            await _ramp(driver, 20.0, sp, channels)  # the same level, paced, is accepted
            await asyncio.sleep(0.3)  # within the lease: the device settles at the level
    VirtualClock().run(body())
    assert _delivered_max_ma(driver) == pytest.approx(20.0, abs=driver.capabilities
                                                      .amplitude_step_ma + 1e-9)


def test_after_the_lease_ran_out_a_rise_starts_again_from_zero() -> None:
    driver = open_device("sim")

    async def body() -> None:
        async with driver:
            await _ramp(driver, 20.0, ChannelSetpoint(0.0, 20.0, 200.0), 4)
            await asyncio.sleep(2.0)  # the lease (1 s) runs out: the device is at zero again
            with pytest.raises(InputError, match="rise"):
                await driver.apply((ChannelSetpoint(20.0, 20.0, 200.0), *ZERO4[1:]), 1.0)
    VirtualClock().run(body())


def _plan(name: str):  # type: ignore[no-untyped-def]
    program = load_program(name).program
    return compile_plan(program, {c.id: SYNTHETIC_THRESHOLDS for c in program.channels})


def test_a_session_runs_only_a_certified_plan() -> None:
    with pytest.raises(TypeError, match="certify"):
        VerifiedPlan()
    driver = open_device("sim")
    with pytest.raises(TypeError, match="certify"):
        Session(_plan("relaxation"), driver)  # type: ignore[arg-type]
    verified = certify(_plan("relaxation"), DEFAULTS, driver.capabilities)
    assert Session(verified, driver).plan is verified.plan


def test_certify_refuses_a_plan_that_breaks_the_tetanic_rest_rule() -> None:
    # a plan edited after compiling: a 50 Hz phase with no rest, the kind a hand-built session
    # used to run with only the peak cap enforced
    plan = _plan("circulation")
    for cplan in plan.channels:
        seg = cplan.segments
        seg["freq0_hz"], seg["freq1_hz"] = 50.0, 50.0
    with pytest.raises(ValidationFailed, match="L18"):
        certify(plan, DEFAULTS, open_device("sim").capabilities)


def test_a_plan_certified_for_one_device_does_not_run_on_another() -> None:
    verified = certify(_plan("relaxation"), DEFAULTS, open_device("sim").capabilities)
    with pytest.raises(InputError, match="another device"):
        Session(verified, open_device("sim+sciencemode2"))


def test_the_charge_ceiling_is_held_by_the_peak_and_width_ceilings() -> None:
    from emsctl.limits import PEAK_CEILING_MA, PHASE_CHARGE_CEILING_UC, PULSE_WIDTH_MAX_CEILING_US

    assert PEAK_CEILING_MA * PULSE_WIDTH_MAX_CEILING_US / 1000 <= PHASE_CHARGE_CEILING_UC
