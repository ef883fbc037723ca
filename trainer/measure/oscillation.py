"""Loss oscillation, measured.

The study showed oscillation as plots of the per-iteration loss; these are the two numbers behind
those plots, per run and epoch:
- `loss_diff_std`: spread of successive per-iteration loss changes (a falling trend barely moves it,
  iteration-to-iteration jumps do);
- `GradCosine`: cosine similarity between consecutive gradients (near 1: steps agree, as with large
  batches; near 0 or negative: each step undoes part of the last, as with small noisy batches).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch


def loss_diff_std(values: Sequence[float] | np.ndarray | torch.Tensor) -> float:
    """Population standard deviation of loss[i+1] - loss[i] over a run of per-iteration losses.

    Differences touching a non-finite loss (a diverged or skipped iteration) are ignored rather than
    poisoning the figure. NaN when fewer than 2 finite differences remain.
    """
    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu", torch.float64).numpy()
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    diffs = np.diff(arr)
    diffs = diffs[np.isfinite(diffs)]
    if diffs.size < 2:
        return float("nan")
    return float(diffs.std())


class GradCosine:
    """Cosine similarity between each gradient and the one before it, kept on the device.

    Call `update(model.parameters())` after backward (or after `split_step`, where .grad holds the
    last chunk's gradient). Costs one concatenation of the gradients per call and one flat copy of
    them in memory; returns a 0-d device tensor (no host sync), or None on the first call and after
    `reset()` or a change in the parameters' total size.
    """

    def __init__(self) -> None:
        self._prev: torch.Tensor | None = None

    def reset(self) -> None:
        """Forget the previous gradient (e.g. when the split mode changes what a step is)."""
        self._prev = None

    def state_dict(self) -> dict[str, Any]:
        """The kept gradient (a flat device tensor, or None)."""
        return {"prev": self._prev}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back a `state_dict`; ValueError (nothing changed) when it is not one."""
        prev = state["prev"]
        if prev is not None and not (
            isinstance(prev, torch.Tensor) and prev.dim() == 1 and prev.is_floating_point()
        ):
            raise ValueError(
                f"the kept gradient must be a flat float tensor or None, got {type(prev).__name__}"
            )
        self._prev = prev

    def update(self, parameters: Iterable[torch.nn.Parameter]) -> torch.Tensor | None:
        """Cosine of the current .grad against the previous call's; None when there is no previous."""
        # A parameter without .grad (unused this step) counts as a zero gradient, so the flat vector
        # keeps the same layout from step to step.
        return self.update_grads(
            [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters if p.requires_grad]
        )

    def update_grads(self, grads: Sequence[torch.Tensor]) -> torch.Tensor | None:
        """As `update`, from the gradient tensors themselves (e.g. a CUDA graph's static grads)."""
        parts = [g.detach().reshape(-1) for g in grads]
        if not parts:
            raise ValueError("GradCosine.update got no trainable parameters")
        flat = torch.cat(parts)  # a new tensor: later in-place updates of .grad cannot change it
        prev, self._prev = self._prev, flat
        if prev is None or prev.shape != flat.shape or prev.device != flat.device:
            return None
        # eps: a zero gradient gives cosine 0 instead of NaN.
        return torch.nn.functional.cosine_similarity(prev, flat, dim=0, eps=1e-12)
