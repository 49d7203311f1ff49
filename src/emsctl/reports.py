"""Reports of what is wrong with a program file: one per problem, for people and for CI.

A :class:`Report` is one problem: a human title that never shows a bare limit ID ("Pulse width
above limit L6"), the channels it affects, the phase it is in with that phase's own start time,
the line and column of the file it points at where known, and one short sentence. Violations
that differ only by channel become one report naming every channel. Every output of
``emsctl validate`` (text, json, github) and the refusal of ``emsctl run`` print reports, so
the same problem reads the same everywhere, one line of at most :data:`LINE_MAX` characters.

Pure: no I/O. The position of a limit problem in the file comes from
:class:`~emsctl.source_lines.SourceMap`: the offending key when there is one, otherwise the
phase's ``[[phases]]`` header (or the channel's ``[[channels]]`` header).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal

from .errors import EmsError, ProgramError, SourceProblem
from .limit_table import LIMIT_NAMES
from .source_lines import SourceMap

if TYPE_CHECKING:
    from .plan import Plan
    from .program import Program
    from .violation import Violation

__all__ = [
    "LINE_MAX",
    "Report",
    "clip",
    "input_reports",
    "limit_reports",
    "minutes",
    "violation_title",
]

#: The longest line a report is printed as (longer messages are cut with "…").
LINE_MAX = 200

#: Titles by the setting a violation broke (a ``Limits`` field); the limit ID is appended.
_LIMIT_TITLES = {
    "peak_ma": "Peak current above limit",
    "rms_ma": "rms current above limit",
    "pulse_width_min_us": "Pulse width below limit",
    "pulse_width_max_us": "Pulse width above limit",
    "frequency_min_hz": "Frequency below limit",
    "frequency_max_hz": "Frequency above limit",
    "phase_charge_uc": "Phase charge above limit",
    "shannon_k": "Shannon k above limit",
    "current_density_ma_cm2": "Current density above limit",
    "current_density_warn_ma_cm2": "Current density near limit",
    "power_density_w_cm2": "Power density above limit",
    "electrode_area_min_cm2": "Electrode area below limit",
    "soft_start_min_s": "Soft start shorter than limit",
    "ramp_min_s": "Ramp shorter than limit",
    "plan_rise_ma_per_s": "Ramp steeper than limit",
    "train_on_max_s": "Motor train longer than limit",
    "train_off_min_s": "Rest after a motor train shorter than limit",
    "session_max_s": "Session longer than limit",
}
#: Titles of rules that have no setting, by limit ID.
_RULE_TITLES = {
    "L14": "Step up from 0 against limit",
    "L17": "Step up against limit",
}
#: Titles of what a device cannot do, by ``Capabilities`` field.
_DEVICE_TITLES = {
    "amplitude_max_ma": "Amplitude above the device's range",
    "pulse_width_min_us": "Pulse width below the device's range",
    "pulse_width_max_us": "Pulse width above the device's range",
    "frequency_min_hz": "Frequency below the device's range",
    "frequency_max_hz": "Frequency above the device's range",
    "bursts": "Bursts the device cannot time",
    "channels": "Channel the device does not have",
    "frequency_per_channel": "Frequencies the device cannot mix",
}


@dataclass(frozen=True)
class Report:
    """One problem of one program file.

    ``limit`` is "L1"…"L24", "device", or None for a file that does not load (then ``title``
    says what kind: "Invalid TOML", "Unknown key", …). ``channels`` is empty for problems of
    the whole program; ``phase`` and ``phase_start_s`` name the phase and when it starts.
    ``line`` and ``col`` (from 1) are None where the file has no place for the problem.
    """

    severity: Literal["error", "warning", "notice"]
    title: str
    message: str
    limit: str | None = None
    setting: str | None = None
    channels: tuple[int, ...] = ()
    phase: str | None = None
    phase_start_s: float | None = None
    t_s: float | None = None
    value: float | None = None
    allowed: float | None = None
    line: int | None = None
    col: int | None = None

    @property
    def where(self) -> str:
        """"channels 1, 2, phase 'C' (starts 13:00)"; empty for a whole-program problem."""
        parts = []
        if self.channels:
            word = "channel" if len(self.channels) == 1 else "channels"
            parts.append(f"{word} {', '.join(str(c) for c in self.channels)}")
        if self.phase is not None:
            start = "" if self.phase_start_s is None else f" (starts {minutes(self.phase_start_s)})"
            parts.append(f"phase '{self.phase}'{start}")
        return ", ".join(parts)

    @property
    def detail(self) -> str:
        """Where and what, without the title: "channel 1, phase 'A' (starts 0:00): 90 mA …"."""
        return f"{self.where}: {self.message}" if self.where else self.message

    def summary(self, width: int = LINE_MAX) -> str:
        """Title, where and what in one line of at most ``width`` characters."""
        return clip(f"{self.title}: {self.detail}", width)

    def as_dict(self) -> dict[str, object]:
        """The report as JSON-ready data, with its one-line ``summary``."""
        data: dict[str, object] = asdict(self)
        data["channels"] = list(self.channels)
        data["summary"] = self.summary()
        return data


def clip(text: str, width: int = LINE_MAX) -> str:
    """``text`` on one line, cut to ``width`` characters with "…" when longer."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[:max(1, width - 1)].rstrip() + "…"


