"""Collapse verdicts on the issue's examples (trainer/analysis/collapse.py)."""

from __future__ import annotations

import math

import pytest

from trainer.analysis.collapse import find_collapse

LN10 = math.log(10)


def test_a_run_that_falls_back_to_chance_collapses_where_it_fell_once_a_second_evaluation_confirms_it():
    # batch 16 at lr 0.2 on MNIST, test accuracy per epoch (it never came back).
    assert find_collapse([0.926, 0.829, 0.762, 0.1135]) is None  # one evaluation: not confirmed yet
    verdict = find_collapse([0.926, 0.829, 0.762, 0.1135, 0.098])
    assert verdict is not None and verdict.kind == "fell_back" and verdict.index == 3
    assert (
        "11.3%" in verdict.reason and "92.6%" in verdict.reason and "2 evaluations in a row" in verdict.reason
    )


def test_a_dip_to_chance_that_recovers_is_not_a_collapse_and_the_real_collapse_later_is():
    # batch 64 at lr 0.4 on MNIST dipped 0.35 -> 0.09, was back at 0.43, then collapsed.
    series = [0.2, 0.35, 0.09, 0.43, 0.1, 0.1]
    assert [find_collapse(series[:n]) for n in range(1, 5)] == [None] * 4  # after every evaluation up to 0.43
    verdict = find_collapse(series)
    assert verdict is not None and verdict.kind == "fell_back" and verdict.index == 4
    assert "after reaching 43.0%" in verdict.reason


def test_at_the_last_evaluation_the_training_loss_confirms_a_fall_back():
    accs = [0.5, 0.9, 0.1]
    assert find_collapse(accs, [1.2, 0.4, 2.31], final=True).kind == "fell_back"  # a loss of guessing
    assert find_collapse(accs, [1.2, 0.4, 9.5], final=True).kind == "fell_back"  # worse than guessing
    assert "training loss at 2.310" in find_collapse(accs, [1.2, 0.4, 2.31], final=True).reason
    assert find_collapse(accs, [1.2, 0.4, 0.9], final=True) is None  # still learning: the loss disagrees
    assert find_collapse(accs, [1.2, 0.4, 2.31]) is None  # not the last: the next evaluation decides
    assert find_collapse(accs, final=True) is None  # no loss: nothing confirms it


def test_the_collapse_is_where_the_last_stretch_at_chance_began():
    verdict = find_collapse([0.5, 0.9, 0.12, 0.11, 0.1])
    assert verdict is not None and verdict.index == 2


def test_a_run_that_dipped_to_chance_and_came_back_is_not_collapsed():
    assert find_collapse([0.9, 0.11, 0.93]) is None


def test_a_healthy_run_is_not_collapsed():
    assert find_collapse([0.82, 0.91, 0.95, 0.97, 0.981], [0.6, 0.3, 0.2, 0.12, 0.09]) is None


def test_a_run_at_chance_from_the_start_with_a_flat_loss_never_learned():
    # every lr-0.8 run sat at 10-11%; measured epoch losses of batch 60 at lr 0.8 (CPU).
    verdict = find_collapse([0.1, 0.1135, 0.1028], [2.3047, 2.3084, 2.3085])
    assert verdict is not None and verdict.kind == "never_learned" and verdict.index == 2
    assert "ln(10)" in verdict.reason


def test_a_slow_learner_at_chance_whose_loss_still_falls_is_not_collapsed():
    # Measured: batch 1200 at lr 0.02 (CPU), 10 steps per epoch: at 10% for 6 epochs, loss falling.
    losses = [2.3068, 2.3058, 2.3049, 2.3041, 2.3034, 2.3028]
    assert find_collapse([0.1] * 6, losses) is None


def test_a_loss_that_falls_at_every_evaluation_is_learning_even_below_the_minimum_fall():
    # Measured: batch 200 on 600 samples at lr 0.02 (CPU), 3 steps per epoch: 0.0011 nats in 9 steps.
    assert find_collapse([0.07, 0.07, 0.07], [2.30957, 2.30900, 2.30845]) is None
    # the same fall, not at every evaluation: flat, a dead network
    assert find_collapse([0.07, 0.07, 0.07], [2.30957, 2.30960, 2.30845]).kind == "never_learned"


def test_never_learned_needs_three_evaluations_and_a_loss():
    assert find_collapse([0.1, 0.1], [2.305, 2.306]) is None
    assert find_collapse([0.1, 0.1, 0.1]) is None  # accuracy alone cannot tell slow from dead


def test_a_loss_far_from_ln_classes_is_not_the_flat_loss_of_a_dead_network():
    assert find_collapse([0.1, 0.1, 0.1], [5.0, 5.0, 5.0]) is None


def test_thresholds_follow_the_number_of_classes():
    # 2 classes: chance 50%, near chance <= 55%, well above >= 75%.
    assert find_collapse([0.8, 0.54, 0.53], n_classes=2).kind == "fell_back"
    assert find_collapse([0.7, 0.54, 0.53], n_classes=2) is None
    flat = [math.log(2)] * 3
    assert find_collapse([0.5, 0.52, 0.51], flat, n_classes=2).kind == "never_learned"


def test_missing_accuracies_raise_nothing():
    assert find_collapse([]) is None
    assert find_collapse([0.9, None, 0.1, 0.1]).index == 2  # an unknown evaluation in between changes nothing
    assert find_collapse([0.9, 0.1, None, 0.1]) is None  # nor does it confirm anything
    assert find_collapse([0.9, float("nan")]) is None


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="2 classes"):
        find_collapse([0.1], n_classes=1)
    with pytest.raises(ValueError, match="2 accuracies but 1"):
        find_collapse([0.1, 0.2], [LN10])
