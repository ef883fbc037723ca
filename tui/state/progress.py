"""How far each run is and how long it still needs, from the rate measured so far.

A run's rate is iterations per second of its own training (epoch wall times, which leave
out other runs' slices and evaluation; before its first epoch ends, the event clock since
it started). Each run's time left is its remaining training time scaled by what the sweep's
clock has really spent per second of training so far (evaluation, checkpoints, interleaving,
several GPUs at once), pauses left out; the sweep's ETA is the sum of the runs' (the table
and the header agree). An estimate from measurements, shown to the minute. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tui.state.run import RunState
from tui.state.sweep import SweepState

ACTIVE = ("waiting", "running")


@dataclass(frozen=True)
class RunProgress:
    """Iterations done of the planned total, the measured rate and the training time left."""

    done: int
    total: int | None
    rate: float | None  # iterations per second of the run's own training
    left_s: float | None  # training seconds left at that rate (0 once the run has ended)

    @property
    def fraction(self) -> float | None:
        return min(1.0, self.done / self.total) if self.total else None


def measured_rate(run: RunState) -> float | None:
    """Iterations per second of the run's own training, or None before anything was timed."""
    timed = [(e.iters, e.wall_s) for e in run.epochs if e.wall_s and e.iters > 0]
    if timed:
        return sum(i for i, _ in timed) / sum(w for _, w in timed)
    marks = [(i, t) for i, t in run.time_marks if i > 0 and t > 0]
    if marks:
        i, t = marks[-1]
        return i / t
    return None


def run_progress(run: RunState) -> RunProgress:
    total = run.iters_per_epoch * run.epochs_total if run.iters_per_epoch and run.epochs_total else None
    total = run.planned_iters or total  # a scheduled run: its stages' iterations
    done = run.done_iters
    rate = measured_rate(run)
    if run.status not in ACTIVE:
        return RunProgress(done, total, rate, 0.0)
    left = max(0, total - done) / rate if (total is not None and rate) else None
    return RunProgress(done, total, rate, left)


@dataclass(frozen=True)
class SweepProgress:
    fraction: float | None
    eta_s: float | None
    #: Per run, the sweep-clock seconds its remaining work takes (0 once it ended, None while unknown): the
    #: table's "left"; the header's ETA is their sum, so the two always agree.
    left_s: dict[str, float | None] = field(default_factory=dict)


def training_clock(state: SweepState) -> float:
    """The sweep's clock less its pauses (frozen while paused)."""
    now = state.paused_at if state.paused_at is not None else state.clock
    return max(0.0, now - state.paused_s)


def sweep_progress(state: SweepState) -> SweepProgress:
    """The sweep's share done (in iterations), each run's time left and the ETA, in seconds of the sweep's
    clock: each run's remaining iterations at its own measured rate (a run not timed yet: the samples/s of
    the timed run with the nearest batch size), scaled by the clock seconds the sweep has spent per second
    of training (evaluation, other runs' slices, several GPUs at once), pauses left out."""
    runs = state.run_list()
    if not runs:
        return SweepProgress(None, None)
    progress = {r.run: run_progress(r) for r in runs}
    totals = [p.total for p in progress.values()]
    fraction = (
        sum(min(p.done, p.total) for p in progress.values() if p.total) / sum(t for t in totals if t)
        if all(totals)
        else None
    )
    if state.finished:
        return SweepProgress(fraction, 0.0, {r.run: 0.0 for r in runs})
    timed = [(r.batch_size, progress[r.run].rate * r.batch_size) for r in runs if progress[r.run].rate]
    own: dict[str, float | None] = {}
    for r in runs:
        p = progress[r.run]
        if p.left_s is not None:
            own[r.run] = p.left_s
        elif p.total is None or not timed:
            own[r.run] = None
        else:
            samples_s = min(timed, key=lambda bt: abs(bt[0] - r.batch_size))[1]
            own[r.run] = (p.total - p.done) * r.batch_size / samples_s
    own_done = sum(p.done / p.rate for p in progress.values() if p.rate)
    clock = training_clock(state)
    # Clock seconds per training second so far (> 1: evaluation and other runs' slices; < 1: several GPUs).
    overhead = min(20.0, max(0.05, clock / own_done)) if own_done > 0 and clock > 0 else 1.0
    left = {rid: (v * overhead if v is not None else None) for rid, v in own.items()}
    eta = (
        sum(v for v in left.values() if v is not None) if all(v is not None for v in left.values()) else None
    )
    return SweepProgress(fraction, eta, left)


def duration(seconds: float | None) -> str:
    """A rough duration for an estimate: 45s, 12m, 1h05m, 2d3h; '-' when unknown."""
    if seconds is None:
        return "-"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{round(s / 60)}m"
    if s < 86400:
        h, m = divmod(round(s / 60), 60)
        return f"{h}h{m:02d}m"
    d, h = divmod(round(s / 3600), 24)
    return f"{d}d{h}h"
