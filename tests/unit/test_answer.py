"""The sweep's answer laid out (trainer/analysis/answer/): the batch x lr matrix with seeds folded, the regimes
of the steps-to-target curve, and the lr rule measured from the grid."""

from __future__ import annotations

import math

import pytest

from trainer.analysis import answer
from trainer.analysis.scaling import analyse, lr_points


def _row(b, lr, seed=0, *, steps=None, status="done", acc=0.9, loss=0.3, time_s=None):
    row = {
        "batch_size": b,
        "lr": lr,
        "seed": seed,
        "status": status,
        "best_test_acc": acc,
        "final_train_loss": loss,
    }
    if steps is not None:
        t = time_s if time_s is not None else steps * 0.01
        row.update(
            iters_to_target=steps,
            iters_to_target_lo=0.9 * steps,
            samples_to_target=steps * b,
            samples_to_target_lo=0.9 * steps * b,
            time_to_target_s=t,
            time_to_target_lo_s=0.9 * t,
        )
    return row


# -- matrix folding -----------------------------------------------------------------------


def test_seeds_fold_into_one_cell_with_mean_and_spread():
    rows = [
        _row(8, 0.1, 0, steps=100, acc=0.90, loss=0.30),
        _row(8, 0.1, 1, steps=120, acc=0.92, loss=0.34),
        _row(8, 0.3, 0, steps=80, acc=0.91),
        _row(8, 0.3, 1, steps=None, acc=0.80),
        _row(64, 0.1, 0, steps=40),
        _row(64, 0.1, 1, steps=44),
        _row(64, 0.3, 0, steps=30, status="diverged"),
        _row(64, 0.3, 1, steps=31),
    ]
    points = lr_points(rows)
    steps = answer.matrix(points, "steps")
    assert steps.batch_sizes == [8, 64] and steps.lrs == [0.1, 0.3]
    c = steps.cell(8, 0.1)
    assert c.seeds == 2 and c.value == pytest.approx(110) and c.spread == pytest.approx(math.sqrt(200))
    assert answer.cell_text(c, "steps") == "110±14"
    # One seed of two missed: no steps to show, and the status says so; it cannot be the row's best.
    assert steps.cell(8, 0.3).value is None and steps.cell(8, 0.3).status == "1/2 reached"
    # Fastest once, then diverged: never the best.
    assert (
        steps.cell(64, 0.3).status == "diverged"
        and answer.cell_text(steps.cell(64, 0.3), "steps") == "diverged"
    )
    assert steps.best == {8: 0.1, 64: 0.1} and steps.answer == (64, 0.1)
    acc = answer.matrix(points, "accuracy")
    assert acc.cell(8, 0.1).value == pytest.approx(0.91) and acc.cell(8, 0.1).spread == pytest.approx(
        0.01414, rel=1e-3
    )
    assert answer.cell_text(acc.cell(8, 0.1), "accuracy") == "91.0%±1.4"
    assert acc.best[8] == 0.1 and acc.answer == (8, 0.1)  # accuracy: any usable lr, the highest mean
    loss = answer.matrix(points, "loss")
    assert loss.cell(8, 0.1).value == pytest.approx(0.32)


def test_a_cell_still_training_says_running_not_not_reached():
    rows = [_row(8, 0.1, 0, steps=100), {"batch_size": 8, "lr": 0.1, "seed": 1, "status": "running"}]
    m = answer.matrix(lr_points(rows), "time")
    assert m.cell(8, 0.1).status == "running" and m.best == {} and m.answer is None


def test_the_markdown_table_marks_the_best_of_each_row_and_the_answer():
    rows = [
        _row(b, lr, s, steps=st)
        for b, lr, st in ((8, 0.1, 100), (8, 0.3, 90), (64, 0.1, 50), (64, 0.3, 60))
        for s in (0, 1)
    ]
    table = answer.markdown_table(answer.matrix(lr_points(rows), "steps"))
    assert table[0] == "| batch \\ lr | 0.1 | 0.3 |"
    assert table[2] == "| 8 | 100±0 | **90±0** |"
    assert table[3] == "| 64 | **50±0** ★ | 60±0 |"


# -- regimes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "slope, regime",
    [
        (-1.0, answer.PERFECT),
        (-0.7, answer.PERFECT),
        (-0.5, answer.DIMINISHING),
        (-0.25, answer.DIMINISHING),
        (-0.1, answer.NO_GAIN),
        (0.2, answer.NO_GAIN),
        (None, None),
    ],
)
def test_a_slope_names_its_regime(slope, regime):
    assert answer.classify(slope) == regime


