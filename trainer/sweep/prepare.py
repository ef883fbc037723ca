"""From a parsed config to what a sweep trains, resolved once and going down: the device (and the fast
path it can run), the dataset (loaded, and large enough for the batch sizes), the model (built and tried
on a batch of it), the input pipeline that fits on the device, and the runs.

An entry point (trainer.cli) calls `prepare` once, before it makes the run directory, so that a mistake the
user can fix is told before anything is written; the sweep (trainer.sweep.driver.run_prepared) trains what
it gives and checks nothing again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch

from trainer.config import Config
from trainer.data.datasets import Dataset, DatasetUnavailable, as_inputs, data_bytes, load_dataset
from trainer.data.pipelines import choose_pipeline
from trainer.data.synthetic import Stage
from trainer.engine.cuda_graph import FastPathUnavailable, resolve_fast_path
from trainer.models import builtin as models
from trainer.plan import RunSpec, check_against_dataset, run_specs
from trainer.runlog.shards import ShardInfo

MODEL_CHECK_SAMPLES = 2  # training samples the model is tried on before a sweep (2: a batch, not one sample)


class DeviceUnavailable(Exception):
    """The configured device cannot be used (a user error: exit 2)."""


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when available, else cpu. An explicit cuda without a GPU is refused."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable(
            f"device {name!r} was asked for but no CUDA GPU is visible to PyTorch "
            f"(torch {torch.__version__}); use --device cpu or sweep.device = \"auto\""
        )
    return device


def preflight(cfg: Config) -> torch.device:
    """The device to train on, after checking the fast path can run there (DeviceUnavailable if not)."""
    device = resolve_device(cfg.sweep.device)
    try:
        resolve_fast_path(cfg.perf.fast_path, device, cfg.data.pipeline)
    except FastPathUnavailable as exc:
        raise DeviceUnavailable(str(exc)) from exc
    return device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"


def check_dataset(cfg: Config, dataset: Dataset) -> None:
    """Refuse, before anything trains, a sweep the loaded training set cannot serve (a batch larger
    than the set would silently train on the whole set under a size it is not): DatasetUnavailable."""
    problems = check_against_dataset(cfg, int(dataset.train.labels.shape[0]))
    if problems:
        raise DatasetUnavailable(
            dataset.name,
            "is too small for this sweep: " + "; ".join(problems),
            "drop them from sweep.batch_sizes, or train on more samples (data.train_samples = 0 takes all)",
        )


def check_model(cfg: Config, dataset: Dataset) -> None:
    """Refuse, before anything trains, a model that cannot be built or does not fit the dataset (its
    input shape and classes): trainer.models.builtin.ModelError naming the module and the fix."""
    models.check_model(cfg.model, as_inputs(dataset.train.images[:MODEL_CHECK_SAMPLES]), dataset.num_classes)


@dataclass(frozen=True)
class PreparedSweep:
    """Everything a sweep trains with, resolved and checked."""

    cfg: Config  # as it trains: data.pipeline is the pipeline chosen for the device
    given: Config  # as configured (sweep_started records it)
    device: torch.device
    dataset: Dataset
    fast_path: str  # eager | cuda_graph
    pipeline_reason: str  # why the pipeline is not the configured one ("" when it is)
    data_bytes: int  # what the resident pipeline holds on the device
    specs: list[RunSpec]  # the runs this process trains, in sweep order
    shard: ShardInfo | None = None

    @property
    def n_train(self) -> int:
        return int(self.dataset.train.labels.shape[0])

    def data_fields(self) -> dict[str, Any]:
        """sweep_started's (or sweep_resumed's) fields on the data as it trains."""
        return dict(
            pipeline=self.cfg.data.pipeline,
            pipeline_reason=self.pipeline_reason,
            data_bytes=self.data_bytes,
            normalize=self.dataset.normalization or None,
            augment=self.cfg.data.augment,
        )


def prepare(
    cfg: Config,
    *,
    device: torch.device | None = None,
    dataset: Dataset | None = None,
    log: Callable[[str], None] | None = None,
    stage: Stage | None = None,
    shard: ShardInfo | None = None,
    check: Callable[[Dataset], None] | None = None,
) -> PreparedSweep:
    """Resolve the sweep of `cfg` once: the device (preflight's, unless given), the dataset (loaded unless
    given; `log` hears its notes, `stage` its start-up stages), `check(dataset)` (a resume's: the data the
    sweep started with), the batch sizes against it, the model on it, the pipeline and fast path.

    Raises DeviceUnavailable, DatasetUnavailable or trainer.models.builtin.ModelError, each naming the
    cause and the fix, before anything is written. The resident pipeline holds the whole dataset on the
    device: where it would not fit, the sweep trains from the DataLoader instead (`pipeline_reason`)."""
    device = device if device is not None else preflight(cfg)
    if dataset is None:
        dataset = load_dataset(cfg.data, seed=cfg.sweep.seed, log=log, stage=stage)
    if check is not None:
        check(dataset)
    check_dataset(cfg, dataset)
    check_model(cfg, dataset)
    size = data_bytes(dataset)
    pipeline, reason = choose_pipeline(cfg.data.pipeline, size, device)
    trains = cfg
    if pipeline != cfg.data.pipeline:
        trains = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, pipeline=pipeline))
    try:
        fast_path = resolve_fast_path(cfg.perf.fast_path, device, pipeline)
    except FastPathUnavailable as exc:
        raise DeviceUnavailable(f"{exc}" + (f" ({reason})" if reason else "")) from exc
    specs = run_specs(cfg, only=shard.runs if shard is not None else None)
    return PreparedSweep(trains, cfg, device, dataset, fast_path, reason, size, specs, shard)
