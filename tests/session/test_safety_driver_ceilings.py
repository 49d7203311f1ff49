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
from emsctl.contract import ZERO, ChannelSetpoint, Driver, DriverStoppedError
from emsctl.devices import open_device
from emsctl.errors import DeviceError, InputError, ValidationFailed
from emsctl.limit_table import PLAN_RISE_CEILING_MA_PER_S
from emsctl.limits import DEFAULTS
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
    from emsctl.limit_table import (
        PEAK_CEILING_MA,
        PHASE_CHARGE_CEILING_UC,
        PULSE_WIDTH_MAX_CEILING_US,
    )

    assert PEAK_CEILING_MA * PULSE_WIDTH_MAX_CEILING_US / 1000 <= PHASE_CHARGE_CEILING_UC


# --- the contract's own checks, each on its edge, with a driver that does nothing else ---------


class _Bare(Driver):
    """A device that accepts anything at once; what the contract lets through reaches it."""

    def __init__(self, step_ma: float = 0.5, bursts: bool = False, wide: bool = False) -> None:
        super().__init__()
        from emsctl.contract import Capabilities

        self.capabilities = Capabilities(  # wide: exactly the absolute ceilings' ranges
            model="Bare", channels=2, amplitude_max_ma=80.0 if wide else 50.0,
            amplitude_step_ma=step_ma, pulse_width_min_us=50.0 if wide else 100.0,
            pulse_width_max_us=400.0 if wide else 300.0,
            frequency_min_hz=1.0 if wide else 2.0, frequency_max_hz=150.0 if wide else 100.0,
            frequency_per_channel=True, update_period_s=0.1, max_lease_s=1.0,
            has_output_watchdog=True, bursts=bursts)
        self.sent: list[tuple[ChannelSetpoint, ...]] = []
        self.stops = 0
        self.closes = 0

    async def _connect_internal(self) -> None:
        pass

    async def _apply_internal(self, setpoints: tuple[ChannelSetpoint, ...], lease_s: float) -> None:
        self.sent.append(setpoints)

    async def _stop_internal(self) -> None:
        self.stops += 1

    async def _close_internal(self) -> None:
        self.closes += 1


OFF = ChannelSetpoint(0.0, 0.0, 0.0)


def _on(amp: float, hz: float = 20.0, us: float = 200.0) -> ChannelSetpoint:
    return ChannelSetpoint(amp, hz, us)


async def _up_to(driver: Driver, amp: float) -> None:
    """Rise to ``amp`` on channel 1 at the slew ceiling's pace."""
    level = 0.0
    while level < amp:
        level = min(amp, level + 2.0)
        await driver.apply((_on(level), OFF), 1.0)
        await asyncio.sleep(0.1)


@pytest.mark.parametrize(("setpoint", "message"), [
    (ChannelSetpoint(-1.0, 20.0, 200.0), "channel 1: setpoints must be finite and non-negative"),
    (ChannelSetpoint(1.0, float("nan"), 200.0),
     "channel 1: setpoints must be finite and non-negative"),
    (ChannelSetpoint(81.0, 20.0, 200.0),
     "channel 1: 81 mA is over emsctl's absolute ceiling of 80 mA (limit L3)"),
    (ChannelSetpoint(1.0, 20.0, 401.0),
     "channel 1: 401 µs is outside emsctl's absolute range of 50–400 µs (limit L6)"),
    (ChannelSetpoint(1.0, 20.0, 49.0),
     "channel 1: 49 µs is outside emsctl's absolute range of 50–400 µs (limit L6)"),
    (ChannelSetpoint(1.0, 151.0, 200.0),
     "channel 1: 151 Hz is outside emsctl's absolute range of 1–150 Hz (limit L7)"),
    (ChannelSetpoint(1.0, 0.5, 200.0),
     "channel 1: 0.5 Hz is outside emsctl's absolute range of 1–150 Hz (limit L7)"),
    (ChannelSetpoint(51.0, 20.0, 200.0), "channel 1: 51 mA is over the device maximum of 50 mA"),
    (ChannelSetpoint(1.0, 101.0, 200.0), "channel 1: 101 Hz is outside 2–100 Hz"),
    (ChannelSetpoint(1.0, 1.5, 200.0), "channel 1: 1.5 Hz is outside 2–100 Hz"),
    (ChannelSetpoint(1.0, 20.0, 301.0), "channel 1: 301 µs is outside 100–300 µs"),
    (ChannelSetpoint(1.0, 20.0, 99.0), "channel 1: 99 µs is outside 100–300 µs"),
    (ChannelSetpoint(1.0, 20.0, 200.0, 2.0, 3), "channel 1: Bare cannot time bursts"),
    (ChannelSetpoint(1.0, 20.0, 200.0, 0.5, 3), "channel 1: Bare cannot time bursts"),
])
def test_the_contract_refuses_each_setpoint_with_its_own_sentence(
        setpoint: ChannelSetpoint, message: str) -> None:
    driver = _Bare()

    async def body() -> None:
        await driver.connect()
        with pytest.raises(InputError) as caught:
            await driver.apply((setpoint, OFF), 1.0)
        assert str(caught.value) == message

    VirtualClock().run(body())
    assert driver.sent == []


