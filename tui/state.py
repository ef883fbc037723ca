"""A pure model of a sweep, built by applying events one at a time.

The live queue and a replayed events.jsonl feed the same `SweepState.apply`, so
anything the app shows live it can show again from disk (DESIGN.md). No Textual,
no torch: tests drive it directly.

Events from a file may be foreign or damaged; `apply` never raises on a bad event,
it counts it in `SweepState.skipped` (shown in the UI) and moves on.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tui.minmax import MinMaxIndex

Event = dict[str, Any]

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


def _float(value: Any) -> float:
    """A JSON number as float; null, strings and the like become NaN (missing)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def _opt_float(value: Any) -> float | None:
    v = _float(value)
    return None if math.isnan(v) else v


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
        try:  # fast path: all plain numbers
            arr = np.array(values)
            if arr.ndim != 1 or arr.dtype.kind not in "fi":
                raise TypeError
            arr = arr.astype(np.float32)
        except (TypeError, ValueError):  # nulls or junk: one by one, junk as missing
            arr = np.fromiter((_float(v) for v in values), dtype=np.float32, count=len(values))
        end = first_iter + len(arr)
        self._grow(end)
        self._raw[first_iter:end] = arr
        if first_iter < self._n:  # rewriting the past (rare): summaries and EMA start over
            self._raw_index.reset()
            self._reset_ema()
        self._n = max(self._n, end)

    def select(self, columns: int, smooth: bool = False) -> np.ndarray:
        """Sorted iterations to draw in `columns` plot columns: each column's min and max."""
        if smooth:
            return self._ema_index.select(self.smooth, columns)
        return self._raw_index.select(self.raw, columns)

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


@dataclass
class EpochRecord:
    """One epoch_end event, typed."""

    epoch: int
    iters: int
    samples: int
    wall_s: float | None
    compute_s: float | None
    data_s: float | None
    train_loss: float | None
    test_loss: float | None
    test_acc: float | None
    samples_per_s: float | None
    total_iters: int | None = None


