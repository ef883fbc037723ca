"""One evaluation truth (trainer/analysis/accuracy.py): the class-stratified evaluation slice, its sampling
error, and a run's current and best accuracy from evaluations of mixed kinds. Pure Python."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from trainer.analysis.accuracy import (
    FULL,
    HEAD,
    SLICE,
    SLICE_SEED,
    SLICE_SIZE,
    evaluations,
    run_accuracy,
    standard_error,
    stratified_slice,
    worst_standard_error,
)


def _labels(n: int, weights: list[float], seed: int = 3) -> list[int]:
    rng = random.Random(seed)
    return rng.choices(range(len(weights)), weights=weights, k=n)


def test_the_slice_keeps_every_class_at_its_share_of_the_test_set():
    labels = _labels(10_000, [1, 2, 3, 1, 1, 1, 1, 1, 4, 0.5])
    chosen = stratified_slice(labels, SLICE_SIZE)
    assert len(chosen) == SLICE_SIZE == len(set(chosen)) and chosen == sorted(chosen)
    whole, part = Counter(labels), Counter(labels[i] for i in chosen)
    for c, n in whole.items():  # each class within one image of its proportional share
        assert abs(part[c] - SLICE_SIZE * n / len(labels)) < 1, (c, part[c], n)
    # a random sample, not the first images of each class
    firsts = {c: sorted(i for i, v in enumerate(labels) if v == c)[: part[c]] for c in whole}
    assert any(sorted(i for i in chosen if labels[i] == c) != firsts[c] for c in whole)


def test_the_slice_is_the_same_for_every_run_and_changes_only_with_its_seed():
    labels = _labels(5_000, [1] * 10)
    first = stratified_slice(labels, 1_000)
    assert stratified_slice(list(labels), 1_000) == first == stratified_slice(labels, 1_000, SLICE_SEED)
    assert stratified_slice(labels, 1_000, SLICE_SEED + 1) != first
    # pinned (one image of each class): a change of the draw would change the images every recorded
    # slice accuracy was measured on, so sweeps recorded before and after would not be comparable
    pinned = stratified_slice([i % 10 for i in range(100)], 10)
    assert sorted(i % 10 for i in pinned) == list(range(10))
    assert pinned == [9, 24, 27, 43, 46, 58, 62, 70, 81, 85]


def test_a_test_set_no_larger_than_the_slice_is_used_whole():
    assert stratified_slice([0, 1, 1, 2], 10) == [0, 1, 2, 3]
    assert stratified_slice([0, 1, 1, 2], 4) == [0, 1, 2, 3]
    assert stratified_slice([0, 1], 0) == []


def test_the_sampling_error_is_the_binomial_standard_error():
    assert standard_error(0.5, 2000) == pytest.approx(0.01118, abs=1e-5)
    assert standard_error(0.98, 2000) == pytest.approx(0.00313, abs=1e-5)
    assert worst_standard_error(2000) == pytest.approx(standard_error(0.5, 2000))
    assert standard_error(0.5, 0) is None and standard_error(float("nan"), 100) is None


def test_current_and_best_come_from_the_runs_own_kind_only():
    # a run that collapsed in its first epoch: slice evaluations only; its best is what it reached
    acc = run_accuracy([(SLICE, 0.31), (SLICE, 0.573), (SLICE, 0.09)])
    assert (acc.current, acc.best, acc.eval_set, acc.evaluations) == (0.09, 0.573, SLICE, 3)
    # slice and full mixed (the epoch ends' full test set is a second kind): the slice counts
    mixed = [(SLICE, 0.55), (SLICE, 0.60), (FULL, 0.66), (SLICE, 0.58), (FULL, 0.62)]
    acc = run_accuracy(mixed)
    assert (acc.current, acc.best, acc.eval_set) == (0.58, 0.60, SLICE)
    # an older run directory: head (sub-epoch) and full (epoch ends): the epoch ends, as it reported
    acc = run_accuracy([(HEAD, 0.7), (FULL, 0.65), (HEAD, 0.9), (FULL, 0.8)])
    assert (acc.current, acc.best, acc.eval_set) == (0.8, 0.8, FULL)
    assert run_accuracy([(HEAD, 0.4), (HEAD, None), (HEAD, float("nan"))]).best == 0.4
    none = run_accuracy([])
    assert (none.current, none.best, none.eval_set, none.evaluations) == (None, None, "", 0)


def test_events_give_each_evaluation_its_kind_and_older_events_their_trainers():
    events = [
        {"type": "evaluation", "run": "a", "iter": 3, "samples": 60, "test_acc": 0.5},  # older: the head
        {
            "type": "epoch_end",
            "run": "a",
            "epoch": 1,
            "iters": 10,
            "samples": 200,
            "test_acc": 0.6,
        },  # older: full
        {"type": "evaluation", "run": "b", "iter": 5, "samples": 100, "test_acc": 0.4, "eval_set": "slice"},
        {
            "type": "evaluation",
            "run": "b",
            "iter": 10,
            "samples": 200,
            "test_acc": 0.5,
            "eval_set": "slice",
            "epoch_end": True,
        },
        {
            "type": "epoch_end",
            "run": "b",
            "epoch": 1,
            "total_iters": 10,
            "total_samples": 200,
            "test_acc": 0.52,
            "eval_set": "full",
        },
        {
            "type": "evaluation",
            "run": "b",
            "iter": 5,
            "samples": 100,
            "test_acc": 0.45,
            "eval_set": "slice",
        },  # resumed
        {"type": "losses", "run": "b", "first_iter": 0, "values": [1.0]},
    ]
    got = evaluations(events)
    assert [(e["eval_set"], e["samples"], e["test_acc"]) for e in got["a"]] == [
        (HEAD, 60, 0.5),
        (FULL, 200, 0.6),
    ]
    assert [(e["eval_set"], e["samples"], e["test_acc"]) for e in got["b"]] == [
        (SLICE, 100, 0.45),
        (FULL, 200, 0.52),
        (SLICE, 200, 0.5),
    ]
    acc = run_accuracy((e["eval_set"], e["test_acc"]) for e in got["b"])
    assert (acc.current, acc.best) == (0.5, 0.5)


def test_the_report_says_which_images_each_accuracy_was_measured_on(tmp_path):
    from tests.unit.test_report import _write_run
    from trainer.cli.main import main
    from trainer.runlog import encode

    old = tmp_path / "old"
    _write_run(old, resolution=0.02)
    assert main(["report", str(old), "--no-plots"]) == 0
    assert "evaluation set: not recorded" in (old / "report.md").read_text()

    new = tmp_path / "new"
    _write_run(new, resolution=0.02)
    events = (new / "events.jsonl").read_text().splitlines(keepends=True)
    started = {
        "type": "run_started",
        "t": 0.5,
        "run": "bs6",
        "batch_size": 6,
        "lr": 0.02,
        "split_chunks": 1,
        "iters_per_epoch": 10,
        "eval_set": "slice",
        "eval_samples": 2000,
        "eval_slice_seed": SLICE_SEED,
        "test_samples": 10000,
        "eval_se_max": worst_standard_error(2000),
    }
    (new / "events.jsonl").write_text(events[0] + encode(started) + "\n" + "".join(events[1:]))
    assert main(["report", str(new), "--no-plots"]) == 0
    text = (new / "report.md").read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("- best acc, the target and collapse"))
    assert "2,000 of the 10,000 test images" in line and f"seed {SLICE_SEED}" in line
    assert "at most 1.1 points" in line and "0.31 points at the best run's 98.1%" in line
    assert "final acc: the full test set" in line
    assert "| 98.1% |" in text  # the slice's accuracy at its resolution (0.05%: one decimal)