def test_the_contract_passes_every_bound_and_rounds_down_to_the_device_step() -> None:
    driver = _Bare(bursts=True)

    async def body() -> None:
        await driver.connect()
        await driver.apply((ChannelSetpoint(0.99, 2.0, 100.0), OFF), 1.0)
        await asyncio.sleep(0.1)
        exact = ChannelSetpoint(1.5, 100.0, 300.0, 2.0, 3)
        await driver.apply((exact, ChannelSetpoint(-0.0, 20.0, 200.0)), 1.0)
        assert driver.sent[-1][0] is exact  # already on a step: the very object
        assert str(driver.sent[-1][1].amplitude_ma) == "0.0"  # -0.0 becomes 0.0
        await asyncio.sleep(0.1)
        await driver.apply((ChannelSetpoint(1.5, 100.0, 300.0), OFF), 1.0)

    VirtualClock().run(body())
    assert driver.sent[0][0] == ChannelSetpoint(0.5, 2.0, 100.0)  # 0.99 mA → 0.5 mA
    assert driver.last_applied[0].amplitude_ma == 1.5


def test_quantize_rounds_down_and_a_device_without_steps_keeps_the_value() -> None:
    assert _Bare(step_ma=0.5).capabilities.quantize_ma(1.4999999999) == 1.5  # float noise
    assert _Bare(step_ma=0.5).capabilities.quantize_ma(1.49) == 1.0
    assert _Bare(step_ma=0.0).capabilities.quantize_ma(1.49) == 1.49


def test_apply_checks_channels_and_lease_and_needs_a_connection() -> None:
    driver = _Bare()

    async def body() -> None:
        with pytest.raises(DriverStoppedError):  # never connected: stopped, nothing but zero
            await driver.apply((_on(1.0), OFF), 1.0)
        await driver.apply((OFF, OFF), 1.0)  # zero is always allowed
        await driver.connect()
        with pytest.raises(InputError, match=r"^Bare has 2 channels, got 1$"):
            await driver.apply((OFF,), 1.0)
        for lease in (0.0, 1.01):
            with pytest.raises(InputError, match=rf"^lease {lease} s is outside 0–1.0 s$"):
                await driver.apply((OFF, OFF), lease)
        await driver.apply((_on(0.5), OFF), 1.0)  # the whole lease: allowed

    VirtualClock().run(body())
    assert [sp[0].amplitude_ma for sp in driver.sent] == [0.5]


def test_the_rise_allowance_is_one_period_of_slew_plus_one_step_and_holds_only_in_the_lease(
        ) -> None:
    driver = _Bare()
    allowance = PLAN_RISE_CEILING_MA_PER_S * 0.1 + 0.5  # 8.5 mA

    async def body() -> None:
        await driver.connect()
        await driver.apply((_on(allowance), OFF), 1.0)  # from zero, any time later: allowed
        await asyncio.sleep(0.05)
        with pytest.raises(InputError) as caught:  # half a period later: half the slew
            await driver.apply((_on(allowance + 5.0), OFF), 1.0)
        assert str(caught.value) == (
            f"channel 1: a rise from {allowance:g} to {allowance + 5.0:g} mA at once is faster "
            f"than {PLAN_RISE_CEILING_MA_PER_S:g} mA/s (limit L16); raise the output step by step")
        await driver.apply((_on(allowance + 4.5), OFF), 1.0)  # 4 mA of slew + a step: allowed
        await asyncio.sleep(0.5)  # longer than a period: still one period's allowance
        with pytest.raises(InputError, match="faster than"):
            await driver.apply((_on(allowance + 4.5 + allowance + 0.5), OFF), 1.0)
        await driver.apply((_on(allowance + 4.5 + allowance), OFF), 1.0)
        await asyncio.sleep(1.0)  # the lease (1 s) has run out: the device is at zero
        with pytest.raises(InputError, match="a rise from 0 to"):
            await driver.apply((_on(allowance + 0.5), OFF), 1.0)
        await driver.apply((_on(allowance), _on(allowance)), 1.0)

    VirtualClock().run(body())


