"""The config schema: typed dataclasses with their defaults, the enum-like choices, ConfigError.

Defaults live here, in code; experiments.toml overrides them; `--set KEY=VALUE` overrides both.
The loader is generic over these dataclasses: a field with a type hint and a default is all a new
key needs. Its allowed range goes in `bounds.RANGES`; rules across keys go in `rules`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

# Allowed values of the enum-like string keys, in one place. MODEL_NAMES mirrors
# trainer.models.builtin.MODELS (kept here so checking a name needs no torch import).
DATASETS = ("mnist", "fashion-mnist", "kmnist", "cifar10", "cifar100", "synthetic-digits")
FOLDER_PREFIX = "folder:"  # data.dataset = "folder:PATH": an image folder (class subfolders)
MODEL_NAMES = ("simple_cnn", "resnet_small")
# The [model.args] each built-in takes (mirrors trainer.models.builtin: SimpleModel takes none, ResNetSmall these).
BUILTIN_MODEL_ARGS: dict[str, tuple[str, ...]] = {
    "simple_cnn": (),
    "resnet_small": ("in_channels", "width", "num_classes"),
}
MODEL_OUTPUTS = ("log_probs", "logits")
# model.name may also name the user's own model: "package.module:factory" (issue 16), a module path and
# the callable in it that returns the nn.Module. Only the form is checked here (no import: torch-free);
# the trainer imports it and tries it on a batch before anything trains (trainer.models.builtin.check_model).
FACTORY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")
FACTORY_KEYS = ("model.name", "data.dataset")  # choice keys that also take a "package.module:factory"
CHOICES: dict[str, tuple[str, ...]] = {
    "data.dataset": DATASETS,
    "data.fallback": DATASETS + ("",),
    "data.pipeline": ("resident", "dataloader"),
    "data.normalize": ("none", "dataset"),
    "data.augment": ("none", "crop_flip"),
    "model.name": MODEL_NAMES,
    "model.output": MODEL_OUTPUTS,
    "optim.name": ("sgd", "lars", "lamb"),  # mirrors trainer.models.optim.OPTIMIZERS
    "optim.lr_scaling": ("none", "linear", "sqrt"),
    "sweep.schedule": ("interleaved", "sequential"),
    "sweep.parallel": ("off", "auto"),
    "split_backward.method": ("vectorized", "retain_graph"),
    "perf.fast_path": ("auto", "eager", "cuda_graph"),
    "perf.precision": ("fp32", "bf16"),
    "perf.fuse_runs": ("auto", "on", "off"),  # mirrors trainer.engine.fuse.FUSE_CHOICES
}
VARIANTS = "variants"  # the [[variants]] array of tables (issue 7)
VARIANT_KEYS = ("name", "optim", "split_backward", "batch_sizes")
VARIANT_NAME_RE = re.compile(r"[A-Za-z0-9_.+-]+")  # it goes into run ids: bs6000-lars
DEFAULT_CONFIG_FILE = "experiments.toml"


@dataclass
class DataConfig:
    dataset: str = "mnist"  # mnist | fashion-mnist | synthetic-digits | "package.module:factory" (your own)
    root: str = "~/.cache/bstui/data"  # where datasets are looked for and downloaded to
    download: bool = True
    fallback: str = "synthetic-digits"  # used, visibly, when the dataset cannot be had; "" to fail
    pipeline: str = "resident"  # resident (whole split on the device) | dataloader (the study's loop)
    train_samples: int = 0  # 0 = all; else the first N
    test_samples: int = 0  # 0 = all; else the first N
    num_workers: int = 0  # DataLoader worker processes (dataloader pipeline only)
    pin_memory: bool = False  # pinned host memory + non-blocking copies (dataloader pipeline only)
    # Folder searched first for a "package.module:factory" dataset's module, as model.path is for a model.
    path: str = ""
    # "folder:PATH" without PATH/train and PATH/test: the share of each class's images held out for testing
    # (chosen by sweep.seed).
    test_fraction: float = 0.2
    # none | dataset: inputs shifted and scaled per channel by the training split's mean and std (computed
    # once, cached in data.root when it is writable).
    normalize: str = "none"
    # none | crop_flip: 32x32 images only; each training batch gets a random crop of the image padded by 4
    # pixels and a random horizontal flip, on the device, drawn from sweep.seed.
    augment: str = "none"


def is_folder(name: str) -> bool:
    """Whether data.dataset names an image folder ("folder:PATH")."""
    return name.startswith(FOLDER_PREFIX)


def is_factory(name: str) -> bool:
    """Whether a model.name is a "package.module:factory" reference rather than a built-in name."""
    return not is_folder(name) and FACTORY_RE.fullmatch(name) is not None


@dataclass
class ModelConfig:
    name: str = "simple_cnn"  # a built-in (the study's SimpleModel) or "package.module:factory"
    # Keyword arguments of the factory ([model.args]; a factory's only): factory(**args) -> nn.Module.
    args: dict[str, Any] = field(default_factory=dict)
    output: str = "log_probs"  # log_probs | logits: what the model returns (logits get a log-softmax)
    # Folder searched first for a factory's module; "" = the config file's folder (the current folder
    # without a file). Relative folders are taken from the config file's folder; the loader writes the
    # absolute folder, so a run directory's config.toml (resume) finds the module where the sweep did.
    path: str = ""


@dataclass
class OptimConfig:
    name: str = "sgd"  # sgd (the study's) | lars | lamb (layer-wise trust ratios for huge batches)
    lr: float = 0.02  # learning rate at base_batch_size (or for every batch size when lr_scaling = none)
    momentum: float = 0.5  # SGD and LARS momentum
    lr_scaling: str = "none"  # none | linear | sqrt, relative to base_batch_size
    base_batch_size: int = 60  # batch size at which lr applies unscaled
    warmup_epochs: float = 0.0  # linear warm-up from ~0 to the run's lr over this many epochs
    weight_decay: float = 0.0  # L2 factor on the weights (every optimizer)
    trust_coefficient: float = 0.001  # LARS: local lr = this * |w| / (|g| + weight_decay |w|)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # LAMB: decay of the two Adam moments
    eps: float = 1e-6  # LAMB: added to sqrt(second moment)


@dataclass
class LrGridConfig:
    min: float = 0.0  # smallest lr of the grid
    max: float = 0.0  # largest lr of the grid
    points: int = 0  # lrs spaced evenly on a log scale from min to max; 0 = no grid

    def values(self) -> list[float]:
        """The grid's lrs, each rounded to 6 significant digits (they name runs: bs60-lr0.0158114).

        [] without a grid; one lr when min == max or points == 1. Needs min > 0 (validation sees to it).
        """
        if self.points <= 0:
            return []
        if self.points == 1 or self.max == self.min:
            return [self.min]
        ratio = self.max / self.min
        return [float(f"{self.min * ratio ** (i / (self.points - 1)):.6g}") for i in range(self.points)]


@dataclass
class SweepConfig:
    batch_sizes: list[int] = field(default_factory=lambda: [1, 6, 60, 600, 6000])
    epochs: int = 10
    target_accuracy: float = 0.98  # test accuracy that counts as "reached", in (0, 1]
    seed: int = 0  # in [0, 2**32): numpy's seed range
    schedule: str = "interleaved"  # interleaved | sequential
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    lrs: list[float] = field(default_factory=list)  # lr per run (batch size x lr); [] = optim.lr, scaled
    lr_grid: LrGridConfig = field(default_factory=LrGridConfig)  # or a log-spaced grid of lrs
    seeds: int = 1  # repeats of every (batch size, lr) point, seeds seed, seed+1, ...
    micro_batch: int = (
        0  # gradient accumulation: larger batches step once on micro-batches of this size; 0 = off
    )
    parallel: str = "off"  # off | auto: with several GPUs, independent runs on different GPUs at once
    # Training samples between evaluations on the evaluation slice (the first 2,000 test samples), besides
    # the full test set at every epoch end: -1 = a tenth of the training set (~10 per epoch), 0 = epoch ends only.
    eval_every: int = -1


@dataclass
class SplitBackwardConfig:
    enabled: bool = False
    chunks: int = 4  # k: backward passes and optimizer steps per forward pass
    method: str = "vectorized"  # vectorized | retain_graph


@dataclass
class GnsConfig:
    every: int = 50  # iterations between gradient-noise-scale estimates; 0 = off
    chunks: int = 4  # the small batch is batch/chunks (the largest divisor of the batch up to this)
    beta: float = 0.9  # EMA factor of the two averages whose ratio is B_simple
    # The batch-independent probe (issue 13): training samples between readings on a 1,024-sample probe
    # batch from the training set (0 = off); its B_simple averages the last 10 readings' span.
    probe_every: int = 6000


@dataclass
class PerfConfig:
    fast_path: str = "auto"  # auto (CUDA graphs on CUDA with the resident pipeline) | eager | cuda_graph
    precision: str = "fp32"  # fp32 | bf16 (autocast; the study is fp32)
    channels_last: bool = False  # NHWC memory format for the convolutions
    cpu_threads: int = 0  # torch intra-op threads on CPU; 0 = by the batch (trainer.engine.threads: 1 below batch 16, else all cores)
    # Runs of one batch size (lr grid points, seeds) train as one stacked model (trainer.engine.fuse): auto (where
    # bench/fuse.py shows it faster: CPU batches up to 16, eager GPU runs) | on (wherever it can) | off.
    fuse_runs: str = "auto"


@dataclass
class BranchConfig:
    """Branched B_crit (Merrill et al. 2025): from the base run's checkpoints after these epochs, short
    branches at several batch sizes measure the steps to a fixed fall of the loss; [] = no branches."""

    epochs: list[int] = field(default_factory=list)  # epochs of the base run after which branches start
    batch_sizes: list[int] = field(default_factory=list)  # the branches' batch sizes at each point
    decrease: float = 0.1  # the fall of the evaluation-slice loss each branch trains for, a fraction of it
    lr_factors: list[float] = field(
        default_factory=lambda: [1.0]
    )  # a small lr grid: x the rule's lr (optim.lr_scaling)
    max_samples: int = (
        0  # training samples a branch may take before it counts as not reaching it; 0 = one epoch
    )
    eval_every: int = 0  # samples between a branch's evaluations; 0 = about 40 per max_samples


@dataclass
class OutputConfig:
    dir: str = "runs"  # parent of new run directories


@dataclass
class VariantConfig:
    """One arm of a comparison (`[[variants]]`, issue 7): the runs become batch size x variant.

    A variant overrides [optim] and [split_backward] keys and may run at a subset of
    sweep.batch_sizes; `optim` and `split_backward` are resolved (the config's, then the overrides).
    """

    name: str  # in run ids: bs6000-lars
    optim: OptimConfig
    split_backward: SplitBackwardConfig
    batch_sizes: list[int]  # the batch sizes it runs at (sweep.batch_sizes unless it names a subset)
    overrides: dict[str, Any]  # its table as written, name included (config.toml writes these back)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    split_backward: SplitBackwardConfig = field(default_factory=SplitBackwardConfig)
    gns: GnsConfig = field(default_factory=GnsConfig)
    perf: PerfConfig = field(default_factory=PerfConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    branch: BranchConfig = field(default_factory=BranchConfig)
    # [[variants]]: loaded apart from the sections (an array of tables of overrides); [] = one arm.
    variants: list[VariantConfig] = field(default_factory=list, metadata={"toml": False})
    # Not a TOML key: where the config came from, for messages and run directory names.
    source: str = field(default="", compare=False, metadata={"toml": False})


MAX_PROBLEMS = 25  # lines of one ConfigError; the rest are counted ("... and N more problems")


class ConfigError(Exception):
    """A configuration a user can fix. str(err) is the complete message, one problem a line.

    `problems` holds the same lines as a list (for the app, which may show them apart). At most
    MAX_PROBLEMS are kept; a last line counts the others (`omitted` adds problems not even written).
    """

    def __init__(self, problems: str | Sequence[str], *, omitted: int = 0) -> None:
        lines = [problems] if isinstance(problems, str) else list(problems)
        omitted += max(0, len(lines) - MAX_PROBLEMS)
        self.problems = lines[:MAX_PROBLEMS]
        if omitted:
            self.problems.append(
                f"... and {omitted} more problem{'s' if omitted > 1 else ''} (fix these first)"
            )
        super().__init__("\n".join(self.problems))
