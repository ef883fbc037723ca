"""The training step of one run, chosen once when the run is prepared.

A run trains with one of three kinds of step, each behind the same small surface (`Step`):
- `EagerStep`: the plain, split-backward, gradient-accumulation or split + accumulation step
  (trainer.engine.split, trainer.engine.accumulate) on (x, y) batches. The function for full batches is picked
  when the run starts and again only when the split mode changes; a smaller last batch of an epoch
  gets its own (picked once per size), since chunks or micro-batches may not divide it.
- `GraphedStep`: the CUDA-graph fast path (trainer.engine.cuda_graph.GraphStep) on index batches.
- `DataParallelStep`: this rank's part of a DistributedDataParallel step under torchrun
  (trainer.engine.ddp), with the torchrun context handed in by the caller.

`choose_step` makes the choice from the run's settings; the hot loop then only calls
`step(item)`, which returns the batch's loss (a device tensor: no host sync) and the samples it
counts. The step functions are looked up in this module when called, so tests can replace them.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Protocol

import torch
from torch import nn

from trainer.config import PerfConfig
from trainer.data.pipelines import Batches
from trainer.engine.accumulate import accumulate_step, split_accumulate_step
from trainer.engine.cuda_graph import GraphStep, index_batches, resolve_fast_path
from trainer.engine.ddp import DistContext, ShardedBatches, shard
from trainer.engine.split import plain_step, split_step
from trainer.models.grads import batch_norms

Body = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Step(Protocol):
    """What the hot loop needs of a training step."""

    fast_path: str  # "eager" or "cuda_graph", as run_started reports it

    def items(self, epoch: int, start: int = 0) -> Iterator[Any]:
        """What each iteration of `epoch` is given, from its sample `start` on: a batch, or a graph's
        indices."""

    def __call__(self, item: Any) -> tuple[torch.Tensor, int]:
        """One training step: the batch's mean loss (device tensor) and the samples it counts."""

    def batch(self, item: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The (x, y) an item stands for (the probes look at it before the step)."""

    def last_grads(self) -> list[torch.Tensor]:
        """The gradient of the step just taken (its last chunk's, in split mode)."""

    def set_split(self, chunks: int) -> None:
        """Switch split-backward to `chunks` chunks (1: off) for the following steps."""


def eager_body(
    model: nn.Module, optimizer: torch.optim.Optimizer, n: int, chunks: int, method: str, micro_batch: int
) -> Body:
    """The eager step for batches of n samples: accumulation when n is larger than a micro-batch,
    split-backward when the chunks divide n, else the plain step."""
    if micro_batch and n > micro_batch:  # a batch too big for one pass
        if chunks > 1 and n % chunks == 0:
            return lambda x, y: split_accumulate_step(model, optimizer, x, y, chunks, micro_batch)
        return lambda x, y: accumulate_step(model, optimizer, x, y, micro_batch)
    if chunks > 1 and n % chunks == 0:
        return lambda x, y: split_step(model, optimizer, x, y, chunks, method)
    return lambda x, y: plain_step(model, optimizer, x, y)


def dressed(body: Body, device_type: str, bf16: bool, channels_last: bool) -> Body:
    """`body` under bf16 autocast and with channels-last batches, where the run asks for them."""
    if bf16:
        plain = body

        def body(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            with torch.autocast(device_type, dtype=torch.bfloat16):
                return plain(x, y)

    if channels_last:
        contiguous = body

        def body(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return contiguous(x.contiguous(memory_format=torch.channels_last), y)

    return body


class EagerStep:
    """Plain, split-backward or accumulated steps on the (x, y) batches of `batches`."""

    fast_path = "eager"

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        batches: Batches,
        *,
        batch_size: int,
        split_chunks: int,
        split_method: str,
        micro_batch: int,
        perf: PerfConfig,
        device_type: str,
    ) -> None:
        self.model, self.optimizer, self.batches = model, optimizer, batches
        self.batch_size = batch_size
        self.split_method = split_method
        self.micro_batch = micro_batch
        self._dress = (device_type, perf.precision == "bf16", perf.channels_last)
        self.set_split(split_chunks)

    def set_split(self, chunks: int) -> None:
        self.split_chunks = chunks
        self._bodies: dict[int, Body] = {}
        self._full = self._body(self.batch_size)

    def _body(self, n: int) -> Body:
        body = self._bodies.get(n)
        if body is None:
            raw = eager_body(
                self.model, self.optimizer, n, self.split_chunks, self.split_method, self.micro_batch
            )
            body = self._bodies[n] = dressed(raw, *self._dress)
        return body

    def items(self, epoch: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return iter(self.batches.batches(epoch, start) if start else self.batches.batches(epoch))

    def __call__(self, item: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, int]:
        x, y = item
        n = x.shape[0]
        return (self._full if n == self.batch_size else self._body(n))(x, y), n

    def batch(self, item: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return item

    def last_grads(self) -> list[torch.Tensor]:
        return [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.model.parameters()]


class DataParallelStep(EagerStep):
    """This rank's part of each global batch through DistributedDataParallel (trainer.engine.ddp); the
    samples counted are the global batch's. Split-backward is refused under torchrun before
    anything trains, so the split mode never changes what this step does."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        batches: ShardedBatches,
        ddp_step: Callable[..., torch.Tensor],
        *,
        batch_size: int,
        perf: PerfConfig,
        device_type: str,
    ) -> None:
        self._ddp_body = dressed(
            lambda x, y: ddp_step(model, optimizer, x, y),
            device_type,
            perf.precision == "bf16",
            perf.channels_last,
        )
        super().__init__(
            model,
            optimizer,
            batches,
            batch_size=batch_size,
            split_chunks=1,
            split_method="vectorized",
            micro_batch=0,
            perf=perf,
            device_type=device_type,
        )

    def _body(self, n: int) -> Body:
        return self._ddp_body

    def __call__(self, item: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, int]:
        x, y = item
        return self._ddp_body(x, y), self.batches.global_n


class GraphedStep:
    """The CUDA-graph fast path: the step gathers its batch from the resident data by index."""

    fast_path = "cuda_graph"

    def __init__(self, graph: GraphStep, batches: Batches, batch_size: int) -> None:
        self.graph, self.batches, self.batch_size = graph, batches, batch_size

    @property
    def split_chunks(self) -> int:
        return self.graph.split_chunks

    def set_split(self, chunks: int) -> None:
        self.graph.set_split(chunks)

    def items(self, epoch: int, start: int = 0) -> Iterator[torch.Tensor]:
        return index_batches(self.batches.epoch_indices(epoch)[start:], self.batch_size)

    def __call__(self, idx: torch.Tensor) -> tuple[torch.Tensor, int]:
        return self.graph.step(idx), idx.shape[0]

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.graph.gather(idx)

    def last_grads(self) -> list[torch.Tensor]:
        return self.graph.last_grads()


def split_request(batch_size: int, chunks: int) -> tuple[int, str]:
    """The split-backward chunks a request gives a run of this batch size: `chunks`, or 1 (off) with
    why when they do not divide the batch."""
    if chunks > 1 and batch_size % chunks != 0:
        return 1, f"{chunks} chunks do not divide batch size {batch_size}"
    return chunks, ""


def batch_norm_note(model: nn.Module, *, split_method: str, micro_batch: int, ddp: DistContext | None) -> str:
    """What the run does with the model's batch norm, for run_started; "" without batch norm.

    Every feature keeps working; where batch norm makes one differ from a plain step, this says how."""
    if not batch_norms(model):
        return ""
    if split_method == "vectorized":
        split = (
            "split-backward (vectorized) normalises each chunk with its own statistics and updates the running "
            "statistics by one extra no-grad forward over the whole batch"
        )
    else:
        split = (
            "split-backward (retain_graph) normalises every chunk with the whole batch's statistics (one "
            "forward) and updates the running statistics once per batch"
        )
    parts = [
        "batch norm: training steps (eager and CUDA graph) normalise with the batch's statistics and update "
        "the running statistics that evaluation uses",
        split,
        "the noise probes normalise each chunk with its own statistics and leave the running statistics alone",
    ]
    if micro_batch:
        parts.append(
            f"with micro-batches of {micro_batch}, each micro-batch is normalised with its own statistics and "
            "updates the running statistics"
        )
    if ddp is not None:
        parts.append(
            "under torchrun each process normalises its own slice (no SyncBatchNorm); the first process's "
            "running statistics are the ones evaluated and saved"
        )
    return "; ".join(parts)


def eager_reason(ddp: DistContext | None, optim_name: str, micro_batch: int) -> str:
    """Why a run that could replay a CUDA graph runs eagerly ("" if it can replay one): the graph
    reproduces plain SGD steps of one process."""
    if ddp is not None:
        return "torchrun: data parallel steps run eagerly (DistributedDataParallel)"
    if optim_name != "sgd":
        return f'optim.name = "{optim_name}": the CUDA graph reproduces SGD only'
    if micro_batch:
        return f"sweep.micro_batch = {micro_batch}: gradient accumulation runs eagerly"
    return ""


def choose_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Batches,
    *,
    batch_size: int,
    split_chunks: int,
    split_method: str,
    micro_batch: int,
    optim_name: str,
    perf: PerfConfig,
    pipeline: str,
    device: torch.device,
    ddp: DistContext | None = None,
    on_capture: Callable[[], None] | None = None,
) -> tuple[Step, str]:
    """The step this run trains with, and why it is eager where the fast path was asked for ("" else).

    `on_capture()` is called just before a CUDA graph is captured (seconds of start-up the app shows).
    Under torchrun (`ddp`), the model is wrapped in DistributedDataParallel and the batches become
    this rank's slices. With channels_last the model is converted in place.
    """
    fast_path = resolve_fast_path(perf.fast_path, device, pipeline)
    reason = eager_reason(ddp, optim_name, micro_batch) if fast_path == "cuda_graph" else ""
    if fast_path == "cuda_graph" and not reason and getattr(batches, "augment", None) is not None:
        # The graph gathers its batch by a static index inside the graph; the crops and flips are drawn per
        # batch from a generator the graph would replay frozen, so an augmented run trains eagerly.
        reason = "data.augment = crop_flip draws each batch's crops outside a CUDA graph: it runs eagerly"
    if fast_path == "cuda_graph" and not reason:
        if on_capture is not None:
            on_capture()
        graph = GraphStep(
            model,
            optimizer,
            batches.images,
            batches.labels,
            batch_size,
            split_chunks=split_chunks,
            split_method=split_method,
            precision=perf.precision,
            channels_last=perf.channels_last,
        )
        return GraphedStep(graph, batches, batch_size), ""
    step: Step
    if ddp is not None:  # this rank's slice of every global batch
        sharded, ddp_step = shard(ddp, model, batches, micro_batch)
        step = DataParallelStep(
            model, optimizer, sharded, ddp_step, batch_size=batch_size, perf=perf, device_type=device.type
        )
    else:
        step = EagerStep(
            model,
            optimizer,
            batches,
            batch_size=batch_size,
            split_chunks=split_chunks,
            split_method=split_method,
            micro_batch=micro_batch,
            perf=perf,
            device_type=device.type,
        )
    if perf.channels_last:
        model.to(memory_format=torch.channels_last)
    return step, reason
