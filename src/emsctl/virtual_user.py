"""A scripted person for calibrating on the simulator: reacts to the current that is delivered.

``VirtualUser(st_ma, mt_ma, tol_ma)`` watches the simulated device's *delivered* current on the
calibrated channel (what the body model lets through, not what was asked for) and answers like a
person: "I feel it" at ST, "I see a twitch" at MT, "too much" at TOL, after ``reaction_s``.
Tests and ``emsctl calibrate --device sim --virtual-user ST,MT,TOL`` use it, so demos and CI run
unattended. It works only with drivers that expose a simulated ``device``; it never stimulates.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from .calibration import Calibration, Response
from .errors import InputError

__all__ = ["VirtualUser", "parse_virtual_user"]


@dataclass(frozen=True)
class VirtualUser:
    """A person whose thresholds are known in advance (mA); answers after ``reaction_s``."""

    st_ma: float
    mt_ma: float
    tol_ma: float
    reaction_s: float = 0.0
    poll_s: float = 0.05

    def __post_init__(self) -> None:
        values = (self.st_ma, self.mt_ma, self.tol_ma)
        if not all(math.isfinite(v) and v > 0 for v in values) or not (
                self.st_ma <= self.mt_ma <= self.tol_ma):
            raise InputError("a virtual user needs 0 < ST ≤ MT ≤ TOL in mA, e.g. 5,10,20")

    async def watch(self, calibration: Calibration) -> None:
        """Answer ``calibration`` until it finishes, from the simulator's delivered current.

        Raises:
            InputError: the calibration's driver is not a simulated device.
        """
        driver = calibration.driver
        if not driver.has_recorder or not driver.simulated:
            raise InputError("a virtual user needs the simulator (--device sim)")
        recorder = driver.recorder
        channel = calibration.settings.channel
        said: set[Response] = set()
        while not calibration.finished:
            delivered_ma = recorder.delivered_now_ma(channel)
            answers: tuple[tuple[Response, float], ...] = (
                ("feel", self.st_ma), ("twitch", self.mt_ma), ("too_much", self.tol_ma))
            for response, threshold in answers:
                if response not in said and delivered_ma >= threshold - 1e-9:
                    said.add(response)
                    if self.reaction_s > 0:
                        await asyncio.sleep(self.reaction_s)
                    calibration.press(response)
            await asyncio.sleep(self.poll_s)


def parse_virtual_user(text: str) -> VirtualUser:
    """``"ST,MT,TOL"`` in mA, e.g. ``"5,10,20"``.

    Raises:
        InputError: not three numbers with 0 < ST ≤ MT ≤ TOL.
    """
    parts = [p.strip() for p in text.split(",")]
    try:
        st_ma, mt_ma, tol_ma = (float(p) for p in parts)
    except ValueError:
        raise InputError(f"--virtual-user takes ST,MT,TOL in mA (e.g. 5,10,20), not '{text}'"
                         ) from None
    return VirtualUser(st_ma, mt_ma, tol_ma)
