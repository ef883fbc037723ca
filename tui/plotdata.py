"""Turn run state into the few points a terminal plot can show.

Pure numpy (no Textual, no plotext): the loss grid calls these on every redraw,
the benchmark times them, tests check them. A plot is at most a few hundred
character columns wide, so each series is cut to two points (min and max) per
column: spikes survive, and plotext's cost no longer grows with the run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tui.minmax import exact_indices
from tui.state import RunState

#: The x axes `x` cycles through, in order, with their axis labels.
X_AXES = ("iteration", "epoch", "samples", "wall")
X_LABELS = {
    "iteration": "iteration",
    "epoch": "epoch",
    "samples": "samples seen",
    "wall": "wall time (s)",
}


def minmax_downsample(x: np.ndarray, y: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """At most 2 * columns points: the min and the max of y in each of `columns` equal index bins.

    Each bin's two points keep their order in the series, so a spike reads as a
    spike. NaN (missing) values are ignored; a bin with none left is dropped.
    (Runs use their incremental block summaries instead: `LossSeries.select`.)
    """
    idx = exact_indices(np.asarray(y), columns) if columns > 0 else np.empty(0, dtype=np.int64)
    return x[idx], np.asarray(y, dtype=np.float64)[idx]


def x_values(run: RunState, axis: str, n: int) -> np.ndarray:
    """The x of iterations 0..n-1 of `run` on the chosen axis (see x_at)."""
    return x_at(run, axis, np.arange(n))


def x_at(run: RunState, axis: str, iterations: np.ndarray) -> np.ndarray:
    """The x of the given iterations of `run` on the chosen axis.

    With epochs or samples seen, batch sizes line up (the same data seen); iteration
    counts updates; wall time is this run's own training time (see RunState.wall_at).
    """
    it = np.asarray(iterations, dtype=np.float64)
    if axis == "iteration":
        return it
    if axis == "epoch":
        ipe = run.iters_per_epoch or 1
        return (it + 1) / ipe
    if axis == "samples":
        return (it + 1) * run.batch_size
    if axis == "wall":
        return run.wall_at(it)
    raise ValueError(f"unknown x axis {axis!r}; one of {', '.join(X_AXES)}")


def iter_to_x(run: RunState, axis: str, iteration: int) -> float:
    """The x of one iteration (for marks such as a split-backward switch)."""
    return float(x_at(run, axis, np.array([max(0, iteration)]))[0])


def to_log10(y: np.ndarray) -> np.ndarray:
    """log10 of y; non-positive values become NaN (missing). Plotted ourselves because
    plotext's own log scale breaks on redraw."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log10(y.astype(np.float64))
    out[~np.isfinite(out)] = np.nan
    return out


@dataclass
class Series:
    """One run's curve, ready to draw: downsampled x/y, plus the faint raw curve."""

    run: str
    label: str
    x: np.ndarray
    y: np.ndarray
    faint_x: np.ndarray | None = None
    faint_y: np.ndarray | None = None
    #: x positions of split-backward switches, with the chunk count switched to.
    marks: list[tuple[float, int]] = field(default_factory=list)
    #: x where the run reached the target accuracy, if it did.
    target_x: float | None = None


