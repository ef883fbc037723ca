"""The lr rule measured from the grid: the best lr of each batch size, with the tie band (lrs whose
crossings overlap the best's), a least-squares slope of log lr against log B with a 95% interval (each
batch size's best lr drawn uniformly, in log, over its tie band widened to halfway to the next lr tried:
the grid cannot place the optimum closer), classified as linear (slope 1, Goyal et al. 2017), square
root (0.5, Malladi et al. 2022) or flat (0) when the interval holds exactly one of them. The rule passes
through the measured best lrs: it is never anchored at an lr the grid did not try.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from trainer.analysis.answer.matrix import eligible, rank
from trainer.analysis.figures import finite, setting

RULES = (("linear", 1.0), ("square root", 0.5), ("flat", 0.0))
DRAWS = 2000
LEVEL = 0.95
SEED = 0  # seeded draws: the same run directory gives the same answer


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
        ok = [p for p in ps if eligible(p)]
        if not ok:
            continue
        top = min(ok, key=lambda p: (rank(p, "steps"), -(p.get("best_test_acc") or 0)))
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
    # A batch size that trained one lr has no best lr measured: its lr is the config's (its rule's) choice,
    # and a slope through such points would only repeat that rule.
    if len(best) >= 2 and all(p.hi <= p.lo for p in best):
        return LrRule(
            best,
            None,
            None,
            None,
            None,
            "",
            "each batch size trained one lr, the config's, not a measured best: add an lr grid (sweep.lrs)",
        )
    if len(best) >= 2:
        best = [p for p in best if p.hi > p.lo]
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
