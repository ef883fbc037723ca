"""Split-backward ("one forward, many backward", SEED.md) and the plain training step.

One batch of B samples is cut into k consecutive chunks of B/k. Every chunk's gradient is taken at
the same parameters, then the optimizer makes k steps in chunk order. With plain SGD the k steps add
up to one step of lr * k along the batch's mean gradient, which is why the study saw split-backward
behave like lr x k (momentum makes it differ slightly).

Two ways to get the k chunk gradients:
- "retain_graph": the study's way, k backward passes over the batch's retained graph;
- "vectorized": all k in one batched pass (torch.func), several times faster.

All functions return losses as detached device tensors: no `.item()`, so no host sync in the loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainer.models.grads import chunk_gradients, trainable_params


def apply_chunk_steps(
    model: nn.Module, optimizer: torch.optim.Optimizer, chunk_grads: list[torch.Tensor]
) -> None:
    """k optimizer steps in chunk order, step i using chunk i's gradient (from `chunk_gradients`).

    Leaves each parameter's .grad holding the last chunk's gradient (the one that made the last step).
    """
    params = [p for _, p in trainable_params(model)]
    if len(params) != len(chunk_grads):
        raise ValueError(f"{len(chunk_grads)} chunk gradients for {len(params)} trainable parameters")
    for i in range(chunk_grads[0].shape[0]):
        for p, g in zip(params, chunk_grads):
            p.grad = g[i]
        optimizer.step()


def split_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    chunks: int,
    method: str,
) -> torch.Tensor:
    """One split-backward update: k chunk gradients at the same parameters, then k optimizer steps.

    All chunk gradients are taken *before* the first step, on purpose: the study's loop
    (backward(retain_graph=True); step; next chunk's backward) cannot work, because the optimizer
    updates the parameters in place and autograd then refuses the next backward pass over the
    retained graph with "one of the variables needed for gradient computation has been modified by
    an inplace operation". Taking them first is also what makes k steps ~ one step with lr x k.
    Returns the batch's mean loss (detached, on the device, no host sync).
    """
    loss, grads = chunk_gradients(model, x, y, chunks, method)
    apply_chunk_steps(model, optimizer, grads)
    return loss


def plain_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """One ordinary SGD update on the whole batch; returns the mean loss (detached, no host sync)."""
    optimizer.zero_grad(set_to_none=True)
    loss = F.nll_loss(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.detach()
