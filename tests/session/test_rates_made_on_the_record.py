"""The frequency ceiling holds on what the emulated RehaStim2 and P24 record as made, whatever
rate a program asks for near it.

Both devices round a period to the nearest 0.5 ms, so a rate under the ceiling can be made
above it (the P24 makes 97.6 Hz as 100 Hz). Random rates near each device's top rate and
random ceilings between the rate asked and the rate made are run end to end — program file,
verification for the device, session, driver, wire codec, emulated device — in virtual time,
with random intensity keys and pauses. Either the run is refused before any output, or every
pulse the emulated device records runs at a rate within the ceiling. The emulators record the
rate of the period word on the wire (``1000 / period``), not the rate the host asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emsctl.clock import VirtualClock
from emsctl.drivers.sciencemode2 import mapping as sm2
from emsctl.drivers.sciencemode4 import mapping as sm4
from emsctl.errors import EmsError, ValidationFailed
from emsctl.limits import DEFAULTS, tighten
from emsctl.loader import LoadedProgram, parse_program_text
from emsctl.runner import prepare_run
from emsctl.session import Session

#: url → (the driver's own rounding, the device's top rate)
DEVICES = {"sim+sciencemode2": (sm2.delivered_frequency_hz, 50.0),
           "sim+sciencemode4": (sm4.delivered_frequency_hz, 100.0)}

_PROGRAM = """\
name = "rates-made"
title = "Rates made"
purpose = "tens"
evidence = "Test data for tests/session/test_rates_made_on_the_record.py; no clinical use."
description = "One steady phase at a rate near the device's top."
placement = "Test data."
calibration_frequency_hz = {hz}
calibration_pulse_width_us = 180
soft_start_s = 5
transition_s = 2
end_ramp_s = 2

[[channels]]
id = 1
site = "lower-back-left"
electrode_area_cm2 = 20
max_amplitude_ma = 40

[[phases]]
name = "steady"
duration_s = 10
frequency_hz = {hz}
pulse_width_us = 180
amplitude = "MT-10%"
amplitude_cap = "MT"
"""


def _program(hz: float) -> LoadedProgram:
    text = _PROGRAM.format(hz=repr(hz))
    return LoadedProgram(parse_program_text(text, "<rates-made>"), "<rates-made>",
                         hashlib.sha256(text.encode()).hexdigest(), False, text)


def _run(url: str, hz: float, ceiling_hz: float, keys: list[tuple[float, str]]
         ) -> list[tuple[float, float]] | None:
    """The (rate, mA) of every recorded interval with output; None if the run was refused."""
    try:
        prepared = prepare_run(_program(hz), url, tighten(DEFAULTS, frequency_max_hz=ceiling_hz))
    except ValidationFailed:
        return None

    async def main() -> None:
        driver = prepared.driver
        await driver.connect()
        assert prepared.verified is not None
        try:
            session = Session(prepared.verified, driver, pause_limit_s=4.0)
            loop = asyncio.get_running_loop()
            for t_s, key in keys:
                action = {"plus": lambda s=session: s.change_intensity(10.0),
                          "minus": lambda s=session: s.change_intensity(-10.0),
                          "pause": session.pause, "resume": session.resume}[key]
                loop.call_later(t_s, action)
            await session.run()
        finally:
            with contextlib.suppress(EmsError):
                await driver.close()

    VirtualClock(None).run(main())
    rows = prepared.driver.device.intervals(1)  # type: ignore[attr-defined]
    return [(float(r["frequency_hz"]), float(r["amplitude_ma"]))
            for r in rows if r["amplitude_ma"] > 0]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(url=st.sampled_from(sorted(DEVICES)), data=st.data())
def test_no_rate_recorded_is_above_the_ceiling(url: str, data: st.DataObject) -> None:
    made_hz, top_hz = DEVICES[url]
    hz = data.draw(st.floats(top_hz * 0.8, top_hz), label="rate asked")
    made = made_hz(hz)
    # limits only tighten: the ceiling stays within the default one (100 Hz)
    ceiling_hz = data.draw(st.floats(hz, min(max(hz, made) + 0.2, DEFAULTS.frequency_max_hz)),
                           label="ceiling")
    keys = data.draw(st.lists(st.tuples(st.floats(0.5, 14.0),
                                        st.sampled_from(["plus", "minus", "pause", "resume"])),
                              max_size=4), label="keys")
    recorded = _run(url, hz, ceiling_hz, keys)
    if made > ceiling_hz + 1e-9:
        assert recorded is None, f"{hz} Hz is made as {made} Hz, over {ceiling_hz} Hz, and ran"
        return
    assert recorded, "a plan within the ceiling ran without output"
    assert max(rate for rate, _ in recorded) <= ceiling_hz + 1e-9


@pytest.mark.parametrize(("url", "hz", "ceiling_hz"), [("sim+sciencemode4", 97.6, 99.0),
                                                       ("sim+sciencemode2", 49.7, 49.8)])
def test_a_rate_made_over_the_ceiling_is_refused_before_any_output(
        url: str, hz: float, ceiling_hz: float) -> None:
    assert DEVICES[url][0](hz) > ceiling_hz
    assert _run(url, hz, ceiling_hz, []) is None
    assert _run(url, hz, DEVICES[url][0](hz), []) is not None  # at the rate made: it runs
