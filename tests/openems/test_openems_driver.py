"""The openEMSstim driver: declared stimulator, intensity rounding, leases, stop, link loss."""

from __future__ import annotations

import asyncio
import importlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.ramp import ramp_below, ramp_to

from emsctl.clock import VirtualClock
from emsctl.contract import ZERO, ChannelSetpoint, DriverStoppedError, Telemetry
from emsctl.devices import OpenOptions, open_device
from emsctl.drivers.openems.driver import LINE_SPACING_S
from emsctl.drivers.openems.params import DeclaredStimulator
from emsctl.errors import DeviceError, InputError, LinkLostError
from emsctl.simulator.drivers.openems import SimulatedOpenEmsDriver
from emsctl.simulator.faults import Fault, FaultPlan

DECL = "ma_at_100=40&frequency_hz=80&pulse_width_us=180"
SERIAL = f"sim+openems?{DECL}&boot_s=0&ready_timeout_s=0.1"
BLE = f"sim+openems+ble?{DECL}"
ON = ChannelSetpoint(20.0, 80.0, 180.0)
#: Caps above the board's full scale at ma_at_100=40 (50.6 mA), as prepare_run would hand them
#: over for a person with such caps: without them the driver sends no output.
CAPS_MA = {1: 60.0, 2: 60.0}


def sim(url: str = SERIAL, *faults: Fault) -> SimulatedOpenEmsDriver:
    driver = open_device(url, OpenOptions(fault_plan=FaultPlan(faults) if faults else None))
    assert isinstance(driver, SimulatedOpenEmsDriver)
    driver.set_channel_caps_ma(CAPS_MA)
    return driver


def wire(driver: SimulatedOpenEmsDriver) -> list[tuple[float, bytes]]:
    """Every host→device chunk with the loop time it was written."""
    sent: list[tuple[float, bytes]] = []
    if hasattr(driver.front, "pipe"):
        pipe = driver.front.pipe
        original = pipe.tamper

        def spy(direction: str, data: bytes) -> list[tuple[float, bytes]]:
            if direction == "host→device":
                sent.append((asyncio.get_running_loop().time(), data))
            return original(direction, data) if original else [(0.0, data)]

        pipe.tamper = spy
    else:
        server = driver.front.server
        original_ble = server.tamper

        def spy_ble(direction: str, data: bytes) -> list[tuple[float, bytes]]:
            if direction == "host→device":
                sent.append((asyncio.get_running_loop().time(), data))
            return original_ble(direction, data) if original_ble else [(0.0, data)]

        server.tamper = spy_ble
    return sent


def plain(data: bytes) -> bytes:
    """The command in a serial WV line or a BLE value."""
    if data.startswith(b"WV,"):
        return bytes.fromhex(data.rstrip(b"\n").split(b",")[-1][:-1].decode())
    return data


def arm(driver: SimulatedOpenEmsDriver, *faults: Fault) -> None:
    """Start ``faults`` from now (after a ramp), as a plan armed at connect would from then."""
    FaultPlan(faults).schedule(asyncio.get_running_loop(), driver.front.faults)


def heard(driver: SimulatedOpenEmsDriver) -> list[Telemetry]:
    seen: list[Telemetry] = []
    driver.add_listener(seen.append)
    return seen


def amps(driver: SimulatedOpenEmsDriver) -> list[float]:
    return [o.amplitude_ma for o in driver.device.output_now()]


# ---------------------------------------------------------------------- URL and capabilities


@pytest.mark.parametrize("scheme", ["openems:///dev/ttyX", "openems+ble://00:11:22:33:44:55"])
def test_ma_at_100_is_required_with_a_sentence_that_says_why(scheme: str) -> None:
    with pytest.raises(InputError, match=r"ma_at_100.*for example '\?ma_at_100=16&frequency_hz=80&"
                                         r"pulse_width_us=180'; docs/devices\.md §3\.4") as info:
        open_device(f"{scheme}?frequency_hz=80&pulse_width_us=180")
    assert "external stimulator" in str(info.value)


@pytest.mark.parametrize("scheme", ["sim+openems", "sim+openems+ble"])
def test_the_emulated_board_declares_its_own_external_stimulator(scheme: str) -> None:
    driver = open_device(scheme)
    assert driver.declared_scaling == {"ma_at_100": 16.0, "frequency_hz": 80.0,
                                       "pulse_width_us": 180.0}
    assert open_device(f"{scheme}?ma_at_100=12").declared_scaling["ma_at_100"] == 12.0


