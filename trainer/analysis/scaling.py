"""Scaling analysis of a sweep: best lr per batch size, steps / samples / time to
target, and the critical batch size fitted to them (McCandlish et al. 2018). numpy only, no torch: the
app and `python -m trainer report` use it on run summaries.

Every crossing of the target is an interval, from the last evaluation that missed it (the summary's
`*_lo` fields, trainer/analysis/crossing.py) to the first that hit it; the B_crit fit with its uncertainty is
trainer/analysis/bcrit.py; the plain point fits to the intervals' midpoints, kept for the curves the app
draws, are trainer/analysis/point_fits.py; each run's time to target alone is trainer/analysis/time_alone.py.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np

from trainer.analysis.bcrit import Crossing, fit_with_uncertainty
from trainer.analysis.point_fits import FitError, fit_critical_batch, fit_examples
from trainer.analysis.time_alone import alone_point
from trainer.runlog import summary_number


def _spread(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.fmean(kept) if kept else None


# Statuses that end a run without a usable model: an lr whose runs end so is never the best,
# even where the target was reached before.
UNUSABLE = ("diverged", "collapsed")
UNFINISHED = ("running", "pending")


def chunks_of(row: dict[str, Any]) -> int:
    """Split-backward k of a summary row (1 = plain steps)."""
    k = summary_number(row.get("split_chunks"))
    return int(k) if k and k >= 1 else 1


def crossing_of(row: dict[str, Any]) -> tuple[Crossing | None, bool]:
    """A run's crossing of the target as an interval (None: not reached), and whether its lower end
    (the last miss) is recorded; without it the interval shrinks to the hit (resolution unknown)."""
    hi = summary_number(row.get("iters_to_target"))
    if hi is None:
        return None, True
    b = summary_number(row.get("batch_size")) or 1.0
    lo = summary_number(row.get("iters_to_target_lo"))
    s_hi = summary_number(row.get("samples_to_target"))
    s_hi = hi * b if s_hi is None else s_hi
    s_lo = summary_number(row.get("samples_to_target_lo"))
    known = lo is not None and lo <= hi
    if not known:
        lo, s_lo = hi, s_hi
    elif s_lo is None or s_lo > s_hi:
        s_lo = lo * b
    return Crossing(lo, hi, s_lo, s_hi), known


def lr_points(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One point per (batch size, lr, variant): seeds aggregated as means (and sd).

    A point counts as reaching the target only if every one of its seeds did (a lucky seed does not
    make an lr good). steps are batches (one per forward pass; k optimizer steps each in split-backward,
    `optimizer_steps`); `*_lo` are the last misses before the hits (see crossing_of).
    """
    # Runs of different [[variants]] (optimizers, split-backward) are different points even
    # at the same batch size and lr; rows without a variant have "".
    groups: dict[tuple[int, float, str], list[dict[str, Any]]] = {}
    for row in rows:
        b, lr = summary_number(row.get("batch_size")), summary_number(row.get("lr"))
        if b is None or lr is None:
            continue
        groups.setdefault((int(b), lr, str(row.get("variant") or "")), []).append(row)
    points = []
    for (b, lr, variant), runs in sorted(groups.items()):
        reached = [r for r in runs if summary_number(r.get("iters_to_target")) is not None]
        k = max(chunks_of(r) for r in runs)
        point: dict[str, Any] = {
            "batch_size": b,
            "lr": lr,
            "seeds": len(runs),
            "reached": len(reached),
            "split_chunks": k,
        }
        # Runs that trained in a fused group (trainer.engine.fuse): their times are shares of the group's.
        point["fused_runs"] = max(int(summary_number(r.get("fused_runs")) or 0) for r in runs)
        if variant:
            point["variant"] = variant
        point["effective_lr"] = _mean(
            [summary_number(r.get("effective_lr")) or lr * chunks_of(r) for r in runs]
        )
        for key, field, lo_field in (
            ("steps", "iters_to_target", "iters_to_target_lo"),
            ("samples", "samples_to_target", "samples_to_target_lo"),
            ("time_s", "time_to_target_s", "time_to_target_lo_s"),
            ("compute_s", "compute_to_target_s", "compute_to_target_lo_s"),
        ):
            mean, std = _spread([v for r in reached if (v := summary_number(r.get(field))) is not None])
            point[key], point[f"{key}_std"] = mean, std
            point[f"{key}_lo"] = (
                _mean([summary_number(r.get(lo_field)) for r in reached]) if reached else None
            )
        crossings = [crossing_of(r) for r in reached]
        point["resolution_known"] = all(known for _, known in crossings)
        if not point["resolution_known"]:  # some seed recorded only its hit: no interval to give
            point["steps_lo"] = point["samples_lo"] = point["time_s_lo"] = point["compute_s_lo"] = None
        point.update(alone_point(reached, point["resolution_known"]))
        if reached:
            opt = [
                summary_number(r.get("optimizer_steps_to_target"))
                or summary_number(r.get("iters_to_target")) * chunks_of(r)
                for r in reached
            ]
            point["optimizer_steps"] = statistics.fmean(opt)
            opt_lo = [
                summary_number(r.get("optimizer_steps_to_target_lo"))
                if summary_number(r.get("optimizer_steps_to_target_lo")) is not None
                else c.steps_lo * chunks_of(r)
                for r, (c, _) in zip(reached, crossings)
            ]
            point["optimizer_steps_lo"] = statistics.fmean(opt_lo) if point["resolution_known"] else None
        else:
            point["optimizer_steps"] = point["optimizer_steps_lo"] = None
        for key in (
            "best_test_acc",
            "final_test_acc",
            "b_simple",
            "loss_diff_std",
            "grad_cos",
            "samples_per_s",
        ):
            point[key], _ = _spread([v for r in runs if (v := summary_number(r.get(key))) is not None])
        # The seeds' spread of what the answer's matrix shows besides the crossing (trainer.analysis.answer);
        # final_train_loss is not a summary field: the app and the report add it from the epochs.
        _, point["best_test_acc_std"] = _spread(
            [v for r in runs if (v := summary_number(r.get("best_test_acc"))) is not None]
        )
        point["final_train_loss"], point["final_train_loss_std"] = _spread(
            [v for r in runs if (v := summary_number(r.get("final_train_loss"))) is not None]
        )
        # B_simple's interval over seeds: from the lowest low to the highest high (an open end stays open).
        measured = [r for r in runs if summary_number(r.get("b_simple")) is not None]
        lows = [summary_number(r.get("b_simple_lo")) for r in measured]
        highs = [summary_number(r.get("b_simple_hi")) for r in measured]
        point["b_simple_lo"] = min(lows) if measured and None not in lows else None
        point["b_simple_hi"] = max(highs) if measured and None not in highs else None
        point.update(_b_simple_target(reached))
        point["statuses"] = sorted({str(r.get("status")) for r in runs})
        point["usable"] = not any(s in UNUSABLE for s in point["statuses"])
        points.append(point)
    return points


