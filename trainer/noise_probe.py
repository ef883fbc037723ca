"""A gradient-noise probe that does not depend on the training batch (issue 13).

The first estimator (trainer/probes.py) splits each training batch into 2-4-sample chunks: at batch 6
that is two chunks of 3 and a "big" batch of 6, far too small to measure |G|^2 (the issue measured 5,948
where an exact per-sample computation gave 642), and its EMA over ~10 probes spans half an epoch at batch
60 but 2.4 epochs at batch 1,024. This probe measures every run the same way:

- every `every_samples` training samples (not iterations), at the current weights, outside the timers,
  it draws a probe batch of `probe_size` samples (default 1,024) from the training set, with
  replacement and from its own random generator (the training order is untouched);
- it takes the gradient of each chunk of `chunk_size` samples (default 8) of that batch, vectorised
  (torch.func vmap over chunks, as trainer/split.py does), `group` chunks at a time to bound memory;
- the unbiased two-batch estimator (McCandlish et al. 2018, appendix A.1; trainer/gns.py) with
  small = b = chunk_size and big = B = probe_size gives one reading of |G|^2 and tr(Sigma). Drawn with
  replacement, the probe samples are independent draws from the training set, so both are unbiased for
  the training set's own mean gradient and per-sample covariance;
- `figures()` averages the readings of the last `window_samples` training samples (a fixed share of
  training, whatever the batch size) and reports B_simple = mean tr(Sigma) / mean |G|^2 (the ratio of the
  averages, as the paper recommends), a 95% interval from a jackknife over the window's readings (on
  log B_simple, with Student's t), and the share of readings whose |G|^2 estimate was <= 0 ("undefined":
  the gradient is too small against its noise for one probe batch to see it).

torch is used here; the summary fields it fills are listed in trainer/crossing.py (b_simple_*).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from trainer.gns import noise_scale_terms
from trainer.split import running_stats_frozen

PROBE_SIZE = 1024  # samples per probe batch (B)
CHUNK_SIZE = 8  # samples per chunk (b); 1 would be per-sample, but batch norm needs more than 1
GROUP = 32  # chunks per vmap call: memory is GROUP x the model's parameters
EVERY_SAMPLES = 6_000  # training samples between readings: 10 per MNIST epoch
WINDOW_SAMPLES = 60_000  # training samples the figures average over: one MNIST epoch, ~10 readings
# Two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom (then the normal's 1.96).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def t975(dof: int) -> float:
    """The 97.5% quantile of Student's t with `dof` degrees of freedom (>= 1)."""
    return _T975[dof - 1] if dof <= len(_T975) else 1.96


def probe_terms(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk_size: int = CHUNK_SIZE,
    group: int = GROUP, loss_fn: LossFn = F.nll_loss,
) -> tuple[float, float]:
    """One reading: unbiased (|G|^2, tr(Sigma)) from the chunk gradients of the probe batch (x, y).

    loss_fn(output, target) is the mean loss of a chunk (the models here return log-probabilities:
    NLL). Neither the parameters nor their .grad change. Sums are taken in float64.
    """
    n = x.shape[0]
    if n != y.shape[0]:
        raise ValueError(f"probe inputs hold {n} samples but targets hold {y.shape[0]}")
    if chunk_size < 1 or n % chunk_size or n // chunk_size < 2:
        raise ValueError(f"probe batch {n} must be at least 2 whole chunks of {chunk_size} samples")
    k = n // chunk_size
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    params = {name: p.detach() for name, p in named}
    buffers = dict(model.named_buffers())

    def chunk_loss(p: dict[str, torch.Tensor], xc: torch.Tensor, yc: torch.Tensor) -> torch.Tensor:
        return loss_fn(functional_call(model, (p, buffers), (xc,)), yc)

    grads_of = vmap(grad(chunk_loss), in_dims=(None, 0, 0), randomness="different")
    small_sum = torch.zeros((), dtype=torch.float64, device=x.device)
    total = {name: torch.zeros_like(p, dtype=torch.float64) for name, p in params.items()}
    for start in range(0, k, group):
        m = min(group, k - start)
        xs = x[start * chunk_size:(start + m) * chunk_size].reshape(m, chunk_size, *x.shape[1:])
        ys = y[start * chunk_size:(start + m) * chunk_size].reshape(m, chunk_size, *y.shape[1:])
        with running_stats_frozen(model):  # batch norm: chunk statistics; the running ones stay as they are
            grads = grads_of(params, xs, ys)
        for name, g in grads.items():
            g = g.double()
            small_sum += g.flatten(1).pow(2).sum()
            total[name] += g.sum(0)
    small_sq = small_sum / k  # mean over chunks of |g_b|^2
    big_sq = sum((t / k).pow(2).sum() for t in total.values())  # |g_B|^2: equal chunks, so the batch's
    g2, trace = noise_scale_terms(small_sq, big_sq, chunk_size, n)
    return float(g2), float(trace)


@dataclass(frozen=True)
class Reading:
    """One probe reading, at `samples` training samples."""

    samples: int
    g2: float
    trace: float


