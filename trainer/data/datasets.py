"""Datasets: what a sweep trains and evaluates on (the input pipelines are trainer/data/pipelines.py).

Datasets (`load_dataset`): mnist and fashion-mnist (a local IDX folder, or torchvision
and its download), synthetic-digits (made here, trainer/data/synthetic.py), and the user's
own, "package.module:factory" (issue 16: tensors or Datasets, checked; never a fallback). When
the configured dataset cannot be had, `data.fallback` is used visibly (a note that the
sweep logs and records) or, with fallback "", `DatasetUnavailable` says why and how
to fix it. Never a silent substitution.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import os
import pickle
import socket
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.utils.data

from trainer.config import DATASETS, DataConfig
from trainer.config.schema import FOLDER_PREFIX, is_factory, is_folder
from trainer.config.user_code import FactoryError, guarded, import_factory, kind, one_line
from trainer.data.synthetic import DEFAULT_PARAMS, Stage, SyntheticParams, synthetic_splits

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
        raise IdxFormatError(
            f"{path}: holds the label {bad}, but the classes are 0-{NUM_CLASSES - 1}; "
            "the file is corrupt or not an MNIST labels file, replace it"
        )


# ---------------------------------------------------------------- datasets


def _local_folders(name: str, root: Path) -> list[Path]:
    """Where an IDX folder of `name` is looked for, in order."""
    if name == "fashion-mnist":
        return [root, root / "fashion-mnist", root / "FashionMNIST" / "raw", SYSTEM_FASHION_MNIST]
    if name == "kmnist":
        return [root / "kmnist", root / "KMNIST" / "raw"]
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
    "kmnist": ("codh.rois.ac.jp",),
    "cifar10": ("www.cs.toronto.edu",),
    "cifar100": ("www.cs.toronto.edu",),
}
#: torchvision's class and raw folder (under data.root) of each IDX dataset it downloads.
TORCHVISION_IDX = {
    "mnist": ("MNIST", "MNIST"),
    "fashion-mnist": ("FashionMNIST", "FashionMNIST"),
    "kmnist": ("KMNIST", "KMNIST"),
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


@contextlib.contextmanager
def _socket_deadline() -> Iterator[None]:
    """A download must fail in seconds, not hang: every socket operation bounded while it runs."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


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
    offline = _unresolvable(name)
    if offline:  # no DNS: say so at once instead of importing torchvision (seconds) to fail the same way
        raise DatasetUnavailable(name, f"could not be downloaded (offline: {offline})", _idx_fix(name, root))
    from torchvision import datasets

    cls = getattr(datasets, TORCHVISION_IDX[name][0])
    try:
        with _socket_deadline():
            train = cls(str(root), train=True, download=True)
            test = cls(str(root), train=False, download=True)
    except Exception as exc:  # offline: RuntimeError wrapping URLError; bad md5; disk full
        raise DatasetUnavailable(
            name, f"could not be downloaded ({_short(exc)})", _idx_fix(name, root)
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


def _load_idx_dataset(name: str, root: Path, download: bool) -> tuple[Split, Split, str]:
    for folder in _local_folders(name, root):
        try:
            found = read_idx_folder(folder)
        except IdxFormatError as exc:
            raise DatasetUnavailable(name, f"has a bad file ({exc})", "replace or remove that file") from exc
        if found is not None:
            return found[0], found[1], str(folder)
    train, test = _torchvision_download(name, root, download)
    return train, test, str(root / TORCHVISION_IDX[name][1] / "raw")


def synthetic_digits(
    n_train: int = MNIST_TRAIN,
    n_test: int = MNIST_TEST,
    seed: int = 0,
    cache_dir: Path | None = None,
    params: SyntheticParams = DEFAULT_PARAMS,
    log: Callable[[str], None] | None = None,
    stage: Stage | None = None,
) -> Dataset:
    """The synthetic-digits dataset (trainer/data/synthetic.py): train and test from
    different random streams; with cache_dir, kept there as .npz and reused."""
    (train_x, train_y), (test_x, test_y) = synthetic_splits(
        n_train, n_test, seed, cache_dir, params, log, stage
    )
    return Dataset(
        "synthetic-digits", "", f"generated (seed {seed})", Split(train_x, train_y), Split(test_x, test_y)
    )


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


def _factory_splits(name: str, cfg: DataConfig) -> Dataset:
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


def _load_one(
    name: str,
    cfg: DataConfig,
    seed: int,
    log: Callable[[str], None] | None = None,
    stage: Stage | None = None,
) -> Dataset:
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
            return synthetic_digits(
                n_train,
                n_test,
                seed,
                cache_dir=root / "synthetic-digits" if full else None,
                log=log,
                stage=stage,
            )
        except RuntimeError as exc:  # Pillow without FreeType
            raise DatasetUnavailable(
                name, f"cannot be generated ({exc})", "install Pillow >= 10.1 from its wheels"
            ) from exc
    if is_folder(name):
        if stage is not None:
            stage(f"loading {name}", None)
        return load_image_folder(name, cfg.test_fraction, seed)
    if name in ("cifar10", "cifar100"):
        if stage is not None:
            stage(f"loading {name}", None)
        train, test, source = load_cifar(name, root, cfg.download)
        return Dataset(name, "", source, train, test, num_classes=CIFAR[name].classes)
    if name in ("mnist", "fashion-mnist", "kmnist"):
        if stage is not None:
            stage(f"loading {name}", None)
        train, test, source = _load_idx_dataset(name, root, cfg.download)
        return Dataset(name, "", source, train, test)
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")


def load_dataset(
    cfg: DataConfig, seed: int = 0, log: Callable[[str], None] | None = None, stage: Stage | None = None
) -> Dataset:
    """The configured dataset, or its fallback (visibly: log(note) and Dataset.note),
    cut to cfg.train_samples / cfg.test_samples when those are > 0.

    `stage(text, fraction)` hears the start-up stages (loading, generating with its share done).
    Raises DatasetUnavailable when the dataset cannot be had and there is no usable
    fallback (data.fallback = "" or the fallback fails too)."""
    try:
        ds = _load_one(cfg.dataset, cfg, seed, log, stage)
    except DatasetUnavailable as exc:
        fallback = cfg.fallback
        if not fallback or fallback == cfg.dataset or is_factory(cfg.dataset) or is_folder(cfg.dataset):
            # your own data: fix it, no stand-in
            raise
        note = f"{cfg.dataset} {exc.cause}; using {fallback} (data.fallback)"
        try:
            ds = _load_one(fallback, cfg, seed, log, stage)
        except DatasetUnavailable as exc2:
            raise DatasetUnavailable(
                cfg.dataset,
                f"{exc.cause}, and the fallback {fallback} {exc2.cause}",
                f"{exc.fix}; {exc2.fix}",
            ) from exc2
        ds.note = note
        if log is not None:
            log(note)
    ds.train = ds.train.head(cfg.train_samples)
    ds.test = ds.test.head(cfg.test_samples)
    check_finite(ds)
    check_augment(cfg.augment, ds)
    if cfg.normalize == "dataset":
        normalize_dataset(ds, cfg, log)
    return ds


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


# ---------------------------------------------------------------- CIFAR-10 / CIFAR-100


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
    offline = _unresolvable(name)
    if offline:
        raise DatasetUnavailable(
            name, f"was not found in {root} and downloads fail (offline: {offline})", _cifar_fix(name, root)
        )
    from torchvision import datasets

    try:
        with _socket_deadline():
            getattr(datasets, layout.tv_class)(str(root), train=True, download=True)
    except Exception as exc:  # noqa: BLE001 - offline, bad md5, disk full
        raise DatasetUnavailable(
            name, f"was not found in {root} and downloads fail ({_short(exc)})", _cifar_fix(name, root)
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


# ---------------------------------------------------------------- an image folder ("folder:PATH")

FOLDER_FIX = (
    "put one subfolder of images per class in the folder (PATH/cat/1.png, PATH/dog/2.png), optionally "
    "under PATH/train and PATH/test"
)


def _read_folder(name: str, folder: Path) -> tuple[list[str], list[tuple[str, int]], int]:
    """The classes (subfolders, sorted) and (path, class) samples of `folder`, as torchvision's ImageFolder
    finds them, but never through a symbolic link (a link out of the tree, or back into it, would read
    files twice or from elsewhere) and only regular files (a FIFO named zz.png would hang the read).
    Also how many links and other non-regular entries were skipped. DatasetUnavailable when a class has
    no image."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    skipped = 0
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        raise DatasetUnavailable(name, f"cannot list {folder} ({_short(exc)})", FOLDER_FIX) from exc
    classes = []
    for entry in entries:
        if entry.is_symlink():
            skipped += 1
        elif entry.is_dir(follow_symlinks=False):
            classes.append(entry.name)
    if not classes:
        raise DatasetUnavailable(
            name, f"has no images in class subfolders of {folder} (no class subfolder)", FOLDER_FIX
        )
    samples: list[tuple[str, int]] = []
    empty = []
    for index, cls in enumerate(classes):
        found = 0
        for root, dirs, files in sorted(os.walk(folder / cls, followlinks=False)):
            skipped += sum(1 for d in dirs if os.path.islink(os.path.join(root, d)))  # listed, never entered
            for file in sorted(files):
                if not file.lower().endswith(IMG_EXTENSIONS):
                    continue
                path = os.path.join(root, file)
                try:
                    regular = stat.S_ISREG(os.lstat(path).st_mode)
                except OSError:
                    regular = False
                if not regular:
                    skipped += 1
                    continue
                samples.append((path, index))
                found += 1
        if not found:
            empty.append(cls)
    if empty:
        raise DatasetUnavailable(
            name,
            f"has no images in class subfolders of {folder} (none in "
            f"{', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''})",
            FOLDER_FIX,
        )
    return classes, samples, skipped


def _open_image_file(name: str, path: str) -> Any:
    """An image file opened for reading: a regular file, never through a link, never waited on."""
    flags = (
        os.O_RDONLY
        | getattr(os, "O_NOFOLLOW", 0)
        | getattr(os, "O_NONBLOCK", 0)
        | getattr(os, "O_CLOEXEC", 0)
    )
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise DatasetUnavailable(
            name, f"cannot open the image {path} ({exc.strerror or exc})", "replace or remove that file"
        ) from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise DatasetUnavailable(name, f"{path} is not a regular file", "replace or remove it")
    return os.fdopen(fd, "rb")


def _read_images(
    name: str, samples: list[tuple[str, int]], size: tuple[int, int] | None
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """The images as uint8 [N, 3, H, W] (every image as RGB) and their labels; all must be one size."""
    from PIL import Image

    arrays = []
    for path, _ in samples:
        with _open_image_file(name, path) as f:
            try:
                with Image.open(f) as img:
                    rgb = img.convert("RGB")
            except Exception as exc:  # noqa: BLE001 - not an image, truncated
                raise DatasetUnavailable(
                    name, f"cannot read the image {path} ({one_line(exc)})", "replace or remove that file"
                ) from exc
        if size is None:
            size = rgb.size
        elif rgb.size != size:
            raise DatasetUnavailable(
                name,
                f"holds images of different sizes: {path} is {rgb.size[0]}x{rgb.size[1]}, the first "
                f"{size[0]}x{size[1]}",
                f"resize every image to one size (e.g. {size[0]}x{size[1]}) before training",
            )
        arrays.append(np.asarray(rgb, dtype=np.uint8))
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    y = torch.tensor([label for _, label in samples], dtype=torch.int64)
    assert size is not None
    return x, y, size


def _skipped(n: int) -> str:
    return (
        f"; {n} symbolic link{'s' if n != 1 else ''} or non-regular file{'s' if n != 1 else ''} skipped"
        if n
        else ""
    )


def _real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def load_image_folder(name: str, test_fraction: float, seed: int) -> Dataset:
    """An image folder, read once into uint8 tensors: PATH/train and PATH/test when both exist (the same
    classes), else PATH split per class into test_fraction for testing and the rest for training (by seed)."""
    folder = Path(name[len(FOLDER_PREFIX) :])
    if not folder.is_dir():
        raise DatasetUnavailable(name, f"names {folder}, which is not a folder", FOLDER_FIX)
    if _real_dir(folder / "train") and _real_dir(folder / "test"):
        classes, train_samples, skipped = _read_folder(name, folder / "train")
        test_classes, test_samples, test_skipped = _read_folder(name, folder / "test")
        skipped += test_skipped
        if test_classes != classes:
            raise DatasetUnavailable(
                name,
                f"has classes {classes} in train but {test_classes} in test",
                "give train and test the same class subfolders",
            )
        if len(classes) < 2:
            raise DatasetUnavailable(
                name, f"has one class only ({classes[0]})", "add a subfolder per class, two at least"
            )
        train_x, train_y, size = _read_images(name, train_samples, None)
        test_x, test_y, _ = _read_images(name, test_samples, size)
        source = f"{folder} (train/ and test/{_skipped(skipped)})"
    else:
        classes, samples, skipped = _read_folder(name, folder)
        if len(classes) < 2:
            raise DatasetUnavailable(
                name, f"has one class only ({classes[0]})", "add a subfolder per class, two at least"
            )
        x, y, _ = _read_images(name, samples, None)
        g = torch.Generator().manual_seed(seed)
        test_idx: list[int] = []
        for c in range(len(classes)):  # each class split alike, so a small class still has test images
            idx = (y == c).nonzero().flatten()
            idx = idx[torch.randperm(len(idx), generator=g)]
            test_idx += idx[: round(len(idx) * test_fraction)].tolist()
        is_test = torch.zeros(len(y), dtype=torch.bool)
        is_test[test_idx] = True
        if is_test.all() or not is_test.any():
            raise DatasetUnavailable(
                name,
                f"has {len(y)} images, too few to hold out data.test_fraction = {test_fraction} of them",
                "add images, or use PATH/train and PATH/test",
            )
        train_x, train_y, test_x, test_y = x[~is_test], y[~is_test], x[is_test], y[is_test]
        source = f"{folder} ({test_fraction:g} held out, seed {seed}{_skipped(skipped)})"
    return Dataset(
        name,
        "",
        source,
        Split(train_x.contiguous(), train_y),
        Split(test_x.contiguous(), test_y),
        num_classes=len(classes),
    )


# ---------------------------------------------------------------- normalize, augment, size

NORMALIZE_CACHE = "bstui-normalize.json"  # in data.root: the per-channel statistics of each dataset seen
_STATS: dict[str, dict[str, Any]] = {}  # the same, in memory (the only cache when data.root is read-only)


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the inputs as the model gets them (as_inputs), in float64, in chunks."""
    total = sq = None
    count = 0
    for i in range(0, images.shape[0], chunk):
        x = as_inputs(images[i : i + chunk]).to(torch.float64)
        s, s2 = x.sum(dim=(0, 2, 3)), (x * x).sum(dim=(0, 2, 3))
        total, sq = (s, s2) if total is None else (total + s, sq + s2)
        count += x.shape[0] * x.shape[2] * x.shape[3]
    assert total is not None and sq is not None
    mean = total / count
    std = (
        (sq / count - mean * mean).clamp_min(0).sqrt().clamp_min(1e-6)
    )  # a constant channel: no division by 0
    return [float(v) for v in mean], [float(v) for v in std]


def _cache_key(ds: Dataset) -> str:
    """The dataset's identity for the statistics cache: name, source, size, shape and a digest of its first and
    last samples (new files in the same place are new statistics)."""
    import hashlib

    x = ds.train.images
    digest = hashlib.sha1(
        x[:64].contiguous().numpy().tobytes() + x[-64:].contiguous().numpy().tobytes()
    ).hexdigest()[:16]
    return f"{ds.name}|{ds.source}|{len(ds.train)}|{list(x.shape[1:])}|{digest}"


#: The normalize cache holds a few hundred bytes per dataset; a file larger than this is not one it wrote.
MAX_CACHE_BYTES = 1 << 20


def _read_cache(path: Path) -> tuple[dict[str, Any], str]:
    """The normalize cache's entries, and why it could not be used ("" when it could, or is absent).
    Opened as a regular file (never a FIFO or a device, never waited on), at most MAX_CACHE_BYTES."""
    import json

    from trainer.runlog import UnreadableFile, read_text
    from trainer.runlog.files import describe_kind

    try:
        text = read_text(path, MAX_CACHE_BYTES)
    except FileNotFoundError:
        return {}, ""
    except UnreadableFile:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            mode = stat.S_IFREG
        if not stat.S_ISREG(mode):
            return {}, f"is {describe_kind(mode)}, not a regular file"
        return {}, f"is not UTF-8 text of at most {MAX_CACHE_BYTES:,} bytes"
    except OSError as exc:
        return {}, f"cannot be read ({exc.strerror or exc})"
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return {}, "is not JSON"
    if not isinstance(data, dict):
        return {}, "is not a JSON object"
    return data, ""


def stats_problem(stats: Any, channels: int, uint8: bool) -> str:
    """Why a cache entry is not usable statistics for `channels` input channels ("" when it is): mean and
    std must be lists of `channels` finite numbers, std at least 1e-6 (what channel_stats keeps); for
    8-bit images (inputs in [0, 1]) the mean lies in [0, 1] and the std in (0, 1]."""
    if not isinstance(stats, dict):
        return "its entry is not an object"
    for what in ("mean", "std"):
        values = stats.get(what)
        if not isinstance(values, list) or len(values) != channels:
            return f"its {what} is not a list of {channels} number{'s' if channels != 1 else ''}"
        if any(
            isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in values
        ):
            return f"its {what} holds something that is not a finite number"
    mean, std = stats["mean"], stats["std"]
    if any(v < 1e-6 for v in std):
        return "its std is not positive"
    if uint8 and (any(not 0.0 <= v <= 1.0 for v in mean) or any(v > 1.0 for v in std)):
        return "its values are out of range for 8-bit images (mean in [0, 1], std in (0, 1])"
    return ""


def normalize_dataset(ds: Dataset, cfg: DataConfig, log: Callable[[str], None] | None = None) -> None:
    """data.normalize = "dataset": train and test become float32 (x - mean) / std per channel, with the
    training split's mean and std, read from the cache (data.root/bstui-normalize.json, or memory) or
    computed once and cached. A cache that cannot be used (not a regular file, too large, not JSON, an
    entry of the wrong type or out of range) is said, naming the file, and rebuilt.
    ds.normalization records them and where they were kept."""
    import json

    key = _cache_key(ds)
    path = Path(os.path.expanduser(cfg.root)) / NORMALIZE_CACHE
    channels = as_inputs(ds.train.images[:1]).shape[1]
    uint8 = ds.train.images.dtype == torch.uint8
    say = log or (lambda msg: None)
    remembered = _STATS.get(key)
    if remembered is not None and not stats_problem(remembered, channels, uint8):
        mean, std, cached = (
            list(remembered["mean"]),
            list(remembered["std"]),
            remembered.get("cache", "memory"),
        )
    else:
        entries, problem = _read_cache(path)
        stats = entries.get(key)
        if key in entries and not problem:
            problem = stats_problem(stats, channels, uint8)
        if key in entries and not problem:
            mean, std, cached = [float(v) for v in stats["mean"]], [float(v) for v in stats["std"]], str(path)
        else:
            if problem:
                say(
                    f"data.normalize: the cache {path} {problem}; the statistics are computed again and the "
                    "file rewritten"
                )
            mean, std = channel_stats(ds.train.images)
            cached = "memory"
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                data, unusable = _read_cache(path)
                if unusable:
                    data = {}  # what is there is not a cache: replaced whole
                data[key] = {"mean": mean, "std": std}
                tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
                try:
                    tmp.write_text(json.dumps(data, indent=1))
                    os.replace(tmp, path)  # replaces a link or a FIFO there, never writes through it
                finally:
                    tmp.unlink(missing_ok=True)
                cached = str(path)
            except OSError as exc:  # a read-only data.root: memory only, said once
                say(
                    f"data.normalize: {path.parent} is not writable ({exc.strerror or exc}); statistics kept in memory"
                )
    _STATS[key] = {"mean": mean, "std": std, "cache": cached}
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    ds.train = Split(as_inputs(ds.train.images).sub_(m).div_(s), ds.train.labels)
    ds.test = Split(as_inputs(ds.test.images).sub_(m).div_(s), ds.test.labels)
    ds.normalization = {"mean": mean, "std": std, "cache": cached}


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
