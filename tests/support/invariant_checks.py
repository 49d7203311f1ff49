"""The invariants of tests/session/test_invariants.py, judged on the device's recorded output.

Every check reads the simulator's record of what the device's output stage applied on each
channel (:meth:`SimulatedStimulator.intervals`, the recorder's source; the ``amplitude_ma``
column) and the pulses it made (:meth:`Recorder.pulses`) — never the commands the host sent.
The host side supplies only what the person asked for: the program time and the target
intensity at each tick, and when each event happened. What flows into the body can only be
less (the load limits it: checked too); a pad put back on a device that cannot sense it
(Coyote, openEMSstim) lets the full applied current flow again at once, which the fault matrix
documents as a known limit.

:func:`check_run` returns every broken rule as a sentence (empty: the run passes):

1. never above the verified plan × intensity (one device step of rounding allowed);
2. never a rise faster than the slew limit from the level actually delivered: over any stretch
   the output rises at most ``plan_rise × (stretch + one command period) + one step``, measured
   from whatever the device applied (zero after a pause, a watchdog or a lost link);
3. never more pulses in any 1 s window than N, the most pulses in any 1 s window of the plan;
4. zero at the end and, after any loss of the host (a freeze, a lost link), within the
   device's own bound; a user's stop on a healthy link (duplicated frames included) within
   L22's 300 ms;
5. a lost link ends the session as a fault, and output never rises after it (no reconnect).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from emsctl.pulse_window import pulses_per_s_array

from .invariant_runs import DISOBEYING_FAULTS, Run

__all__ = ["check_run"]

_EPS = 1e-6
#: L22: stop → output zero, end to end.
STOP_LATENCY_S = 0.3
#: Faults after which the link or the device may no longer take a stop (so the device's own
#: bound, not L22, applies to the end). Duplicated frames are not among them: a stop never
#: waits behind them (a byte link hands on at most 20 ms of line time ahead, and the stop drops
#: what waits), and a duplicated stop is still a stop.
_LINK_FAULTS = frozenset({"disconnect", "drop_acks", "late_acks", "busy", "corrupt_bytes",
                          "drop_frames", "device_reset"})


def check_run(run: Run) -> list[str]:
    """Every invariant ``run`` breaks, one sentence each."""
    problems: list[str] = []
    device = run.device
    exempt = _exempt_windows(run)
    for channel in device.channels:
        rows = device.intervals(channel)
        problems += _check_load(channel, rows, run.start_s)
        problems += _check_plan(run, channel, rows, exempt)
        problems += _check_slew(run, channel, rows, exempt)
        problems += _check_pulses(run, channel, rows)
    problems += _check_end(run)
    problems += _check_host_loss(run)
    problems += _check_link_loss(run)
    return problems


# ---------------------------------------------------------------------- helpers


def _s(run: Run, t_s: float) -> str:
    """A loop time as seconds into the session, for messages."""
    return f"{t_s - run.start_s:.3f} s"


def _on(rows: npt.NDArray[np.void]) -> npt.NDArray[np.void]:
    return rows[rows["amplitude_ma"] > 0]


def _disobeying_windows(run: Run) -> list[tuple[float, float]]:
    """While a device disobeys (strength turned on the device, a wrong output stage), its
    output is not what anyone asked for until the session sees the report and stops it: the
    fault matrix's bound (Coyote: within 150 ms; sim: at once), counted from when the
    disobeying output appears — the fault's time, or, when the output was off then (a pause,
    an off phase), the first output after it, which is when the device can first report it."""
    windows = []
    for t_s, event, _ in run.fired:
        if event.kind not in DISOBEYING_FAULTS:
            continue
        shows_s = _first_on_from(run, t_s)
        windows.append((t_s, max(t_s, shows_s) + run.family.lag_s + _EPS))
    return windows


def _first_on_from(run: Run, t_s: float) -> float:
    """The first time at or after ``t_s`` when some channel applies output (``t_s`` if one
    does then; −inf if none does after it)."""
    first = math.inf
    for channel in run.device.channels:
        on = _on(run.device.intervals(channel))
        on = on[on["t1_s"] > t_s]
        if on.size:
            first = min(first, max(float(on["t0_s"][0]), t_s))
    return first if math.isfinite(first) else -math.inf


def _exempt_windows(run: Run) -> list[tuple[float, float]]:
    """The disobeying windows, and while a command without a checksum can be corrupted (the
    openEMSstim's lines, the Coyote's frames) plus a lease after: a corrupted command that
    stays in range sets another level (within the cap: the driver's caps, the BF soft limits),
    frequency or width until the session sees it or the next command replaces it. The
    verified cap is checked there too."""
    windows = _disobeying_windows(run)
    for t_s, event, _ in run.fired:
        if event.kind == "corrupt_bytes" and not run.family.checksum:
            windows.append((t_s, t_s + (event.duration_s or math.inf) + run.sequence.lease_s
                            + run.family.lag_s))
    return windows


#: The Coyote driver still sends a frame that comes up to one 25 ms slot after the last one ran
#: out (a late timer on a busy host), and fails beyond that (drivers/coyote3/driver.py): a
#: silence that short is tolerated, and the output then continues at the level it had.
_COYOTE_GRACE_S = 0.025


def _short_silences(run: Run, rows: npt.NDArray[np.void]) -> list[int]:
    """Rows of the Coyote's record that are such a tolerated silence between two outputs."""
    if run.family.key != "coyote3":
        return []
    return [i for i in range(1, rows.size - 1)
            if rows["amplitude_ma"][i] == 0 and rows["amplitude_ma"][i - 1] > 0
            and rows["amplitude_ma"][i + 1] > 0
            and rows["t1_s"][i] - rows["t0_s"][i] <= _COYOTE_GRACE_S + _EPS]


def _frozen_in_flight(run: Run) -> list[tuple[float, float]]:
    """The instants a freeze ended. The emulated links and devices share the host's loop, so
    bytes on their way when the host froze arrive only when it thaws, all at that instant,
    where on a real link they arrive during the freeze: a change of output at exactly that
    instant is that late delivery, not something the host did after the freeze (which comes a
    link latency later). Rises there are not judged by invariant 2."""
    return [(t + e.value, t + e.value) for t, e, _ in run.fired
            if e.kind == "freeze" and e.value is not None]


def _frozen_restarts(run: Run, rows: npt.NDArray[np.void]) -> list[float]:
    """Where a late delivery of a freeze (see :func:`_frozen_in_flight`) turned output on."""
    thaws = _frozen_in_flight(run)
    out = []
    for i in range(1, rows.size):
        t0 = float(rows["t0_s"][i])
        if rows["amplitude_ma"][i] > 0 and rows["amplitude_ma"][i - 1] == 0 \
                and _exempt(t0, thaws):
            out.append(t0)
    return out


def _exempt(t_s: float, windows: list[tuple[float, float]]) -> bool:
    return any(a - _EPS <= t_s <= b for a, b in windows)


def _pulse_period_s(run: Run) -> float:
    """For a device that applies changes at its next pulse (the P24): the longest pulse
    period of the plan; 0 for the others."""
    if not run.family.per_pulse:
        return 0.0
    freqs = [float(np.min(np.minimum(c.segments["freq0_hz"], c.segments["freq1_hz"])))
             for c in run.prepared.plan.channels]
    return 1.0 / max(min(freqs), 1e-9)


def _lag_s(run: Run) -> float:
    """How long a command may take from the host's tick to the device's output (a change
    waits for the channel's next pulse period on the P24)."""
    return run.family.lag_s + _pulse_period_s(run)


#: Faults that lose commands on the link or make the device slow to take them: the last one
#: that got through then stays in force, as the lease lets it, until the next one lands.
_LOSSY = frozenset({"drop_frames", "corrupt_bytes", "late_acks", "drop_acks", "busy",
                    "disconnect"})


def _loss_windows(run: Run) -> list[tuple[float, float]]:
    """While commands can be lost or late, or the host is frozen, and a lease (the device's
    own bound, if longer) plus the lag after: the last command that got through may be in
    force that long (a frozen host renews nothing, and the device keeps its last command for
    up to its bound, which invariant 4 checks)."""
    lease_s = run.sequence.lease_s
    reach = max(lease_s, run.family.host_bound_s(lease_s)) + _lag_s(run)
    windows = []
    for t, e, _ in run.fired:
        if e.kind in _LOSSY:
            windows.append((t, t + (e.duration_s or math.inf) + reach))
        elif e.kind == "freeze" and e.value is not None:
            windows.append((t, t + e.value + reach))
    return windows


def _blind_windows(run: Run) -> list[tuple[float, float]]:
    """On a family that cannot see a lost frame or renewal: while frames can be lost or
    damaged, and a lease plus the lag after. The output is silent until the next one gets
    through with the level the host asks for then, and the device's pulse train starts again
    with it (a documented limit: SAFETY.md, fault matrix and HZ-12)."""
    if not run.family.blind:
        return []
    reach = run.sequence.lease_s + _lag_s(run)
    return [(t, t + (e.duration_s or math.inf) + reach)
            for t, e, _ in run.fired if e.kind in ("drop_frames", "corrupt_bytes")]


def _plan_channel(run: Run, channel: int) -> int | None:
    """Row of ``channel`` in the plan (device channel = program channel), None if unused."""
    for row, cplan in enumerate(run.prepared.plan.channels):
        if cplan.channel == channel:
            return row
    return None


def _step_ma(run: Run) -> float:
    return run.prepared.driver.capabilities.amplitude_step_ma


# ---------------------------------------------------------------------- 1: plan × intensity


def _check_load(channel: int, rows: npt.NDArray[np.void], start_s: float) -> list[str]:
    over = rows[rows["delivered_ma"] > rows["amplitude_ma"] + _EPS]
    if over.size:
        return [f"ch{channel}: {over['delivered_ma'][0]:g} mA flowed with "
                f"{over['amplitude_ma'][0]:g} mA applied at {over['t0_s'][0] - start_s:.3f} s"]
    return []


def _check_plan(run: Run, channel: int, rows: npt.NDArray[np.void],
                exempt: list[tuple[float, float]]) -> list[str]:
    on = _on(rows)
    row = _plan_channel(run, channel)
    if row is None:
        if on.size:
            return [f"ch{channel} is not in the plan but applied {on['amplitude_ma'].max():g} mA "
                    f"at {_s(run, on['t0_s'][0])}"]
        return []
    if not on.size:
        return []
    cap_ma = run.prepared.plan.channels[row].cap_ma
    step = _step_ma(run)
    problems = []
    above_cap = on[on["amplitude_ma"] > cap_ma + step + _EPS]
    for r in above_cap:
        if not _exempt(float(r["t0_s"]), _disobeying_windows(run)):
            problems.append(f"ch{channel}: {r['amplitude_ma']:g} mA at {_s(run, r['t0_s'])} is "
                            f"above the verified cap of {cap_ma:g} mA")
            break
    ticks = run.ticks
    if not ticks:
        return [*problems, f"ch{channel}: output with no tick of the session"]
    tick_t = np.array([t.t_s for t in ticks])
    stim = np.array([t.stim_time_s for t in ticks])
    target = np.array([t.target_pct for t in ticks])
    allowed = run.prepared.plan.setpoints_at(stim).amplitude_ma[row] * target / 100.0
    lag = _lag_s(run)
    lossy_lag = lag + max(run.sequence.lease_s, run.family.host_bound_s(run.sequence.lease_s))
    losses = _loss_windows(run)
    for r in on:
        t0, t1, level = float(r["t0_s"]), float(r["t1_s"]), float(r["amplitude_ma"])
        if _exempt(t0, exempt):
            continue
        # the allowance is piecewise constant: it changes only at a tick and a lag after one,
        # so its lowest value over the row is at the row's start or one of those instants
        later = np.concatenate([tick_t + lag, tick_t + lossy_lag]) + _EPS
        candidates = np.concatenate([[t0], later[(later > t0) & (later < t1)],
                                     tick_t[(tick_t > t0) & (tick_t < t1)]])
        for t in candidates:
            # a command lost on the link leaves the one before it in force, for its lease
            t_lag = lossy_lag if _exempt(float(t), losses) else lag
            limit = _allowed_at(float(t), tick_t, allowed, t_lag)
            if level > limit + step + _EPS:
                return [*problems,
                        f"ch{channel}: {level:g} mA at {_s(run, t)} is above the plan × intensity "
                        f"({limit:.3f} mA, one {step:g} mA step allowed)"]
    return problems


def _allowed_at(t_s: float, tick_t: npt.NDArray[np.float64],
                allowed: npt.NDArray[np.float64], lag_s: float) -> float:
    """The most the host asked for that may still be in force at ``t_s``: what it asked at
    every tick in the last ``lag_s`` and at the last tick before that (commands land in
    order, each within ``lag_s``)."""
    last = int(np.searchsorted(tick_t, t_s - lag_s - _EPS, side="right")) - 1
    upto = int(np.searchsorted(tick_t, t_s + _EPS, side="right"))
    lo = max(last, 0)
    if upto <= lo and last < 0:
        return 0.0
    return float(allowed[lo:max(upto, lo + 1)].max())


# ---------------------------------------------------------------------- 2: slew


def _check_slew(run: Run, channel: int, rows: npt.NDArray[np.void],
                exempt: list[tuple[float, float]]) -> list[str]:
    """A rise to ``b`` at ``t2`` is checked against every earlier level ``a`` that lasted up to
    ``u``: ``b − a ≤ rate·(t2 − u + period) + step``. The worst earlier level is tracked as the
    running maximum of ``rate·u − a``."""
    rate = run.prepared.limits.plan_rise_ma_per_s
    # a device that applies a change from the channel's next pulse period (the P24) takes the
    # host's changes in steps of that period: a rise lands with the slew of that period
    period = max(run.prepared.driver.capabilities.update_period_s, _pulse_period_s(run))
    step = _step_ma(run)
    levels = rows["amplitude_ma"]
    # a family that cannot see a lost frame or renewal is silent until the next one gets
    # through, which brings the level the host asks for then: a documented limit (SAFETY.md,
    # fault matrix and HZ-12), so rises while commands can be lost are not judged there
    blind = _blind_windows(run)
    thaws = _frozen_in_flight(run)
    silences = set(_short_silences(run, rows))
    best = -math.inf  # max over earlier rows of rate·(their end) − their level
    for i in range(1, rows.size):
        prev_end = float(rows["t1_s"][i - 1])
        if i - 1 not in silences:  # a tolerated silence is no level to rise from
            best = max(best, rate * prev_end - float(levels[i - 1]))
        b = float(levels[i])
        t2 = float(rows["t0_s"][i])
        if b <= float(levels[i - 1]) or _exempt(t2, exempt) or _exempt(t2, blind) \
                or _exempt(t2, thaws):
            continue
        if i - 1 in silences:  # judged from the level before the silence, with its own time
            before = float(levels[i - 2])
            if b - before > rate * (t2 - float(rows["t1_s"][i - 2]) + period) + step + _EPS:
                return [f"ch{channel}: rose to {b:g} mA at {_s(run, t2)} after a "
                        f"{(t2 - float(rows['t0_s'][i - 1])) * 1000:.0f} ms silence, from "
                        f"{before:g} mA, faster than {rate:g} mA/s"]
            continue
        excess = b + best - rate * t2 - (rate * period + step)
        if excess > _EPS:
            a_min = float(levels[:i].min())
            return [f"ch{channel}: rose to {b:g} mA at {_s(run, t2)}, {excess:.3f} mA faster than "
                    f"{rate:g} mA/s from what was applied before (lowest earlier level "
                    f"{a_min:g} mA; one {period:g} s period and one {step:g} mA step allowed)"]
    return []


# ---------------------------------------------------------------------- 3: pulses per 1 s


def _verified_n(run: Run, channel: int) -> float:
    row = _plan_channel(run, channel)
    if row is None:
        return 0.0
    seg = run.prepared.plan.channels[row].segments
    seg = seg[(seg["amp0_ma"] > 0) | (seg["amp1_ma"] > 0)]
    if not seg.size:
        return 0.0
    freq = np.maximum(seg["freq0_hz"], seg["freq1_hz"])
    return float(pulses_per_s_array(freq, seg["burst_rate_hz"], seg["burst_pulses"]).max())


#: The emulated Coyote holds each frame's output 1 µs past its 100 ms (so that a frame that
#: comes exactly on time continues it, whatever the float noise): a pulse due exactly at the end
#: of a frame that no frame follows at once falls in that microsecond. The device makes no such
#: pulse; it is not counted.
_FRAME_SLACK_S = 2e-6


def _check_pulses(run: Run, channel: int, rows: npt.NDArray[np.void]) -> list[str]:
    times = np.sort(run.prepared.driver.recorder.pulses(channel)["t_s"])
    if run.family.key == "coyote3" and times.size:
        on = rows["amplitude_ma"] > 0
        run_ends = rows["t1_s"][on & ~np.append(on[1:], False)]
        slack = np.zeros(times.size, dtype=bool)
        for end_s in run_ends:
            slack |= (times <= end_s) & (times > end_s - _FRAME_SLACK_S)
        times = times[~slack]
    if not times.size:
        return []
    n = _verified_n(run, channel)
    # the fullest half-open window [t, t + 1 s) starts at a pulse
    end = np.searchsorted(times, times + 1.0 - 1e-9, side="left")
    counts = end - np.arange(times.size)
    # a frozen delivery that restarted the output (see _frozen_in_flight), or the end of a
    # tolerated Coyote silence, restarts its pulse train one pulse early at most: one more
    # pulse in the windows that hold it
    restarts = _frozen_restarts(run, rows) + [float(rows["t1_s"][i])
                                               for i in _short_silences(run, rows)]
    for restart_s in restarts:
        inside = (times <= restart_s + _EPS) & (times + 1.0 > restart_s)
        counts = np.where(inside, counts - 1, counts)
    # pulses a disobeying device or a corrupted unprotected command made are not counted, nor
    # those of a train that a lost frame on a blind link made start again
    for a, b in _exempt_windows(run) + _blind_windows(run):
        made = (times >= a - _EPS) & (times <= b)
        counts = counts - np.array([int(np.count_nonzero(made[i:e]))
                                    for i, e in enumerate(end)])
    worst = int(counts.max())
    if worst > n + _EPS:
        at = float(times[int(counts.argmax())])
        return [f"ch{channel}: {worst} pulses in the 1 s from {_s(run, at)}, more than the "
                f"verified N = {n:g}"]
    return []


# ---------------------------------------------------------------------- 4, 5: ends and losses


def _last_on_s(run: Run, after_s: float = -math.inf) -> float:
    """When the last output ended (−inf: none after ``after_s``)."""
    last = -math.inf
    for channel in run.device.channels:
        on = _on(run.device.intervals(channel))
        on = on[on["t1_s"] > after_s]
        if on.size:
            last = max(last, float(on["t1_s"].max()))
    return last


def _on_between(run: Run, t0_s: float, t1_s: float) -> float | None:
    """The first time in ``(t0_s, t1_s)`` when some channel applied output, if any."""
    first: float | None = None
    for channel in run.device.channels:
        on = _on(run.device.intervals(channel))
        hit = on[(on["t1_s"] > t0_s + _EPS) & (on["t0_s"] < t1_s - _EPS)]
        if hit.size:
            t = max(float(hit["t0_s"][0]), t0_s)
            first = t if first is None else min(first, t)
    return first


def _check_end(run: Run) -> list[str]:
    problems = []
    if any(o.amplitude_ma != 0 for o in run.device.outputs_at(math.inf)):
        problems.append("the device is left with output after the session")
    bound_s = run.family.host_bound_s(run.sequence.lease_s)
    last = _last_on_s(run)
    if last > run.end_s + bound_s + _EPS:
        problems.append(f"output until {_s(run, last)}, {last - run.end_s:.3f} s after the "
                        f"session ended (the device's bound is {bound_s:g} s)")
    # a stop may not get through a faulty link, nor leave a frozen host: the device's own
    # bound applies to it then (above)
    hindered = [t for t, e, _ in run.fired if e.kind in _LINK_FAULTS or e.kind == "freeze"]
    for t_s, event, running in run.fired:
        if event.kind != "stop" or not running:
            continue
        if any(t <= t_s + STOP_LATENCY_S for t in hindered):
            continue
        late = _on_between(run, t_s + STOP_LATENCY_S, math.inf)
        if late is not None:
            problems.append(f"output at {_s(run, late)}, more than {STOP_LATENCY_S:g} s after "
                            f"the stop at {_s(run, t_s)} (L22)")
        break
    return problems


def _check_host_loss(run: Run) -> list[str]:
    problems = []
    device_bound_s = run.family.host_bound_s(run.sequence.lease_s)
    for t_s, event, _ in run.fired:
        if event.kind != "freeze" or event.value is None:
            continue
        # ``t_s`` is when the stall began (a freeze's callback ran before time jumped)
        stall_end_s = t_s + event.value
        bound_s = device_bound_s
        if event.value <= bound_s:
            continue
        late = _on_between(run, t_s + bound_s, stall_end_s)
        if late is not None:
            problems.append(f"output at {_s(run, late)} during a {event.kind} of the host "
                            f"from {_s(run, t_s)}, past the device's {bound_s:g} s bound")
    return problems


def _check_link_loss(run: Run) -> list[str]:
    problems = []
    bound_s = run.family.host_bound_s(run.sequence.lease_s)
    for t_s, event, running in run.fired:
        if event.kind != "disconnect":
            continue
        late = _on_between(run, t_s + bound_s, math.inf)
        if late is not None:
            problems.append(f"output at {_s(run, late)}, after the link was lost at {_s(run, t_s)} "
                            f"and the device's {bound_s:g} s bound")
        for channel in run.device.channels:
            rows = run.device.intervals(channel)
            for i in range(1, rows.size):
                if rows["t0_s"][i] > t_s + _EPS and rows["amplitude_ma"][i] > \
                        rows["amplitude_ma"][i - 1] + _EPS:
                    problems.append(f"ch{channel} rose to {rows['amplitude_ma'][i]:g} mA at "
                                    f"{_s(run, rows['t0_s'][i])} after the link was lost at "
                                    f"{_s(run, t_s)}")
                    break
        # a stop the user gave before the host could learn of the loss keeps its reason
        stopped_first = any(e.kind == "stop" and r and t <= t_s + run.family.lag_s + _EPS
                            for t, e, r in run.fired)
        if running and not stopped_first and run.result.end_reason != "fault":
            problems.append(f"the link was lost at {_s(run, t_s)} while the session ran, but it "
                            f"ended {run.result.end_reason!r}: {run.result.message}")
        break
    return problems