def prepare_series(
    run: RunState, axis: str, log_y: bool, smooth: bool, columns: int
) -> Series:
    """Everything a plot of `run` needs, downsampled to `columns` columns."""
    n = len(run.losses)
    raw = run.losses.raw

    def points(values: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # log10 is monotonic: a column's min and max stay its min and max after it.
        y = values[idx].astype(np.float64)
        return x_at(run, axis, idx), (to_log10(y) if log_y else y)

    if smooth:
        xs, ys = points(run.losses.smooth, run.losses.select(columns, smooth=True))
    else:
        xs, ys = points(raw, run.losses.select(columns))
    keep = np.isfinite(ys)
    series = Series(run=run.run, label=f"bs {run.batch_size}", x=xs[keep], y=ys[keep])
    if smooth:
        fx, fy = points(raw, run.losses.select(columns))
        keep = np.isfinite(fy)
        series.faint_x, series.faint_y = fx[keep], fy[keep]
    for it, chunks in run.mode_changes:
        if it < n:
            series.marks.append((iter_to_x(run, axis, it), chunks))
    if run.target and isinstance(run.target.get("iter"), int):
        it = int(run.target["iter"]) - 1  # `iter` counts iterations done
        if 0 <= it < n:
            series.target_x = iter_to_x(run, axis, it)
    return series


#: With a linear y axis, the top is at most this many times the highest starting loss
#: (median of a run's first tenth): spikes of a small batch (losses of 15 where the
#: curves start at 2.3) must not flatten every curve; they run off the top, and
#: log-y (`l`) shows them whole.
SPIKE_FACTOR = 2.5


def shared_ylim(
    series: list[Series], include_faint: bool = False, exclude: set[str] | None = None, log_y: bool = False
) -> tuple[float, float] | None:
    """One y range for every plot, so batch sizes compare at a glance.

    The top is the largest per-run 99th percentile, not the max, capped (linear axis)
    at SPIKE_FACTOR x the largest starting loss; runs named in `exclude` (diverged
    ones) do not count unless nothing else is left: one run that blows up (batch
    size 1 at lr 0.02) must not flatten every other curve.
    """
    lows: list[float] = []
    highs: list[float] = []
    starts: list[float] = []
    chosen = [s for s in series if not exclude or s.run not in exclude]
    for s in chosen or series:
        parts = [s.y]
        if include_faint and s.faint_y is not None:
            parts.append(s.faint_y)
        y = np.concatenate(parts) if parts else np.empty(0)
        y = y[np.isfinite(y)]
        if len(y) == 0:
            continue
        lows.append(float(y.min()))
        highs.append(float(np.percentile(y, 99)))
        head = s.y[np.isfinite(s.y)][: max(1, len(s.y) // 10)]  # points are in x order
        if len(head):
            starts.append(float(np.median(head)))
    if not lows:
        return None
    lo, hi = min(lows), max(highs)
    if not log_y and starts and max(starts) > 0:
        hi = max(lo, min(hi, SPIKE_FACTOR * max(starts)))
    if hi <= lo:
        pad = abs(lo) * 0.05 or 0.5
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.03
    return lo - pad, hi + pad


def grid_columns(n: int, width: int, height: int, min_width: int = 14) -> int:
    """How many plots per row for `n` plots in a width x height area (in cells).

    Picks the layout whose plots have the largest drawing area of a useful shape:
    each plot loses about 5 columns (y ticks, frame) and 4 rows (title, frame,
    x ticks) to chrome, and a loss curve wants its data area about 2.5 cells wide
    per row. Never makes a plot narrower than `min_width`; wraps into rows when
    the terminal is narrow.
    """
    if n <= 1:
        return 1
    best, best_score = 1, -math.inf
    for cols in range(1, n + 1):
        rows = math.ceil(n / cols)
        w = width / cols
        if cols > 1 and w < min_width:
            break
        data_w = w - 5
        data_h = height / rows - 4
        score = min(data_w / 2.5, data_h)
        if score > best_score + 1e-9:
            best, best_score = cols, score
    return best


def format_tick(value: float, log_y: bool) -> str:
    """Y tick label: with log-y the value is log10(loss), so show the loss itself."""
    v = 10**value if log_y else value
    if v == 0:
        return "0"
    if abs(v) >= 100 or abs(v) < 0.01:
        return f"{v:.0e}"
    return f"{v:.2g}" if abs(v) < 1 else f"{v:.3g}"


def compact(value: float | None, digits: int = 3) -> str:
    """A short number for narrow cells: 0.0123, 1.23, 123, 12.3k, 1.2M; '-' when missing."""
    if value is None or not math.isfinite(value):
        return "-"
    v = abs(value)
    sign = "-" if value < 0 else ""
    for limit, div, suffix in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if v >= limit:
            return f"{sign}{v / div:.{digits - 1}g}{suffix}" if v / div < 100 else f"{sign}{v / div:.0f}{suffix}"
    if v >= 100:
        return f"{sign}{v:.0f}"
    if v == 0:
        return "0"
    if v < 0.001:  # 6.3e-5, not 6.28e-05: table cells are narrow
        mantissa, exponent = f"{v:.1e}".split("e")
        return f"{sign}{mantissa}e{int(exponent)}"
    return f"{sign}{v:.{digits}g}"


def nice_ticks(lo: float, hi: float, count: int) -> list[float]:
    """About `count` round tick positions inside [lo, hi] (1, 2, 5 x 10^k steps)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo or count < 1:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    ticks = []
    v = first
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    return ticks
