"""B_simple at a moment of training, from the noise probe's readings. Pure Python: the app may import it.

Each reading of the noise probe (trainer/measure/noise_probe.py) gives unbiased estimates of |G|^2 and tr(Sigma)
at the weights of that moment, `samples` training samples in. Both drift as training goes: early on
|G|^2 falls by orders of magnitude while tr(Sigma) changes less, so B_simple = tr(Sigma) / |G|^2 grows
(McCandlish et al. 2018, section 3). A ratio of means over a long window is then dominated by its early
readings (large |G|^2) and lags far behind: on MNIST at batch 6 a window of 10 readings said 34 where the
exact per-sample value at those weights was 291.

So a figure is read at a point `at` (in training samples) from the readings near it: |G|^2 and tr(Sigma)
are each fitted as exp(a + b (s - s_mean)) to the readings in (at - before, at + after] (least squares on
the readings themselves, by Gauss-Newton: a reading <= 0, which an unbiased estimate of a small |G|^2 can
be, is used as it is), and B_simple at `at` is the ratio of the two fits there. The exponential follows
the drift across the window, so the figure belongs to `at`, not to the window's middle; its 95% interval
is a jackknife over the readings (each left out in turn, both fits redone, on log B_simple, Student's t
with n - 1 degrees of freedom), which holds the noise of the readings and the uncertainty of the drift.
On synthetic readings (two-batch estimates from the chunk gradients of a 1,024-sample probe batch,
B_simple 300 at the newest reading, steady, growing 10x over 14 readings, or saturating) the interval at
the newest of 5 readings covered the true value in 91-95% of 150 cases each, about 1.6x wide; the ratio
of means of the same 5 readings covered it in about 10% of the growing cases (tests/unit/test_bsimple.py).
Where single readings are mostly noise (B_simple well above the probe batch) the figure is honestly wide
or open.

B_simple is undefined where the fitted |G|^2 at `at` is <= 0 (the gradient is too small against its
noise for these readings to see it); an interval whose leave-one-out fits cannot all see it is open
(`b_simple_lo` 0, `b_simple_hi` None). Fewer than 3 readings give the value without an interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom (then the normal's 1.96).
_T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)
MIN_INTERVAL = 3  # readings an interval needs (2 points fit the exponential exactly)
WINDOW_READINGS = 5  # the current figure: fitted to the readings of the last 5 probe intervals
TARGET_HALF_READINGS = 3  # at a crossing of the target: the readings within 3 intervals on either side
_ITERATIONS = 60


def t975(dof: int) -> float:
    """The 97.5% quantile of Student's t with `dof` degrees of freedom (>= 1)."""
    return _T975[dof - 1] if dof <= len(_T975) else 1.96


@dataclass(frozen=True)
class Reading:
    """One probe reading, at `samples` training samples: |G|^2, tr(Sigma) and the probe batch's mean
    loss at those weights (None where not recorded)."""

    samples: int
    g2: float
    trace: float
    loss: float | None = None


def exp_fit(x: Sequence[float], y: Sequence[float], at: float) -> float | None:
    """The least-squares fit y ~ exp(a + b (x - mean x)) evaluated at `at`; None where the readings'
    mean is <= 0 (no positive curve to fit) or the fit does not settle."""
    n = len(x)
    if n == 0:
        return None
    mean_y = math.fsum(y) / n
    if not math.isfinite(mean_y) or mean_y <= 0:
        return None
    centre = math.fsum(x) / n
    scale = max(abs(v - centre) for v in x) or 1.0
    u = [(v - centre) / scale for v in x]
    where = (at - centre) / scale
    suu = math.fsum(v * v for v in u)
    a, b = math.log(mean_y), 0.0
    if suu > 0:  # start from the linear fit's relative slope, kept sane
        b = max(-5.0, min(5.0, math.fsum(v * c for v, c in zip(u, y)) / suu / mean_y))

    def sse(a_: float, b_: float) -> float:
        try:
            return math.fsum((c - math.exp(a_ + b_ * v)) ** 2 for v, c in zip(u, y))
        except OverflowError:
            return math.inf

    current = sse(a, b)
    for _ in range(_ITERATIONS):
        f = [math.exp(a + b * v) for v in u]
        r = [c - fv for c, fv in zip(y, f)]
        j11 = math.fsum(fv * fv for fv in f)
        j12 = math.fsum(fv * fv * v for fv, v in zip(f, u))
        j22 = math.fsum(fv * fv * v * v for fv, v in zip(f, u))
        g1 = math.fsum(fv * rv for fv, rv in zip(f, r))
        g2 = math.fsum(fv * v * rv for fv, v, rv in zip(f, u, r))
        det = j11 * j22 - j12 * j12
        if suu == 0 or det <= 0:  # one abscissa: the level alone
            da, db = (g1 / j11 if j11 > 0 else 0.0), 0.0
        else:
            da, db = (j22 * g1 - j12 * g2) / det, (j11 * g2 - j12 * g1) / det
        step = 1.0
        while step > 1e-6:
            trial = sse(a + step * da, b + step * db)
            if trial <= current:
                break
            step /= 2
        else:
            break
        a, b = a + step * da, b + step * db
        done = current - trial <= 1e-12 * max(current, 1e-300)
        current = trial
        if done:
            break
    try:
        value = math.exp(a + b * where)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def _ratio(readings: Sequence[Reading], at: float) -> tuple[float | None, float | None]:
    x = [float(r.samples) for r in readings]
    return exp_fit(x, [r.g2 for r in readings], at), exp_fit(x, [r.trace for r in readings], at)


