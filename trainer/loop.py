"""One run of the sweep: a batch size, its model, optimizer, data and timers.

A `Run` advances in slices (`advance(samples)`) so the sweep can interleave runs;
each slice is timed alone. The hot loop keeps losses on the device and copies
them to the host in blocks (one sync per block), never per iteration.
"""
from __future__ import annotations

import dataclasses
import math
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F

from trainer.accumulate import accumulate_step, split_accumulate_step, suggest_micro_batch
from trainer import distributed
from trainer.config import Config, OptimConfig
from trainer.controls import Controls
from trainer.data import Dataset, make_batches
from trainer.runlog import Emitter, RunDirWriteError
from trainer.models import build_model
from trainer.optim import build_optimizer
from trainer.fastpath import GraphStep, index_batches, resolve_fast_path
from trainer.oscillation import loss_diff_std
from trainer.probes import Probes
from trainer.split import plain_step, split_step
from trainer.timing import ComputeTimer, WallClock

LOSS_BLOCK = 1000  # iterations per `losses` event at most (one host sync per block)


class StopRequested(Exception):
    """The user asked to stop (app control, or Ctrl-C turned into a stop)."""


@dataclass
class RunSpec:
    """What distinguishes one run of a sweep."""

    run_id: str  # e.g. "bs60"
    batch_size: int
    lr: float
    momentum: float
    split_chunks: int = 1  # 1 = plain SGD step; k > 1 = one forward, k backward+step
    split_method: str = "vectorized"
    seed: int = 0  # initial weights and sample order
    optim: OptimConfig | None = None  # this run's optimizer settings; None = the config's [optim]
    variant: str = ""  # the [[variants]] name it belongs to ("" without variants)

    def as_event(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "split_chunks": self.split_chunks,
            "seed": self.seed,
            "variant": self.variant,
            "optim": self.optim.name if self.optim is not None else "sgd",
        }


def lr_at(base_lr: float, iteration: int, warmup_iters: int) -> float:
    """Linear warm-up from base_lr / warmup_iters to base_lr over warmup_iters iterations."""
    if warmup_iters <= 0 or iteration >= warmup_iters:
        return base_lr
    return base_lr * (iteration + 1) / warmup_iters


def is_oom(exc: BaseException) -> bool:
    """True for CUDA (or host) out-of-memory errors."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()
    )


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 5000) -> tuple[float, float]:
    """Mean test NLL and accuracy; restores the model's training mode."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    for i in range(0, x.shape[0], batch):
        out = model(x[i : i + batch])
        loss_sum += F.nll_loss(out, y[i : i + batch], reduction="sum")
        correct += (out.argmax(1) == y[i : i + batch]).sum()
    model.train(was_training)
    n = max(1, x.shape[0])
    return loss_sum.item() / n, correct.item() / n


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
    best_test_acc: float | None = None
    target: dict[str, Any] | None = None
    loss_diff_stds: list[float | None] = field(default_factory=list)
    grad_cosines: list[float | None] = field(default_factory=list)
    b_simple: float | None = None


