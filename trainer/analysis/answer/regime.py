"""The steps-to-target curve and its regimes: each batch size at its best lr
(trainer.analysis.scaling.best_per_batch), the crossing intervals, the S_min / E_min / B_crit fit with its
95% band (trainer.analysis.bcrit), and the regime of each batch size (Shallue et al. 2018): perfect
scaling (steps fall about in proportion to the batch), diminishing returns, no gain. From the fit, the
local slope of S = S_min (1 + B_crit / B) on log-log axes is -B_crit / (B + B_crit); from the
measurements, the slope between the neighbouring batch sizes that reached the target. Slopes at or below
-2/3 (B <= B_crit / 2) are perfect scaling, at or above -1/5 (B >= 4 B_crit) no gain, between them
diminishing returns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trainer.analysis.answer.matrix import NOT_REACHED, UNFINISHED
from trainer.analysis.figures import finite, sig

PERFECT, DIMINISHING, NO_GAIN = ("perfect scaling", "diminishing returns", "no gain")
TRAINING = "still training"  # a batch size with no lr at the target yet and runs still training
PERFECT_SLOPE = -2.0 / 3.0  # d log S / d log B at or below this: perfect scaling (B <= B_crit / 2)
NO_GAIN_SLOPE = -0.2  # at or above this: no gain (B >= 4 B_crit)


@dataclass(frozen=True)
class CurvePoint:
    batch_size: int
    lr: float | None
    reached: bool
    steps: float | None  # batches to target at the best lr (mean of hits over seeds)
    steps_lo: float | None  # the last misses before them (None: unknown)
    samples: float | None
    samples_lo: float | None
    time_s: float | None  # time to target alone where recorded, else the measured time
    time_s_lo: float | None
    measured_slope: float | None  # d log S / d log B between the neighbouring reached batch sizes
    fit_slope: float | None  # the fitted S(B)'s local slope at this batch size
    regime: str  # perfect scaling | diminishing returns | no gain | not reached
    measured_regime: str | None
    fit_regime: str | None
    why: str = ""  # why not reached, in words
    provisional: bool = False  # some run of this batch size is still training: its best lr may change


@dataclass(frozen=True)
class Curve:
    points: list[CurvePoint]
    fit: dict[str, Any]  # trainer.analysis.bcrit's result (determined, reason, B_crit, ..., band)
    b_simple: float | None


def classify(slope: float | None) -> str | None:
    """The regime of a log-log slope of steps to target against batch size."""
    if slope is None or not math.isfinite(slope):
        return None
    if slope <= PERFECT_SLOPE:
        return PERFECT
    if slope >= NO_GAIN_SLOPE:
        return NO_GAIN
    return DIMINISHING


def _mid(lo: Any, hi: Any) -> float | None:
    if not finite(hi):
        return None
    return (lo + hi) / 2 if finite(lo) else float(hi)


def measured_slopes(batch_sizes: Sequence[float], steps: Sequence[float]) -> list[float | None]:
    """Per batch size (ascending), the log-log slope of steps between its neighbours (the smallest and
    the largest: to their one neighbour). None where there is only one point."""
    n = len(batch_sizes)
    if n < 2:
        return [None] * n
    out: list[float | None] = []
    for i in range(n):
        a, b = max(0, i - 1), min(n - 1, i + 1)
        out.append(math.log(steps[b] / steps[a]) / math.log(batch_sizes[b] / batch_sizes[a]))
    return out


def fit_slope(batch_size: float, b_crit: float) -> float:
    """Local log-log slope of S = S_min (1 + B_crit / B) at B: -B_crit / (B + B_crit)."""
    return -b_crit / (batch_size + b_crit)


def _time_of(p: dict[str, Any]) -> tuple[float | None, float | None]:
    """(hit, last miss) time to target: alone where recorded (trainer.analysis.time_alone.alone_of), else measured."""
    if finite(p.get("time_alone_s")):
        return p["time_alone_s"], p.get("time_alone_s_lo")
    return p.get("time_s"), p.get("time_s_lo")


def curve(analysis: dict[str, Any]) -> Curve:
    """Each batch size at its best lr, with its regime, from a trainer.analysis.scaling.analyse result."""
    best = sorted(analysis.get("best") or [], key=lambda p: p["batch_size"])
    fit = analysis.get("b_crit") or {}
    b_crit = fit.get("B_crit") if fit.get("determined") and finite(fit.get("B_crit")) else None
    reached = [p for p in best if p.get("reached_target") and finite(p.get("steps"))]
    slopes = dict(
        zip(
            (p["batch_size"] for p in reached),
            measured_slopes(
                [p["batch_size"] for p in reached], [_mid(p.get("steps_lo"), p["steps"]) for p in reached]
            ),
        )
    )
    training = {
        int(q["batch_size"])
        for q in analysis.get("points") or []
        if any(s in UNFINISHED for s in q.get("statuses") or [])
    }
    points = []
    for p in best:
        b = p["batch_size"]
        if not (p.get("reached_target") and finite(p.get("steps"))):
            regime = TRAINING if b in training else NOT_REACHED
            why = "still training" if b in training else str(p.get("left_out") or "no lr reached the target")
            points.append(
                CurvePoint(
                    b,
                    None,
                    False,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    None,
                    regime,
                    None,
                    None,
                    why,
                    b in training,
                )
            )
            continue
        measured = slopes.get(b)
        fitted = fit_slope(b, b_crit) if b_crit else None
        m_regime, f_regime = classify(measured), classify(fitted)
        points.append(
            CurvePoint(
                b,
                p.get("lr"),
                True,
                p["steps"],
                p.get("steps_lo"),
                p.get("samples"),
                p.get("samples_lo"),
                *_time_of(p),
                measured,
                fitted,
                f_regime or m_regime or "one point: no slope",
                m_regime,
                f_regime,
                "",
                b in training,
            )
        )
    b_simple = analysis.get("b_simple")
    return Curve(points, fit, b_simple if finite(b_simple) else None)


def regime_sentence(c: Curve) -> str:
    """Where larger batches stop paying, in words: runs of equal regimes, with what they rest on."""
    pts = [p for p in c.points if p.reached]
    if not pts:
        if any(p.provisional for p in c.points):
            return "no batch size has reached the target yet, so no regime can be named"
        return "no batch size reached the target, so no regime can be named"
    if len(pts) == 1:
        return f"only batch {pts[0].batch_size} reached the target: one point has no slope, so no regime can be named"
    groups: list[tuple[str, list[int]]] = []
    for p in pts:
        if groups and groups[-1][0] == p.regime:
            groups[-1][1].append(p.batch_size)
        else:
            groups.append((p.regime, [p.batch_size]))
    parts = [f"{regime} at batch {', '.join(map(str, bs))}" for regime, bs in groups]
    fit = c.fit
    if fit.get("determined") and finite(fit.get("B_crit")):
        source = (
            f"from the fit: B_crit {sig(fit['B_crit'])}, 95% {sig(fit.get('B_crit_lo'))}–"
            f"{sig(fit.get('B_crit_hi'))}"
        )
        differ = [p.batch_size for p in pts if p.measured_regime and p.measured_regime != p.fit_regime]
        if differ:
            source += (
                f"; the measured slopes say otherwise at batch {', '.join(map(str, differ))}: "
                + ", ".join(
                    f"{p.batch_size} {p.measured_regime} (slope {p.measured_slope:.2f})"
                    for p in pts
                    if p.batch_size in differ
                )
            )
    else:
        source = "from the measured slopes between neighbouring batch sizes; B_crit is not determined"
    missed = [p.batch_size for p in c.points if p.regime == NOT_REACHED]
    tail = f"; batch {', '.join(map(str, missed))}: no lr reached the target" if missed else ""
    training = [p.batch_size for p in c.points if p.provisional]
    if training:
        tail += f"; provisional: batch {', '.join(map(str, training))} still training"
    return "; ".join(parts) + f" ({source}){tail}"