def window_figures(readings: list[Reading]) -> dict[str, Any]:
    """B_simple of a window of readings, its 95% jackknife interval and the share undefined."""
    n = len(readings)
    out: dict[str, Any] = {"b_simple": None, "b_simple_lo": None, "b_simple_hi": None,
                           "b_simple_readings": n, "b_simple_undefined": None,
                           "b_simple_from_samples": readings[0].samples if n else None,
                           "b_simple_to_samples": readings[-1].samples if n else None,
                           "gns_g2": None, "gns_trace": None}
    if not n:
        return out
    g2 = [r.g2 for r in readings]
    tr = [r.trace for r in readings]
    sum_g2, sum_tr = math.fsum(g2), math.fsum(tr)
    out.update(b_simple_undefined=sum(1 for v in g2 if v <= 0) / n, gns_g2=sum_g2 / n, gns_trace=sum_tr / n)
    if sum_g2 <= 0 or sum_tr <= 0:
        return out  # the window cannot see the gradient above its noise: B_simple undefined
    out["b_simple"] = sum_tr / sum_g2
    if n < 3:
        return out  # too few readings for an interval
    # Jackknife on log B_simple (the ratio is skewed); a leave-one-out mean |G|^2 <= 0 leaves it open.
    loo = []
    for i in range(n):
        g, t = sum_g2 - g2[i], sum_tr - tr[i]
        if g <= 0 or t <= 0:
            out["b_simple_lo"] = 0.0
            return out
        loo.append(math.log(t / g))
    mean = math.fsum(loo) / n
    se = math.sqrt((n - 1) / n * math.fsum((v - mean) ** 2 for v in loo))
    half = t975(n - 1) * se
    centre = math.log(out["b_simple"])
    out["b_simple_lo"], out["b_simple_hi"] = math.exp(centre - half), math.exp(centre + half)
    return out


class NoiseProbe:
    """Readings every `every_samples` training samples, figures over the last `window_samples`.

    The run loop, outside its timers: `if probe.due(samples): probe.update(model, *probe.draw(X, Y), samples)`;
    at an epoch end or the run's end: `probe.figures()`. `state_dict`/`load_state_dict` carry it
    through a checkpoint (plain numbers and the generator's state tensor: weights_only-safe).
    """

    def __init__(
        self, every_samples: int = EVERY_SAMPLES, window_samples: int = WINDOW_SAMPLES,
        probe_size: int = PROBE_SIZE, chunk_size: int = CHUNK_SIZE, seed: int = 0,
        group: int = GROUP, loss_fn: LossFn = F.nll_loss,
    ) -> None:
        if every_samples < 1 or window_samples < every_samples:
            raise ValueError(f"noise probe: need 1 <= every_samples <= window_samples, got "
                             f"every_samples={every_samples}, window_samples={window_samples}")
        if chunk_size < 1 or probe_size % chunk_size or probe_size // chunk_size < 2:
            raise ValueError(f"noise probe: probe_size {probe_size} must be at least 2 whole chunks of {chunk_size}")
        self.every = every_samples
        self.window = window_samples
        self.probe_size = probe_size
        self.chunk_size = chunk_size
        self.group = group
        self.loss_fn = loss_fn
        self.generator = torch.Generator().manual_seed(seed)
        self.next_at = every_samples
        self.readings: list[Reading] = []
        self.count = 0  # readings taken over the whole run

    def due(self, samples: int) -> bool:
        """Whether a reading is due after `samples` training samples."""
        return samples >= self.next_at

    def draw(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A probe batch from the training set, with replacement, from the probe's own generator."""
        idx = torch.randint(0, labels.shape[0], (self.probe_size,), generator=self.generator)
        idx = idx.to(labels.device)
        return images[idx], labels[idx]

    def update(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, samples: int) -> Reading:
        """Take one reading on the probe batch (x, y) at the model's current weights."""
        g2, trace = probe_terms(model, x, y, self.chunk_size, self.group, self.loss_fn)
        reading = Reading(int(samples), g2, trace)
        self.readings = [r for r in self.readings if r.samples > samples - self.window] + [reading]
        self.count += 1
        self.next_at = (int(samples) // self.every + 1) * self.every
        return reading

    def figures(self) -> dict[str, Any]:
        """The window's B_simple with its interval (see window_figures), and the readings so far."""
        return {**window_figures(self.readings), "gns_estimates": self.count}

    def state_dict(self) -> dict[str, Any]:
        return {
            "every": self.every, "window": self.window, "probe_size": self.probe_size,
            "chunk_size": self.chunk_size, "next_at": self.next_at, "count": self.count,
            "readings": [[r.samples, r.g2, r.trace] for r in self.readings],
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, mine in (("probe_size", self.probe_size), ("chunk_size", self.chunk_size)):
            if state[key] != mine:
                raise ValueError(f"noise probe state has {key} {state[key]}, this probe {mine}")
        self.every, self.window = int(state["every"]), int(state["window"])
        self.next_at, self.count = int(state["next_at"]), int(state["count"])
        self.readings = [Reading(int(s), float(g), float(t)) for s, g, t in state["readings"]]
        self.generator.set_state(state["generator"])
