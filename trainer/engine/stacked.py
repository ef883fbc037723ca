"""The stacked weights of K models of one architecture and their fused SGD step (`StackedSGD`).

Runs that share a batch size, a model and plain SGD can take their steps together: their weights are
stacked ([K, ...] per parameter), one `torch.func.vmap` of `grad_and_value(functional_call(...))` gives
every run's loss and gradient in one pass of batched kernels, and one SGD update with per-run lr,
momentum and weight decay as [K] tensors moves them all. Each member's model parameters and its
optimizer's momentum buffers are views of its row, so evaluation, the probes, a checkpoint, or a step
the member takes alone (split-backward) read and write the same numbers.

The update reproduces torch.optim.SGD (momentum buffer m <- mu m + g + wd w; w <- w - lr m, the buffer
starting at the first gradient). Results equal training each run alone up to float rounding (batched
kernels add in another order): tests/trainer/test_fuse.py checks per-iteration losses and accuracies.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from trainer.models.grads import batch_norms


class FuseUnavailable(Exception):
    """These runs cannot train fused; str(exc) says why (run_started's fused_reason)."""


def model_reason(model: nn.Module) -> str:
    """Why this model cannot train fused ("" if it can): vmap cannot update batch norm's running statistics
    in place per run, and dropout's random masks would differ from a run trained alone."""
    if batch_norms(model):
        return "the model has batch norm: its running statistics are updated in place, which the fused step cannot do per run"
    if any(isinstance(m, nn.modules.dropout._DropoutNd) for m in model.modules()):
        return "the model has dropout: fused runs would draw other random masks than runs trained alone"
    return ""


class StackedSGD:
    """The stacked weights, buffers and momentum of K models of one architecture, and their fused SGD step.

    `base` is one of the models (its structure is used by functional_call; its tensors are swapped for
    the stacked ones during the call). Members' parameters and momentum buffers become views of their row.
    """

    def __init__(
        self,
        base: nn.Module,
        models: list[nn.Module],
        optimizers: list[torch.optim.Optimizer],
        hyper: list[tuple[float, float, float]],
    ) -> None:
        self.base = base
        self.names = [n for n, _ in base.named_parameters()]
        self.buffer_names = [n for n, _ in base.named_buffers()]
        self.models, self.optimizers = list(models), list(optimizers)
        with torch.no_grad():
            self.params = {
                n: torch.stack([dict(m.named_parameters())[n].detach() for m in models]) for n in self.names
            }
            self.buffers = {
                n: torch.stack([dict(m.named_buffers())[n] for m in models]) for n in self.buffer_names
            }
            self.momentum = {
                n: torch.stack(
                    [self._buffer_of(o, dict(m.named_parameters())[n]) for m, o in zip(models, optimizers)]
                )
                for n in self.names
            }
        device = next(iter(self.params.values())).device
        lr, mu, wd = zip(*hyper)
        self.neg_lr = -torch.tensor(lr, dtype=torch.float32, device=device)
        self.mu = torch.tensor(mu, dtype=torch.float32, device=device)
        self.wd = torch.tensor(wd, dtype=torch.float32, device=device)
        self.decay = any(w != 0 for w in wd)
        self._warmup: torch.Tensor | None = (
            None  # [iterations, K] of -lr while a member warms up (set_warmup)
        )
        self.warmup_end = 0
        self.grads: dict[str, torch.Tensor] = {}
        self._point()

        def loss(
            params: dict[str, torch.Tensor],
            buffers: dict[str, torch.Tensor],
            x: torch.Tensor,
            y: torch.Tensor,
        ) -> torch.Tensor:
            return F.nll_loss(functional_call(self.base, (params, buffers), (x,)), y)

        self._grad_and_loss = vmap(grad_and_value(loss))

    @staticmethod
    def _buffer_of(optimizer: torch.optim.Optimizer, p: torch.Tensor) -> torch.Tensor:
        buf = optimizer.state.get(p, {}).get("momentum_buffer")
        return buf.detach() if isinstance(buf, torch.Tensor) else torch.zeros_like(p)

    @property
    def k(self) -> int:
        return len(self.models)

    def _point(self) -> None:
        """Make each member's parameters, buffers and momentum buffers views of its row."""
        for i, (model, opt) in enumerate(zip(self.models, self.optimizers)):
            params = dict(model.named_parameters())
            for n in self.names:
                p = params[n]
                p.data = self.params[n][i]
                # A zero buffer steps like torch's first one (mu * 0 + g = g).
                opt.state[p]["momentum_buffer"] = self.momentum[n][i]
            buffers = dict(model.named_buffers())
            for n in self.buffer_names:
                buffers[n].data = self.buffers[n][i]

    def keep(self, rows: list[int]) -> None:
        """Keep the members at `rows` only (a member left the group)."""
        idx = torch.tensor(rows, device=self.neg_lr.device)
        with torch.no_grad():
            for table in (self.params, self.buffers, self.momentum):
                for n in table:
                    table[n] = table[n].index_select(0, idx)
        self.neg_lr, self.mu, self.wd = self.neg_lr[idx], self.mu[idx], self.wd[idx]
        if self._warmup is not None:
            self._warmup = self._warmup[:, idx]
        self.models = [self.models[i] for i in rows]
        self.optimizers = [self.optimizers[i] for i in rows]
        self.grads = {}
        self._point()

    def set_warmup(self, lrs: list[float], warmups: list[int]) -> None:
        """The members' linear warm-ups (trainer.models.optim.lr_at) as one device table of -lr per iteration, made
        once: a step's lrs are then a row of it (`warm_up(it)`), not a host-to-device copy per iteration
        (one that would wait for the device on CUDA). The same float64 arithmetic as lr_at, then float32."""
        self.warmup_end = max(warmups, default=0)
        if self.warmup_end <= 0:
            self._warmup = None
            return
        it = torch.arange(self.warmup_end + 1, dtype=torch.float64)[:, None]
        base = torch.tensor(lrs, dtype=torch.float64)[None, :]
        w = torch.tensor(warmups, dtype=torch.float64)[None, :]
        table = torch.where(it < w, base * (it + 1) / w, base)
        self._warmup = (-table.to(torch.float32)).to(self.neg_lr.device)

    def warm_up(self, iteration: int) -> None:
        """Use the warm-up's lrs of `iteration` for the next step (nothing to do past the warm-ups). The lrs
        are copied into the same device tensor (no host sync), which a captured step reads at each replay."""
        if self._warmup is not None and iteration <= self.warmup_end:
            self.neg_lr.copy_(self._warmup[iteration])

    def losses_and_grads(
        self, xs: torch.Tensor, ys: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Each member's mean loss on its batch (xs[i], ys[i]) and its gradient, at the current weights."""
        grads, losses = self._grad_and_loss(self.params, self.buffers, xs, ys)
        return losses, grads

    def step(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """One SGD step of every member; returns their losses ([K], detached: no host sync)."""
        losses, grads = self.losses_and_grads(xs, ys)
        with torch.no_grad():
            for n in self.names:
                p, g, m = self.params[n], grads[n], self.momentum[n]
                shape = (self.k,) + (1,) * (p.dim() - 1)
                if self.decay:
                    g = g.addcmul(p, self.wd.view(shape))  # grad + wd * w, rounded as SGD's add(alpha=wd)
                m.mul_(self.mu.view(shape)).add_(g)
                p.addcmul_(m, self.neg_lr.view(shape))
        self.grads = grads
        return losses.detach()

    def last_grads(self, row: int) -> list[torch.Tensor]:
        """Member `row`'s gradient of the last fused step, in its parameters' order."""
        return [self.grads[n][row] for n in self.names]
