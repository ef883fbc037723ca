"""Gradient accumulation: one optimizer step on a batch too big for memory, taken from
micro-batches that fit.

A batch of n samples is cut into consecutive micro-batches of at most `micro_batch` samples; each
micro-batch's mean loss is scaled by its share n_i / n before its backward pass, so the gradients
summed in `.grad` are exactly the gradient of the whole batch's mean loss, and ONE optimizer step
follows. Memory holds one micro-batch's activations at a time; the cost is k smaller passes instead
of one big one. The result equals the unsplit step up to float rounding (tests check this with any
optimizer; SGD and LAMB are tested).

`accumulate_gradients` also takes a `total` and `scale` other than the batch's own, and a
`no_sync` context, so data parallel ranks (trainer.engine.ddp) reuse it on their slice of a
global batch. Losses stay on the device (no host sync).
"""

from __future__ import annotations

import contextlib
from typing import Callable, ContextManager

import torch
import torch.nn.functional as F
from torch import nn

from trainer.engine.split import apply_chunk_steps


def micro_slices(n: int, micro_batch: int) -> list[slice]:
    """Consecutive slices of at most micro_batch samples covering range(n) (one slice when off or n <= micro_batch)."""
    if micro_batch < 0:
        raise ValueError(f"micro_batch must be >= 0 (0 = off), got {micro_batch}")
    if micro_batch == 0 or n <= micro_batch:
        return [slice(0, n)]
    return [slice(i, min(i + micro_batch, n)) for i in range(0, n, micro_batch)]


def accumulate_gradients(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    micro_batch: int,
    *,
    total: int | None = None,
    scale: float = 1.0,
    no_sync: Callable[[], ContextManager[None]] | None = None,
) -> torch.Tensor:
    """Add to each parameter's .grad the gradient of scale * (sum of the samples' NLL) / total.

    total defaults to the batch's own size, making it the gradient of the batch's mean loss.
    Micro-batches run one after another; all but the last run inside `no_sync()` when given
    (DistributedDataParallel: gradients are averaged across ranks once, on the last backward).
    Returns the summed loss / total (without `scale`) as a detached device scalar.
    """
    n = x.shape[0]
    total = n if total is None else total
    if total < 1:
        raise ValueError(f"total must be >= 1, got {total}")
    parts = micro_slices(n, micro_batch)
    loss_sum: torch.Tensor | None = None
    for i, part in enumerate(parts):
        share = (part.stop - part.start) / total
        sync = no_sync() if no_sync is not None and i < len(parts) - 1 else contextlib.nullcontext()
        with sync:
            # Each micro-batch's mean loss weighted by its share: the sum is the batch's mean loss.
            loss = (
                F.nll_loss(model(x[part]), y[part]) * share
                if part.stop > part.start
                else _zero_loss(model, x[part])
            )
            (loss * scale).backward()
        loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
    return loss_sum


def _zero_loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A loss of 0 that still runs the model, so every parameter gets a (zero) gradient.

    A data parallel rank whose slice of a small last batch is empty must still take part in the
    gradient all-reduce; nll_loss of an empty batch would be NaN (a mean over nothing).
    """
    return model(x).sum() * 0.0


def accumulate_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, micro_batch: int
) -> torch.Tensor:
    """One optimizer step on the whole batch, its gradient accumulated over micro-batches.

    Returns the batch's mean loss (detached, on the device), as `trainer.engine.split.plain_step` does.
    """
    optimizer.zero_grad(set_to_none=True)
    loss = accumulate_gradients(model, x, y, micro_batch)
    optimizer.step()
    return loss


def split_accumulate_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    chunks: int,
    micro_batch: int,
) -> torch.Tensor:
    """Split-backward (k steps on k chunk gradients taken at the same parameters, as
    `trainer.engine.split.split_step`) where each chunk's gradient is accumulated over micro-batches.

    For batches whose split-backward forward pass does not fit at once; the chunk gradients are
    kept (k copies of the parameters' size), then k optimizer steps are made in chunk order.
    """
    n = x.shape[0]
    if chunks < 1 or n % chunks:
        raise ValueError(f"split-backward chunks={chunks} does not divide batch size {n}")
    size = n // chunks
    params = [p for p in model.parameters() if p.requires_grad]
    per_chunk: list[list[torch.Tensor]] = []
    losses: list[torch.Tensor] = []
    for i in range(chunks):
        for p in params:
            p.grad = None
        part = slice(i * size, (i + 1) * size)
        losses.append(accumulate_gradients(model, x[part], y[part], micro_batch))
        per_chunk.append([p.grad if p.grad is not None else torch.zeros_like(p) for p in params])
    apply_chunk_steps(model, optimizer, [torch.stack(g) for g in zip(*per_chunk)])
    return torch.stack(losses).mean()


def suggest_micro_batch(batch_size: int, tried: int) -> int:
    """A micro_batch to suggest after `tried` samples at once ran out of memory: the largest divisor
    of batch_size at most a quarter of `tried` (0 when there is none above 1)."""
    target = tried // 4
    best = 0
    d = 1
    while d * d <= batch_size:
        if batch_size % d == 0:
            for c in (d, batch_size // d):
                if 1 < c <= target and c > best:
                    best = c
        d += 1
    return best
