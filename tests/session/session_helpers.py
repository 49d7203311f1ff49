"""Shared helpers for the session tests: run a built-in program end to end on the simulator.

Async code runs on a :class:`~emsctl.clock.VirtualClock` (or the runner's ``execute``); there is
no pytest-asyncio. Every helper here builds a fresh driver, so tests never share device state.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from emsctl.clock import VirtualClock
from emsctl.devices import OpenOptions
from emsctl.limits import DEFAULTS, Limits
from emsctl.loader import load_program
from emsctl.runner import Prepared, RunOutcome, execute, prepare_run
from emsctl.session import Session, SessionState
from emsctl.simulator.faults import Fault, FaultPlan

ROOT = Path(__file__).resolve().parents[2]
EMSCTL = Path(sys.executable).with_name("emsctl")


def prepared(name: str = "relaxation", *faults: Fault, url: str = "sim",
             limits: Limits = DEFAULTS) -> Prepared:
    """A checked program on a fresh simulator (expert programs allowed), faults armed on connect."""
    options = OpenOptions(fault_plan=FaultPlan(faults) if faults else None)
    return prepare_run(load_program(name), url, limits, options=options, expert=True)


@dataclass
class Run:
    """What one in-process run left behind."""

    outcome: RunOutcome
    session: Session
    states: list[SessionState] = field(default_factory=list)
    #: device outputs read on the loop when the session reported "stopped" (its last on_tick)
    outputs_at_stop: tuple[object, ...] = ()


def run_virtual(prep: Prepared, tmp_path: Path, *,
                at: list[tuple[float, Callable[[Session], object]]] = (),  # type: ignore[assignment]
                intensity_pct: float = 100.0, keep_states: bool = False,
                on_tick: Callable[[Session, SessionState], None] | None = None) -> Run:
    """Run ``prep`` in virtual time (as fast as possible) with a journal under ``tmp_path``.

    ``at`` holds (session seconds, action(session)) pairs scheduled on the loop once the session
    exists: a stand-in for keys pressed at those times.
    """
    box: dict[str, object] = {}
    states: list[SessionState] = []

    def start(session: Session) -> None:
        box["session"] = session
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for t_s, action in at:
            loop.call_at(t0 + t_s, action, session)

    def tick(state: SessionState) -> None:
        session = box["session"]
        assert isinstance(session, Session)
        if keep_states:
            states.append(SessionState(**vars(state)))
        if on_tick is not None:
            on_tick(session, state)
        if state.status == "stopped":
            box["outputs"] = prep.driver.device.output_now()  # type: ignore[attr-defined]

    outcome = execute(prep, VirtualClock(None), intensity_pct=intensity_pct,
                      journal_dir=tmp_path / "journals", on_start=start, on_tick=tick,
                      handle_signals=False)
    session = box["session"]
    assert isinstance(session, Session)
    return Run(outcome, session, states, box.get("outputs", ()))  # type: ignore[arg-type]


def all_zero(outputs: tuple[object, ...]) -> bool:
    """Every channel output (ChannelOutput) at 0 mA set and delivered."""
    return bool(outputs) and all(o.amplitude_ma == 0 and o.delivered_ma == 0  # type: ignore[attr-defined]
                                 for o in outputs)


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "state"
    folder.mkdir()
    yield folder


def emsctl_env(state_dir: Path) -> dict[str, str]:
    """Environment for a real ``emsctl`` subprocess: private state dir, no colour, no debug."""
    env = dict(os.environ)
    env.update(EMSCTL_STATE_DIR=str(state_dir), NO_COLOR="1", PYTHONUNBUFFERED="1")
    env.pop("EMSCTL_DEBUG", None)
    env.pop("EMSCTL_DEVICE", None)
    return env


def have_tmux() -> bool:
    return shutil.which("tmux") is not None
