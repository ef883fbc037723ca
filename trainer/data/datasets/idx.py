"""MNIST-format datasets (mnist, fashion-mnist, kmnist): the IDX files of a local folder (read and
checked here), or torchvision's download into data.root when allowed.
"""

from __future__ import annotations

import gzip
import math
import os
from pathlib import Path

import numpy as np
import torch

from trainer.data.datasets.dataset import NUM_CLASSES, DatasetUnavailable, Split
from trainer.data.datasets.download import short_error, socket_deadline, unresolvable

SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
# The four IDX files of an MNIST-format dataset: (split, kind) -> base name (".gz" optional).
IDX_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}


#: torchvision's class and raw folder (under data.root) of each IDX dataset it downloads.
TORCHVISION_IDX = {
    "mnist": ("MNIST", "MNIST"),
    "fashion-mnist": ("FashionMNIST", "FashionMNIST"),
    "kmnist": ("KMNIST", "KMNIST"),
}


def _idx_fix(name: str, root: Path) -> str:
    return (
        f"set data.download = true (needs network), put the four IDX files (train-images-idx3-ubyte[.gz], "
        f"train-labels-idx1-ubyte[.gz], t10k-...) in {root / name}, or set data.fallback = \"synthetic-digits\""
    )


class IdxFormatError(ValueError):
    """A file that is not a valid IDX file of the expected shape."""


def read_idx(path: str | os.PathLike[str], ndim: int | None = None) -> np.ndarray:
    """An IDX file (MNIST's format, gzipped or not) as a uint8 numpy array.

    Checks the magic number (0x00 0x00 0x08 = unsigned bytes, then the number of
    dimensions), the dimensions against `ndim` when given, and that the data length
    matches the header, so a truncated or wrong file is an error, not garbage."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise IdxFormatError(f"{path}: cannot read ({exc}); replace the file") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise IdxFormatError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    if raw[2] != 0x08:
        raise IdxFormatError(f"{path}: IDX data type 0x{raw[2]:02x} is not unsigned bytes (0x08)")
    dims = raw[3]
    if ndim is not None and dims != ndim:
        raise IdxFormatError(f"{path}: has {dims} dimensions, expected {ndim}")
    header = 4 + 4 * dims
    if len(raw) < header:
        raise IdxFormatError(f"{path}: truncated header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    expected = math.prod(shape)
    if len(raw) - header != expected:
        raise IdxFormatError(
            f"{path}: header says shape {shape} ({expected} bytes) but holds {len(raw) - header} bytes; "
            "the file is truncated or corrupt, replace it"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find_idx(folder: Path, base: str) -> Path | None:
    for name in (base, base + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def read_idx_folder(folder: Path) -> tuple[Split, Split] | None:
    """(train, test) from a folder holding the four IDX files, None if any is missing.
    A present but bad file raises IdxFormatError."""
    paths = {key: _find_idx(folder, base) for key, base in IDX_FILES.items()}
    if any(p is None for p in paths.values()):
        return None
    splits = []
    for split in ("train", "test"):
        images = read_idx(paths[(split, "images")], ndim=3)
        labels = read_idx(paths[(split, "labels")], ndim=1)
        if images.shape[1:] != (28, 28) or images.shape[0] != labels.shape[0]:
            raise IdxFormatError(
                f"{folder}: {split} images {images.shape} and labels {labels.shape} do not make a "
                "28 x 28 dataset"
            )
        check_labels(labels, paths[(split, "labels")])
        splits.append(Split(torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))))
    return splits[0], splits[1]


def check_labels(labels: np.ndarray | torch.Tensor, path: str | os.PathLike[str]) -> None:
    """IdxFormatError unless every label is a class 0-9: a label file can be valid IDX and still hold
    a 200, which would only fail later, inside the loss, as a run's traceback."""
    if labels.shape[0] == 0:
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= NUM_CLASSES:
        bad = high if high >= NUM_CLASSES else low
        raise IdxFormatError(
            f"{path}: holds the label {bad}, but the classes are 0-{NUM_CLASSES - 1}; "
            "the file is corrupt or not an MNIST labels file, replace it"
        )


def _local_folders(name: str, root: Path) -> list[Path]:
    """Where an IDX folder of `name` is looked for, in order."""
    if name == "fashion-mnist":
        return [root, root / "fashion-mnist", root / "FashionMNIST" / "raw", SYSTEM_FASHION_MNIST]
    if name == "kmnist":
        return [root / "kmnist", root / "KMNIST" / "raw"]
    return [root / "mnist", root / "MNIST" / "raw"]


def _torchvision_download(name: str, root: Path, download: bool) -> tuple[Split, Split]:
    """Through torchvision's MNIST/FashionMNIST (its layout under root; downloads when
    allowed). Any failure becomes DatasetUnavailable with a short cause."""
    if not download:
        raise DatasetUnavailable(
            name,
            f"was not found under {root} (looked in {', '.join(map(str, _local_folders(name, root)))}) "
            "and data.download = false",
            _idx_fix(name, root),
        )
    offline = unresolvable(name)
    if offline:  # no DNS: say so at once instead of importing torchvision (seconds) to fail the same way
        raise DatasetUnavailable(name, f"could not be downloaded (offline: {offline})", _idx_fix(name, root))
    from torchvision import datasets

    cls = getattr(datasets, TORCHVISION_IDX[name][0])
    try:
        with socket_deadline():
            train = cls(str(root), train=True, download=True)
            test = cls(str(root), train=False, download=True)
    except Exception as exc:  # offline: RuntimeError wrapping URLError; bad md5; disk full
        raise DatasetUnavailable(
            name, f"could not be downloaded ({short_error(exc)})", _idx_fix(name, root)
        ) from exc
    try:  # torchvision reads the raw files it finds without looking at the labels
        check_labels(train.targets, train.raw_folder)
        check_labels(test.targets, test.raw_folder)
    except IdxFormatError as exc:
        raise DatasetUnavailable(name, f"has a bad file ({exc})", "replace or remove that file") from exc
    return (
        Split(train.data.contiguous(), train.targets.to(torch.int64)),
        Split(test.data.contiguous(), test.targets.to(torch.int64)),
    )


def load_idx_dataset(name: str, root: Path, download: bool) -> tuple[Split, Split, str]:
    for folder in _local_folders(name, root):
        try:
            found = read_idx_folder(folder)
        except IdxFormatError as exc:
            raise DatasetUnavailable(name, f"has a bad file ({exc})", "replace or remove that file") from exc
        if found is not None:
            return found[0], found[1], str(folder)
    train, test = _torchvision_download(name, root, download)
    return train, test, str(root / TORCHVISION_IDX[name][1] / "raw")
