"""Turn run state into the few points a terminal plot can show, on a shared x range.

Pure numpy (no Textual): the loss grid calls these on every redraw, the benchmark times
them, tests check them. A plot is at most a few hundred character columns wide, so each
series is cut to two points (min and max) per column: spikes survive, and the cost does not
grow with the run. Every small multiple gets the same x range (`x_extent`, `window_xlim`),
in every x mode, so plots compare at a glance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from trainer.analysis.figures import num
from tui.state.minmax import exact_indices
from tui.state.run import RunState
from tui.state.view import TAIL_ITERS, X_AXES, View


def minmax_downsample(x: np.ndarray, y: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """At most 2 * columns points: the min and the max of y in each of `columns` equal index bins.

    NaN (missing) values are ignored. (Runs use their incremental block summaries instead:
    `LossSeries.select`.)
    """
    idx = exact_indices(np.asarray(y), columns) if columns > 0 else np.empty(0, dtype=np.int64)
    return x[idx], np.asarray(y, dtype=np.float64)[idx]


def x_values(run: RunState, axis: str, n: int) -> np.ndarray:
    """The x of iterations 0..n-1 of `run` on the chosen axis (see x_at)."""
    return x_at(run, axis, np.arange(n))


def x_at(run: RunState, axis: str, iterations: np.ndarray) -> np.ndarray:
    """The x of the given iterations (0-based) of `run`: where the plot puts each one's loss.

    With epochs or samples seen, batch sizes line up (the same data seen); iteration counts
    updates; wall is this run's own training time (see RunState.wall_at).
    """
    it = np.asarray(iterations, dtype=np.float64)
    if axis == "iteration":
        return it
    if run.batch_stages and axis in ("epoch", "samples"):  # a scheduled run: each stage at its batch size
        samples = scheduled_samples(run.batch_stages, it + 1)
        if axis == "samples":
            return samples
        return samples / ((run.iters_per_epoch or 1) * run.batch_stages[0][2])  # its first stage's epoch
    if axis == "epoch":
        return (it + 1) / (run.iters_per_epoch or 1)
    if axis == "samples":
        return (it + 1) * run.batch_size
    if axis == "wall":
        return run.wall_at(it)
    raise ValueError(f"unknown x axis {axis!r}; one of {', '.join(X_AXES)}")


def scheduled_samples(stages: list[tuple[int, int, int]], iters: np.ndarray) -> np.ndarray:
    """Training samples after `iters` iterations of a run whose batch size changed at `stages`
    ((iteration, samples, batch size) from its start on)."""
    starts = np.array([s[0] for s in stages], dtype=np.float64)
    k = np.clip(np.searchsorted(starts, iters, side="right") - 1, 0, len(stages) - 1)
    base = np.array([s[1] for s in stages], dtype=np.float64)
    sizes = np.array([s[2] for s in stages], dtype=np.float64)
    return base[k] + (iters - starts[k]) * sizes[k]


def iter_to_x(run: RunState, axis: str, iteration: int) -> float:
    """The x of one iteration (for marks such as a split-backward switch)."""
    return float(x_at(run, axis, np.array([max(0, iteration)]))[0])


def first_iter_at(run: RunState, axis: str, x: float, n: int) -> int:
    """The first iteration in 0..n whose x is >= x (x grows with the iteration on every axis)."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if iter_to_x(run, axis, mid) < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


