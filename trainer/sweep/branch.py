"""Branched B_crit: the critical batch size at chosen points of training, measured by branching.

Merrill et al. (2025) measure the critical batch size directly: from checkpoints of one run, short
branches at several batch sizes train until the loss has fallen by a fixed amount, and the steps and
samples each took give B_crit there (McCandlish et al. 2018's S(B), the sweep's own fit and bootstrap,
trainer.analysis.bcrit). Done at early, middle and late points it shows B_crit growing as the loss falls.

A sweep with a [branch] table trains its one base run as usual, keeping a copy of the base run's
checkpoint after each of `branch.epochs` (`checkpoints/<base>-e<N>.pt`, the checkpoint format of
trainer.engine.checkpoint). Then, from each copy, one branch per batch size of `branch.batch_sizes` (and lr
factor of `branch.lr_factors`, times the lr the config's rule gives that batch size) continues the base
run's weights, optimizer state, RNG state and data order (the base run's next epoch, at the branch's
batch size; warm-up is over). Each branch is a run like any other: its own id (e3-bs64), its events,
its run_started carrying `branch` {base_run, epoch, iters, samples, loss, acc, trend_loss,
decrease, target_loss}. The branches of one batch size at a point (its lr factors) train as one fused
group where perf.fuse_runs lets them, each still to its own stop (trainer.sweep.branch_groups).

A branch evaluates the evaluation slice (trainer.analysis.accuracy) every `branch.eval_every` samples
and ends once its slice loss has reached the target in all but a tail of the bootstrap draws of its
non-increasing fit, or after `branch.max_samples` without it. Its crossing (steps and samples counted from
the branch point) is the interval trainer.analysis.branch_crossing reads from that fit: it holds the
evaluations' noise as well as their spacing, so a lucky dip of one evaluation neither ends a branch nor
decides its steps.
The target is (1 - decrease) x the base run's smoothed slice loss at the point (its evaluations around
it, the same local fit), not x the one evaluation there: a point that lands on a noisy spike would make
the fall easy for every branch alike. Each point's fit, beside
the base run's noise-probe B_simple there, is emitted as `branch_point`; the curve, the schedule it
proposes (trainer.analysis.schedule) and its expected savings as `branch_result`, before `sweep_finished`.
"""

from __future__ import annotations

import dataclasses
import io
import math
from typing import Any, Callable

import torch

from trainer.analysis import branch_crossing, schedule
from trainer.analysis.bcrit import Crossing, fit_with_uncertainty
from trainer.analysis.branch_crossing import Reading
from trainer.config import Config
from trainer.config.branch_rules import base_batch_size
from trainer.data.datasets import Dataset
from trainer.engine.checkpoint import restore_run
from trainer.engine.evaluation import TestSet, evaluate
from trainer.engine.run import Run
from trainer.plan import RunSettings, RunSpec, lr_labels, resolved_lr
from trainer.runlog import Emitter
from trainer.runlog.controls import Controls
from trainer.sweep.branch_groups import GroupTrainer
from trainer.sweep.branch_points import BranchPoint, PointKeeper, load_point, point_path  # noqa: F401 - the sweep uses them here

EVALS_PER_BRANCH = 40  # evaluations over branch.max_samples when branch.eval_every = 0


def base_spec(cfg: Config, specs: list[RunSpec]) -> RunSpec | None:
    """The run the branches start from: the sweep's run at branch.base_batch_size (or its only run); None
    where `specs` (a shard's) do not hold it."""
    size = base_batch_size(cfg)
    return next((s for s in specs if s.batch_size == size), None)


def branch_specs(cfg: Config, base: RunSpec, epoch: int) -> list[RunSpec]:
    """The branches from the point after `epoch`: batch size x lr factor, ids e<epoch>-bs<B>[-lr<lr>]."""
    br = cfg.branch
    lrs = {(b, f): resolved_lr(cfg, b) * f for b in br.batch_sizes for f in br.lr_factors}
    labels = lr_labels(list(lrs.values()))
    many = len(br.lr_factors) > 1
    return [
        dataclasses.replace(
            base,
            run_id=f"e{epoch}-bs{b}" + (f"-lr{labels[lr]}" if many else ""),
            batch_size=b,
            lr=lr,
            split_chunks=1,
        )
        for (b, _), lr in lrs.items()
    ]