@pytest.mark.parametrize("url", [
    f"sim+openems?{DECL}&chanels=2",           # unknown key
    "sim+openems?ma_at_100=0&frequency_hz=80&pulse_width_us=180",
    "sim+openems?ma_at_100=90&frequency_hz=80&pulse_width_us=180",  # L3 peak ceiling 80 mA
    "sim+openems?ma_at_100=40&frequency_hz=200&pulse_width_us=180",  # L7
    "sim+openems?ma_at_100=40&frequency_hz=80&pulse_width_us=10",    # L6
    "sim+openems?ma_at_100=nan&frequency_hz=80&pulse_width_us=180",
    f"sim+openems?{DECL}&firmware=beta",
    f"sim+openems?{DECL}&debug=maybe",
    f"sim+openems://box?{DECL}",
    f"openems://?{DECL}",
])
def test_bad_urls_are_input_errors(url: str) -> None:
    with pytest.raises(InputError):
        open_device(url)


def test_frequency_and_pulse_width_are_the_declared_fixed_values() -> None:
    driver = sim()
    caps = driver.capabilities
    assert (caps.frequency_min_hz, caps.frequency_max_hz) == (80.0, 80.0)
    assert (caps.pulse_width_min_us, caps.pulse_width_max_us) == (180.0, 180.0)
    assert (caps.amplitude_max_ma, caps.amplitude_step_ma, caps.channels) == (40.0, 0.4, 2)
    assert caps.has_output_watchdog and caps.max_lease_s == 1.0 and driver.simulated
    assert "ack" not in caps.telemetry  # the board never answers


def test_open_ble_without_the_ble_link_is_a_clear_input_error(monkeypatch) -> None:
    real = importlib.import_module

    def no_ble(name: str, package: str | None = None):  # type: ignore[no-untyped-def]
        if name.endswith("links.ble"):
            raise ImportError("No module named 'emsctl.drivers.links.ble'")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", no_ble)
    with pytest.raises(InputError, match="BLE"):
        open_device(f"openems+ble://00:11:22:33:44:55?{DECL}")


@pytest.mark.parametrize(("target", "address", "name"), [
    ("00:11:22:33:44:55", "00:11:22:33:44:55", None),
    ("name=openEMSstim01", None, "openEMSstim01"),
])
def test_open_ble_uses_the_bleak_link_by_address_or_name(target: str, address: str | None,
                                                         name: str | None) -> None:
    from emsctl.drivers.links.ble import BleakGattLink
    from emsctl.drivers.openems.driver import OpenEmsDriver
    from emsctl.drivers.openems.transport import BleLines

    driver = open_device(f"openems+ble://{target}?{DECL}")
    assert isinstance(driver, OpenEmsDriver) and isinstance(driver.link, BleLines)
    link = driver.link.link
    assert isinstance(link, BleakGattLink)
    assert (link.address, link.name) == (address, name)
    assert "BLE" in driver.capabilities.model and not driver.simulated


def test_setpoints_at_another_frequency_are_refused_before_anything_is_sent() -> None:
    async def main() -> None:
        async with sim() as driver:
            sent = wire(driver)
            with pytest.raises(InputError, match="Hz"):
                await driver.apply([ChannelSetpoint(10.0, 50.0, 180.0), ZERO], 1.0)
            assert sent == []

    VirtualClock().run(main())


# ---------------------------------------------------------------------- intensity


@given(st.floats(min_value=0.0, max_value=40.0, allow_nan=False))
def test_intensity_rounds_down_never_above_the_request(amplitude_ma: float) -> None:
    declared = DeclaredStimulator(80.0, 180.0, 40.0)
    pct = declared.intensity_for(amplitude_ma)
    assert 0 <= pct <= 100
    assert declared.ma_at(pct) <= amplitude_ma + 1e-9
    if pct < 100:
        assert declared.ma_at(pct + 1) > amplitude_ma  # the largest that fits


def test_declared_calibration_reaches_ma_at_100_exactly() -> None:
    declared = DeclaredStimulator(80.0, 180.0, 40.0)
    assert declared.ma_at(0) == 0.0 and declared.ma_at(100) == 40.0
    assert declared.intensity_for(40.0) == 100 and declared.intensity_for(0.2) == 0


# ---------------------------------------------------------------------- the wire


