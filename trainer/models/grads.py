"""Chunk gradients: k gradients of one batch cut into k chunks, all at the same parameters.

The mechanism under split-backward (trainer.engine.split) and the gradient-noise probes
(trainer.measure): a batch of B samples is cut into k consecutive chunks of B/k and each chunk's
gradient is taken at the same parameters. Two ways:
- "retain_graph": the study's way, k backward passes over the batch's retained graph;
- "vectorized": all k in one batched pass (torch.func), several times faster.

Losses come back as detached device tensors: no `.item()`, so no host sync in the loop.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from trainer.config import SPLIT_METHODS


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The model's batch-norm layers that keep running statistics."""
    return [
        m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]


@contextlib.contextmanager
def running_stats_frozen(model: nn.Module) -> Iterator[None]:
    """Batch norm in training mode that normalises with the batch's own statistics and leaves the running
    statistics alone: what torch.func's vmap needs (an in-place update of an unbatched buffer from a
    batched value is refused), and what a probe needs (it must not change the model)."""
    layers = batch_norms(model)
    for m in layers:
        m.track_running_stats = False  # training: F.batch_norm gets no running stats, uses the batch's
    try:
        yield
    finally:
        for m in layers:
            m.track_running_stats = True


def trainable_params(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


def _check_chunks(batch_size: int, chunks: int) -> int:
    """Chunk size b = B / k, or a ValueError naming both numbers."""
    if not isinstance(chunks, int) or isinstance(chunks, bool) or chunks < 1:
        raise ValueError(f"split-backward chunks must be a whole number >= 1, got {chunks!r}")
    if batch_size % chunks != 0:
        raise ValueError(
            f"split-backward chunks={chunks} does not divide batch size {batch_size}; "
            f"pick chunks that divide every batch size (or a batch size that is a multiple of {chunks})"
        )
    return batch_size // chunks


def _retain_graph_grads(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunks: int, size: int
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    params = [p for _, p in trainable_params(model)]
    per_sample = F.nll_loss(model(x), y, reduction="none")  # one forward over the whole batch
    per_chunk: list[tuple[torch.Tensor, ...]] = []
    for i in range(chunks):
        chunk_loss = per_sample[i * size : (i + 1) * size].mean()
        # Each pass walks the whole batch's graph (zeros flow through the other chunks' samples),
        # which is why this way costs about k full backward passes. The last pass may free it.
        per_chunk.append(torch.autograd.grad(chunk_loss, params, retain_graph=i < chunks - 1))
    grads = [torch.stack(g) for g in zip(*per_chunk)]
    return per_sample.detach().mean(), grads


def _vectorized_grads(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunks: int, size: int
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    # Why torch.func and not autograd.grad(per_sample, params, grad_outputs=<[k, B] chunk mask>,
    # is_grads_batched=True): the masked version vmaps k backward passes that each still span the
    # whole batch (mostly zeros), so it does k times the work of one backward; on a 2-core CPU it was
    # ~1.5-2.5x *slower* than retain_graph. vmap over chunks of grad(functional_call) gives each chunk
    # a backward over its own B/k samples only: one batched forward + one batched backward over B
    # samples in total (the conv batching rules fold the k chunks into the batch / group dimensions),
    # ~3-4x faster than retain_graph on CPU at B=6000, k=10. torch.func runs the same on CUDA.
    # The forward is still one pass over the whole batch: vmap turns k chunk forwards into one.
    named = trainable_params(model)
    # Detached: grad() tracks its own inputs; leaving requires_grad on would also build a useless
    # outer autograd graph.
    params = {name: p.detach() for name, p in named}
    buffers = dict(model.named_buffers())

    def chunk_loss(p: dict[str, torch.Tensor], xc: torch.Tensor, yc: torch.Tensor):
        loss = F.nll_loss(functional_call(model, (p, buffers), (xc,)), yc)
        return loss, loss.detach()

    xs = x.reshape(chunks, size, *x.shape[1:])
    ys = y.reshape(chunks, size)
    with running_stats_frozen(model):  # batch norm: each chunk normalised by its own statistics
        grads, losses = vmap(grad(chunk_loss, has_aux=True), in_dims=(None, 0, 0), randomness="different")(
            params, xs, ys
        )
    # Equal chunks: the batch's mean loss is the mean of the chunk means.
    return losses.mean(), [grads[name] for name, _ in named]


def chunk_gradients(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    chunks: int,
    method: str,
    *,
    update_running_stats: bool = True,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Gradients of each chunk's mean NLL loss, all at the current parameters.

    The model returns log-probabilities (log-softmax), as SimpleModel does. Chunks are k consecutive
    equal slices of the batch. Returns (the batch's mean loss as a detached 0-d device tensor, one
    tensor per trainable parameter, in `model.parameters()` order, shaped [chunks, *param.shape]).
    Neither the parameters nor their .grad are changed.

    Batch norm: "retain_graph" makes one forward over the whole batch, so every chunk is
    normalised with the whole batch's statistics, and the running statistics are updated once, as a
    plain step does. "vectorized" normalises each chunk with its own statistics (vmap runs the chunks
    apart) and then, with `update_running_stats`, updates the running statistics by one no-grad forward
    over the whole batch (the plain step's update; it costs that forward). Probes pass False: they
    leave the model as it was.
    """
    if method not in SPLIT_METHODS:
        raise ValueError(
            f"unknown split-backward method {method!r}; choose one of: {', '.join(SPLIT_METHODS)}"
        )
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"inputs hold {x.shape[0]} samples but targets hold {y.shape[0]}")
    size = _check_chunks(x.shape[0], chunks)
    if method == "retain_graph":
        return _retain_graph_grads(model, x, y, chunks, size)
    loss, grads = _vectorized_grads(model, x, y, chunks, size)
    if update_running_stats and model.training and batch_norms(model):
        with torch.no_grad():
            model(x)
    return loss, grads
