"""CIFAR-10 and CIFAR-100: the python version's pickles from data.root as torchvision lays them out,
read by an unpickler that admits only what they hold, or downloaded through torchvision when allowed.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer.config.user_code import one_line
from trainer.data.datasets.dataset import DatasetUnavailable, Split
from trainer.data.datasets.download import short_error, socket_deadline, unresolvable
from trainer.data.datasets.idx import IdxFormatError


@dataclass(frozen=True)
class CifarLayout:
    folder: str  # the folder torchvision's CIFAR10/CIFAR100 extract under data.root
    train: tuple[str, ...]  # its pickles of the training split
    test: str
    label_key: str
    classes: int
    tv_class: str  # torchvision.datasets' class (downloads only)


CIFAR = {
    "cifar10": CifarLayout(
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        "test_batch",
        "labels",
        10,
        "CIFAR10",
    ),
    "cifar100": CifarLayout("cifar-100-python", ("train",), "test", "fine_labels", 100, "CIFAR100"),
}


def _cifar_fix(name: str, root: Path) -> str:
    layout = CIFAR[name]
    return (
        f"copy {layout.folder} (the extracted python version of the dataset: {', '.join(layout.train)}, "
        f"{layout.test}) into {root}, or set data.download = true (needs network)"
    )


class CifarUnpickler(pickle.Unpickler):
    """Unpickles what CIFAR's batches hold (numpy arrays, dicts, lists, strings, numbers) and nothing
    else: any other global a pickle names (os.system, builtins.eval, ...) is an UnpicklingError."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR batch never holds")
        if name == "_reconstruct":  # numpy 2 moved numpy.core to numpy._core; old pickles name either
            return np.ndarray.__reduce__(np.zeros(0))[0]
        return getattr(np if module == "numpy" else __import__(module), name)


def read_cifar_batch(path: Path, label_key: str, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One pickle of the CIFAR "python version" (a dict: "data" uint8 [N, 3072] rows of R, G, B planes
    of 32x32, and the labels list) as uint8 [N, 3, 32, 32] and int64 [N]. Read here rather than through
    torchvision, whose dataset classes insist on the archive's md5 sums even for a folder already in
    place. The files are pickles, read by an unpickler that builds numpy arrays, dicts, lists and
    strings only (CifarUnpickler): a hostile file is refused, never run."""
    try:
        with open(path, "rb") as f:
            entry = CifarUnpickler(f, encoding="latin1").load()
        if not isinstance(entry, dict):
            raise TypeError(f"holds a {type(entry).__name__}, not a dict")
        data = np.asarray(entry["data"], dtype=np.uint8)
        labels = np.asarray(entry[label_key], dtype=np.int64)
    except Exception as exc:  # noqa: BLE001 - truncated, not a pickle, not the dict it should be
        raise IdxFormatError(f"{path}: not a CIFAR batch ({one_line(exc)}); replace the file") from exc
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != labels.shape[0]:
        raise IdxFormatError(
            f"{path}: data {data.shape} and labels {labels.shape} do not make 32x32 colour "
            "images; replace the file"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise IdxFormatError(
            f"{path}: holds the label {int(labels.max())}, but the classes are 0-{classes - 1}; "
            "replace the file"
        )
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels)


def read_cifar_folder(name: str, folder: Path) -> tuple[Split, Split] | None:
    """(train, test) from an extracted CIFAR folder, None if a file is missing; a bad file raises IdxFormatError."""
    layout = CIFAR[name]
    paths = [folder / f for f in (*layout.train, layout.test)]
    if not all(p.is_file() for p in paths):
        return None
    parts = [read_cifar_batch(p, layout.label_key, layout.classes) for p in paths]
    train_x = torch.cat([p[0] for p in parts[:-1]])
    train_y = torch.cat([p[1] for p in parts[:-1]])
    return Split(train_x, train_y), Split(*parts[-1])


def load_cifar(name: str, root: Path, download: bool) -> tuple[Split, Split, str]:
    """cifar10 / cifar100 from data.root as torchvision lays it out (ROOT/cifar-10-batches-py,
    ROOT/cifar-100-python), or ROOT/NAME/<that folder>; downloaded through torchvision when allowed."""
    layout = CIFAR[name]
    folders = [root / layout.folder, root / name / layout.folder]
    for folder in folders:
        try:
            found = read_cifar_folder(name, folder)
        except IdxFormatError as exc:
            raise DatasetUnavailable(name, f"has a bad file ({exc})", "replace or remove that file") from exc
        if found is not None:
            return found[0], found[1], str(folder)
    where = ", ".join(map(str, folders))
    if not download:
        raise DatasetUnavailable(
            name, f"was not found (looked in {where}) and data.download = false", _cifar_fix(name, root)
        )
    offline = unresolvable(name)
    if offline:
        raise DatasetUnavailable(
            name, f"was not found in {root} and downloads fail (offline: {offline})", _cifar_fix(name, root)
        )
    from torchvision import datasets

    try:
        with socket_deadline():
            getattr(datasets, layout.tv_class)(str(root), train=True, download=True)
    except Exception as exc:  # noqa: BLE001 - offline, bad md5, disk full
        raise DatasetUnavailable(
            name, f"was not found in {root} and downloads fail ({short_error(exc)})", _cifar_fix(name, root)
        ) from exc
    try:
        found = read_cifar_folder(name, folders[0])
    except IdxFormatError as exc:
        raise DatasetUnavailable(name, f"has a bad file ({exc})", "replace or remove that file") from exc
    if found is None:
        raise DatasetUnavailable(
            name, f"was downloaded but {folders[0]} lacks its files", _cifar_fix(name, root)
        )
    return found[0], found[1], str(folders[0])
