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


class Checks:
    """When a run evaluates, and on what: the evaluation slice every `every` training samples (0: at epoch
    ends only; an epoch's last batch is left to its end), and at each epoch end the full test set and the
    slice. The run books the figures (trainer.engine.ledger)."""

    def __init__(self, test: TestSet, every: int, train_samples: int) -> None:
        self.test, self.every, self.train_samples = test, every, train_samples
        self.next = 0  # the training samples at which the next sub-epoch evaluation is due

    def restart(self, samples: int) -> None:
        """The next sub-epoch evaluation after `samples` training samples."""
        self.next = (samples // self.every + 1) * self.every if self.every else 0

    def due(self, samples: int, epoch_samples: int) -> bool:
        return bool(self.every and samples >= self.next and epoch_samples < self.train_samples)

    def on_slice(self, model: torch.nn.Module, samples: int) -> tuple[float, float]:
        """A sub-epoch evaluation: loss and accuracy on the slice."""
        self.restart(samples)
        return evaluate(model, self.test.slice_x, self.test.slice_y)

    def at_epoch_end(self, model: torch.nn.Module, samples: int) -> dict[str, float]:
        """An epoch end's figures: the full test set's and the slice's (the same when the slice is the set)."""
        self.restart(samples)
        test = self.test
        test_loss, test_acc = evaluate(model, test.x, test.y)
        slice_loss, slice_acc = (
            (test_loss, test_acc) if test.whole else evaluate(model, test.slice_x, test.slice_y)
        )
        return {
            "test_loss": test_loss,
            "test_acc": test_acc,
            "slice_loss": slice_loss,
            "slice_acc": slice_acc,
        }
