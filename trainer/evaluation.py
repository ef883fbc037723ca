"""Test-set evaluation of a run (outside the run's timers: not part of any timing): the full test set
at its epoch ends, the evaluation slice (the test set's first EVAL_SLICE samples, the same for every run)
every `sweep.eval_every` training samples in between."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from trainer.data import Dataset, as_inputs, is_grey


def prepare_test(dataset: Dataset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The test split, resident on the device, converted once for every run of the sweep."""
    images = dataset.test.images
    if is_grey(images):
        x = images.to(device=device, dtype=torch.float32).div_(255.0).unsqueeze(1)
    else:  # a factory's inputs
        x = as_inputs(images).to(device)
    y = dataset.test.labels.to(device=device, dtype=torch.long)
    return x, y


EVAL_SLICE = 2000  # samples of the sub-epoch evaluation slice: accuracy to 0.05%, ~0.3% sampling sd at 98%


def eval_slice(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed evaluation slice: the first EVAL_SLICE test samples (views, no copy)."""
    return x[:EVAL_SLICE], y[:EVAL_SLICE]


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 5000) -> tuple[float, float]:
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
