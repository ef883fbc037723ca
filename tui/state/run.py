"""One run as the app knows it: settings, per-iteration losses, epochs, evaluations, target.

Built by tui.state.sweep's event handlers; read by the plots, table, timing panel and progress.
No Textual, no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trainer.analysis.accuracy import FULL, RunAccuracy, run_accuracy, run_kind
from tui.state.labels import RunKey
from tui.state.series import LossSeries, to_float


def opt_float(value: Any) -> float | None:
    v = to_float(value)
    return None if math.isnan(v) else v


@dataclass
class EpochRecord:
    """One epoch_end event, typed."""

    epoch: int
    iters: int
    samples: int
    wall_s: float | None
    compute_s: float | None
    data_s: float | None
    train_loss: float | None
    test_loss: float | None
    test_acc: float | None
    samples_per_s: float | None
    total_iters: int | None = None
    #: The epoch's oscillation figures: oscillation (sd of successive loss differences), cosine of
    #: consecutive gradients, and the gradient noise scale; None where the trainer had none.
    loss_diff_std: float | None = None
    grad_cos: float | None = None
    b_simple: float | None = None


@dataclass(frozen=True)
class EvalPoint:
    """One evaluation on test data after `iters` iterations (`samples` samples) of training.

    `evaluation` events give one on the evaluation slice within and at the end of every epoch, epoch_end
    events one on the full test set (the series takes points at any iteration); `eval_set` says which
    set (trainer/analysis/accuracy.py), and a run's accuracy and curves use one kind only.
    """

    iters: int
    samples: int
    test_acc: float | None
    test_loss: float | None
    eval_set: str = FULL


@dataclass(frozen=True)
class NoiseWindow:
    """B_simple over the noise probe's window (trainer/measure/noise_probe.py): None when undefined (the
    window's mean |G|^2 <= 0); lo/hi its 95% jackknife interval (None: too few readings; hi None
    with lo 0: open above)."""

    b_simple: float | None
    lo: float | None
    hi: float | None
    undefined: float | None
    readings: int


@dataclass
class RunState:
    """Everything known about one run (one batch size)."""

    run: str
    batch_size: int
    lr: float
    split_chunks: int = 1
    momentum: float | None = None
    iters_per_epoch: int = 0
    status: str = "waiting"  # waiting | running | done | diverged | oom | stopped | failed
    reason: str = ""
    #: The [[variants]] arm of the run ("" without variants) and the device it trained on.
    variant: str = ""
    device: str = ""
    #: Runs in its fused group (perf.fuse_runs, run_started.fused_runs); 0 when it trains alone. Its epoch
    #: times are then its 1/K share of the group's time.
    fused_k: int = 0
    seed: int | None = None
    #: Split-backward chunks the run was configured with (split_chunks changes with live switches).
    initial_chunks: int = 1
    #: Why the trainer kept this run plain at the newest split request ("" when it took it).
    split_refused: str = ""
    #: Epochs the run is to train (run_started; else the sweep's), for progress.
    epochs_total: int | None = None
    t_started: float | None = None
    losses: LossSeries = field(default_factory=LossSeries)
    epochs: list[EpochRecord] = field(default_factory=list)
    #: Test evaluations in training order, of every kind (see EvalPoint; `own_evals`: the run's kind).
    evals: list[EvalPoint] = field(default_factory=list)
    target: dict[str, Any] | None = None
    #: Seconds of one training step of this run's kind timed alone before the sweep trained (its
    #: `step_time` event, trainer.sweep.calibrate); None where the sweep timed none.
    step_alone_s: float | None = None
    #: (iteration, chunks) of every live split-backward switch, in order.
    mode_changes: list[tuple[int, int]] = field(default_factory=list)
    #: A scheduled run's batch sizes (sweep.batch_schedule): (iteration, samples, batch size) from its start
    #: and at each batch_size_changed, in order; [] for a run of one batch size.
    batch_stages: list[tuple[int, int, int]] = field(default_factory=list)
    #: A scheduled run's planned batch sizes, "16→64→128" (its label), and the iterations its schedule plans
    #: over all its epochs (0: a run of one batch size, whose iterations per epoch say it).
    schedule: str = ""
    planned_iters: int = 0
    #: A scheduled run's stages as its run_started planned them: samples, batch_size and lr of each.
    schedule_stages: list[dict[str, Any]] = field(default_factory=list)
    #: (iteration count done, seconds since the run started) from losses events:
    #: the wall-time axis before the first epoch has a measured wall time.
    time_marks: list[tuple[int, float]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    #: The batch-independent noise probe's latest window (noise_probe events): B_simple with its
    #: 95% interval, the share of undefined readings and how many readings the window holds.
    probe: NoiseWindow | None = None
    #: Grows on every event that touched this run: plots of unchanged runs are not redrawn.
    version: int = 0

    def key(self) -> RunKey:
        """The settings that tell this run apart from others (tui.state.labels)."""
        return RunKey(
            self.run, self.batch_size, self.lr, self.seed, self.variant, self.initial_chunks, self.schedule
        )

    def add_eval(self, point: EvalPoint) -> None:
        """Keep evaluations ordered by iteration (one of a kind at an iteration already known replaces it)."""
        evals = self.evals
        if evals and (evals[-1].iters, evals[-1].eval_set) == (point.iters, point.eval_set):
            evals[-1] = point
        elif not evals or evals[-1].iters < point.iters:
            evals.append(point)
        else:
            kept = [e for e in evals if (e.iters, e.eval_set) != (point.iters, point.eval_set)]
            kept.append(point)
            kept.sort(key=lambda e: e.iters)
            self.evals = kept

    @property
    def own_evals(self) -> list[EvalPoint]:
        """The evaluations of the run's kind (trainer.analysis.accuracy.run_kind): what its curves show."""
        kind = run_kind(e.eval_set for e in self.evals if e.test_acc is not None)
        return [e for e in self.evals if e.eval_set == kind]

    @property
    def accuracy(self) -> RunAccuracy:
        """Current and best accuracy from the run's evaluations (trainer.analysis.accuracy.run_accuracy)."""
        return run_accuracy((e.eval_set, e.test_acc) for e in self.evals)

    @property
    def done_iters(self) -> int:
        """Iterations trained so far (losses received, or the last epoch's count if more)."""
        total = self.epochs[-1].total_iters if self.epochs and self.epochs[-1].total_iters else 0
        return max(len(self.losses), total or sum(e.iters for e in self.epochs))

    @property
    def effective_lr(self) -> float:
        """The lr that split-backward with k chunks behaves like (about lr x k, SEED.md)."""
        return self.lr * max(1, self.split_chunks)

    @property
    def last_loss(self) -> float | None:
        raw = self.losses.raw
        finite = raw[np.isfinite(raw)]
        return float(finite[-1]) if len(finite) else None

    @property
    def epoch(self) -> int:
        return self.epochs[-1].epoch if self.epochs else 0

    @property
    def test_acc(self) -> float | None:
        return self.accuracy.current

    @property
    def best_acc(self) -> float | None:
        return self.accuracy.best

    @property
    def samples_per_s(self) -> float | None:
        """Over all epochs: samples / wall time (what summary.csv reports)."""
        walls = [e.wall_s for e in self.epochs if e.wall_s is not None]
        if not walls or sum(walls) <= 0:
            return None
        return sum(e.samples for e in self.epochs) / sum(walls)

    @property
    def mean_wall_s(self) -> float | None:
        walls = [e.wall_s for e in self.epochs if e.wall_s is not None]
        return sum(walls) / len(walls) if walls else None

    @property
    def mean_compute_s(self) -> float | None:
        comp = [e.compute_s for e in self.epochs if e.compute_s is not None]
        return sum(comp) / len(comp) if comp else None

    @property
    def time_to_target_s(self) -> float | None:
        return opt_float(self.target.get("wall_s")) if self.target else None

    def time_alone_to_target(self) -> tuple[float | None, float] | None:
        """(last miss, hit) of the time to target alone: batches to them x the step time alone; None where
        the run has no step time alone or has not reached the target (the miss is None when not recorded)."""
        step = self.step_alone_s
        hit = opt_float(self.target.get("iter")) if self.target else None
        if step is None or hit is None:
            return None
        lo = opt_float(self.target.get("iter_lo"))
        return (lo * step if lo is not None else None), hit * step

    def latest(self, name: str) -> float | None:
        """The newest epoch's value of an epoch figure (b_simple, loss_diff_std, grad_cos) that has one."""
        for e in reversed(self.epochs):
            value = getattr(e, name)
            if value is not None:
                return value
        return None

    def wall_axis(self, n: int) -> np.ndarray:
        """Seconds of this run's own training at the end of iterations 0..n-1 (see wall_at)."""
        return self.wall_at(np.arange(n))

    def wall_at(self, iterations: np.ndarray) -> np.ndarray:
        """Seconds of this run's own training at the end of each of `iterations`.

        Measured at epoch ends (sum of epoch wall times, other runs' slices excluded),
        linear within an epoch, extrapolated at the last epoch's pace past the last
        epoch end. Before the first epoch ends, the event clock since run_started is
        the estimate (it includes other runs' slices in an interleaved sweep).
        """
        done = np.asarray(iterations, dtype=np.float64) + 1
        iters = [0]
        walls = [0.0]
        for e in self.epochs:
            if e.wall_s is None or e.iters <= 0:
                continue
            iters.append(iters[-1] + e.iters)
            walls.append(walls[-1] + e.wall_s)
        if len(iters) == 1:
            marks = [(0, 0.0)] + [(i, s) for i, s in self.time_marks if i > 0]
            if len(marks) == 1:
                return done.copy()  # nothing timed yet: fall back to iterations
            iters = [m[0] for m in marks]
            walls = [m[1] for m in marks]
        out = np.interp(done, iters, walls)
        last_i, last_w = iters[-1], walls[-1]
        beyond = done > last_i
        if beyond.any():
            pace = (walls[-1] - walls[-2]) / max(1, iters[-1] - iters[-2])
            out[beyond] = last_w + (done[beyond] - last_i) * pace
        return out
