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

from trainer.runlog import Event
from tui.series import LossSeries, ema_beta, to_float


def _opt_float(value: Any) -> float | None:
    v = to_float(value)
    return None if math.isnan(v) else v


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
    #: Issue 4's epoch figures: oscillation (sd of successive loss differences), cosine of
    #: consecutive gradients, and the gradient noise scale; None where the trainer had none.
    loss_diff_std: float | None = None
    grad_cos: float | None = None
    b_simple: float | None = None


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
    #: The [[variants]] arm of the run ("" without variants) and the device it trained on.
    variant: str = ""
    device: str = ""
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

    def latest(self, name: str) -> float | None:
        """The newest epoch's value of an epoch figure (b_simple, loss_diff_std, grad_cos) that has one."""
        for e in reversed(self.epochs):
            value = getattr(e, name)
            if value is not None:
                return value
        return None

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
    #: The resolved config of sweep_started (for the lr rules of the scaling view).
    config: dict[str, Any] = field(default_factory=dict)
    #: sweep_finished's scaling analysis (trainer.scaling.analyse), once the sweep has finished.
    scaling: dict[str, Any] | None = None
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
    s.config = config
    s.scaling = None
    s.runs = {}
    for r in runs:
        rid = str(r["run"])
        s.runs[rid] = RunState(
            run=rid,
            batch_size=int(r["batch_size"]),
            lr=to_float(r.get("lr")),
            split_chunks=int(r.get("split_chunks") or 1),
        )
    s.started = True
    s.finished = False
    s.status = "running"


def _on_run_started(s: SweepState, e: Event) -> None:
    rid = str(e["run"])
    run = s.runs.get(rid)
    if run is None:  # a run the sweep_started list did not name: still show it
        run = s.runs[rid] = RunState(run=rid, batch_size=int(e["batch_size"]), lr=to_float(e.get("lr")))
    run.batch_size = int(e.get("batch_size", run.batch_size))
    run.lr = to_float(e.get("lr", run.lr))
    run.momentum = _opt_float(e.get("momentum"))
    run.split_chunks = int(e.get("split_chunks") or run.split_chunks)
    run.iters_per_epoch = int(e.get("iters_per_epoch") or 0)
    if run.iters_per_epoch:
        run.losses.set_beta(ema_beta(run.iters_per_epoch))
    run.t_started = _opt_float(e.get("t"))
    run.variant = str(e.get("variant") or "")
    run.device = str(e.get("device") or "")
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
            loss_diff_std=_opt_float(e.get("loss_diff_std")),
            grad_cos=_opt_float(e.get("grad_cos")),
            b_simple=_opt_float(e.get("b_simple")),
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
    if isinstance(e.get("scaling"), dict):
        s.scaling = e["scaling"]
    for run in s.runs.values():
        if run.status in ("waiting", "running"):
            run.status = "stopped"
            run.version += 1


def _on_paused(s: SweepState, e: Event) -> None:
    s.paused = bool(e["paused"])


def _on_sweep_resumed(s: SweepState, e: Event) -> None:
    """`python -m trainer resume` continues the sweep: it runs again (resumed runs restart their epochs)."""
    runs = e.get("runs") or []
    if not isinstance(runs, list):
        raise TypeError("runs is not a list")
    s.status = "running"
    s.finished = False
    s.notices.append(f"sweep resumed: {len(runs)} run(s) continue")


_HANDLERS = {
    "sweep_started": _on_sweep_started,
    "sweep_resumed": _on_sweep_resumed,
    "run_started": _on_run_started,
    "losses": _on_losses,
    "epoch_end": _on_epoch_end,
    "mode_changed": _on_mode_changed,
    "target_reached": _on_target_reached,
    "run_finished": _on_run_finished,
    "sweep_finished": _on_sweep_finished,
    "paused": _on_paused,
    "evaluation": lambda s, e: None, "noise_probe": lambda s, e: None,  # issue 13: in report.md, not in the app yet
}
