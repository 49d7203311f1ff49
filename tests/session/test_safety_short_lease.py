"""A lease shorter than two command periods would let the device time out between commands
(and, before, restart each time at full level): it is refused before anything is connected."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from session_helpers import EMSCTL

from emsctl.errors import InputError
from emsctl.limits import DEFAULTS, tighten
from emsctl.loader import load_program
from emsctl.runner import prepare_run


@pytest.mark.parametrize(("url", "limits"), [
    ("sim", tighten(DEFAULTS, watchdog_s=0.05, heartbeat_s=0.02)),
    ("sim?watchdog_s=0.05", DEFAULTS),
    ("sim+sciencemode2", tighten(DEFAULTS, watchdog_s=0.1, heartbeat_s=0.05)),
    ("sim+coyote3?ma_per_step=0.2", tighten(DEFAULTS, watchdog_s=0.15, heartbeat_s=0.05)),
])
def test_a_lease_shorter_than_two_command_periods_is_refused_before_connecting(
        url: str, limits: object) -> None:
    with pytest.raises(InputError, match="shorter than two of its") as info:
        prepare_run(load_program("tens"), url, limits, expert=True)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_the_cli_says_so_in_one_sentence_and_exits_2(tmp_path: Path) -> None:
    done = subprocess.run([str(EMSCTL), "run", "tens", "-d", "sim?watchdog_s=0.05", "--speed",
                           "max", "--journal-dir", str(tmp_path)], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "shorter than two of its" in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.glob("*.jsonl"))  # nothing ran, nothing was journalled


#: Two minutes of steady TENS every family in the list can make (40 Hz, 180 µs).
_STEADY = """\
name = "short-lease"
title = "Steady output under the shortest lease"
purpose = "tens"
evidence = "test"
description = "test"
placement = "test"
calibration_frequency_hz = 40
calibration_pulse_width_us = 180
soft_start_s = 5
transition_s = 5
end_ramp_s = 3

[[channels]]
id = 1
site = "lower-back-left"
electrode_area_cm2 = 16
max_amplitude_ma = 40

[[phases]]
name = "steady"
duration_s = 20
frequency_hz = 40
pulse_width_us = 180
amplitude = "MT-10%"
amplitude_cap = "MT"
"""


@pytest.mark.parametrize("lease_s", [0.2, 0.25])
@pytest.mark.parametrize("url", ["sim", "sim+sciencemode4",
                                 "sim+coyote3?ma_per_step=0.2&us_per_intensity=3"])
def test_a_short_lease_keeps_the_output_on_between_commands(
        url: str, lease_s: float, tmp_path: Path) -> None:
    # A lease of two command periods is legal, and the heartbeat is then one period: it must
    # go every tick (loop times carry float noise: "0.1 s since the last send" can come out as
    # 0.0999…), or the lease runs out just as the next command is sent — the sim session then
    # ended as a stalled host, and the P24's driver stopped the output for a moment at every
    # other tick. And the heartbeat goes at the last tick within its period, not the first
    # after it: with a 0.125 s heartbeat sent every 0.2 s, a 0.25 s lease had 50 ms left when
    # the Coyote built its next 100 ms frame, whose last slot then went silent (10.8 mA on and
    # off every 200 ms).
    from emsctl.clock import VirtualClock
    from emsctl.runner import execute

    path = tmp_path / "steady.toml"
    path.write_text(_STEADY)
    limits = tighten(DEFAULTS, watchdog_s=lease_s, heartbeat_s=lease_s / 2)
    prep = prepare_run(load_program(str(path)), url, limits)
    outcome = execute(prep, VirtualClock(None), journal_dir=tmp_path, handle_signals=False)
    assert (outcome.result.end_reason, outcome.result.exit_code) == ("completed", 0), \
        outcome.result.message
    device = prep.driver.device  # type: ignore[attr-defined]
    rows = device.intervals(1)
    on = [i for i, row in enumerate(rows) if row["amplitude_ma"] > 0]
    # from the first output to the end ramp's last step, the output never stops
    lapses = [(float(row["t0_s"]), float(row["t1_s"])) for row in rows[on[0]:on[-1] + 1]
              if row["amplitude_ma"] == 0]
    assert lapses == []


def test_a_send_between_ticks_does_not_push_the_next_renewal_past_half_the_lease() -> None:
    # A key press sends between two ticks ("+" at 1.462 s); then nothing changes at the next
    # tick, so nothing is sent until the heartbeat. Counted from the key press, the renewal fell
    # to the first tick after the heartbeat had passed (1.6 s): with a 0.2 s lease the Coyote
    # had by then built its frame with 62 ms of lease left, whose last slot went silent, and the
    # output came back at once 25 ms later (found by the long run of
    # tests/session/test_invariants.py). The renewal now goes at the last tick within the
    # heartbeat (1.5 s).
    from support.invariant_checks import check_run
    from support.invariant_runs import Event, Sequence, run_sequence

    run = run_sequence(Sequence("coyote3", "twitch", 0.2, 100.0, 0, (
        Event(0.0, "minus"), Event(1.462, "plus"), Event(1.8, "pause"), Event(1.8, "pause"))))
    rows = run.device.intervals(1)
    on = [i for i, row in enumerate(rows) if row["amplitude_ma"] > 0]
    before_pause = [(float(row["t0_s"]), float(row["t1_s"])) for row in rows[on[0]:on[-1] + 1]
                    if row["amplitude_ma"] == 0 and row["t0_s"] < run.start_s + 1.8]
    assert before_pause == []
    assert check_run(run) == []
