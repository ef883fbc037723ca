"""Typed configuration for a sweep: experiments.toml -> Config.

Pure Python (no torch, no Textual): the app validates a config before it opens a
window, and `python -m trainer` validates before anything trains.

Defaults live here, in code; experiments.toml overrides them; `--set KEY=VALUE`
overrides both (see `apply_overrides`).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DataConfig:
    dataset: str = "mnist"  # mnist | fashion-mnist | synthetic-digits
    root: str = "~/.cache/bstui/data"  # where datasets are looked for and downloaded to
    download: bool = True
    fallback: str = "synthetic-digits"  # used, visibly, when the dataset cannot be had; "" to fail
    pipeline: str = "resident"  # resident (whole split on the device) | dataloader (the study's loop)
    train_samples: int = 0  # 0 = all; else the first N
    test_samples: int = 0  # 0 = all; else the first N
    num_workers: int = 0  # DataLoader worker processes (dataloader pipeline only)
    pin_memory: bool = False  # pinned host memory + non-blocking copies (dataloader pipeline only)


@dataclass
class ModelConfig:
    name: str = "simple_cnn"  # the study's SimpleModel


@dataclass
class OptimConfig:
    lr: float = 0.02  # learning rate at base_batch_size (or for every batch size when lr_scaling = none)
    momentum: float = 0.5
    lr_scaling: str = "none"  # none | linear | sqrt, relative to base_batch_size
    base_batch_size: int = 60  # batch size at which lr applies unscaled
    warmup_epochs: float = 0.0  # linear warm-up from ~0 to the run's lr over this many epochs


@dataclass
class SweepConfig:
    batch_sizes: list[int] = field(default_factory=lambda: [1, 6, 60, 600, 6000])
    epochs: int = 10
    target_accuracy: float = 0.98  # test accuracy that counts as "reached", in (0, 1]
    seed: int = 0
    schedule: str = "interleaved"  # interleaved | sequential
    device: str = "auto"  # auto | cpu | cuda | cuda:N


@dataclass
class SplitBackwardConfig:
    enabled: bool = False
    chunks: int = 4  # k: backward passes and optimizer steps per forward pass
    method: str = "vectorized"  # vectorized | retain_graph


@dataclass
class OutputConfig:
    dir: str = "runs"  # parent of new run directories


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    split_backward: SplitBackwardConfig = field(default_factory=SplitBackwardConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    # Not a TOML key: where the config came from, for messages and run directory names.
    source: str = field(default="", compare=False)
