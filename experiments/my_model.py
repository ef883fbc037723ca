"""An example of your own model for bstui (experiments/own-model.toml): a module of your project with a
function that returns the nn.Module. bstui imports it from the config file's folder (this one) first,
then from the installed packages, and calls build(**[model.args]).

The model gets batches of images [batch, 1, 28, 28] in [0, 1] and returns [batch, 10] logits
(model.output = "logits": bstui applies the log-softmax, so the loss is the cross-entropy).
"""

from __future__ import annotations

from torch import nn


def build(width: int = 16, hidden: int = 64) -> nn.Module:
    """A two-conv CNN a little wider than the study's; `width` channels in the first conv."""
    return nn.Sequential(
        nn.Conv2d(1, width, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 28 -> 14
        nn.Conv2d(width, 2 * width, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 14 -> 7
        nn.Flatten(),
        nn.Linear(2 * width * 7 * 7, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 10),
    )