def _b_simple_target(reached: list[dict[str, Any]]) -> dict[str, Any]:
    """B_simple where the point's seeds crossed the target (trainer/analysis/bsimple.py): the median over seeds, the
    interval from the lowest low to the highest high (an open end stays open); None where not measured."""
    values = [v for r in reached if (v := summary_number(r.get("b_simple_target"))) is not None]
    if not values:
        return {"b_simple_target": None, "b_simple_target_lo": None, "b_simple_target_hi": None}
    measured = [r for r in reached if summary_number(r.get("b_simple_target")) is not None]
    lows = [summary_number(r.get("b_simple_target_lo")) for r in measured]
    highs = [summary_number(r.get("b_simple_target_hi")) for r in measured]
    return {
        "b_simple_target": statistics.median(values),
        "b_simple_target_lo": min(lows) if None not in lows else None,
        "b_simple_target_hi": max(highs) if None not in highs else None,
    }


def _mid(p: dict[str, Any]) -> float:
    return (p["steps"] + (p["steps_lo"] if p.get("steps_lo") is not None else p["steps"])) / 2


def _steps_bounds(p: dict[str, Any]) -> tuple[float, float]:
    """(lo, hi) of a point's batches to the target: its crossing interval widened by the seeds' sd."""
    sd = p.get("steps_std") or 0.0
    lo = p["steps_lo"] if p.get("steps_lo") is not None else p["steps"]
    return lo - sd, p["steps"] + sd


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def _eligible(p: dict[str, Any]) -> bool:
    return p["reached"] == p["seeds"] and p["steps"] is not None and p["usable"]


