"""Factories of the user's own models, for tests/trainer/test_model_factory.py (model.name =
"tests.trainer.factory_models:NAME"): a working one, and one of each mistake a user makes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Mlp(nn.Module):
    """A small MLP on 1x28x28 images that returns logits."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(28 * 28, hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def mlp(hidden: int = 32) -> nn.Module:
    """Logits (model.output = "logits")."""
    return Mlp(hidden)


def mlp_log_probs(hidden: int = 32) -> nn.Module:
    """Log-probabilities (model.output = "log_probs", the default)."""
    return nn.Sequential(Mlp(hidden), nn.LogSoftmax(dim=1))


def raises(hidden: int = 32) -> nn.Module:
    raise RuntimeError("the weights file is missing")


def not_a_module() -> object:
    return [nn.Linear(784, 10)]


def three_classes() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 3), nn.LogSoftmax(dim=1))


def colour_input() -> nn.Module:
    """Expects 3-channel images: fails on MNIST-shaped batches."""
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(10), nn.LogSoftmax(dim=1))


NOT_CALLABLE = 3