def max_samples(cfg: Config, n_train: int) -> int:
    return cfg.branch.max_samples or n_train


def eval_every(cfg: Config, n_train: int) -> int:
    return cfg.branch.eval_every or max(1, max_samples(cfg, n_train) // EVALS_PER_BRANCH)


class _Watch:
    """An emitter for one branch: passes every event on and keeps the branch's slice evaluations."""

    def __init__(self, emitter: Emitter, run_id: str) -> None:
        self.emitter, self.run_id = emitter, run_id
        self.evals: list[dict[str, Any]] = []

    def emit(self, type_: str, run: str | None = None, **fields: Any) -> dict[str, Any]:
        event = self.emitter.emit(type_, run, **fields)
        if type_ == "evaluation" and run == self.run_id:
            self.evals.append(event)
        return event

    def close(self) -> None:  # the sweep's emitter is closed by its owner
        pass


def crossing(
    evals: list[dict[str, Any]], loss0: float, target: float, iters0: int, samples0: int
) -> Crossing | None:
    """The branch's crossing of `target` read from its slice losses (trainer.analysis.branch_crossing),
    in steps and samples since the branch point (whose loss is `loss0`); None until it is established."""
    readings = [Reading(0, 0, loss0)] + [
        Reading(e["iter"] - iters0, e["samples"] - samples0, e["test_loss"])
        for e in evals
        if e.get("test_loss") is not None
    ]
    return branch_crossing.crossing(readings, target)


def _restore(state: dict[str, Any], run: Run, point: BranchPoint) -> None:
    """Put a prepared branch run at the base run's point: weights, optimizer state and RNG from the
    checkpoint, its position (epoch, iterations, samples) from the base run, everything measured fresh."""
    mine = dict(state)
    mine.update(
        run=run.spec.run_id,
        batch_size=run.spec.batch_size,
        lr=run.spec.lr,
        split_chunks=1,
        probes=None,
        totals={"epochs": point.epoch, "iters": point.iters, "samples": point.samples},
        trained_batch_size=run.spec.batch_size,  # the branch's batch and lr, not those the base run had
        trained_lr=run.spec.lr,
    )
    restore_run(run, mine)
    for group in run.parts.optimizer.param_groups:
        group["lr"] = run.spec.lr  # the branch's lr, not the base run's; its warm-up is long over
    run.parts.warmup_iters = 0


class Branch:
    """One branch from a point, as a member of the group that trains it (trainer.sweep.branch_groups): its
    run, put at the point by `restore` (which reads the loss there and sets the target), its stop
    (`reached`, checked every `every` samples) and its measurement (`end`)."""

    def __init__(
        self,
        spec: RunSpec,
        point: BranchPoint,
        cfg: Config,
        settings: RunSettings,
        dataset: Dataset,
        device: torch.device,
        emitter: Emitter,
        test: TestSet,
        controls: Controls | None,
        run_dir: str,
        base_run: str,
        trend: float | None = None,
    ) -> None:
        from trainer.engine.checkpoint import CheckpointWriter

        n_train = int(dataset.train.labels.shape[0])
        self.limit, self.every = max_samples(cfg, n_train), eval_every(cfg, n_train)
        extra_epochs = math.ceil(self.limit / n_train) + 1
        # No noise probes in a branch: the base run's B_simple at the point is the one reported, and a probe
        # reading costs a branch as much as several of its steps.
        quiet = dataclasses.replace(settings.gns, every=0, probe_every=0)
        mine = dataclasses.replace(
            settings, epochs=point.epoch + extra_epochs, eval_every=self.every, gns=quiet
        )
        self.cfg, self.point, self.base_run, self.trend, self.test = cfg, point, base_run, trend, test
        self.watch = _Watch(emitter, spec.run_id)
        self.run = Run(spec, mine, dataset, device, self.watch, test, controls)  # type: ignore[arg-type]
        if run_dir:
            self.run.on_epoch_end = CheckpointWriter(run_dir)
        self.loss0: float | None = None
        self.acc0: float | None = None
        self.target: float | None = None
        self.hit: Crossing | None = None
        self.run.started_extra = self._started(None)

    def restore(self, run: Run) -> None:
        """Run.prepare's restorer: the run at the point, the loss there and the target."""
        state = torch.load(io.BytesIO(self.point.state), map_location=run.device, weights_only=True)
        _restore(state, run, self.point)
        self.loss0, acc0 = evaluate(run.parts.model, self.test.slice_x, self.test.slice_y)
        self.acc0 = acc0
        # The target: the fall from the base run's trend there (its smoothed slice loss), else from this reading.
        level = self.trend if self.trend is not None else self.loss0
        self.target = level * (1 - self.cfg.branch.decrease) if level is not None else None
        run.started_extra = self._started(acc0)

    def _started(self, acc0: float | None) -> dict[str, Any]:
        point = self.point
        return {
            "branch": {
                "base_run": self.base_run,
                "epoch": point.epoch,
                "iters": point.iters,
                "samples": point.samples,
                "loss": self.loss0,
                "acc": acc0,
                "trend_loss": self.trend,
                "decrease": self.cfg.branch.decrease,
                "target_loss": self.target,
            }
        }

    def reached(self) -> bool:
        """Whether the branch is over: its crossing is established, or it trained branch.max_samples."""
        point, run = self.point, self.run
        self.hit = (
            crossing(self.watch.evals, self.loss0, self.target, point.iters, point.samples)
            if self.target is not None and self.loss0 is not None
            else None
        )
        return self.hit is not None or run.ledger.totals.samples - point.samples >= self.limit

    def end(self) -> dict[str, Any]:
        """End the run (if it has not ended on its own) and return its measurement {batch_size, lr, crossing,
        step_s, loss}; step_s is the run's own time per step (its share, where it trained fused)."""
        run, hit, decrease = self.run, self.hit, self.cfg.branch.decrease
        totals = run.ledger.totals
        iters = totals.iters - self.point.iters
        step_s = (totals.wall_s + run.time.wall) / iters if iters > 0 else None
        if not run.finished:
            if hit is not None:
                run.finish(
                    "done",
                    f"the evaluation-slice loss fell by {decrease:.0%} within "
                    f"{hit.steps_lo:.0f}-{hit.steps_hi:.0f} steps",
                )
            else:
                run.finish(
                    "done",
                    f"the evaluation-slice loss did not fall by {decrease:.0%} "
                    f"within {self.limit} samples (branch.max_samples)",
                )
        return {
            "run": run.spec.run_id,
            "batch_size": run.spec.batch_size,
            "lr": run.spec.lr,
            "crossing": hit,
            "step_s": step_s,
            "status": run.status,
            "loss": self.loss0,
            "acc": self.acc0,
        }


def fit_point(measured: list[dict[str, Any]]) -> dict[str, Any]:
    """B_crit at one point from its branches: per batch size the lr with the fewest steps, the other lrs
    whose crossings overlap its one as the tie band (trainer.analysis.bcrit's bootstrap of the lr choice)."""
    by_size: dict[int, list[dict[str, Any]]] = {}
    for m in measured:
        if m["crossing"] is not None:
            by_size.setdefault(m["batch_size"], []).append(m)
    points: dict[float, list[Crossing]] = {}
    alternatives: dict[float, list[list[Crossing]]] = {}
    best_lr: dict[str, float] = {}
    for b, ms in by_size.items():
        ms.sort(key=lambda m: m["crossing"].steps_hi)
        best = ms[0]
        points[float(b)] = [best["crossing"]]
        best_lr[str(b)] = best["lr"]
        ties = [[m["crossing"]] for m in ms[1:] if m["crossing"].steps_lo <= best["crossing"].steps_hi]
        if ties:
            alternatives[float(b)] = ties
    fit = fit_with_uncertainty(points, alternatives=alternatives or None)
    fit.pop("band", None)
    fit["best_lr"] = best_lr
    return fit


def run_branches(
    cfg: Config,
    settings: RunSettings,
    keeper: PointKeeper,
    base: RunSpec,
    dataset: Dataset,
    device: torch.device,
    emitter: Emitter,
    test: TestSet,
    controls: Controls | None,
    run_dir: str,
    runs: list[Any],
    log: Callable[[str], None] = lambda m: None,
) -> dict[str, Any]:
    """Every branch of every kept point, in training order; appends the branch runs to `runs`; emits
    `branch_point` per point and `branch_result`. Returns branch_result's fields."""
    n_train = int(dataset.train.labels.shape[0])
    results: list[dict[str, Any]] = []
    step_times: dict[int, list[float]] = {}
    trains = GroupTrainer(settings, dataset, device, test, emitter, controls, runs)
    for epoch in sorted(cfg.branch.epochs):
        point = keeper.points.get(epoch)
        if point is None:  # the base run ended (diverged, stopped) before it
            log(f"branch: the base run {base.run_id} never finished epoch {epoch}; no branches from there")
            continue
        point = load_point(point)
        measured = []
        loss = acc = None
        trend = keeper.trend(point.samples)
        branches = [
            Branch(
                spec,
                point,
                cfg,
                settings,
                dataset,
                device,
                emitter,
                test,
                controls,
                run_dir,
                base.run_id,
                trend,
            )
            for spec in branch_specs(cfg, base, epoch)
        ]
        for m in trains.train(branches, f"e{epoch}"):
            measured.append(m)
            loss = m["loss"] if m["loss"] is not None else loss
            acc = m["acc"] if m.get("acc") is not None else acc
            if m["step_s"] is not None:
                step_times.setdefault(m["batch_size"], []).append(m["step_s"])
        fit = fit_point(measured)
        probe = point.probe
        row = {
            "epoch": epoch,
            "iters": point.iters,
            "samples": point.samples,
            "loss": loss,
            "acc": acc,
            "b_simple": probe.get("b_simple"),
            "b_simple_lo": probe.get("b_simple_lo"),
            "b_simple_hi": probe.get("b_simple_hi"),
            "branches": [
                {
                    "run": m["run"],
                    "batch_size": m["batch_size"],
                    "lr": m["lr"],
                    "status": m["status"],
                    "steps_lo": m["crossing"].steps_lo if m["crossing"] else None,
                    "steps": m["crossing"].steps_hi if m["crossing"] else None,
                    "samples_lo": m["crossing"].samples_lo if m["crossing"] else None,
                    "samples": m["crossing"].samples_hi if m["crossing"] else None,
                    "fused_runs": m.get("fused_runs", 0),
                }
                for m in measured
            ],
            **{
                k: fit.get(k)
                for k in (
                    "determined",
                    "reason",
                    "B_crit",
                    "B_crit_lo",
                    "B_crit_hi",
                    "S_min",
                    "S_min_lo",
                    "S_min_hi",
                    "E_min",
                    "E_min_lo",
                    "E_min_hi",
                    "best_lr",
                )
            },
        }
        emitter.emit("branch_point", base_run=base.run_id, **row)
        results.append(row)
    step_s = {b: sorted(v)[len(v) // 2] for b, v in step_times.items()}  # the median step of each batch size
    stages = schedule.propose(results, cfg.branch.batch_sizes, lambda b: resolved_lr(cfg, b))
    total = cfg.sweep.epochs * n_train
    result: dict[str, Any] = {
        "base_run": base.run_id,
        "base_batch_size": base.batch_size,
        "points": results,
        "decrease": cfg.branch.decrease,
        "step_s": {str(b): s for b, s in step_s.items()},
        "schedule": [s.as_dict() for s in stages],
    }
    if stages:
        result["megatron"] = schedule.megatron(stages)
        result["expected"] = schedule.expected_savings(stages, results, base.batch_size, total, step_s)
    emitter.emit("branch_result", **result)
    return result
