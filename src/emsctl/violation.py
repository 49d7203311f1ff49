"""One broken limit, as verification reports it (its own module, so that the reports that
format violations and the verifier that finds them do not import each other)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .plan import PhaseSpan

__all__ = ["Violation"]


@dataclass(frozen=True)
class Violation:
    """One broken limit. ``severity`` "warn" does not fail validation (e.g. L9 ≥ 1 mA/cm²).

    ``limit_id`` is "L1"…"L24", or "device" for what the device cannot do. ``phase`` is the
    phase the violation is in (None for whole-session and per-channel limits such as L19 and
    L13). ``setting`` names what was broken: a :class:`~emsctl.limits.Limits` field (e.g.
    ``"pulse_width_max_us"``) or, for "device", a ``Capabilities`` field (e.g. ``"bursts"``);
    None for rules with no setting (L14, L17: never step up).
    """

    limit_id: str
    channel: int | None
    t_s: float
    value: float
    allowed: float
    message: str
    severity: Literal["block", "warn"] = "block"
    phase: PhaseSpan | None = None
    setting: str | None = None

    def __str__(self) -> str:
        where = f"channel {self.channel}, " if self.channel is not None else ""
        return f"{self.limit_id}: {where}t={self.t_s:.1f} s: {self.message}"
