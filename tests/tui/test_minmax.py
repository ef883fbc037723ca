"""Block min/max summaries: what a redraw reads instead of every loss."""

from __future__ import annotations

import numpy as np

from tui.state.minmax import MinMaxIndex, exact_indices
from tui.state.series import LossSeries


def test_select_keeps_the_extremes_and_bounds_the_points():
    rng = np.random.default_rng(1)
    y = rng.normal(1.0, 0.1, 600_000).astype(np.float32)
    y[77_777], y[512_345] = 40.0, -9.0
    y[1000:1500] = np.nan
    idx = MinMaxIndex().select(y, 100)
    assert 77_777 in idx and 512_345 in idx
    assert len(idx) <= 2 * 100 + 2
    assert np.all(np.diff(idx) > 0)
    assert np.isfinite(y[idx]).all()


def test_incremental_updates_match_a_fresh_summary():
    rng = np.random.default_rng(2)
    y = rng.uniform(0, 3, 50_000).astype(np.float32)
    inc = MinMaxIndex()
    for end in (100, 5_000, 5_017, 33_333, 50_000):  # arrives in uneven pieces
        inc.update(y[:end])
    assert np.array_equal(inc.select(y, 64), MinMaxIndex().select(y, 64))


def test_every_column_keeps_its_min_and_max():
    rng = np.random.default_rng(3)
    y = rng.uniform(0, 1, 10_000)
    idx = exact_indices(y, 10)
    for c in range(10):
        lo, hi = c * 1000, (c + 1) * 1000
        inside = idx[(idx >= lo) & (idx < hi)]
        assert set(y[inside]) == {y[lo:hi].min(), y[lo:hi].max()}


def test_loss_series_select_follows_new_values_and_rewrites():
    s = LossSeries()
    s.put(0, [1.0] * 40_000)
    s.put(40_000, [1.0] * 9_999 + [50.0])
    assert 49_999 in s.select(50)
    s.put(10, [-5.0])  # rewriting the past: summaries start over
    assert 10 in s.select(50)