def test_stop_latches_until_the_next_connect_and_close_stops_once() -> None:
    driver = _Bare()

    async def body() -> None:
        assert driver.request_stop() is None  # not connected: nothing to put on the wire
        await driver.connect()
        assert not driver.stopped and driver.last_applied == (ZERO, ZERO)
        await _up_to(driver, 4.0)
        first = driver.request_stop()
        assert driver.request_stop() is first  # one stop in flight, not two
        assert driver.stopped and driver.last_applied == (ZERO, ZERO)
        await driver.stop()
        with pytest.raises(DriverStoppedError,
                           match=r"^the device is stopped; start a new session to resume$"):
            await driver.apply((_on(0.5), OFF), 1.0)
        await driver.connect()  # re-armed
        await driver.apply((_on(0.5), OFF), 1.0)
        await driver.close()
        await driver.close()
        with pytest.raises(DeviceError, match=r"^this driver was closed; open the device again$"):
            await driver.connect()

    VirtualClock().run(body())
    assert (driver.stops, driver.closes) == (2, 1)


@pytest.mark.parametrize("stopped_before", [False, True],
                         ids=["first connect", "a stop counted before it"])
def test_a_stop_during_connect_wins(stopped_before: bool) -> None:
    # a stop counted before (here: before any connect) must not hide one during the handshake
    class Slow(_Bare):
        async def _connect_internal(self) -> None:
            await asyncio.sleep(0.5)

    driver = Slow()

    async def body() -> None:
        if stopped_before:
            assert driver.request_stop() is None  # not connected yet
        connecting = asyncio.ensure_future(driver.connect())
        await asyncio.sleep(0.1)
        driver.request_stop()
        await connecting
        assert driver.stopped
        with pytest.raises(DriverStoppedError):
            await driver.apply((_on(0.5), OFF), 1.0)

    VirtualClock().run(body())


def test_after_close_a_stop_puts_nothing_on_the_released_link() -> None:
    driver = _Bare()

    async def body() -> None:
        await driver.connect()
        await _up_to(driver, 2.0)
        await driver.close()
        assert driver.stops == 1
        assert driver.request_stop() is None  # a key or signal handler after the close
        await driver.stop()

    VirtualClock().run(body())
    assert (driver.stops, driver.closes) == (1, 1)


def test_a_stop_while_a_command_waits_for_its_ack_keeps_zero_as_the_last_applied() -> None:
    class SlowAck(_Bare):
        async def _apply_internal(self, setpoints: tuple[ChannelSetpoint, ...],
                                  lease_s: float) -> None:
            await asyncio.sleep(0.2)
            self.sent.append(setpoints)

    driver = SlowAck()

    async def body() -> None:
        await driver.connect()
        sending = asyncio.ensure_future(driver.apply((_on(0.5), OFF), 1.0))
        await asyncio.sleep(0.1)
        driver.request_stop()
        await sending

    VirtualClock().run(body())
    assert driver.last_applied == (ZERO, ZERO)


def test_every_listener_hears_every_report() -> None:
    from emsctl.contract import Telemetry

    driver = _Bare()
    heard: list[tuple[str, str]] = []
    driver.add_listener(lambda t: heard.append(("a", t.kind)))
    driver.add_listener(lambda t: heard.append(("b", t.kind)))
    driver._emit(Telemetry("ack", 0.0))
    assert heard == [("a", "ack"), ("b", "ack")]


def test_the_absolute_ceilings_themselves_are_allowed() -> None:
    driver = _Bare(wide=True)
    assert driver.last_applied == ()  # nothing applied before the first connect

    async def body() -> None:
        await driver.connect()
        off = ChannelSetpoint(0.0, 20.0, 200.0)
        await driver.apply((off, off), 1.0)
        assert driver.sent[-1][0] is off  # a zero that is already +0.0 passes as it is
        for setpoint in (_on(1.0, 1.0, 50.0), _on(1.0, 150.0, 400.0)):
            await asyncio.sleep(0.1)
            await driver.apply((setpoint, OFF), 1.0)
        await asyncio.sleep(0.1)
        await _up_to(driver, 80.0)  # the peak ceiling and the device maximum, exactly

    VirtualClock().run(body())
    assert driver.sent[-1][0].amplitude_ma == 80.0
