"""Datasets: what a sweep trains and evaluates on (the input pipelines are trainer/data/pipelines.py).

Datasets (`load_dataset`, load.py): mnist, fashion-mnist and kmnist (a local IDX folder, or torchvision
and its download: idx.py), cifar10 and cifar100 (cifar.py), synthetic-digits (made by
trainer/data/synthetic.py), an image folder ("folder:PATH", image_folder.py) and the user's own,
"package.module:factory" (user_factory.py: tensors or Datasets, checked; never a fallback). Every one
becomes a Dataset of two Splits (dataset.py), checked there, and normalized per channel when asked
(normalize.py). When the configured dataset cannot be had, `data.fallback` is used visibly (a note that
the sweep logs and records) or, with fallback "", `DatasetUnavailable` says why and how to fix it.
Never a silent substitution. This package's namespace is the surface the trainer imports.
"""

from trainer.data.datasets.dataset import (
    NUM_CLASSES,
    Dataset,
    DatasetUnavailable,
    Split,
    as_inputs,
    check_augment,
    check_finite,
    data_bytes,
    is_grey,
)
from trainer.data.datasets.idx import IdxFormatError, read_idx
from trainer.data.datasets.load import load_dataset, synthetic_digits
from trainer.data.datasets.normalize import NORMALIZE_CACHE, channel_stats, normalize_dataset, stats_problem

__all__ = [
    "NORMALIZE_CACHE",
    "NUM_CLASSES",
    "Dataset",
    "DatasetUnavailable",
    "IdxFormatError",
    "Split",
    "as_inputs",
    "channel_stats",
    "check_augment",
    "check_finite",
    "data_bytes",
    "is_grey",
    "load_dataset",
    "normalize_dataset",
    "read_idx",
    "stats_problem",
    "synthetic_digits",
]
