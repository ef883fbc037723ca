"""The book of one run: its totals, its losses in blocks, the divergence check, the epoch's figures,
the target and the summary row.

The hot loop hands each iteration's loss over as a device tensor (`record`); the ledger keeps it
until a block of `LOSS_BLOCK` iterations is full (a run's first blocks are shorter: EARLY_CUTS) or
the loop pauses, then copies the block to the host in one go (`flush`: the only sync), emits it as
a `losses` event and says whether a loss was not finite (the run diverged). `end_epoch` turns an epoch's timings and evaluation into `epoch_end`
(and `target_reached`, the first time the target accuracy is met); `evaluated` books a sub-epoch
evaluation the same way. Every evaluation feeds the crossing of the target (kept as the interval from
the last miss to the hit, trainer/analysis/crossing.py) and the collapse verdicts (trainer/analysis/collapse.py);
`summary` is the run's row of summary.csv.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from trainer.analysis.accuracy import FULL, HEAD, SLICE, RunAccuracy, run_accuracy, run_kind, standard_error
from trainer.analysis.collapse import Collapse, find_collapse
from trainer.measure.oscillation import loss_diff_std
from trainer.plan import RunSpec
from trainer.runlog import Emitter

LOSS_BLOCK = 1000  # iterations per `losses` event at most (one host sync per block)
#: A run's first blocks are short, so its first losses are on screen at once (at batch 1 on a CPU a
#: block of 1,000 takes ~8 s), then they grow to LOSS_BLOCK. Cut at these iteration counts, so the
#: blocks of a resumed run are those of an uninterrupted one.
EARLY_CUTS = frozenset({10, 100})


@dataclass
class RunTotals:
    """Cumulative figures of a run (for time to target and the summary)."""

    iters: int = 0
    samples: int = 0
    wall_s: float = 0.0
    compute_s: float = 0.0
    epochs: int = 0
    epoch_walls: list[float] = field(default_factory=list)
    epoch_computes: list[float] = field(default_factory=list)
    best_test_acc: float | None = (
        None  # the best of the run's evaluations of its kind (trainer/analysis/accuracy.py)
    )
    target: dict[str, Any] | None = None
    loss_diff_stds: list[float | None] = field(default_factory=list)
    grad_cosines: list[float | None] = field(default_factory=list)
    b_simple: float | None = None
    # Issue 13 (older checkpoints lack them and resume with these defaults):
    optimizer_steps: int = 0  # k per batch while split-backward is on
    final_test_acc: float | None = None  # the last full-test-set evaluation's
    last_miss: dict[str, Any] | None = (
        None  # totals at the last evaluation below the target (None: the start)
    )
    target_lo: dict[str, Any] | None = None  # the last miss before the hit (None with a target: not recorded)
    # every evaluation: acc, loss, iters, samples, epoch, epoch_end, eval_set (older checkpoints lack the set:
    # their epoch ends were on the full test set, the rest on its first 2,000 images)
    evals: list[dict[str, Any]] = field(default_factory=list)
    collapse: dict[str, Any] | None = None  # where and why the run collapsed (trainer/analysis/collapse.py)


#: The totals a crossing of the target is given at (the hit and the last miss).
CROSSING_KEYS = ("iters", "samples", "wall_s", "compute_s", "optimizer_steps")


class Ledger:
    """What one run has trained and measured, and the events that say so."""

    def __init__(self, spec: RunSpec, emitter: Emitter, target_accuracy: float) -> None:
        self.spec = spec
        self.emitter = emitter
        self.target_accuracy = target_accuracy
        self.totals = RunTotals()
        self.eval_samples = 0  # images of the evaluation slice (the run sets it)
        self._pending: list[torch.Tensor] = []  # losses of the block not yet copied to the host
        self._pending_first = 0
        self._epoch_loss_sum = 0.0
        self._epoch_loss_n = 0
        self._epoch_iter = 0
        self._epoch_samples = 0
        self._epoch_values: list[float] = []
        self._stretch_loss_sum = 0.0  # losses since the last evaluation (collapse: is the loss flat?)
        self._stretch_loss_n = 0

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    @property
    def epoch_iters(self) -> int:
        """Iterations of the epoch in progress so far."""
        return self._epoch_iter

    @property
    def epoch_samples(self) -> int:
        """Samples of the epoch in progress so far."""
        return self._epoch_samples

    def record(self, loss: torch.Tensor, n: int, steps: int = 1) -> bool:
        """One iteration: its loss (a device tensor, not read here), its samples and its optimizer
        steps (k in split-backward). True when the block is full and should be flushed."""
        pending = self._pending
        t = self.totals
        if not pending:
            self._pending_first = t.iters
        pending.append(loss)
        t.iters += 1
        t.samples += n
        t.optimizer_steps += steps
        self._epoch_iter += 1
        self._epoch_samples += n
        return len(pending) >= LOSS_BLOCK or t.iters in EARLY_CUTS

    def flush(self) -> str:
        """Copy the pending losses to the host (one sync) and emit the finite ones. Returns why the
        run diverged ("" when every loss was finite)."""
        if not self._pending:
            return ""
        values = torch.stack(self._pending).float().tolist()
        first = self._pending_first
        self._pending = []
        bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
        good = values if bad is None else values[:bad]
        if good:
            self.emitter.emit("losses", run=self.spec.run_id, first_iter=first, values=good)
            self._epoch_loss_sum += sum(good)
            self._epoch_loss_n += len(good)
            self._stretch_loss_sum += sum(good)
            self._stretch_loss_n += len(good)
            self._epoch_values.extend(good)
        if bad is None:
            return ""
        return (
            f"loss became {values[bad]} at iteration {first + bad} (epoch {self.totals.epochs + 1}); "
            f"lr {self.spec.lr:g} is too large for batch size {self.spec.batch_size}: "
            "try a smaller optim.lr or lr_scaling"
        )

    def drop_pending(self) -> None:
        """Forget losses never flushed (the run's tensors are being freed)."""
        self._pending = []

    def end_epoch(
        self,
        *,
        wall: float,
        compute: float,
        test_loss: float,
        test_acc: float,
        lr: float,
        split_chunks: int,
        probe_figures: dict[str, Any],
        slice_loss: float | None = None,
        slice_acc: float | None = None,
        eval_samples: int = 0,
    ) -> None:
        """Book a finished epoch (losses flushed): emit its evaluation on the slice (`evaluation` with
        epoch_end true, before the epoch_end so a resume that keeps the epoch keeps it) and epoch_end with
        the full test set's figures, then target_reached the first time the slice meets the target.
        Without slice figures (the slice is the whole test set) the full set's stand for them."""
        t = self.totals
        stretch = self._stretch_loss_sum / self._stretch_loss_n if self._stretch_loss_n else None
        t.epochs += 1
        t.wall_s += wall
        t.compute_s += compute
        t.epoch_walls.append(wall)
        t.epoch_computes.append(compute)
        if slice_acc is None:
            slice_acc, slice_loss = test_acc, test_loss
        self.emitter.emit(
            "evaluation",
            run=self.spec.run_id,
            epoch=t.epochs,
            iter=t.iters,
            samples=t.samples,
            test_acc=slice_acc,
            test_loss=slice_loss,
            eval_samples=eval_samples,
            train_loss=stretch,
            wall_s=t.wall_s,
            compute_s=t.compute_s,
            optimizer_steps=t.optimizer_steps,
            eval_set=SLICE,
            test_acc_se=standard_error(slice_acc, eval_samples),
            epoch_end=True,
        )
        train_loss = self._epoch_loss_sum / self._epoch_loss_n if self._epoch_loss_n else None
        osc = loss_diff_std(self._epoch_values) if len(self._epoch_values) > 1 else None
        self._epoch_values = []
        t.loss_diff_stds.append(osc)
        t.grad_cosines.append(probe_figures.get("grad_cos"))
        t.b_simple = probe_figures.get("b_simple")
        self.emitter.emit(
            "epoch_end",
            run=self.spec.run_id,
            epoch=t.epochs,
            iters=self._epoch_iter,
            samples=self._epoch_samples,
            wall_s=wall,
            compute_s=compute,
            data_s=wall - compute,
            train_loss=train_loss,
            test_loss=test_loss,
            test_acc=test_acc,
            eval_set=FULL,
            samples_per_s=self._epoch_samples / wall if wall > 0 else None,
            lr=lr,
            total_iters=t.iters,
            total_samples=t.samples,
            loss_diff_std=osc,
            split_chunks=split_chunks,
            **probe_figures,
        )
        self._epoch_loss_sum, self._epoch_loss_n = 0.0, 0
        self._epoch_iter = self._epoch_samples = 0
        t.final_test_acc = test_acc
        self._observe(
            slice_acc,
            train_loss,
            epoch_end=True,
            epoch=t.epochs,
            wall_s=t.wall_s,
            compute_s=t.compute_s,
            source="slice",
            stretch=stretch,
        )

    def evaluated(
        self, *, test_acc: float, test_loss: float, eval_samples: int, wall_s: float, compute_s: float
    ) -> None:
        """Book a sub-epoch evaluation on the evaluation slice (losses flushed): emit `evaluation` with
        the totals at that moment (wall and compute: timed training only), then the crossing of the target."""
        t = self.totals
        loss = self._stretch_loss_sum / self._stretch_loss_n if self._stretch_loss_n else None
        self.emitter.emit(
            "evaluation",
            run=self.spec.run_id,
            epoch=t.epochs + 1,
            iter=t.iters,
            samples=t.samples,
            test_acc=test_acc,
            test_loss=test_loss,
            eval_samples=eval_samples,
            train_loss=loss,
            wall_s=wall_s,
            compute_s=compute_s,
            optimizer_steps=t.optimizer_steps,
            eval_set=SLICE,
            test_acc_se=standard_error(test_acc, eval_samples),
            epoch_end=False,
        )
        self._observe(
            test_acc,
            loss,
            epoch_end=False,
            epoch=t.epochs + 1,
            wall_s=wall_s,
            compute_s=compute_s,
            source="slice",
        )

    def _observe(
        self,
        test_acc: float,
        loss: float | None,
        *,
        epoch_end: bool,
        epoch: int,
        wall_s: float,
        compute_s: float,
        source: str,
        stretch: float | None = None,
    ) -> None:
        """One evaluation on the slice at the current totals: the run's best accuracy, the crossing of
        the target (target_reached, with the last miss before it) and the evaluation history collapse
        verdicts are drawn from."""
        t = self.totals
        self._stretch_loss_sum, self._stretch_loss_n = 0.0, 0
        # loss: the epoch's mean training loss at an epoch end (never-learned verdicts), else the stretch's
        # since the previous evaluation; stretch: that stretch's at an epoch end too (fall-back confirmation)
        t.evals.append(
            {
                "acc": test_acc,
                "loss": loss,
                "iters": t.iters,
                "samples": t.samples,
                "epoch": epoch,
                "epoch_end": epoch_end,
                "eval_set": SLICE,
                "stretch": loss if not epoch_end else stretch,
            }
        )
        t.best_test_acc = self.accuracy().best
        point = {
            "iters": t.iters,
            "samples": t.samples,
            "wall_s": wall_s,
            "compute_s": compute_s,
            "optimizer_steps": t.optimizer_steps,
        }
        if t.target is not None:
            return
        if test_acc < self.target_accuracy:
            t.last_miss = point
            return
        lo = t.last_miss or {k: 0 for k in CROSSING_KEYS}  # before any evaluation: the untrained start
        t.target_lo = dict(lo)
        t.target = {
            "epoch": epoch,
            "iter": t.iters,
            "samples": t.samples,
            "wall_s": wall_s,
            "compute_s": compute_s,
            "test_acc": test_acc,
            "optimizer_steps": t.optimizer_steps,
        }
        self.emitter.emit(
            "target_reached",
            run=self.spec.run_id,
            **t.target,
            iter_lo=lo["iters"],
            samples_lo=lo["samples"],
            wall_s_lo=lo["wall_s"],
            compute_s_lo=lo["compute_s"],
            optimizer_steps_lo=lo["optimizer_steps"],
            source=source,
        )

    def accuracy(self) -> RunAccuracy:
        """The run's current and best accuracy (trainer/analysis/accuracy.py: its evaluations of one kind)."""
        return run_accuracy((_eval_set(e), e["acc"]) for e in self.totals.evals)

    def _own_evals(self) -> list[dict[str, Any]]:
        """The evaluations of the run's kind (the slice; a run resumed from an older checkpoint may also
        hold evaluations of the older kinds, which are left out)."""
        evals = self.totals.evals
        kind = run_kind(_eval_set(e) for e in evals)
        return [e for e in evals if _eval_set(e) == kind]

    def fell_back(self) -> Collapse | None:
        """A collapse that ends the run now: accuracy back near chance after being well above it, and
        confirmed by the next evaluation, over the run's evaluations so far (trainer/analysis/collapse.py).
        Recorded in the totals."""
        evals = self._own_evals()
        verdict = find_collapse([e["acc"] for e in evals])
        return self._book(verdict, evals) if verdict is not None else None

    def end_verdict(self) -> Collapse | None:
        """At the run's last epoch: a fall back seen once at its last evaluation, confirmed by the
        training loss before it; else a collapse over the epoch-end evaluations of the run's kind (epoch
        training loss), either kind: a run that never learned is told from a slow learner by its loss."""
        evals = self._own_evals()
        verdict = find_collapse(
            [e["acc"] for e in evals], [e.get("stretch", e["loss"]) for e in evals], final=True
        )
        if verdict is not None and verdict.kind == "fell_back":
            return self._book(verdict, evals)
        ends = [e for e in evals if e["epoch_end"]]
        verdict = find_collapse([e["acc"] for e in ends], [e["loss"] for e in ends])
        return self._book(verdict, ends) if verdict is not None else None

    def _book(self, verdict: Collapse, evals: list[dict[str, Any]]) -> Collapse:
        at = evals[verdict.index]
        self.totals.collapse = {
            "iter": at["iters"],
            "samples": at["samples"],
            "epoch": at["epoch"],
            "kind": verdict.kind,
            "reason": verdict.reason,
        }
        return verdict

    def summary(
        self,
        *,
        status: str | None,
        split_chunks: int,
        optim: str,
        micro_batch: int,
        probe: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The run's row of summary.csv (docs/run-directory.md lists the columns). `probe`: the
        batch-independent noise probe's figures (trainer/measure/noise_probe.py); with readings, its window's
        B_simple is the run's b_simple (else the in-batch estimate of the last epoch end)."""
        t = self.totals
        spec = self.spec
        target = t.target or {}
        lo = (t.target_lo if t.target is not None else None) or {}
        collapse = t.collapse or {}
        accuracy = self.accuracy()
        return {
            "run": spec.run_id,
            "batch_size": spec.batch_size,
            "lr": spec.lr,
            "split_chunks": split_chunks,
            "status": status or "running",
            "epochs": t.epochs,
            "best_test_acc": accuracy.best,
            "time_to_target_s": target.get("wall_s"),
            "compute_to_target_s": target.get("compute_s"),
            "iters_to_target": target.get("iter"),
            "samples_per_s": (t.samples / t.wall_s) if t.wall_s > 0 else None,
            "mean_epoch_wall_s": _mean(t.epoch_walls),
            "mean_epoch_compute_s": _mean(t.epoch_computes),
            "seed": spec.seed,
            "samples_to_target": target.get("samples"),
            "loss_diff_std": _mean([v for v in t.loss_diff_stds if v is not None and math.isfinite(v)]),
            "grad_cos": _mean([v for v in t.grad_cosines if v is not None]),
            "variant": spec.variant,
            "optim": optim,
            "micro_batch": micro_batch,
            "final_test_acc": t.final_test_acc,
            "iters_to_target_lo": lo.get("iters"),
            "samples_to_target_lo": lo.get("samples"),
            "time_to_target_lo_s": lo.get("wall_s"),
            "compute_to_target_lo_s": lo.get("compute_s"),
            "optimizer_steps": t.optimizer_steps,
            "optimizer_steps_to_target": target.get("optimizer_steps"),
            "optimizer_steps_to_target_lo": lo.get("optimizer_steps"),
            "effective_lr": spec.lr * split_chunks,
            "collapsed_at_iter": collapse.get("iter"),
            "collapsed_at_epoch": collapse.get("epoch"),
            "collapse_reason": collapse.get("reason"),
            "last_test_acc": accuracy.current,
            "eval_set": accuracy.eval_set or None,
            "eval_samples": self.eval_samples or None,
            **_probe_fields(probe, t.b_simple),
        }

    # -- checkpoints ----------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Where the run stands after its last completed epoch (plain numbers and lists)."""
        t = self.totals
        return {
            "epoch": t.epochs,  # completed epochs
            "iters": t.iters,  # the next losses event starts here: first_iter == iters
            "samples": t.samples,
            "totals": dataclasses.asdict(t),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back a `state_dict` at an epoch boundary; ValueError or KeyError (nothing changed) when
        it is not one. Keys this version does not know are ignored; missing totals take defaults."""
        saved = state["totals"]
        if not isinstance(saved, dict):
            raise ValueError(f"totals must be a table, got {type(saved).__name__}")
        for name, value in saved.items():
            if name in _TOTALS_CHECKS and not _TOTALS_CHECKS[name](value):
                raise ValueError(f"totals.{name} = {_short(value)} is not what a run records")
        totals = RunTotals(**{k: v for k, v in saved.items() if k in _TOTALS_CHECKS})
        if (state["epoch"], state["iters"], state["samples"]) != (
            totals.epochs,
            totals.iters,
            totals.samples,
        ):
            raise ValueError(
                f"epoch {state['epoch']!r}, iterations {state['iters']!r} and samples "
                f"{state['samples']!r} do not match the run's totals"
            )
        self.totals = totals
        self._pending = []
        self._epoch_loss_sum, self._epoch_loss_n = 0.0, 0
        self._epoch_iter = self._epoch_samples = 0
        self._epoch_values = []
        self._stretch_loss_sum, self._stretch_loss_n = 0.0, 0


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _optional_number(v: Any) -> bool:
    return v is None or _number(v)


def _numbers(v: Any) -> bool:
    return isinstance(v, list) and all(_number(x) for x in v)


def _optional_numbers(v: Any) -> bool:
    return isinstance(v, list) and all(_optional_number(x) for x in v)


def _target(v: Any) -> bool:
    return v is None or (isinstance(v, dict) and all(isinstance(k, str) and _number(x) for k, x in v.items()))


def _crossing_point(v: Any) -> bool:
    return isinstance(v, dict) and set(v) == set(CROSSING_KEYS) and all(_number(x) for x in v.values())


def _optional_point(v: Any) -> bool:
    return v is None or _crossing_point(v)


_EVAL_CHECKS = {
    "acc": _number,
    "loss": _optional_number,
    "iters": _count,
    "samples": _count,
    "epoch": _count,
    "epoch_end": lambda v: isinstance(v, bool),
}
_EVAL_OPTIONAL = {
    "eval_set": lambda v: v in (SLICE, FULL, HEAD),
    "stretch": _optional_number,
}  # older: absent


def _evals(v: Any) -> bool:
    checks = {**_EVAL_CHECKS, **_EVAL_OPTIONAL}
    return isinstance(v, list) and all(
        isinstance(e, dict)
        and set(_EVAL_CHECKS) <= set(e) <= set(checks)
        and all(checks[k](x) for k, x in e.items())
        for e in v
    )


def _eval_set(e: dict[str, Any]) -> str:
    """The set an evaluation in the totals was taken on (older checkpoints: what their trainer used)."""
    return e.get("eval_set") or (FULL if e["epoch_end"] else HEAD)


def _collapse(v: Any) -> bool:
    return v is None or (
        isinstance(v, dict)
        and _count(v.get("iter"))
        and _count(v.get("samples"))
        and _count(v.get("epoch"))
        and isinstance(v.get("kind"), str)
        and isinstance(v.get("reason"), str)
    )


_TOTALS_CHECKS = {
    "iters": _count,
    "samples": _count,
    "wall_s": _number,
    "compute_s": _number,
    "epochs": _count,
    "epoch_walls": _numbers,
    "epoch_computes": _numbers,
    "best_test_acc": _optional_number,
    "target": _target,
    "loss_diff_stds": _optional_numbers,
    "grad_cosines": _optional_numbers,
    "b_simple": _optional_number,
    "optimizer_steps": _count,
    "final_test_acc": _optional_number,
    "last_miss": _optional_point,
    "target_lo": _optional_point,
    "evals": _evals,
    "collapse": _collapse,
}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


PROBE_FIELDS = (
    "b_simple_lo",
    "b_simple_hi",
    "b_simple_undefined",
    "b_simple_readings",
    "b_simple_from_samples",
    "b_simple_to_samples",
    "b_simple_at_samples",
)


def _probe_fields(probe: dict[str, Any] | None, in_batch: float | None) -> dict[str, Any]:
    """The summary's B_simple: the probe window's with its interval where it has readings, else the
    in-batch estimate (no interval; `b_simple_source` says which)."""
    if probe and probe.get("b_simple_readings"):
        return {
            "b_simple": probe.get("b_simple"),
            **{k: probe.get(k) for k in PROBE_FIELDS},
            "b_simple_source": "probe",
        }
    return {
        "b_simple": in_batch,
        **{k: None for k in PROBE_FIELDS},
        "b_simple_source": "in_batch" if in_batch is not None else None,
    }


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
