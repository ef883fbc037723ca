"""The plan of a sweep: its runs (RunSpec) and what each trains with (RunSettings), their lrs and ids, the interleaved slice, the GPU queue order.

Pure (stdlib and trainer.config only): the app and `resume` plan a sweep without torch, and every
run id comes from here. Run ids are unique by construction: batch sizes, variant names
and seeds are distinct (the config refuses repeats), and lrs are written with as many significant
digits as tell them apart (6, as `%g` writes them, unless two lrs of the sweep print alike there).
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from trainer.config import Config, DataConfig, GnsConfig, ModelConfig, OptimConfig, PerfConfig
from trainer.config.batch_schedule import PROPOSED, Stage, parse, run_id

SLICE_SAMPLES = 6000  # samples per run per round of the interleaved schedule (1/10 of an MNIST epoch)


@dataclass
class RunSpec:
    """What distinguishes one run of a sweep."""

    run_id: str  # e.g. "bs60"
    batch_size: int
    lr: float
    momentum: float
    split_chunks: int = 1  # 1 = plain SGD step; k > 1 = one forward, k backward+step
    split_method: str = "vectorized"
    seed: int = 0  # initial weights and sample order
    optim: OptimConfig | None = None  # this run's optimizer settings; None = the config's [optim]
    variant: str = ""  # the [[variants]] name it belongs to ("" without variants)
    # A scheduled run's stages (sweep.batch_schedule, each with its lr): its batch size and lr change as it
    # trains; batch_size and lr are the first stage's. () for a run of one batch size.
    schedule: tuple[Stage, ...] = ()

    def as_event(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "split_chunks": self.split_chunks,
            "seed": self.seed,
            "variant": self.variant,
            "optim": self.optim.name if self.optim is not None else "sgd",
            **({"batch_schedule": [s.as_dict() for s in self.schedule]} if self.schedule else {}),
        }


@dataclass(frozen=True)
class RunSettings:
    """The parts of the config one run trains with (a `Run` never sees the whole `Config`)."""

    model: ModelConfig  # [model]: a built-in name or a factory with its args
    data: DataConfig  # the input pipeline (data.pipeline, num_workers, pin_memory)
    optim: OptimConfig  # the config's [optim]: for runs whose spec brings none
    epochs: int
    target_accuracy: float
    micro_batch: int  # sweep.micro_batch (0 = off)
    perf: PerfConfig
    gns: GnsConfig
    eval_every: int = -1  # sweep.eval_every (samples; -1 = a tenth of the training set, 0 = epoch ends only)

    @classmethod
    def from_config(cls, cfg: Config) -> RunSettings:
        return cls(
            model=cfg.model,
            data=cfg.data,
            optim=cfg.optim,
            epochs=cfg.sweep.epochs,
            target_accuracy=cfg.sweep.target_accuracy,
            micro_batch=cfg.sweep.micro_batch,
            perf=cfg.perf,
            gns=cfg.gns,
            eval_every=cfg.sweep.eval_every,
        )


EVAL_PER_EPOCH = 10  # sub-epoch evaluations per epoch when sweep.eval_every = -1


def eval_interval(eval_every: int, n_train: int) -> int:
    """Training samples between sub-epoch evaluations (0 = epoch ends only): sweep.eval_every, or
    for -1 a tenth of the training set (at least 1)."""
    if eval_every < 0:
        return max(1, n_train // EVAL_PER_EPOCH)
    return eval_every


def resolved_lr(cfg: Config, batch_size: int) -> float:
    """The lr a run with this batch size uses, after `optim.lr_scaling` (before warm-up):
    none: lr; linear: lr * B / base (Goyal et al. 2017); sqrt: lr * sqrt(B / base) (Krizhevsky 2014)."""
    o = cfg.optim
    if o.lr_scaling == "none":
        return o.lr
    if o.lr_scaling == "linear":
        return o.lr * batch_size / o.base_batch_size
    if o.lr_scaling == "sqrt":
        return o.lr * math.sqrt(batch_size / o.base_batch_size)
    raise ValueError(f"unknown optim.lr_scaling {o.lr_scaling!r}; allowed: none, linear, sqrt")


def sweep_lrs(cfg: Config, batch_size: int) -> list[float]:
    """The lrs a batch size runs with: sweep.lrs as given, a log-spaced sweep.lr_grid, or
    else the one lr of `resolved_lr` (a fair comparison sweeps lr per batch size)."""
    s = cfg.sweep
    if s.lrs:
        return list(s.lrs)
    if s.lr_grid.points > 0:
        return s.lr_grid.values()
    return [resolved_lr(cfg, batch_size)]


def lr_labels(lrs: list[float]) -> dict[float, str]:
    """How each lr is written in run ids: `%g` (6 significant digits), or more digits for all of
    them when two different lrs would print alike there (0.1 and 0.1000001 -> "0.1", "0.1000001")."""
    distinct = set(lrs)
    for digits in range(6, 18):  # 17 significant digits tell any two doubles apart
        labels = {lr: f"{lr:.{digits}g}" for lr in distinct}
        if len(set(labels.values())) == len(distinct):
            return labels
    return {lr: repr(lr) for lr in distinct}


def run_specs(cfg: Config, only: Collection[str] | None = None) -> list[RunSpec]:
    """One spec per (batch size, variant, lr, seed). Ids: bs60, bs6000-lars with [[variants]],
    bs60-lr0.05 with several lrs, -s1 with seeds. ValueError if two would share an id (a bug). With
    `only` (a shard's runs), just those, in sweep order."""
    many_lrs = bool(cfg.sweep.lrs) or cfg.sweep.lr_grid.points > 1
    arms: list[tuple[str, Config, list[int]]] = [
        (v.name, dataclasses.replace(cfg, optim=v.optim, split_backward=v.split_backward), v.batch_sizes)
        for v in cfg.variants
    ] or [("", cfg, cfg.sweep.batch_sizes)]
    labels = lr_labels([lr for b in cfg.sweep.batch_sizes for _, arm, _ in arms for lr in sweep_lrs(arm, b)])
    specs = []
    for b in cfg.sweep.batch_sizes:
        for variant, arm, sizes in arms:
            if b not in sizes:
                continue
            chunks = arm.split_backward.chunks if arm.split_backward.enabled else 1
            for lr in sweep_lrs(arm, b):
                for i in range(cfg.sweep.seeds):
                    run_id = (
                        f"bs{b}"
                        + (f"-{variant}" if variant else "")
                        + (f"-lr{labels[lr]}" if many_lrs else "")
                        + (f"-s{i}" if cfg.sweep.seeds > 1 else "")
                    )
                    specs.append(
                        RunSpec(
                            run_id=run_id,
                            batch_size=b,
                            lr=lr,
                            momentum=arm.optim.momentum,
                            split_chunks=chunks,
                            split_method=arm.split_backward.method,
                            seed=cfg.sweep.seed + i,
                            optim=arm.optim,
                            variant=variant,
                        )
                    )
    if cfg.sweep.batch_schedule.strip() not in ("", PROPOSED):  # a schedule as configured: one run more
        specs.append(scheduled_spec(cfg, parse(cfg.sweep.batch_schedule)))
    twice = sorted(i for i, n in Counter(s.run_id for s in specs).items() if n > 1)
    if twice:
        raise ValueError(
            f"run ids {', '.join(twice[:5])} would name two runs each; the config check should "
            "have refused this config (please report it)"
        )
    if only is not None:
        mine = set(only)
        return [s for s in specs if s.run_id in mine]
    return specs


def scheduled_spec(cfg: Config, stages: list[Stage]) -> RunSpec:
    """The scheduled run of `stages` (sweep.batch_schedule, or the schedule the branches proposed): each
    stage's lr as given, else the config's lr rule at its batch size (optim.lr_scaling); id sched16-64."""
    stages = [
        dataclasses.replace(s, lr=s.lr if s.lr is not None else resolved_lr(cfg, s.batch_size))
        for s in stages
    ]
    return RunSpec(
        run_id=run_id(stages),
        batch_size=stages[0].batch_size,
        lr=float(stages[0].lr),  # type: ignore[arg-type]
        momentum=cfg.optim.momentum,
        seed=cfg.sweep.seed,
        optim=cfg.optim,
        schedule=tuple(stages),
    )


def slice_samples(cfg: Config, n_train: int) -> int:
    """Samples per run per interleaved round: a tenth of an epoch, at least one biggest batch."""
    return max(max(cfg.sweep.batch_sizes), min(SLICE_SAMPLES, max(1, n_train // 10)))


def queue_order(specs: list[RunSpec], n_train: int) -> list[RunSpec]:
    """The order runs are handed to free workers: the most iterations per epoch first (on a GPU the
    small batches take longest: per-iteration overhead dominates), ties in sweep order. Starting the
    longest first keeps one long run from finishing alone at the end (longest-processing-time rule)."""
    return sorted(specs, key=lambda s: -math.ceil(n_train / s.batch_size))


def check_against_dataset(cfg: Config, n_train: int) -> list[str]:
    """What the loaded training set (`n_train` samples) rules out, one problem a line ([] = fine):
    batch sizes larger than the set (one whole-set batch would be labelled with a size it is not).

    The config check catches this only when data.train_samples is given; this one runs once the
    dataset is known (its real size, after a fallback), before anything trains."""
    big = [b for b in cfg.sweep.batch_sizes if b > n_train]
    if not big:
        return []
    shown = ", ".join(map(str, big[:8])) + (f" and {len(big) - 8} more" if len(big) > 8 else "")
    many = len(big) > 1
    return [
        f"batch size{'s' if many else ''} {shown} (sweep.batch_sizes) {'are' if many else 'is'} larger than "
        f"the training set ({n_train} samples); a batch cannot exceed it"
    ]
