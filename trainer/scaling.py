"""Scaling analysis of a sweep (issue 4): best lr per batch size, steps / samples / time to target,
and the critical batch size fitted to them (McCandlish et al. 2018). numpy only, no torch: the app
and `python -m trainer report` use it on run summaries.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np


class FitError(ValueError):
    """The measured points cannot give a critical batch size (too few, or they do not follow the model)."""


def _line_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least squares y ~ a + c x in relative error; returns (a, c, relative RMS residual).

    Relative (weights 1/y): steps and examples to a target span orders of magnitude across batch
    sizes and their noise grows with them, so plain least squares would let the largest values
    decide the fit alone.
    """
    w = 1.0 / y
    design = np.stack([np.ones_like(x), x], axis=1) * w[:, None]
    (a, c), *_ = np.linalg.lstsq(design, y * w, rcond=None)
    rel = (a + c * x - y) / y
    return float(a), float(c), float(np.sqrt(np.mean(rel**2)))


def _points(batch_sizes: Sequence[float], values: Sequence[float], what: str) -> tuple[np.ndarray, np.ndarray]:
    b = np.asarray(batch_sizes, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if b.ndim != 1 or b.shape != v.shape:
        raise FitError(f"need one {what} value per batch size, got {b.size} batch sizes and {v.size} values")
    if b.size < 2:
        raise FitError(f"fitting the critical batch size needs at least 2 points, got {b.size}")
    if not (np.all(np.isfinite(b)) and np.all(np.isfinite(v)) and np.all(b > 0) and np.all(v > 0)):
        raise FitError(f"batch sizes and {what} must be positive and finite, got {list(b)} and {list(v)}")
    if np.unique(b).size < 2:
        raise FitError(f"fitting the critical batch size needs at least 2 different batch sizes, got only {b[0]:g}")
    return b, v


def fit_critical_batch(batch_sizes: Sequence[float], steps: Sequence[float]) -> dict[str, float]:
    """Fit S = S_min (1 + B_crit / B) to steps-to-target S measured at batch sizes B.

    Linear in 1/B: S = S_min + (S_min B_crit) / B. Returns {"S_min", "B_crit", "rel_rms"} (the last
    the relative RMS residual: how well the points follow the model). Raises FitError when there
    are too few points or they do not follow the model (steps that grow with the batch size).
    """
    b, s = _points(batch_sizes, steps, "steps")
    s_min, slope, rel_rms = _line_fit(1.0 / b, s)
    if s_min <= 0.0:
        raise FitError(
            f"steps fall as fast as 1/B or faster (fitted S_min = {s_min:.3g} <= 0): the points never leave "
            "the perfect-scaling regime, so B_crit is beyond them; add larger batch sizes"
        )
    if slope < 0.0:
        raise FitError(
            "steps to target grow with the batch size, which S = S_min (1 + B_crit / B) cannot describe "
            "(often a sign that lr was not tuned per batch size)"
        )
    return {"S_min": s_min, "B_crit": slope / s_min, "rel_rms": rel_rms}


def fit_examples(batch_sizes: Sequence[float], examples: Sequence[float]) -> dict[str, float]:
    """Fit E = E_min (1 + B / B_crit) to examples-to-target E measured at batch sizes B.

    Linear in B: E = E_min + (E_min / B_crit) B. Returns {"E_min", "B_crit", "rel_rms"}. Raises
    FitError when there are too few points or they do not follow the model.
    """
    b, e = _points(batch_sizes, examples, "examples")
    e_min, slope, rel_rms = _line_fit(b, e)
    if slope <= 0.0:
        raise FitError(
            "examples to target do not grow with the batch size, so no critical batch size shows in "
            "these points; add larger batch sizes"
        )
    if e_min <= 0.0:
        raise FitError(
            f"examples grow faster than linearly in B (fitted E_min = {e_min:.3g} <= 0): the points do "
            "not follow E = E_min (1 + B / B_crit); add smaller batch sizes"
        )
    return {"E_min": e_min, "B_crit": e_min / slope, "rel_rms": rel_rms}


def _num(value: Any) -> float | None:
    """A finite float from a summary field (csv strings or JSON numbers), else None."""
    if value is None or value == "":
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _spread(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def lr_points(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One point per (batch size, lr): seeds aggregated as mean and standard deviation.

    A point counts as reaching the target only if every one of its seeds did (a lucky seed
    does not make an lr good); steps, samples and time are over the seeds that reached it.
    """
    # Runs of different [[variants]] (optimizers, split-backward; issue 7) are different points even
    # at the same batch size and lr; rows without a variant have "".
    groups: dict[tuple[int, float, str], list[dict[str, Any]]] = {}
    for row in rows:
        b, lr = _num(row.get("batch_size")), _num(row.get("lr"))
        if b is None or lr is None:
            continue
        groups.setdefault((int(b), lr, str(row.get("variant") or "")), []).append(row)
    points = []
    for (b, lr, variant), runs in sorted(groups.items()):
        reached = [r for r in runs if _num(r.get("iters_to_target")) is not None]
        point: dict[str, Any] = {"batch_size": b, "lr": lr, "seeds": len(runs), "reached": len(reached)}
        if variant:
            point["variant"] = variant
        for key, field in (("steps", "iters_to_target"), ("samples", "samples_to_target"),
                           ("time_s", "time_to_target_s"), ("compute_s", "compute_to_target_s")):
            mean, std = _spread([v for r in reached if (v := _num(r.get(field))) is not None])
            point[key], point[f"{key}_std"] = mean, std
        for key in ("best_test_acc", "b_simple", "loss_diff_std", "grad_cos", "samples_per_s"):
            point[key], _ = _spread([v for r in runs if (v := _num(r.get(key))) is not None])
        point["statuses"] = sorted({str(r.get("status")) for r in runs})
        points.append(point)
    return points


def best_per_batch(points: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per batch size, the lr that reached the target in the fewest steps (Shallue et al. 2018:
    best trial per batch size); batch sizes where no lr reached it keep their best accuracy."""
    by_batch: dict[int, list[dict[str, Any]]] = {}
    for p in points:
        by_batch.setdefault(p["batch_size"], []).append(p)
    best = []
    for b, candidates in sorted(by_batch.items()):
        full = [p for p in candidates if p["reached"] == p["seeds"] and p["steps"] is not None]
        if full:
            pick = min(full, key=lambda p: (p["steps"], -(p["best_test_acc"] or 0)))
        else:
            pick = max(candidates, key=lambda p: p["best_test_acc"] or 0)
        best.append({**pick, "lrs_tried": len(candidates), "reached_target": bool(full)})
    return best


def analyse(rows: Sequence[dict[str, Any]], base_lr: float | None = None, base_batch: int | None = None) -> dict[str, Any]:
    """Everything issue 4 reports: points, best lr per batch size, the B_crit fits, B_simple.

    With base_lr/base_batch, the best lrs are set beside the linear and sqrt scaling rules.
    Fits that cannot be made say why (`error`), they never raise.
    """
    points = lr_points(rows)
    best = best_per_batch(points)
    reached = [p for p in best if p["reached_target"]]
    result: dict[str, Any] = {"points": points, "best": best}
    try:
        result["fit_steps"] = fit_critical_batch([p["batch_size"] for p in reached], [p["steps"] for p in reached])
    except FitError as exc:
        result["fit_steps"] = {"error": str(exc)}
    try:
        result["fit_examples"] = fit_examples([p["batch_size"] for p in reached], [p["samples"] for p in reached])
    except FitError as exc:
        result["fit_examples"] = {"error": str(exc)}
    b_simple = [p["b_simple"] for p in best if p.get("b_simple") is not None and p["b_simple"] > 0]
    result["b_simple"] = float(np.median(b_simple)) if b_simple else None
    if base_lr is not None and base_batch:
        for p in best:
            p["lr_linear_rule"] = base_lr * p["batch_size"] / base_batch
            p["lr_sqrt_rule"] = base_lr * math.sqrt(p["batch_size"] / base_batch)
    return result
