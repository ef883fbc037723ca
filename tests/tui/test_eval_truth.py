"""The app reads a run's accuracy as the trainer does (trainer.analysis.accuracy): one kind of evaluation for the
table's acc and best and for the accuracy plot; older run directories as they were shown."""

from __future__ import annotations

from tests.tui.test_state import started
from tui.render.plotdata import eval_series
from tui.state.view import View


def _eval(s, iters, acc, **extra):
    assert s.apply(
        {
            "type": "evaluation",
            "t": 1.0,
            "run": "bs60",
            "epoch": 1,
            "iter": iters,
            "samples": 60 * iters,
            "test_acc": acc,
            "test_loss": 1.0,
            **extra,
        }
    )


def _end(s, epoch, iters, acc, **extra):
    assert s.apply(
        {
            "type": "epoch_end",
            "t": 2.0,
            "run": "bs60",
            "epoch": epoch,
            "iters": 10,
            "samples": 600,
            "total_iters": iters,
            "total_samples": 60 * iters,
            "test_acc": acc,
            "test_loss": 1.0,
            **extra,
        }
    )


def test_a_run_collapsed_before_its_first_epoch_end_shows_what_it_reached():
    s = started(60)
    for i, acc in ((3, 0.31), (6, 0.573), (8, 0.09), (9, 0.098)):
        _eval(s, i, acc, eval_set="slice")
    run = s.runs["bs60"]
    assert (run.test_acc, run.best_acc) == (0.098, 0.573)


def test_the_table_and_the_plot_take_the_slice_and_leave_the_full_test_set_apart():
    s = started(60)
    _eval(s, 5, 0.55, eval_set="slice")
    _eval(s, 10, 0.60, eval_set="slice", epoch_end=True)
    _end(s, 1, 10, 0.66, eval_set="full")  # same iteration, the other kind: kept apart, not replacing
    run = s.runs["bs60"]
    assert (run.test_acc, run.best_acc) == (0.60, 0.60)
    assert [(e.iters, e.eval_set) for e in run.evals] == [(5, "slice"), (10, "slice"), (10, "full")]
    series = eval_series(run, View(smoothing="raw"), "acc")
    assert series.y.tolist() == [0.55, 0.60]


def test_an_older_run_directory_reads_as_it_was_shown_from_its_epoch_ends():
    s = started(60)
    _eval(s, 5, 0.70)  # sub-epoch, no eval_set: the test set's first 2,000 images
    _end(s, 1, 10, 0.65)
    _eval(s, 15, 0.90)
    _end(s, 2, 20, 0.80)
    run = s.runs["bs60"]
    assert (run.test_acc, run.best_acc) == (0.80, 0.80)
    assert [(e.iters, e.eval_set) for e in run.own_evals] == [(10, "full"), (20, "full")]
    assert eval_series(run, View(smoothing="raw"), "acc").y.tolist() == [0.65, 0.80]
