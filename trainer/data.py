"""Datasets: what a sweep trains and evaluates on (the input pipelines are trainer/pipelines.py).

Datasets (`load_dataset`): mnist and fashion-mnist (a local IDX folder, or torchvision
and its download), synthetic-digits (made here, trainer/data_synthetic.py), and the user's
own, "package.module:factory" (issue 16: tensors or Datasets, checked; never a fallback). When
the configured dataset cannot be had, `data.fallback` is used visibly (a note that the
sweep logs and records) or, with fallback "", `DatasetUnavailable` says why and how
to fix it. Never a silent substitution.
"""
from __future__ import annotations

import gzip
import math
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.utils.data

from trainer.config import DataConfig
from trainer.config.schema import is_factory
from trainer.factory import FactoryError, import_factory, kind, one_line
from trainer.data_synthetic import DEFAULT_PARAMS, Stage, SyntheticParams, synthetic_splits

DATASETS = ("mnist", "fashion-mnist", "synthetic-digits")
PIPELINES = ("resident", "dataloader")
SYSTEM_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
MNIST_TRAIN, MNIST_TEST = 60_000, 10_000  # synthetic-digits matches MNIST's split sizes
NUM_CLASSES = 10  # digits and Fashion-MNIST classes: labels 0-9
DOWNLOAD_TIMEOUT_S = 30.0  # per socket operation; torchvision's urlopen sets no timeout of its own
# The four IDX files of an MNIST-format dataset: (split, kind) -> base name (".gz" optional).
IDX_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True, eq=False)
class Split:
    """One split: images uint8 [N, 28, 28] on the CPU (grey images, the built-in datasets), or a
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


def _idx_fix(name: str, root: Path) -> str:
    return (
        f"set data.download = true (needs network), put the four IDX files (train-images-idx3-ubyte[.gz], "
        f"train-labels-idx1-ubyte[.gz], t10k-...) in {root / name}, or set data.fallback = \"synthetic-digits\""
    )


# ---------------------------------------------------------------- IDX files


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
        raise IdxFormatError(f"{path}: holds the label {bad}, but the classes are 0-{NUM_CLASSES - 1}; "
                             "the file is corrupt or not an MNIST labels file, replace it")


# ---------------------------------------------------------------- datasets


def _local_folders(name: str, root: Path) -> list[Path]:
    """Where an IDX folder of `name` is looked for, in order."""
    if name == "fashion-mnist":
        return [root, root / "fashion-mnist", root / "FashionMNIST" / "raw", SYSTEM_FASHION_MNIST]
    return [root / "mnist", root / "MNIST" / "raw"]


def _short(exc: BaseException) -> str:
    """One short line of an exception (torchvision's download errors span lines)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[-1] if lines else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


#: The hosts torchvision downloads each dataset from (torchvision.datasets MNIST/FashionMNIST mirrors).
DOWNLOAD_HOSTS = {
    "mnist": ("ossci-datasets.s3.amazonaws.com", "yann.lecun.com"),
    "fashion-mnist": ("fashion-mnist.s3-website.eu-central-1.amazonaws.com",),
}


def _unresolvable(name: str) -> str:
    """Why no download host of `name` has an address (name lookup failed for every one: offline),
    or "" when one resolves or the lookup cannot tell (then torchvision tries, as before)."""
    why = ""
    for host in DOWNLOAD_HOSTS.get(name, ()):
        try:
            socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
            return ""
        except socket.gaierror as exc:
            why = why or f"cannot resolve {host}: {exc.strerror or exc}"
        except OSError:
            return ""
    return why


def _torchvision_download(name: str, root: Path, download: bool) -> tuple[Split, Split]:
    """Through torchvision's MNIST/FashionMNIST (its layout under root; downloads when
    allowed). Any failure becomes DatasetUnavailable with a short cause."""
    if not download:
        raise DatasetUnavailable(
            name, f"was not found under {root} (looked in {', '.join(map(str, _local_folders(name, root)))}) "
            "and data.download = false", _idx_fix(name, root),
        )
    offline = _unresolvable(name)
    if offline:  # no DNS: say so at once instead of importing torchvision (seconds) to fail the same way
        raise DatasetUnavailable(name, f"could not be downloaded (offline: {offline})", _idx_fix(name, root))
    from torchvision import datasets

    cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
    # A download must fail in seconds, not hang: bound every socket operation while it runs.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        train = cls(str(root), train=True, download=True)
        test = cls(str(root), train=False, download=True)
    except Exception as exc:  # offline: RuntimeError wrapping URLError; bad md5; disk full
        raise DatasetUnavailable(name, f"could not be downloaded ({_short(exc)})", _idx_fix(name, root)) from exc
    finally:
        socket.setdefaulttimeout(previous)
    try:  # torchvision reads the raw files it finds without looking at the labels
        check_labels(train.targets, train.raw_folder)
        check_labels(test.targets, test.raw_folder)
    except IdxFormatError as exc:
        raise DatasetUnavailable(name, f"has a bad file ({exc})", "replace or remove that file") from exc
    return (
        Split(train.data.contiguous(), train.targets.to(torch.int64)),
        Split(test.data.contiguous(), test.targets.to(torch.int64)),
    )


def _load_idx_dataset(name: str, root: Path, download: bool) -> tuple[Split, Split, str]:
    for folder in _local_folders(name, root):
        try:
            found = read_idx_folder(folder)
        except IdxFormatError as exc:
            raise DatasetUnavailable(name, f"has a bad file ({exc})", "replace or remove that file") from exc
        if found is not None:
            return found[0], found[1], str(folder)
    train, test = _torchvision_download(name, root, download)
    return train, test, str(root / ("MNIST" if name == "mnist" else "FashionMNIST") / "raw")


def synthetic_digits(
    n_train: int = MNIST_TRAIN,
    n_test: int = MNIST_TEST,
    seed: int = 0,
    cache_dir: Path | None = None,
    params: SyntheticParams = DEFAULT_PARAMS,
    log: Callable[[str], None] | None = None,
    stage: Stage | None = None,
) -> Dataset:
    """The synthetic-digits dataset (trainer/data_synthetic.py): train and test from
    different random streams; with cache_dir, kept there as .npz and reused."""
    (train_x, train_y), (test_x, test_y) = synthetic_splits(n_train, n_test, seed, cache_dir, params, log, stage)
    return Dataset("synthetic-digits", "", f"generated (seed {seed})", Split(train_x, train_y), Split(test_x, test_y))


FACTORY_FIX = ("return (train_x, train_y, test_x, test_y) tensors - inputs [N, C, H, W] (float, or uint8 "
               "scaled by 1/255), labels [N] of classes 0..C-1 - or (train, test) torch Datasets of (input, label)")
MAX_CLASSES = 100_000


def _as_tensors(part: Any, which: str, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A factory's split: (x, y) tensors, or a Dataset of (input, label) pairs stacked into them."""
    if isinstance(part, torch.utils.data.Dataset) and not isinstance(part, tuple):
        try:
            pairs = [part[i] for i in range(len(part))]  # type: ignore[arg-type]
            x = torch.stack([torch.as_tensor(p[0]) for p in pairs])
            y = torch.as_tensor([int(p[1]) for p in pairs], dtype=torch.int64)
        except Exception as exc:  # noqa: BLE001 - the user's Dataset
            raise DatasetUnavailable(name, f"reading its {which} Dataset failed ({one_line(exc)})", FACTORY_FIX) from exc
        return x, y
    raise DatasetUnavailable(name, f"its {which} split is {kind(part)}", FACTORY_FIX)


def _factory_splits(name: str, cfg: DataConfig) -> Dataset:
    """The dataset a "package.module:factory" returns, checked: DatasetUnavailable naming the fix."""
    try:
        factory = import_factory(name, cfg.path, "data.path")
    except FactoryError as exc:
        raise DatasetUnavailable(name, exc.cause, exc.fix) from exc
    try:
        out = factory()
    except Exception as exc:  # noqa: BLE001 - whatever the user's code raises is reported, not a traceback
        raise DatasetUnavailable(name, f"the factory raised {one_line(exc)}", "fix the factory") from exc
    if isinstance(out, (tuple, list)) and len(out) == 4 and all(isinstance(t, torch.Tensor) for t in out):
        train, test = (out[0], out[1]), (out[2], out[3])
    elif isinstance(out, (tuple, list)) and len(out) == 2:
        train, test = _as_tensors(out[0], "train", name), _as_tensors(out[1], "test", name)
    else:
        raise DatasetUnavailable(name, f"the factory returned {kind(out)}" + (f" of {len(out)}" if isinstance(
            out, (tuple, list)) else ""), FACTORY_FIX)
    splits = []
    for which, (x, y) in (("train", train), ("test", test)):
        if x.dim() != 4 or not (x.is_floating_point() or x.dtype == torch.uint8):
            raise DatasetUnavailable(name, f"its {which} inputs are {x.dtype} of shape {list(x.shape)}, not images "
                                     "[N, C, H, W] of floats or uint8", FACTORY_FIX)
        if y.dim() != 1 or y.is_floating_point() or y.dtype == torch.bool or y.shape[0] != x.shape[0]:
            raise DatasetUnavailable(name, f"its {which} labels are {y.dtype} of shape {list(y.shape)} for "
                                     f"{x.shape[0]} inputs; they must be integer classes [N]", FACTORY_FIX)
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= MAX_CLASSES):
            raise DatasetUnavailable(name, f"its {which} labels run from {int(y.min())} to {int(y.max())}; classes "
                                     f"are 0..C-1", FACTORY_FIX)
        splits.append(Split(x.detach().cpu().contiguous(), y.detach().cpu().to(torch.int64)))
    if splits[0].images.shape[1:] != splits[1].images.shape[1:] or not len(splits[0]):
        raise DatasetUnavailable(name, f"its train inputs {list(splits[0].images.shape)} and test inputs "
                                 f"{list(splits[1].images.shape)} do not make one dataset", FACTORY_FIX)
    classes = 1 + max(int(s.labels.max()) for s in splits if len(s))
    if classes < 2:
        raise DatasetUnavailable(name, "its labels hold one class only", "return labels of at least two classes")
    return Dataset(name, "", f"{name} ({cfg.path or 'installed'})", splits[0], splits[1], num_classes=classes)


def _load_one(name: str, cfg: DataConfig, seed: int, log: Callable[[str], None] | None = None,
              stage: Stage | None = None) -> Dataset:
    root = Path(os.path.expanduser(cfg.root))
    if is_factory(name):
        if stage is not None:
            stage(f"loading {name}", None)
        return _factory_splits(name, cfg)
    if name == "synthetic-digits":
        # Generate only what is used (a prefix of the full set is the smaller set); cache
        # only the full set, the one that takes seconds to make.
        n_train = cfg.train_samples if 0 < cfg.train_samples < MNIST_TRAIN else MNIST_TRAIN
        n_test = cfg.test_samples if 0 < cfg.test_samples < MNIST_TEST else MNIST_TEST
        full = (n_train, n_test) == (MNIST_TRAIN, MNIST_TEST)
        try:
            return synthetic_digits(n_train, n_test, seed, cache_dir=root / "synthetic-digits" if full else None,
                                    log=log, stage=stage)
        except RuntimeError as exc:  # Pillow without FreeType
            raise DatasetUnavailable(name, f"cannot be generated ({exc})", "install Pillow >= 10.1 from its wheels") from exc
    if name in ("mnist", "fashion-mnist"):
        if stage is not None:
            stage(f"loading {name}", None)
        train, test, source = _load_idx_dataset(name, root, cfg.download)
        return Dataset(name, "", source, train, test)
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")


def load_dataset(cfg: DataConfig, seed: int = 0, log: Callable[[str], None] | None = None,
                 stage: Stage | None = None) -> Dataset:
    """The configured dataset, or its fallback (visibly: log(note) and Dataset.note),
    cut to cfg.train_samples / cfg.test_samples when those are > 0.

    `stage(text, fraction)` hears the start-up stages (loading, generating with its share done).
    Raises DatasetUnavailable when the dataset cannot be had and there is no usable
    fallback (data.fallback = "" or the fallback fails too)."""
    try:
        ds = _load_one(cfg.dataset, cfg, seed, log, stage)
    except DatasetUnavailable as exc:
        fallback = cfg.fallback
        if not fallback or fallback == cfg.dataset or is_factory(cfg.dataset):  # your own data: fix it, no stand-in
            raise
        note = f"{cfg.dataset} {exc.cause}; using {fallback} (data.fallback)"
        try:
            ds = _load_one(fallback, cfg, seed, log, stage)
        except DatasetUnavailable as exc2:
            raise DatasetUnavailable(
                cfg.dataset, f"{exc.cause}, and the fallback {fallback} {exc2.cause}", f"{exc.fix}; {exc2.fix}"
            ) from exc2
        ds.note = note
        if log is not None:
            log(note)
    ds.train = ds.train.head(cfg.train_samples)
    ds.test = ds.test.head(cfg.test_samples)
    return ds
