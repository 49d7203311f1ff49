"""Rendering a check's :class:`~emsctl.conformance.Report`: plain text, Markdown, JSON.

The Markdown form is the hardware report template of docs/hardware-check.md §5: it pastes into an
issue as it is. Every form shows each step as passed, failed, not possible on this device or not
run, what was measured, and for each failed step the bytes exchanged while it ran, decoded by the
family's codec. Pure: no I/O.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from .conformance import Report, StepResult
from .wiretap import WireEvent

__all__ = ["STATUS_TEXT", "render", "render_json", "render_markdown", "render_text"]

STATUS_TEXT = {"passed": "passed", "failed": "FAILED",
               "not_possible": "not possible on this device", "not_run": "not run"}
#: At most this many wire events are shown per failed step (the last ones).
WIRE_LINES = 80

#: measurement name → (label, kind): "s" times, "n" counts
_MEASUREMENTS: dict[str, tuple[str, str]] = {
    "handshake_s": ("handshake (connect to ready)", "s"),
    "apply_s": ("update call returned after", "s"),
    "update_ack_s": ("update acknowledged after", "s"),
    "round_trip_median_s": ("round trip, median", "s"),
    "round_trip_min_s": ("round trip, shortest", "s"),
    "round_trip_max_s": ("round trip, longest", "s"),
    "round_trip_count": ("round trips measured", "n"),
    "ack_timeout_s": ("ack timeout, as observed", "s"),
    "stop_to_wire_s": ("stop on the wire after it was requested", "s"),
    "stop_confirmed_s": ("stop confirmed after it was requested", "s"),
    "lease_to_off_s": ("output off after the lease ended", "s"),
    "device_timeout_s": ("device fell silent after the host did", "s"),
    "host_writes": ("host writes checked", "n"),
}


def _emsctl_version() -> str:
    try:
        return version("emsctl")
    except PackageNotFoundError:
        return "unknown"


def _value(name: str, value: float) -> str:
    kind = _MEASUREMENTS.get(name, (name, "s" if name.endswith("_s") else "n"))[1]
    if kind == "n":
        return f"{value:g}"
    if abs(value) < 1:
        return f"{value * 1000:.1f} ms"
    return f"{value:.3f} s"


def _measurements(report: Report) -> list[tuple[str, str, str]]:
    """(step, label, value) for every measurement, in the table's order within each step."""
    rows = []
    order = list(_MEASUREMENTS)
    for step in report.steps:
        for name in sorted(step.measurements, key=lambda n: (order.index(n) if n in order
                                                             else len(order), n)):
            label = _MEASUREMENTS.get(name, (name, ""))[0]
            rows.append((step.id, label, _value(name, step.measurements[name])))
    return rows


def _wire_lines(report: Report, step: StepResult) -> list[str]:
    events = step.wire
    lines = []
    if len(events) > WIRE_LINES:
        lines.append(f"… {len(events) - WIRE_LINES} earlier event(s) not shown")
        events = events[-WIRE_LINES:]
    if not events:
        lines.append("(no bytes were exchanged)")
    for event in events:
        lines.append(_wire_line(report, step, event))
    return lines


def _wire_line(report: Report, step: StepResult, event: WireEvent) -> str:
    meaning = report.describe(event)
    where = f" [{_short_channel(event.channel)}]" if event.channel else ""
    note = f" ({event.note})" if event.note else ""
    return (f"{event.t_s - step.t0_s:+9.4f} s  s{event.session}  {event.direction}{where}  "
            f"{event.data.hex(' ').upper()}" + (f"  | {meaning}" if meaning else "") + note)


_SIG_BASE = "-0000-1000-8000-00805f9b34fb"


def _short_channel(channel: str) -> str:
    """A BLE characteristic as 0x150A (SIG base UUIDs) or its first 8 digits."""
    prefix, _sep, uuid = channel.rpartition(" ")
    uuid = uuid.lower()
    short = (f"0x{uuid[4:8].upper()}" if uuid.startswith("0000") and uuid.endswith(_SIG_BASE)
             else uuid[:8])
    return f"{prefix} {short}" if prefix else short


def _summary(report: Report) -> str:
    c = report.counts()
    return (f"{c['passed']} passed, {c['failed']} failed, {c['not_possible']} not possible on "
            f"this device, {c['not_run']} not run; exit {report.exit_code}")


def _header(report: Report) -> list[tuple[str, str]]:
    device = report.model + (" — emulated; times are emulated time" if report.simulated
                             else " — real device; times are real time")
    identity = "; ".join(f"{k}: {v}" for k, v in report.identity.items()
                         if k not in ("model",)) or "unknown (the identity step did not run)"
    return [("Device URL", report.url), ("Device", device),
            ("Protocol", f"{report.family} ({report.document})"), ("Identity", identity),
            ("Load", report.load), ("Person", report.person),
            ("Output", report.output or "none (no step put current on the outputs)"),
            ("emsctl", _emsctl_version())]


