"""How far each run is and how long it still needs, from the rate measured so far.

A run's rate is iterations per second of its own training (epoch wall times, which leave
out other runs' slices and evaluation; before its first epoch ends, the event clock since
it started). The sweep's ETA adds the runs' remaining training times and scales them by
what the sweep's clock has really spent per second of training so far (evaluation,
checkpoints, interleaving, several GPUs at once): an estimate from measurements, shown
to the minute. Pure: the table and the header call these.
"""
from __future__ import annotations

from dataclasses import dataclass

from tui.runstate import RunState
from tui.state import SweepState

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


def sweep_progress(state: SweepState) -> SweepProgress:
    """The sweep's share done (in iterations) and its ETA in seconds of the sweep's clock."""
    runs = state.run_list()
    if not runs:
        return SweepProgress(None, None)
    progress = {r.run: run_progress(r) for r in runs}
    totals = [p.total for p in progress.values()]
    fraction = (sum(min(p.done, p.total) for p in progress.values() if p.total) / sum(t for t in totals if t)
                if all(totals) else None)
    if state.finished:
        return SweepProgress(fraction, 0.0)
    # Runs not timed yet: the samples/s of the timed run with the nearest batch size.
    timed = [(r.batch_size, progress[r.run].rate * r.batch_size) for r in runs if progress[r.run].rate]
    if not timed:
        return SweepProgress(fraction, None)
    own_done = sum(p.done / p.rate for p in progress.values() if p.rate)
    left = 0.0
    for r in runs:
        p = progress[r.run]
        if p.left_s is not None:
            left += p.left_s
        elif p.total is None:
            return SweepProgress(fraction, None)
        else:
            samples_s = min(timed, key=lambda bt: abs(bt[0] - r.batch_size))[1]
            left += (p.total - p.done) * r.batch_size / samples_s
    # Clock seconds per training second so far (> 1: evaluation and other runs' slices; < 1: several GPUs).
    overhead = state.clock / own_done if own_done > 0 and state.clock > 0 else 1.0
    return SweepProgress(fraction, left * min(20.0, max(0.05, overhead)))


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
