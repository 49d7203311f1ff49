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