def test_connect_shuts_down_and_apply_sends_wv_lines_50_ms_apart() -> None:
    async def main() -> None:
        driver = sim()
        sent = wire(driver)
        await driver.connect()
        assert [d for _, d in sent] == [b"WV,0018,433947.\n"]  # C9G on connect
        await ramp_below(driver, [ON, ON])
        mark = len(sent)
        t0 = asyncio.get_running_loop().time()
        await driver.apply([ON, ON], 1.0)
        sent = sent[mark:]
        assert [d for _, d in sent] == [b"WV,0018,4330493530543130303047.\n",  # C0I50T1000G
                                        b"WV,0018,4331493530543130303047.\n"]
        assert sent[1][0] - sent[0][0] == pytest.approx(LINE_SPACING_S)
        assert sent[0][0] >= t0
        await asyncio.sleep(0.1)
        assert amps(driver) == [pytest.approx(driver.declared.ma_at(50))] * 2
        assert max(amps(driver)) <= 20.0
        await driver.close()

    VirtualClock().run(main())


def test_ble_writes_the_plain_form() -> None:
    async def main() -> None:
        driver = sim(BLE)
        sent = wire(driver)
        async with driver:
            assert [d for _, d in sent] == [b"C9G"]
            await ramp_below(driver, [ZERO, ON])
            mark = len(sent)
            await driver.apply([ZERO, ON], 0.5)
        assert all(not d.startswith(b"WV") for _, d in sent[:mark])  # the ramp's too
        assert [d for _, d in sent[mark:]] == [b"C1I50T500G", b"C1I0T0G", b"C9G"]

    VirtualClock().run(main())


def test_a_channel_going_to_zero_gets_the_stop_idiom_not_i0() -> None:
    async def main() -> None:
        async with sim() as driver:
            await ramp_below(driver, [ON, ZERO])
            sent = wire(driver)
            await driver.apply([ON, ZERO], 1.0)
            await asyncio.sleep(0.1)
            await driver.apply([ZERO, ZERO], 1.0)
            await asyncio.sleep(0.1)
            assert amps(driver) == [0.0, 0.0] and not driver.emulator.active(0)
            await driver.apply([ZERO, ZERO], 1.0)  # nothing on: nothing to send
            lines = [d for _, d in sent]
            assert lines == [b"WV,0018,4330493530543130303047.\n",
                             b"WV,0018,43304930543047.\n"]  # C0I0T0G

    VirtualClock().run(main())


def test_without_renewal_the_board_switches_off_at_the_end_of_the_lease() -> None:
    async def main() -> None:
        driver = sim()
        await driver.connect()
        await ramp_to(driver, [ON, ZERO], 0.6)
        await asyncio.sleep(1.0)
        started = driver.emulator.activations[-1].t_s  # after wire time and connect's C9G
        on = driver.device.intervals(1)
        on = on[on["amplitude_ma"] > 0]
        assert on[-1]["t1_s"] - started == pytest.approx(0.6, abs=0.002)
        assert on[-1]["t0_s"] == started
        await driver.close()

    VirtualClock().run(main())


@pytest.mark.parametrize("url", [SERIAL, BLE])
def test_stop_wins_over_a_pending_apply_and_sends_the_stop_sequence(url: str) -> None:
    async def main() -> None:
        driver = sim(url)
        await driver.connect()
        # the ramp leaves both channels on, one allowed rise below ON (so the stop zeroes both),
        # and its last line was just written, as connect's C9G was: the update's lines wait
        await ramp_below(driver, [ON, ON])
        sent = wire(driver)
        loop = asyncio.get_running_loop()
        pending = asyncio.create_task(driver.apply([ON, ON], 1.0))
        await asyncio.sleep(0.07)  # channel 1's line is out; channel 2's waits for its slot
        t_stop = loop.time()
        await driver.stop()
        await pending
        lines = [plain(d) for _, d in sent]
        # channel 2's update never left; the stop zeroes each channel that is on, then C9G
        assert lines == [b"C0I50T1000G", b"C0I0T0G", b"C1I0T0G", b"C9G"]
        assert sent[1][0] == t_stop  # the stop went on the wire at once
        await asyncio.sleep(0.3)
        assert amps(driver) == [0.0, 0.0]
        # from the stop on, channel 2 saw only the stop idiom (I0, on-time 0), never the update
        reached = [a for a in driver.emulator.activations if a.channel == 1 and a.t_s >= t_stop]
        assert [a.deadline_s - a.t_s for a in reached] == [0.0]
        with pytest.raises(DriverStoppedError):
            await driver.apply([ON, ON], 1.0)
        await driver.close()

    VirtualClock().run(main())


