"""The sweep's answer, laid out: the batch x lr matrix, the steps-to-target curve with its regimes, and
the lr rule measured from the grid. No torch, no numpy here (the analysis it reads is
trainer.analysis.scaling.analyse, the fit trainer.analysis.bcrit): the app's scaling screen, report.md and the end of
`python -m trainer run` all read it, so they say the same thing.

- The matrix: rows are batch sizes, columns lrs, one cell per (batch size, lr) with its seeds folded
  into a mean and a spread (sample standard deviation over seeds), for one metric: time to target,
  steps to target, best test accuracy, final training loss, or the status. The best cell of each row
  and the overall answer follow trainer.analysis.scaling's rule: only lrs whose every seed reached the target
  and none diverged or collapsed can be best at time or steps.
- The curve: each batch size at its best lr (trainer.analysis.scaling.best_per_batch), the crossing intervals,
  the S_min / E_min / B_crit fit with its 95% band (trainer.analysis.bcrit), and the regime of each batch size
  (Shallue et al. 2018): perfect scaling (steps fall about in proportion to the batch), diminishing
  returns, no gain. From the fit, the local slope of S = S_min (1 + B_crit / B) on log-log axes is
  -B_crit / (B + B_crit); from the measurements, the slope between the neighbouring batch sizes that
  reached the target. Slopes at or below -2/3 (B <= B_crit / 2) are perfect scaling, at or
  above -1/5 (B >= 4 B_crit) no gain, between them diminishing returns.
- The lr rule: the best lr of each batch size from the grid, with the tie band (lrs whose crossings
  overlap the best's), a least-squares slope of log lr against log B with a 95% interval (each batch
  size's best lr drawn uniformly, in log, over its tie band widened to halfway to the next lr tried:
  the grid cannot place the optimum closer), classified as linear (slope 1, Goyal et al. 2017),
  square root (0.5, Malladi et al. 2022) or flat (0) when the interval holds exactly one of them.
  The rule passes through the measured best lrs: it is never anchored at an lr the grid did not try.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from trainer.analysis.figures import count, finite, setting, sig
from trainer.analysis.recommend import recommendation

#: The matrix's metrics, in the order a key cycles them.
METRICS: tuple[str, ...] = ("time", "steps", "accuracy", "loss", "status")
METRIC_NAMES = {
    "time": "time to target alone (s)",
    "steps": "steps to target",
    "accuracy": "best test accuracy",
    "loss": "final training loss",
    "status": "status",
}
LOWER_IS_BETTER = {"time": True, "steps": True, "accuracy": False, "loss": True, "status": True}

PERFECT, DIMINISHING, NO_GAIN, NOT_REACHED = (
    "perfect scaling",
    "diminishing returns",
    "no gain",
    "not reached",
)
TRAINING = "still training"  # a batch size with no lr at the target yet and runs still training
PERFECT_SLOPE = -2.0 / 3.0  # d log S / d log B at or below this: perfect scaling (B <= B_crit / 2)
NO_GAIN_SLOPE = -0.2  # at or above this: no gain (B >= 4 B_crit)

RULES = (("linear", 1.0), ("square root", 0.5), ("flat", 0.0))
DRAWS = 2000
LEVEL = 0.95
SEED = 0  # seeded draws: the same run directory gives the same answer

UNUSABLE = ("diverged", "collapsed")
UNFINISHED = ("running", "pending", "waiting")


# -- the matrix ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One (batch size, lr) of the grid, its seeds folded."""

    batch_size: int
    lr: float
    seeds: int
    reached: int  # seeds that reached the target
    status: str  # reached | k/n reached | not reached | diverged | collapsed | running
    value: float | None  # the metric's mean over seeds (None: the metric has no value here)
    spread: float | None  # the metric's standard deviation over seeds (0 for one seed)
    eligible: bool  # every seed reached the target and none diverged or collapsed
    fused: bool = False  # trained in a fused group (without a time alone, its time is a share of the group's)
    point: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Matrix:
    metric: str
    batch_sizes: list[int]
    lrs: list[float]
    cells: dict[tuple[int, float], Cell]
    best: dict[int, float]  # per batch size, the lr of its best cell (absent: no cell can be best)
    answer: tuple[int, float] | None  # the overall best cell

    def cell(self, batch_size: int, lr: float) -> Cell | None:
        return self.cells.get((batch_size, lr))

    def value_range(self) -> tuple[float, float] | None:
        """(lowest, highest) value shown, for colour scales."""
        values = [c.value for c in self.cells.values() if c.value is not None]
        return (min(values), max(values)) if values else None


