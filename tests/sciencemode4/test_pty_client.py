"""The emulated P24 on a pty, driven by a third-party client: the ``science-mode-4`` package.

``emsctl simulate sciencemode4 --pty --trace FILE`` runs in its own process; this test talks to
it with the pure-Python client from PyPI (``science_mode_4.DeviceP24`` over its
``SerialPortConnection``), unchanged: general init (stim status, device id, extended version),
mid-level init, updates, current-data polls, idle until the device's own 2 s timeout, a new
update after it, stop, and the "not initialised" refusal after the stop. What the device did is
read from the emulator's own log and trace (its monotonic clock), never from how long the test
took.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pty_lines import lines_until

pytestmark = pytest.mark.realtime

sm4 = pytest.importorskip("science_mode_4")

EMSCTL = str(Path(sys.executable).with_name("emsctl"))
TRACE = re.compile(r"^(?P<t>[0-9.]+) .*host→device.*\| (?P<what>\w+)")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    trace = tmp_path / "trace.txt"
    proc = subprocess.Popen([EMSCTL, "simulate", "sciencemode4", "--pty", "--trace", str(trace)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    path = proc.stdout.readline().strip()
    assert path.startswith("/dev/"), path + (proc.stderr.read() if proc.poll() else "")
    try:
        lines_until(proc, "powered on", 5.0)
        yield proc, path, trace
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


def _channel(current_ma: float, period_ms: int) -> object:
    return sm4.MidLevelChannelConfiguration(True, 0, period_ms, [
        sm4.ChannelPoint(200, current_ma), sm4.ChannelPoint(200, -current_ma)])


def _keepalives(trace: Path) -> list[float]:
    """Emulator times of every Ml_update and Ml_get_current_data it read."""
    times = []
    for line in trace.read_text(encoding="utf-8").splitlines():
        match = TRACE.match(line)
        if match and match["what"] in ("MlUpdate", "MlGetCurrentData"):
            times.append(float(match["t"]))
    return times


def test_the_science_mode_4_client_drives_the_emulated_p24(
        served: tuple[subprocess.Popen[str], str, Path]) -> None:
    proc, path, trace = served
    connection = sm4.SerialPortConnection(path)
    connection.open()
    device = sm4.DeviceP24(connection)
    general = device.get_layer_general()
    mid = device.get_layer_mid_level()

    async def session() -> None:
        # general init: stim status (nothing to stop), device id, extended version
        await device.initialize()
        assert general.device_id == "P24EMU0001"
        version = await general.get_version()
        assert (version.firmware_version, version.science_mode_version) == ("1.0.0", "4.0.0")
        status = await general.get_stim_status()
        assert status.stim_status == sm4.StimStatus.NO_LEVEL_INITIALIZED
        assert not status.high_voltage_on
        # mid level: init (high voltage on), update, polls
        await mid.init(True)
        status = await general.get_stim_status()
        assert status.stim_status == sm4.StimStatus.MID_LEVEL_INITIALIZED
        assert status.high_voltage_on
        await mid.update([_channel(20.0, 25)])
        lines_until(proc, "output ch1 20 mA 200 µs 40.00 Hz", 5.0)
        for _ in range(3):
            data = await mid.get_current_data()
            assert data.result_error == sm4.ResultAndError.NO_ERROR
            assert data.is_stimulation_active_per_channel == [True] + [False] * 7
            assert data.channel_error == [sm4.ResultAndError.NO_ERROR] * 8
            await asyncio.sleep(0.1)
        assert (await general.get_stim_status()).stim_status == \
            sm4.StimStatus.MID_LEVEL_RUNNING
        # a second channel with its own period
        await mid.update([_channel(10.0, 25), _channel(12.5, 10)])
        lines_until(proc, "ch2 12.5 mA 200 µs 100.00 Hz", 5.0)
        data = await mid.get_current_data()
        assert data.is_stimulation_active_per_channel == [True, True] + [False] * 6
        # idle: nothing renews the device's fixed 2 s timeout, so it stops the output itself
        seen = lines_until(proc, "mid-level timeout", 10.0)
        timeout_s = seen[-1][0]
        assert timeout_s - max(_keepalives(trace)) >= 2.0 - 1e-6
        # the emulator's 1 ms output watcher may print "output zero" just before or just after
        # the timeout line: look back to the last output line first, then read on if needed
        last_on = max(i for i, (_, text) in enumerate(seen) if text.startswith("output ch"))
        if not any(text == "output zero" for _, text in seen[last_on:]):
            assert "output zero" in [text for _, text in lines_until(proc, "output zero", 5.0)]
        status = await general.get_stim_status()
        assert status.stim_status == sm4.StimStatus.MID_LEVEL_INITIALIZED
        data = await mid.get_current_data()
        assert data.is_stimulation_active_per_channel == [False] * 8
        # after a timeout an update starts the output again
        await mid.update([_channel(15.0, 50)])
        lines_until(proc, "output ch1 15 mA 200 µs 20.00 Hz", 5.0)
        # stop: output zero, no level, high voltage off
        await mid.stop()
        lines_until(proc, "output zero", 5.0)
        status = await general.get_stim_status()
        assert status.stim_status == sm4.StimStatus.NO_LEVEL_INITIALIZED
        assert not status.high_voltage_on
        # after the stop the device refuses mid-level commands: not initialised (7)
        with pytest.raises(sm4.ProtocolError, match="NOT_INITIALIZED"):
            await mid.update([_channel(20.0, 25)])
        with pytest.raises(sm4.ProtocolError, match="NOT_INITIALIZED"):
            await mid.get_current_data()

    try:
        asyncio.run(session())
    finally:
        connection.close()
    assert _output_lines_after_the_stop(proc) == []


def _output_lines_after_the_stop(proc: subprocess.Popen[str]) -> list[str]:
    """The emulator's lines after the stop's "output zero", up to its exit: the refused
    commands must have started no output."""
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=5)
    return [line for line in out.splitlines() if "output ch" in line]