def to_log10(y: np.ndarray) -> np.ndarray:
    """log10 of y; non-positive values become NaN (missing)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log10(np.asarray(y, dtype=np.float64))
    out[~np.isfinite(out)] = np.nan
    return out


def eval_x(run: RunState, axis: str, iters: np.ndarray) -> np.ndarray:
    """The x of evaluations taken after `iters` iterations (the x of the last one trained)."""
    return x_at(run, axis, np.maximum(np.asarray(iters, dtype=np.float64) - 1, 0))


def x_extent(runs: list[RunState], axis: str) -> tuple[float, float] | None:
    """The x range of everything trained so far, over every run (one range for every plot)."""
    lo, hi = math.inf, -math.inf
    for run in runs:
        n = len(run.losses)
        if n:
            lo = min(lo, iter_to_x(run, axis, 0))
            hi = max(hi, iter_to_x(run, axis, n - 1))
        if run.evals:
            xs = eval_x(run, axis, np.array([run.evals[0].iters, run.evals[-1].iters]))
            lo, hi = min(lo, float(xs[0])), max(hi, float(xs[1]))
    if not math.isfinite(lo):
        return None
    if axis in ("iteration", "samples", "wall"):
        lo = min(lo, 0.0)  # these start at zero: a run's first point is not the axis' origin
    if hi <= lo:
        return lo - 0.5, hi + 0.5
    return lo, hi


def window_xlim(runs: list[RunState], view: View) -> tuple[float, float] | None:
    """The x range the plots show: the whole extent of every run, or (window `last10` / `tail`) the
    span of the runs' own windows: each run's own last 10% or last TAIL_ITERS iterations, so a run
    still training is never windowed out by a longer one. A plot of one run passes just that run."""
    extent = x_extent(runs, view.x_axis)
    if extent is None or view.window == "full":
        return extent
    own = [w for run in runs if (w := _own_window(run, view)) is not None]
    if not own:
        return extent
    return min(lo for lo, _ in own), max(hi for _, hi in own)


def _own_window(run: RunState, view: View) -> tuple[float, float] | None:
    """One run's window: the last 10% of its own extent, or its own last TAIL_ITERS iterations."""
    extent = x_extent([run], view.x_axis)
    if extent is None:
        return None
    lo, hi = extent
    if view.window == "last10":
        return hi - 0.1 * (hi - lo), hi
    n = len(run.losses)
    if n == 0:
        return extent
    start = iter_to_x(run, view.x_axis, max(0, n - TAIL_ITERS))
    return (start, hi) if hi > start else extent


@dataclass
class Series:
    """One run's curve in a plot's x range, downsampled: the line, and the band under it (if any)."""

    run: str
    x: np.ndarray
    y: np.ndarray
    band_x: np.ndarray | None = None
    band_y: np.ndarray | None = None
    #: x positions of split-backward switches, with the chunk count switched to.
    marks: list[tuple[float, int]] = field(default_factory=list)
    #: x positions where a scheduled run's batch size changed, with the new batch size.
    batch_marks: list[tuple[float, int]] = field(default_factory=list)
    #: x where the run reached the target accuracy, if it did (and that x is in range).
    target_x: float | None = None

    def values(self) -> np.ndarray:
        """Every y shown (line and band), for the y range."""
        parts = [self.y] + ([self.band_y] if self.band_y is not None else [])
        y = np.concatenate(parts) if parts else np.empty(0)
        return y[np.isfinite(y)]


def _marks(run: RunState, axis: str, series: Series) -> None:
    n = len(run.losses)
    for it, chunks in run.mode_changes:
        if it < n:
            series.marks.append((iter_to_x(run, axis, it), chunks))
    for it, _, size in run.batch_stages[1:]:  # after `it` iterations: where the last of the old size ends
        if it < n:
            series.batch_marks.append((iter_to_x(run, axis, it - 1), size))
    if run.target and isinstance(run.target.get("iter"), int) and run.target["iter"] >= 1:
        series.target_x = float(eval_x(run, axis, np.array([run.target["iter"]]))[0])


