"""The user's own dataset, "package.module:factory": imported and called under guard, its tensors or
torch Datasets checked (image shape, integer labels, one dataset across the splits); never a fallback.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.utils.data

from trainer.config import DataConfig
from trainer.config.user_code import FactoryError, guarded, import_factory, kind, one_line
from trainer.data.datasets.dataset import Dataset, DatasetUnavailable, Split

FACTORY_FIX = (
    "return (train_x, train_y, test_x, test_y) tensors - inputs [N, C, H, W] (float, or uint8 "
    "scaled by 1/255), labels [N] of classes 0..C-1 - or (train, test) torch Datasets of (input, label)"
)
MAX_CLASSES = 100_000


def _as_tensors(part: Any, which: str, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A factory's split: (x, y) tensors, or a Dataset of (input, label) pairs stacked into them."""
    if isinstance(part, torch.utils.data.Dataset) and not isinstance(part, tuple):
        try:
            pairs = [part[i] for i in range(len(part))]  # type: ignore[arg-type]
            x = torch.stack([torch.as_tensor(p[0]) for p in pairs])
            y = torch.as_tensor([int(p[1]) for p in pairs], dtype=torch.int64)
        except Exception as exc:  # noqa: BLE001 - the user's Dataset
            raise DatasetUnavailable(
                name, f"reading its {which} Dataset failed ({one_line(exc)})", FACTORY_FIX
            ) from exc
        return x, y
    raise DatasetUnavailable(name, f"its {which} split is {kind(part)}", FACTORY_FIX)


def factory_dataset(name: str, cfg: DataConfig) -> Dataset:
    """The dataset a "package.module:factory" returns, checked: DatasetUnavailable naming the fix."""
    try:
        factory = import_factory(name, cfg.path, "data.path")
    except FactoryError as exc:
        raise DatasetUnavailable(name, exc.cause, exc.fix) from exc
    try:
        out = guarded(f"calling your factory {name}", f"the factory {name}", factory)
    except FactoryError as exc:
        raise DatasetUnavailable(name, exc.cause, exc.fix) from exc
    except Exception as exc:  # noqa: BLE001 - whatever the user's code raises is reported, not a traceback
        raise DatasetUnavailable(name, f"the factory raised {one_line(exc)}", "fix the factory") from exc
    if isinstance(out, (tuple, list)) and len(out) == 4 and all(isinstance(t, torch.Tensor) for t in out):
        train, test = (out[0], out[1]), (out[2], out[3])
    elif isinstance(out, (tuple, list)) and len(out) == 2:
        train, test = _as_tensors(out[0], "train", name), _as_tensors(out[1], "test", name)
    else:
        raise DatasetUnavailable(
            name,
            f"the factory returned {kind(out)}"
            + (f" of {len(out)}" if isinstance(out, (tuple, list)) else ""),
            FACTORY_FIX,
        )
    splits = []
    for which, (x, y) in (("train", train), ("test", test)):
        if x.dim() != 4 or not (x.is_floating_point() or x.dtype == torch.uint8):
            raise DatasetUnavailable(
                name,
                f"its {which} inputs are {x.dtype} of shape {list(x.shape)}, not images "
                "[N, C, H, W] of floats or uint8",
                FACTORY_FIX,
            )
        if y.dim() != 1 or y.is_floating_point() or y.dtype == torch.bool or y.shape[0] != x.shape[0]:
            raise DatasetUnavailable(
                name,
                f"its {which} labels are {y.dtype} of shape {list(y.shape)} for "
                f"{x.shape[0]} inputs; they must be integer classes [N]",
                FACTORY_FIX,
            )
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= MAX_CLASSES):
            raise DatasetUnavailable(
                name,
                f"its {which} labels run from {int(y.min())} to {int(y.max())}; classes are 0..C-1",
                FACTORY_FIX,
            )
        splits.append(Split(x.detach().cpu().contiguous(), y.detach().cpu().to(torch.int64)))
    if splits[0].images.shape[1:] != splits[1].images.shape[1:] or not len(splits[0]):
        raise DatasetUnavailable(
            name,
            f"its train inputs {list(splits[0].images.shape)} and test inputs "
            f"{list(splits[1].images.shape)} do not make one dataset",
            FACTORY_FIX,
        )
    classes = 1 + max(int(s.labels.max()) for s in splits if len(s))
    if classes < 2:
        raise DatasetUnavailable(
            name, "its labels hold one class only", "return labels of at least two classes"
        )
    return Dataset(name, "", f"{name} ({cfg.path or 'installed'})", splits[0], splits[1], num_classes=classes)
