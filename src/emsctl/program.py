"""The program file model: what a stimulation program may say, and nothing else.

A program is data (TOML), validated strictly by pydantic: unknown keys, non-finite numbers,
strings where numbers belong, negative or absurd values are rejected. Only symmetric biphasic
waveforms are representable (L1); electrode sites come from an allow-list (L23). Limits that
depend on the combination of fields (charge, density, duty, slew) are checked on the compiled
plan by :mod:`emsctl.verify`, not here. This module never touches the device or the clock.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from .amplitude import AmplitudeExpr, parse_amplitude
from .limit_table import ELECTRODE_AREA_MIN_CEILING_CM2, EMS_ELECTRODE_AREA_MIN_CM2, TENS_PURPOSES
from .sites import check_channel_sites

__all__ = [
    "Amplitude",
    "AmplitudeRamp",
    "Burst",
    "Channel",
    "Duty",
    "Phase",
    "Program",
    "Ramp",
    "Sweep",
]

_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)

#: Shortest phase: anything shorter is no phase a person could feel, and a phase too short to
#: move the float clock (1.0 + 1e-300 == 1.0) would have no segments at all.
MIN_PHASE_S = 1.0
#: Longest program the model accepts; L19 (60 min) is enforced by verify with the limits in force.
MAX_PROGRAM_S = 4 * 3600.0

Amplitude = Annotated[
    AmplitudeExpr,
    BeforeValidator(lambda v: v if isinstance(v, AmplitudeExpr) else parse_amplitude(v)),
    PlainSerializer(lambda a: a.factor if a.is_absolute else str(a), return_type=float | str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "description": "absolute amplitude in mA"},
                {
                    "type": "string",
                    "pattern": r"^\s*([0-9]+(\.[0-9]+)?\s*(mA)?"
                    r"|(ST|MT|TOL)(\s*[+-]\s*[0-9]+(\.[0-9]+)?\s*%)?"
                    r"|[0-9]+(\.[0-9]+)?\s*[*×]\s*(ST|MT|TOL))\s*$",
                    "description": "'12mA', 'MT', 'MT+10%', 'ST-5%' or '0.6*TOL'",
                },
            ]
        }
    ),
]

FrequencyHz = Annotated[float, Field(gt=0, le=1000)]
PulseWidthUs = Annotated[float, Field(gt=0, le=2000)]


class Ramp(BaseModel):
    """A linear change across the whole phase, ``from`` at its start and ``to`` at its end."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True,
                              populate_by_name=True)
    start: float = Field(alias="from", gt=0, le=2000)
    end: float = Field(alias="to", gt=0, le=2000)


class Sweep(BaseModel):
    """A triangular modulation between ``low`` and ``high`` with a period of ``period_s``."""

    model_config = _STRICT
    low: float = Field(gt=0, le=2000)
    high: float = Field(gt=0, le=2000)
    period_s: float = Field(ge=0.2, le=600)

    @model_validator(mode="after")
    def _ordered(self) -> Sweep:
        if self.low >= self.high:
            raise ValueError("a sweep needs low < high")
        return self


class AmplitudeRamp(BaseModel):
    """An amplitude that changes linearly across the phase."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True,
                              populate_by_name=True)
    start: Amplitude = Field(alias="from")
    end: Amplitude = Field(alias="to")


class Duty(BaseModel):
    """On/off trains: ramp up, plateau ``on_s``, ramp down, then ``off_s`` at zero."""

    model_config = _STRICT
    on_s: float = Field(gt=0, le=60)
    off_s: float = Field(ge=0, le=600)
    ramp_up_s: float = Field(gt=0, le=30, description="> 0: a train never steps up (L16)")
    ramp_down_s: float = Field(gt=0, le=30)

    @property
    def cycle_s(self) -> float:
        """Length of one whole on/off cycle."""
        return self.ramp_up_s + self.on_s + self.ramp_down_s + self.off_s

    @property
    def train_s(self) -> float:
        """Time with output in one cycle, ramps included (what L18 calls ON)."""
        return self.ramp_up_s + self.on_s + self.ramp_down_s


class Burst(BaseModel):
    """Burst TENS: ``pulses`` pulses at the phase frequency, ``rate_hz`` bursts per second."""

    model_config = _STRICT
    rate_hz: float = Field(gt=0, le=10)
    pulses: int = Field(ge=1, le=100)


class Channel(BaseModel):
    """One output channel: where its two pads go and the program's amplitude cap."""

    model_config = _STRICT
    id: int = Field(ge=1, le=8)
    site: str = Field(min_length=1, max_length=40)
    return_site: str | None = Field(default=None, min_length=1, max_length=40,
                                    description="site of the second pad when not the same")
    electrode_area_cm2: float = Field(gt=0, le=400)
    max_amplitude_ma: float = Field(gt=0, le=200)

    @model_validator(mode="after")
    def _sites(self) -> Channel:
        check_channel_sites(self.site, self.return_site)
        return self


