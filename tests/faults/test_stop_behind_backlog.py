"""A stop never waits behind commands queued on a byte link, on the ScienceMode devices either.

The openEMSstim drops what its link still holds before its stop (tests/openems/
test_openems_backlog.py). The ScienceMode drivers write their stop at once and drop nothing:
they wait for each command's ack before the next, so at 460 800 baud their traffic stays far
inside the 20 ms of line time a link hands on ahead of the line (``AHEAD_S``) and nothing is
ever queued in the link for a stop to wait behind — even with every frame duplicated and acks
late. This checks it on the emulated cable, in virtual time.
"""

from __future__ import annotations

import pytest
from support.invariant_checks import check_run
from support.invariant_runs import Event, Sequence, run_sequence

from emsctl.drivers.links.base import AHEAD_S
from emsctl.simulator import transports


@pytest.mark.parametrize("family", ["sciencemode2", "sciencemode4"])
@pytest.mark.parametrize("program", ["steady", "twitch"])
def test_sciencemode_traffic_never_queues_in_the_link(family: str, program: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    ahead: list[float] = []
    queued: list[int] = []
    write = transports._HostEnd.write

    async def watched(self: transports._HostEnd, data: bytes) -> None:
        ahead.append(self._ahead_s())
        await write(self, data)
        queued.append(len(self._queued))

    monkeypatch.setattr(transports._HostEnd, "write", watched)
    run = run_sequence(Sequence(family, program, 0.4, 100.0, 0, (
        Event(2.0, "duplicate_frames", 1.0, duration_s=3.0),
        Event(2.5, "late_acks", 0.05, duration_s=1.0),
        Event(4.0, "stop"))))
    assert check_run(run) == []
    assert run.result.end_reason == "stopped"
    assert queued and max(queued) == 0  # nothing ever waited in the link
    assert max(ahead) < AHEAD_S / 10