def b_simple_at(readings: Sequence[Reading], at: float, before: float, after: float = 0.0) -> dict[str, Any]:
    """B_simple at `at` training samples from the readings in (at - before, at + after], with its 95%
    interval and the share of those readings whose |G|^2 estimate is <= 0 (see the module's docstring).

    Returns the noise probe's figure fields: b_simple, b_simple_lo, b_simple_hi (None: too few readings,
    or open), b_simple_undefined, b_simple_readings, b_simple_from_samples, b_simple_to_samples, and
    b_simple_at_samples (= at), gns_g2 and gns_trace (the fits at `at`).
    """
    near = [
        r
        for r in readings
        if at - before < r.samples <= at + after and math.isfinite(r.g2) and math.isfinite(r.trace)
    ]
    n = len(near)
    out: dict[str, Any] = {
        "b_simple": None,
        "b_simple_lo": None,
        "b_simple_hi": None,
        "b_simple_readings": n,
        "b_simple_undefined": None,
        "b_simple_at_samples": at,
        "b_simple_from_samples": near[0].samples if n else None,
        "b_simple_to_samples": near[-1].samples if n else None,
        "gns_g2": None,
        "gns_trace": None,
    }
    if not n:
        return out
    out["b_simple_undefined"] = sum(1 for r in near if r.g2 <= 0) / n
    g2, trace = _ratio(near, at)
    out["gns_g2"], out["gns_trace"] = g2, trace
    if g2 is None or trace is None or g2 <= 0 or trace <= 0:
        return out  # these readings cannot see the gradient above its noise: undefined
    out["b_simple"] = trace / g2
    if n < MIN_INTERVAL:
        return out
    loo = []
    for i in range(n):
        g, t = _ratio(near[:i] + near[i + 1 :], at)
        if g is None or t is None or g <= 0 or t <= 0:
            out["b_simple_lo"] = 0.0  # a leave-one-out fit cannot see the gradient: open upwards
            return out
        loo.append(math.log(t / g))
    mean = math.fsum(loo) / n
    se = math.sqrt((n - 1) / n * math.fsum((v - mean) ** 2 for v in loo))
    half = t975(n - 1) * se
    centre = math.log(out["b_simple"])
    out["b_simple_lo"] = math.exp(max(centre - half, -700.0))
    out["b_simple_hi"] = math.exp(centre + half) if centre + half < 700 else None  # beyond a float: open
    return out


def at_crossing(readings: Sequence[Reading], lo: float | None, hi: float, half: float) -> dict[str, Any]:
    """B_simple where a run crossed the target (between `lo` and `hi` training samples: the middle), from the
    readings within `half` samples on either side; the fields of b_simple_at prefixed `b_simple_target`
    (b_simple_target, _lo, _hi, _readings, _undefined, _samples)."""
    at = (hi + lo) / 2 if lo is not None else hi
    fig = b_simple_at(readings, at, before=half, after=half)
    return {
        "b_simple_target": fig["b_simple"],
        "b_simple_target_lo": fig["b_simple_lo"],
        "b_simple_target_hi": fig["b_simple_hi"],
        "b_simple_target_readings": fig["b_simple_readings"],
        "b_simple_target_undefined": fig["b_simple_undefined"],
        "b_simple_target_samples": at,
    }
