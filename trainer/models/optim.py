"""Optimizers by name: the study's SGD, and LARS and LAMB for huge batches.

At very large batch sizes one global lr is either too small for some layers or too large for others:
the ratio |w| / |g| differs by orders of magnitude between layers. LARS and LAMB give each layer
(here: each parameter tensor, weights and biases alike) its own step size from that ratio, so the
step of every layer is a fixed fraction of its weights' norm.

- LARS (You, Gitman, Ginsburg 2017, "Large Batch Training of Convolutional Networks", Algorithm 1):
  local lr  lambda = trust_coefficient * |w| / (|g| + weight_decay * |w|),
  v <- momentum * v + lr * lambda * (g + weight_decay * w),  w <- w - v.
- LAMB (You et al. 2019, "Large Batch Optimization for Deep Learning", Algorithm 2):
  Adam moments with bias correction, r = m_hat / (sqrt(v_hat) + eps), u = r + weight_decay * w,
  w <- w - lr * (|w| / |u|) * u   (the paper's phi is the identity).

Where a norm is zero (a layer initialised to zero, or no gradient) the trust ratio is 1, as in the
usual implementations. Both read `group["lr"]` every step, so the trainer's linear warm-up applies.
Norms stay on the device (torch.where instead of Python ifs): a step makes no host sync.
"""

from __future__ import annotations

from typing import Iterable

import torch

from trainer.config import OPTIMIZERS, OptimConfig

Params = Iterable[torch.Tensor] | Iterable[dict]


def _trust(
    numerator: torch.Tensor, denominator: torch.Tensor, w_norm: torch.Tensor, u_norm: torch.Tensor
) -> torch.Tensor:
    """numerator / denominator where both norms are > 0, else 1 (a 0-d tensor, no host sync)."""
    ok = (w_norm > 0) & (u_norm > 0)
    return torch.where(
        ok, numerator / torch.where(ok, denominator, torch.ones_like(denominator)), torch.ones_like(w_norm)
    )


class LARS(torch.optim.Optimizer):
    """Layer-wise Adaptive Rate Scaling: SGD with momentum whose lr is scaled per parameter tensor
    by trust_coefficient * |w| / (|g| + weight_decay * |w|) (You et al. 2017)."""

    def __init__(
        self,
        params: Params,
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 0.001,
    ) -> None:
        if lr <= 0:
            raise ValueError(f"LARS lr must be > 0, got {lr}")
        if not 0 <= momentum < 1:
            raise ValueError(f"LARS momentum must be in [0, 1), got {momentum}")
        if weight_decay < 0:
            raise ValueError(f"LARS weight_decay must be >= 0, got {weight_decay}")
        if trust_coefficient <= 0:
            raise ValueError(f"LARS trust_coefficient must be > 0, got {trust_coefficient}")
        defaults = dict(
            lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coefficient=trust_coefficient
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001, ANN201 - torch.optim.Optimizer's signature
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum, wd, tc = (
                group["lr"],
                group["momentum"],
                group["weight_decay"],
                group["trust_coefficient"],
            )
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                w_norm = torch.linalg.vector_norm(p)
                g_norm = torch.linalg.vector_norm(g)
                local_lr = _trust(tc * w_norm, g_norm + wd * w_norm, w_norm, g_norm)
                d = g.add(p, alpha=wd) if wd != 0 else g.clone()
                d.mul_(local_lr * lr)
                state = self.state[p]
                if momentum != 0:
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        # v_0 = 0, so the first step is v_1 = lr * lambda * d, as in the paper.
                        state["momentum_buffer"] = buf = d
                    else:
                        buf.mul_(momentum).add_(d)
                    d = buf
                p.sub_(d)
        return loss


class LAMB(torch.optim.Optimizer):
    """Layer-wise Adaptive Moments for Batch training: Adam's update direction, scaled per parameter
    tensor so that its step is lr * |w| (You et al. 2019)."""

    def __init__(
        self,
        params: Params,
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
    ) -> None:
        if lr <= 0:
            raise ValueError(f"LAMB lr must be > 0, got {lr}")
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"LAMB betas must be two numbers in [0, 1), got {list(betas)}")
        if eps <= 0:
            raise ValueError(f"LAMB eps must be > 0, got {eps}")
        if weight_decay < 0:
            raise ValueError(f"LAMB weight_decay must be >= 0, got {weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001, ANN201 - torch.optim.Optimizer's signature
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1  # a host int: the bias corrections need no device work
                t = state["step"]
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                m_hat = m / (1 - beta1**t)
                v_hat = v / (1 - beta2**t)
                u = m_hat / (v_hat.sqrt() + eps)
                if wd != 0:
                    u.add_(p, alpha=wd)
                w_norm = torch.linalg.vector_norm(p)
                u_norm = torch.linalg.vector_norm(u)
                trust = _trust(w_norm, u_norm, w_norm, u_norm)
                p.sub_(u.mul_(trust * lr))
        return loss


def build_optimizer(cfg: OptimConfig, params: Params, lr: float) -> torch.optim.Optimizer:
    """The optimizer `cfg.name` names over `params`, starting at `lr` (the run's lr, after scaling).

    SGD is torch.optim.SGD (the study's; the CUDA-graph fast path reproduces it); LARS uses
    cfg.momentum and cfg.trust_coefficient; LAMB uses cfg.betas and cfg.eps. All use cfg.weight_decay.
    """
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.name == "lars":
        return LARS(
            params,
            lr=lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            trust_coefficient=cfg.trust_coefficient,
        )
    if cfg.name == "lamb":
        return LAMB(
            params, lr=lr, betas=(cfg.betas[0], cfg.betas[1]), eps=cfg.eps, weight_decay=cfg.weight_decay
        )
    raise ValueError(f"unknown optim.name {cfg.name!r}; known: {', '.join(OPTIMIZERS)}")


def lr_at(base_lr: float, iteration: int, warmup_iters: int) -> float:
    """Linear warm-up from base_lr / warmup_iters to base_lr over warmup_iters iterations."""
    if warmup_iters <= 0 or iteration >= warmup_iters:
        return base_lr
    return base_lr * (iteration + 1) / warmup_iters


def check_loaded_state(optimizer: torch.optim.Optimizer) -> None:
    """ValueError unless the optimizer's state (after `load_state_dict`, which checks only the
    parameter counts) can step: numbers for the hyperparameters, and for each parameter tensors of
    its shape (or 0-d) and host numbers. A saved state that fails this would fail at the first step."""
    for i, group in enumerate(optimizer.param_groups):
        for key, value in group.items():
            if key != "params" and not _plain_numbers(value):
                raise ValueError(f"param group {i}: {key} is {type(value).__name__}, not a number")
    for j, param in enumerate(p for group in optimizer.param_groups for p in group["params"]):
        for key, value in optimizer.state.get(param, {}).items():
            if isinstance(value, torch.Tensor):
                if value.dim() > 0 and value.shape != param.shape:
                    raise ValueError(
                        f"parameter {j}: {key} has shape {tuple(value.shape)}, "
                        f"the parameter {tuple(param.shape)}"
                    )
            elif not _plain_numbers(value):
                raise ValueError(f"parameter {j}: {key} is {type(value).__name__}, not a tensor or a number")


def _plain_numbers(value: object) -> bool:
    """None, a bool, an int, a float or a 0-d tensor, or a tuple/list of them."""
    if isinstance(value, (tuple, list)):
        return all(_plain_numbers(v) for v in value)
    if isinstance(value, torch.Tensor):
        return value.dim() == 0
    return value is None or isinstance(value, (bool, int, float))