def render_text(report: Report) -> str:
    """The report as plain text for a terminal."""
    out = [f"emsctl check: {report.url}", ""]
    width = max(len(k) for k, _v in _header(report))
    out += [f"  {k.ljust(width)}  {v}" for k, v in _header(report)]
    out += ["", "Steps"]
    for step in report.steps:
        out.append(f"  {STATUS_TEXT[step.status].ljust(28)} {step.id.ljust(18)} {step.title}")
        if step.detail:
            out.append(f"  {'':28} {'':18} → {step.detail}")
        if step.status != "passed" and step.cites:
            out.append(f"  {'':28} {'':18}   see {'; '.join(step.cites)}")
    rows = _measurements(report)
    if rows:
        out += ["", "Measurements"]
        width = max(len(label) for _s, label, _v in rows)
        out += [f"  {label.ljust(width)}  {value}  ({step})" for step, label, value in rows]
    failed = [s for s in report.steps if s.status == "failed"]
    for step in failed:
        out += ["", f"Bytes exchanged during {step.id} (times from the step's start; "
                    "s<n> is the session)"]
        out += [f"  {line}" for line in _wire_lines(report, step)]
    out += ["", f"Result: {_summary(report)}"]
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Report) -> str:
    """The report as Markdown, ready to paste into an issue (the hardware report template)."""
    out = [f"### emsctl hardware check: `{report.url}`", "",
           f"**Result:** {_summary(report)}", "", "| | |", "|---|---|"]
    out += [f"| {k} | {_cell(v)} |" for k, v in _header(report)]
    out += ["", "#### Steps", "", "| Step | Result | Details | Reference |", "|---|---|---|---|"]
    for step in report.steps:
        status = STATUS_TEXT[step.status]
        if step.status == "failed":
            status = f"**{status}**"
        out.append(f"| `{step.id}` {_cell(step.title)} | {status} | {_cell(step.detail)} | "
                   f"{_cell('; '.join(step.cites))} |")
    rows = _measurements(report)
    if rows:
        out += ["", "#### Measurements", "", "| Measurement | Value | Step |", "|---|---|---|"]
        out += [f"| {_cell(label)} | {value} | `{step}` |" for step, label, value in rows]
    failed = [s for s in report.steps if s.status == "failed"]
    if failed:
        out += ["", "#### Bytes exchanged in the failed steps", "",
                "Times are from the start of the step; `s<n>` is the session (one per "
                "connection)."]
        for step in failed:
            out += ["", f"<details><summary><code>{step.id}</code>: {_cell(step.detail)}"
                        "</summary>", "", "```text", *_wire_lines(report, step), "```", "",
                    "</details>"]
    out += ["", "<!-- Please add: how the outputs were loaded (resistor value), the device's "
                "firmware version if its screen shows one, the operating system and the "
                "USB or Bluetooth adapter. -->"]
    return "\n".join(out) + "\n"


def report_data(report: Report) -> dict[str, Any]:
    """The report as plain data (the wire only for failed steps)."""
    steps = []
    for step in report.steps:
        item: dict[str, Any] = {
            "id": step.id, "title": step.title, "status": step.status, "detail": step.detail,
            "cites": list(step.cites), "measurements": step.measurements, "facts": step.facts,
            "output": step.output}
        if step.status == "failed":
            item["wire"] = [{"t_s": round(e.t_s - step.t0_s, 6), "session": e.session,
                             "direction": e.direction, "channel": e.channel,
                             "hex": e.data.hex(), "meaning": report.describe(e),
                             "note": e.note} for e in step.wire]
        steps.append(item)
    return {"url": report.url, "family": report.family, "document": report.document,
            "model": report.model, "simulated": report.simulated, "load": report.load,
            "person": report.person, "output": report.output, "identity": report.identity,
            "emsctl_version": _emsctl_version(), "exit_code": report.exit_code,
            "counts": report.counts(), "steps": steps}


def render_json(report: Report) -> str:
    """The report as indented JSON."""
    return json.dumps(report_data(report), indent=2, ensure_ascii=False) + "\n"


def render(report: Report, fmt: str) -> str:
    """``text``, ``markdown`` or ``json``.

    Raises:
        ValueError: another format.
    """
    renderers = {"text": render_text, "markdown": render_markdown, "json": render_json}
    if fmt not in renderers:
        raise ValueError(f"unknown report format {fmt!r}")
    return renderers[fmt](report)