def loss_series(run: RunState, view: View, xlim: tuple[float, float] | None, columns: int) -> Series:
    """Training loss in x range `xlim`: the raw series, or (denser than the plot, or asked for)
    its EMA over a min/max band of the raw values."""
    n = len(run.losses)
    lo, hi = 0, n
    if xlim is not None and n:
        lo = max(0, first_iter_at(run, view.x_axis, xlim[0], n) - 1)  # one point before: the line enters
        hi = min(n, first_iter_at(run, view.x_axis, xlim[1], n) + 1)
    raw = run.losses.raw

    def points(values: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = values[idx].astype(np.float64)  # log10 is monotonic: a column's min and max stay so
        y = to_log10(y) if view.log_y else y
        keep = np.isfinite(y)
        return x_at(run, view.x_axis, idx)[keep], y[keep]

    ends = np.array([lo, hi - 1], dtype=np.int64) if hi > lo else np.empty(0, dtype=np.int64)
    # Each column's min and max, and both ends: the line reaches the newest iteration.
    raw_idx = np.union1d(run.losses.select(columns, lo=lo, hi=hi), ends)
    smooth = view.smoothing == "ema" or (view.smoothing == "auto" and hi - lo > columns)
    if smooth:
        x, y = points(
            run.losses.smooth, np.union1d(run.losses.select(columns, smooth=True, lo=lo, hi=hi), ends)
        )
        bx, by = points(raw, raw_idx)
        series = Series(run.run, x, y, bx, by)
    else:
        x, y = points(raw, raw_idx)
        series = Series(run.run, x, y)
    _marks(run, view.x_axis, series)
    return series


def eval_series(run: RunState, view: View, metric: str) -> Series:
    """Test accuracy or test loss at every evaluation of the run's kind so far (few points: no downsampling)."""
    points = [(e.iters, e.test_acc if metric == "acc" else e.test_loss) for e in run.own_evals]
    points = [(i, v) for i, v in points if v is not None]
    iters = np.array([i for i, _ in points], dtype=np.float64)
    y = np.array([v for _, v in points], dtype=np.float64)
    if metric == "test_loss" and view.log_y:
        y = to_log10(y)
    keep = np.isfinite(y)
    series = Series(run.run, eval_x(run, view.x_axis, iters)[keep], y[keep])
    _marks(run, view.x_axis, series)
    return series


def series_for(run: RunState, view: View, xlim: tuple[float, float] | None, columns: int) -> Series:
    if view.metric == "loss":
        return loss_series(run, view, xlim, columns)
    return eval_series(run, view, view.metric)


#: With a linear y axis, the top is at most this many times the highest starting loss
#: (median of a run's first tenth): spikes of a small batch (losses of 15 where the
#: curves start at 2.3) must not flatten every curve; they are marked at the top edge,
#: and log-y (`l`) shows them whole.
SPIKE_FACTOR = 2.5
#: The y range covers these quantiles of each run's points; what lies beyond is marked at the edge.
Q_LOW, Q_HIGH = 0.5, 99.5


def shared_ylim(
    series: list[Series],
    exclude: set[str] | None = None,
    log_y: bool = False,
    metric: str = "loss",
    target: float | None = None,
) -> tuple[float, float] | None:
    """A y range for these series, robust to outliers.

    Loss: from the lowest to the highest per-run quantile (Q_LOW..Q_HIGH), capped on a linear
    axis at SPIKE_FACTOR x the largest starting loss; runs in `exclude` (diverged ones) do not
    count unless nothing else is left. Accuracy: the runs' 10th percentile up to the best value,
    the target included, within [0, 1].
    """
    chosen = [s for s in series if not exclude or s.run not in exclude]
    lows: list[float] = []
    highs: list[float] = []
    starts: list[float] = []
    for s in chosen or series:
        y = s.values()
        if len(y) == 0:
            continue
        if metric == "acc":
            lows.append(float(np.percentile(y, 10)))
            highs.append(float(y.max()))
            continue
        lows.append(float(np.percentile(y, Q_LOW)))
        highs.append(float(np.percentile(y, Q_HIGH)))
        head = s.y[np.isfinite(s.y)][: max(1, len(s.y) // 10)]  # points are in x order
        if len(head):
            starts.append(float(np.median(head)))
    if not lows:
        return None
    lo, hi = min(lows), max(highs)
    if metric == "acc":
        if target is not None:
            lo, hi = min(lo, target), max(hi, target)
        pad = max(0.005, (hi - lo) * 0.05)
        return max(0.0, lo - pad), min(1.0, hi + pad)
    if metric == "loss" and not log_y and starts and max(starts) > 0:
        hi = max(lo, min(hi, SPIKE_FACTOR * max(starts)))
    if hi <= lo:
        pad = abs(lo) * 0.05 or 0.5
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.03
    return lo - pad, hi + pad


def value_at(series: Series, x: float) -> float | None:
    """The series' value at x: the last point at or before it (None before its first point)."""
    if len(series.x) == 0 or x < series.x[0]:
        return None
    i = int(np.searchsorted(series.x, x, side="right")) - 1
    return float(series.y[max(0, i)])


def compact(value: float | None, digits: int = 3) -> str:
    """A short number for narrow cells (trainer.analysis.figures.num): 0.0123, 2.00, 123, 12.3k, 1.20M; '-' when missing."""
    return num(value, digits)
