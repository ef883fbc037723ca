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
its run_started carrying `branch` {base_run, epoch, iters, samples, loss, acc, decrease, target_loss}.

A branch evaluates the evaluation slice (trainer.analysis.accuracy) every `branch.eval_every` samples
and ends at the first evaluation at or below loss x (1 - decrease), or after `branch.max_samples`
without it. Its crossing is the interval between that evaluation and the one before (steps and samples
counted from the branch point), as the sweep's crossings of the target are. Each point's fit, beside
the base run's noise-probe B_simple there, is emitted as `branch_point`; the curve, the schedule it
proposes (trainer.analysis.schedule) and its expected savings as `branch_result`, before `sweep_finished`.
"""

from __future__ import annotations

import dataclasses
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from trainer.analysis import schedule
from trainer.analysis.bcrit import Crossing, fit_with_uncertainty
from trainer.config import Config
from trainer.data.datasets import Dataset
from trainer.engine.checkpoint import checkpoint_path, load_checkpoint, restore_run, run_state
from trainer.engine.evaluation import TestSet, evaluate
from trainer.engine.group import Group
from trainer.engine.run import Run
from trainer.plan import RunSettings, RunSpec, lr_labels, resolved_lr
from trainer.runlog import Emitter, RunDirWriteError, ensure_dir, write_atomic
from trainer.runlog.controls import Controls

EVALS_PER_BRANCH = 40  # evaluations over branch.max_samples when branch.eval_every = 0


@dataclass
class BranchPoint:
    """The base run after one of branch.epochs: where it stood, and its saved state."""

    epoch: int
    iters: int
    samples: int
    state: bytes  # the checkpoint, serialised (the file's bytes, or in memory without a run directory)
    path: str = ""  # the kept checkpoint file ("" without a run directory)
    probe: dict[str, Any] = field(default_factory=dict)  # the base run's noise-probe figures there


def point_path(run_dir: Path | str, run_id: str, epoch: int) -> Path:
    """Where the base run's checkpoint after `epoch` is kept."""
    return checkpoint_path(run_dir, f"{run_id}-e{epoch}")


class PointKeeper:
    """The base run's epoch-end hook: its usual hook (the checkpoint writer) first, then, after each of
    `epochs`, a kept copy of its checkpoint."""

    def __init__(
        self, epochs: list[int], run_dir: str = "", inner: Callable[[Run], None] | None = None
    ) -> None:
        self.epochs, self.run_dir, self.inner = set(epochs), run_dir, inner
        self.points: dict[int, BranchPoint] = {}

    def __call__(self, run: Run) -> None:
        if self.inner is not None:
            self.inner(run)
        totals = run.ledger.totals
        if totals.epochs not in self.epochs:
            return
        buf = io.BytesIO()
        torch.save(run_state(run), buf)
        path = ""
        if self.run_dir:
            target = point_path(self.run_dir, run.run_id, totals.epochs)
            try:
                ensure_dir(target.parent)
                write_atomic(target, buf.getbuffer())
            except OSError as exc:
                raise RunDirWriteError(Path(self.run_dir), exc) from exc
            path = str(target)
        noise = run.parts.probes.noise if run.parts.probes is not None else None
        self.points[totals.epochs] = BranchPoint(
            totals.epochs,
            totals.iters,
            totals.samples,
            buf.getvalue(),
            path,
            noise.figures() if noise is not None else {},
        )

    def recover(self, run_id: str) -> None:
        """Take up the points a resumed sweep's base run kept before the interruption (its kept files)."""
        for epoch in sorted(self.epochs - set(self.points)):
            path = point_path(self.run_dir, run_id, epoch) if self.run_dir else None
            if path is None or not path.is_file():
                continue
            state = load_checkpoint(path)
            self.points[epoch] = BranchPoint(
                epoch, int(state["iters"]), int(state["samples"]), b"", str(path)
            )


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


def crossing(evals: list[dict[str, Any]], target: float, iters0: int, samples0: int) -> Crossing | None:
    """The branch's crossing of `target`: from the last evaluation above it (or the branch point) to the
    first at or below it, in steps and samples since the branch point; None if none reached it."""
    lo_i, lo_s = 0, 0
    for e in evals:
        loss = e.get("test_loss")
        if loss is None:
            continue
        if loss <= target:
            return Crossing(lo_i, e["iter"] - iters0, lo_s, e["samples"] - samples0)
        lo_i, lo_s = e["iter"] - iters0, e["samples"] - samples0
    return None


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
    )
    restore_run(run, mine)
    for group in run.parts.optimizer.param_groups:
        group["lr"] = run.spec.lr  # the branch's lr, not the base run's; its warm-up is long over
    run.parts.warmup_iters = 0


