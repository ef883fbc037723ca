"""Data parallel training under torchrun, with PyTorch's own engine:
`torchrun --nproc-per-node N -m trainer run [CONFIG] ...` trains every run of the sweep with
DistributedDataParallel across N processes (one GPU each, or CPU processes with gloo).

How a run stays the single-process run:
- Every rank makes the same epoch order (same seed) and takes its contiguous slice of each global
  batch's index set (`rank_slice`: sizes differ by at most one), so the ranks together see exactly
  the samples one process would, in the same global batches.
- Each rank's loss is its samples' NLL sum / global batch size * world size; DDP averages the
  gradients over the ranks, which gives the global batch's mean-loss gradient even when the slices
  are unequal (a partial last batch, a batch the world size does not divide). Every rank then makes
  the same optimizer step (SGD, LARS or LAMB: LARS/LAMB norms are taken on the averaged gradient).
- The reported per-iteration loss is the all-reduced global mean (no host sync on NCCL).
- `sweep.micro_batch` applies to each rank's slice (micro-batches under DDP's no_sync, one
  all-reduce per step).

The context (`DistContext`) is made once by the entry point (`init_from_env`) and handed down to
the sweep and each run's step; nothing below reads process-global torchrun state.
Rank 0 writes the run directory and prints; the other ranks emit nothing (trainer.cli.main). Not supported under
torchrun (refused before training): split-backward (its k optimizer steps per batch would each need
the chunk's gradient across ranks) and resuming. The CUDA-graph fast path is not used. The
gradient-noise-scale probes see only a rank's slice and so give no estimate. A rank that runs out of
memory alone leaves the others waiting: give each rank the same GPU model and memory.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from trainer.config import Config
from trainer.data.pipelines import LoaderBatches, ResidentBatches
from trainer.engine.accumulate import accumulate_gradients

# Long enough for rank 0 to generate or download a dataset while the others wait at a barrier.
TIMEOUT = datetime.timedelta(minutes=30)


class DistributedError(Exception):
    """torchrun asked for something this trainer cannot do data parallel (a user error: exit 2)."""


@dataclass
class DistContext:
    """This process's place in the torchrun job."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def agree(self, ok: bool) -> bool:
        """Every rank says whether it can go on; True only if all can (a collective: all ranks call it)."""
        flag = torch.tensor([1 if ok else 0], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())


