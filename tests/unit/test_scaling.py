"""The scaling analysis: best lr per batch size, seeds aggregated, B_crit from the best points."""

from __future__ import annotations

import pytest

from trainer.analysis.scaling import analyse


def _rows(b_crit=600.0, s_min=1000.0):
    rows = []
    for b in (6, 60, 600, 6000):
        for lr, slower in ((0.01, 2.0), (0.1, 1.0)):
            for seed, jitter in ((0, 0.98), (1, 1.02)):
                steps = s_min * (1 + b_crit / b) * slower * jitter
                rows.append(
                    {
                        "batch_size": b,
                        "lr": lr,
                        "seed": seed,
                        "status": "done",
                        "iters_to_target": steps,
                        "samples_to_target": steps * b,
                        "time_to_target_s": steps / 100,
                        "best_test_acc": 0.98,
                        "b_simple": 500.0,
                    }
                )
    return rows


def test_best_lr_per_batch_is_the_fewest_mean_steps():
    result = analyse(_rows())
    assert [(p["batch_size"], p["lr"]) for p in result["best"]] == [
        (6, 0.1),
        (60, 0.1),
        (600, 0.1),
        (6000, 0.1),
    ]
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


def test_b_simple_beside_b_crit_is_the_one_at_the_target_crossing_where_measured():
    rows = _rows()
    a = analyse(rows)
    assert a["b_simple"] == 500.0 and a["b_simple_at"] == "end"  # only the runs' last figures: said so
    for r in rows:  # B_simple at the crossing grows with the batch's target samples here; at the end 500
        r.update(
            b_simple_target=100.0 + r["batch_size"] / 60, b_simple_target_lo=80.0, b_simple_target_hi=150.0
        )
    a = analyse(rows)
    assert a["b_simple_at"] == "target" and a["b_simple_batches"] == [6, 60, 600, 6000]
    assert a["b_simple"] == pytest.approx((101.0 + 110.0) / 2)  # the median over batch sizes
    best = {p["batch_size"]: p for p in a["best"]}
    assert best[600]["b_simple_target"] == 110.0 and best[600]["b_simple_target_lo"] == 80.0


def test_an_older_run_directory_gets_b_simple_at_the_crossing_from_its_probe_readings():
    from trainer.analysis.crossing import fill_from_events

    events = [{"type": "run_started", "run": "bs6", "gns_probe_every": 600}]
    # |G|^2 halves every 3 readings, tr(Sigma) stays 1: B_simple doubles every 1,800 samples
    events += [
        {"type": "noise_probe", "run": "bs6", "samples": 600 * i, "g2": 0.01 * 2 ** (-i / 3), "trace": 1.0}
        for i in range(1, 13)
    ]
    row = {
        "run": "bs6",
        "batch_size": 6,
        "lr": 0.1,
        "status": "done",
        "iters_to_target": 600,
        "iters_to_target_lo": 500,
        "samples_to_target": 3600,
        "samples_to_target_lo": 3000,
    }
    (filled,), derived = fill_from_events([row], events)
    assert filled["b_simple_target_samples"] == 3300
    assert filled["b_simple_target"] == pytest.approx(100 * 2 ** (3300 / 1800), rel=1e-6)
    assert any("B_simple at the target crossing" in d for d in derived)