def _why_not(p: dict[str, Any]) -> str:
    """Why one (batch, lr) point cannot be the best, in words."""
    lr = f"lr {p['lr']:g}"
    bad = [s for s in p["statuses"] if s in UNUSABLE]
    if p["reached"] == p["seeds"] and bad:
        return f"{lr} reached the target, then {' / '.join(bad)}"
    if p["reached"]:
        return f"{lr} reached it in {p['reached']} of {p['seeds']} seeds"
    if any(s in UNFINISHED for s in p["statuses"]):
        return f"{lr} still training"
    ended = [s for s in p["statuses"] if s not in ("done",)]
    acc = f" (best {p['best_test_acc']:.1%})" if p.get("best_test_acc") is not None else ""
    if ended:
        return f"{lr} {' / '.join(ended)}{acc}"
    return f"{lr} never reached the target{acc}"


def best_per_batch(points: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per batch size, the lr that reached the target in the fewest steps (Shallue et al. 2018:
    best trial per batch size), picked only among lrs whose every seed reached it and none diverged or
    collapsed. A batch size where none did has no best lr (`lr` None, `left_out` says why) and keeps
    its best accuracy."""
    by_batch: dict[int, list[dict[str, Any]]] = {}
    for p in points:
        by_batch.setdefault(p["batch_size"], []).append(p)
    best = []
    for b, candidates in sorted(by_batch.items()):
        full = [p for p in candidates if _eligible(p)]
        if full:
            pick = min(full, key=lambda p: (_mid(p), -(p["best_test_acc"] or 0)))
            band = [p["lr"] for p in full if p is pick or _overlap(_steps_bounds(p), _steps_bounds(pick))]
            best.append({**pick, "lrs_tried": len(candidates), "reached_target": True, "tie_lrs": band})
            continue
        top = max(candidates, key=lambda p: p["best_test_acc"] or 0)
        best.append(
            {
                "batch_size": b,
                "lr": None,
                "effective_lr": None,
                "split_chunks": top["split_chunks"],
                "seeds": top["seeds"],
                "reached": 0,
                "lrs_tried": len(candidates),
                "reached_target": False,
                "steps": None,
                "steps_lo": None,
                "steps_std": None,
                "samples": None,
                "samples_lo": None,
                "samples_std": None,
                "time_s": None,
                "time_s_lo": None,
                "time_s_std": None,
                "optimizer_steps": None,
                "time_alone_s": None,
                "time_alone_s_lo": None,
                "time_alone_s_std": None,
                "time_alone_s_min": None,
                "time_alone_s_max": None,
                "step_alone_s": None,
                "time_alone_source": None,
                "optimizer_steps_lo": None,
                "resolution_known": True,
                "best_test_acc": top["best_test_acc"],
                "final_test_acc": top["final_test_acc"],
                "b_simple": top["b_simple"],
                "b_simple_lo": top["b_simple_lo"],
                "b_simple_hi": top["b_simple_hi"],
                "b_simple_target": None,
                "b_simple_target_lo": None,
                "b_simple_target_hi": None,
                "statuses": sorted({s for p in candidates for s in p["statuses"]}),
                "left_out": "; ".join(_why_not(p) for p in candidates),
                **({"variant": top["variant"]} if top.get("variant") else {}),
            }
        )
    return best


def _crossings(
    rows: Sequence[dict[str, Any]], b: int, lr: float, variant: str
) -> tuple[list[Crossing], bool]:
    """The crossings of one point's seeds and whether all are resolved."""
    found, known = [], True
    for r in rows:
        if (
            summary_number(r.get("batch_size")) == b
            and summary_number(r.get("lr")) == lr
            and str(r.get("variant") or "") == variant
        ):
            crossing, resolved = crossing_of(r)
            if crossing is not None:
                found.append(crossing)
                known = known and resolved
    return found, known


def _fit_points(
    rows: Sequence[dict[str, Any]], best: Sequence[dict[str, Any]]
) -> tuple[dict[float, list[Crossing]], bool, dict[float, list[list[Crossing]]]]:
    """Each reached batch size's crossings (one per seed of its best lr), whether all are resolved, and
    the crossings of the other lrs in its tie band (the lrs whose crossings overlap the best's: which of
    them is best is not known, so the B_crit bootstrap picks among them in every draw)."""
    points: dict[float, list[Crossing]] = {}
    others: dict[float, list[list[Crossing]]] = {}
    known = True
    for p in best:
        if not p["reached_target"]:
            continue
        variant = str(p.get("variant") or "")
        found, resolved = _crossings(rows, p["batch_size"], p["lr"], variant)
        if found:
            points[float(p["batch_size"])] = found
            known = known and resolved
        for lr in p.get("tie_lrs") or []:
            if lr != p["lr"]:
                alt, resolved = _crossings(rows, p["batch_size"], lr, variant)
                if alt and found:
                    others.setdefault(float(p["batch_size"]), []).append(alt)
                    known = known and resolved
    return points, known, others


def analyse(
    rows: Sequence[dict[str, Any]], base_lr: float | None = None, base_batch: int | None = None
) -> dict[str, Any]:
    """Everything the scaling analysis reports: points, best lr per batch size, the batch sizes left out and
    why, the B_crit fit with its interval (`b_crit`, trainer/analysis/bcrit.py), the plain point fits
    (`fit_steps`, `fit_examples`) and the median B_simple of the batch sizes that reached the target.

    With base_lr/base_batch, the best lrs are set beside the linear and sqrt scaling rules.
    Fits that cannot be made say why (`error` / `reason`), they never raise.
    """
    points = lr_points(rows)
    best = best_per_batch(points)
    reached = [p for p in best if p["reached_target"]]
    result: dict[str, Any] = {
        "points": points,
        "best": best,
        "left_out": [
            {"batch_size": p["batch_size"], "reason": p["left_out"]} for p in best if not p["reached_target"]
        ],
    }
    mids = [_mid(p) for p in reached]
    sample_mids = [
        ((p["samples"] or 0) + (p["samples_lo"] if p["samples_lo"] is not None else p["samples"] or 0)) / 2
        for p in reached
    ]
    try:
        result["fit_steps"] = fit_critical_batch([p["batch_size"] for p in reached], mids)
    except FitError as exc:
        result["fit_steps"] = {"error": str(exc)}
    try:
        result["fit_examples"] = fit_examples([p["batch_size"] for p in reached], sample_mids)
    except FitError as exc:
        result["fit_examples"] = {"error": str(exc)}
    crossings, known, others = _fit_points(rows, best)
    try:
        result["b_crit"] = fit_with_uncertainty(crossings, resolution_known=known, alternatives=others)
        result["b_crit"]["tie_lrs"] = {
            str(p["batch_size"]): p["tie_lrs"] for p in reached if p.get("tie_lrs")
        }
    except ValueError as exc:  # a summary with a crossing interval out of order
        result["b_crit"] = {"determined": False, "reason": str(exc), "batch_sizes": sorted(crossings)}
    # B_simple next to B_crit: where each batch size's best lr crossed the target, as McCandlish et al. (2018)
    # compare them (the noise scale grows as the loss falls, so a value from the end of training is another
    # quantity); run directories without readings around the crossings fall back to the runs' last figures.
    at_target = [p for p in reached if (p.get("b_simple_target") or 0) > 0]
    source = at_target or [p for p in reached if p.get("b_simple") is not None and p["b_simple"] > 0]
    key = "b_simple_target" if at_target else "b_simple"
    result["b_simple"] = float(np.median([p[key] for p in source])) if source else None
    result["b_simple_batches"] = [p["batch_size"] for p in source]
    result["b_simple_at"] = ("target" if at_target else "end") if source else None
    if base_lr is not None and base_batch:
        for p in best:
            p["lr_linear_rule"] = base_lr * p["batch_size"] / base_batch
            p["lr_sqrt_rule"] = base_lr * math.sqrt(p["batch_size"] / base_batch)
    return result
