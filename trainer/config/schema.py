"""The config schema: typed dataclasses with their defaults, the enum-like choices, ConfigError.

Defaults live here, in code; experiments.toml overrides them; `--set KEY=VALUE` overrides both.
The loader is generic over these dataclasses: a field with a type hint and a default is all a new
key needs. Its allowed range goes in `bounds.RANGES`; rules across keys go in `rules`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Sequence

# Allowed values of the enum-like string keys, in one place: the modules that act on a key import its
# choices from here (checking a value needs no torch import). MODEL_NAMES are the keys of
# trainer.models.builtin.MODELS (a dict of constructors, which needs torch); tests/unit/test_single_sources.py
# guards that pair.
DATASETS = ("mnist", "fashion-mnist", "kmnist", "cifar10", "cifar100", "synthetic-digits")
FOLDER_PREFIX = "folder:"  # data.dataset = "folder:PATH": an image folder (class subfolders)
PIPELINES = ("resident", "dataloader")
MODEL_NAMES = ("simple_cnn", "resnet_small")
# The [model.args] each built-in takes (SimpleModel takes none, ResNetSmall these; tests/unit/test_single_sources.py
# checks them against the constructors' signatures).
BUILTIN_MODEL_ARGS: dict[str, tuple[str, ...]] = {
    "simple_cnn": (),
    "resnet_small": ("in_channels", "width", "num_classes"),
}
MODEL_OUTPUTS = ("log_probs", "logits")
OPTIMIZERS = ("sgd", "lars", "lamb")
SPLIT_METHODS = ("vectorized", "retain_graph")
FAST_PATHS = ("auto", "eager", "cuda_graph")
PRECISIONS = ("fp32", "bf16")
FUSE_CHOICES = ("auto", "on", "off")
# model.name may also name the user's own model: "package.module:factory", a module path and
# the callable in it that returns the nn.Module. Only the form is checked here (no import: torch-free);
# the trainer imports it and tries it on a batch before anything trains (trainer.models.builtin.check_model).
FACTORY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")
FACTORY_KEYS = ("model.name", "data.dataset")  # choice keys that also take a "package.module:factory"
CHOICES: dict[str, tuple[str, ...]] = {
    "data.dataset": DATASETS,
    "data.fallback": DATASETS + ("",),
    "data.pipeline": PIPELINES,
    "data.normalize": ("none", "dataset"),
    "data.augment": ("none", "crop_flip"),
    "model.name": MODEL_NAMES,
    "model.output": MODEL_OUTPUTS,
    "optim.name": OPTIMIZERS,
    "optim.lr_scaling": ("none", "linear", "sqrt"),
    "sweep.schedule": ("interleaved", "sequential"),
    "sweep.parallel": ("off", "auto"),
    "split_backward.method": SPLIT_METHODS,
    "perf.fast_path": FAST_PATHS,
    "perf.precision": PRECISIONS,
    "perf.fuse_runs": FUSE_CHOICES,
}
VARIANTS = "variants"  # the [[variants]] array of tables
VARIANT_KEYS = ("name", "optim", "split_backward", "batch_sizes")
VARIANT_NAME_RE = re.compile(r"[A-Za-z0-9_.+-]+")  # it goes into run ids: bs6000-lars
DEFAULT_CONFIG_FILE = "experiments.toml"


@dataclass
class DataConfig:
    """[data]: what the runs train and test on, and how it reaches the device."""

    dataset: str = "mnist"
    """`mnist`, `fashion-mnist`, `kmnist` (grey 28x28), `cifar10`, `cifar100` (colour 32x32),
    `synthetic-digits` (drawn locally, offline), an image folder `"folder:PATH"`, or your own as
    `"package.module:factory"`:
    `factory()` returns `(train_x, train_y, test_x, test_y)` tensors (inputs `[N, C, H, W]`, float or uint8
    scaled by 1/255; labels integer classes `0..C-1`) or `(train, test)` torch Datasets of (input, label),
    read once into tensors. The input shape and the classes come from the data; the model must fit them
    (checked before training). Your own data never falls back: what is wrong with it is an error (exit 2).
    Where each dataset's files go: [data-and-models.md](data-and-models.md)."""
    root: str = "~/.cache/bstui/data"
    """Where datasets are looked for and downloaded to."""
    download: bool = True
    """Download the dataset when it is not found under `data.root`."""
    fallback: str = "synthetic-digits"
    """Used, visibly, when the dataset cannot be had (offline); `""` to fail instead."""
    pipeline: str = "resident"
    """`resident`: the whole set as one tensor on the device, shuffled by a permutation made there;
    `dataloader`: the study's loop (torchvision dataset, DataLoader, per-sample to-tensor). When the data
    (train + test as float32, plus labels) would not fit in the device's free memory (CUDA: 80% of
    `mem_get_info`'s free; CPU: 50% of MemAvailable), a resident sweep trains from the DataLoader instead and
    says so: a log line, `sweep_started`'s `pipeline`, `pipeline_reason` and `data_bytes`, and the app's
    header (`· dataloader 737 MB` and the reason)."""
    train_samples: int = 0
    """`0` = all; else the first N training samples (quick runs)."""
    test_samples: int = 0
    """`0` = all; else the first N test samples."""
    num_workers: int = 0
    """DataLoader worker processes (the `dataloader` pipeline only)."""
    pin_memory: bool = False
    """Pinned host memory and non-blocking copies (the `dataloader` pipeline only)."""
    path: str = ""
    """Folder searched first for a `"package.module:factory"` dataset's module, as `model.path` is for a
    model."""
    test_fraction: float = 0.2
    """`"folder:PATH"` without `PATH/train` and `PATH/test`: the share of each class's images held out for
    testing, chosen by `sweep.seed`."""
    normalize: str = "none"
    """`none`: inputs in [0, 1]; `dataset`: each channel shifted and scaled by the training split's mean and
    std, for training and test inputs alike. They are computed once and cached in
    `<data.root>/bstui-normalize.json` (in memory only when `data.root` is read-only; the cache is read only
    as a regular file of at most 1 MiB and each entry checked: finite numbers, one per channel, std > 0, in
    [0, 1] for 8-bit images; anything else is said, naming the file, and rebuilt); `sweep_started` records
    them (`normalize`)."""
    augment: str = "none"
    """`none`, or `crop_flip` (32x32 images only, else exit 2): each training batch padded by 4 zero pixels,
    cropped back to 32x32 at a random offset and flipped left-right at random, on the device, drawn from
    `sweep.seed` and the epoch (both pipelines alike; a resumed run sees the same crops). Runs with it train
    eagerly: `run_started.fast_path_reason` says why."""