def cell_status(p: dict[str, Any]) -> str:
    """One word (or two) for a folded point: what became of its seeds."""
    statuses = [str(s) for s in p.get("statuses") or []]
    bad = [s for s in UNUSABLE if s in statuses]
    if bad:
        return " / ".join(bad)
    seeds, reached = int(p.get("seeds") or 0), int(p.get("reached") or 0)
    if seeds and reached == seeds:
        return "reached"
    if any(s in UNFINISHED for s in statuses):
        return "running"
    if reached:
        return f"{reached}/{seeds} reached"
    return NOT_REACHED


def _eligible(p: dict[str, Any]) -> bool:
    return (
        bool(p.get("seeds"))
        and p.get("reached") == p.get("seeds")
        and finite(p.get("steps"))
        and not any(s in UNUSABLE or s in UNFINISHED for s in p.get("statuses") or [])
    )


def _metric(p: dict[str, Any], metric: str) -> tuple[float | None, float | None]:
    """(mean, spread) of one metric for a folded point; time and steps only where every seed reached."""
    reached = _eligible(p)
    if metric == "time":  # alone where recorded (trainer.analysis.scaling.alone_of), else the measured time
        if reached and finite(p.get("time_alone_s")):
            return p["time_alone_s"], p.get("time_alone_s_std")
        return (p.get("time_s"), p.get("time_s_std")) if reached and finite(p.get("time_s")) else (None, None)
    if metric in ("steps", "status"):
        k = p.get("split_chunks") or 1
        sd = p.get("steps_std")
        value = p.get("optimizer_steps") if finite(p.get("optimizer_steps")) else p.get("steps")
        return (value, sd * k if finite(sd) else None) if reached and finite(value) else (None, None)
    if metric == "accuracy":
        return p.get("best_test_acc"), p.get("best_test_acc_std")
    if metric == "loss":
        return p.get("final_train_loss"), p.get("final_train_loss_std")
    raise ValueError(f"unknown metric {metric!r}; one of {', '.join(METRICS)}")


def _rank(p: dict[str, Any], metric: str) -> float | None:
    """The number a cell is ranked by (smaller is better); time and steps by their crossing intervals'
    midpoints, as trainer.analysis.scaling and trainer.analysis.recommend rank them."""
    if metric in ("time", "status"):
        if finite(
            p.get("time_alone_s")
        ):  # as trainer.analysis.recommend ranks: the interval alone, its midpoint
            hi = p["time_alone_s_max"] if finite(p.get("time_alone_s_max")) else p["time_alone_s"]
            lo = p["time_alone_s_min"] if finite(p.get("time_alone_s_min")) else hi
            return (lo + hi) / 2
        if not finite(p.get("time_s")):
            return None
        lo = p["time_s_lo"] if finite(p.get("time_s_lo")) else p["time_s"]
        return (lo + p["time_s"]) / 2
    if metric == "steps":
        lo = p["steps_lo"] if finite(p.get("steps_lo")) else p["steps"]
        return (lo + p["steps"]) / 2 * (p.get("split_chunks") or 1)
    value, _ = _metric(p, metric)
    if not finite(value):
        return None
    return -value if metric == "accuracy" else value


