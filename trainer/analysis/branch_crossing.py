"""When a branch's loss fell by the chosen fraction: the crossing read from the whole loss curve, with an
interval that holds the evaluations' noise as well as their spacing.

A branch (trainer.sweep.branch) evaluates the evaluation slice every few hundred samples. One evaluation
reads the weights of one moment, and SGD makes them wander: the first evaluation below the target may be a
lucky dip, and reading the crossing there makes small batches (noisier) look faster than they are. So:

- the crossing is read from the branch's loss fitted non-increasing (antitonic regression: in expectation
  the loss falls, so every rise is noise and is pooled with its neighbours), which uses every evaluation
  rather than a window of a few;
- its interval is a bootstrap: the fit's residuals are resampled onto it and the fit made again, many
  times; the crossing lies after the last miss and at or before the first hit in all but the tails of
  those draws. That interval is the Crossing trainer.analysis.bcrit's fit draws from.

Until all but a tail of the draws reach the target, the branch has not reached it: the branch trains on
(the same reading is its stopping rule). `noise` and `smooth` (a local straight-line fit) give the base
run's trend at a branch point, from which the target is set. Pure: no torch, no numpy.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from trainer.analysis.bcrit import Crossing

HALF = 2  # the smoothing window: 2 evaluations each side (5 in all, fewer at the ends)
DRAWS = 400  # bootstrap draws of a crossing
LEVEL = 0.95  # the central share of the draws its interval holds
CLIP = 3.0  # residuals beyond this many robust standard deviations are clipped to it
SEED = 0  # seeded: the same evaluations give the same crossing
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


def antitonic(losses: Sequence[float]) -> list[float]:
    """The least-squares non-increasing fit of `losses` in order (pool adjacent violators): a branch's loss
    falls in expectation, so every rise in it is noise and is pooled with its neighbours."""
    blocks: list[list[float]] = []  # [sum, count] of each pooled block
    for v in losses:
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] < blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    out: list[float] = []
    for total, count in blocks:
        out += [total / count] * int(count)
    return out


def crossing(
    readings: Sequence[Reading], target: float, draws: int = DRAWS, seed: int = SEED
) -> Crossing | None:
    """The interval in which the branch's loss reaches `target` (steps and samples since the branch point),
    or None while it has not been established (fewer than MIN_EVALS readings: None). `readings` in training
    order, the branch point's own evaluation first.

    The loss is fitted non-increasing (antitonic: every evaluation counts, a rise is noise), and the fit is
    bootstrapped: `draws` times its residuals, scaled up for the levels the fit spent and clipped at CLIP
    robust standard deviations, are resampled onto
    it and the fit is made again. The crossing is established once all but a tail of (1 - LEVEL) / 2 of the
    draws reach the target within the readings; its interval runs from that tail's quantile of the last
    miss to the other tail's quantile of the first hit. A lone lucky dip moves few draws, so it neither ends
    a branch nor decides its crossing."""
    n = len(readings)
    if n < MIN_EVALS:
        return None
    losses = [r.loss for r in readings]
    fit = antitonic(losses)
    if fit[-1] > target:  # the fit itself misses: too few draws could reach it to establish a crossing
        return None
    levels = len(set(fit))
    scale = math.sqrt(n / (n - levels)) if n > levels else 1.0
    raw = sorted(abs(y - f) for y, f in zip(losses, fit))
    # An outlier (a lucky dip, a spike) is clipped to CLIP robust standard deviations, so one reading does
    # not widen every draw's noise.
    bound = CLIP * MAD_TO_SD * raw[len(raw) // 2] * scale
    residuals = [max(-bound, min(bound, (y - f) * scale)) for y, f in zip(losses, fit)]
    rng = random.Random(seed)
    tail = (1 - LEVEL) / 2
    firsts: list[int] = []
    misses = 0
    for _ in range(draws):
        drawn = antitonic([f + rng.choice(residuals) for f in fit])
        first = next((i for i, v in enumerate(drawn) if v <= target), None)
        if first is None:
            misses += 1
            if misses > tail * draws:
                return None
            continue
        firsts.append(first)
    firsts.sort()
    lo = max(0, firsts[int(tail * len(firsts))] - 1)
    hi = firsts[min(len(firsts) - 1, int((1 - tail) * len(firsts)))]
    if hi == 0:  # the branch point itself is at the target (a decrease of 0)
        return None
    return Crossing(readings[lo].steps, readings[hi].steps, readings[lo].samples, readings[hi].samples)
