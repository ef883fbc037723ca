"""The critical batch size with its uncertainty. numpy only: the app may import it.

McCandlish et al. (2018) trade steps S against examples E to reach a target as
(S/S_min - 1)(E/E_min - 1) = 1, that is S = S_min (1 + B_crit / B) and E = E_min (1 + B / B_crit) with
B_crit = E_min / S_min. Both are linear in (S_min, E_min):

    S = S_min + E_min / B        E = S_min B + E_min

so one weighted least-squares fit of the stacked steps and examples gives S_min and E_min, and B_crit
is their ratio. Residuals are relative (each row weighted by 1 / its interval's midpoint): the points
span orders of magnitude.

Each run's crossing of the target is known only as an interval: the last evaluation that missed it
(lo) and the first that hit it (hi). The fit is repeated `draws` times with every crossing drawn
uniformly inside its interval (steps and examples with the same draw) and, where a batch size has
several seeds, the seeds resampled with replacement (bootstrap); B_crit, S_min and E_min are given as
the median of those fits with the central 95% between the 2.5th and 97.5th percentiles. A draw whose
S_min is <= 0 (all points look perfectly scaling) has B_crit = infinity, one whose E_min <= 0 has 0:
such draws push the interval open rather than being dropped.

Which lr is best at a batch size is itself measured: where the crossings of other lrs overlap the best
one's (the grid's tie band), every draw draws each of those lrs' crossings the same way and takes the lr
with the fewest steps in that draw, so the interval holds the lr choice too (a bootstrap of the argmin).

The result is "not determined" when fewer than MIN_POINTS batch sizes remain or the B_crit interval
spans more than MAX_SPAN (10x), is open, or the crossings' resolution is unknown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MIN_POINTS = 3  # batch sizes a B_crit needs (2 points always fit exactly: nothing checks the model)
MAX_SPAN = 10.0  # a B_crit interval wider than this factor is "not determined"
DRAWS = 2000
LEVEL = 0.95
SEED = 0  # the draws are seeded: the same run directory gives the same report
BAND_POINTS = 33  # grid of the pointwise band of S(B) for plots


@dataclass(frozen=True)
class Crossing:
    """One run's crossing of the target: steps and examples at the last miss (lo) and the hit (hi)."""

    steps_lo: float
    steps_hi: float
    samples_lo: float
    samples_hi: float


def _percentiles(values: np.ndarray, level: float = LEVEL) -> tuple[float, float, float]:
    """(low, median, high) of the central `level` of values that may hold +inf (no interpolation
    across infinity: the nearest order statistics)."""
    v = np.sort(values)
    n = v.size
    lo_q, hi_q = (1.0 - level) / 2.0, 1.0 - (1.0 - level) / 2.0

    def at(q: float) -> float:
        return float(v[min(n - 1, max(0, int(math.floor(q * (n - 1) + 0.5))))])

    return at(lo_q), at(0.5), at(hi_q)


def _solver(batch_sizes: np.ndarray, steps_mid: np.ndarray, samples_mid: np.ndarray) -> np.ndarray:
    """The fixed linear map from stacked targets [S_1..S_m, E_1..E_m] to (S_min, E_min)."""
    design = np.concatenate(
        [
            np.stack([np.ones_like(batch_sizes), 1.0 / batch_sizes], axis=1),
            np.stack([batch_sizes, np.ones_like(batch_sizes)], axis=1),
        ]
    )
    weights = np.concatenate([1.0 / steps_mid, 1.0 / samples_mid])
    wa = design * weights[:, None]
    # theta = (A^T W^2 A)^-1 A^T W^2 y: the pseudo-inverse of WA applied to W y.
    return np.linalg.pinv(wa) * weights[None, :]


