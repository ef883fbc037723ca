"""B_crit with its uncertainty (trainer/analysis/bcrit.py) on synthetic S(B) with known B_crit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainer.analysis.bcrit import Crossing, fit_with_uncertainty
from trainer.analysis.scaling import analyse

S_MIN, B_CRIT, TRAIN = 300.0, 200.0, 60_000
SIZES = (16, 64, 256, 1024)


def quantised(
    b_crit: float,
    s_min: float,
    sizes=SIZES,
    evals_per_epoch: int = 1,
    phase: float = 0.0,
    noise: float = 0.0,
    seeds: int = 1,
    rng: np.random.Generator | None = None,
) -> dict[float, list[Crossing]]:
    """Each run crosses at S = S_min (1 + B_crit / B) (times a seed's noise), seen only at evaluations
    every 1/evals_per_epoch epoch (the grid shifted by `phase` of a step): (last miss, hit]."""
    points: dict[float, list[Crossing]] = {}
    for b in sizes:
        step = math.ceil(TRAIN / b) / evals_per_epoch
        runs = []
        for _ in range(seeds):
            s = s_min * (1 + b_crit / b) * (1 + noise * rng.standard_normal() if rng is not None else 1.0)
            hi = phase * step + math.ceil((s - phase * step) / step) * step
            lo = max(0.0, hi - step)
            runs.append(Crossing(round(lo), round(hi), round(lo) * b, round(hi) * b))
        points[float(b)] = runs
    return points


def test_epoch_quantised_crossings_give_an_interval_that_covers_the_truth():
    fit = fit_with_uncertainty(quantised(B_CRIT, S_MIN))
    assert fit["B_crit_lo"] <= B_CRIT <= fit["B_crit_hi"]
    assert fit["S_min_lo"] <= S_MIN <= fit["S_min_hi"]
    assert fit["E_min_lo"] <= S_MIN * B_CRIT <= fit["E_min_hi"]
    assert fit["B_crit_lo"] <= fit["B_crit"] <= fit["B_crit_hi"]


def test_finer_evaluations_narrow_the_interval_around_the_truth():
    coarse = fit_with_uncertainty(quantised(B_CRIT, S_MIN, evals_per_epoch=1))
    fine = fit_with_uncertainty(quantised(B_CRIT, S_MIN, evals_per_epoch=10))
    assert fine["determined"] and fine["B_crit_lo"] <= B_CRIT <= fine["B_crit_hi"]
    assert fine["B_crit_hi"] / fine["B_crit_lo"] < coarse["B_crit_hi"] / coarse["B_crit_lo"]
    assert fine["B_crit_hi"] / fine["B_crit_lo"] < 1.3


def test_coverage_over_many_truths_and_evaluation_grids_is_near_95_percent():
    rng = np.random.default_rng(1)
    covered, trials = 0, 150
    for i in range(trials):
        b_crit, s_min = 10 ** rng.uniform(1.5, 3.5), 10 ** rng.uniform(2, 3.5)
        pts = quantised(
            b_crit,
            s_min,
            sizes=(8, 32, 128, 512, 2048, 8192),
            evals_per_epoch=int(rng.choice([1, 4, 10])),
            phase=float(rng.random()),
        )
        fit = fit_with_uncertainty(pts, draws=1000, seed=i)
        covered += fit["B_crit_lo"] <= b_crit <= fit["B_crit_hi"]
    # Measured 0.94 over 300 such truths; a fit to the hits alone (no intervals) covers far less.
    assert covered / trials >= 0.88, covered / trials


def test_seeds_are_bootstrapped():
    rng = np.random.default_rng(0)
    one = fit_with_uncertainty(quantised(B_CRIT, S_MIN, evals_per_epoch=10, noise=0.15, seeds=1, rng=rng))
    rng = np.random.default_rng(0)
    three = fit_with_uncertainty(quantised(B_CRIT, S_MIN, evals_per_epoch=10, noise=0.15, seeds=3, rng=rng))
    assert three["B_crit_lo"] <= B_CRIT <= three["B_crit_hi"]
    assert one["draws"] == three["draws"] == 2000


def test_two_points_are_not_determined():
    fit = fit_with_uncertainty(quantised(B_CRIT, S_MIN, sizes=(16, 1024), evals_per_epoch=10))
    assert not fit["determined"] and "only 2 batch sizes" in fit["reason"]
    one = fit_with_uncertainty(quantised(B_CRIT, S_MIN, sizes=(64,)))
    assert not one["determined"] and "B_crit" not in one and "1 batch size reached" in one["reason"]


def test_a_huge_interval_is_not_determined():
    # All crossings in the first epoch: each known only as (0, one epoch].
    pts = {float(b): [Crossing(0, math.ceil(TRAIN / b), 0, math.ceil(TRAIN / b) * b)] for b in (16, 64, 256)}
    fit = fit_with_uncertainty(pts)
    assert not fit["determined"]
    assert "open" in fit["reason"] or "spans" in fit["reason"]


def test_a_wide_but_closed_interval_says_how_wide():
    fit = fit_with_uncertainty(quantised(B_CRIT, S_MIN, sizes=(16, 64, 256), evals_per_epoch=1))
    assert not fit["determined"] and math.isfinite(fit["B_crit_hi"])
    assert fit["B_crit_hi"] / fit["B_crit_lo"] > 10
    assert "spans 12x (120 to 1500), more than 10x" in fit["reason"]


def test_the_draws_are_seeded_so_a_report_repeats():
    pts = quantised(B_CRIT, S_MIN)
    assert fit_with_uncertainty(pts) == fit_with_uncertainty(pts)


def test_a_crossing_out_of_order_is_refused():
    with pytest.raises(ValueError, match="out of order"):
        fit_with_uncertainty({16.0: [Crossing(10, 5, 160, 80)], 64.0: [Crossing(1, 2, 64, 128)]})


def _rows(evals_per_epoch: int = 10) -> list[dict]:
    rows = []
    for b, crossings in quantised(B_CRIT, S_MIN, evals_per_epoch=evals_per_epoch).items():
        c = crossings[0]
        rows.append(
            {
                "run": f"bs{b:g}",
                "batch_size": b,
                "lr": 0.1,
                "status": "done",
                "iters_to_target": c.steps_hi,
                "iters_to_target_lo": c.steps_lo,
                "samples_to_target": c.samples_hi,
                "samples_to_target_lo": c.samples_lo,
                "best_test_acc": 0.98,
            }
        )
    return rows


def test_analyse_names_batch_sizes_left_out_and_why():
    rows = _rows()
    rows += [
        {"run": "bs4", "batch_size": 4, "lr": 0.1, "status": "diverged", "best_test_acc": 0.5},
        {"run": "bs4b", "batch_size": 4, "lr": 0.05, "status": "done", "best_test_acc": 0.951},
        {
            "run": "bs4096",
            "batch_size": 4096,
            "lr": 0.1,
            "status": "collapsed",
            "best_test_acc": 0.99,
            "iters_to_target": 80,
            "iters_to_target_lo": 70,
        },
    ]
    a = analyse(rows)
    left = {item["batch_size"]: item["reason"] for item in a["left_out"]}
    assert left[4] == "lr 0.05 never reached the target (best 95.1%); lr 0.1 diverged (best 50.0%)"
    assert left[4096] == "lr 0.1 reached the target, then collapsed"
    best = {p["batch_size"]: p for p in a["best"]}
    assert best[4]["lr"] is None and not best[4]["reached_target"]  # never shown as a best lr
    assert a["b_crit"]["batch_sizes"] == [16.0, 64.0, 256.0, 1024.0]
    assert a["b_crit"]["B_crit_lo"] <= B_CRIT <= a["b_crit"]["B_crit_hi"]


def test_analyse_point_fits_give_no_rms_for_two_points():
    a = analyse([r for r in _rows() if r["batch_size"] in (16, 1024)])
    assert a["fit_steps"]["rel_rms"] is None and a["fit_examples"]["rel_rms"] is None
    assert not a["b_crit"]["determined"]


def _with_lr(rows: list[dict], b: int, lr: float, lo_factor: float, hi_factor: float) -> list[dict]:
    """A second lr at batch b whose crossing is the first lr's stretched by these factors."""
    base = next(r for r in rows if r["batch_size"] == b)
    lo, hi = base["iters_to_target_lo"] * lo_factor, base["iters_to_target"] * hi_factor
    return rows + [
        {
            **base,
            "run": f"bs{b}-lr{lr}",
            "lr": lr,
            "iters_to_target": hi,
            "iters_to_target_lo": lo,
            "samples_to_target": hi * b,
            "samples_to_target_lo": lo * b,
        }
    ]


def test_the_lr_choice_within_the_tie_band_widens_the_b_crit_interval():
    alone = analyse(_rows())["b_crit"]
    # At batch 64 lr 0.2 crosses in an interval overlapping lr 0.1's, a little later on the whole: which
    # lr is best there is not known, so each draw takes the one with fewer drawn steps.
    tied = analyse(_with_lr(_rows(), 64, 0.2, 0.95, 1.1))
    fit = tied["b_crit"]
    assert next(p for p in tied["best"] if p["batch_size"] == 64)["lr"] == 0.1  # still the best by midpoint
    assert fit["tie_lrs"]["64"] == [0.1, 0.2]
    share_best, share_other = fit["lr_picks"]["64"]
    assert share_best > share_other > 0.1  # both lrs were picked
    assert fit["B_crit_hi"] / fit["B_crit_lo"] > alone["B_crit_hi"] / alone["B_crit_lo"]
    assert fit["B_crit_lo"] <= B_CRIT <= fit["B_crit_hi"]


def test_an_lr_outside_the_tie_band_leaves_the_fit_unchanged():
    alone = analyse(_rows())["b_crit"]
    worse = analyse(_with_lr(_rows(), 64, 0.2, 1.5, 1.6))["b_crit"]  # clearly slower: not a contender
    assert worse["tie_lrs"]["64"] == [0.1] and "lr_picks" not in worse
    assert (worse["B_crit_lo"], worse["B_crit"], worse["B_crit_hi"]) == (
        alone["B_crit_lo"],
        alone["B_crit"],
        alone["B_crit_hi"],
    )


def test_a_tie_band_that_leaves_b_crit_open_is_not_determined():
    # At the two largest batch sizes a second lr ties that needs as many steps as the smaller batches':
    # with it the bend of S(B) is not pinned any more.
    assert analyse(_rows(1))["b_crit"]["determined"]
    rows = _with_lr(_with_lr(_rows(1), 256, 0.2, 0.2, 1.8), 1024, 0.2, 0.2, 3.0)
    fit = analyse(rows)["b_crit"]
    assert not fit["determined"] and "more than 10x" in fit["reason"]
