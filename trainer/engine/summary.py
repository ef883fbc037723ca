"""A run's row of summary.csv, drawn from its totals (docs/run-directory.md lists the columns)."""

from __future__ import annotations

import math
from typing import Any

from trainer.engine.totals import RunTotals, accuracy
from trainer.plan import RunSpec


def summary_row(
    totals: RunTotals,
    spec: RunSpec,
    eval_samples: int,
    *,
    status: str | None,
    split_chunks: int,
    optim: str,
    micro_batch: int,
    probe: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The run's row of summary.csv. `probe`: the batch-independent noise probe's figures
    (trainer/measure/noise_probe.py); with readings, its window's B_simple is the run's b_simple (else the
    in-batch estimate of the last epoch end)."""
    t = totals
    target = t.target or {}
    lo = (t.target_lo if t.target is not None else None) or {}
    collapse = t.collapse or {}
    acc = accuracy(t)
    return {
        "run": spec.run_id,
        "batch_size": spec.batch_size,
        "lr": spec.lr,
        "split_chunks": split_chunks,
        "status": status or "running",
        "epochs": t.epochs,
        "best_test_acc": acc.best,
        "time_to_target_s": target.get("wall_s"),
        "compute_to_target_s": target.get("compute_s"),
        "iters_to_target": target.get("iter"),
        "samples_per_s": (t.samples / t.wall_s) if t.wall_s > 0 else None,
        "mean_epoch_wall_s": _mean(t.epoch_walls),
        "mean_epoch_compute_s": _mean(t.epoch_computes),
        "seed": spec.seed,
        "samples_to_target": target.get("samples"),
        "loss_diff_std": _mean([v for v in t.loss_diff_stds if v is not None and math.isfinite(v)]),
        "grad_cos": _mean([v for v in t.grad_cosines if v is not None]),
        "variant": spec.variant,
        "optim": optim,
        "micro_batch": micro_batch,
        "final_test_acc": t.final_test_acc,
        "iters_to_target_lo": lo.get("iters"),
        "samples_to_target_lo": lo.get("samples"),
        "time_to_target_lo_s": lo.get("wall_s"),
        "compute_to_target_lo_s": lo.get("compute_s"),
        "optimizer_steps": t.optimizer_steps,
        "optimizer_steps_to_target": target.get("optimizer_steps"),
        "optimizer_steps_to_target_lo": lo.get("optimizer_steps"),
        "effective_lr": spec.lr * split_chunks,
        "collapsed_at_iter": collapse.get("iter"),
        "collapsed_at_epoch": collapse.get("epoch"),
        "collapse_reason": collapse.get("reason"),
        "last_test_acc": acc.current,
        "eval_set": acc.eval_set or None,
        "eval_samples": eval_samples or None,
        **_probe_fields(probe, t.b_simple),
    }


PROBE_FIELDS = (
    "b_simple_lo",
    "b_simple_hi",
    "b_simple_undefined",
    "b_simple_readings",
    "b_simple_from_samples",
    "b_simple_to_samples",
    "b_simple_at_samples",
)


def _probe_fields(probe: dict[str, Any] | None, in_batch: float | None) -> dict[str, Any]:
    """The summary's B_simple: the probe window's with its interval where it has readings, else the
    in-batch estimate (no interval; `b_simple_source` says which)."""
    if probe and probe.get("b_simple_readings"):
        return {
            "b_simple": probe.get("b_simple"),
            **{k: probe.get(k) for k in PROBE_FIELDS},
            "b_simple_source": "probe",
        }
    return {
        "b_simple": in_batch,
        **{k: None for k in PROBE_FIELDS},
        "b_simple_source": "in_batch" if in_batch is not None else None,
    }


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
