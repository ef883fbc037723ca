"""Measurements taken during a run that are not training: gradient noise scale and the
cosine between consecutive gradients.

They run every `gns.every` iterations, outside the wall and compute timers (the loop
stops its clocks around them), and keep their results on the device until an epoch
ends, so the hot loop gains no host sync.
"""

from __future__ import annotations

from typing import Any

import torch

from trainer.analysis.bsimple import WINDOW_READINGS
from trainer.config import GnsConfig
from trainer.measure.gns import NoiseScaleTracker, terms_from_chunk_grads
from trainer.measure.noise_probe import NoiseProbe
from trainer.measure.oscillation import GradCosine
from trainer.models.grads import chunk_gradients


def gns_chunks(batch_size: int, max_chunks: int) -> int:
    """The largest divisor of batch_size in [2, max_chunks] (0 when none: batch 1, or a prime)."""
    for k in range(min(max_chunks, batch_size), 1, -1):
        if batch_size % k == 0:
            return k
    return 0


def probe_interval(every: int, iters_per_epoch: int) -> int:
    """Iterations between probes: gns.every, but at least about 4 probes per epoch."""
    if every <= 0:
        return 0
    return max(1, min(every, iters_per_epoch // 4 or 1))


class Probes:
    """Noise-scale and gradient-cosine probes of one run."""

    def __init__(self, cfg: GnsConfig, batch_size: int, iters_per_epoch: int, seed: int = 0) -> None:
        self.interval = probe_interval(cfg.every, iters_per_epoch)
        self.chunks = gns_chunks(batch_size, cfg.chunks)
        self.batch_size = batch_size
        self.tracker = NoiseScaleTracker(beta=cfg.beta)
        self.cosine = GradCosine()
        self._cosines: list[torch.Tensor] = []
        self._cos_pending = False  # a gradient was kept; the next step's gives the cosine
        self.estimates = 0
        # The batch-independent probe (trainer/measure/noise_probe.py): every gns.probe_every training samples,
        # its figure at the newest reading fitted to the last WINDOW_READINGS; None when off.
        every = getattr(cfg, "probe_every", 0)
        self.noise = (
            NoiseProbe(every_samples=every, window_samples=WINDOW_READINGS * every, seed=seed)
            if every > 0
            else None
        )

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    def due(self, iteration: int) -> bool:
        return self.interval > 0 and iteration % self.interval == 0

    def before_step(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        """Noise-scale terms from the chunks of this batch, at the parameters the step will use. Only
        the first `batch_size` samples are looked at (a run with micro-batches probes its first
        micro-batch: the whole batch may not fit); a smaller batch (an epoch's last) is skipped."""
        x, y = x[: self.batch_size], y[: self.batch_size]
        if self.chunks and x.shape[0] == self.batch_size:
            _, grads = chunk_gradients(model, x, y, self.chunks, "vectorized", update_running_stats=False)
            g2, trace = terms_from_chunk_grads(grads, self.batch_size)
            self.tracker.update(g2, trace)
            self.estimates += 1

    @property
    def wants_grads(self) -> bool:
        """Whether the step just taken needs its gradient read (a cosine pair is open)."""
        return self._cos_pending

    def after_step(self, grads: list[torch.Tensor], probing: bool) -> None:
        """Keep this step's gradient when probing; on the step after, take the cosine."""
        if probing or self._cos_pending:
            cos = self.cosine.update_grads(grads)
            if self._cos_pending and cos is not None:
                self._cosines.append(cos)
            self._cos_pending = probing
            if not probing:
                self.cosine.reset()

    def state_dict(self) -> dict[str, Any]:
        """The running state of both probes (device tensors stay tensors), in the checkpoint's layout."""
        tracker = self.tracker.state_dict()
        return {
            "g2": tracker["g2"],
            "trace": tracker["trace"],
            "count": tracker["count"],
            "estimates": self.estimates,
            "cos_pending": self._cos_pending,
            "cos_prev": self.cosine.state_dict()["prev"],
            "cosines": list(self._cosines),
            **({"noise": self.noise.state_dict()} if self.noise is not None else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back a `state_dict`; ValueError or KeyError when it is not one."""
        estimates, pending, cosines = state["estimates"], state["cos_pending"], state["cosines"]
        if not isinstance(estimates, int) or isinstance(estimates, bool) or estimates < 0:
            raise ValueError(
                f"the count of noise-scale estimates must be a whole number >= 0, got {estimates!r}"
            )
        if not isinstance(pending, bool):
            raise ValueError(f"cos_pending must be true or false, got {type(pending).__name__}")
        if not isinstance(cosines, list) or not all(
            isinstance(c, torch.Tensor) and c.dim() == 0 for c in cosines
        ):
            raise ValueError("the epoch's gradient cosines must be a list of 0-d tensors")
        self.tracker.load_state_dict({"g2": state["g2"], "trace": state["trace"], "count": state["count"]})
        self.cosine.load_state_dict({"prev": state["cos_prev"]})
        self.estimates, self._cos_pending, self._cosines = estimates, pending, list(cosines)
        # A checkpoint from before the batch-independent probe has none: it starts afresh (its first
        # reading is then due at once) and its window holds only readings taken after the resume.
        if self.noise is not None and state.get("noise") is not None:
            self.noise.load_state_dict(state["noise"])

    def epoch_figures(self) -> dict[str, Any]:
        """The epoch's probe figures (one host sync); resets the cosine samples."""
        cos = torch.stack(self._cosines).mean().item() if self._cosines else None
        self._cosines = []
        return {
            "grad_cos": cos,
            "b_simple": self.tracker.b_simple,
            "gns_g2": self.tracker.g2,
            "gns_trace": self.tracker.trace,
            "gns_estimates": self.estimates,
        }
