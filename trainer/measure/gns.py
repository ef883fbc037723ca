"""Gradient noise scale and critical batch size (McCandlish et al. 2018, "An Empirical Model of
Large-Batch Training", arXiv:1812.06162).

B_simple = tr(Sigma) / |G|^2, with G the true gradient and Sigma the per-sample gradient covariance,
predicts the batch size past which bigger batches stop cutting the number of steps. Both terms are
estimated without bias from squared gradient norms at two batch sizes b < B (paper, appendix A.1):

    |G|^2     ~ (B |g_B|^2 - b |g_b|^2) / (B - b)
    tr(Sigma) ~ (|g_b|^2 - |g_B|^2) / (1/b - 1/B)

because E|g_b|^2 = |G|^2 + tr(Sigma) / b. The chunks of one split-backward batch give both sizes for
free. Single estimates are very noisy (and may be negative), so the tracker smooths each term with
an EMA and reports the ratio of the two averages, as the paper recommends, not an average of ratios.

The fits that invert the paper's trade-off (S/S_min - 1)(E/E_min - 1) = 1 from measured steps S and
examples E to reach a target need no torch: trainer/analysis/point_fits.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Union

import torch

Number = Union[float, torch.Tensor]


def noise_scale_terms(
    g_small_sq: Number, g_big_sq: Number, b_small: int, b_big: int
) -> tuple[Number, Number]:
    """Unbiased (|G|^2, tr(Sigma)) from squared gradient norms at batch sizes b_small < b_big.

    Works on floats or tensors (tensors stay on their device: no host sync).
    """
    if not (0 < b_small < b_big):
        raise ValueError(f"need two batch sizes 0 < b_small < b_big, got b_small={b_small}, b_big={b_big}")
    g2 = (b_big * g_big_sq - b_small * g_small_sq) / (b_big - b_small)
    trace = (g_small_sq - g_big_sq) / (1.0 / b_small - 1.0 / b_big)
    return g2, trace


def terms_from_chunk_grads(
    chunk_grads: Sequence[torch.Tensor], batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(|G|^2, tr(Sigma)) as device tensors from one batch's per-chunk gradients.

    chunk_grads: one tensor per parameter, shaped [k, *param.shape], each row the mean gradient of
    one chunk of b = batch_size / k samples (`trainer.models.grads.chunk_gradients`). Small size: b, with
    |g_b|^2 the mean over the k chunks of each chunk's squared norm (k estimates of the same
    expectation, averaged to cut noise). Big size: B = batch_size, with g_B the mean of the chunk
    gradients (equal chunks, so exactly the batch gradient).
    """
    if not chunk_grads:
        raise ValueError("no chunk gradients given")
    k = chunk_grads[0].shape[0]
    if k < 2:
        raise ValueError(f"the noise scale needs at least 2 chunks per batch (two batch sizes), got {k}")
    if batch_size % k != 0:
        raise ValueError(f"{k} chunks do not divide batch size {batch_size}")
    # Squared norms in float32 at least: half-precision sums of ~1e4 squares lose the small
    # difference between |g_b|^2 and |g_B|^2 that carries tr(Sigma).
    dtype = torch.promote_types(chunk_grads[0].dtype, torch.float32)
    small_sq = sum(g.to(dtype).flatten(1).pow(2).sum(1) for g in chunk_grads).mean()
    big_sq = sum(g.to(dtype).mean(0).pow(2).sum() for g in chunk_grads)
    return noise_scale_terms(small_sq, big_sq, batch_size // k, batch_size)


class NoiseScaleTracker:
    """EMAs of |G|^2 and tr(Sigma) and their ratio B_simple = EMA(tr Sigma) / EMA(|G|^2).

    `update` does no host sync (tensor inputs stay on the device); reading `g2`, `trace` or
    `b_simple` copies the two averages to the host, so read them only when reporting.
    The EMAs are debiased (divided by 1 - beta^n, as in Adam) so early reports are not pulled to 0.
    """

    def __init__(self, beta: float = 0.9) -> None:
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"NoiseScaleTracker beta must be in [0, 1), got {beta}")
        self.beta = beta
        self.count = 0
        self._g2: Number | None = None
        self._trace: Number | None = None

    def update(self, g2: Number, trace: Number) -> None:
        """Fold one pair of estimates into the averages."""
        if isinstance(g2, torch.Tensor):
            g2 = g2.detach()
        if isinstance(trace, torch.Tensor):
            trace = trace.detach()
        a = 1.0 - self.beta
        if self._g2 is None:
            self._g2, self._trace = a * g2, a * trace
        else:
            self._g2 = self.beta * self._g2 + a * g2
            self._trace = self.beta * self._trace + a * trace
        self.count += 1

    def state_dict(self) -> dict[str, Any]:
        """The averages (device tensors or floats, None before the first update) and the update count."""
        return {"g2": self._g2, "trace": self._trace, "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back a `state_dict`; ValueError (nothing changed) when it is not one."""
        g2, trace, count = state["g2"], state["trace"], state["count"]
        if not (_is_average(g2) and _is_average(trace) and (g2 is None) == (trace is None)):
            raise ValueError(
                f"noise-scale averages must be numbers or 0-d tensors, got {type(g2).__name__} "
                f"and {type(trace).__name__}"
            )
        if not isinstance(count, int) or isinstance(count, bool) or count < 0 or (count == 0) != (g2 is None):
            raise ValueError(f"noise-scale update count {count!r} does not go with its averages")
        self._g2, self._trace, self.count = g2, trace, count

    def _debiased(self, ema: Number | None) -> float | None:
        if ema is None:
            return None
        return float(ema) / (1.0 - self.beta**self.count)

    @property
    def g2(self) -> float | None:
        """Smoothed |G|^2 (None before the first update)."""
        return self._debiased(self._g2)

    @property
    def trace(self) -> float | None:
        """Smoothed tr(Sigma) (None before the first update)."""
        return self._debiased(self._trace)

    @property
    def b_simple(self) -> float | None:
        """tr(Sigma) / |G|^2 from the averages; None while the |G|^2 average is not positive."""
        g2, trace = self.g2, self.trace
        if g2 is None or trace is None or not math.isfinite(g2) or g2 <= 0.0:
            return None
        return trace / g2


def _is_average(value: Any) -> bool:
    """None, a float, or a 0-d floating tensor: what the tracker's averages may hold."""
    if isinstance(value, torch.Tensor):
        return value.dim() == 0 and value.is_floating_point()
    return value is None or (isinstance(value, float))