@dataclass
class RunState:
    """Everything known about one run (one batch size)."""

    run: str
    batch_size: int
    lr: float
    split_chunks: int = 1
    momentum: float | None = None
    iters_per_epoch: int = 0
    status: str = "waiting"  # waiting | running | done | diverged | oom | stopped | failed
    reason: str = ""
    t_started: float | None = None
    losses: LossSeries = field(default_factory=LossSeries)
    epochs: list[EpochRecord] = field(default_factory=list)
    target: dict[str, Any] | None = None
    #: (iteration, chunks) of every live split-backward switch, in order.
    mode_changes: list[tuple[int, int]] = field(default_factory=list)
    #: (iteration count done, seconds since the run started) from losses events:
    #: the wall-time axis before the first epoch has a measured wall time.
    time_marks: list[tuple[int, float]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    #: Grows on every event that touched this run: plots of unchanged runs are not redrawn.
    version: int = 0

    @property
    def effective_lr(self) -> float:
        """The lr that split-backward with k chunks behaves like (about lr x k, SEED.md)."""
        return self.lr * max(1, self.split_chunks)

    @property
    def last_loss(self) -> float | None:
        raw = self.losses.raw
        finite = raw[np.isfinite(raw)]
        return float(finite[-1]) if len(finite) else None

    @property
    def epoch(self) -> int:
        return self.epochs[-1].epoch if self.epochs else 0

    @property
    def test_acc(self) -> float | None:
        return self.epochs[-1].test_acc if self.epochs else None

    @property
    def best_acc(self) -> float | None:
        accs = [e.test_acc for e in self.epochs if e.test_acc is not None]
        return max(accs) if accs else None

    @property
    def samples_per_s(self) -> float | None:
        """Over all epochs: samples / wall time (what summary.csv reports)."""
        walls = [e.wall_s for e in self.epochs if e.wall_s is not None]
        if not walls or sum(walls) <= 0:
            return None
        return sum(e.samples for e in self.epochs) / sum(walls)

    @property
    def mean_wall_s(self) -> float | None:
        walls = [e.wall_s for e in self.epochs if e.wall_s is not None]
        return sum(walls) / len(walls) if walls else None

    @property
    def mean_compute_s(self) -> float | None:
        comp = [e.compute_s for e in self.epochs if e.compute_s is not None]
        return sum(comp) / len(comp) if comp else None

    @property
    def time_to_target_s(self) -> float | None:
        return _opt_float(self.target.get("wall_s")) if self.target else None

    def wall_axis(self, n: int) -> np.ndarray:
        """Seconds of this run's own training at the end of iterations 0..n-1 (see wall_at)."""
        return self.wall_at(np.arange(n))

    def wall_at(self, iterations: np.ndarray) -> np.ndarray:
        """Seconds of this run's own training at the end of each of `iterations`.

        Measured at epoch ends (sum of epoch wall times, other runs' slices excluded),
        linear within an epoch, extrapolated at the last epoch's pace past the last
        epoch end. Before the first epoch ends, the event clock since run_started is
        the estimate (it includes other runs' slices in an interleaved sweep).
        """
        done = np.asarray(iterations, dtype=np.float64) + 1
        iters = [0]
        walls = [0.0]
        for e in self.epochs:
            if e.wall_s is None or e.iters <= 0:
                continue
            iters.append(iters[-1] + e.iters)
            walls.append(walls[-1] + e.wall_s)
        if len(iters) == 1:
            marks = [(0, 0.0)] + [(i, s) for i, s in self.time_marks if i > 0]
            if len(marks) == 1:
                return done.copy()  # nothing timed yet: fall back to iterations
            iters = [m[0] for m in marks]
            walls = [m[1] for m in marks]
        out = np.interp(done, iters, walls)
        last_i, last_w = iters[-1], walls[-1]
        beyond = done > last_i
        if beyond.any():
            pace = (walls[-1] - walls[-2]) / max(1, iters[-1] - iters[-2])
            out[beyond] = last_w + (done[beyond] - last_i) * pace
        return out


@dataclass
class SweepState:
    """The sweep as the app shows it: header facts, runs in sweep order, status."""

    dataset: str = ""
    dataset_note: str = ""
    device: str = ""
    torch: str = ""
    config_path: str = ""
    run_dir: str = ""
    target_accuracy: float | None = None
    epochs: int | None = None
    runs: dict[str, RunState] = field(default_factory=dict)
    status: str = "starting"  # starting | running | done | stopped | failed
    #: Why the sweep failed (sweep_finished with status failed), for the status line.
    reason: str = ""
    paused: bool = False
    started: bool = False
    finished: bool = False
    #: Events that could not be used (wrong shape, unknown run); shown in the UI.
    skipped: int = 0
    #: Why the trainer refused a switch, newest last (mode_changed with a reason).
    notices: list[str] = field(default_factory=list)
    #: Grows on every applied event: the UI redraws only when it changed.
    version: int = 0

    def apply(self, event: Any) -> bool:
        """Apply one event; False (and counted in `skipped`) if it could not be used."""
        try:
            if not isinstance(event, dict):
                raise TypeError("not an object")
            handler = _HANDLERS.get(event.get("type"))
            if handler is None:
                raise KeyError(f"unknown event type {event.get('type')!r}")
            handler(self, event)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError):
            self.skipped += 1
            return False
        run = self.runs.get(event.get("run")) if isinstance(event.get("run"), str) else None
        if run is not None:
            run.version += 1
        self.version += 1
        return True

    def apply_all(self, events: list[Any]) -> None:
        for event in events:
            self.apply(event)

    def mark_lost(self, reason: str) -> None:
        """The event source died: unfinished runs end as failed, everything shown is kept."""
        for run in self.runs.values():
            if run.status in ("waiting", "running"):
                run.status, run.reason = "failed", reason
        self.status = "failed"
        self.paused = False
        self.version += 1
        for run in self.runs.values():
            run.version += 1

    def run_list(self) -> list[RunState]:
        return list(self.runs.values())

    def _run(self, event: Event) -> RunState:
        run = self.runs.get(event["run"])
        if run is None:
            raise KeyError(f"unknown run {event['run']!r}")
        return run