def world_size_from_env() -> int:
    """WORLD_SIZE as torchrun sets it (1 when not under torchrun)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def check_config(cfg: Config, world_size: int) -> list[str]:
    """What in `cfg` cannot run data parallel over `world_size` processes (empty: all can)."""
    problems = []
    split = [f'variant "{v.name}"' for v in cfg.variants if v.split_backward.enabled]
    if cfg.split_backward.enabled and not cfg.variants:
        split.append("split_backward.enabled")
    if split:
        problems.append(
            f"split-backward ({', '.join(split)}) cannot run under torchrun: its k optimizer steps per batch "
            "would each need a gradient averaged across the processes; run it in one process, or disable it"
        )
    small = [b for b in cfg.sweep.batch_sizes if b < world_size]
    if small:
        problems.append(
            f"batch size{'s' if len(small) > 1 else ''} {', '.join(map(str, small))} smaller than the "
            f"{world_size} torchrun processes: every process needs a sample of each batch; use "
            f"--nproc-per-node {min(small)} or fewer, or drop {'them' if len(small) > 1 else 'it'}"
        )
    return problems


def init_from_env(cfg: Config) -> DistContext | None:
    """Under torchrun (WORLD_SIZE > 1): check the config, pick this rank's device and join the
    process group (NCCL on CUDA, gloo on CPU). None when this is a single process.

    Raises DistributedError, before joining, for configs that cannot run data parallel; every rank
    raises the same, so no rank is left waiting.
    """
    world = world_size_from_env()
    if world <= 1:
        return None
    problems = check_config(cfg, world)
    if problems:
        raise DistributedError("\n".join(problems))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    setting = cfg.sweep.device
    use_cuda = setting.startswith("cuda") or (setting == "auto" and torch.cuda.is_available())
    if use_cuda:
        if not torch.cuda.is_available():
            raise DistributedError(f"sweep.device = {setting!r} but no CUDA GPU is visible; use --device cpu")
        if local_rank >= torch.cuda.device_count():
            raise DistributedError(
                f"torchrun started more processes on this machine than it has GPUs ({torch.cuda.device_count()}); "
                "use --nproc-per-node <= the number of GPUs"
            )
        # Each process owns one GPU: cuda:LOCAL_RANK (an index in sweep.device is ignored here).
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    dist.init_process_group(
        "nccl" if use_cuda else "gloo", timeout=TIMEOUT, **({"device_id": device} if use_cuda else {})
    )
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=device)


def shutdown() -> None:
    """Leave the process group, if this process joined one (at the end of the sweep, on every rank)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_slice(n: int, world_size: int, rank: int) -> slice:
    """Rank `rank`'s contiguous part of a global batch of n samples (sizes differ by at most one)."""
    return slice(rank * n // world_size, (rank + 1) * n // world_size)


class ShardedBatches:
    """A run's batches as one rank sees them: its slice of every global batch, in the same order.

    `global_n` is the size of the global batch whose slice was yielded last (the step scales its
    loss by it). Works over both pipelines; the dataloader one decodes only this rank's samples.
    """

    def __init__(self, inner: ResidentBatches | LoaderBatches, world_size: int, rank: int) -> None:
        self.inner = inner
        self.world_size, self.rank = world_size, rank
        self.n, self.batch_size, self.device = inner.n, inner.batch_size, inner.device
        self.input_shape = inner.input_shape
        self.global_n = 0
        self._loader = None
        if isinstance(inner, LoaderBatches):
            self._loader = DataLoader(
                inner.loader.dataset,
                batch_sampler=_RankBatchSampler(inner.sampler, inner.batch_size, world_size, rank),
                num_workers=inner.loader.num_workers,
                pin_memory=inner.pinned,
                persistent_workers=inner.loader.num_workers > 0,
            )

    @property
    def iters_per_epoch(self) -> int:
        return self.inner.iters_per_epoch

    def epoch_indices(self, epoch: int) -> torch.Tensor:
        return self.inner.epoch_indices(epoch)

    def _sizes(self) -> Iterator[tuple[int, slice]]:
        for start in range(0, self.n, self.batch_size):
            n = min(self.batch_size, self.n - start)
            yield n, rank_slice(n, self.world_size, self.rank)

    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(x, y) of this rank's slice of each global batch of `epoch`."""
        if self._loader is None:
            perm = self.inner.epoch_indices(epoch)
            for i, (n, part) in enumerate(self._sizes()):
                idx = perm[i * self.batch_size : i * self.batch_size + n][part]
                self.global_n = n
                yield self.inner.images[idx], self.inner.labels[idx]
            return
        self.inner.sampler.epoch = epoch
        loaded = iter(self._loader)
        pinned = self.inner.pinned
        for n, part in self._sizes():
            self.global_n = n
            if part.stop == part.start:  # a last batch smaller than the world: nothing for this rank
                yield (
                    torch.empty(0, *self.input_shape, device=self.device),
                    torch.empty(0, dtype=torch.long, device=self.device),
                )
                continue
            x, y = next(loaded)
            yield x.to(self.device, non_blocking=pinned), y.to(self.device, non_blocking=pinned)


class _RankBatchSampler(torch.utils.data.Sampler):
    """Index lists of this rank's slice of each global batch of the epoch order (empty ones skipped)."""

    def __init__(
        self, sampler: torch.utils.data.Sampler, batch_size: int, world_size: int, rank: int
    ) -> None:
        self.sampler, self.batch_size, self.world_size, self.rank = sampler, batch_size, world_size, rank

    def __iter__(self) -> Iterator[list[int]]:
        order = list(iter(self.sampler))
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            mine = batch[rank_slice(len(batch), self.world_size, self.rank)]
            if mine:
                yield mine

    def __len__(self) -> int:
        n = len(self.sampler)
        parts = (
            rank_slice(min(self.batch_size, n - s), self.world_size, self.rank)
            for s in range(0, n, self.batch_size)
        )
        return sum(1 for part in parts if part.stop > part.start)


class DDPStep:
    """One data parallel training step of this rank (trainer.engine.steps.DataParallelStep calls it):
    (model, optimizer, x, y) -> the global batch's mean loss (a detached device scalar)."""

    def __init__(self, model: nn.Module, ctx: DistContext, batches: ShardedBatches, micro_batch: int) -> None:
        self.ddp = DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None
        )
        self.world_size = ctx.world_size
        self.batches = batches
        self.micro_batch = micro_batch

    def __call__(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        n = self.batches.global_n
        optimizer.zero_grad(set_to_none=True)
        # sum / n * world per rank; DDP's average over ranks makes it the global mean-loss gradient.
        share = accumulate_gradients(
            self.ddp, x, y, self.micro_batch, total=n, scale=self.world_size, no_sync=self.ddp.no_sync
        )
        optimizer.step()
        dist.all_reduce(share)  # the ranks' shares add up to the global batch's mean loss
        return share


def main_ready(ctx: DistContext, ok: bool) -> bool:
    """Rank 0: tell the other ranks whether it could start (dataset, run directory), then learn whether
    they could load the dataset after it. True when every rank is ready to train."""
    return ctx.agree(ok) and ctx.agree(True)


def shard(
    ctx: DistContext, model: nn.Module, batches: ResidentBatches | LoaderBatches, micro_batch: int
) -> tuple[ShardedBatches, DDPStep]:
    """This rank's view of a run: its slices of the batches, and the DDP step over `model`."""
    sharded = ShardedBatches(batches, ctx.world_size, ctx.rank)
    return sharded, DDPStep(model, ctx, sharded, micro_batch)
