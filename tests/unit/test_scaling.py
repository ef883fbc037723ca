"""The scaling analysis: best lr per batch size, seeds aggregated, B_crit from the best points."""
from __future__ import annotations

import pytest

from trainer.scaling import analyse


def _rows(b_crit=600.0, s_min=1000.0):
    rows = []
    for b in (6, 60, 600, 6000):
        for lr, slower in ((0.01, 2.0), (0.1, 1.0)):
            for seed, jitter in ((0, 0.98), (1, 1.02)):
                steps = s_min * (1 + b_crit / b) * slower * jitter
                rows.append({"batch_size": b, "lr": lr, "seed": seed, "status": "done",
                             "iters_to_target": steps, "samples_to_target": steps * b,
                             "time_to_target_s": steps / 100, "best_test_acc": 0.98, "b_simple": 500.0})
    return rows


def test_best_lr_per_batch_is_the_fewest_mean_steps():
    result = analyse(_rows())
    assert [(p["batch_size"], p["lr"]) for p in result["best"]] == [(6, 0.1), (60, 0.1), (600, 0.1), (6000, 0.1)]
    assert result["best"][0]["steps_std"] > 0 and result["best"][0]["seeds"] == 2


def test_fit_recovers_the_critical_batch_from_best_points():
    result = analyse(_rows(b_crit=600.0))
    assert result["fit_steps"]["B_crit"] == pytest.approx(600.0, rel=1e-6)
    assert result["fit_examples"]["B_crit"] == pytest.approx(600.0, rel=1e-6)
    assert result["b_simple"] == 500.0


def test_an_lr_that_some_seeds_miss_is_not_the_best():
    rows = _rows()
    for r in rows:
        if r["lr"] == 0.1 and r["batch_size"] == 60 and r["seed"] == 1:
            r["iters_to_target"] = r["samples_to_target"] = r["time_to_target_s"] = None
    best = {p["batch_size"]: p for p in analyse(rows)["best"]}
    assert best[60]["lr"] == 0.01


def test_too_few_points_say_why_instead_of_raising():
    rows = [r for r in _rows() if r["batch_size"] == 60]
    result = analyse(rows)
    assert "at least 2" in result["fit_steps"]["error"]


def test_rules_are_set_beside_the_best_lrs():
    best = analyse(_rows(), base_lr=0.02, base_batch=60)["best"]
    assert best[2]["lr_linear_rule"] == pytest.approx(0.2)
    assert best[2]["lr_sqrt_rule"] == pytest.approx(0.02 * 10**0.5)
