"""Downsampling, axes, ranges and layout: the numbers behind the loss grid."""

from __future__ import annotations

import numpy as np
import pytest

from tests.tui.test_state import started
from tui.render.layout import grid_columns, page_bounds, per_page
from tui.render.plotdata import (
    compact,
    eval_series,
    loss_series,
    minmax_downsample,
    shared_ylim,
    to_log10,
    value_at,
    window_xlim,
    x_extent,
    x_values,
)
from tui.state.run import EvalPoint
from tui.state.view import TAIL_ITERS, View

RAW = View(smoothing="raw")


def prepare_series(run, axis, log_y, smooth, columns):
    """The loss series of one run over its whole range."""
    view = View(x_axis=axis, log_y=log_y, smoothing="ema" if smooth else "raw")
    return loss_series(run, view, None, columns)


def test_downsample_keeps_spikes_and_bounds_points():
    n = 600_000
    y = np.ones(n, dtype=np.float32)
    y[123_457] = 50.0  # one spike
    y[400_001] = -3.0  # one dip
    x = np.arange(n, dtype=np.float64)
    xs, ys = minmax_downsample(x, y, 100)
    assert len(xs) <= 200
    assert ys.max() == 50.0 and ys.min() == -3.0
    assert xs[np.argmax(ys)] == 123_457
    assert np.all(np.diff(xs) >= 0)  # order kept


def test_downsample_ignores_missing_values():
    y = np.array([np.nan] * 10 + [1.0, 2.0] + [np.nan] * 500, dtype=np.float32)
    xs, ys = minmax_downsample(np.arange(len(y), dtype=float), y, 20)
    assert set(ys.tolist()) == {1.0, 2.0}
    assert np.isfinite(ys).all()


def test_short_series_are_kept_whole():
    y = np.array([3.0, np.nan, 1.0])
    xs, ys = minmax_downsample(np.arange(3.0), y, 10)
    assert xs.tolist() == [0.0, 2.0] and ys.tolist() == [3.0, 1.0]


def test_x_axes_line_batch_sizes_up_by_epoch_and_samples():
    s = started(6, 60)
    small, big = s.runs["bs6"], s.runs["bs60"]
    small.iters_per_epoch, big.iters_per_epoch = 100, 10
    assert x_values(small, "epoch", 100)[-1] == pytest.approx(1.0)
    assert x_values(big, "epoch", 10)[-1] == pytest.approx(1.0)
    assert x_values(small, "samples", 100)[-1] == x_values(big, "samples", 10)[-1] == 600
    with pytest.raises(ValueError, match="unknown x axis"):
        x_values(small, "furlongs", 3)


def test_log10_drops_non_positive_values():
    out = to_log10(np.array([100.0, 0.0, -1.0, 0.1]))
    assert out[0] == pytest.approx(2.0) and out[3] == pytest.approx(-1.0)
    assert np.isnan(out[1]) and np.isnan(out[2])


def test_shared_range_ignores_a_diverged_run():
    s = started(1, 60)
    s.apply({"type": "losses", "t": 1, "run": "bs1", "first_iter": 0, "values": [2.0] * 50 + [1e6] * 50})
    s.apply(
        {
            "type": "losses",
            "t": 1,
            "run": "bs60",
            "first_iter": 0,
            "values": np.linspace(2.3, 0.1, 100).tolist(),
        }
    )
    series = [prepare_series(r, "iteration", False, False, 50) for r in s.run_list()]
    lo, hi = shared_ylim(series, exclude={"bs1"})
    assert lo < 0.11 and 2.3 <= hi < 3
    assert shared_ylim(series)[1] < 6  # not excluded: the linear axis caps it near the starting loss
    assert shared_ylim(series, log_y=True)[1] > 1000  # uncapped (a log axis), it would set the range


