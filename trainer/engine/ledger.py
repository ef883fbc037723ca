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
from typing import Any

import torch

from trainer.analysis.accuracy import FULL, SLICE, RunAccuracy, standard_error
from trainer.analysis.collapse import Collapse
from trainer.engine.summary import summary_row
from trainer.engine.totals import (
    RunTotals,
    accuracy,
    end_verdict,
    fell_back,
    observe,
    totals_from_state,
)
from trainer.measure.oscillation import loss_diff_std
from trainer.plan import RunSpec
from trainer.runlog import Emitter

LOSS_BLOCK = 1000  # iterations per `losses` event at most (one host sync per block)
#: A run's first blocks are short, so its first losses are on screen at once (at batch 1 on a CPU a
#: block of 1,000 takes ~8 s), then they grow to LOSS_BLOCK. Cut at these iteration counts, so the
#: blocks of a resumed run are those of an uninterrupted one.
EARLY_CUTS = frozenset({10, 100})


class Ledger:
    """What one run has trained and measured, and the events that say so."""

    def __init__(self, spec: RunSpec, emitter: Emitter, target_accuracy: float) -> None:
        self.spec = spec
        self.emitter = emitter
        self.target_accuracy = target_accuracy
        self.totals = RunTotals()
        self.eval_samples = 0  # images of the evaluation slice (the run sets it)
        self.classes = 10  # the dataset's classes: chance accuracy is 1 / it (the run sets it)
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

    def _observe(self, test_acc: float, loss: float | None, *, source: str, **at: Any) -> None:
        """One evaluation on the slice at the current totals (trainer.engine.totals.observe: the best
        accuracy, the history the collapse verdicts read, the crossing of the target); emits target_reached
        the first time it meets the target."""
        self._stretch_loss_sum, self._stretch_loss_n = 0.0, 0
        hit = observe(self.totals, self.target_accuracy, test_acc, loss, **at)
        if hit is not None:
            self.emitter.emit("target_reached", run=self.spec.run_id, **hit, source=source)

    def accuracy(self) -> RunAccuracy:
        """The run's current and best accuracy (its evaluations of one kind)."""
        return accuracy(self.totals)

    def fell_back(self) -> Collapse | None:
        """A collapse that ends the run now (trainer.engine.totals.fell_back), recorded in the totals."""
        return fell_back(self.totals, self.classes)

    def end_verdict(self) -> Collapse | None:
        """At the run's last epoch: a collapse or a run that never learned (trainer.engine.totals.end_verdict)."""
        return end_verdict(self.totals, self.classes)

    def summary(self, **fields: Any) -> dict[str, Any]:
        """The run's row of summary.csv (trainer.engine.summary.summary_row: status, split_chunks, optim,
        micro_batch, probe)."""
        return summary_row(self.totals, self.spec, self.eval_samples, **fields)

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
        it is not one (trainer.engine.totals.totals_from_state)."""
        self.totals = totals_from_state(state)
        self._pending = []
        self._epoch_loss_sum, self._epoch_loss_n = 0.0, 0
        self._epoch_iter = self._epoch_samples = 0
        self._epoch_values = []
        self._stretch_loss_sum, self._stretch_loss_n = 0.0, 0
