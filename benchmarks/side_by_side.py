"""What the update → ack side-by-sides of both ScienceMode generations share.

:class:`WrittenFrames` keeps what a driver writes; :func:`timed_applies` times ``apply`` of
alternating setpoints and keeps the samples that put exactly one frame on the wire (an apply
that also polled or renewed is left out and counted); :func:`side_by_side_figures` judges
emsctl against the sleeping floor and the third-party client, median and p99.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from .harness import Figure, figure, stats

__all__ = ["WrittenFrames", "side_by_side_figures", "timed_applies"]


class WrittenFrames:
    """The frames a driver writes, in order (wraps its link's write)."""

    def __init__(self, driver: object) -> None:
        link = driver.link  # type: ignore[attr-defined]
        self.written: list[bytes] = []
        write = link.write

        async def kept(data: bytes) -> None:
            self.written.append(bytes(data))
            await write(data)

        link.write = kept


async def timed_applies(driver: object, frames: WrittenFrames,
                        alternating: Sequence[object], n: int) -> tuple[list[float], int]:
    """``n`` timed applies (ms) of the setpoints in ``alternating`` in turn, each built before
    the clock starts, as the floor's frames are; and how many applies were left out because
    they wrote more or less than one frame."""
    samples: list[float] = []
    left_out = 0
    while len(samples) < n:
        before = len(frames.written)
        setpoints = alternating[len(samples) % len(alternating)]
        t0 = time.perf_counter()
        await driver.apply(setpoints, 1.0)  # type: ignore[attr-defined]
        elapsed = (time.perf_counter() - t0) * 1000
        if len(frames.written) - before == 1:
            samples.append(elapsed)
        else:
            left_out += 1
    return samples, left_out


def side_by_side_figures(ours: list[float], client: list[float], floor: list[float], *,
                         client_name: str, client_waits: str, floor_frames: str,
                         left_out: str) -> list[Figure]:
    """emsctl's median against the floor (≤ 1.5×), the client's beside it, and emsctl's p99
    against the client's (≤ 1×) and against the floor's own."""
    floor_name = f"blocking write→read of {floor_frames} on the same pty (sleeping floor)"
    return [
        figure("update → ack, emsctl driver (event loop)", ours, "ms",
               baseline=(floor_name, floor), max_ratio=1.5, note=left_out),
        figure(f"update → ack, {client_name} client ({client_waits})", client, "ms",
               baseline=(floor_name, floor)),
        figure(f"update → ack p99: emsctl over the {client_name} client", [stats(ours).p99],
               "ms", baseline=(f"{client_name} client p99", [stats(client).p99]),
               max_ratio=1.0, note="target: emsctl's p99 no worse than the client's"),
        figure("update → ack p99: emsctl over the sleeping floor", [stats(ours).p99], "ms",
               baseline=("sleeping floor p99", [stats(floor).p99]),
               note="what a wait that sleeps costs at the tail"),
    ]
