"""Factories that misbehave, for tests/trainer/test_factory_guard.py: data holding NaN or infinity, a
factory that calls sys.exit, one that takes its time."""

from __future__ import annotations

import sys
import threading

import torch
from torch import nn


def _tensors(n: int = 64):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, 8, 8, generator=g)
    y = torch.arange(n) % 2
    return x, y


def one_nan_sample():
    x, y = _tensors()
    x[37, 0, 3, 4] = float("nan")
    return x, y, *_tensors(16)


def inf_test_inputs():
    x, y = _tensors(16)
    x[2] = float("inf")
    return (*_tensors(), x, y)


def exits():
    sys.exit(0)


def exits_model(**args) -> nn.Module:
    raise SystemExit(3)


#: Set by the test once it has heard the factory reported as slow; `slow` runs until then.
reported = threading.Event()


def slow():
    """A factory that takes its time: it returns once it has been reported as slow (or after a minute)."""
    reported.wait(60)
    return (*_tensors(), *_tensors(16))


class _ExitingForward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 2)

    def forward(self, x):
        sys.exit("bye")


def exits_in_forward() -> nn.Module:
    return _ExitingForward()
