"""One run of the sweep, a member of the group that trains it (trainer.engine.group).

A `Run` holds what one batch size trains with: its model, optimizer, data order, step, probes, ledger
and its share of the group's time. It does not loop: the group calls its public surface iteration by
iteration, for one run or for K that train fused, the same way.

- `prepare` allocates its parts on the device (trainer.engine.parts: model, optimizer, batches, step,
  probes; and puts it back at its checkpoint), `announce` emits run_started;
- each iteration the group takes the step inputs, warm-up and probes from `parts`, then the run books the
  step: `record` of its loss (the ledger copies losses to the host in blocks: one sync per block,
  `flush`), `evaluation_due` / `evaluate` (a sub-epoch evaluation on the slice) and `noise_due` /
  `read_noise`;
- `end_epoch` books an epoch (its evaluations, the checkpoint callback, the last epoch's verdict);
- `finish` ends it with a status (run_finished with its summary, once) and frees its tensors;
- `state_dict` / `load_state_dict` carry everything a checkpoint needs to continue after its last
  completed epoch; `change_batch` trains on at another batch size (same data order, new step, lr).

The group's clocks credit each training member its share of their time (`time`); the member reads it
at its evaluations and epoch ends, with the group's clocks stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

import torch

from trainer.analysis.collapse import Collapse
from trainer.analysis.time_alone import time_alone_fields
from trainer.data.datasets import Dataset
from trainer.engine.ddp import DistContext
from trainer.engine.evaluation import Checks, TestSet
from trainer.engine.ledger import Ledger
from trainer.engine.parts import RunParts
from trainer.engine.run_events import read_noise, split_switch, started_fields
from trainer.engine.state import (
    StateError,
    load_saved_state,
    saved_state,
    trained_batch,
    trained_batch_fields,
)
from trainer.engine.stops import is_oom, oom_reason
from trainer.engine.threads import use_threads
from trainer.plan import RunSettings, RunSpec, eval_interval
from trainer.runlog import Emitter
from trainer.runlog.controls import Controls


@runtime_checkable
class SweepRun(Protocol):
    """What the sweep needs of a run, whether it trains here (`Run`) or in a worker process
    (`trainer.sweep.gpu_pool.RemoteRun`); both derive from it for the two properties written here."""

    spec: RunSpec
    status: str | None  # None while it runs

    @property
    def run_id(self) -> str:
        return self.spec.run_id

    @property
    def finished(self) -> bool:
        return self.status is not None

    def summary(self) -> dict[str, Any]: ...

    def finish(self, status: str, reason: str = "", trace: str = "") -> None: ...


@dataclass
class Share:
    """A member's share of its group's timed training since its last epoch end (seconds): the group's
    clocks add each interval divided among the members training in it. `running`: whether the group's
    wall clock runs now (never during an evaluation or a checkpoint)."""

    wall: float = 0.0
    compute: float = 0.0
    running: bool = False

    def take(self) -> tuple[float, float]:
        """The epoch's wall and compute seconds (compute at most wall: CUDA-event sums can exceed a short
        host interval by timer granularity), and a fresh start."""
        wall, compute = self.wall, min(self.compute, self.wall)
        self.wall = self.compute = 0.0
        return wall, compute


class Run(SweepRun):
    """A batch size being trained, as a member of a group (see the module's docstring)."""

    def __init__(
        self,
        spec: RunSpec,
        settings: RunSettings,
        dataset: Dataset,
        device: torch.device,
        emitter: Emitter,
        test: TestSet,
        controls: Controls | None = None,
        ddp: DistContext | None = None,
    ) -> None:
        self.spec, self.settings, self.dataset, self.device = spec, settings, dataset, device
        self.emitter, self.controls, self.ddp = emitter, controls, ddp
        self.test = test
        self.parts = RunParts(spec, settings, dataset, device, emitter, controls, ddp)
        n_train = int(dataset.train.labels.shape[0])
        self.checks = Checks(test, eval_interval(settings.eval_every, n_train), n_train)
        self.status: str | None = None  # None while running
        self.reason = ""
        self.ledger = Ledger(spec, emitter, settings.target_accuracy)
        self.ledger.classes = dataset.num_classes
        self.ledger.eval_samples = test.slice_size
        self.split_chunks = spec.split_chunks
        self.split_requested = 0  # the chunks the app's switch last asked for (0: none yet)
        self.time = Share()
        self.on_epoch_end: Callable[[Run], None] | None = None  # outside the timers: the checkpoint
        # Fused training (trainer.engine.fuse): the group's label and its runs ("" and [] alone), or why
        # this run trains alone ("" when it is fused, or when fusion is off).
        self.fused, self.fused_runs, self.fused_reason = "", [], ""
        # The step timed alone (trainer.sweep.calibrate: a step_time event's fields; None: not timed).
        self.step_alone: dict[str, Any] | None = None
        # The summary's time-alone fields from its row, where they are not batches x step_alone (a scheduled
        # run prices each stage at its own batch size: trainer.sweep.scheduled.price_alone).
        self.price_alone: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self.started_extra: dict[str, Any] = {}  # run_started's extra fields (a branch's `branch`)

    @property
    def iteration(self) -> int:
        return self.ledger.totals.iters

    def start(self, restore: Callable[[Run], None] | None = None) -> None:
        """Allocate the run and announce it; a run whose data or model does not fit ends as oom. With
        `restore` (a resumed sweep) it is put back at its checkpoint (run_started: `resumed_from_epoch`)."""
        self.announce(self.prepare(restore), restored=restore is not None)

    def prepare(self, restore: Callable[[Run], None] | None = None) -> BaseException | None:
        """The first half of `start`: allocate (and restore) the run; returns the out-of-memory error that
        stopped it, if one did (`announce` then ends the run oom)."""
        use_threads(self.parts.cpu_threads)
        try:
            self.parts.allocate(self.split_chunks)
            if restore is not None:
                restore(self)
        except Exception as exc:  # noqa: BLE001
            if not is_oom(exc):
                raise
            return exc
        return None

    def announce(self, oom: BaseException | None = None, restored: bool = False) -> None:
        """The second half of `start`: run_started; the run ends oom (`oom`), or done if restored at its end."""
        self.checks.restart(self.ledger.totals.samples)
        self.emitter.emit("run_started", **started_fields(self, restored))
        if oom is not None:
            self.finish("oom", oom_reason(self.parts.batch_size, self.parts.micro_batch, self.device, oom))
        elif self.ledger.totals.epochs >= self.settings.epochs:  # restored after its last epoch's checkpoint
            self._finish_trained()

    def change_batch(self, batch_size: int, lr: float | None = None) -> None:
        """Train on at `batch_size` (and `lr`) from the next iteration, in the same data order from where the
        epoch stands (trainer.engine.parts.RunParts.rebatch). In a group call `Group.change_batch`."""
        if self.parts.model is None or self.finished:
            raise StateError(f"run {self.run_id} has ended; its batch size cannot change")
        start = 0 if self.parts.epoch_over else self.ledger.epoch_samples
        self.split_chunks = self.parts.rebatch(
            batch_size, lr, self.split_chunks, self.ledger.totals.epochs, start
        )

    def record(self, loss: torch.Tensor, n: int) -> bool:
        """Book one iteration's loss (a device tensor); True when a block is full (flush it off the clocks)."""
        chunks = self.split_chunks  # optimizer steps: k per batch when the chunks divide it
        return self.ledger.record(loss, n, chunks if n % chunks == 0 else 1)

    def flush(self) -> None:
        """The ledger copies pending losses to the host (one sync); a loss that is not finite ends the run."""
        if not self.ledger.has_pending:
            return
        diverged = self.ledger.flush()
        if diverged:
            self.finish("diverged", diverged)

    def evaluation_due(self) -> bool:
        """A sub-epoch evaluation is due (trainer.engine.evaluation.Checks)."""
        return not self.finished and self.checks.due(self.ledger.totals.samples, self.ledger.epoch_samples)

    def evaluate(self) -> None:
        """A sub-epoch evaluation on the slice, off the clocks, after the losses so far (a NaN: diverged)."""
        self.flush()
        if self.finished:
            return
        totals = self.ledger.totals
        test_loss, test_acc = self.checks.on_slice(self.parts.model, totals.samples)
        self.ledger.evaluated(
            test_acc=test_acc,
            test_loss=test_loss,
            eval_samples=self.test.slice_size,
            wall_s=totals.wall_s + self.time.wall,
            compute_s=totals.compute_s + min(self.time.compute, self.time.wall),
        )
        self._collapse(self.ledger.fell_back())

    def noise_due(self) -> bool:
        """A reading of the batch-independent noise probe is due."""
        probes = self.parts.probes
        noise = probes.noise if probes is not None else None
        return not self.finished and noise is not None and noise.due(self.ledger.totals.samples)

    def read_noise(self) -> None:
        """One reading of the batch-independent noise probe, off the clocks (`noise_probe`)."""
        totals = self.ledger.totals
        self.emitter.emit("noise_probe", **read_noise(self.parts, self.dataset, totals.samples, totals.iters))

    def end_epoch(self) -> None:
        """Book the epoch just trained (its share of the group's time, its evaluations, the checkpoint
        callback); after the last epoch the run ends done or collapsed."""
        self.flush()
        if self.finished:
            return
        wall, compute = self.time.take()
        self.ledger.end_epoch(
            wall=wall,
            compute=compute,
            **self.checks.at_epoch_end(self.parts.model, self.ledger.totals.samples),
            eval_samples=self.test.slice_size,
            lr=self.parts.optimizer.param_groups[0]["lr"],
            split_chunks=self.split_chunks,
            probe_figures=self.parts.probes.epoch_figures() if self.parts.probes is not None else {},
        )
        if self._collapse(self.ledger.fell_back()):
            return
        if self.on_epoch_end is not None:
            self.on_epoch_end(self)
        if self.ledger.totals.epochs >= self.settings.epochs:
            self._finish_trained()

    def obey_split(self, requested: int) -> None:
        """The app's split-backward switch (0: never asked), taken once per request from the next step;
        every request is recorded (trainer.engine.run_events.split_switch)."""
        if not requested or requested == self.split_requested:
            return
        self.split_requested = requested
        k, fields = split_switch(
            requested, self.parts.batch_size, self.split_chunks, self.iteration, self.spec.lr
        )
        if k != self.split_chunks:
            self.split_chunks = k
            self.parts.step.set_split(k)
        self.emitter.emit("mode_changed", run=self.run_id, **fields)

    def fail(self, exc: BaseException, trace: str, note: str = "") -> None:
        """End the run after its step raised `exc`: oom (its tensors freed first) or failed."""
        if is_oom(exc):
            self.free()
            self.finish(
                "oom", oom_reason(self.parts.batch_size, self.parts.micro_batch, self.device, exc) + note
            )
        else:
            self.finish("failed", f"{type(exc).__name__}: {exc}", trace)

    def finish(self, status: str, reason: str = "", trace: str = "") -> None:
        """End the run: emit run_finished with its summary (once)."""
        if self.finished:
            return
        if self.ledger.has_pending:  # losses of the last block (a stop or Ctrl-C mid-block)
            self.flush()
            if self.finished:
                return
        self.status, self.reason = status, reason
        self.emitter.emit(
            "run_finished",
            run=self.run_id,
            status=status,
            reason=reason,
            summary=self.summary(),
            **({"traceback": trace} if trace else {}),
        )
        self.free()

    def summary(self) -> dict[str, Any]:
        """The run's row of summary.csv."""
        probes = self.parts.probes
        noise = probes.noise if probes is not None else None
        row = self.ledger.summary(
            status=self.status,
            split_chunks=self.split_chunks,
            optim=self.parts.optim_cfg.name,
            micro_batch=self.parts.micro_batch,
            probe=noise.figures() if noise is not None else None,
        )
        row["fused_runs"] = len(self.fused_runs)  # its times are 1/K shares of a fused group's
        row.update(self.price_alone(row) if self.price_alone else time_alone_fields(row, self.step_alone))
        if noise is not None and noise.readings and row.get("samples_to_target") is not None:
            row.update(noise.at_target(row.get("samples_to_target_lo"), row["samples_to_target"]))
        return row

    def state_dict(self) -> dict[str, Any]:
        """What continues this run after its last completed epoch (checkpoint format 1, weights_only)."""
        p = self.parts
        if p.model is None or p.optimizer is None:
            raise StateError(f"run {self.run_id} has no model any more (it finished); nothing to save")
        state = saved_state(
            self.spec, self.ledger, self.split_chunks, p.iters_per_epoch, p.model, p.optimizer, p.probes
        )
        return {**state, **trained_batch_fields(p.batch_size, p.lr)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put this prepared run back where `state` left it. StateError names the part that does not fit."""
        p = self.parts
        self.split_chunks = load_saved_state(
            state, self.spec, self.settings, p.model, p.optimizer, self.ledger, p.probes
        )
        if p.step is not None:
            p.step.set_split(self.split_chunks)
        trained = trained_batch(state)
        if trained is not None and trained != (p.batch_size, p.lr):  # saved after a change of batch size
            self.change_batch(*trained)

    def free(self) -> None:
        """Drop the run's tensors so the rest of the sweep has the memory."""
        self.ledger.drop_pending()
        self.parts.free()

    def _finish_trained(self) -> None:
        """Every epoch trained: `done`, or `collapsed` when the epochs say it collapsed or never learned."""
        if not self._collapse(self.ledger.end_verdict()):
            self.finish("done")

    def _collapse(self, verdict: Collapse | None) -> bool:
        if verdict is None:
            return False
        at = self.ledger.totals.collapse or {}
        self.finish(
            "collapsed",
            f"{verdict.reason}; collapsed at epoch {at.get('epoch')} (iteration {at.get('iter')})",
        )
        return True