def test_stop_with_both_channels_on_zeroes_each_then_shuts_down() -> None:
    async def main() -> None:
        async with sim() as driver:
            await ramp_to(driver, [ON, ON], 1.0)
            await asyncio.sleep(0.1)
            sent = wire(driver)
            t_stop = asyncio.get_running_loop().time()
            await driver.stop()
            assert [d for _, d in sent] == [b"WV,0018,43304930543047.\n",
                                            b"WV,0018,43314930543047.\n",
                                            b"WV,0018,433947.\n"]
            assert [t - t_stop for t, _ in sent] == pytest.approx([0.0, 0.05, 0.1])
            # channel 1 at 0 as soon as its line arrived (wire time 12.5 ms at 19 200 baud)
            on = driver.device.intervals(1)
            assert on[on["amplitude_ma"] > 0][-1]["t1_s"] - t_stop < 0.02

    VirtualClock().run(main())


def test_close_sends_connection_end_on_serial() -> None:
    async def main() -> None:
        driver = sim()
        await driver.connect()
        sent = wire(driver)
        await driver.close()
        assert sent[-1][1] == b"Connection End\n"
        await driver.close()  # idempotent

    VirtualClock().run(main())


# ---------------------------------------------------------------------- faults


@pytest.mark.parametrize("url", [SERIAL, BLE])
def test_a_dropped_link_is_reported_and_the_board_falls_silent(url: str) -> None:
    async def main() -> None:
        driver = sim(url)
        seen = heard(driver)
        await driver.connect()
        await ramp_below(driver, [ON, ON])
        arm(driver, Fault("disconnect", 0.5))
        await driver.apply([ON, ON], 1.0)
        await asyncio.sleep(0.6)
        lost = [t for t in seen if t.kind == "link_lost"]
        assert len(lost) == 1 and "off within" in lost[0].message
        with pytest.raises(LinkLostError):
            await driver.apply([ON, ON], 1.0)
        with pytest.raises(LinkLostError, match="on-time"):
            await driver.stop()
        await asyncio.sleep(1.0)  # serial: the on-time; BLE: Connection End at once
        assert amps(driver) == [0.0, 0.0]
        with pytest.raises(LinkLostError):  # the stop cannot be confirmed; released anyway
            await driver.close()
        assert not driver.link_up

    VirtualClock().run(main())


def test_a_reset_mid_session_is_reported_and_never_resumed() -> None:
    async def main() -> None:
        driver = sim(f"sim+openems?{DECL}&boot_s=1", Fault("device_reset", 2.0))
        seen = heard(driver)
        loop = asyncio.get_running_loop()
        await driver.connect()
        t_reset = loop.time() + 2.0
        await ramp_below(driver, [ON, ON])  # well before the reset
        assert loop.time() < t_reset - 1.0
        with pytest.raises(DeviceError, match="reset"):
            for _ in range(40):  # a session keeps renewing: the board cannot tell it is booting
                await driver.apply([ON, ON], 1.0)
                await asyncio.sleep(0.25)
        resets = [t for t in seen if t.kind == "device_reset"]
        # setup takes 1 s; the banner then needs its wire time
        assert len(resets) == 1 and resets[0].t_s == pytest.approx(t_reset + 1.0, abs=0.05)
        await asyncio.sleep(0.5)
        assert amps(driver) == [0.0, 0.0]
        # a renewal buffered during setup runs after it; the driver's C9G follows at once
        late = []
        for channel in (1, 2):
            iv = driver.device.intervals(channel)
            after = iv[(iv["t1_s"] > t_reset) & (iv["amplitude_ma"] > 0)]
            late += list(after["t1_s"] - resets[0].t_s)
        assert late and max(late) < 0.1
        await driver.close()

    VirtualClock().run(main())


def test_faults_the_board_cannot_carry_out_are_refused_when_opening() -> None:
    with pytest.raises(InputError, match="battery_low"):
        sim(SERIAL, Fault("battery_low", 1.0, value=5.0))
    with pytest.raises(InputError, match="FaultPlan"):
        open_device(SERIAL, OpenOptions(fault_plan=[Fault("disconnect", 1.0)]))