def minutes(seconds: float) -> str:
    """Plan time as m:ss (h:mm:ss from an hour on): 780 → "13:00"."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    if hours:
        return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{rest // 60}:{rest % 60:02d}"


# --------------------------------------------------------------------------- files that do not load


def input_reports(exc: EmsError, source: str = "") -> list[Report]:
    """One report per problem of a file that could not be loaded.

    A :class:`ProgramError` lists its problems with their positions; any other error is one
    problem, its message without the leading ``source: `` (the report is printed with it).
    """
    problems: Sequence[SourceProblem] = ()
    if isinstance(exc, ProgramError):
        problems = exc.problems
    if not problems:
        message = str(exc)
        if source:
            message = message.removeprefix(f"{source}: ")
        problems = [SourceProblem("Invalid input", message)]
    return [Report("error", p.title, p.message, line=p.line, col=p.col) for p in problems]


# --------------------------------------------------------------------------- limit problems


def violation_title(v: Violation) -> str:
    """A human title for ``v`` that names its limit ID in words, e.g.
    "Pulse width above limit L6" or "Frequency above the device's range"."""
    if v.limit_id == "device":
        return _DEVICE_TITLES.get(v.setting or "", "Not possible on the device")
    if v.setting in _LIMIT_TITLES:
        return f"{_LIMIT_TITLES[v.setting]} {v.limit_id}"
    if v.limit_id in _RULE_TITLES:
        return f"{_RULE_TITLES[v.limit_id]} {v.limit_id}"
    return f"{LIMIT_NAMES.get(v.limit_id, 'Safety limit')}, limit {v.limit_id}"


def limit_reports(
    violations: Iterable[Violation],
    text: str = "",
    program: Program | None = None,
    plan: Plan | None = None,
) -> list[Report]:
    """Reports of ``violations``, those that differ only by channel merged into one.

    With the file's ``text`` (and the ``program`` and ``plan`` it made) each report points at
    the line of the offending key or of its phase's table header. Reports keep the order of
    their first violation, which is verify's: by channel, then time.
    """
    groups: dict[tuple[object, ...], list[Violation]] = {}
    for v in violations:
        key = (v.limit_id, v.setting, v.phase.index if v.phase else None, v.value, v.allowed,
               v.message, v.severity)
        groups.setdefault(key, []).append(v)
    source_map = SourceMap(text) if text and groups else None
    reports = []
    for members in groups.values():
        first = members[0]
        channels = tuple(sorted({v.channel for v in members if v.channel is not None}))
        line = col = None
        if source_map is not None:
            position = _position(first, channels, source_map, program, plan)
            if position is not None:
                line, col = position
        reports.append(Report(
            "warning" if first.severity == "warn" else "error", violation_title(first),
            first.message, first.limit_id, first.setting, channels,
            first.phase.name if first.phase else None,
            first.phase.start_s if first.phase else None,
            min(v.t_s for v in members), first.value, first.allowed, line, col))
    return reports


def _position(v: Violation, channels: tuple[int, ...], source_map: SourceMap,
              program: Program | None, plan: Plan | None) -> tuple[int, int] | None:
    """The first candidate key that the file defines, else the nearest table of the first."""
    candidates = _candidates(v, channels, program, plan)
    for path in candidates:
        found = source_map.exact(path)
        if found is not None:
            return found
    return source_map.nearest(candidates[0]) if candidates else None


def _candidates(v: Violation, channels: tuple[int, ...], program: Program | None,
                plan: Plan | None) -> list[tuple[str | int, ...]]:
    """Paths in the file that may have caused ``v``, best first."""
    setting = v.setting or ""
    phase: tuple[str | int, ...] = ("phases", v.phase.index) if v.phase else ()
    channel: tuple[str | int, ...] = ()
    if channels and program is not None:
        order = [c.id for c in program.channels]
        if channels[0] in order:
            channel = ("channels", order.index(channels[0]))
    out: list[tuple[str | int, ...]] = []

    def add(base: tuple[str | int, ...], *keys: str) -> None:
        if base:  # no phase or channel to look in: no candidate
            out.append((*base, *keys))

    if setting in ("peak_ma", "amplitude_max_ma"):
        cap = None
        if plan is not None and channels:
            cap = next((c.cap_ma for c in plan.channels if c.channel == channels[0]), None)
        if cap is not None and v.value >= cap - 1e-6 and channel:
            add(channel, "max_amplitude_ma")  # a relative amplitude is the cap in validation
        add(phase, "amplitude")
    elif setting.startswith("pulse_width"):
        add(phase, "pulse_width_us")
    elif setting.startswith("frequency"):
        add(phase, "frequency_hz")
    elif setting == "electrode_area_min_cm2":
        add(channel, "electrode_area_cm2")
    elif setting == "soft_start_min_s":
        out.append(("soft_start_s",))
        add(phase, "amplitude")
    elif setting in ("ramp_min_s", "plan_rise_ma_per_s"):
        add(phase, "duty", "ramp_up_s")
        add(phase, "amplitude")
    elif setting == "train_on_max_s":
        add(phase, "duty", "on_s")
        add(phase, "duty")
    elif setting == "train_off_min_s":
        add(phase, "duty", "off_s")
        add(phase, "duty")
    elif setting == "bursts":
        add(phase, "burst")
    elif setting == "channels":
        add(channel, "id")
    elif v.limit_id in ("L14", "L17"):
        add(phase, "amplitude")
    if phase:
        out.append(phase)  # charge, rms, density, power: the phase as a whole
    elif channel:
        out.append(channel)
    return out
