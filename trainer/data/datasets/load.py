"""`load_dataset`: the configured dataset by its kind (built-in IDX or CIFAR sets, synthetic-digits, an
image folder, the user's factory), or its fallback, visibly; cut to data.train_samples /
data.test_samples, checked, and normalized when asked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from trainer.config import DATASETS, DataConfig
from trainer.config.schema import is_factory, is_folder
from trainer.data.datasets.cifar import CIFAR, load_cifar
from trainer.data.datasets.dataset import Dataset, DatasetUnavailable, Split, check_augment, check_finite
from trainer.data.datasets.idx import load_idx_dataset
from trainer.data.datasets.image_folder import load_image_folder
from trainer.data.datasets.normalize import normalize_dataset
from trainer.data.datasets.user_factory import factory_dataset
from trainer.data.synthetic import DEFAULT_PARAMS, Stage, SyntheticParams, synthetic_splits

MNIST_TRAIN, MNIST_TEST = 60_000, 10_000  # synthetic-digits matches MNIST's split sizes


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
        return factory_dataset(name, cfg)
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
        train, test, source = load_idx_dataset(name, root, cfg.download)
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
