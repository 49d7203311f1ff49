"""How a session ended and what it gave, in words: the end of ``run`` and ``history SESSION``.

Everything here formats; nothing decides. "Output is off" is said only when the device
confirmed the stop; otherwise the text says what is known and what to do (unplug the device).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .words import with_id_words

__all__ = ["ChannelFigures", "amount_ma", "ending", "minutes", "site_words",
           "stop_confirmed"]

#: What a session result says when the device did not confirm its stop (session and runner).
UNCONFIRMED = "stop not confirmed"


def minutes(seconds: float) -> str:
    """``m:ss`` (minutes may exceed 59)."""
    whole, rest = divmod(round(max(0.0, seconds)), 60)
    return f"{whole}:{rest:02d}"


def site_words(site: str) -> str:
    """``calf-left`` → ``left calf``; ``thigh-front-right`` → ``right thigh front``."""
    region, _, side = site.rpartition("-")
    if side not in ("left", "right") or not region:
        return site.replace("-", " ")
    return f"{side} {region.replace('-', ' ')}"


def step_decimals(step_ma: float) -> int:
    """Decimals that show a multiple of ``step_ma`` exactly (2 mA → 0, 0.1 mA → 1)."""
    if step_ma <= 0:
        return 1
    for decimals in range(4):
        if abs(round(step_ma, decimals) - step_ma) < 1e-9:
            return decimals
    return 3


def amount_ma(value_ma: float, step_ma: float = 0.1) -> str:
    """A current as the device can set it: ``12 mA`` on a 2 mA step, ``13.2 mA`` on 0.1 mA."""
    return f"{value_ma:.{step_decimals(step_ma)}f} mA"


def stop_confirmed(message: str, events: Sequence[str]) -> bool:
    """Whether the device confirmed the stop (no "stop not confirmed" in the result)."""
    return UNCONFIRMED not in message and not any(e.startswith(UNCONFIRMED) for e in events)


def ending(end_reason: str, message: str, confirmed: bool) -> list[str]:
    """The first lines of a final screen: how it ended, and whether the output is off.

    Never a signal name: a Ctrl-C is the user's stop, a closed terminal or a quit request is
    said as such.
    """
    if not confirmed:
        before, _, detail = message.partition(UNCONFIRMED)
        before = before.strip().rstrip(";").strip()
        detail = detail.lstrip(": ").strip()
        lines = [f"The session ended early: {_sentence(before)}"] if before else []
        lines.append("The stop was sent, but the device did not confirm that its output is off"
                     + (f" ({with_id_words(detail)})." if detail else "."))
        lines.append("It may still be giving current: unplug the device or switch it off now, "
                     "then take the pads off.")
        return lines
    off = "Output is off: you can take the pads off now."
    if end_reason == "completed":
        return ["Finished. " + off]
    if end_reason in ("stopped", "signal"):
        why = _signal_words(message)
        return [f"Stopped{why}. " + off]
    if end_reason == "guard":
        return [f"Stopped by a safety check: {_sentence(message)}", off]
    return [f"The session ended early: {_sentence(message)}", off]


def _signal_words(message: str) -> str:
    text = message.lower()
    if "terminal" in text or "sighup" in text:
        return " (the terminal was closed)"
    if "quit" in text or "sigterm" in text:
        return " (emsctl was asked to quit)"
    return ""


def _sentence(text: str) -> str:
    text = with_id_words(text.strip().rstrip("."))
    return f"{text}." if text else "no reason was recorded."


@dataclass(frozen=True)
class ChannelFigures:
    """What one channel got, against what the plan asked for."""

    channel: int
    site: str
    #: highest current given (delivered on the simulator, commanded on a real device)
    peak_ma: float
    #: highest current the plan asked for by the time the session ended (at 100 % intensity)
    planned_ma: float
    step_ma: float
    rms_ma: float | None = None
    charge_uc: float | None = None


def peak_words(figures: Sequence[ChannelFigures], model: str, intensity_pct: float,
               reached_end: bool) -> list[str]:
    """The highest current per channel, rounded to the device's step ("12 mA on each calf"),
    then why it differs from the plan's figure when it does (intensity, the device's step, an
    early end)."""
    if not figures:
        return []
    first = figures[0]
    same = all(math.isclose(f.peak_ma, first.peak_ma, abs_tol=1e-6)
               and math.isclose(f.planned_ma, first.planned_ma, abs_tol=1e-6)
               and f.step_ma == first.step_ma for f in figures)
    if same and len(figures) > 1 and _same_region(figures):
        region = first.site.rpartition("-")[0].replace("-", " ")
        head = f"{amount_ma(first.peak_ma, first.step_ma)} on each {region}"
    else:
        head = ", ".join(f"{site_words(f.site)} {amount_ma(f.peak_ma, f.step_ma)}"
                         for f in figures)
    reasons = []
    for fig in [first] if same else figures:
        why = _why_different(fig, model, intensity_pct, reached_end)
        if why:
            reasons.append(why if same else f"{site_words(fig.site)}: {why}")
    return [head, *reasons]


def _same_region(figures: Sequence[ChannelFigures]) -> bool:
    regions = {f.site.rpartition("-")[0] for f in figures}
    return len(regions) == 1


def _why_different(fig: ChannelFigures, model: str, intensity_pct: float,
                   reached_end: bool) -> str:
    """Why the highest current is not the plan's highest, in one sentence ("" when it is)."""
    planned = fig.planned_ma
    asked = planned * intensity_pct / 100.0
    if planned <= 0 or math.isclose(fig.peak_ma, planned, abs_tol=1e-6):
        return ""
    by = "" if reached_end else " by the time it ended"
    at = f", {asked:.1f} mA at {intensity_pct:.0f} % intensity" if intensity_pct < 99.5 else ""
    plan = f"The plan asked for up to {planned:.1f} mA{by}{at}"
    step = fig.step_ma
    stepped = math.floor(asked / step + 1e-9) * step if step > 0 else asked
    if step > 0.1 + 1e-9 and stepped < asked - 1e-6 and math.isclose(fig.peak_ma, stepped,
                                                                       abs_tol=1e-6):
        return (f"{plan}; the {model} sets current in {step:g} mA steps, so {asked:.1f} mA "
                f"became {amount_ma(stepped, step)}.")
    if asked - fig.peak_ma <= max(step, 0.02 * asked, 0.05):
        # within a step of what was asked: only the intensity needs saying
        return f"{plan}." if at else ""
    return f"{plan}; the limits on how fast current may rise held it lower."