def matrix(points: Sequence[dict[str, Any]], metric: str = "time", variant: str | None = None) -> Matrix:
    """The grid of trainer.analysis.scaling.lr_points (seeds already folded) for one metric; with `variant`,
    only that [[variants]] arm's points (an arm's own analysis holds only its own)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; one of {', '.join(METRICS)}")
    cells: dict[tuple[int, float], Cell] = {}
    for p in points:
        if (variant is not None and str(p.get("variant") or "") != variant) or p.get("lr") is None:
            continue
        value, spread = _metric(p, metric)
        key = (int(p["batch_size"]), float(p["lr"]))
        cells[key] = Cell(
            key[0],
            key[1],
            int(p.get("seeds") or 0),
            int(p.get("reached") or 0),
            cell_status(p),
            value if finite(value) else None,
            spread if finite(spread) else None,
            _eligible(p),
            (p.get("fused_runs") or 0) > 1,
            p,
        )
    batch_sizes = sorted({b for b, _ in cells})
    lrs = sorted({lr for _, lr in cells})
    best: dict[int, float] = {}
    ranked: list[tuple[float, int, float]] = []
    for b in batch_sizes:
        row = []
        for lr in lrs:
            c = cells.get((b, lr))
            if c is None:
                continue
            # Time and steps: only an lr every seed of which reached the target, none lost on the way.
            # Accuracy and loss: any lr whose runs ended usable.
            ok = (
                c.eligible
                if metric in ("time", "steps", "status")
                else not any(s in c.status for s in UNUSABLE)
            )
            r = _rank(c.point, metric) if ok else None
            if r is not None:
                row.append((r, lr))
        if row:
            r, lr = min(row)
            best[b] = lr
            ranked.append((r, b, lr))
    answer = (min(ranked)[1], min(ranked)[2]) if ranked else None
    return Matrix(metric, batch_sizes, lrs, cells, best, answer)


def cell_text(c: Cell | None, metric: str) -> str:
    """A cell in a few characters: the mean (± spread over seeds), or its status where it has no value."""
    if c is None:
        return ""
    if metric == "status":
        return c.status
    if c.value is None:
        return c.status
    if metric == "time":
        text = f"{sig(c.value, 3)}"
    elif metric == "steps":
        text = count(c.value)
    elif metric == "accuracy":
        text = f"{100 * c.value:.1f}%"
    else:
        text = sig(c.value, 3)
    if c.seeds > 1 and c.spread is not None:
        spread = (
            f"{100 * c.spread:.1f}"
            if metric == "accuracy"
            else count(c.spread)
            if metric == "steps"
            else sig(c.spread, 2)
        )
        text += f"±{spread}"
    if metric == "time" and c.fused and not finite(c.point.get("time_alone_s")):  # a share of a group's time
        text += "÷"
    return text


def markdown_table(m: Matrix) -> list[str]:
    """The matrix as a Markdown table: **bold** the best cell of each row, the overall answer also ★."""
    head = "| batch \\ lr | " + " | ".join(setting(lr) for lr in m.lrs) + " |"
    lines = [head, "| ---: |" + " ---: |" * len(m.lrs)]
    for b in m.batch_sizes:
        cells = []
        for lr in m.lrs:
            text = cell_text(m.cell(b, lr), m.metric) or " "
            if m.best.get(b) == lr:
                text = f"**{text}**" + (" ★" if m.answer == (b, lr) else "")
            cells.append(text)
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    return lines


# -- the steps-to-target curve and its regimes --------------------------------------------


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
    """(hit, last miss) time to target: alone where recorded (trainer.analysis.scaling.alone_of), else measured."""
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


# -- the lr rule --------------------------------------------------------------------------


@dataclass(frozen=True)
class BestLr:
    batch_size: int
    lr: float  # the best lr tried
    tie_lo: float  # the lowest and highest lr tried whose crossing overlaps the best's
    tie_hi: float
    lo: float  # the band the slope's draws use: the ties widened halfway (in log) to the next lr tried
    hi: float
    at_edge: str  # "" | "lowest" | "highest": the best is at the grid's end (the optimum may lie beyond)


@dataclass(frozen=True)
class LrRule:
    best: list[BestLr]
    slope: float | None
    slope_lo: float | None
    slope_hi: float | None
    intercept: float | None  # log lr at log B = 0
    kind: str  # linear | square root | flat | "between ..." | "none of ..." | "" (no slope)
    reason: str  # why there is no slope ("" when there is one)
    draws: list[tuple[float, float]] = field(default_factory=list, repr=False)  # (intercept, slope)

    def lr_at(self, batch_size: float) -> tuple[float, float, float] | None:
        """The rule's lr at a batch size with its 95% interval (lr, lo, hi); None without a slope."""
        if self.slope is None or self.intercept is None:
            return None
        x = math.log(batch_size)
        values = sorted(a + c * x for a, c in self.draws)
        lo, hi = _central(values)
        return math.exp(self.intercept + self.slope * x), math.exp(lo), math.exp(hi)