def train_branch(
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
    runs: list[Any],
) -> dict[str, Any]:
    """Train one branch until the slice loss falls by branch.decrease (or max_samples), appending its run to
    `runs` first (a stop then ends it as any run); returns its measurement {batch_size, lr, crossing, step_s,
    loss}."""
    from trainer.engine.checkpoint import CheckpointWriter

    n_train = int(dataset.train.labels.shape[0])
    limit, every = max_samples(cfg, n_train), eval_every(cfg, n_train)
    extra_epochs = math.ceil(limit / n_train) + 1
    mine = dataclasses.replace(settings, epochs=point.epoch + extra_epochs, eval_every=every)
    watch = _Watch(emitter, spec.run_id)
    run = Run(spec, mine, dataset, device, watch, test, controls)  # type: ignore[arg-type]
    runs.append(run)
    if run_dir:
        run.on_epoch_end = CheckpointWriter(run_dir)
    run.fused_reason = "a branch trains alone: it starts from the base run's checkpoint"
    state = torch.load(io.BytesIO(point.state), map_location=device, weights_only=True)
    oom = run.prepare(lambda r: _restore(state, r, point))
    loss0 = acc0 = None
    if oom is None:
        loss0, acc0 = evaluate(run.parts.model, test.slice_x, test.slice_y)
    target = loss0 * (1 - cfg.branch.decrease) if loss0 is not None else None
    run.started_extra = {
        "branch": {
            "base_run": base_run,
            "epoch": point.epoch,
            "iters": point.iters,
            "samples": point.samples,
            "loss": loss0,
            "acc": acc0,
            "decrease": cfg.branch.decrease,
            "target_loss": target,
        }
    }
    run.announce(oom)
    hit: Crossing | None = None
    group = Group([run])
    while not run.finished:
        group.advance(every)
        hit = crossing(watch.evals, target, point.iters, point.samples) if target is not None else None
        done = run.ledger.totals.samples - point.samples
        if hit is not None or done >= limit:
            break
    totals = run.ledger.totals
    iters = totals.iters - point.iters
    step_s = (totals.wall_s + run.time.wall) / iters if iters > 0 else None
    if not run.finished:
        if hit is not None:
            run.finish(
                "done",
                f"the evaluation-slice loss fell by {cfg.branch.decrease:.0%} after {hit.steps_hi} steps",
            )
        else:
            run.finish(
                "done",
                f"the evaluation-slice loss did not fall by {cfg.branch.decrease:.0%} "
                f"within {limit} samples (branch.max_samples)",
            )
    return {
        "run": spec.run_id,
        "batch_size": spec.batch_size,
        "lr": spec.lr,
        "crossing": hit,
        "step_s": step_s,
        "status": run.status,
        "loss": loss0,
    }


def load_point(point: BranchPoint) -> BranchPoint:
    """The point with its state read back from the kept checkpoint file (as a resume would find it)."""
    if not point.path:
        return point
    state = load_checkpoint(point.path)
    buf = io.BytesIO()
    torch.save(state, buf)
    return dataclasses.replace(point, state=buf.getvalue())


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
    for epoch in sorted(cfg.branch.epochs):
        point = keeper.points.get(epoch)
        if point is None:  # the base run ended (diverged, stopped) before it
            log(f"branch: the base run {base.run_id} never finished epoch {epoch}; no branches from there")
            continue
        point = load_point(point)
        measured = []
        loss = None
        for spec in branch_specs(cfg, base, epoch):
            m = train_branch(
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
                runs,
            )
            measured.append(m)
            loss = m["loss"] if m["loss"] is not None else loss
            if m["step_s"] is not None:
                step_times.setdefault(m["batch_size"], []).append(m["step_s"])
        fit = fit_point(measured)
        probe = point.probe
        row = {
            "epoch": epoch,
            "iters": point.iters,
            "samples": point.samples,
            "loss": loss,
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