def _curve_rows(batch_sizes, steps_of, lrs=(0.1,)):
    return [_row(b, lr, s, steps=steps_of(b)) for b in batch_sizes for lr in lrs for s in (0, 1)]


def test_regimes_of_a_curve_that_bends_at_b_crit():
    """S = S_min (1 + B_crit / B): far below B_crit perfect scaling, near it diminishing, far above no gain."""
    b_crit, s_min = 256.0, 100.0
    sizes = [4, 16, 256, 4096, 16384]
    a = analyse(_curve_rows(sizes, lambda b: s_min * (1 + b_crit / b)))
    c = answer.curve(a)
    assert c.fit["determined"]
    assert [p.regime for p in c.points] == [
        answer.PERFECT,
        answer.PERFECT,
        answer.DIMINISHING,
        answer.NO_GAIN,
        answer.NO_GAIN,
    ]
    assert [p.measured_regime for p in c.points] == [
        answer.PERFECT,
        answer.PERFECT,
        answer.DIMINISHING,
        answer.NO_GAIN,
        answer.NO_GAIN,
    ]
    text = answer.regime_sentence(c)
    assert text.startswith(
        "perfect scaling at batch 4, 16; diminishing returns at batch 256; no gain at batch 4096, 16384"
    )
    assert "(from the fit: B_crit 2" in text


def test_regimes_from_measured_slopes_when_the_fit_is_not_determined():
    """Two batch sizes: no B_crit (a fit needs 3), the measured slope still names the regime."""
    c = answer.curve(analyse(_curve_rows([16, 64], lambda b: 6400 / b)))
    assert not c.fit.get("determined")
    assert [p.regime for p in c.points] == [answer.PERFECT, answer.PERFECT]
    assert [p.fit_regime for p in c.points] == [None, None]
    assert (
        "from the measured slopes between neighbouring batch sizes; B_crit is not determined"
        in answer.regime_sentence(c)
    )
    flat = answer.curve(analyse(_curve_rows([16, 64, 256], lambda b: 500)))
    assert {p.measured_regime for p in flat.points} == {answer.NO_GAIN}


def test_a_batch_size_whose_lrs_all_missed_is_a_not_reached_point():
    rows = _curve_rows([16, 64], lambda b: 6400 / b) + [
        _row(256, 0.1, s, steps=None, acc=0.7) for s in (0, 1)
    ]
    c = answer.curve(analyse(rows))
    assert [p.batch_size for p in c.points] == [16, 64, 256]
    assert c.points[-1].regime == answer.NOT_REACHED and not c.points[-1].reached
    assert "batch 256: no lr reached the target" in answer.regime_sentence(c)


# -- the lr rule --------------------------------------------------------------------------


