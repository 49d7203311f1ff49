"""The rates both ScienceMode devices make: a period on a 0.5 ms grid.

The RehaStim2's main interval (``docs/protocols/sciencemode2.md`` §12) and the P24's period word
(``docs/protocols/sciencemode4.md`` §14) hold a pulse period in 0.5 ms steps; the drivers round
the period asked for to the nearest step, an exact tie to the longer one. A rate whose period
rounds down is made faster than asked: 97.6 Hz (10.25 ms) is made as 100 Hz (10 ms).
:func:`grid_rate_ratio` says by how much at most, for verification (``Capabilities.rate_ratio``)
to check the limits that grow with the rate at the rates the device makes.

Pure: no I/O, no clock, no state.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["HALF_STEP_MS", "grid_rate_ratio"]

HALF_STEP_MS = 0.25
"""Half the 0.5 ms grid: periods up to this much longer than a step are rounded down to it."""


def grid_rate_ratio(low_hz: float, high_hz: float, made_hz: Callable[[float], float]) -> float:
    """The most a rate made exceeds the rate asked, as a ratio, over rates asked in
    ``low_hz``–``high_hz`` (either order, both within the device's range).

    ``made_hz`` is the driver's own rounding (its ``delivered_frequency_hz``). Exact for
    ``low_hz == high_hz``: the rate made for it over it. For a range: the periods asked that
    round to one step lie within half a step of it, so the ratio is largest for the step of the
    shortest period asked (the fastest rate's), at the longest period asked that still rounds
    to it — a bound never reached, since a period half a step longer rounds up.
    """
    low_hz, high_hz = sorted((low_hz, high_hz))
    exact = made_hz(high_hz) / high_hz
    if low_hz == high_hz:
        return exact
    step_ms = 1000.0 / made_hz(high_hz)
    longest_ms = min(1000.0 / low_hz, step_ms + HALF_STEP_MS)
    return max(exact, longest_ms / step_ms)
