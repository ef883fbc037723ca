"""Models, behind a small registry. The study's SimpleModel is the default."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


class SimpleModel(nn.Module):
    """The study's model (SEED.md), ~12.9k parameters, input 1x28x28.

    conv 1->10 k5, pool 2, relu (28->24->12); conv 10->20 k5, pool 2, relu (12->8->4);
    conv 20->40 k3, pool 2, relu (4->2->1); linear 40->10; log-softmax.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv3 = nn.Conv2d(20, 40, kernel_size=3)
        self.fc = nn.Linear(40, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        x = F.relu(F.max_pool2d(self.conv3(x), 2))
        x = x.flatten(1)
        return F.log_softmax(self.fc(x), dim=1)


MODELS: dict[str, Callable[[], nn.Module]] = {
    "simple_cnn": SimpleModel,
}


def build_model(name: str) -> nn.Module:
    """A fresh model by registry name (names are checked by the config loader)."""
    try:
        return MODELS[name]()
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}") from None


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