class Phase(BaseModel):
    """One phase of a program. ``kind = "guide"`` phases have no output, only instructions."""

    model_config = _STRICT
    name: str = Field(min_length=1, max_length=60)
    kind: Literal["stim", "guide"] = "stim"
    duration_s: float = Field(ge=MIN_PHASE_S, le=MAX_PROGRAM_S)
    instructions: str | None = Field(default=None, max_length=2000)
    frequency_hz: FrequencyHz | Ramp | Sweep | None = None
    pulse_width_us: PulseWidthUs | Ramp | Sweep | None = None
    waveform: Literal["symmetric-biphasic"] = "symmetric-biphasic"
    amplitude: Amplitude | AmplitudeRamp | None = None
    amplitude_cap: Amplitude | None = Field(
        default=None, description="upper bound for this phase, e.g. 'MT' for sensory-level phases")
    duty: Duty | None = None
    burst: Burst | None = None
    pattern: Literal["together", "alternating"] = "together"

    @model_validator(mode="after")
    def _kind_fields(self) -> Phase:
        stim_fields = ("frequency_hz", "pulse_width_us", "amplitude")
        if self.kind == "guide":
            extra = [f for f in (*stim_fields, "amplitude_cap", "duty", "burst")
                     if getattr(self, f) is not None]
            if extra:
                raise ValueError(f"a guide phase has no output; remove {', '.join(extra)}")
            if not self.instructions:
                raise ValueError("a guide phase needs instructions")
            return self
        missing = [f for f in stim_fields if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a stim phase needs {', '.join(missing)}")
        if self.pattern == "alternating" and self.duty is None:
            raise ValueError("pattern 'alternating' needs a duty cycle to alternate")
        if self.burst is not None and self.duty is not None:
            raise ValueError("a phase has either bursts or on/off duty, not both")
        if self.burst is not None:
            if not isinstance(self.frequency_hz, float):
                raise ValueError("a burst phase needs one fixed frequency_hz (the inner rate)")
            burst_s = self.burst.pulses / self.frequency_hz
            if burst_s * self.burst.rate_hz > 1.0:
                raise ValueError("bursts overlap: pulses / frequency_hz × rate_hz must be ≤ 1")
        return self


class Program(BaseModel):
    """A whole stimulation program as loaded from a TOML file."""

    model_config = _STRICT
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,39}$")
    title: str = Field(min_length=1, max_length=120)
    purpose: Literal["relaxation", "massage", "circulation", "recovery", "tens", "training"]
    evidence: str = Field(min_length=1, max_length=500)
    description: str = Field(min_length=1, max_length=4000)
    placement: str = Field(min_length=1, max_length=4000)
    after: str | None = Field(
        default=None, min_length=1, max_length=4000,
        description="advice for after the session, shown on the final screen and by 'show'")
    expert: bool = False
    calibration_frequency_hz: float = Field(gt=0, le=1000)
    calibration_pulse_width_us: float = Field(gt=0, le=2000)
    soft_start_s: float = Field(default=5.0, ge=0, le=60)
    transition_s: float = Field(default=5.0, ge=0, le=60)
    end_ramp_s: float = Field(default=3.0, ge=0, le=60)
    channels: list[Channel] = Field(min_length=1, max_length=8)
    phases: list[Phase] = Field(min_length=1, max_length=100)

    @field_validator("channels")
    @classmethod
    def _unique_channels(cls, channels: list[Channel]) -> list[Channel]:
        ids = [c.id for c in channels]
        if len(set(ids)) != len(ids):
            raise ValueError("channel ids must be unique")
        return channels

    @model_validator(mode="after")
    def _whole(self) -> Program:
        if not any(p.kind == "stim" for p in self.phases):
            raise ValueError("a program needs at least one stim phase")
        if self.duration_s > MAX_PROGRAM_S:
            raise ValueError(f"the program lasts {self.duration_s:g} s, over {MAX_PROGRAM_S:g} s")
        for channel in self.channels:
            if "lower-back" in channel.site and self.purpose != "tens":
                raise ValueError(f"channel {channel.id}: the lower back is for TENS programs only")
        self._ems_pads()
        return self

    def _ems_pads(self) -> None:
        """L13: an EMS program (every purpose but TENS) needs pads of at least 16 cm²."""
        if self.purpose in TENS_PURPOSES:
            return
        small = [c for c in self.channels if c.electrode_area_cm2 < EMS_ELECTRODE_AREA_MIN_CM2]
        if not small:
            return
        first, others = small[0], [str(c.id) for c in small[1:]]
        also = f" (and on channel{'s' if len(others) > 1 else ''} {', '.join(others)})" \
            if others else ""
        raise ValueError(
            f"channel {first.id}: pads of {first.electrode_area_cm2:g} cm² are too small for an "
            f"EMS program{also}: a '{self.purpose}' program stimulates muscles and needs pads of "
            f"at least {EMS_ELECTRODE_AREA_MIN_CM2:g} cm² (about 4 × 4 cm), so that the current "
            "is spread wide enough not to burn the skin (L13); only TENS programs may use "
            f"smaller pads, down to {ELECTRODE_AREA_MIN_CEILING_CM2:g} cm²")

    @property
    def duration_s(self) -> float:
        """Total program time, guide phases included."""
        return sum(p.duration_s for p in self.phases)
