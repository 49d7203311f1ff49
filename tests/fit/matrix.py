"""The device table and the fit matrix of the documents, generated from the code.

:func:`device_table` lists every device family with what its emulation declares (channels,
current range and step, widths, rates, update period), and :func:`fit_matrix` says for every
built-in program on every emulated device whether it fits as written, fits with adaptations
(which), or is refused (why), from :func:`emsctl.fit.check_on_device`. Both go between
``<!-- generated: … -->`` markers in ``docs/devices.md`` and ``README.md``;
``tests/fit/test_fit_matrix.py`` fails when a document differs from what the code says.

:func:`outcomes` gives every pair's outcome in full (each adaptation, or each refusal's one-line
report); ``tests/fit/expected.json`` pins them, so any change to what fits is a visible diff.

``python tests/fit/matrix.py`` rewrites the blocks; ``--pin`` also rewrites expected.json.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from emsctl.cli.devices import EMULATED
from emsctl.devices import open_device
from emsctl.fit import check_on_device
from emsctl.limit_table import PEAK_CEILING_MA
from emsctl.limits import DEFAULTS
from emsctl.loader import builtin_names, load_program
from emsctl.reports import limit_reports

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EXPECTED = HERE / "expected.json"
DOCUMENTS = (ROOT / "docs" / "devices.md", ROOT / "README.md")

#: Every emulated device, in the order of the documents' columns (as `emsctl devices` lists them).
EMULATIONS = EMULATED


@dataclass(frozen=True)
class Family:
    """What the documents say of one device family beyond its capabilities."""

    name: str
    emulation: str
    real_url: str
    link: str
    watchdog: str
    declare: str


FAMILIES = (
    Family("emsctl simulator", "sim", "—", "in memory", "the session's lease (≤ 1 s)",
           "nothing"),
    Family("Hasomed RehaStim2 (ScienceMode2)", "sim+sciencemode2",
           "`sciencemode2:///dev/ttyUSB0`", "USB serial", "its own 1.2 s watchdog",
           "nothing: it is set in mA"),
    Family("Hasomed P24 (ScienceMode4)", "sim+sciencemode4", "`sciencemode4:///dev/ttyACM0`",
           "USB serial", "the host's lease (≤ 1 s); its own 2 s timeout",
           "nothing: it is set in mA"),
    Family("DG-LAB Coyote V3", "sim+coyote3",
           "`coyote3://<address>?ma_per_step=…&frequency_balance=…&intensity_balance=…`",
           "Bluetooth LE", "each 100 ms frame",
           "`ma_per_step` and both balances (§3.3)"),
    Family("openEMSstim", "sim+openems, sim+openems+ble",
           "`openems:///dev/ttyUSB0?ma_at_100=…&frequency_hz=…&pulse_width_us=…`, "
           "`openems+ble://<address>?…`", "USB serial or Bluetooth LE",
           "each command's on-time (the lease)",
           "the external stimulator behind it (§3.4)"),
)


def _figure(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def device_table() -> str:
    """One row per family: link, channels, current, width, rate, update period, watchdog, what
    a real owner declares, and what the emulation declares by itself."""
    rows = ["| Device | Real URL | Link | Channels | Current (step) | Pulse width | Rate | "
            "Update | Output ends without the host | A real owner declares | The emulation "
            "declares |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for family in FAMILIES:
        driver = open_device(family.emulation.split(",")[0])
        c = driver.capabilities
        top = min(c.amplitude_max_ma, PEAK_CEILING_MA)
        current = f"0–{_figure(top)} mA ({_figure(c.amplitude_step_ma)} mA)"
        width = (f"{_figure(c.pulse_width_min_us)} µs" if c.pulse_width_min_us
                 == c.pulse_width_max_us else
                 f"{_figure(c.pulse_width_min_us)}–{_figure(c.pulse_width_max_us)} µs")
        rate = (f"{_figure(c.frequency_min_hz)} Hz" if c.frequency_min_hz == c.frequency_max_hz
                else f"{_figure(c.frequency_min_hz)}–{_figure(c.frequency_max_hz)} Hz")
        declared = ", ".join(f"`{k}={_figure(float(v))}`"
                             for k, v in driver.declared_scaling.items()) or "—"
        emulations = ", ".join(f"`{e.strip()}`" for e in family.emulation.split(","))
        rows.append(f"| {family.name} ({emulations}) | {family.real_url} | {family.link} | "
                    f"{c.channels} | {current} | {width} | {rate} | "
                    f"{c.update_period_s * 1000:g} ms | {family.watchdog} | {family.declare} | "
                    f"{declared} |")
    return "\n".join(rows) + "\n"


def verdict(program: str, device: str) -> tuple[str, str]:
    """``("fits", "")``, ``("adapted", the changes)`` or ``("refused", the first problem)`` of
    a built-in ``program`` on the emulated ``device``, as the matrix cell says it."""
    checked = check_on_device(load_program(program).program, DEFAULTS,
                              open_device(device).capabilities)
    if checked.blocks:
        reports = limit_reports(checked.blocks, program=checked.fit.program, plan=checked.plan)
        first = reports[0]
        short = {"bursts": "bursts", "channels": "more channels"}.get(
            first.setting or "", f"{first.value:g} {_unit(first.setting)}")
        return "refused", short
    if checked.fit.adapted:
        changes = sorted({f"{a.was} → {a.now}" for a in checked.fit.adaptations
                          if a.phase is not None})
        return "adapted", ", ".join(changes)
    return "fits", ""


def _unit(setting: str | None) -> str:
    setting = setting or ""
    return "Hz" if "frequency" in setting else "µs" if "width" in setting else "mA"


def fit_matrix() -> str:
    """Every built-in program × every emulated device, one word or a few per cell."""
    rows = ["| Program | " + " | ".join(f"`{d}`" for d in EMULATIONS) + " |",
            "|---|" + "---|" * len(EMULATIONS)]
    for program in builtin_names():
        cells = []
        for device in EMULATIONS:
            outcome, detail = verdict(program, device)
            cells.append({"fits": "fits",
                          "adapted": f"adapted: {detail}",
                          "refused": f"no: needs {detail}"}[outcome])
        rows.append(f"| {program} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def outcomes() -> dict[str, dict[str, object]]:
    """``"program on device"`` → its outcome and, in full, each adaptation or each refusal."""
    out: dict[str, dict[str, object]] = {}
    for program in builtin_names():
        for device in EMULATIONS:
            checked = check_on_device(load_program(program).program, DEFAULTS,
                                      open_device(device).capabilities)
            if checked.blocks:
                lines = [r.summary() for r in limit_reports(
                    checked.blocks, program=checked.fit.program, plan=checked.plan)]
                outcome = "refused"
            else:
                lines = [str(a) for a in checked.fit.adaptations]
                outcome = "adapted" if lines else "fits"
            out[f"{program} on {device}"] = {"outcome": outcome, "lines": lines}
    return out


BLOCKS = {"device table": device_table, "fit matrix": fit_matrix}


def rendered(text: str) -> str:
    """``text`` with every generated block replaced by what the code says now."""
    for name, make in BLOCKS.items():
        pattern = re.compile(rf"(<!-- generated: {name} -->\n).*?(<!-- end: {name} -->)",
                             re.S)
        text = pattern.sub(lambda m, make=make: m.group(1) + make() + m.group(2), text)
    return text


def main(argv: list[str]) -> int:
    """Rewrite the generated blocks of docs/devices.md and README.md (and with ``--pin``,
    expected.json)."""
    for path in DOCUMENTS:
        path.write_text(rendered(path.read_text(encoding="utf-8")), encoding="utf-8")
        print(f"wrote {path}")
    if "--pin" in argv:
        EXPECTED.write_text(json.dumps(outcomes(), indent=1, ensure_ascii=False) + "\n",
                            encoding="utf-8")
        print(f"wrote {EXPECTED}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