def test_split_and_target_marks_follow_the_axis():
    s = started(60)
    s.apply({"type": "losses", "t": 1, "run": "bs60", "first_iter": 0, "values": [1.0] * 30})
    s.apply({"type": "mode_changed", "t": 1, "run": "bs60", "iter": 20, "split_chunks": 4})
    s.apply(
        {
            "type": "target_reached",
            "t": 1,
            "run": "bs60",
            "epoch": 1,
            "iter": 10,
            "samples": 600,
            "wall_s": 1.0,
            "compute_s": 1.0,
            "test_acc": 0.99,
        }
    )
    it = prepare_series(s.runs["bs60"], "iteration", False, False, 100)
    assert it.marks == [(20.0, 4)] and it.target_x == 9.0  # after 10 iterations: the x of the 10th
    smp = prepare_series(s.runs["bs60"], "samples", False, False, 100)
    assert smp.marks == [(21 * 60.0, 4)]


@pytest.mark.parametrize(
    ("n", "width", "height", "expected"),
    [
        (5, 160, 37, 3),  # wide and tall: 3 + 2 gives bigger plots than 5 thin ones
        (5, 250, 30, 5),  # very wide: one row
        (5, 80, 12, 5),  # 80x24 leaves ~12 rows: side by side beats 2 rows of 2-line plots
        (5, 60, 40, 2),  # narrow and tall: wraps
        (1, 80, 20, 1),
        (4, 26, 40, 1),  # too narrow for two side by side
    ],
)
def test_grid_columns_wrap_on_narrow_terminals(n, width, height, expected):
    assert grid_columns(n, width, height) == expected


def test_numbers_are_short():
    assert compact(600_000) == "600k" and compact(1_234_567) == "1.23M" and compact(None) == "-"
    assert compact(0.0123) == "0.0123" and compact(2.0) == "2.00"  # 3 significant figures beside 2.28


def test_spikes_of_one_run_do_not_flatten_the_others_on_a_linear_axis():
    s = started(1, 60)
    s.apply(
        {"type": "losses", "t": 1, "run": "bs1", "first_iter": 0, "values": ([2.3] * 9 + [17.0]) * 20}
    )  # stuck near 2.3 with big spikes, not diverged
    s.apply(
        {
            "type": "losses",
            "t": 1,
            "run": "bs60",
            "first_iter": 0,
            "values": np.linspace(2.3, 0.1, 200).tolist(),
        }
    )
    series = [prepare_series(r, "iteration", False, False, 50) for r in s.run_list()]
    lo, hi = shared_ylim(series)
    assert 2.3 < hi <= 2.5 * 2.3 * 1.05  # capped at SPIKE_FACTOR x the highest starting loss (+ margin)
    only_decay = shared_ylim(series[1:])
    assert only_decay[1] >= 2.3  # a decaying curve keeps its start on screen
    log_series = [prepare_series(r, "iteration", True, False, 50) for r in s.run_list()]
    assert shared_ylim(log_series, log_y=True)[1] >= np.log10(17.0)  # log-y shows the spikes whole


def test_tiny_and_small_numbers_stay_short():
    from tui.widgets.timing_panel import seconds

    assert compact(6.28e-05) == "6.28e-5"
    assert seconds(0.0685) == "68.5ms" and seconds(7.79) == "7.79s" and seconds(None) == "-"


def test_every_plot_shares_one_x_range_in_every_mode():
    s = started(6, 60)
    s.runs["bs6"].iters_per_epoch, s.runs["bs60"].iters_per_epoch = 100, 10
    s.apply({"type": "losses", "t": 1, "run": "bs6", "first_iter": 0, "values": [1.0] * 100})
    s.apply({"type": "losses", "t": 1, "run": "bs60", "first_iter": 0, "values": [1.0] * 10})
    runs = s.run_list()
    assert x_extent(runs, "iteration") == (0.0, 99.0)  # bs60's 10 iterations sit in the same 0..99
    assert x_extent(runs, "samples") == (0.0, 600.0)  # both saw 600 samples: they line up
    assert x_extent(runs, "epoch") == (0.01, 1.0)
    assert x_extent([], "epoch") is None


