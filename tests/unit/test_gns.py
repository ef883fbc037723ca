"""Gradient noise scale estimator and critical-batch fits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trainer.analysis.point_fits import FitError, fit_critical_batch, fit_examples
from trainer.measure.gns import NoiseScaleTracker, noise_scale_terms, terms_from_chunk_grads

# Linear regression y = w*.x + eps, x ~ N(0, I_d), eps ~ N(0, s2), loss 0.5 (w.x - y)^2, evaluated at
# w = w* + r. Per-sample gradient g = x (x.r - eps), so G = E[g] = r and, with Isserlis' theorem,
# Sigma = r r^T + (|r|^2 + s2) I: |G|^2 = |r|^2 and tr(Sigma) = (d + 1) |r|^2 + d s2.
D = 5
S2 = 1.0
R = torch.tensor([0.6, -0.8, 0.5, 0.1, -0.3], dtype=torch.float64)
TRUE_G2 = float(R @ R)
TRUE_TRACE = (D + 1) * TRUE_G2 + D * S2


def _chunk_grads(gen: torch.Generator, batch: int, chunks: int) -> list[torch.Tensor]:
    """One batch's per-chunk mean gradients, w split into two 'parameters' like a real model."""
    x = torch.randn(batch, D, generator=gen, dtype=torch.float64)
    eps = torch.randn(batch, generator=gen, dtype=torch.float64) * math.sqrt(S2)
    per_sample = x * (x @ R - eps)[:, None]
    chunk_mean = per_sample.reshape(chunks, batch // chunks, D).mean(1)
    return [chunk_mean[:, :3], chunk_mean[:, 3:].reshape(chunks, 2, 1)]


def test_estimates_from_chunk_gradients_are_unbiased_for_linear_regression():
    gen = torch.Generator().manual_seed(0)
    batch, chunks, trials = 32, 4, 3000
    g2s, traces, naive = [], [], []
    for _ in range(trials):
        grads = _chunk_grads(gen, batch, chunks)
        g2, trace = terms_from_chunk_grads(grads, batch)
        g2s.append(float(g2))
        traces.append(float(trace))
        naive.append(float(sum(g.mean(0).pow(2).sum() for g in grads)))  # |g_B|^2, biased by tr/B
    for estimates, truth in ((g2s, TRUE_G2), (traces, TRUE_TRACE)):
        est = np.asarray(estimates)
        stderr = est.std(ddof=1) / math.sqrt(trials)
        assert abs(est.mean() - truth) < 4 * stderr, (est.mean(), truth, stderr)
    # The tolerance is tight enough to catch the obvious biased estimate of |G|^2.
    naive_mean = float(np.mean(naive))
    assert abs(naive_mean - TRUE_G2) > 4 * np.std(naive, ddof=1) / math.sqrt(trials)
    assert naive_mean == pytest.approx(TRUE_G2 + TRUE_TRACE / batch, rel=0.05)


def test_terms_from_chunk_grads_match_the_formula_and_stay_tensors():
    gen = torch.Generator().manual_seed(1)
    grads = _chunk_grads(gen, 12, 3)
    g2, trace = terms_from_chunk_grads(grads, 12)
    assert isinstance(g2, torch.Tensor) and isinstance(trace, torch.Tensor)
    flat = torch.cat([g.flatten(1) for g in grads], dim=1)  # [k, D]
    small = flat.pow(2).sum(1).mean().item()
    big = flat.mean(0).pow(2).sum().item()
    exp_g2, exp_trace = noise_scale_terms(small, big, 4, 12)
    assert g2.item() == pytest.approx(exp_g2, rel=1e-12)
    assert trace.item() == pytest.approx(exp_trace, rel=1e-12)


def test_noise_scale_terms_known_values():
    # |g_b|^2 = |G|^2 + tr/b with |G|^2 = 2, tr = 40, b = 4, B = 20.
    g2, trace = noise_scale_terms(2 + 40 / 4, 2 + 40 / 20, 4, 20)
    assert g2 == pytest.approx(2.0)
    assert trace == pytest.approx(40.0)


def test_noise_scale_terms_refuse_batch_sizes_in_the_wrong_order():
    with pytest.raises(ValueError, match="b_small=8, b_big=8"):
        noise_scale_terms(1.0, 1.0, 8, 8)


def test_terms_need_at_least_two_chunks():
    with pytest.raises(ValueError, match="at least 2 chunks"):
        terms_from_chunk_grads([torch.zeros(1, 3)], 8)


def test_tracker_reports_ratio_of_averages_not_average_of_ratios():
    tracker = NoiseScaleTracker(beta=0.5)
    assert tracker.b_simple is None and tracker.g2 is None
    tracker.update(1.0, 10.0)  # ratio 10
    assert tracker.g2 == pytest.approx(1.0)  # debiased: the first report is the first estimate
    assert tracker.b_simple == pytest.approx(10.0)
    tracker.update(3.0, 10.0)  # ratio 3.33
    # EMAs (undebiased): g2 = 0.25 + 1.5 = 1.75, trace = 2.5 + 5 = 7.5; debias by 1 - 0.25.
    assert tracker.g2 == pytest.approx(1.75 / 0.75)
    assert tracker.trace == pytest.approx(7.5 / 0.75)
    assert tracker.b_simple == pytest.approx(7.5 / 1.75)
    assert tracker.b_simple != pytest.approx((10.0 + 10.0 / 3.0) / 2)


def test_tracker_has_no_b_simple_while_g2_average_is_not_positive():
    tracker = NoiseScaleTracker(beta=0.9)
    tracker.update(-2.0, 5.0)  # single estimates of |G|^2 can be negative
    assert tracker.b_simple is None
    tracker.update(torch.tensor(30.0), torch.tensor(60.0))  # tensors are accepted as well
    assert tracker.g2 is not None and tracker.g2 > 0
    assert tracker.b_simple == pytest.approx((0.9 * 0.1 * 5 + 0.1 * 60) / (0.9 * 0.1 * -2 + 0.1 * 30))


def test_tracker_refuses_beta_outside_range():
    with pytest.raises(ValueError, match="beta"):
        NoiseScaleTracker(beta=1.0)


BATCHES = [8, 32, 128, 512, 2048, 8192]


def test_fit_critical_batch_recovers_exact_parameters():
    steps = [1000 * (1 + 500 / b) for b in BATCHES]
    fit = fit_critical_batch(BATCHES, steps)
    assert fit["S_min"] == pytest.approx(1000, rel=1e-9)
    assert fit["B_crit"] == pytest.approx(500, rel=1e-9)
    assert fit["rel_rms"] < 1e-9


def test_fit_critical_batch_recovers_parameters_from_noisy_points():
    rng = np.random.default_rng(0)
    steps = [1000 * (1 + 500 / b) * (1 + 0.03 * rng.standard_normal()) for b in BATCHES]
    fit = fit_critical_batch(BATCHES, steps)
    assert fit["S_min"] == pytest.approx(1000, rel=0.1)
    assert fit["B_crit"] == pytest.approx(500, rel=0.15)
    assert 0.0 < fit["rel_rms"] < 0.1


def test_fit_examples_recovers_exact_and_noisy_parameters():
    examples = [2e4 * (1 + b / 300) for b in BATCHES]
    fit = fit_examples(BATCHES, examples)
    assert fit["E_min"] == pytest.approx(2e4, rel=1e-9)
    assert fit["B_crit"] == pytest.approx(300, rel=1e-9)
    rng = np.random.default_rng(1)
    noisy = [e * (1 + 0.03 * rng.standard_normal()) for e in examples]
    fit = fit_examples(BATCHES, noisy)
    assert fit["E_min"] == pytest.approx(2e4, rel=0.1)
    assert fit["B_crit"] == pytest.approx(300, rel=0.15)


def test_steps_and_examples_fits_agree_on_the_papers_tradeoff():
    # E = S * B; on the model (S/S_min - 1)(E/E_min - 1) = 1 both fits give the same B_crit.
    steps = [400 * (1 + 1000 / b) for b in BATCHES]
    s_fit = fit_critical_batch(BATCHES, steps)
    e_fit = fit_examples(BATCHES, [s * b for s, b in zip(steps, BATCHES)])
    assert e_fit["B_crit"] == pytest.approx(s_fit["B_crit"], rel=1e-9)
    assert e_fit["E_min"] == pytest.approx(s_fit["S_min"] * s_fit["B_crit"], rel=1e-9)


@pytest.mark.parametrize(
    ("batch_sizes", "values", "message"),
    [
        ([60], [100.0], "at least 2 points"),
        ([60, 60, 60], [100.0, 90.0, 110.0], "at least 2 different batch sizes"),
        ([6, 60], [100.0], "one steps value per batch size"),
        ([6, 60], [100.0, -1.0], "positive and finite"),
        ([6, 60], [100.0, float("nan")], "positive and finite"),
        ([6, 60, 600], [100.0, 200.0, 400.0], "grow with the batch size"),
        ([6, 60, 600], [1000.0, 100.0, 5.0], "perfect-scaling regime"),
    ],
)
def test_fit_critical_batch_refuses_degenerate_points(batch_sizes, values, message):
    with pytest.raises(FitError, match=message):
        fit_critical_batch(batch_sizes, values)


@pytest.mark.parametrize(
    ("batch_sizes", "values", "message"),
    [
        ([60], [100.0], "at least 2 points"),
        ([6, 60, 600], [1000.0, 990.0, 985.0], "do not grow with the batch size"),
        ([6, 60, 600], [10.0, 100.0, 1e5], "faster than linearly"),
    ],
)
def test_fit_examples_refuses_degenerate_points(batch_sizes, values, message):
    with pytest.raises(FitError, match=message):
        fit_examples(batch_sizes, values)
