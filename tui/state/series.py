"""Per-iteration losses of one run: a growing array, its smoothed twin and block summaries.

Kept apart from the sweep model (state.py) because it is where the numbers live:
values arrive in blocks, the debiased EMA and the min/max summaries follow them
incrementally, so nothing on screen costs time proportional to the run's length.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tui.state.minmax import MinMaxIndex

#: Largest jump ahead a losses block may make (real blocks continue where the last ended).
MAX_GAP = 1 << 20

#: Weight of the past in the smoothed loss (debiased EMA) until a run's epoch length is known.
EMA_BETA = 0.98


def ema_beta(iters_per_epoch: int) -> float:
    """EMA weight for a run: a window of about a tenth of an epoch, 2 to 100 iterations.

    A fixed window would lag far behind the few iterations of a large batch (6000:
    10 per MNIST epoch) and barely smooth the 60,000 of batch size 1.
    """
    window = min(100, max(2, iters_per_epoch // 10))
    return 1.0 - 1.0 / window


def _ema_block(beta: float) -> int:
    """Iterations per vectorised EMA block: as many as keep beta ** -block below 1e200."""
    return max(16, min(4096, int(200 / -math.log10(beta)))) if 0 < beta < 1 else 16


def to_float(value: Any) -> float:
    """A JSON number as float; null, strings and the like become NaN (missing)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


class LossSeries:
    """Per-iteration training loss of one run: a growing float32 array indexed by iteration.

    Keeps a debiased EMA alongside, updated block-wise as values arrive, so the
    smoothed view costs nothing at draw time. Missing values (null) are NaN and are
    skipped by the EMA (it carries the last value over them).
    """

    def __init__(self, capacity: int = 1024, beta: float = EMA_BETA) -> None:
        self._raw = np.full(capacity, np.nan, dtype=np.float32)
        self._ema = np.full(capacity, np.nan, dtype=np.float32)
        self._n = 0
        self.beta = beta
        self._ema_state = 0.0  # biased EMA after the last finite value
        self._ema_count = 0  # finite values seen (for debiasing)
        self._ema_upto = 0  # EMA computed for indices < this
        self._raw_index = MinMaxIndex()  # block min/max: redraws cost O(columns), not O(length)
        self._ema_index = MinMaxIndex()

    def __len__(self) -> int:
        return self._n

    @property
    def raw(self) -> np.ndarray:
        """Losses so far (a view; NaN where missing)."""
        return self._raw[: self._n]

    @property
    def smooth(self) -> np.ndarray:
        """Debiased EMA of the losses so far (a view; NaN where the loss is missing)."""
        self._update_ema()
        return self._ema[: self._n]

    def set_beta(self, beta: float) -> None:
        """Change the EMA weight (recomputed lazily from the start)."""
        if beta != self.beta:
            self.beta = beta
            self._reset_ema()

    def put(self, first_iter: int, values: list[Any]) -> None:
        """Store values at iterations first_iter, first_iter + 1, ...; gaps stay NaN."""
        if first_iter < 0:
            raise ValueError(f"first_iter must be >= 0, got {first_iter}")
        if first_iter > self._n + MAX_GAP:  # a garbled file's 10**12 would allocate terabytes
            raise ValueError(f"first_iter {first_iter} leaves a gap of over {MAX_GAP} iterations")
        try:  # fast path: all plain numbers
            arr = np.array(values)
            if arr.ndim != 1 or arr.dtype.kind not in "fi":
                raise TypeError
            arr = arr.astype(np.float32)
        except (TypeError, ValueError):  # nulls or junk: one by one, junk as missing
            arr = np.fromiter((to_float(v) for v in values), dtype=np.float32, count=len(values))
        end = first_iter + len(arr)
        self._grow(end)
        self._raw[first_iter:end] = arr
        if first_iter < self._n:  # rewriting the past (rare): summaries and EMA start over
            self._raw_index.reset()
            self._reset_ema()
        self._n = max(self._n, end)

    def select(self, columns: int, smooth: bool = False, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """Sorted iterations in [lo, hi) to draw in `columns` plot columns: each column's min and max."""
        if smooth:
            return self._ema_index.select(self.smooth, columns, lo, hi)
        return self._raw_index.select(self.raw, columns, lo, hi)

    def _grow(self, size: int) -> None:
        if size <= len(self._raw):
            return
        cap = max(size, 2 * len(self._raw))
        for name in ("_raw", "_ema"):
            old = getattr(self, name)
            new = np.full(cap, np.nan, dtype=np.float32)
            new[: len(old)] = old
            setattr(self, name, new)

    def _reset_ema(self) -> None:
        self._ema_state, self._ema_count, self._ema_upto = 0.0, 0, 0
        self._ema[:] = np.nan
        self._ema_index.reset()

    def _update_ema(self) -> None:
        """Extend the EMA over new values, one vectorised block at a time."""
        b = self.beta
        block = _ema_block(b)
        while self._ema_upto < self._n:
            lo = self._ema_upto
            hi = min(self._n, lo + block)
            x = self._raw[lo:hi].astype(np.float64)
            finite = np.isfinite(x)
            if not finite.any():
                self._ema_upto = hi
                continue
            # Skip missing values by giving them no weight: compress to the finite ones.
            xs = x[finite]
            m = len(xs)
            pw = b ** np.arange(m)  # b^j
            # e_i = b^(i+1) e_prev + (1-b) sum_{j<=i} b^(i-j) x_j, evaluated with cumsum.
            acc = np.cumsum(xs / pw) * pw
            e = (pw * b) * self._ema_state + (1.0 - b) * acc
            # debias by 1 - b^count, count = finite values seen so far (b^count = b^count0 * b^(j+1))
            debiased = e / (1.0 - (b**self._ema_count) * (pw * b))
            out = np.full(hi - lo, np.nan)
            out[finite] = debiased
            self._ema[lo:hi] = out
            self._ema_state = float(e[-1])
            self._ema_count += m
            self._ema_upto = hi