def fit_with_uncertainty(
    points: dict[float, Sequence[Crossing]],
    resolution_known: bool = True,
    draws: int = DRAWS,
    seed: int = SEED,
    alternatives: dict[float, Sequence[Sequence[Crossing]]] | None = None,
) -> dict[str, Any]:
    """B_crit, S_min and E_min with 95% intervals from each batch size's crossings (one per seed).

    `alternatives`: per batch size, the crossings (one list per lr, one per seed) of the other lrs in
    its tie band; each draw uses, per batch size, the lr with the fewest drawn steps. `lr_picks` in the
    result gives, per batch size with alternatives, the share of draws that used each candidate (the
    best lr first, then the alternatives in their order).

    Returns a dict: determined (bool), reason ("" or why not determined), batch_sizes (used), and,
    with at least 2 points, B_crit / B_crit_lo / B_crit_hi, S_min(_lo/_hi), E_min(_lo/_hi), draws, and
    band: {batch, steps_lo, steps_mid, steps_hi} (the pointwise 95% band of the fitted S(B)).
    """
    sizes = sorted(b for b, runs in points.items() if runs)
    out: dict[str, Any] = {"determined": False, "reason": "", "batch_sizes": sizes, "points": len(sizes)}
    if len(sizes) < 2:
        out["reason"] = (
            f"{len(sizes)} batch size{'' if len(sizes) == 1 else 's'} reached the target; a fit needs {MIN_POINTS}"
        )
        return out
    b = np.asarray(sizes, dtype=np.float64)
    crossings = [list(points[s]) for s in sizes]
    for s, runs in zip(sizes, crossings):
        for c in runs:
            if not (0 <= c.steps_lo <= c.steps_hi and 0 <= c.samples_lo <= c.samples_hi and c.steps_hi > 0):
                raise ValueError(f"batch size {s:g}: crossing interval out of order or empty: {c}")
    rng = np.random.default_rng(seed)
    s_draw = np.empty((draws, b.size))
    e_draw = np.empty((draws, b.size))
    s_mid = np.empty(b.size)
    e_mid = np.empty(b.size)
    others = {float(k): [list(c) for c in v if c] for k, v in (alternatives or {}).items()}
    for s, runs in others.items():
        for c in (c for alt in runs for c in alt):
            if not (0 <= c.steps_lo <= c.steps_hi and 0 <= c.samples_lo <= c.samples_hi and c.steps_hi > 0):
                raise ValueError(f"batch size {s:g}: crossing interval out of order or empty: {c}")
    picks: dict[str, list[float]] = {}
    for j, runs in enumerate(crossings):
        lo_s = np.array([c.steps_lo for c in runs])
        hi_s = np.array([c.steps_hi for c in runs])  # noqa: E702
        lo_e = np.array([c.samples_lo for c in runs])
        hi_e = np.array([c.samples_hi for c in runs])  # noqa: E702
        s_mid[j], e_mid[j] = float(np.mean((lo_s + hi_s) / 2)), float(np.mean((lo_e + hi_e) / 2))
        s_draw[:, j], e_draw[:, j] = _draw(runs, rng, draws)
        alts = others.get(float(sizes[j])) or []
        if alts:  # the lr choice: per draw, the candidate with the fewest drawn steps
            drawn = [(s_draw[:, j], e_draw[:, j])] + [_draw(alt, rng, draws) for alt in alts]
            s_all = np.stack([d[0] for d in drawn])
            e_all = np.stack([d[1] for d in drawn])
            chosen = np.argmin(s_all, axis=0)
            s_draw[:, j] = s_all[chosen, np.arange(draws)]
            e_draw[:, j] = e_all[chosen, np.arange(draws)]
            picks[f"{sizes[j]:g}"] = (np.bincount(chosen, minlength=len(drawn)) / draws).tolist()
    solve = _solver(b, s_mid, np.maximum(e_mid, 1e-300))
    theta = np.concatenate([s_draw, e_draw], axis=1) @ solve.T  # [draws, 2]: S_min, E_min
    s_min, e_min = theta[:, 0], theta[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        b_crit = np.where(s_min <= 0, np.inf, np.where(e_min <= 0, 0.0, e_min / s_min))
    lo, mid, hi = _percentiles(b_crit)
    out.update(B_crit=mid, B_crit_lo=lo, B_crit_hi=hi, draws=draws, level=LEVEL)
    if picks:
        out["lr_picks"] = picks
    for key, values in (("S_min", s_min), ("E_min", e_min)):
        k_lo, k_mid, k_hi = _percentiles(values)
        out.update({key: k_mid, f"{key}_lo": k_lo, f"{key}_hi": k_hi})
    grid = np.geomspace(b.min(), b.max(), BAND_POINTS)
    curves = s_min[:, None] + e_min[:, None] / grid[None, :]
    band = np.percentile(curves, [100 * (1 - LEVEL) / 2, 50, 100 * (1 + LEVEL) / 2], axis=0)
    out["band"] = {
        "batch": grid.tolist(),
        "steps_lo": band[0].tolist(),
        "steps_mid": band[1].tolist(),
        "steps_hi": band[2].tolist(),
    }
    out["reason"] = _undetermined(len(sizes), lo, hi, resolution_known)
    out["determined"] = not out["reason"]
    return out


def _draw(runs: Sequence[Crossing], rng: np.random.Generator, draws: int) -> tuple[np.ndarray, np.ndarray]:
    """`draws` draws of one point's mean (steps, examples) to the target: its seeds resampled with
    replacement, each crossing drawn uniformly inside its interval (steps and examples alike)."""
    lo_s = np.array([c.steps_lo for c in runs])
    hi_s = np.array([c.steps_hi for c in runs])  # noqa: E702
    lo_e = np.array([c.samples_lo for c in runs])
    hi_e = np.array([c.samples_hi for c in runs])  # noqa: E702
    n = len(runs)
    pick = rng.integers(0, n, size=(draws, n)) if n > 1 else np.zeros((draws, 1), dtype=np.int64)
    u = rng.random((draws, n))
    return (lo_s[pick] + u * (hi_s - lo_s)[pick]).mean(axis=1), (lo_e[pick] + u * (hi_e - lo_e)[pick]).mean(
        axis=1
    )


def _undetermined(n: int, lo: float, hi: float, resolution_known: bool) -> str:
    """Why the B_crit interval does not determine it ("" when it does)."""
    if n < MIN_POINTS:
        return (
            f"only {n} batch sizes reached the target; a fit needs {MIN_POINTS} (2 points always fit exactly)"
        )
    if not resolution_known:
        return (
            "the crossings' resolution is unknown (summaries without iters_to_target_lo): the interval "
            "holds the seeds' spread only"
        )
    if not math.isfinite(hi) or lo <= 0:
        return (
            f"the 95% interval is open ({_g(lo)} to {_g(hi)}): the points do not pin the bend of "
            "S(B); add batch sizes around it or evaluate more often"
        )
    if hi / lo > MAX_SPAN:
        return (
            f"the 95% interval spans {hi / lo:.0f}x ({_g(lo)} to {_g(hi)}), more than {MAX_SPAN:.0f}x: "
            "evaluate more often (sweep.eval_every) or add seeds"
        )
    return ""


def _g(value: float) -> str:
    """A bound in two significant figures ("inf" for infinity)."""
    if not math.isfinite(value):
        return "inf"
    return f"{float(f'{value:.2g}'):g}"
