"""Amplitude expressions: absolute milliamperes or a multiple of a calibrated threshold.

Grammar (whitespace is ignored, case matters for the threshold names; a number is ASCII
digits only, as in the program JSON Schema)::

    expr      := number | number "mA" | threshold | threshold ("+"|"-") number "%"
               | number "*" threshold
    threshold := "ST" | "MT" | "TOL"

``"MT+10%"`` is 1.1 × MT, ``"0.6*TOL"`` is 0.6 × TOL, ``12`` and ``"12mA"`` are 12 mA.
This module only parses and resolves; it never reads files or clocks.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["AmplitudeExpr", "ThresholdName", "Thresholds", "parse_amplitude"]

ThresholdName = Literal["ST", "MT", "TOL"]

#: ASCII digits only: ``\d`` (and ``float()``) would also take "٤٠" or "４０" as 40 (HZ-13).
_NUMBER = r"([0-9]+(?:\.[0-9]+)?)"
_RELATIVE = re.compile(rf"^(ST|MT|TOL)(?:([+-]){_NUMBER}%)?$", re.ASCII)
_SCALED = re.compile(rf"^{_NUMBER}\*(ST|MT|TOL)$", re.ASCII)
_ABSOLUTE = re.compile(rf"^{_NUMBER}(?:mA)?$", re.ASCII)

#: A relative amplitude may not exceed this multiple of its threshold (e.g. "MT+300%" is absurd).
MAX_FACTOR = 3.0
#: No absolute amplitude above this is meaningful for any device (L3 ceiling is lower still).
MAX_ABSOLUTE_MA = 200.0


@dataclass(frozen=True, slots=True)
class Thresholds:
    """A person's calibrated thresholds for one channel and site, in mA."""

    st_ma: float
    mt_ma: float
    tol_ma: float

    def value_ma(self, name: ThresholdName) -> float:
        """Return the threshold called ``name`` in mA."""
        return {"ST": self.st_ma, "MT": self.mt_ma, "TOL": self.tol_ma}[name]


@dataclass(frozen=True, slots=True)
class AmplitudeExpr:
    """A parsed amplitude: ``factor`` × threshold, or ``factor`` mA when ``threshold`` is None."""

    factor: float
    threshold: ThresholdName | None = None
    text: str = ""

    @property
    def is_absolute(self) -> bool:
        """True when the amplitude is given in mA rather than relative to a threshold."""
        return self.threshold is None

    def resolve_ma(self, thresholds: Thresholds) -> float:
        """Return the amplitude in mA for a person's ``thresholds``."""
        if self.threshold is None:
            return self.factor
        return self.factor * thresholds.value_ma(self.threshold)

    def __str__(self) -> str:
        return self.text or (f"{self.factor:g} mA" if self.threshold is None else
                             f"{self.factor:g}*{self.threshold}")


def parse_amplitude(value: object) -> AmplitudeExpr:
    """Parse an amplitude from a program file.

    Args:
        value: a non-negative finite number (mA) or a string in the grammar of this module.

    Returns:
        The parsed expression.

    Raises:
        ValueError: the value is not an amplitude; the message says what is expected.
    """
    if isinstance(value, bool):
        raise ValueError("an amplitude is a number of mA or a text like 'MT+10%', not a boolean")
    if isinstance(value, int) and abs(value) > MAX_ABSOLUTE_MA:
        raise ValueError(f"amplitude {value} mA is outside 0–{MAX_ABSOLUTE_MA:g} mA")
    if isinstance(value, int | float):
        return _absolute(float(value), str(value))
    if not isinstance(value, str):
        raise ValueError("an amplitude is a number of mA or a text like 'MT+10%' or '0.6*TOL'")
    text = value.replace(" ", "").replace("×", "*")
    if match := _ABSOLUTE.match(text):
        return _absolute(float(match.group(1)), value)
    if match := _RELATIVE.match(text):
        name, sign, pct = match.groups()
        factor = 1.0 if sign is None else 1.0 + (1 if sign == "+" else -1) * float(pct) / 100.0
        return _relative(factor, name, value)
    if match := _SCALED.match(text):
        return _relative(float(match.group(1)), match.group(2), value)
    raise ValueError(
        f"'{value}' is not an amplitude: use mA (12 or '12mA'), a threshold with a percentage "
        "('MT+10%') or a multiple ('0.6*TOL')"
    )


def _absolute(amplitude_ma: float, text: str) -> AmplitudeExpr:
    if not math.isfinite(amplitude_ma) or amplitude_ma < 0 or amplitude_ma > MAX_ABSOLUTE_MA:
        raise ValueError(f"amplitude {text} mA is outside 0–{MAX_ABSOLUTE_MA:g} mA")
    return AmplitudeExpr(factor=amplitude_ma, threshold=None, text=text)


def _relative(factor: float, name: str, text: str) -> AmplitudeExpr:
    if not math.isfinite(factor) or factor < 0 or factor > MAX_FACTOR:
        raise ValueError(f"amplitude '{text}' must lie between 0 and {MAX_FACTOR:g}× its threshold")
    threshold: ThresholdName = "ST" if name == "ST" else "MT" if name == "MT" else "TOL"
    return AmplitudeExpr(factor=factor, threshold=threshold, text=text)
