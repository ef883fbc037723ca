"""The dataset a sweep trains on: its two splits (images and labels on the CPU), how it was had, the
input form a model sees (`as_inputs`), the checks every loaded dataset passes before anything trains
(finite inputs, a shape data.augment takes), its size on the device, and DatasetUnavailable, the error
that names the cause and the fix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

NUM_CLASSES = 10  # digits and Fashion-MNIST classes: labels 0-9


@dataclass(frozen=True, eq=False)
class Split:
    """One split: images uint8 [N, 28, 28] on the CPU (grey images: mnist, fashion-mnist, kmnist), uint8
    [N, 3, H, W] (cifar10, cifar100, an image folder), float32 [N, C, H, W] (data.normalize = "dataset"), or a
    factory's inputs as given (float [N, C, H, W], or uint8 [N, C, H, W] scaled by 1/255), labels
    int64 [N]. Frozen: a converted copy is kept per split (pipelines.resident), so a split never
    changes its tensors."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def head(self, n: int) -> Split:
        """The first n samples (all when n <= 0 or n >= len)."""
        if n <= 0 or n >= len(self):
            return self
        return Split(self.images[:n], self.labels[:n])


@dataclass
class Dataset:
    """The dataset a sweep trains on, and how it was had."""

    name: str  # the dataset actually used
    note: str  # "" or why a fallback was used
    source: str  # the folder read, or "generated (seed S)"
    train: Split
    test: Split
    num_classes: int = NUM_CLASSES  # labels are 0..num_classes-1
    # data.normalize = "dataset": {"mean": [...], "std": [...], "cache": where kept}; {} otherwise
    normalization: dict[str, Any] = field(default_factory=dict)


def is_grey(images: torch.Tensor) -> bool:
    """Whether a split holds grey uint8 images [N, H, W] (the built-in datasets' form)."""
    return images.dtype == torch.uint8 and images.dim() == 3


def as_inputs(images: torch.Tensor) -> torch.Tensor:
    """Images as a model sees them: uint8 [N, 28, 28] -> float32 [N, 1, 28, 28] in [0, 1] (ToTensor's
    x / 255); uint8 [N, C, H, W] -> float32 / 255; float inputs (a factory's) as float32, unchanged."""
    if images.dtype == torch.uint8:
        return (images.unsqueeze(1) if images.dim() == 3 else images).to(torch.float32).div(255)
    return images.to(torch.float32)


class DatasetUnavailable(Exception):
    """The configured dataset cannot be had; the message names the cause and the fix."""

    def __init__(self, dataset: str, cause: str, fix: str) -> None:
        self.dataset = dataset
        self.cause = cause  # short: "could not be downloaded (...)", "was not found under ..."
        self.fix = fix
        super().__init__(f"{dataset} {cause}. Fix: {fix}")


#: Input values checked for NaN and infinity per split before training: every sample of a split up to this
#: many values (256 MB of float32), else this many values' worth of samples spread evenly over it.
FINITE_CHECK_VALUES = 1 << 26


def check_finite(ds: Dataset) -> None:
    """Float inputs (a factory's) with NaN or infinity would train to NaN and look like a too-large lr (or a
    broken model): DatasetUnavailable naming the split, the first bad sample found and the fix, before
    anything trains. Integer images cannot hold either. Bounded: see FINITE_CHECK_VALUES."""
    for which, split in (("train", ds.train), ("test", ds.test)):
        x = split.images
        if not x.is_floating_point() or not len(split):
            continue
        per_sample = max(1, x[0].numel())
        n = len(split)
        step = max(
            1, -(-n * per_sample // FINITE_CHECK_VALUES)
        )  # ceil: every sample while it fits the budget
        checked = 0
        chunk = max(1, (1 << 22) // per_sample) * step  # a few million values at a time: bounded memory
        for start in range(0, n, chunk):
            idx = torch.arange(start, min(n, start + chunk), step)
            bad = ~torch.isfinite(x[idx]).flatten(1).all(dim=1)
            checked += len(idx)
            if bool(bad.any()):
                i = int(idx[bad.nonzero()[0, 0]])
                what = "NaN" if bool(torch.isnan(x[i]).any()) else "infinity"
                sampled = "" if step == 1 else f" (every {step}th sample is checked: {checked:,} so far)"
                raise DatasetUnavailable(
                    ds.name,
                    f"its {which} inputs hold {what}: sample {i} of {n:,} has non-finite values{sampled}; "
                    "training on them would turn every loss into NaN",
                    "repair or drop those samples in the factory (torch.isfinite(x).flatten(1).all(1) finds them)",
                )


def check_augment(augment: str, ds: Dataset) -> None:
    """data.augment = "crop_flip" needs 32x32 images: DatasetUnavailable (exit 2) naming the shape otherwise."""
    if augment == "none":
        return
    shape = list(as_inputs(ds.train.images[:1]).shape[1:])
    if shape[1:] != [32, 32]:
        fallback = f" (the fallback: {ds.note})" if ds.note else ""
        raise DatasetUnavailable(
            ds.name,
            f"holds inputs of shape {shape}{fallback}, but data.augment = \"{augment}\" takes 32x32 images",
            'set data.augment = "none", or give the sweep 32x32 images'
            + ('; set data.fallback = "" to fail on the missing dataset itself' if ds.note else ""),
        )


def data_bytes(ds: Dataset) -> int:
    """Bytes the resident pipeline holds on the device for `ds`: both splits as float32 inputs, int64 labels."""
    total = 0
    for split in (ds.train, ds.test):
        per_sample = math.prod(as_inputs(split.images[:1]).shape[1:]) if len(split) else 0
        total += len(split) * (4 * per_sample + 8)
    return total
