"""A gradient-noise probe that does not depend on the training batch.

The first estimator (trainer/measure/probes.py) splits each training batch into 2-4-sample chunks: at batch 6
that is two chunks of 3 and a "big" batch of 6, far too small to measure |G|^2 (the issue measured 5,948
where an exact per-sample computation gave 642), and its EMA over ~10 probes spans half an epoch at batch
60 but 2.4 epochs at batch 1,024. This probe measures every run the same way:

- every `every_samples` training samples (not iterations), at the current weights, outside the timers,
  it draws a probe batch of `probe_size` samples (default 1,024) from the training set, with
  replacement and from its own random generator (the training order is untouched);
- it takes the gradient of each chunk of `chunk_size` samples (default 8) of that batch, vectorised
  (torch.func vmap over chunks, as trainer/engine/split.py does), `group` chunks at a time to bound memory;
- the unbiased two-batch estimator (McCandlish et al. 2018, appendix A.1; trainer/measure/gns.py) with
  small = b = chunk_size and big = B = probe_size gives one reading of |G|^2 and tr(Sigma). Drawn with
  replacement, the probe samples are independent draws from the training set, so both are unbiased for
  the training set's own mean gradient and per-sample covariance;
- `figures()` gives B_simple at the newest reading from the readings of the last `window_samples`
  training samples (a fixed share of training, whatever the batch size): |G|^2 and tr(Sigma) each fitted
  as an exponential in training samples, so the drift across the window is followed rather than averaged
  into a lagging figure, with a 95% jackknife interval that holds that drift's uncertainty, and the share
  of readings whose |G|^2 estimate was <= 0 ("undefined": the gradient is too small against its noise
  for one probe batch to see it). The arithmetic is trainer/analysis/bsimple.py (pure: the report and the app use
  it too); `at_target` reads B_simple where a run crossed its target, from the readings on both sides.

Every reading is kept (three numbers and the probe batch's loss: a curve of B_simple over training), in
the checkpoint too, so a resumed run can still say B_simple at its crossing.

torch is used here; the summary fields it fills are listed in trainer/analysis/crossing.py (b_simple_*).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from trainer.analysis.bsimple import TARGET_HALF_READINGS, WINDOW_READINGS, Reading, at_crossing, b_simple_at
from trainer.measure.gns import noise_scale_terms
from trainer.models.grads import running_stats_frozen

PROBE_SIZE = 1024  # samples per probe batch (B)
CHUNK_SIZE = 8  # samples per chunk (b); 1 would be per-sample, but batch norm needs more than 1
GROUP = 32  # chunks per vmap call: memory is GROUP x the model's parameters
EVERY_SAMPLES = 6_000  # training samples between readings: 10 per MNIST epoch
WINDOW_SAMPLES = WINDOW_READINGS * EVERY_SAMPLES  # training samples the current figure looks back over
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def probe_terms(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    chunk_size: int = CHUNK_SIZE,
    group: int = GROUP,
    loss_fn: LossFn = F.nll_loss,
) -> tuple[float, float]:
    """One reading: unbiased (|G|^2, tr(Sigma)) from the chunk gradients of the probe batch (x, y)."""
    g2, trace, _ = probe_reading(model, x, y, chunk_size, group, loss_fn)
    return g2, trace


def probe_reading(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    chunk_size: int = CHUNK_SIZE,
    group: int = GROUP,
    loss_fn: LossFn = F.nll_loss,
) -> tuple[float, float, float]:
    """One reading: unbiased (|G|^2, tr(Sigma)) from the chunk gradients of the probe batch (x, y), and the
    batch's mean loss at these weights (the same forward passes: where on the loss curve the reading is).

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

    grads_of = vmap(grad_and_value(chunk_loss), in_dims=(None, 0, 0), randomness="different")
    small_sum = torch.zeros((), dtype=torch.float64, device=x.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=x.device)
    total = {name: torch.zeros_like(p, dtype=torch.float64) for name, p in params.items()}
    for start in range(0, k, group):
        m = min(group, k - start)
        xs = x[start * chunk_size : (start + m) * chunk_size].reshape(m, chunk_size, *x.shape[1:])
        ys = y[start * chunk_size : (start + m) * chunk_size].reshape(m, chunk_size, *y.shape[1:])
        with running_stats_frozen(model):  # batch norm: chunk statistics; the running ones stay as they are
            grads, losses = grads_of(params, xs, ys)
        loss_sum += losses.double().sum()
        for name, g in grads.items():
            g = g.double()
            small_sum += g.flatten(1).pow(2).sum()
            total[name] += g.sum(0)
    small_sq = small_sum / k  # mean over chunks of |g_b|^2
    big_sq = sum((t / k).pow(2).sum() for t in total.values())  # |g_B|^2: equal chunks, so the batch's
    g2, trace = noise_scale_terms(small_sq, big_sq, chunk_size, n)
    return float(g2), float(trace), float(loss_sum / k)