def test_a_window_is_each_runs_own_never_empty_for_a_run_still_training():
    """Was: `w` took the last 10% of the longest run, even a finished one, and emptied the others."""
    s = started(6, 60)
    s.apply({"type": "losses", "t": 1, "run": "bs6", "first_iter": 0, "values": [1.0] * 100})
    s.apply({"type": "losses", "t": 1, "run": "bs60", "first_iter": 0, "values": [1.0] * 10})
    runs = s.run_list()
    last10 = View(x_axis="iteration", window="last10")
    assert window_xlim([s.runs["bs6"]], last10) == pytest.approx((89.1, 99.0))
    assert window_xlim([s.runs["bs60"]], last10) == pytest.approx((8.1, 9.0))  # its own last 10%
    assert window_xlim(runs, last10) == pytest.approx((8.1, 99.0))  # the overlay spans both
    for axis in ("iteration", "samples", "epoch", "wall"):
        for window in ("last10", "tail"):
            view = View(x_axis=axis, window=window)
            for run in runs:
                series = loss_series(run, view, window_xlim([run], view), 50)
                assert len(series.x) > 0, (axis, window, run.run)


def test_the_tail_window_shows_the_last_iterations_of_the_run_furthest_along():
    s = started(6)
    s.apply({"type": "losses", "t": 1, "run": "bs6", "first_iter": 0, "values": [1.0] * (TAIL_ITERS * 3)})
    lo, hi = window_xlim(s.run_list(), View(x_axis="iteration", window="tail"))
    assert (lo, hi) == (2 * TAIL_ITERS, 3 * TAIL_ITERS - 1)
    series = loss_series(s.runs["bs6"], RAW, (lo, hi), 50)
    assert series.x.min() >= lo - 1 and series.x.max() == hi


def test_dense_loss_is_smoothed_over_a_band_by_default_and_sparse_loss_is_raw():
    s = started(1, 6000)
    s.runs["bs1"].losses.set_beta(0.99)  # a window of ~100 iterations (batch 1 of MNIST gets that)
    s.apply(
        {
            "type": "losses",
            "t": 1,
            "run": "bs1",
            "first_iter": 0,
            "values": (2.0 + np.sin(np.arange(5000))).tolist(),
        }
    )
    s.apply({"type": "losses", "t": 1, "run": "bs6000", "first_iter": 0, "values": [2.0, 1.5, 1.2]})
    dense = loss_series(s.runs["bs1"], View(), None, 100)
    assert dense.band_y is not None and dense.band_y.max() > 2.9 and dense.band_y.min() < 1.1
    assert np.ptp(dense.y[len(dense.y) // 2 :]) < 0.5  # the EMA is calm where the raw loss swings by 2
    sparse = loss_series(s.runs["bs6000"], View(), None, 100)
    assert sparse.band_y is None and sparse.y.tolist() == pytest.approx([2.0, 1.5, 1.2])


def test_accuracy_takes_points_at_any_iteration_and_the_y_range_holds_the_target():
    s = started(60)
    run = s.runs["bs60"]
    s.apply({"type": "losses", "t": 1, "run": "bs60", "first_iter": 0, "values": [1.0] * 30})
    for it, acc in ((5, 0.8), (10, 0.9), (30, 0.96)):
        run.add_eval(EvalPoint(it, it * 60, acc, 1 - acc))
    run.add_eval(EvalPoint(20, 1200, 0.93, 0.07))  # a sub-epoch evaluation arriving late still sorts in
    series = eval_series(run, View(metric="acc"), "acc")
    assert series.x.tolist() == [4.0, 9.0, 19.0, 29.0] and series.y.tolist() == [0.8, 0.9, 0.93, 0.96]
    lo, hi = shared_ylim([series], metric="acc", target=0.98)
    assert lo < 0.85 and 0.98 < hi <= 1.0
    assert value_at(series, 25.0) == 0.93 and value_at(series, 1.0) is None


def test_a_spike_beyond_the_quantiles_does_not_set_the_range():
    s = started(60)
    values = np.linspace(2.3, 0.1, 2000)
    values[1500] = 50.0
    s.apply({"type": "losses", "t": 1, "run": "bs60", "first_iter": 0, "values": values.tolist()})
    series = prepare_series(
        s.runs["bs60"], "iteration", True, False, 2000
    )  # log: no start cap, only quantiles
    assert shared_ylim([series], log_y=True)[1] < np.log10(50.0)


def test_small_multiples_page_instead_of_shrinking():
    assert per_page(9, 78, 12) == 3  # 80x24 with a 9-run sweep: three plots of 12 rows, not nine of one
    assert per_page(9, 156, 30) == 9
    assert page_bounds(9, 3, 1) == (3, 6, 3) and page_bounds(9, 3, 7) == (6, 9, 3)