def _lr_grid(best_of, batch_sizes=(8, 32, 128, 512, 2048), ratio=2.0, points=13):
    """A log-spaced lr grid (ratio apart, centred on 0.01) per batch size; steps grow with the distance
    (in log) from that batch size's best lr, so the best lr tried is the one nearest best_of(B)."""
    lrs = [0.01 * ratio ** (i - points // 2) for i in range(points)]
    rows = []
    for b in batch_sizes:
        for lr in lrs:
            steps = 1000 * (1 + 3 * abs(math.log(lr / best_of(b))))
            for s in (0, 1):
                rows.append(_row(b, lr, s, steps=steps))
    return rows, lrs


@pytest.mark.parametrize("exponent, kind", [(1.0, "linear"), (0.5, "square root"), (0.0, "flat")])
def test_the_lr_rule_slope_and_interval_on_synthetic_grids(exponent, kind):
    rows, lrs = _lr_grid(lambda b: 0.0005 * (b / 8) ** exponent if exponent else 0.01)
    rule = answer.lr_rule(lr_points(rows))
    assert len(rule.best) == 5
    assert rule.slope_lo <= exponent <= rule.slope_hi
    assert rule.slope == pytest.approx(exponent, abs=0.15)
    assert rule.slope_hi - rule.slope_lo < 0.45  # a grid 2x apart over 2.4 decades pins it to a few tenths
    assert rule.kind == kind
    for p in rule.best:  # never an lr the grid did not try
        assert p.lr in lrs


def test_the_rule_lr_for_a_batch_size_not_run_interpolates_the_measured_best_lrs():
    rows, lrs = _lr_grid(lambda b: 0.0005 * (b / 8))
    rule = answer.lr_rule(lr_points(rows))
    lr, lo, hi = rule.lr_at(64)
    best = {p.batch_size: p.lr for p in rule.best}
    assert best[32] < lr < best[128] and lo <= lr <= hi
    assert answer.unrun_batch_sizes([8, 32, 128]) == [16, 64]
    text = answer.rule_sentence(rule)
    assert ": linear;" in text and "for batch sizes not run: batch 16: lr" in text


def test_a_coarse_grid_cannot_resolve_the_rule_and_says_so():
    rows, _ = _lr_grid(lambda b: 0.002 * (b / 8) ** 0.75, batch_sizes=(8, 32), ratio=10.0, points=5)
    rule = answer.lr_rule(lr_points(rows))
    assert rule.kind.startswith("between ") and "(not resolved)" in rule.kind


def test_the_tie_band_holds_lrs_whose_crossings_overlap_the_best():
    rows = (
        [_row(8, 0.1, s, steps=100) for s in (0, 1)]
        + [_row(8, 0.2, s, steps=105) for s in (0, 1)]
        + [_row(8, 0.4, s, steps=300) for s in (0, 1)]
    )
    (best,) = answer.best_lrs(lr_points(rows))
    assert best.lr == 0.1 and (best.tie_lo, best.tie_hi) == (0.1, 0.2)
    assert best.at_edge == "lowest"  # the lowest lr tried: the optimum may lie below the grid
    assert best.lo == pytest.approx(0.1 / math.sqrt(2)) and best.hi == pytest.approx(0.2 * math.sqrt(2))


def test_one_batch_size_has_no_slope_and_the_reason_is_consistent():
    rule = answer.lr_rule(lr_points([_row(8, 0.1, s, steps=100) for s in (0, 1)]))
    assert (
        rule.slope is None
        and answer.rule_sentence(rule)
        == "lr rule: not measured (1 batch size with a best lr; a slope needs 2)"
    )


# -- the answer in words ------------------------------------------------------------------


def test_the_reached_count_names_runs_still_training():
    a = analyse([_row(8, 0.1, 0, steps=None), {"batch_size": 8, "lr": 0.1, "seed": 1, "status": "running"}])
    assert (
        answer.reached_sentence(a, 0.98, unfinished=5)
        == "0 of 1 batch size reached 98% (5 runs still training)"
    )


def test_the_answer_lines_name_time_steps_regimes_and_the_rule():
    rows, _ = _lr_grid(lambda b: 0.0005 * (b / 8) ** 0.5)
    lines = answer.answer_lines(analyse(rows), 0.9, "cpu")
    assert lines[0].startswith("fastest to 90% test accuracy: batch")
    assert lines[1] == "5 of 5 batch sizes reached 90%"
    assert lines[2].startswith("fewest steps: batch")
    assert lines[3].startswith("regimes: ")
    assert lines[-1].startswith("lr rule: best lr ~ B^")


def test_a_batch_size_still_training_is_provisional_not_not_reached():
    rows = (
        _curve_rows([16, 64], lambda b: 6400 / b)
        + [{"batch_size": 256, "lr": 0.1, "seed": s, "status": "running"} for s in (0, 1)]
        + [{"batch_size": 64, "lr": 0.3, "seed": 0, "status": "running"}]
    )
    c = answer.curve(analyse(rows))
    assert [(p.batch_size, p.regime, p.provisional) for p in c.points] == [
        (16, answer.PERFECT, False),
        (64, answer.PERFECT, True),
        (256, answer.TRAINING, True),
    ]
    text = answer.regime_sentence(c)
    assert "no lr reached" not in text and text.endswith("; provisional: batch 64, 256 still training")


def test_b_simple_from_the_runs_end_is_not_called_the_one_at_the_target():
    from trainer.analysis.answer import b_simple_sentence

    at_end = {"b_simple": 600.0, "b_simple_batches": [8, 32], "b_simple_at": "end"}
    assert b_simple_sentence(at_end).startswith(
        "B_simple at the target: not recorded; at the runs' end 600 ("
    )
    at_target = {**at_end, "b_simple": 290.0, "b_simple_at": "target"}
    assert b_simple_sentence(at_target).startswith("B_simple at the target 290 (median over batch 8, 32;")


def test_batch_sizes_that_each_trained_one_lr_claim_no_rule():
    # The lrs follow the config's linear rule exactly: a slope through them would only repeat it.
    rows = [_row(b, 0.01 * b / 8, s, steps=800 // b) for b in (8, 32, 128) for s in (0, 1)]
    rule = answer.lr_rule(lr_points(rows))
    assert rule.slope is None and rule.kind == ""
    assert "each batch size trained one lr" in answer.rule_sentence(rule)
    # One batch size with a grid beside two without: still no slope (it needs 2 measured best lrs).
    rows += [_row(8, 0.02, s, steps=90) for s in (0, 1)]
    rule = answer.lr_rule(lr_points(rows))
    assert rule.slope is None and "1 batch size with a best lr" in rule.reason