def _central(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    at = lambda q: values[min(n - 1, max(0, int(math.floor(q * (n - 1) + 0.5))))]  # noqa: E731
    return at((1 - LEVEL) / 2), at((1 + LEVEL) / 2)


def _ols(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    mx, my = statistics.fmean(x), statistics.fmean(y)
    sxx = sum((a - mx) ** 2 for a in x)
    c = sum((a - mx) * (b - my) for a, b in zip(x, y)) / sxx
    return my - c * mx, c


def _overlaps(p: dict[str, Any], best: dict[str, Any]) -> bool:
    """The crossing intervals of two points overlap (each widened by one sd over seeds)."""

    def bounds(q: dict[str, Any]) -> tuple[float, float]:
        hi = float(q["steps"])
        lo = float(q["steps_lo"]) if finite(q.get("steps_lo")) else hi
        sd = float(q["steps_std"]) if finite(q.get("steps_std")) else 0.0
        k = q.get("split_chunks") or 1
        return (lo - sd) * k, (hi + sd) * k

    a, b = bounds(p), bounds(best)
    return a[0] <= b[1] and b[0] <= a[1]


def best_lrs(points: Sequence[dict[str, Any]], variant: str | None = None) -> list[BestLr]:
    """Per batch size with an eligible lr, its best lr (fewest steps, the rule of
    trainer.analysis.scaling.best_per_batch) and its tie band."""
    by_batch: dict[int, list[dict[str, Any]]] = {}
    for p in points:
        if (
            (variant is None or str(p.get("variant") or "") == variant)
            and finite(p.get("lr"))
            and p["lr"] > 0
        ):
            by_batch.setdefault(int(p["batch_size"]), []).append(p)
    out = []
    for b, ps in sorted(by_batch.items()):
        tried = sorted({float(p["lr"]) for p in ps})
        ok = [p for p in ps if _eligible(p)]
        if not ok:
            continue
        top = min(ok, key=lambda p: (_rank(p, "steps"), -(p.get("best_test_acc") or 0)))
        ties = [float(p["lr"]) for p in ok if _overlaps(p, top)]
        t_lo, t_hi = min(ties), max(ties)
        i_lo, i_hi = tried.index(t_lo), tried.index(t_hi)
        # Halfway (geometric) to the next lr tried; at the grid's end, as far as the grid's own step.
        step_lo = (
            tried[i_lo] / tried[i_lo - 1] if i_lo > 0 else (tried[1] / tried[0] if len(tried) > 1 else 1.0)
        )
        step_hi = (
            tried[i_hi + 1] / tried[i_hi]
            if i_hi + 1 < len(tried)
            else (tried[-1] / tried[-2] if len(tried) > 1 else 1.0)
        )
        edge = (
            "lowest"
            if t_lo == tried[0] and top["lr"] == tried[0] and len(tried) > 1
            else ("highest" if t_hi == tried[-1] and top["lr"] == tried[-1] and len(tried) > 1 else "")
        )
        out.append(
            BestLr(
                b, float(top["lr"]), t_lo, t_hi, t_lo / math.sqrt(step_lo), t_hi * math.sqrt(step_hi), edge
            )
        )
    return out


def _kind(lo: float, hi: float, slope: float) -> str:
    inside = [name for name, s in RULES if lo <= s <= hi]
    if len(inside) == 1:
        return inside[0]
    if inside:
        return "between " + " and ".join(inside) + " (not resolved)"
    nearest = min(RULES, key=lambda r: abs(r[1] - slope))[0]
    return f"none of linear / square root / flat (nearest: {nearest})"


def lr_rule(
    points: Sequence[dict[str, Any]], variant: str | None = None, draws: int = DRAWS, seed: int = SEED
) -> LrRule:
    """The measured lr rule: best lr against batch size on log-log axes, fitted by least squares
    through the best lrs tried, with the slope's 95% interval from draws over the tie bands."""
    best = best_lrs(points, variant)
    if len(best) < 2:
        n = len(best)
        return LrRule(
            best,
            None,
            None,
            None,
            None,
            "",
            f"{n} batch size{'' if n == 1 else 's'} with a best lr; a slope needs 2",
        )
    x = [math.log(p.batch_size) for p in best]
    intercept, slope = _ols(x, [math.log(p.lr) for p in best])
    rng = random.Random(seed)
    fits = []
    for _ in range(draws):
        y = [rng.uniform(math.log(p.lo), math.log(p.hi)) for p in best]
        fits.append(_ols(x, y))
    lo, hi = _central(sorted(c for _, c in fits))
    return LrRule(best, slope, lo, hi, intercept, _kind(lo, hi, slope), "", fits)


def unrun_batch_sizes(run: Sequence[int]) -> list[int]:
    """Batch sizes between those run (the geometric midpoint of each neighbouring pair, to two
    significant figures): where the rule interpolates."""
    sizes = sorted(set(run))
    out = []
    for a, b in zip(sizes, sizes[1:]):
        mid = float(f"{math.sqrt(a * b):.2g}")
        if a < mid < b:
            out.append(int(mid))
    return out


def rule_sentence(rule: LrRule) -> str:
    """The lr rule in words, with the rule's lr for batch sizes not run."""
    if rule.slope is None:
        return f"lr rule: not measured ({rule.reason})"
    text = (
        f"lr rule: best lr ~ B^{rule.slope:.2f} (95% {rule.slope_lo:.2f} to {rule.slope_hi:.2f}, "
        f"{len(rule.best)} batch sizes): {rule.kind}"
    )
    edges = [f"batch {p.batch_size} ({p.at_edge} lr tried)" for p in rule.best if p.at_edge]
    if edges:
        text += f"; best lr at the grid's end for {', '.join(edges)}: the optimum may lie beyond"
    unrun = unrun_batch_sizes([p.batch_size for p in rule.best])
    if unrun:
        parts = []
        for b in unrun:
            lr, lo, hi = rule.lr_at(b)  # type: ignore[misc]
            parts.append(f"batch {b}: lr {setting(lr)} ({setting(lo)}–{setting(hi)})")
        text += "; for batch sizes not run: " + ", ".join(parts)
    return text


# -- the answer in words ------------------------------------------------------------------


def _goal(target: float | None) -> str:
    return f"{100 * target:.4g}%" if finite(target) else "the target"


def reached_sentence(analysis: dict[str, Any], target: float | None, unfinished: int = 0) -> str:
    """How many batch sizes reached the target, and what is still training (never "0 of 1" while
    runs are training)."""
    best = analysis.get("best") or []
    goal = _goal(target)
    reached = sum(1 for p in best if p.get("reached_target"))
    text = f"{reached} of {len(best)} batch size{'' if len(best) == 1 else 's'} reached {goal}"
    if unfinished:
        text += f" ({unfinished} run{'' if unfinished == 1 else 's'} still training)"
    return text


def fewest_steps_sentence(m: Matrix) -> str:
    if m.answer is None:
        return ""
    c = m.cells[m.answer]
    return f"fewest steps: batch {c.batch_size} at lr {setting(c.lr)} ({cell_text(c, 'steps')} steps)"


def b_simple_sentence(analysis: dict[str, Any]) -> str:
    """B_simple at the target (the median over the batch sizes that reached it), or what is measured
    where none of those has one (never "not measured" while runs carry it)."""
    value = analysis.get("b_simple")
    batches = analysis.get("b_simple_batches") or []
    if finite(value):
        over = f"median over batch {', '.join(map(str, batches))}; " if batches else ""
        if (
            analysis.get("b_simple_at") == "end"
        ):  # no probe readings around the crossings (trainer.analysis.scaling)
            return (
                f"B_simple at the target: not recorded; at the runs' end {sig(value)} ({over}the gradient noise "
                "scale grows as the loss falls, so this is later in training than the target)"
            )
        return f"B_simple at the target {sig(value)} ({over}the gradient noise scale: batches well above it stop paying)"
    measured = [
        p["b_simple"] for p in analysis.get("points") or [] if finite(p.get("b_simple")) and p["b_simple"] > 0
    ]
    if measured:
        return (
            f"B_simple at the target: no batch size that reached it has one; measured per point "
            f"{sig(min(measured))}–{sig(max(measured))} ({len(measured)} points)"
        )
    return "B_simple: not measured by any run yet"


def answer_lines(
    analysis: dict[str, Any],
    target: float | None,
    device: str = "",
    variant: str | None = None,
    unfinished: int = 0,
) -> list[str]:
    """The answer as sentences, for the end of `python -m trainer run`, report.md and the app."""
    points = analysis.get("points") or []
    steps = matrix(points, "steps", variant)
    first = recommendation(analysis, target, device)
    if unfinished and first.startswith("no batch size reached"):  # the advice waits for the runs to end
        first = f"no batch size has reached {_goal(target)} with every seed yet"
    lines = [first, reached_sentence(analysis, target, unfinished)]
    fewest = fewest_steps_sentence(steps)
    if fewest:
        lines.append(fewest)
    lines.append("regimes: " + regime_sentence(curve(analysis)))
    lines.append(b_simple_sentence(analysis))
    lines.append(rule_sentence(lr_rule(points, variant)))
    return lines


def answers(scaling: dict[str, Any], target: float | None, device: str = "") -> list[str]:
    """The answer lines of a sweep_finished.scaling (or an app analysis): "name: ..." per line for
    [[variants]] arms, the bare lines without variants."""
    if not isinstance(scaling, dict):
        return []
    variants = scaling.get("variants")
    if isinstance(variants, dict):
        return [
            f"{name}: {line}"
            for name, a in variants.items()
            if isinstance(a, dict)
            for line in answer_lines(a, target, device)
        ]
    return answer_lines(scaling, target, device)
