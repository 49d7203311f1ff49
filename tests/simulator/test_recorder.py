"""What was delivered: pulse count, phase charge, rms, peak and net DC from the intervals."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import numpy as np
import pytest

from emsctl.clock import VirtualClock
from emsctl.contract import ZERO, ChannelSetpoint
from emsctl.simulator.model import DeviceSpec, SimulatedStimulator
from emsctl.simulator.recorder import Recorder


async def constant(device: SimulatedStimulator, sp: ChannelSetpoint, duration_s: float,
                   renew_s: float = 0.5, channels: int = 1) -> None:
    """Hold ``sp`` on the first ``channels`` channels for ``duration_s``, renewing the lease."""
    n = device.spec.channels
    setpoints = [sp if c < channels else ZERO for c in range(n)]
    for _ in range(round(duration_s / renew_s)):
        device.set_outputs(setpoints, lease_s=1.0)
        await asyncio.sleep(renew_s)
    device.stop()


def test_constant_output_figures() -> None:
    amplitude_ma, frequency_hz, pulse_width_us, duration_s = 20.0, 50.0, 250.0, 10.0

    async def main() -> Recorder:
        device = SimulatedStimulator()
        await constant(device, ChannelSetpoint(amplitude_ma, frequency_hz, pulse_width_us),
                       duration_s)
        return Recorder(device)

    rec = VirtualClock().run(main())
    assert rec.pulse_count(1) == frequency_hz * duration_s
    assert rec.duration_s() == pytest.approx(duration_s)
    charges = rec.phase_charge_uc(1)
    assert charges == pytest.approx(np.full(500, amplitude_ma * pulse_width_us / 1000.0))
    assert rec.rms_ma(1) == pytest.approx(
        amplitude_ma * math.sqrt(2 * pulse_width_us * frequency_hz * 1e-6))
    assert rec.peak_ma(1) == amplitude_ma
    assert rec.net_dc_ua(1) == pytest.approx(0.0, abs=1e-12)
    assert rec.pulse_count(2) == 0
    p = rec.pulses(1)
    assert np.diff(p["t_s"]) == pytest.approx(np.full(499, 1 / frequency_hz))
    summary = rec.summary()
    assert summary[1]["pulse_count"] == 500
    assert summary[1]["on_time_s"] == pytest.approx(duration_s)
    assert summary[2]["rms_ma"] == 0.0


def test_pulse_train_is_phase_continuous_across_renewals_and_changes() -> None:
    async def main() -> Recorder:
        device = SimulatedStimulator()
        # 5 Hz renewed every 0.1 s: restarting the phase on each command would give 10 Hz.
        for i in range(20):
            amplitude = 10.0 if i % 2 else 12.0
            device.set_outputs([ChannelSetpoint(amplitude, 5.0, 200.0)] + [ZERO] * 3, 1.0)
            await asyncio.sleep(0.1)
        device.stop()
        return Recorder(device)

    rec = VirtualClock().run(main())
    assert rec.pulse_count(1) == 10
    assert np.diff(rec.pulses(1)["t_s"]) == pytest.approx(np.full(9, 0.2))


def test_pulses_during_electrode_off_deliver_nothing() -> None:
    async def main() -> Recorder:
        device = SimulatedStimulator()
        device.set_outputs([ChannelSetpoint(20.0, 10.0, 200.0)] + [ZERO] * 3, 1.0)
        await asyncio.sleep(0.35)
        device.electrode_off(1)
        await asyncio.sleep(0.3)
        device.electrode_on(1)
        await asyncio.sleep(0.35)
        device.stop()
        return Recorder(device)

    rec = VirtualClock().run(main())
    t = rec.pulses(1)["t_s"]
    # 10 Hz for 1 s = pulses at 0.0 … 0.9; those at 0.4, 0.5, 0.6 fell on an open circuit.
    assert t == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.7, 0.8, 0.9])


def test_net_dc_comes_from_both_phases_and_catches_an_asymmetric_device() -> None:
    async def session(spec: DeviceSpec) -> Recorder:
        device = SimulatedStimulator(spec)
        await constant(device, ChannelSetpoint(20.0, 100.0, 200.0), 2.0)
        return Recorder(device)

    symmetric = VirtualClock().run(session(DeviceSpec()))
    lopsided = VirtualClock().run(session(DeviceSpec(phase2_amplitude_ratio=0.9)))
    assert symmetric.net_dc_ua(1) == pytest.approx(0.0, abs=1e-9)
    # 200 pulses × 20 mA × 200 µs × 10 % imbalance = 80 µC over 2 s = 40 µA
    assert lopsided.net_dc_ua(1) == pytest.approx(40.0)
    q = lopsided.phase_charges_uc(1)
    assert q[0, 0] == pytest.approx(4.0) and q[0, 1] == pytest.approx(-3.6)


def test_twenty_minutes_at_100_hz_on_two_channels_is_fast() -> None:
    async def main() -> Recorder:
        device = SimulatedStimulator(DeviceSpec(channels=2))
        await constant(device, ChannelSetpoint(25.0, 100.0, 300.0), 20 * 60.0, renew_s=0.1,
                       channels=2)
        return Recorder(device)

    rec = VirtualClock().run(main())
    started = time.perf_counter()
    summary = rec.summary()
    elapsed_s = time.perf_counter() - started
    assert summary[1]["pulse_count"] + summary[2]["pulse_count"] == 240_000
    assert elapsed_s < 2.0


def test_save_npz_round_trips(tmp_path: Path) -> None:
    async def main() -> Recorder:
        device = SimulatedStimulator()
        await constant(device, ChannelSetpoint(20.0, 50.0, 250.0), 1.0)
        return Recorder(device)

    rec = VirtualClock().run(main())
    path = tmp_path / "session.npz"
    rec.save_npz(path)
    with np.load(path) as data:
        assert data["pulses_ch1"].size == 50
