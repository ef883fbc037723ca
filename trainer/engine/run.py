"""One run of the sweep: a batch size, its model, optimizer, data, step and timers.

A `Run` advances in slices (`advance(samples)`) so the sweep can interleave runs; each slice is
timed alone. The hot loop hands each loss to the ledger as a device tensor; the ledger copies them
to the host in blocks (one sync per block), never per iteration. The step is chosen once when the
run is prepared (trainer.engine.steps). `state_dict` / `load_state_dict` carry everything a checkpoint
needs to continue the run after its last completed epoch.
"""

from __future__ import annotations

import math
import traceback
from typing import Any, Callable, Protocol, runtime_checkable

import torch

from trainer.analysis.accuracy import SLICE, SLICE_SEED, worst_standard_error
from trainer.analysis.time_alone import time_alone_fields
from trainer.data.datasets import Dataset, as_inputs
from trainer.data.pipelines import make_batches
from trainer.engine.accumulate import suggest_micro_batch
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
from trainer.engine.threads import cpu_threads, use_threads
from trainer.engine.timing import ComputeTimer, WallClock
from trainer.measure.noise_probe import NoiseProbe
from trainer.measure.probes import Probes
from trainer.models.builtin import count_parameters
from trainer.models.optim import lr_at
from trainer.plan import RunSettings, RunSpec, eval_interval
from trainer.runlog import Emitter, EventType, RunDirWriteError
from trainer.runlog.controls import Controls, StopRequested

#: Steps of at least this many samples look for a stop inside the step too (`stop_inside_steps`): one
#: of them can take seconds on a CPU (batch 6000: 4-8 s on one core), and a stop is due within 2 s.
STOP_INSIDE_MIN_BATCH = 512


def stop_inside_steps(model: Any, controls: Controls) -> list[Any]:
    """Make a stop interrupt a training step between two layers: a forward pre-hook on every leaf
    module and a gradient hook on every parameter raise StopRequested once `controls.stop` is set
    (in training mode: an evaluation is never cut short). The step is abandoned before
    its optimizer update, so the weights stay those after the last whole step. Returns the hooks'
    handles (`.remove()` each). Costs a few microseconds a step: for large batches only. A gradient
    probe before the step (trainer.measure.probes, torch.func) is cut short the same way."""

    def forward(module: torch.nn.Module, _args: Any) -> None:
        if controls.stop and module.training:  # eval mode: an evaluation, never cut short
            raise StopRequested()

    def backward(*_: Any) -> None:  # a gradient hook runs in a backward pass only (with grad mode off)
        if controls.stop:
            raise StopRequested()

    handles = [
        m.register_forward_pre_hook(forward) for m in model.modules() if next(m.children(), None) is None
    ]
    handles += [p.register_hook(backward) for p in model.parameters() if p.requires_grad]
    return handles


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


