"""The limit table: every safety number of emsctl, with its limit ID, unit and direction.

Every number cites its limit ID from docs/safety-basis.md §2 (L1–L24). A *ceiling* is a constant in
this module; nothing at run time can raise it. A *default* is the shipped configuration value,
which a user may move only within the ceiling (docs/safety-basis.md §1). :data:`LIMIT_SPECS` says,
for each field of :class:`emsctl.limits.Limits`, its limit ID, unit, which way is tighter, its
ceiling and its default; :data:`LIMIT_NAMES` names the limits for reports.

This module is data only: it must never compute, check, read a file or a clock. Building and
tightening limits is :mod:`emsctl.limits`; checking an operating point is
:mod:`emsctl.limit_checks`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Final

__all__ = [
    "BURST_DUTY_MAX_CEILING",
    "BURST_MAX_CEILING_S",
    "COMPLIANCE_CEILING_V",
    "COMPLIANCE_DEFAULT_MAX_V",
    "CURRENT_DENSITY_CEILING_MA_CM2",
    "DC_MEAN_MAX_UA",
    "ELECTRODE_AREA_MIN_CEILING_CM2",
    "EMS_ELECTRODE_AREA_MIN_CM2",
    "ENERGY_PER_PULSE_CEILING_MJ",
    "FREQUENCY_MAX_CEILING_HZ",
    "FREQUENCY_MIN_CEILING_HZ",
    "HEARTBEAT_CEILING_S",
    "IMPEDANCE_MAX_OHM",
    "IMPEDANCE_RISE_MAX_FRACTION",
    "LIMIT_NAMES",
    "LIMIT_SPECS",
    "MINUTES_PER_DAY_CEILING",
    "MIN_GAP_BETWEEN_SESSIONS_CEILING_S",
    "NET_CHARGE_MAX_FRACTION",
    "PEAK_CEILING_MA",
    "PHASE_CHARGE_CEILING_UC",
    "PLAN_RISE_CEILING_MA_PER_S",
    "PLAN_RISE_DEFAULT_MA_PER_S",
    "POWER_DENSITY_CEILING_W_CM2",
    "PULSE_WIDTH_MAX_CEILING_US",
    "PULSE_WIDTH_MIN_CEILING_US",
    "RAMP_MIN_CEILING_S",
    "RMS_CEILING_MA",
    "SESSIONS_PER_DAY_CEILING",
    "SESSION_MAX_CEILING_S",
    "SHANNON_K_CEILING",
    "SOFT_START_MIN_CEILING_S",
    "STOP_TO_WIRE_MAX_S",
    "STOP_TO_ZERO_MAX_S",
    "TENS_PURPOSES",
    "TETANIC_FREQUENCY_HZ",
    "TRAIN_OFF_MIN_CEILING_S",
    "TRAIN_ON_MAX_CEILING_S",
    "USER_RISE_CEILING_MA_PER_S",
    "USER_STEP_CEILING_MA",
    "WATCHDOG_CEILING_S",
    "LimitSpec",
    "Tighter",
]

# --- Ceilings: kernel constants (docs/safety-basis.md §2, "Absolute ceiling" column)
# ------------------
PEAK_CEILING_MA: Final = 80.0  # L3
RMS_CEILING_MA: Final = 50.0  # L4
PULSE_WIDTH_MIN_CEILING_US: Final = 50.0  # L6: phase width 50–400 µs
PULSE_WIDTH_MAX_CEILING_US: Final = 400.0  # L6
FREQUENCY_MIN_CEILING_HZ: Final = 1.0  # L7: 1–150 Hz (inner rate for bursts)
FREQUENCY_MAX_CEILING_HZ: Final = 150.0  # L7
PHASE_CHARGE_CEILING_UC: Final = 32.0  # L8: Q ≤ 32 µC (80 mA × 400 µs)
SHANNON_K_CEILING: Final = 1.85  # L8: k ≤ 1.85
CURRENT_DENSITY_CEILING_MA_CM2: Final = 2.0  # L9: block strictly above 2.0; exactly 2.0 passes
POWER_DENSITY_CEILING_W_CM2: Final = 0.25  # L10: strict, P/A must stay below 0.25
ENERGY_PER_PULSE_CEILING_MJ: Final = 300.0  # L11: assertion only, never binds (2.56 mJ max)
ELECTRODE_AREA_MIN_CEILING_CM2: Final = 4.0  # L13: reject pads below 4 cm²
EMS_ELECTRODE_AREA_MIN_CM2: Final = 16.0  # L13: EMS programs need pads of ≥ 16 cm² (≈ 4 × 4 cm)
#: Program purposes that are TENS; every other purpose is EMS (muscle stimulation) for L13.
TENS_PURPOSES: Final = frozenset({"tens"})
SOFT_START_MIN_CEILING_S: Final = 2.0  # L15
RAMP_MIN_CEILING_S: Final = 0.5  # L16: contraction ramps, each
PLAN_RISE_CEILING_MA_PER_S: Final = 80.0  # L16 family [E]: amplitude rise inside a plan
PLAN_RISE_DEFAULT_MA_PER_S: Final = 40.0  # L16 family [E]: 40 mA over a 1.0 s default ramp
USER_STEP_CEILING_MA: Final = 2.0  # L17: per user command
USER_RISE_CEILING_MA_PER_S: Final = 5.0  # L17: decreases and stop are never rate-limited
TETANIC_FREQUENCY_HZ: Final = 20.0  # L18 applies to motor-level trains at or above this rate
TRAIN_ON_MAX_CEILING_S: Final = 15.0  # L18: ON includes ramps
TRAIN_OFF_MIN_CEILING_S: Final = 5.0  # L18
BURST_MAX_CEILING_S: Final = 0.2  # L18 exemption: TENS bursts ≤ 200 ms …
BURST_DUTY_MAX_CEILING: Final = 0.25  # L18 exemption: … with burst duty ≤ 25 %
SESSION_MAX_CEILING_S: Final = 3600.0  # L19: 60 min, monotonic clock
SESSIONS_PER_DAY_CEILING: Final = 4  # L20, per body site
MINUTES_PER_DAY_CEILING: Final = 120.0  # L20, per body site
MIN_GAP_BETWEEN_SESSIONS_CEILING_S: Final = 0.0  # L20 sets no general gap ceiling (default 1 h)
WATCHDOG_CEILING_S: Final = 1.0  # L21: device zeroes output after 1.0 s without heartbeat
HEARTBEAT_CEILING_S: Final = 0.25  # L21: host heartbeat every 250 ms
# Not Limits fields: device, telemetry and bench figures for the modules that check them.
NET_CHARGE_MAX_FRACTION: Final = 0.01  # L2: |Q_net| ≤ 1 % of phase charge, when reported
DC_MEAN_MAX_UA: Final = 10.0  # L2: mean DC ≤ 10 µA, when measurable
COMPLIANCE_DEFAULT_MAX_V: Final = 100.0  # L5: device-declared compliance
COMPLIANCE_CEILING_V: Final = 150.0  # L5: refuse a profile that declares more
IMPEDANCE_MAX_OHM: Final = 5000.0  # L12: stop above 5 kΩ (cannot be disabled)
IMPEDANCE_RISE_MAX_FRACTION: Final = 0.5  # L12: stop on a rise > 50 % within a session
STOP_TO_WIRE_MAX_S: Final = 0.05  # L22: UI/API stop → command on the wire
STOP_TO_ZERO_MAX_S: Final = 0.3  # L22: stop → output zero, end to end


class Tighter(Enum):
    """Which way a limit gets tighter."""

    SMALLER = "smaller"
    LARGER = "larger"
    TRUE = "true"


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """One row of :data:`LIMIT_SPECS`: what a :class:`Limits` field is and how it tightens."""

    limit_id: str
    unit: str
    tighter: Tighter
    ceiling: float | int | bool
    default: float | int | bool


_S, _L, _T = Tighter.SMALLER, Tighter.LARGER, Tighter.TRUE

LIMIT_SPECS: Final[Mapping[str, LimitSpec]] = MappingProxyType(
    {
        # L3 default: min(0.9 × TOL, 40 mA); 40 mA while TOL is unknown (calibration tightens).
        "peak_ma": LimitSpec("L3", "mA", _S, PEAK_CEILING_MA, 40.0),
        "rms_ma": LimitSpec("L4", "mA", _S, RMS_CEILING_MA, 25.0),
        "pulse_width_min_us": LimitSpec("L6", "µs", _L, PULSE_WIDTH_MIN_CEILING_US, 100.0),
        "pulse_width_max_us": LimitSpec("L6", "µs", _S, PULSE_WIDTH_MAX_CEILING_US, 300.0),
        "frequency_min_hz": LimitSpec("L7", "Hz", _L, FREQUENCY_MIN_CEILING_HZ, 1.0),
        "frequency_max_hz": LimitSpec("L7", "Hz", _S, FREQUENCY_MAX_CEILING_HZ, 100.0),
        "phase_charge_uc": LimitSpec("L8", "µC", _S, PHASE_CHARGE_CEILING_UC, 20.0),
        "shannon_k": LimitSpec("L8", "", _S, SHANNON_K_CEILING, 1.5),
        "current_density_ma_cm2": LimitSpec(
            "L9", "mA/cm²", _S, CURRENT_DENSITY_CEILING_MA_CM2, 2.0
        ),
        # L9 warning at ≥ 1.0. At its ceiling (= the block level) there is no separate warning.
        "current_density_warn_ma_cm2": LimitSpec(
            "L9", "mA/cm²", _S, CURRENT_DENSITY_CEILING_MA_CM2, 1.0
        ),
        # L10: the field is "≤ value"; the kernel also blocks P/A ≥ 0.25 (strict ceiling).
        "power_density_w_cm2": LimitSpec("L10", "W/cm²", _S, POWER_DENSITY_CEILING_W_CM2, 0.05),
        # L13 default 4 cm²: the ≥ 16 cm² of EMS programs is a program rule (W5 passes defaults),
        # EMS_ELECTRODE_AREA_MIN_CM2 through electrode_area_min_cm2().
        "electrode_area_min_cm2": LimitSpec("L13", "cm²", _L, ELECTRODE_AREA_MIN_CEILING_CM2, 4.0),
        "soft_start_min_s": LimitSpec("L15", "s", _L, SOFT_START_MIN_CEILING_S, 5.0),
        "ramp_min_s": LimitSpec("L16", "s", _L, RAMP_MIN_CEILING_S, 1.0),
        "user_step_ma": LimitSpec("L17", "mA", _S, USER_STEP_CEILING_MA, 1.0),
        "user_rise_ma_per_s": LimitSpec("L17", "mA/s", _S, USER_RISE_CEILING_MA_PER_S, 2.0),
        "plan_rise_ma_per_s": LimitSpec(
            "L16", "mA/s", _S, PLAN_RISE_CEILING_MA_PER_S, PLAN_RISE_DEFAULT_MA_PER_S
        ),
        # L18 smaller is tighter: a lower threshold puts more trains under the on/off rule.
        "tetanic_frequency_hz": LimitSpec("L18", "Hz", _S, TETANIC_FREQUENCY_HZ, 20.0),
        "train_on_max_s": LimitSpec("L18", "s", _S, TRAIN_ON_MAX_CEILING_S, 10.0),
        "train_off_min_s": LimitSpec("L18", "s", _L, TRAIN_OFF_MIN_CEILING_S, 5.0),
        "off_at_least_on": LimitSpec("L18", "", _T, False, True),  # default: OFF ≥ ON
        "burst_max_s": LimitSpec("L18", "s", _S, BURST_MAX_CEILING_S, 0.2),
        "burst_duty_max": LimitSpec("L18", "", _S, BURST_DUTY_MAX_CEILING, 0.25),
        # L19 default: shipped programs last ≤ 30 min; a longer own program needs a limits file.
        "session_max_s": LimitSpec("L19", "s", _S, SESSION_MAX_CEILING_S, 1800.0),
        "sessions_per_day": LimitSpec("L20", "sessions", _S, SESSIONS_PER_DAY_CEILING, 3),
        "minutes_per_day": LimitSpec("L20", "min", _S, MINUTES_PER_DAY_CEILING, 90.0),
        "min_gap_between_sessions_s": LimitSpec(
            "L20", "s", _L, MIN_GAP_BETWEEN_SESSIONS_CEILING_S, 3600.0
        ),
        "watchdog_s": LimitSpec("L21", "s", _S, WATCHDOG_CEILING_S, 1.0),
        "heartbeat_s": LimitSpec("L21", "s", _S, HEARTBEAT_CEILING_S, 0.25),
    }
)
"""Every :class:`Limits` field: limit ID, unit, direction of "tighter", ceiling and default."""

#: Short human names of the limits L1–L24 (SAFETY.md "Limits as enforced"), for reports that
#: must never show a bare limit ID.
LIMIT_NAMES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "L1": "Waveform",
        "L2": "Net charge per pulse",
        "L3": "Peak current",
        "L4": "rms current",
        "L5": "Device compliance voltage",
        "L6": "Pulse width",
        "L7": "Pulse frequency",
        "L8": "Phase charge and Shannon k",
        "L9": "Current density",
        "L10": "Power density",
        "L11": "Energy per pulse",
        "L12": "Load impedance",
        "L13": "Electrode area",
        "L14": "Start from zero",
        "L15": "Soft start",
        "L16": "Ramps",
        "L17": "No step-ups",
        "L18": "Motor trains",
        "L19": "Session length",
        "L20": "Dose per site",
        "L21": "Heartbeat and watchdog",
        "L22": "Stop latency",
        "L23": "Electrode placement",
        "L24": "Contraindications",
    }
)
