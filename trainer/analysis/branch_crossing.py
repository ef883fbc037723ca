"""When a branch's loss fell by the chosen fraction: the crossing read from a smoothed loss curve, with an
interval that holds the evaluations' noise as well as their spacing.

A branch (trainer.sweep.branch) evaluates the evaluation slice every few hundred samples. One evaluation
reads the weights of one moment, and SGD makes them wander: the first evaluation below the target may be a
lucky dip, and reading the crossing there makes small batches (noisier) look faster than they are. So the
loss is smoothed before the crossing is read:

- each evaluation's smoothed loss is a straight line fitted (least squares) to the evaluations within
  `HALF` places of it (fewer at the ends), read at that evaluation; its standard error is the noise times
  the square root of the fit's leverage there (larger at the ends, where the window is one-sided);
- the noise is the spread of the second differences of the evaluated losses (a trend cancels in them),
  robustly (their median absolute value), so a few bends of the curve do not count as noise;
- the crossing is known to lie after the last evaluation before the first one whose smoothed loss minus
  Z standard errors is at or below the target (before it, even the optimistic reading misses), and at or
  before the first evaluation whose smoothed loss plus Z standard errors is (there even the pessimistic
  reading hits). That interval is the Crossing trainer.analysis.bcrit's fit draws from.

Until the pessimistic reading hits, the branch has not reached its target: the branch trains on (the same
reading is its stopping rule). Pure: no torch, no numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from trainer.analysis.bcrit import Crossing

HALF = 2  # the smoothing window: 2 evaluations each side (5 in all, fewer at the ends)
Z = 2.0  # standard errors each side: about 95% for the smoothed reading
MIN_EVALS = 4  # evaluations (the branch point's included) before a noise figure and a crossing exist
MAD_TO_SD = 1.4826  # a normal's standard deviation over its median absolute deviation


@dataclass(frozen=True)
class Reading:
    """One evaluation of a branch: steps and samples since the branch point, and the slice loss."""

    steps: float
    samples: float
    loss: float


@dataclass(frozen=True)
class Smoothed:
    """The smoothed loss at one evaluation and its standard error."""

    steps: float
    samples: float
    loss: float
    se: float


def noise(losses: Sequence[float]) -> float | None:
    """The standard deviation of one evaluation's loss about the trend: from the second differences
    (l[i+1] - 2 l[i] + l[i-1] has variance 6 sd^2 where the trend is straight), robustly; None with fewer
    than three losses."""
    if len(losses) < 3:
        return None
    d2 = sorted(abs(losses[i + 1] - 2 * losses[i] + losses[i - 1]) for i in range(1, len(losses) - 1))
    mid = len(d2) // 2
    median = d2[mid] if len(d2) % 2 else (d2[mid - 1] + d2[mid]) / 2
    return MAD_TO_SD * median / math.sqrt(6)


def smooth(readings: Sequence[Reading], sd: float, half: int = HALF) -> list[Smoothed]:
    """Each reading's local straight-line fit over its window, with standard error `sd` x sqrt(leverage)."""
    out = []
    n = len(readings)
    for i, r in enumerate(readings):
        window = readings[max(0, i - half) : min(n, i + half + 1)]
        k = len(window)
        xs = [w.samples for w in window]
        mean_x = sum(xs) / k
        mean_y = sum(w.loss for w in window) / k
        sxx = sum((x - mean_x) ** 2 for x in xs)
        slope = sum((x - mean_x) * (w.loss - mean_y) for x, w in zip(xs, window)) / sxx if sxx > 0 else 0.0
        value = mean_y + slope * (r.samples - mean_x)
        leverage = 1 / k + ((r.samples - mean_x) ** 2 / sxx if sxx > 0 else 0.0)
        out.append(Smoothed(r.steps, r.samples, value, sd * math.sqrt(leverage)))
    return out


def crossing(readings: Sequence[Reading], target: float, z: float = Z) -> Crossing | None:
    """The interval in which the smoothed loss reaches `target` (steps and samples since the branch point),
    or None while even its pessimistic reading has not (fewer than MIN_EVALS readings: None).
    `readings` in training order, the branch point's own evaluation first."""
    if len(readings) < MIN_EVALS:
        return None
    sd = noise([r.loss for r in readings])
    if sd is None:
        return None
    curve = smooth(readings, sd)
    hi = next((i for i, s in enumerate(curve) if s.loss + z * s.se <= target), None)
    if hi is None or hi == 0:  # hi == 0: the branch point itself is at the target (a decrease of 0)
        return None
    first = next(i for i, s in enumerate(curve) if s.loss - z * s.se <= target)
    lo = max(0, first - 1)
    return Crossing(curve[lo].steps, curve[hi].steps, curve[lo].samples, curve[hi].samples)
