"""Min/max per block of a growing series, kept up to date as values arrive.

A redraw must not cost time proportional to the run's length (5 runs x 600,000
losses). Each series keeps, for blocks of 16, 256 and 4,096 iterations,
the min and the max with their positions; choosing two points per plot column
then reads a few thousand block summaries instead of every loss. Spikes survive:
a column's max is the max of its blocks' maxes.
"""

from __future__ import annotations

import numpy as np

LEVELS = (16, 256, 4096)


class _Level:
    """Block summaries for one block size: min/max values and their global positions."""

    def __init__(self, block: int) -> None:
        self.block = block
        self.count = 0  # complete blocks summarised
        cap = 64
        self.mins = np.empty(cap, dtype=np.float64)
        self.maxs = np.empty(cap, dtype=np.float64)
        self.argmin = np.empty(cap, dtype=np.int64)
        self.argmax = np.empty(cap, dtype=np.int64)

    def update(self, values: np.ndarray) -> None:
        n_blocks = len(values) // self.block
        if n_blocks <= self.count:
            return
        lo_b, hi_b = self.count, n_blocks
        chunk = values[lo_b * self.block : hi_b * self.block].astype(np.float64).reshape(-1, self.block)
        finite = np.isfinite(chunk)
        low = np.where(finite, chunk, np.inf)
        high = np.where(finite, chunk, -np.inf)
        rows = np.arange(len(chunk))
        amin, amax = low.argmin(axis=1), high.argmax(axis=1)
        base = (np.arange(lo_b, hi_b) * self.block).astype(np.int64)
        self._grow(hi_b)
        self.mins[lo_b:hi_b] = low[rows, amin]
        self.maxs[lo_b:hi_b] = high[rows, amax]
        self.argmin[lo_b:hi_b] = np.where(np.isfinite(low[rows, amin]), base + amin, -1)
        self.argmax[lo_b:hi_b] = np.where(np.isfinite(high[rows, amax]), base + amax, -1)
        self.count = hi_b

    def _grow(self, size: int) -> None:
        if size <= len(self.mins):
            return
        cap = max(size, 2 * len(self.mins))
        for name in ("mins", "maxs", "argmin", "argmax"):
            old = getattr(self, name)
            new = np.empty(cap, dtype=old.dtype)
            new[: self.count] = old[: self.count]
            setattr(self, name, new)


def _first_in_group(values: np.ndarray, starts: np.ndarray, best: np.ndarray) -> np.ndarray:
    """Index (into values) of the first element equal to its group's `best`, per group."""
    group = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(values))))
    hits = np.where(values == best[group], np.arange(len(values)), len(values))
    return np.minimum.reduceat(hits, starts)


def exact_indices(values: np.ndarray, columns: int) -> np.ndarray:
    """Positions of the min and max of each of `columns` equal bins (NaN ignored), in order."""
    n = len(values)
    if n <= 2 * columns:
        return np.flatnonzero(np.isfinite(values))
    v = values.astype(np.float64)
    finite = np.isfinite(v)
    low, high = np.where(finite, v, np.inf), np.where(finite, v, -np.inf)
    starts = (np.arange(columns) * n) // columns
    mins, maxs = np.minimum.reduceat(low, starts), np.maximum.reduceat(high, starts)
    imin = _first_in_group(low, starts, mins)[np.isfinite(mins)]
    imax = _first_in_group(high, starts, maxs)[np.isfinite(maxs)]
    return np.unique(np.concatenate([imin, imax]))


class MinMaxIndex:
    """Incremental block summaries of one series; `select` picks what a plot of N columns needs."""

    def __init__(self) -> None:
        self.levels = [_Level(b) for b in LEVELS]

    def reset(self) -> None:
        self.levels = [_Level(lv.block) for lv in self.levels]

    def update(self, values: np.ndarray) -> None:
        """Summarise the complete blocks of `values` (the whole series so far) not yet seen."""
        for level in self.levels:
            level.update(values)

    def select(self, values: np.ndarray, columns: int, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """Sorted positions of at most about 2 x columns points in values[lo:hi]: each column's min and max.

        Uses the coarsest block size that still gives every column two blocks or more;
        short ranges are binned exactly, and so are the partial blocks at either end.
        """
        n = len(values)
        hi = n if hi is None else max(0, min(n, hi))
        lo = max(0, min(lo, hi))
        if columns <= 0 or hi <= lo:
            return np.empty(0, dtype=np.int64)
        self.update(values)
        level = next((lv for lv in reversed(self.levels) if (hi - lo) // lv.block >= 2 * columns + 2), None)
        if level is None:
            return lo + exact_indices(values[lo:hi], columns)
        b0 = -(-lo // level.block)  # first whole block in the range
        b1 = min(hi // level.block, level.count)
        nb = b1 - b0
        starts = (np.arange(columns) * nb) // columns
        mins, maxs = level.mins[b0:b1], level.maxs[b0:b1]
        col_min = np.minimum.reduceat(mins, starts)
        col_max = np.maximum.reduceat(maxs, starts)
        imin = level.argmin[b0:b1][_first_in_group(mins, starts, col_min)]
        imax = level.argmax[b0:b1][_first_in_group(maxs, starts, col_max)]
        parts = [imin[imin >= 0], imax[imax >= 0]]
        head, tail = b0 * level.block, b1 * level.block
        if lo < head:  # the partial block before the first whole one
            parts.append(lo + exact_indices(values[lo:head], 1))
        if tail < hi:  # the block still filling, or the partial block at the end of the range
            parts.append(tail + exact_indices(values[tail:hi], 1))
        return np.unique(np.concatenate(parts))
