"""Factories of the user's own datasets, for tests/trainer/test_data_factory.py (data.dataset =
"tests.trainer.factory_data:NAME"): 32x32 colour tensors of 4 classes, Datasets of small grey images,
and the mistakes a user makes."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import TensorDataset


def _colour(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 32, 32, generator=g)
    y = torch.randint(0, 4, (n,), generator=g)
    x[torch.arange(n), y % 3] += (
        0.5 * (1 + (y // 3)).unsqueeze(1).unsqueeze(2).float()
    )  # learnable: a bright channel
    return x, y


def colour_tensors():
    """(train_x, train_y, test_x, test_y): float [N, 3, 32, 32], 4 classes."""
    return (*_colour(800, 0), *_colour(200, 1))


def grey_datasets():
    """(train, test) Datasets of uint8 [1, 16, 16] images, 10 classes."""
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, 256, (300, 1, 16, 16), dtype=torch.uint8, generator=g)
    y = torch.arange(300) % 10
    return TensorDataset(x[:240], y[:240]), TensorDataset(x[240:], y[240:])


def float_labels():
    x, y = _colour(50, 0)
    return x, y.float(), x, y.float()


def three_things():
    return _colour(50, 0) + (None,)


def raises():
    raise FileNotFoundError("/data/my-set/train.npz")


def colour_cnn(classes: int = 4) -> nn.Module:
    """A small CNN with batch norm for the colour tensors (logits)."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, classes),
    )