def is_folder(name: str) -> bool:
    """Whether data.dataset names an image folder ("folder:PATH")."""
    return name.startswith(FOLDER_PREFIX)


def is_factory(name: str) -> bool:
    """Whether a model.name is a "package.module:factory" reference rather than a built-in name."""
    return not is_folder(name) and FACTORY_RE.fullmatch(name) is not None


@dataclass
class ModelConfig:
    """[model]: the network every run trains (the same for every batch size)."""

    name: str = "simple_cnn"
    """`simple_cnn`: the study's SimpleModel (3 conv + 1 linear, 12,930 parameters); `resnet_small`: a small
    ResNet with batch norm for 32x32 colour images (3 basic blocks, 78,042 parameters at width 16; any image
    size); or your own model as `"package.module:factory"`
    ([data-and-models.md](data-and-models.md#your-own-model))."""
    args: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the factory (`[model.args]`): `factory(**args)` returns the `nn.Module`.
    `resnet_small` takes `in_channels` (3; 1 for grey images such as MNIST's), `width` (16) and
    `num_classes` (10; 100 for `cifar100`, the folder's class count for `"folder:PATH"`); `simple_cnn`
    none."""
    output: str = "log_probs"
    """What the model returns: `log_probs` (log-softmax) or `logits` (the trainer applies log-softmax, so
    the loss is the cross-entropy)."""
    path: str = ""
    """Folder searched first for the factory's module; `""` = the config file's folder (the current folder
    without a file); a relative path is taken from the config file's folder. config.toml records the
    absolute folder, so `resume` finds the module where the sweep did."""


@dataclass
class OptimConfig:
    """[optim]: the optimizer and its lr rule (a `[[variants]]` table may override any of these)."""

    name: str = "sgd"
    """`sgd` (the study's), `lars` or `lamb`: per-layer trust ratios for huge batches
    ([huge-batches.md](huge-batches.md))."""
    lr: float = 0.02
    """Learning rate at `optim.base_batch_size` (for every batch size when `optim.lr_scaling` is `none`)."""
    momentum: float = 0.5
    """SGD and LARS momentum."""
    lr_scaling: str = "none"
    """`none`, `linear` (lr x B / base) or `sqrt` (lr x sqrt(B / base)), base being
    `optim.base_batch_size`."""
    base_batch_size: int = 60
    """The batch size at which `optim.lr` applies unscaled."""
    warmup_epochs: float = 0.0
    """Linear warm-up of the lr from about 0 to the run's lr over this many epochs."""
    weight_decay: float = 0.0
    """L2 factor on the weights (every optimizer)."""
    trust_coefficient: float = 0.001
    """LARS: local lr = this x |w| / (|g| + weight_decay |w|)."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    """LAMB: decay of its two Adam moments (exactly two numbers)."""
    eps: float = 1e-6
    """LAMB: added to the square root of the second moment."""


@dataclass
class LrGridConfig:
    """[sweep.lr_grid]: lrs spaced on a log scale, tried at every batch size."""

    min: float = 0.0
    """The grid's smallest lr (> 0 when the grid is on)."""
    max: float = 0.0
    """The grid's largest lr."""
    points: int = 0
    """`points` lrs spaced evenly on a log scale from `min` to `max`; `0` = no grid. The points must give
    different lrs at 6 significant digits."""

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
    """[sweep]: the runs (batch size x variant x lr x seed), their length, target and device."""

    batch_sizes: list[int] = field(default_factory=lambda: [1, 6, 60, 600, 6000])
    """One run per batch size (at most the training set, checked once it is loaded)."""
    epochs: int = 10
    """Epochs per run."""
    target_accuracy: float = 0.98
    """Time to target = up to the first evaluation whose accuracy on the evaluation slice reaches this."""
    seed: int = 0
    """The same seed gives every batch size the same initial weights and the same sample order."""
    schedule: str = "interleaved"
    """`interleaved`: all runs advance together in slices of ~6,000 samples, each slice timed alone;
    `sequential`: one run after another."""
    device: str = "auto"
    """`auto` (CUDA when present), `cpu`, `cuda`, `cuda:N`."""
    lrs: list[float] = field(default_factory=list)
    """Lrs to try at every batch size (the sweep becomes batch size x lr); `[]` = `optim.lr`, scaled."""
    lr_grid: LrGridConfig = field(default_factory=LrGridConfig)
    seeds: int = 1
    """Repeats of every (batch size, lr) point with seeds `seed`, `seed+1`, ...; summaries show mean and
    spread."""
    micro_batch: int = 0
    """Gradient accumulation: batches larger than this step once on micro-batches of this size (it must
    divide them); `0` = off."""
    parallel: str = "off"
    """`off`, or `auto`: with several GPUs, independent runs train at once, one worker process per GPU."""
    eval_every: int = -1
    """Training samples between evaluations on the evaluation slice (a fixed class-stratified random sample
    of 2,000 test images, the same for every run), off the clocks; `-1` = a tenth of the training set
    (about 10 per epoch), `0` = epoch ends only. Every epoch end evaluates the slice too, and the full test
    set (recorded apart as `final_test_acc`)."""
    batch_schedule: str = ""
    """One more run whose batch size changes as it trains, piecewise by samples, compared in the report
    against the best fixed batch size: `"0:32 24000:64 48000:128"` (Megatron-LM's
    `--step-batch-size-schedule` form: from each number of training samples on, that batch size; a third
    field, `"0:32:0.05"`, gives a stage's lr, else the lr rule's), `"proposed"` (the schedule the sweep's
    `[branch]` measurement proposes, trained after the branches), `""` = none
    ([huge-batches.md](huge-batches.md#a-batch-size-schedule-that-proves-itself))."""


@dataclass
class SplitBackwardConfig:
    """[split_backward]: one forward pass, then k backward passes and k optimizer steps (the app's `s`)."""

    enabled: bool = False
    """Split-backward from the start (the app's `s` switches it while a sweep trains)."""
    chunks: int = 4
    """k: backward passes and optimizer steps per forward pass; it must divide every batch size when
    enabled."""
    method: str = "vectorized"
    """`vectorized` (all k chunk gradients in one pass, torch.func) or `retain_graph` (the study's: the
    whole graph walked k times)."""


@dataclass
class GnsConfig:
    """[gns]: the gradient noise scale B_simple ([science.md](science.md))."""

    every: int = 50
    """Iterations between the in-batch gradient-noise-scale estimates and gradient cosines (at least about 4
    per epoch); `0` = off."""
    chunks: int = 4
    """The small batch of the in-batch estimate is batch / chunks (the largest divisor up to this)."""
    beta: float = 0.9
    """EMA factor of the two averages whose ratio is the in-batch B_simple."""
    probe_every: int = 6000
    """Training samples between readings of the batch-independent noise probe (a 1,024-sample probe batch
    from the training set, 8-sample chunks, at the current weights, off the clocks); a run's B_simple is read
    at its newest reading from the last 5 readings (a local exponential fit that follows the drift), and at
    its crossing of the target from the readings around it; `0` = off."""


@dataclass
class PerfConfig:
    """[perf]: how fast the steps run; none of these changes what a run computes beyond float rounding."""

    fast_path: str = "auto"
    """`auto` (CUDA graphs on CUDA with the resident pipeline, eager elsewhere), `eager`, `cuda_graph`."""
    precision: str = "fp32"
    """`fp32` or `bf16` (autocast; the study is fp32, and bf16 is slower for this tiny model)."""
    channels_last: bool = False
    """NHWC memory format for the convolutions."""
    cpu_threads: int = 0
    """Torch threads when training on CPU; `0` = chosen per run by the batch: 1 thread below 16 samples per
    pass (the step is too small to share: 1.8x faster than 2 threads at batch 1 on a 2-core VM), every core
    from 16 (1.5x faster at batch 60); a fused group by its batch x runs."""
    fuse_runs: str = "auto"
    """`auto`, `on` or `off`: runs of one batch size (lr grid points, seeds, variants differing only in lr,
    momentum, weight decay or warm-up) train as one stacked model ([fused-runs.md](fused-runs.md)). `auto`:
    where it is faster: CPU batches up to 16, eager GPU runs (CUDA-graph runs stay apart until
    `bench/gpu_checks.sh` has measured their fused graph); `on`: wherever it can (on a GPU with CUDA graphs
    the fused step is replayed as one graph); `off`: each run alone."""


@dataclass
class BranchConfig:
    """[branch]: branched B_crit (Merrill et al. 2025): from the base run's checkpoints after some epochs,
    short branches at several batch sizes measure the steps to a fixed fall of the loss
    ([huge-batches.md](huge-batches.md#b_crit-over-training-branches-and-a-proposed-schedule))."""

    epochs: list[int] = field(default_factory=list)
    """Epochs of the base run after which branches start (each at most `sweep.epochs`); `[]` = no
    branches. With branches the sweep has one lr and one seed and no `[[variants]]`."""
    batch_sizes: list[int] = field(default_factory=list)
    """The branches' batch sizes at each point (at least 3 different)."""
    decrease: float = 0.1
    """Each branch trains until its evaluation-slice loss (fitted non-increasing, bootstrapped) is this
    fraction below the base run's smoothed slice loss at the branch point."""
    lr_factors: list[float] = field(default_factory=lambda: [1.0])
    """A small lr grid: each branch's lr is the config's lr rule (`optim.lr_scaling`) at its batch size times
    each factor; per batch size the fit takes the fewest-step lr."""
    max_samples: int = 0
    """Training samples after which a branch counts as not reaching the decrease; `0` = one epoch."""
    eval_every: int = 0
    """Samples between a branch's evaluations on the slice; `0` = `max_samples` / 40."""
    base_batch_size: int = 0
    """The base run: the sweep's run at this batch size (one of `sweep.batch_sizes`); `0` = the only one."""


@dataclass
class OutputConfig:
    """[output]: where run directories go."""

    dir: str = "runs"
    """Where run directories are made: `<dir>/<date>-<time>-<config name>`."""


@dataclass
class VariantConfig:
    """[[variants]]: one arm of a comparison; the runs become batch size x variant.

    A variant overrides [optim] and [split_backward] keys and may run at a subset of
    sweep.batch_sizes; `optim` and `split_backward` are resolved (the config's, then the overrides).
    """

    name: str
    """The arm's name, in its run ids (`bs6000-lars`): letters, digits and `_ . + -`."""
    optim: OptimConfig
    """Overrides of `[optim]` keys for this arm (`optim = { name = "lars", lr = 20.0 }`)."""
    split_backward: SplitBackwardConfig
    """Overrides of `[split_backward]` keys for this arm."""
    batch_sizes: list[int]
    """The batch sizes it runs at: a subset of `sweep.batch_sizes` (all of them when left out)."""
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
