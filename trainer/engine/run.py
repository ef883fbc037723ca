"""One run of the sweep, a member of the group that trains it (trainer.engine.group).

A `Run` holds what one batch size trains with: its model, optimizer, data order, step, probes, ledger
and its share of the group's time. It does not loop: the group calls its public surface iteration by
iteration, for one run or for K that train fused, the same way.

- `prepare` allocates it (and puts it back at its checkpoint), `announce` emits run_started;
- each iteration: `next_item` (None at the epoch's end), `warm_up`, `probe_due` / `probe_before` /
  `probe_after`, then `record` of the step's loss (the ledger copies losses to the host in blocks: one
  sync per block, `flush`), `evaluation_due` / `evaluate` (a sub-epoch evaluation on the slice) and
  `noise_due` / `read_noise`;
- `end_epoch` books an epoch (its evaluations, the checkpoint callback, the last epoch's verdict);
- `finish` ends it with a status (run_finished with its summary, once) and frees its tensors;
- `state_dict` / `load_state_dict` carry everything a checkpoint needs to continue after its last
  completed epoch; `change_batch` trains on at another batch size (same data order, new step, lr).

The group's clocks credit each training member its share of their time (`time`); the member reads it
at its evaluations and epoch ends, with the group's clocks stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol, runtime_checkable

import torch

from trainer.analysis.accuracy import SLICE, SLICE_SEED, worst_standard_error
from trainer.analysis.time_alone import time_alone_fields
from trainer.data.datasets import Dataset, as_inputs
from trainer.data.pipelines import make_batches
from trainer.engine.ddp import DistContext
from trainer.engine.evaluation import TestSet, evaluate
from trainer.engine.ledger import Ledger
from trainer.engine.state import (
    StateError,
    load_saved_state,
    model_and_optimizer,
    run_micro_batch,
    run_optim,
    saved_state,
)
from trainer.engine.steps import Step, batch_norm_note, choose_step, split_request
from trainer.engine.stops import STOP_INSIDE_MIN_BATCH, is_oom, oom_reason, stop_inside_steps
from trainer.engine.threads import cpu_threads, use_threads
from trainer.measure.probes import Probes
from trainer.models.builtin import count_parameters
from trainer.models.optim import lr_at
from trainer.plan import RunSettings, RunSpec, eval_interval
from trainer.runlog import Emitter, EventType
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
        # Samples between sub-epoch evaluations on the slice (0: epoch ends only) and the next one due.
        self.eval_every = eval_interval(settings.eval_every, int(dataset.train.labels.shape[0]))
        self.next_eval = 0
        self.status: str | None = None  # None while running
        self.reason = ""
        self.ledger = Ledger(spec, emitter, settings.target_accuracy)
        self.ledger.eval_samples = test.slice_size
        self.split_chunks = spec.split_chunks
        #: The chunks the app's switch last asked this run for (0: none yet): every request is recorded
        #: once per run, also where it changes nothing (k does not divide this batch, or it is off already),
        #: so the newest mode_changed always holds the switch's state.
        self.split_requested = 0
        self.optim_cfg = run_optim(spec, settings)
        self.batch_size = spec.batch_size  # the batch its step trains on (change_batch may set another)
        self.micro_batch = run_micro_batch(spec, settings)
        self.lr = spec.lr  # the lr its warm-up climbs to (change_batch may set another)
        # CPU threads by the work of one step (trainer.engine.threads; perf.cpu_threads overrides); 0 on a GPU.
        self.cpu_threads = self.own_threads()
        # Allocated by prepare (on the device), dropped by free.
        self.model: torch.nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.step: Step | None = None
        self.probes: Probes | None = None
        # The reason: why a run that could use CUDA graphs does not.
        self.fast_path, self.fast_path_reason = "eager", ""
        self.batch_norm = ""  # what the run does with the model's batch norm ("" without)
        self.iters_per_epoch = self.warmup_iters = 0
        self.time = Share()
        self._items: Iterator[Any] | None = None  # the epoch's step inputs (None: between epochs)
        self._stop_hooks: list[Any] = []
        # Called at each epoch end, outside the timers (the sweep saves a checkpoint there).
        self.on_epoch_end: Callable[[Run], None] | None = None
        # Fused training (trainer.engine.fuse): the group's label and its runs ("" and [] when it trains
        # alone), or why this run trains alone ("" when it is fused, or when fusion is off).
        self.fused, self.fused_runs, self.fused_reason = "", [], ""
        # The calibration of this run's step trained alone (a step_time event's fields,
        # trainer.sweep.calibrate); None where the sweep has none (torchrun, sweep.parallel): its summary
        # then has no time alone.
        self.step_alone: dict[str, Any] | None = None
        # Fields run_started carries besides the run's own (a branch's `branch`, trainer.sweep.branch).
        self.started_extra: dict[str, Any] = {}

    @property
    def iteration(self) -> int:
        return self.ledger.totals.iters

    def own_threads(self) -> int:
        """CPU threads for this run's steps trained alone (0 on a GPU: torch's own)."""
        if self.device.type != "cpu":
            return 0
        return cpu_threads(self.batch_size, self.micro_batch, self.settings.perf.cpu_threads)

    # --- start ----------------------------------------------------------------------------------------

    def start(self, restore: Callable[[Run], None] | None = None) -> None:
        """Allocate the run and announce it; a run whose data or model does not fit ends as oom.

        With `restore` (a resumed sweep), the prepared run is put back at its checkpoint; its
        run_started then says `resumed_from_epoch` (the device and fast path may differ from before).
        """
        self.announce(self.prepare(restore), restored=restore is not None)

    def prepare(self, restore: Callable[[Run], None] | None = None) -> BaseException | None:
        """The first half of `start`: allocate (and restore) the run; returns the out-of-memory error that
        stopped it, if one did (`announce` then ends the run oom). A fused group prepares its members
        first, so their run_started can say whether they train fused."""
        use_threads(self.cpu_threads)
        try:
            torch.manual_seed(self.spec.seed)  # the same initial weights for every batch size (per seed)
            self.model, self.optimizer = model_and_optimizer(
                self.spec, self.settings, self.optim_cfg, self.device
            )
            self._make_step(self.batch_size)
            if restore is not None:
                restore(self)
        except Exception as exc:  # noqa: BLE001
            if not is_oom(exc):
                raise
            return exc
        return None

    def _make_step(self, batch_size: int) -> None:
        """The data order's batches of `batch_size`, the step chosen for them, and the probes."""
        spec, settings = self.spec, self.settings
        batches = make_batches(settings.data, self.dataset.train, batch_size, self.device, spec.seed)
        self.iters_per_epoch = batches.iters_per_epoch
        self.warmup_iters = round(self.optim_cfg.warmup_epochs * self.iters_per_epoch)
        self.step, self.fast_path_reason = choose_step(
            self.model,
            self.optimizer,
            batches,
            batch_size=batch_size,
            split_chunks=self.split_chunks,
            split_method=spec.split_method,
            micro_batch=self.micro_batch,
            optim_name=self.optim_cfg.name,
            perf=settings.perf,
            pipeline=settings.data.pipeline,
            device=self.device,
            ddp=self.ddp,
            on_capture=lambda: self.emitter.emit(
                EventType.STARTUP, run=spec.run_id, stage="capturing CUDA graph"
            ),
        )
        self.fast_path = self.step.fast_path
        for hook in self._stop_hooks:
            hook.remove()
        self._stop_hooks = (
            stop_inside_steps(self.model, self.controls)  # gone with the model (free)
            if self.controls is not None
            and self.ddp is None
            and batch_size >= STOP_INSIDE_MIN_BATCH
            and self.fast_path != "cuda_graph"  # a graph replays no Python: its steps are short anyway
            else []
        )
        self.batch_norm = batch_norm_note(
            self.model, split_method=spec.split_method, micro_batch=self.micro_batch, ddp=self.ddp
        )
        # With micro-batches the probes see the first micro-batch only: the whole batch may not fit.
        self.probes = Probes(
            settings.gns, self.micro_batch or batch_size, self.iters_per_epoch, seed=spec.seed
        )

    def announce(self, oom: BaseException | None = None, restored: bool = False) -> None:
        """The second half of `start`: emit run_started; end the run oom (`oom`) or, restored after its last
        epoch, done."""
        spec, settings, epochs = self.spec, self.settings, self.ledger.totals.epochs
        self.next_eval = self._eval_after(self.ledger.totals.samples)
        self.emitter.emit(
            "run_started",
            run=self.run_id,
            batch_size=spec.batch_size,
            lr=spec.lr,
            momentum=spec.momentum,
            split_chunks=self.split_chunks,
            split_method=spec.split_method,
            iters_per_epoch=self.iters_per_epoch,
            epochs=settings.epochs,
            warmup_iters=self.warmup_iters,
            device=str(self.device),
            seed=spec.seed,
            fast_path=self.fast_path,
            fast_path_reason=self.fast_path_reason,
            micro_batch=self.micro_batch,
            variant=spec.variant,
            optim=self.optim_cfg.name,
            precision=settings.perf.precision,
            cpu_threads=self.cpu_threads,
            model=settings.model.name,
            model_output=settings.model.output,
            parameters=count_parameters(self.model) if self.model is not None else 0,
            batch_norm=self.batch_norm,
            gns_interval=self.probes.interval if self.probes else 0,
            gns_chunks=self.probes.chunks if self.probes else 0,
            eval_every=self.eval_every,
            eval_samples=self.test.slice_size,
            eval_set=SLICE,
            eval_slice_seed=SLICE_SEED,
            test_samples=int(self.test.y.shape[0]),
            eval_se_max=worst_standard_error(self.test.slice_size),
            gns_probe_every=self.probes.noise.every if self.probes and self.probes.noise else 0,
            fused=self.fused,
            fused_runs=list(self.fused_runs),
            fused_reason=self.fused_reason,
            **({"resumed_from_epoch": epochs} if restored else {}),
            **self.started_extra,
        )
        if oom is not None:
            self.finish("oom", oom_reason(self.batch_size, self.micro_batch, self.device, oom))
        elif epochs >= settings.epochs:  # restored after its last epoch's checkpoint
            self._finish_trained()

    # --- the group's surface, iteration by iteration --------------------------------------------------

    def change_batch(self, batch_size: int, lr: float | None = None) -> None:
        """Train on at `batch_size` from the next iteration (a batch-size schedule): the rest of the
        current epoch in the same data order, from the sample it stands at; a step chosen for the new
        batch as at the start (split-backward where its chunks divide it, gradient accumulation, CUDA
        graph); the model and the optimizer's state carried. With `lr`, the lr from here on; either way a
        warm-up in progress ends. The in-batch noise-scale probes start again for the new batch, the
        batch-independent noise probe carries on. In a group, `Group.change_batch` calls this for each
        member and chooses the group's stepper again."""
        if self.model is None or self.finished:
            raise StateError(f"run {self.run_id} has ended; its batch size cannot change")
        if self.ddp is not None:
            raise ValueError("torchrun: a data parallel run's batch size cannot change")
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        start = 0 if self.epoch_over else self.ledger.epoch_samples
        self.batch_size = batch_size
        micro = self.settings.micro_batch
        self.micro_batch = micro if 0 < micro < batch_size else 0
        self.cpu_threads = self.own_threads()
        self.split_chunks, _ = split_request(batch_size, self.split_chunks)
        if lr is not None:
            self.lr = lr
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        probes = self.probes
        self._make_step(batch_size)
        self.warmup_iters = 0
        if probes is not None and self.probes is not None:
            self.probes.noise = probes.noise
        self._items = self.step.items(self.ledger.totals.epochs, start) if start else None

    def next_item(self) -> Any:
        """The next step input of the current epoch (its first starts the epoch); None when the epoch's
        batches are all trained (`epoch_over` then, until the next call starts the next epoch)."""
        if self._items is None:
            self._items = self.step.items(self.ledger.totals.epochs)
        try:
            return next(self._items)
        except StopIteration:
            self._items = None
            return None

    @property
    def epoch_over(self) -> bool:
        """True between epochs: the last epoch's batches are all trained (or none has started)."""
        return self._items is None

    def warm_up(self, iteration: int) -> None:
        """The warm-up's lr for `iteration` (trainer.models.optim.lr_at) in the optimizer, which its own
        steps and the epoch's figures read; nothing to do past the warm-up."""
        if self.warmup_iters and iteration <= self.warmup_iters:
            lr = lr_at(self.lr, iteration, self.warmup_iters)
            for group in self.optimizer.param_groups:
                group["lr"] = lr

    def probe_due(self, iteration: int) -> bool:
        """Whether a noise-scale estimate is due on this iteration's batch, before its step."""
        return self.probes is not None and self.probes.enabled and self.probes.due(iteration)

    def probe_before(self, item: Any) -> None:
        """The noise-scale estimate on this batch before its step (the group's clocks are stopped)."""
        self.probes.before_step(self.model, *self.step.batch(item))

    def wants_grads(self, probing: bool) -> bool:
        """Whether `probe_after` needs the step's gradient."""
        return self.probes is not None and self.probes.enabled and (probing or self.probes.wants_grads)

    def probe_after(self, grads: list[torch.Tensor], probing: bool) -> None:
        self.probes.after_step(grads, probing)

    def record(self, loss: torch.Tensor, n: int) -> bool:
        """Book one iteration's loss (a device tensor) and samples; True when a block of losses is full
        and should be flushed (off the clocks)."""
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
        """A sub-epoch evaluation is due (an epoch's last batch is not: its end evaluates)."""
        totals = self.ledger.totals
        return bool(
            not self.finished
            and self.eval_every
            and totals.samples >= self.next_eval
            and self.ledger.epoch_samples < self.dataset.train.labels.shape[0]
        )

    def evaluate(self) -> None:
        """A sub-epoch evaluation on the evaluation slice, off the clocks: the losses so far are flushed
        first (a NaN among them ends the run diverged)."""
        self.flush()
        if self.finished:
            return
        totals = self.ledger.totals
        test_loss, test_acc = evaluate(self.model, self.test.slice_x, self.test.slice_y)
        self.ledger.evaluated(
            test_acc=test_acc,
            test_loss=test_loss,
            eval_samples=self.test.slice_size,
            wall_s=totals.wall_s + self.time.wall,
            compute_s=totals.compute_s + min(self.time.compute, self.time.wall),
        )
        self.next_eval = self._eval_after(totals.samples)
        self._collapsed()

    def noise_due(self) -> bool:
        """A reading of the batch-independent noise probe is due."""
        noise = self.probes.noise if self.probes is not None else None
        return not self.finished and noise is not None and noise.due(self.ledger.totals.samples)

    def read_noise(self) -> None:
        """One reading of the batch-independent noise probe at the current weights
        (trainer/measure/noise_probe.py), off the clocks: a probe batch drawn from the training set by the
        probe's own generator; emits `noise_probe` with the reading and the window's B_simple, its 95%
        interval and the share of undefined readings."""
        noise = self.probes.noise
        train = self.dataset.train
        x, y = noise.draw(train.images, train.labels)
        x = as_inputs(x).to(self.device)  # as the training batches (ToTensor's x / 255 for grey images)
        reading = noise.update(self.model, x, y.to(self.device), self.ledger.totals.samples)
        self.emitter.emit(
            "noise_probe",
            run=self.run_id,
            iter=self.ledger.totals.iters,
            samples=reading.samples,
            g2=reading.g2,
            trace=reading.trace,
            loss=reading.loss,
            probe_size=noise.probe_size,
            chunk_size=noise.chunk_size,
            window_samples=noise.window,
            **noise.figures(),
        )

    def end_epoch(self) -> None:
        """Book the epoch just trained (its share of the group's time, its evaluations, the checkpoint
        callback); after the last epoch the run ends done or collapsed."""
        self.flush()
        if self.finished:
            return
        wall, compute = self.time.take()
        test = self.test
        test_loss, test_acc = evaluate(self.model, test.x, test.y)
        slice_loss, slice_acc = (
            (test_loss, test_acc) if test.whole else evaluate(self.model, test.slice_x, test.slice_y)
        )
        self.next_eval = self._eval_after(self.ledger.totals.samples)
        self.ledger.end_epoch(
            wall=wall,
            compute=compute,
            test_loss=test_loss,
            test_acc=test_acc,
            slice_loss=slice_loss,
            slice_acc=slice_acc,
            eval_samples=self.test.slice_size,
            lr=self.optimizer.param_groups[0]["lr"],
            split_chunks=self.split_chunks,
            probe_figures=self.probes.epoch_figures() if self.probes is not None else {},
        )
        if self._collapsed():
            return
        if self.on_epoch_end is not None:
            self.on_epoch_end(self)
        if self.ledger.totals.epochs >= self.settings.epochs:
            self._finish_trained()

    def obey_split(self, requested: int) -> None:
        """The app's split-backward switch (0: never asked), taken once per request: its chunks from the
        next step (1 where they do not divide the batch). Every request is recorded (mode_changed with
        `requested`), also one that changes nothing here, so a viewer that attaches later reads the
        switch's state from the run directory."""
        if not requested or requested == self.split_requested:
            return
        self.split_requested = requested
        k, why = split_request(self.batch_size, requested)
        fields: dict[str, Any] = {
            "iter": self.iteration,
            "requested": requested,
            **({"reason": why} if why else {}),
        }
        if k != self.split_chunks:
            self.split_chunks = k
            self.step.set_split(k)
            self.emitter.emit(
                "mode_changed", run=self.run_id, **fields, split_chunks=k, effective_lr=self.spec.lr * k
            )
        else:
            self.emitter.emit("mode_changed", run=self.run_id, split_chunks=k, **fields)

    # --- the end ----------------------------------------------------------------------------------------

    def fail(self, exc: BaseException, trace: str, note: str = "") -> None:
        """End the run after its step raised `exc`: oom (its tensors freed first) or failed."""
        if is_oom(exc):
            self.free()
            self.finish("oom", oom_reason(self.batch_size, self.micro_batch, self.device, exc) + note)
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
        noise = self.probes.noise if self.probes is not None else None
        row = self.ledger.summary(
            status=self.status,
            split_chunks=self.split_chunks,
            optim=self.optim_cfg.name,
            micro_batch=self.micro_batch,
            probe=noise.figures() if noise is not None else None,
        )
        row["fused_runs"] = len(self.fused_runs)  # its times are 1/K shares of a fused group's
        row.update(time_alone_fields(row, self.step_alone))
        if noise is not None and noise.readings and row.get("samples_to_target") is not None:
            row.update(noise.at_target(row.get("samples_to_target_lo"), row["samples_to_target"]))
        return row

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run after its last completed epoch: tensors and plain
        data only (weights_only loading), in the layout of checkpoint format 1."""
        if self.model is None or self.optimizer is None:
            raise StateError(f"run {self.run_id} has no model any more (it finished); nothing to save")
        return saved_state(
            self.spec,
            self.ledger,
            self.split_chunks,
            self.iters_per_epoch,
            self.model,
            self.optimizer,
            self.probes,
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put this prepared run back where `state` left it. StateError names the part that does not fit."""
        self.split_chunks = load_saved_state(
            state, self.spec, self.settings, self.model, self.optimizer, self.ledger, self.probes
        )
        if self.step is not None:
            self.step.set_split(self.split_chunks)

    def free(self) -> None:
        """Drop the run's tensors so the rest of the sweep has the memory."""
        self.ledger.drop_pending()
        self._items = None
        self.model = self.optimizer = self.step = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _eval_after(self, samples: int) -> int:
        """The training samples at which the next sub-epoch evaluation is due."""
        return (samples // self.eval_every + 1) * self.eval_every if self.eval_every else 0

    def _collapsed(self) -> bool:
        """After an evaluation: end the run `collapsed` when its accuracy fell back to chance."""
        verdict = self.ledger.fell_back()
        if verdict is None:
            return False
        self.finish("collapsed", self._collapse_reason(verdict.reason))
        return True

    def _finish_trained(self) -> None:
        """Every epoch trained: `done`, or `collapsed` when the epochs say it collapsed or never learned."""
        verdict = self.ledger.end_verdict()
        self.finish("collapsed", self._collapse_reason(verdict.reason)) if verdict else self.finish("done")

    def _collapse_reason(self, why: str) -> str:
        at = self.ledger.totals.collapse or {}
        return f"{why}; collapsed at epoch {at.get('epoch')} (iteration {at.get('iter')})"