class NoiseProbe:
    """Readings every `every_samples` training samples; figures at the newest reading from the last
    `window_samples`, and at a crossing of the target from the readings around it.

    The run loop, outside its timers: `if probe.due(samples): probe.update(model, *probe.draw(X, Y), samples)`;
    at an epoch end or the run's end: `probe.figures()`, `probe.at_target(lo, hi)`. `state_dict` /
    `load_state_dict` carry it through a checkpoint (plain numbers and the generator's state tensor:
    weights_only-safe).
    """

    def __init__(
        self,
        every_samples: int = EVERY_SAMPLES,
        window_samples: int = WINDOW_SAMPLES,
        probe_size: int = PROBE_SIZE,
        chunk_size: int = CHUNK_SIZE,
        seed: int = 0,
        group: int = GROUP,
        loss_fn: LossFn = F.nll_loss,
    ) -> None:
        if every_samples < 1 or window_samples < every_samples:
            raise ValueError(
                f"noise probe: need 1 <= every_samples <= window_samples, got "
                f"every_samples={every_samples}, window_samples={window_samples}"
            )
        if chunk_size < 1 or probe_size % chunk_size or probe_size // chunk_size < 2:
            raise ValueError(
                f"noise probe: probe_size {probe_size} must be at least 2 whole chunks of {chunk_size}"
            )
        self.every = every_samples
        self.window = window_samples
        self.probe_size = probe_size
        self.chunk_size = chunk_size
        self.group = group
        self.loss_fn = loss_fn
        self.generator = torch.Generator().manual_seed(seed)
        self.next_at = every_samples
        self.readings: list[Reading] = []  # every reading of the run, oldest first
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
        g2, trace, loss = probe_reading(model, x, y, self.chunk_size, self.group, self.loss_fn)
        reading = Reading(int(samples), g2, trace, loss)
        self.readings.append(reading)
        self.count += 1
        self.next_at = (int(samples) // self.every + 1) * self.every
        return reading

    def figures(self) -> dict[str, Any]:
        """B_simple at the newest reading with its interval (trainer.analysis.bsimple.b_simple_at, from the readings of
        the last `window` samples), and the readings so far."""
        if not self.readings:
            return {
                **b_simple_at([], 0, self.window),
                "b_simple_at_samples": None,
                "gns_estimates": self.count,
            }
        return {
            **b_simple_at(self.readings, self.readings[-1].samples, self.window),
            "gns_estimates": self.count,
        }

    def at_target(self, lo: float | None, hi: float) -> dict[str, Any]:
        """B_simple where the run crossed its target (between `lo` and `hi` training samples), from the
        readings within TARGET_HALF_READINGS intervals on either side (trainer.analysis.bsimple.at_crossing)."""
        return at_crossing(self.readings, lo, hi, TARGET_HALF_READINGS * self.every)

    def state_dict(self) -> dict[str, Any]:
        return {
            "every": self.every,
            "window": self.window,
            "probe_size": self.probe_size,
            "chunk_size": self.chunk_size,
            "next_at": self.next_at,
            "count": self.count,
            "readings": [[r.samples, r.g2, r.trace, r.loss] for r in self.readings],
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, mine in (("probe_size", self.probe_size), ("chunk_size", self.chunk_size)):
            if state[key] != mine:
                raise ValueError(f"noise probe state has {key} {state[key]}, this probe {mine}")
        # The window stays this probe's: a checkpoint of an older trainer saved a wider one (and only the
        # readings in it, without their loss).
        self.every = int(state["every"])
        self.next_at, self.count = int(state["next_at"]), int(state["count"])
        self.readings = [
            Reading(int(r[0]), float(r[1]), float(r[2]), None if len(r) < 4 or r[3] is None else float(r[3]))
            for r in state["readings"]
        ]
        self.generator.set_state(state["generator"])