def _on_sweep_started(s: SweepState, e: Event) -> None:
    runs = e.get("runs") or []
    if not isinstance(runs, list):
        raise TypeError("runs is not a list")
    s.dataset = str(e.get("dataset", ""))
    s.dataset_note = str(e.get("dataset_note") or "")
    s.device = str(e.get("device", ""))
    s.torch = str(e.get("torch", ""))
    s.config_path = str(e.get("config_path") or "")
    s.run_dir = str(e.get("run_dir") or s.run_dir)
    config = e.get("config") if isinstance(e.get("config"), dict) else {}
    sweep = config.get("sweep") if isinstance(config.get("sweep"), dict) else {}
    s.target_accuracy = _opt_float(sweep.get("target_accuracy"))
    s.epochs = sweep.get("epochs") if isinstance(sweep.get("epochs"), int) else None
    s.runs = {}
    for r in runs:
        rid = str(r["run"])
        s.runs[rid] = RunState(
            run=rid,
            batch_size=int(r["batch_size"]),
            lr=_float(r.get("lr")),
            split_chunks=int(r.get("split_chunks") or 1),
        )
    s.started = True
    s.finished = False
    s.status = "running"


def _on_run_started(s: SweepState, e: Event) -> None:
    rid = str(e["run"])
    run = s.runs.get(rid)
    if run is None:  # a run the sweep_started list did not name: still show it
        run = s.runs[rid] = RunState(run=rid, batch_size=int(e["batch_size"]), lr=_float(e.get("lr")))
    run.batch_size = int(e.get("batch_size", run.batch_size))
    run.lr = _float(e.get("lr", run.lr))
    run.momentum = _opt_float(e.get("momentum"))
    run.split_chunks = int(e.get("split_chunks") or run.split_chunks)
    run.iters_per_epoch = int(e.get("iters_per_epoch") or 0)
    if run.iters_per_epoch:
        run.losses.set_beta(ema_beta(run.iters_per_epoch))
    run.t_started = _opt_float(e.get("t"))
    run.status = "running"


def _on_losses(s: SweepState, e: Event) -> None:
    run = s._run(e)
    values = e["values"]
    if not isinstance(values, list):
        raise TypeError("values is not a list")
    first = int(e["first_iter"])
    run.losses.put(first, values)
    t = _opt_float(e.get("t"))
    if t is not None and run.t_started is not None:
        run.time_marks.append((first + len(values), max(0.0, t - run.t_started)))


def _on_epoch_end(s: SweepState, e: Event) -> None:
    run = s._run(e)
    run.epochs.append(
        EpochRecord(
            epoch=int(e["epoch"]),
            iters=int(e.get("iters") or 0),
            samples=int(e.get("samples") or 0),
            wall_s=_opt_float(e.get("wall_s")),
            compute_s=_opt_float(e.get("compute_s")),
            data_s=_opt_float(e.get("data_s")),
            train_loss=_opt_float(e.get("train_loss")),
            test_loss=_opt_float(e.get("test_loss")),
            test_acc=_opt_float(e.get("test_acc")),
            samples_per_s=_opt_float(e.get("samples_per_s")),
            total_iters=int(e["total_iters"]) if isinstance(e.get("total_iters"), int) else None,
        )
    )


def _on_mode_changed(s: SweepState, e: Event) -> None:
    run = s._run(e)
    chunks = int(e.get("split_chunks") or 1)
    reason = e.get("reason")
    if reason:
        s.notices.append(f"{run.run}: {reason}")
    if chunks != run.split_chunks:
        run.mode_changes.append((int(e["iter"]), chunks))
        run.split_chunks = chunks


def _on_target_reached(s: SweepState, e: Event) -> None:
    run = s._run(e)
    run.target = {k: v for k, v in e.items() if k not in ("type", "run")}


def _on_run_finished(s: SweepState, e: Event) -> None:
    run = s._run(e)
    run.status = str(e["status"])
    run.reason = str(e.get("reason") or "")
    if isinstance(e.get("summary"), dict):
        run.summary = e["summary"]


def _on_sweep_finished(s: SweepState, e: Event) -> None:
    s.status = str(e.get("status") or "done")
    s.reason = str(e.get("reason") or "")
    s.finished = True
    s.paused = False
    for run in s.runs.values():
        if run.status in ("waiting", "running"):
            run.status = "stopped"
            run.version += 1


def _on_paused(s: SweepState, e: Event) -> None:
    s.paused = bool(e["paused"])


_HANDLERS = {
    "sweep_started": _on_sweep_started,
    "run_started": _on_run_started,
    "losses": _on_losses,
    "epoch_end": _on_epoch_end,
    "mode_changed": _on_mode_changed,
    "target_reached": _on_target_reached,
    "run_finished": _on_run_finished,
    "sweep_finished": _on_sweep_finished,
    "paused": _on_paused,
}
