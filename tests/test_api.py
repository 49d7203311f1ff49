"""emsctl.run and emsctl.open_device: what they run, return, refuse, write and guard."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import emsctl
from emsctl import session as session_module
from emsctl.devices import open_device as raw_open_device
from emsctl.journal import NullJournal, read_journal
from emsctl.limits import DEFAULTS, tighten
from emsctl.runner import execute, prepare_run

ROOT = Path(__file__).resolve().parents[1]
OFF = emsctl.ChannelSetpoint(0.0, 0.0, 0.0)


def _journals() -> Path:
    return Path(os.environ["EMSCTL_STATE_DIR"]) / "journals"


# ---------------------------------------------------------------------- run: results


def test_run_matches_what_the_runner_reports_per_device_channel() -> None:
    r = emsctl.run("circulation")
    assert (r.end_reason, r.exit_code, r.completed) == ("completed", 0, True)
    assert r.stimulation_s == pytest.approx(1200.0)
    assert r.program == "circulation" and r.device == "sim"
    prepared = prepare_run(emsctl.load_program("circulation"), "sim", DEFAULTS)
    delivered = execute(prepared, emsctl.VirtualClock(), journal=NullJournal(),
                        handle_signals=False).delivered["channels"]
    for channel in r.channels:
        figures = delivered[str(channel.device_channel)]
        assert channel.peak_ma == figures["peak_ma"] > 0
        assert channel.rms_ma == figures["rms_ma"] > 0
        assert channel.max_phase_charge_uc == figures["max_phase_charge_uc"] > 0
        assert channel.pulse_count == int(figures["pulse_count"]) > 0


def test_one_channel_result_per_program_channel_on_an_eight_channel_device() -> None:
    r = emsctl.run("relaxation", "sim+sciencemode2")
    assert r.device_model.startswith("Hasomed RehaStim2")
    assert [(c.id, c.site, c.device_channel) for c in r.channels] == [
        (1, "calf-left", 1), (2, "calf-right", 2)]
    assert all(len(c.setpoints) == 8 for c in r.commands)
    assert r.channel(2) is r.channels[1]
    with pytest.raises(KeyError):
        r.channel(3)


@pytest.mark.parametrize(("program", "device"), [("tens", "sim"),
                                                 ("relaxation", "sim+sciencemode2")])
def test_pulses_and_commands_share_the_session_time_base(program: str, device: str) -> None:
    # sim+sciencemode2's handshake takes time before the session starts: the session's clock
    # is not the loop's
    r = emsctl.run(program, device)
    times = [c.t_s for c in r.commands]
    assert times == sorted(times) and times[0] == 0.0
    for channel in r.channels:
        p = channel.pulses
        assert p.dtype == emsctl.PULSE_DTYPE and p.size == channel.pulse_count > 0
        assert not p.flags.writeable
        assert np.all(np.diff(p["t_s"]) >= 0)
        assert float(p["amplitude_ma"].max()) == channel.peak_ma
        on = [c for c in r.commands if c.setpoint(channel.device_channel).amplitude_ma > 0]
        # the first pulse comes with the first command that asks for output, not before it
        assert on[0].t_s <= p["t_s"][0] < on[0].t_s + 0.05
        # and none after the last command's lease
        assert p["t_s"][-1] <= r.commands[-1].t_s + r.commands[-1].lease_s
        commanded = max(c.setpoint(channel.device_channel).amplitude_ma for c in r.commands)
        assert commanded == pytest.approx(channel.peak_ma)
    with pytest.raises(IndexError):
        r.commands[0].setpoint(len(r.commands[0].setpoints) + 1)


def test_pulse_times_count_from_the_session_start_not_the_connect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from emsctl.simulator.drivers.sim import SimDriver

    handshake = SimDriver._connect_internal

    async def slow_handshake(self: SimDriver) -> None:
        await asyncio.sleep(5.0)  # a slow device: the session starts 5 s into the loop
        await handshake(self)

    monkeypatch.setattr(SimDriver, "_connect_internal", slow_handshake)
    r = emsctl.run("tens")
    channel = r.channel(1)
    first_on = next(c for c in r.commands if c.setpoint(channel.device_channel).amplitude_ma > 0)
    assert first_on.t_s < 1.0
    assert channel.pulses["t_s"][0] == pytest.approx(first_on.t_s, abs=0.01)


def test_intensity_scales_the_delivered_current() -> None:
    full = emsctl.run("tens")
    half = emsctl.run("tens", intensity_pct=50)
    for a, b in zip(full.channels, half.channels, strict=True):
        assert b.peak_ma == pytest.approx(a.peak_ma / 2, abs=0.1)  # one device step
    assert {c.intensity_pct for c in half.commands} == {50.0}


def test_the_result_is_frozen() -> None:
    r = emsctl.run("tens")
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.end_reason = "stopped"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.channels[0].peak_ma = 0.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        r.channels[0].pulses["amplitude_ma"][0] = 99.0


# ---------------------------------------------------------------------- run: programs


@pytest.mark.parametrize("form", ["name", "str path", "Path", "Program", "LoadedProgram"])
def test_every_form_of_program_runs(form: str) -> None:
    path = ROOT / "programs" / "tens.toml"
    program: Any = {
        "name": "tens", "str path": str(path), "Path": path,
        "Program": emsctl.load_program("tens").program,
        "LoadedProgram": emsctl.load_program(str(path)),
    }[form]
    r = emsctl.run(program)
    assert r.completed and r.program == "tens" and len(r.channels) == 2


def test_a_program_object_is_validated_again() -> None:
    good = emsctl.load_program("tens").program
    broken = good.model_construct(**{**dict(good), "soft_start_s": -1.0})
    with pytest.raises(emsctl.ProgramError, match="soft_start_s"):
        emsctl.run(broken)


def test_a_bare_name_is_a_built_in_and_a_path_object_never_is(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tens").write_text("not a program")
    assert emsctl.run("tens").completed  # the built-in, not the stray file
    with pytest.raises(emsctl.ProgramError):
        emsctl.run(Path("tens"))  # the file


@pytest.mark.parametrize("program", [42, None, b"tens"])
def test_other_program_types_are_refused(program: Any) -> None:
    with pytest.raises(emsctl.InputError, match="program must be"):
        emsctl.run(program)


def test_an_expert_program_is_refused_with_the_command_to_use() -> None:
    with pytest.raises(emsctl.InputError, match="emsctl run cramp-training --expert"):
        emsctl.run("cramp-training")


def test_a_plan_beyond_the_device_is_refused() -> None:
    with pytest.raises(emsctl.ValidationFailed, match="80 Hz"):
        emsctl.run("tens", "sim+sciencemode2")


# ---------------------------------------------------------------------- run: devices, speed


@pytest.mark.parametrize("url", ["sciencemode2:///dev/ttyUSB0",
                                 "openems:///dev/ttyUSB0?ma_at_100=40&frequency_hz=80"
                                 "&pulse_width_us=180"])
def test_a_real_device_is_refused_in_one_sentence(url: str) -> None:
    with pytest.raises(emsctl.InputError) as caught:
        emsctl.run("tens", url)
    message = str(caught.value)
    assert "simulated devices only" in message and f"emsctl run PROGRAM -d {url}" in message
    assert message.count(". ") == 0 and "\n" not in message
    assert not _journals().exists()


def test_an_unknown_device_is_an_input_error() -> None:
    with pytest.raises(emsctl.InputError, match="unknown device"):
        emsctl.run("tens", "nosuch://x")


@pytest.mark.parametrize("speed", [0, -1, math.nan, math.inf, 2e6, True, "fast", None, "60"])
def test_bad_speeds_are_refused(speed: Any) -> None:
    with pytest.raises(emsctl.InputError, match="speed"):
        emsctl.run("tens", speed=speed)


@pytest.mark.parametrize("pct", [-1, 100.5, math.nan, True, "50"])
def test_bad_intensities_are_refused(pct: Any) -> None:
    with pytest.raises(emsctl.InputError, match="intensity_pct"):
        emsctl.run("tens", intensity_pct=pct)


def test_a_number_paces_virtual_time() -> None:
    started = time.monotonic()
    r = emsctl.run("tens", speed=10_000)  # 1800 s at 10 000×: at least 0.18 s of real time
    assert r.completed
    assert time.monotonic() - started >= 0.17


# ---------------------------------------------------------------------- run: journal


def test_no_journal_is_written_unless_a_folder_is_given() -> None:
    r = emsctl.run("tens")
    assert r.journal_path is None
    assert not _journals().exists()


def test_a_journal_folder_gets_the_session_journal(tmp_path: Path) -> None:
    folder = tmp_path / "journals here"
    r = emsctl.run("tens", journal=folder)
    assert r.journal_path is not None and r.journal_path.parent == folder
    record = read_journal(r.journal_path)
    assert record.header["program"] == "tens" and record.header["simulated"] is True
    assert record.footer is not None and record.footer["end_reason"] == "completed"
    assert record.footer["commands_sent"] == len(r.commands)
    assert not _journals().exists()  # only there


def test_a_journal_file_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(emsctl.InputError, match="folder"):
        emsctl.run("tens", journal=tmp_path / "session.jsonl")
    existing = tmp_path / "file"
    existing.write_text("")
    with pytest.raises(emsctl.InputError, match="folder"):
        emsctl.run("tens", journal=existing)


# ---------------------------------------------------------------------- run: threads, signals


def test_run_works_off_the_main_thread() -> None:
    results: list[object] = []
    worker = threading.Thread(target=lambda: results.append(emsctl.run("massage")))
    worker.start()
    worker.join(60)
    assert len(results) == 1
    assert isinstance(results[0], emsctl.RunResult) and results[0].completed


def test_run_installs_no_signal_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    watched = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = {sig: signal.getsignal(sig) for sig in watched}
    during: list[dict[signal.Signals, object]] = []
    wakeup: list[int] = []
    original: Callable[[Any], Coroutine[Any, Any, Any]] = session_module.Session.run

    async def spying_run(self: Any) -> Any:
        during.append({sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)})
        wakeup.append(signal.set_wakeup_fd(-1))  # read it back …
        signal.set_wakeup_fd(wakeup[-1])  # … and leave it as it was
        return await original(self)

    monkeypatch.setattr(session_module.Session, "run", spying_run)
    assert emsctl.run("tens").completed
    # asyncio's runner handles Ctrl-C as asyncio.run does; nothing else is touched
    assert during == [{signal.SIGTERM: before[signal.SIGTERM],
                       signal.SIGHUP: before[signal.SIGHUP]}]
    assert {sig: signal.getsignal(sig) for sig in watched} == before


def test_ctrl_c_on_the_main_thread_stops_the_device_then_raises_keyboard_interrupt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[Any] = []
    original = session_module.Session.run

    async def interrupted_run(self: Any) -> Any:
        seen.append(self.driver)
        # 200 s into the session, with output on: a Ctrl-C
        asyncio.get_running_loop().call_later(200.0, os.kill, os.getpid(), signal.SIGINT)
        return await original(self)

    monkeypatch.setattr(session_module.Session, "run", interrupted_run)
    with pytest.raises(KeyboardInterrupt):
        emsctl.run("tens")
    [driver] = seen
    assert driver.stopped
    for channel in (1, 2):
        assert driver.recorder.zero_after_s(channel, 199.0) == pytest.approx(200.0, abs=1e-6)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# ---------------------------------------------------------------------- open_device


def _virtual(coro: Coroutine[Any, Any, Any]) -> Any:
    return emsctl.VirtualClock().run(coro)


def test_open_device_is_guarded_by_the_limits_and_allows_a_soft_start() -> None:
    async def main() -> tuple[float, float]:
        async with emsctl.open_device("sim+sciencemode2", electrode_area_cm2=25) as dev:
            caps = dev.capabilities
            level = 0.0
            for _ in range(30):
                level = min(level + caps.amplitude_step_ma, 12.0)
                await dev.apply([emsctl.ChannelSetpoint(level, 50.0, 250.0)]
                                + [OFF] * (caps.channels - 1), 0.5)
                await asyncio.sleep(caps.update_period_s)
            return dev.recorder.delivered_now_ma(1), dev.recorder.summary()[1]["peak_ma"]

    assert _virtual(main()) == (12.0, 12.0)


def test_a_jump_is_refused_stops_the_driver_and_sends_nothing() -> None:
    async def main() -> tuple[bool, float, int]:
        async with emsctl.open_device("sim") as dev:
            # 3 mA at once is within the driver contract's own slew ceiling (80 mA/s over one
            # update period), so it is the limits' guard that refuses it
            with pytest.raises(emsctl.SafetyViolation, match="L16/L17"):
                await dev.apply([emsctl.ChannelSetpoint(3.0, 50.0, 250.0)] + [OFF] * 3, 0.5)
            with pytest.raises(emsctl.DriverStoppedError):
                await dev.apply([emsctl.ChannelSetpoint(0.1, 50.0, 250.0)] + [OFF] * 3, 0.5)
            return dev.stopped, dev.recorder.delivered_now_ma(1), dev.recorder.pulse_count(1)  # type: ignore[attr-defined]

    assert _virtual(main()) == (True, 0.0, 0)


def test_the_peak_limit_holds_at_driver_level() -> None:
    limits = dataclasses.replace(DEFAULTS, peak_ma=5.0)

    async def main() -> float:
        async with emsctl.open_device("sim", limits=limits, electrode_area_cm2=25) as dev:
            level = 0.0
            with pytest.raises(emsctl.SafetyViolation, match="L3"):
                while True:
                    await asyncio.sleep(0.1)
                    level = round(level + 0.5, 1)
                    await dev.apply([emsctl.ChannelSetpoint(level, 50.0, 250.0)] + [OFF] * 3,
                                    0.5)
            return level

    assert _virtual(main()) == pytest.approx(5.5)


def test_the_density_limit_uses_the_stated_pad_area() -> None:
    async def ramp(area: float) -> tuple[float, str]:
        async with emsctl.open_device("sim", electrode_area_cm2=area) as dev:
            level = 0.0
            try:
                while level < 80:
                    await asyncio.sleep(0.1)
                    level = round(level + 1.0, 1)
                    await dev.apply([emsctl.ChannelSetpoint(level, 100.0, 300.0)] + [OFF] * 3,
                                    0.5)
            except emsctl.SafetyViolation as exc:
                return level, str(exc)
            return math.inf, ""

    small_ma, small = _virtual(ramp(4.0))
    large_ma, large = _virtual(ramp(50.0))
    assert "L9" in small and "L3" in large  # density on small pads, the peak on large ones
    assert small_ma < large_ma == DEFAULTS.peak_ma + 1


def test_after_a_lease_ran_out_the_output_soft_starts_again() -> None:
    async def main() -> None:
        async with emsctl.open_device("sim", electrode_area_cm2=25) as dev:
            level = 0.0
            for _ in range(20):
                await asyncio.sleep(0.1)
                level = min(level + 1.0, 8.0)
                await dev.apply([emsctl.ChannelSetpoint(level, 50.0, 250.0)] + [OFF] * 3, 0.5)
            await asyncio.sleep(0.6)  # the lease ran out: the device's watchdog zeroed it
            assert dev.recorder.delivered_now_ma(1) == 0.0
            with pytest.raises(emsctl.SafetyViolation, match=r"rose 8\.00 mA"):
                await dev.apply([emsctl.ChannelSetpoint(8.0, 50.0, 250.0)] + [OFF] * 3, 0.5)

    _virtual(main())


def test_a_new_connect_starts_a_new_guard() -> None:
    async def main() -> float:
        dev = emsctl.open_device("sim")
        async with dev:
            with pytest.raises(emsctl.SafetyViolation):
                await dev.apply([emsctl.ChannelSetpoint(3.0, 50.0, 250.0)] + [OFF] * 3, 0.5)
        dev = emsctl.open_device("sim")  # a closed driver cannot be reconnected: a new one
        async with dev:
            await dev.apply([emsctl.ChannelSetpoint(0.1, 50.0, 250.0)] + [OFF] * 3, 0.5)
            await asyncio.sleep(0.05)
            return dev.recorder.delivered_now_ma(1)

    assert _virtual(main()) == pytest.approx(0.1)


def test_the_device_table_drivers_of_sessions_have_no_guard_of_their_own() -> None:
    async def main() -> float:
        async with raw_open_device("sim") as dev:
            # a session's own guard checks its commands; the bare table driver checks only
            # the device's capabilities and the contract's ceilings (3 mA at once is within
            # its slew ceiling, not within the limits' soft start)
            await dev.apply([emsctl.ChannelSetpoint(3.0, 50.0, 250.0)] + [OFF] * 3, 0.5)
            await asyncio.sleep(0.05)
            return dev.recorder.delivered_now_ma(1)

    assert _virtual(main()) == 3.0


@pytest.mark.parametrize("area", [3.9, 401.0, math.nan])
def test_a_bad_pad_area_is_refused(area: float) -> None:
    with pytest.raises(emsctl.InputError, match="electrode_area_cm2"):
        emsctl.open_device("sim", electrode_area_cm2=area)


def test_a_real_device_has_no_recorder() -> None:
    dev = emsctl.open_device("sciencemode2:///dev/ttyUSB0")  # made, never connected
    assert not dev.has_recorder
    with pytest.raises(emsctl.NoRecorderError, match="records nothing"):
        dev.recorder  # noqa: B018 - the access is what is tested
    assert getattr(dev, "recorder", None) is None  # it is an AttributeError too
    assert emsctl.open_device("sim").has_recorder


# ---------------------------------------------------------------------- execute's journal


def test_execute_refuses_a_null_journal_for_a_real_device() -> None:
    simulated = prepare_run(emsctl.load_program("tens"), "sim", DEFAULTS)
    real = dataclasses.replace(simulated, driver=raw_open_device("sciencemode2:///dev/ttyUSB0"))
    with pytest.raises(emsctl.InputError, match="always recorded in a journal file"):
        execute(real, emsctl.VirtualClock(), journal=NullJournal(), handle_signals=False)


def test_execute_takes_a_journal_or_a_folder_not_both(tmp_path: Path) -> None:
    prepared = prepare_run(emsctl.load_program("tens"), "sim", DEFAULTS)
    with pytest.raises(emsctl.InputError, match="not both"):
        execute(prepared, emsctl.VirtualClock(), journal=NullJournal(), journal_dir=tmp_path,
                handle_signals=False)
    assert list(tmp_path.iterdir()) == []


def test_open_device_checks_each_command_at_the_rate_the_device_makes() -> None:
    # the P24 makes 95 Hz as 95.2 Hz and 97.6 Hz (10.25 ms) as 100 Hz: over a 99 Hz ceiling
    limits = tighten(DEFAULTS, frequency_max_hz=99.0)

    async def main() -> None:
        async with emsctl.open_device("sim+sciencemode4", limits=limits) as dev:
            await dev.apply([emsctl.ChannelSetpoint(0.5, 95.0, 180.0)] + [OFF] * 7, 0.5)
            with pytest.raises(emsctl.SafetyViolation, match=r"97\.6 Hz is made as 100 Hz"):
                await dev.apply([emsctl.ChannelSetpoint(0.5, 97.6, 180.0)] + [OFF] * 7, 0.5)

    _virtual(main())