def is_oom(exc: BaseException) -> bool:
    """True for CUDA (or host) out-of-memory errors."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()
    )


class Run(SweepRun):
    """A batch size being trained; `advance` trains a slice, `finish` ends it."""

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
        self._next_eval = 0
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
        self.micro_batch = run_micro_batch(spec, settings)
        # CPU threads by the work of one step (trainer.engine.threads; perf.cpu_threads overrides); 0 on a GPU.
        self.cpu_threads = (
            cpu_threads(spec.batch_size, self.micro_batch, settings.perf.cpu_threads)
            if device.type == "cpu"
            else 0
        )
        # Allocated by _prepare (on the device), dropped by _free.
        self.model: torch.nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.step: Step | None = None
        self.probes: Probes | None = None
        self.fast_path, self.fast_path_reason = (
            "eager",
            "",
        )  # the reason: why a run that could use CUDA graphs does not
        self.batch_norm = ""  # what the run does with the model's batch norm ("" without)
        self.iters_per_epoch = self.warmup_iters = 0
        self.wall, self.compute = WallClock(device), ComputeTimer(device)
        self._seen_version = -1  # apply the controls' state before the first iteration
        self._iterator = None
        # Called at each epoch end, outside the timers (the sweep saves a checkpoint there).
        self.on_epoch_end: Callable[[Run], None] | None = None
        # Fused training (trainer.engine.fuse): the group's label and its runs ("" and [] when it trains alone), or
        # why this run trains alone ("" when it is fused, or when fusion is off).
        self.fused, self.fused_runs, self.fused_reason = "", [], ""
        # The calibration of this run's step trained alone (a step_time event's fields, trainer.sweep.calibrate);
        # None where the sweep has none (torchrun, sweep.parallel): its summary then has no time alone.
        self.step_alone: dict[str, Any] | None = None
        # Fields run_started carries besides the run's own (a branch's `branch`, trainer.sweep.branch).
        self.started_extra: dict[str, Any] = {}

    def _prepare(self) -> None:
        """Allocate the model, optimizer, data and step on the device (may run out of memory)."""
        # Same initial weights for every batch size (per seed): the comparison is about the batch.
        torch.manual_seed(self.spec.seed)
        spec, settings = self.spec, self.settings
        self.model, self.optimizer = model_and_optimizer(spec, settings, self.optim_cfg, self.device)
        batches = make_batches(settings.data, self.dataset.train, spec.batch_size, self.device, spec.seed)
        self.iters_per_epoch = batches.iters_per_epoch
        self.warmup_iters = round(self.optim_cfg.warmup_epochs * self.iters_per_epoch)
        self.step, self.fast_path_reason = choose_step(
            self.model,
            self.optimizer,
            batches,
            batch_size=spec.batch_size,
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
        if (
            self.controls is not None
            and self.ddp is None
            and spec.batch_size >= STOP_INSIDE_MIN_BATCH
            and self.fast_path != "cuda_graph"
        ):  # a graph replays no Python: its steps are short anyway
            stop_inside_steps(self.model, self.controls)  # gone with the model (_free)
        self.batch_norm = batch_norm_note(
            self.model, split_method=spec.split_method, micro_batch=self.micro_batch, ddp=self.ddp
        )
        # With micro-batches the probes see the first micro-batch only: the whole batch may not fit.
        self.probes = Probes(
            settings.gns, self.micro_batch or spec.batch_size, self.iters_per_epoch, seed=spec.seed
        )

    def _use_threads(self) -> None:
        """This run's CPU threads (runs of other batch sizes may have set others in between)."""
        use_threads(self.cpu_threads)

    @property
    def iteration(self) -> int:
        return self.ledger.totals.iters

    def start(self, restore: Callable[[Run], None] | None = None) -> None:
        """Allocate the run and announce it; a run whose data or model does not fit ends as oom.

        With `restore` (a resumed sweep), the prepared run is put back at its checkpoint; its
        run_started then says `resumed_from_epoch` (the device and fast path may differ from before).
        """
        self.announce(self.prepare(restore), restored=restore is not None)

    def prepare(self, restore: Callable[[Run], None] | None = None) -> BaseException | None:
        """The first half of `start`: allocate (and restore) the run; returns the out-of-memory error that
        stopped it, if one did (`announce` then ends the run oom). A fused group (trainer.engine.fuse) prepares its
        members first, so their run_started can say whether they train fused."""
        self._use_threads()
        try:
            self._prepare()
            if restore is not None:
                restore(self)
        except Exception as exc:  # noqa: BLE001
            if not is_oom(exc):
                raise
            return exc
        return None

    def announce(self, oom: BaseException | None = None, restored: bool = False) -> None:
        """The second half of `start`: emit run_started; end the run oom (`oom`) or, restored after its last
        epoch, done."""
        spec, settings, epochs = self.spec, self.settings, self.ledger.totals.epochs
        self._next_eval = self._eval_after(self.ledger.totals.samples)
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
            self.finish("oom", oom_reason(self.spec.batch_size, self.micro_batch, self.device, oom))
        elif epochs >= settings.epochs:  # restored after its last epoch's checkpoint
            self._finish_trained()

    def advance(self, samples: int) -> None:
        """Train about `samples` samples (whole batches, at least one), crossing epochs as needed.

        Ends the run (status diverged/oom/failed/done) on its own; raises StopRequested
        when the user stops the sweep (the sweep ends every run as stopped).
        """
        if self.finished:
            return
        self._use_threads()
        iters_left = max(1, math.ceil(samples / self.spec.batch_size))
        try:
            while iters_left > 0 and not self.finished:
                iters_left -= self._train_iters(iters_left)
                if self._iterator is None and not self.finished:
                    self._end_epoch()
        except (StopRequested, RunDirWriteError):  # the whole sweep ends, not just this run
            self.wall.stop()
            self._flush_losses()
            raise
        except Exception as exc:  # noqa: BLE001 - a run's failure must not end the sweep
            self.wall.stop()
            if is_oom(exc):
                self._free()
                self.finish("oom", oom_reason(self.spec.batch_size, self.micro_batch, self.device, exc))
            else:
                self.finish("failed", f"{type(exc).__name__}: {exc}", traceback.format_exc())

    def finish(self, status: str, reason: str = "", trace: str = "") -> None:
        """End the run: emit run_finished with its summary (once)."""
        if self.finished:
            return
        self.wall.stop()
        if self.ledger.has_pending:  # losses of the last block (a stop or Ctrl-C mid-block)
            self._flush_losses()
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
        self._free()

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
        row["fused_runs"] = len(
            self.fused_runs
        )  # its times are 1/K shares of a fused group's (trainer.engine.fuse)
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

    def _train_iters(self, max_iters: int) -> int:
        """Up to max_iters iterations of the current epoch; returns how many were done."""
        self.wall.start()
        step = self.step
        if self._iterator is None:
            self._iterator = step.items(self.ledger.totals.epochs)
        ledger, totals, opt, compute = self.ledger, self.ledger.totals, self.optimizer, self.compute
        controls = self.controls
        probes = self.probes if self.probes is not None and self.probes.enabled else None
        noise = self.probes.noise if self.probes is not None else None
        base_lr, warmup = self.spec.lr, self.warmup_iters
        done = 0
        try:
            while done < max_iters:
                if controls is not None and controls.version != self._seen_version:
                    self._obey(controls)
                    if self.finished:
                        return done
                try:
                    item = next(self._iterator)
                except StopIteration:
                    self._iterator = None
                    break
                it = totals.iters
                if warmup:
                    lr = lr_at(base_lr, it, warmup)
                    for group in opt.param_groups:
                        group["lr"] = lr
                probing = probes is not None and probes.due(it)
                if probing:  # a noise-scale estimate on this batch before its step, outside both timers
                    self.wall.stop()
                    probes.before_step(self.model, *step.batch(item))
                    self.wall.start()
                compute.begin()
                loss, n = step(item)
                compute.end()
                if probes is not None and (probing or probes.wants_grads):
                    probes.after_step(step.last_grads(), probing)
                done += 1
                chunks = self.split_chunks  # optimizer steps: k per batch when the chunks divide it
                if ledger.record(
                    loss, n, chunks if n % chunks == 0 else 1
                ):  # a full block: to the host, off the clock
                    self.wall.stop()
                    self._flush_losses()
                    if self.finished:
                        return done
                    self.wall.start()
                if (
                    self.eval_every
                    and totals.samples >= self._next_eval
                    and ledger.epoch_iters < self.iters_per_epoch
                ):  # an epoch's last batch: its end evaluates
                    self.wall.stop()
                    self._evaluate_slice()
                    if self.finished:
                        return done
                    self.wall.start()
                if noise is not None and noise.due(
                    totals.samples
                ):  # the batch-independent probe, off the clocks
                    self.wall.stop()
                    self._read_noise(noise)
                    self.wall.start()
        finally:
            self.wall.stop()
        self._flush_losses()
        return done

    def _flush_losses(self) -> None:
        """The ledger copies pending losses to the host (one sync); a loss that is not finite ends the run."""
        if not self.ledger.has_pending:
            return
        diverged = self.ledger.flush()
        # That copy synchronised: fold the block's CUDA-event intervals now, so the event pool stays
        # one block long instead of growing to an epoch (60,000 pairs at batch 1).
        self.compute.collect()
        if diverged:
            self.finish("diverged", diverged)

    def _eval_after(self, samples: int) -> int:
        """The training samples at which the next sub-epoch evaluation is due."""
        return (samples // self.eval_every + 1) * self.eval_every if self.eval_every else 0

    def _evaluate_slice(self) -> None:
        """A sub-epoch evaluation on the evaluation slice, off the clocks (they are stopped): the
        losses so far are flushed first (a NaN among them ends the run diverged)."""
        self._flush_losses()
        if self.finished:
            return
        totals = self.ledger.totals
        self.compute.collect()
        wall = totals.wall_s + self.wall.total
        compute = totals.compute_s + min(self.compute.total, self.wall.total)
        test_loss, test_acc = evaluate(self.model, self.test.slice_x, self.test.slice_y)
        self.ledger.evaluated(
            test_acc=test_acc,
            test_loss=test_loss,
            eval_samples=self.test.slice_size,
            wall_s=wall,
            compute_s=compute,
        )
        self._next_eval = self._eval_after(totals.samples)
        self._collapsed()

    def _read_noise(self, noise: NoiseProbe) -> None:
        """One reading of the batch-independent noise probe at the current weights (trainer/measure/noise_probe.py):
        a probe batch drawn from the training set by the probe's own generator; emits `noise_probe` with
        the reading and the window's B_simple, its 95% interval and the share of undefined readings."""
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

    def _end_epoch(self) -> None:
        self._flush_losses()
        if self.finished:
            return
        wall = self.wall.take()
        # CUDA-event sums can exceed a short host interval by timer granularity; keep data >= 0.
        compute = min(self.compute.take(), wall)
        test = self.test
        test_loss, test_acc = evaluate(self.model, test.x, test.y)
        slice_loss, slice_acc = (
            (test_loss, test_acc) if test.whole else evaluate(self.model, test.slice_x, test.slice_y)
        )
        self._next_eval = self._eval_after(self.ledger.totals.samples)
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

    def _obey(self, controls: Controls) -> None:
        self._seen_version = controls.version
        if controls.stop:
            raise StopRequested()
        self.obey_split(controls.split_chunks)
        if controls.paused:
            self.wall.stop()
            self._flush_losses()  # the app shows everything trained before the pause
            if self.finished:  # those losses held a NaN: the run diverged
                return
            self.emitter.emit("paused", paused=True, run_waiting=self.run_id, iter=self.iteration)
            controls.wait_while_paused()
            self.emitter.emit("paused", paused=False, run_waiting=self.run_id, iter=self.iteration)
            if controls.stop:
                raise StopRequested()
            self.wall.start()

    def obey_split(self, requested: int) -> None:
        """The app's split-backward switch (0: never asked), taken once per request."""
        if requested and requested != self.split_requested:
            self._switch_split(requested)

    def _switch_split(self, requested: int) -> None:
        """The app's split-backward switch: its chunks from the next step (1 where they do not divide the batch).

        Every request is recorded (mode_changed with `requested`), also one that changes nothing here, so a
        viewer that attaches later reads the switch's state from the run directory."""
        self.split_requested = requested
        k, why = split_request(self.spec.batch_size, requested)
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

    def _free(self) -> None:
        """Drop the run's tensors so the rest of the sweep has the memory."""
        self.ledger.drop_pending()
        self._iterator = None
        self.model = self.optimizer = self.step = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def oom_reason(batch_size: int, micro_batch: int, device: torch.device, exc: BaseException) -> str:
    """What to tell the user when a batch size does not fit in memory."""
    where = "GPU" if device.type == "cuda" else "host"
    # Gradient accumulation gives the same step with less memory: suggest a micro-batch
    # a quarter the size of what did not fit (issue 7).
    micro = suggest_micro_batch(batch_size, micro_batch or batch_size)
    accumulate = f"sweep.micro_batch = {micro} (the same step from micro-batches that fit), " if micro else ""
    return (
        f"batch size {batch_size} does not fit in {where} memory ({type(exc).__name__}); "
        f"try {accumulate}a smaller batch size, or data.pipeline = \"dataloader\" to keep the dataset off the device"
    )
