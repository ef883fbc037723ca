"""B_simple at a moment of training (trainer/analysis/bsimple.py): a local exponential fit of the probe's
readings follows the drift, where a ratio of means over a window lags behind it."""

from __future__ import annotations

import math

import numpy as np

from trainer.analysis.bsimple import Reading, at_crossing, b_simple_at

EVERY = 6_000  # training samples between readings
PROBE, CHUNK = 1024, 8  # the probe's batch and chunk sizes
DIM = 100


def _reading(rng: np.random.Generator, samples: int, b_true: float, trace: float = 1.0) -> Reading:
    """One probe reading as the probe takes it: the chunk gradients of a probe batch (each the true gradient
    plus the mean of CHUNK samples' noise, isotropic with trace `trace`), through the two-batch estimator."""
    g = np.zeros(DIM)
    g[0] = math.sqrt(trace / b_true)
    chunks = g + rng.standard_normal((PROBE // CHUNK, DIM)) * math.sqrt(trace / DIM / CHUNK)
    small = float((chunks**2).sum(axis=1).mean())
    big = float((chunks.mean(axis=0) ** 2).sum())
    # the unbiased two-batch estimator (McCandlish et al. 2018, appendix A.1; trainer/measure/gns.py)
    g2 = (PROBE * big - CHUNK * small) / (PROBE - CHUNK)
    tr = (small - big) / (1 / CHUNK - 1 / PROBE)
    return Reading(samples, g2, tr)


def _drifting(
    rng: np.random.Generator, start: float = 30.0, end: float = 300.0, n: int = 10
) -> tuple[list[Reading], list[float]]:
    """Readings every EVERY samples while B_simple grows exponentially from `start` to `end` (|G|^2 falls as
    the loss does, McCandlish et al. 2018), and the true values."""
    truth = [start * (end / start) ** (i / (n - 1)) for i in range(n)]
    return [_reading(rng, (i + 1) * EVERY, b) for i, b in enumerate(truth)], truth


def _ratio_of_means(readings: list[Reading]) -> float:
    return math.fsum(r.trace for r in readings) / math.fsum(r.g2 for r in readings)


def test_the_interval_at_the_newest_reading_covers_the_true_current_value_of_a_drifting_series():
    rng = np.random.default_rng(0)
    covered, lagging, trials = 0, 0, 100
    for _ in range(trials):
        readings, truth = _drifting(rng)
        now = readings[-1].samples
        fig = b_simple_at(readings, now, before=5 * EVERY)  # the newest 5 readings
        assert fig["b_simple_readings"] == 5 and fig["b_simple_at_samples"] == now
        covered += fig["b_simple_lo"] <= truth[-1] <= fig["b_simple_hi"]
        lagging += _ratio_of_means(readings[-5:]) < 0.8 * truth[-1]
    assert covered / trials >= 0.9, covered / trials  # measured 0.96-0.98
    assert lagging / trials >= 0.8  # the window's ratio of means reads the past, not now


def test_without_drift_the_value_and_interval_agree_with_the_truth():
    rng = np.random.default_rng(1)
    readings = [_reading(rng, (i + 1) * EVERY, 200.0) for i in range(8)]
    fig = b_simple_at(readings, readings[-1].samples, before=7 * EVERY)
    assert fig["b_simple_lo"] <= 200.0 <= fig["b_simple_hi"]
    assert fig["b_simple_hi"] / fig["b_simple_lo"] < 2


def test_at_the_crossing_the_readings_on_both_sides_are_used():
    rng = np.random.default_rng(2)
    readings, truth = _drifting(rng, n=12)
    crossing = readings[5].samples  # the run crossed the target at its 6th reading
    fig = at_crossing(readings, crossing - EVERY // 2, crossing + EVERY // 2, half=3 * EVERY)
    assert fig["b_simple_target_samples"] == crossing and fig["b_simple_target_readings"] == 6
    assert fig["b_simple_target_lo"] <= truth[5] <= fig["b_simple_target_hi"]


def test_readings_that_cannot_see_the_gradient_leave_b_simple_undefined_or_open():
    rng = np.random.default_rng(3)
    # B_simple 100x the probe batch: |G|^2 is buried in the probe's noise, about half the estimates <= 0
    readings = [_reading(rng, (i + 1) * EVERY, 100 * PROBE) for i in range(5)]
    fig = b_simple_at(readings, readings[-1].samples, before=5 * EVERY)
    assert fig["b_simple_undefined"] > 0
    assert fig["b_simple"] is None or fig["b_simple_hi"] is None  # never a closed interval around noise


def test_few_readings_give_a_value_without_an_interval():
    fig = b_simple_at([Reading(6000, 0.01, 1.0), Reading(12000, 0.005, 1.0)], 12000, before=24000)
    assert math.isclose(fig["b_simple"], 200.0, rel_tol=1e-6)  # the exponential through both points
    assert fig["b_simple_lo"] is None and fig["b_simple_hi"] is None
    assert b_simple_at([], 0, before=1)["b_simple"] is None