class Run:
    """A batch size being trained; `advance` trains a slice, `finish` ends it."""

    def __init__(
        self,
        spec: RunSpec,
        cfg: Config,
        dataset: Dataset,
        device: torch.device,
        emitter: Emitter,
        test_xy: tuple[torch.Tensor, torch.Tensor],
        controls: Controls | None = None,
        step_fn: Callable[..., torch.Tensor] | None = None,
    ) -> None:
        self.spec = spec
        self.cfg = cfg
        self.device = device
        self.emitter = emitter
        self.controls = controls
        self.test_x, self.test_y = test_xy
        self.status: str | None = None  # None while running
        self.reason = ""
        self.totals = RunTotals()
        self.split_chunks = spec.split_chunks
        self._step_override = step_fn
        self._seen_version = -1  # apply the controls' state before the first iteration
        self._pending: list[torch.Tensor] = []
        self._pending_first = 0
        self._epoch_loss_sum = 0.0
        self._epoch_loss_n = 0
        self._epoch_iter = 0
        self._epoch_samples = 0
        self._iterator = None
        self._epoch = 0  # completed epochs
        # Called at each epoch end, outside the timers (the sweep saves a checkpoint there).
        self.on_epoch_end: Callable[[Run], None] | None = None

        self.dataset = dataset
        self.model: torch.nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.batches = None
        self.graph: GraphStep | None = None
        self.probes: Probes | None = None
        self.fast_path = "eager"
        self.fast_path_reason = ""  # why a run that could use CUDA graphs runs eagerly
        # The spec's momentum wins (a sweep point), the rest comes from the run's [optim] settings.
        self.optim_cfg = dataclasses.replace(spec.optim or cfg.optim, momentum=spec.momentum)
        # Gradient accumulation only for batches larger than a micro-batch (0 = off for this run).
        self.micro_batch = cfg.sweep.micro_batch if 0 < cfg.sweep.micro_batch < spec.batch_size else 0
        self._autocast = False
        self._epoch_values: list[float] = []
        self.iters_per_epoch = 0
        self.warmup_iters = 0
        self.wall = WallClock(device)
        self.compute = ComputeTimer(device)

    def _prepare(self) -> None:
        """Allocate the model, optimizer and data on the device (may run out of memory)."""
        # Same initial weights for every batch size (per seed): the comparison is about the batch.
        torch.manual_seed(self.spec.seed)
        perf = self.cfg.perf
        self.model = build_model(self.cfg.model.name).to(self.device)
        self.model.train()
        self.optimizer = build_optimizer(self.optim_cfg, self.model.parameters(), self.spec.lr)
        self.batches = make_batches(self.cfg.data, self.dataset.train, self.spec.batch_size, self.device, self.spec.seed)
        self.iters_per_epoch = self.batches.iters_per_epoch
        if (ctx := distributed.current()) is not None:  # torchrun: this rank's slice of every global batch
            self.batches, self._step_override = distributed.shard(ctx, self.model, self.batches,
                                                                  self.cfg.sweep.micro_batch)
        self.warmup_iters = round(self.optim_cfg.warmup_epochs * self.iters_per_epoch)
        self.fast_path = resolve_fast_path(perf.fast_path, self.device, self.cfg.data.pipeline)
        if self.fast_path == "cuda_graph" and (reason := self._eager_reason()):
            self.fast_path, self.fast_path_reason = "eager", reason
        if self.fast_path == "cuda_graph" and self._step_override is None:
            self.graph = GraphStep(
                self.model, self.optimizer, self.batches.images, self.batches.labels, self.spec.batch_size,
                split_chunks=self.split_chunks, split_method=self.spec.split_method,
                precision=perf.precision, channels_last=perf.channels_last,
            )
        elif perf.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self._autocast = perf.precision == "bf16"
        # With micro-batches the probes see the first micro-batch only: the whole batch may not fit.
        self.probes = Probes(self.cfg.gns, self.micro_batch or self.spec.batch_size, self.iters_per_epoch)

    # -- public -------------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self.spec.run_id

    @property
    def finished(self) -> bool:
        return self.status is not None

    @property
    def iteration(self) -> int:
        return self.totals.iters

    def start(self, restore: Callable[[Run], None] | None = None) -> None:
        """Allocate the run and announce it; a run whose data or model does not fit ends as oom.

        With `restore` (a resumed sweep), the prepared run is put back at its checkpoint; its
        run_started then says `resumed_from_epoch` (the device and fast path may differ from before).
        """
        oom: BaseException | None = None
        try:
            self._prepare()
            if restore is not None:
                restore(self)
        except Exception as exc:  # noqa: BLE001
            if not is_oom(exc):
                raise
            oom = exc
        self.emitter.emit(
            "run_started",
            run=self.run_id,
            batch_size=self.spec.batch_size,
            lr=self.spec.lr,
            momentum=self.spec.momentum,
            split_chunks=self.split_chunks,
            split_method=self.spec.split_method,
            iters_per_epoch=self.iters_per_epoch,
            epochs=self.cfg.sweep.epochs,
            warmup_iters=self.warmup_iters,
            device=str(self.device),
            seed=self.spec.seed,
            fast_path=self.fast_path,
            fast_path_reason=self.fast_path_reason,
            micro_batch=self.micro_batch,
            variant=self.spec.variant,
            optim=self.optim_cfg.name,
            precision=self.cfg.perf.precision,
            gns_interval=self.probes.interval if self.probes else 0,
            gns_chunks=self.probes.chunks if self.probes else 0,
            **({"resumed_from_epoch": self._epoch} if restore is not None else {}),
        )
        if oom is not None:
            self.finish("oom", self._oom_reason(oom))
        elif self._epoch >= self.cfg.sweep.epochs:  # restored after its last epoch's checkpoint
            self.finish("done")

    def advance(self, samples: int) -> None:
        """Train about `samples` samples (whole batches, at least one), crossing epochs as needed.

        Ends the run (status diverged/oom/failed/done) on its own; raises StopRequested
        when the user stops the sweep (the sweep ends every run as stopped).
        """
        if self.finished:
            return
        iters_left = max(1, math.ceil(samples / self.spec.batch_size))
        try:
            while iters_left > 0 and not self.finished:
                done = self._train_iters(iters_left)
                iters_left -= done
                if self._iterator is None and not self.finished:
                    self._end_epoch()
        except (StopRequested, RunDirWriteError):  # the whole sweep ends, not just this run
            self._stop_clocks()
            self._flush_losses()
            raise
        except Exception as exc:  # noqa: BLE001 - a run's failure must not end the sweep
            self._stop_clocks()
            if is_oom(exc):
                self._free()
                self.finish("oom", self._oom_reason(exc))
            else:
                self.finish("failed", f"{type(exc).__name__}: {exc}", traceback.format_exc())

    def finish(self, status: str, reason: str = "", trace: str = "") -> None:
        """End the run: emit run_finished with its summary (once)."""
        if self.finished:
            return
        self.wall.stop()
        if self._pending:  # losses of the last block (a stop or Ctrl-C mid-block)
            self._flush_losses()
            if self.finished:
                return
        self.status = status
        self.reason = reason
        fields: dict[str, Any] = {"status": status, "reason": reason, "summary": self.summary()}
        if trace:
            fields["traceback"] = trace
        self.emitter.emit("run_finished", run=self.run_id, **fields)
        self._free()

    def summary(self) -> dict[str, Any]:
        """One row of summary.csv (DESIGN.md)."""
        t = self.totals
        target = t.target or {}
        return {
            "run": self.run_id,
            "batch_size": self.spec.batch_size,
            "lr": self.spec.lr,
            "split_chunks": self.split_chunks,
            "status": self.status or "running",
            "epochs": t.epochs,
            "best_test_acc": t.best_test_acc,
            "time_to_target_s": target.get("wall_s"),
            "compute_to_target_s": target.get("compute_s"),
            "iters_to_target": target.get("iter"),
            "samples_per_s": (t.samples / t.wall_s) if t.wall_s > 0 else None,
            "mean_epoch_wall_s": _mean(t.epoch_walls),
            "mean_epoch_compute_s": _mean(t.epoch_computes),
            "seed": self.spec.seed,
            "samples_to_target": target.get("samples"),
            "loss_diff_std": _mean([v for v in t.loss_diff_stds if v is not None and math.isfinite(v)]),
            "grad_cos": _mean([v for v in t.grad_cosines if v is not None]),
            "b_simple": t.b_simple,
            "variant": self.spec.variant,
            "optim": self.optim_cfg.name,
            "micro_batch": self.micro_batch,
        }

    # -- the hot loop ----------------------------------------------------------------------

    def _train_iters(self, max_iters: int) -> int:
        """Up to max_iters iterations of the current epoch; returns how many were done."""
        self.wall.start()
        if self._iterator is None:
            if self.graph is not None:  # the graph gathers the batch itself, from indices
                perm = self.batches.epoch_indices(self._epoch)
                self._iterator = index_batches(perm, self.spec.batch_size)
            else:
                self._iterator = iter(self.batches.batches(self._epoch))
        spec = self.spec
        opt = self.optimizer
        controls = self.controls
        probes = self.probes if self.probes is not None and self.probes.enabled else None
        graph = self.graph
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
                it = self.totals.iters
                if self.warmup_iters:
                    lr = lr_at(spec.lr, it, self.warmup_iters)
                    for group in opt.param_groups:
                        group["lr"] = lr
                probing = probes is not None and probes.due(it)
                if probing:
                    self._probe(item)
                self.compute.begin()
                if graph is not None:
                    loss = graph.step(item)
                    n = item.shape[0]
                else:
                    loss = self._eager_step(*item)
                    # Under torchrun the item is this rank's slice: count the global batch (ShardedBatches).
                    n = getattr(self.batches, "global_n", 0) or item[0].shape[0]
                self.compute.end()
                if probes is not None and (probing or probes.wants_grads):
                    probes.after_step(self._last_grads(), probing)
                if not self._pending:
                    self._pending_first = it
                self._pending.append(loss)
                self.totals.iters += 1
                self.totals.samples += n
                self._epoch_iter += 1
                self._epoch_samples += n
                done += 1
                if len(self._pending) >= LOSS_BLOCK:
                    self._pause_clocks_and_flush()
                    if self.finished:
                        return done
        finally:
            self.wall.stop()
        self._flush_losses()
        return done

    def _eager_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The plain or split-backward step (module-level functions, so tests can swap them)."""
        if self.cfg.perf.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self._autocast):
            if self._step_override is not None:
                return self._step_override(self.model, self.optimizer, x, y)
            if self.micro_batch and x.shape[0] > self.micro_batch:  # a batch too big for one pass
                if self.split_chunks > 1 and x.shape[0] % self.split_chunks == 0:
                    return split_accumulate_step(self.model, self.optimizer, x, y, self.split_chunks, self.micro_batch)
                return accumulate_step(self.model, self.optimizer, x, y, self.micro_batch)
            if self.split_chunks > 1 and x.shape[0] % self.split_chunks == 0:
                return split_step(self.model, self.optimizer, x, y, self.split_chunks, self.spec.split_method)
            return plain_step(self.model, self.optimizer, x, y)

    def _probe(self, item: Any) -> None:
        """Noise-scale estimate on this batch before its step, outside both timers."""
        self.wall.stop()
        x, y = self.graph.gather(item) if self.graph is not None else item
        if self.micro_batch:
            x, y = x[: self.micro_batch], y[: self.micro_batch]
        self.probes.before_step(self.model, x, y)
        self.wall.start()

    def _last_grads(self) -> list[torch.Tensor]:
        """The gradient of the step just taken (the last chunk's, in split mode)."""
        if self.graph is not None:
            return self.graph.last_grads()
        return [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.model.parameters()]

    def _pause_clocks_and_flush(self) -> None:
        self.wall.stop()
        self._flush_losses()
        if not self.finished:
            self.wall.start()

    def _flush_losses(self) -> None:
        """Copy pending losses to the host (one sync), emit them, check for divergence."""
        if not self._pending:
            return
        values = torch.stack(self._pending).float().tolist()
        # That copy synchronised: fold the block's CUDA-event intervals now, so the event pool stays
        # one block long instead of growing to an epoch (60,000 pairs at batch 1).
        self.compute.collect()
        first = self._pending_first
        self._pending = []
        bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
        good = values if bad is None else values[:bad]
        if good:
            self.emitter.emit("losses", run=self.run_id, first_iter=first, values=good)
            self._epoch_loss_sum += sum(good)
            self._epoch_loss_n += len(good)
            self._epoch_values.extend(good)
        if bad is not None:
            self.compute.collect()
            self.finish(
                "diverged",
                f"loss became {values[bad]} at iteration {first + bad} (epoch {self._epoch + 1}); "
                f"lr {self.spec.lr:g} is too large for batch size {self.spec.batch_size}: "
                "try a smaller optim.lr or lr_scaling",
            )

    # -- epoch bookkeeping -------------------------------------------------------------------

    def _end_epoch(self) -> None:
        self._flush_losses()
        if self.finished:
            return
        wall = self.wall.take()
        compute = self.compute.take()
        # CUDA-event sums can exceed a short host interval by timer granularity; keep data >= 0.
        compute = min(compute, wall)
        t = self.totals
        self._epoch += 1
        t.epochs = self._epoch
        t.wall_s += wall
        t.compute_s += compute
        t.epoch_walls.append(wall)
        t.epoch_computes.append(compute)
        test_loss, test_acc = evaluate(self.model, self.test_x, self.test_y)
        if t.best_test_acc is None or test_acc > t.best_test_acc:
            t.best_test_acc = test_acc
        train_loss = self._epoch_loss_sum / self._epoch_loss_n if self._epoch_loss_n else None
        osc = loss_diff_std(self._epoch_values) if len(self._epoch_values) > 1 else None
        probe_figures = self.probes.epoch_figures() if self.probes is not None else {}
        self._epoch_values = []
        t.loss_diff_stds.append(osc)
        t.grad_cosines.append(probe_figures.get("grad_cos"))
        t.b_simple = probe_figures.get("b_simple")
        self.emitter.emit(
            "epoch_end",
            run=self.run_id,
            epoch=self._epoch,
            iters=self._epoch_iter,
            samples=self._epoch_samples,
            wall_s=wall,
            compute_s=compute,
            data_s=wall - compute,
            train_loss=train_loss,
            test_loss=test_loss,
            test_acc=test_acc,
            samples_per_s=self._epoch_samples / wall if wall > 0 else None,
            lr=self.optimizer.param_groups[0]["lr"],
            total_iters=t.iters,
            total_samples=t.samples,
            loss_diff_std=osc,
            split_chunks=self.split_chunks,
            **probe_figures,
        )
        self._epoch_loss_sum, self._epoch_loss_n = 0.0, 0
        self._epoch_iter = self._epoch_samples = 0
        if t.target is None and test_acc >= self.cfg.sweep.target_accuracy:
            t.target = {
                "epoch": self._epoch,
                "iter": t.iters,
                "samples": t.samples,
                "wall_s": t.wall_s,
                "compute_s": t.compute_s,
                "test_acc": test_acc,
            }
            self.emitter.emit("target_reached", run=self.run_id, **t.target)
        if self.on_epoch_end is not None:
            self.on_epoch_end(self)
        if self._epoch >= self.cfg.sweep.epochs:
            self.finish("done")

    # -- controls, faults ---------------------------------------------------------------------

    def _obey(self, controls: Controls) -> None:
        self._seen_version = controls.version
        if controls.stop:
            raise StopRequested()
        if controls.split_chunks and controls.split_chunks != self.split_chunks:
            k = controls.split_chunks
            fields: dict[str, Any] = {"iter": self.totals.iters}
            if k > 1 and self.spec.batch_size % k != 0:
                fields["reason"] = f"{k} chunks do not divide batch size {self.spec.batch_size}"
                k = 1
            if k != self.split_chunks:
                self.split_chunks = k
                if self.graph is not None:
                    self.graph.set_split(k)
                fields["split_chunks"] = k
                fields["effective_lr"] = self.spec.lr * k
                self.emitter.emit("mode_changed", run=self.run_id, **fields)
            elif "reason" in fields:
                self.emitter.emit("mode_changed", run=self.run_id, split_chunks=k, **fields)
        if controls.paused:
            self.wall.stop()
            self._flush_losses()  # the app shows everything trained before the pause
            if self.finished:  # those losses held a NaN: the run diverged
                return
            self.emitter.emit("paused", paused=True, run_waiting=self.run_id, iter=self.totals.iters)
            controls.wait_while_paused()
            self.emitter.emit("paused", paused=False, run_waiting=self.run_id, iter=self.totals.iters)
            if controls.stop:
                raise StopRequested()
            self.wall.start()

    def _eager_reason(self) -> str:
        """Why this run cannot replay a CUDA graph ("" if it can): the graph reproduces plain SGD steps."""
        if distributed.current() is not None:
            return "torchrun: data parallel steps run eagerly (DistributedDataParallel)"
        if self.optim_cfg.name != "sgd":
            return f'optim.name = "{self.optim_cfg.name}": the CUDA graph reproduces SGD only'
        if self.micro_batch:
            return f"sweep.micro_batch = {self.micro_batch}: gradient accumulation runs eagerly"
        return ""

    def _stop_clocks(self) -> None:
        self.wall.stop()

    def _oom_reason(self, exc: BaseException) -> str:
        where = "GPU" if self.device.type == "cuda" else "host"
        # Gradient accumulation gives the same step with less memory: suggest a micro-batch
        # a quarter the size of what did not fit (issue 7).
        micro = suggest_micro_batch(self.spec.batch_size, self.micro_batch or self.spec.batch_size)
        accumulate = (
            f"sweep.micro_batch = {micro} (the same step from micro-batches that fit), " if micro else ""
        )
        return (
            f"batch size {self.spec.batch_size} does not fit in {where} memory ({type(exc).__name__}); "
            f"try {accumulate}a smaller batch size, or data.pipeline = \"dataloader\" to keep the dataset off the device"
        )

    def _free(self) -> None:
        """Drop the run's tensors so the rest of the sweep has the memory."""
        self._pending = []
        self._iterator = None
        self.model = self.optimizer = self.batches = self.graph = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
