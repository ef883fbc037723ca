"""Test-set evaluation of a run (outside the run's timers: not part of any timing).

Every evaluation is on the evaluation slice (trainer/analysis/accuracy.py: a fixed class-stratified random
sample of the test set, the same for every run): every `sweep.eval_every` training samples, and at each
epoch end, where the full test set is evaluated too (a second kind, recorded apart).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from trainer.analysis.accuracy import SLICE_SEED, SLICE_SIZE, stratified_slice
from trainer.data.datasets import Dataset, as_inputs, is_grey


@dataclass(frozen=True)
class TestSet:
    """The test split resident on the device, and its evaluation slice (shared by every run)."""

    x: torch.Tensor
    y: torch.Tensor
    slice_x: torch.Tensor
    slice_y: torch.Tensor
    whole: bool  # the slice is the whole test set (a test set no larger than the slice)

    @property
    def slice_size(self) -> int:
        return int(self.slice_y.shape[0])


def prepare_test(dataset: Dataset, device: torch.device, slice_size: int = SLICE_SIZE) -> TestSet:
    """The test split on the device, converted once for every run of the sweep, with its slice."""
    images = dataset.test.images
    if is_grey(images):
        x = images.to(device=device, dtype=torch.float32).div_(255.0).unsqueeze(1)
    else:  # a factory's inputs
        x = as_inputs(images).to(device)
    y = dataset.test.labels.to(device=device, dtype=torch.long)
    return slice_of(x, y, slice_size)


def slice_of(x: torch.Tensor, y: torch.Tensor, slice_size: int = SLICE_SIZE) -> TestSet:
    """A TestSet of (x, y): the slice drawn from y's labels with the fixed seed (the whole set when
    it is no larger than the slice; then no copy is made)."""
    n = int(y.shape[0])
    if slice_size >= n:
        return TestSet(x, y, x, y, True)
    index = torch.tensor(
        stratified_slice(y.tolist(), slice_size, SLICE_SEED), dtype=torch.long, device=y.device
    )
    return TestSet(x, y, x.index_select(0, index), y.index_select(0, index), False)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 5000
) -> tuple[float, float]:
    """Mean test NLL and accuracy; restores the model's training mode."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    for i in range(0, x.shape[0], batch):
        out = model(x[i : i + batch])
        loss_sum += F.nll_loss(out, y[i : i + batch], reduction="sum")
        correct += (out.argmax(1) == y[i : i + batch]).sum()
    model.train(was_training)
    n = max(1, x.shape[0])
    return loss_sum.item() / n, correct.item() / n
