"""What a run trains with on its device (`RunParts`), chosen for its batch size: the model and optimizer,
the data order's batches and the step chosen for them (trainer.engine.steps), the probes, the CPU threads,
the warm-up and the epoch's step inputs. A run (trainer.engine.run) owns one; its group (trainer.engine.group)
reads the step inputs and warms up, probes and steps through it. When the batch size changes mid-run
(`rebatch`) the batches, step and probes are chosen again around the same model and optimizer.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch

from trainer.data.datasets import Dataset
from trainer.data.pipelines import make_batches
from trainer.engine.ddp import DistContext
from trainer.engine.state import model_and_optimizer, run_micro_batch, run_optim
from trainer.engine.steps import Step, batch_norm_note, choose_step, split_request
from trainer.engine.stops import STOP_INSIDE_MIN_BATCH, stop_inside_steps
from trainer.engine.threads import cpu_threads
from trainer.measure.probes import Probes
from trainer.models.optim import lr_at
from trainer.plan import RunSettings, RunSpec
from trainer.runlog import Emitter, EventType
from trainer.runlog.controls import Controls


class RunParts:
    """A run's device-side parts (see the module's docstring); `allocate` makes them."""

    def __init__(
        self,
        spec: RunSpec,
        settings: RunSettings,
        dataset: Dataset,
        device: torch.device,
        emitter: Emitter,
        controls: Controls | None,
        ddp: DistContext | None,
    ) -> None:
        self.spec, self.settings, self.dataset, self.device = spec, settings, dataset, device
        self.emitter, self.controls, self.ddp = emitter, controls, ddp
        self.optim_cfg = run_optim(spec, settings)
        self.batch_size = spec.batch_size  # the batch the step trains on (rebatch may set another)
        self.micro_batch = run_micro_batch(spec, settings)
        self.lr = spec.lr  # the lr the warm-up climbs to (rebatch may set another)
        # CPU threads by the work of one step (trainer.engine.threads; perf.cpu_threads overrides); 0 on a GPU.
        self.cpu_threads = self.own_threads()
        self.model: torch.nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.step: Step | None = None
        self.probes: Probes | None = None
        self.fast_path, self.fast_path_reason = "eager", ""  # the reason: why it does not replay a graph
        self.batch_norm = ""  # what the run does with the model's batch norm ("" without)
        self.iters_per_epoch = self.warmup_iters = 0
        self._items: Iterator[Any] | None = None  # the epoch's step inputs (None: between epochs)
        self._stop_hooks: list[Any] = []

    def own_threads(self) -> int:
        """CPU threads for this run's steps trained alone (0 on a GPU: torch's own)."""
        if self.device.type != "cpu":
            return 0
        return cpu_threads(self.batch_size, self.micro_batch, self.settings.perf.cpu_threads)

    def allocate(self, split_chunks: int) -> None:
        """The model (the same initial weights for every batch size, per seed), optimizer, batches, step
        and probes, on the device (may run out of memory)."""
        torch.manual_seed(self.spec.seed)
        self.model, self.optimizer = model_and_optimizer(
            self.spec, self.settings, self.optim_cfg, self.device
        )
        self._choose(self.batch_size, split_chunks)

    def _choose(self, batch_size: int, split_chunks: int) -> None:
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
            split_chunks=split_chunks,
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

    def rebatch(self, batch_size: int, lr: float | None, split_chunks: int, epoch: int, start: int) -> int:
        """Step on at `batch_size` (a batch-size schedule) from sample `start` of `epoch` (0: from the next
        epoch) in the same data order; returns the split-backward chunks the new batch takes (1 where the old
        ones do not divide it). The step is chosen for the new batch as at the start (split-backward,
        gradient accumulation, CUDA graph); the model and the optimizer's state are carried; with `lr`, the
        lr from here on, and either way a warm-up in progress ends. The in-batch noise-scale probes start
        again for the new batch; the batch-independent noise probe carries on."""
        if self.ddp is not None:
            raise ValueError("torchrun: a data parallel run's batch size cannot change")
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        micro = self.settings.micro_batch
        self.micro_batch = micro if 0 < micro < batch_size else 0
        self.cpu_threads = self.own_threads()
        split_chunks, _ = split_request(batch_size, split_chunks)
        if lr is not None:
            self.lr = lr
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        noise = self.probes.noise if self.probes is not None else None
        self._choose(batch_size, split_chunks)
        self.warmup_iters = 0
        self.probes.noise = noise
        self._items = self.step.items(epoch, start) if start else None
        return split_chunks

    def next_item(self, epoch: int) -> Any:
        """The next step input of `epoch` (its first starts the epoch's order); None when the epoch's
        batches are all trained (`epoch_over` then, until the next call starts the next epoch)."""
        if self._items is None:
            self._items = self.step.items(epoch)
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
        """The warm-up's lr for `iteration` (trainer.models.optim.lr_at) in the optimizer, which the run's
        own steps and its epoch's figures read; nothing to do past the warm-up."""
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

    def free(self) -> None:
        """Drop the tensors so the rest of the sweep has the memory."""
        self._items = None
        self.model = self.optimizer = self.step = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
