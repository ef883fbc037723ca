"""What one run of a sweep is, as plain data: `RunSpec` (what distinguishes it from the other runs)
and `RunSettings` (what every run of the sweep trains with), both built by the orchestration from the
config. No torch here: the app and the planner may import this module.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainer.config import Config, DataConfig, GnsConfig, OptimConfig, PerfConfig


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

    def as_event(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "split_chunks": self.split_chunks,
            "seed": self.seed,
            "variant": self.variant,
            "optim": self.optim.name if self.optim is not None else "sgd",
        }


@dataclass(frozen=True)
class RunSettings:
    """The parts of the config one run trains with (a `Run` never sees the whole `Config`)."""

    model: str  # model.name
    data: DataConfig  # the input pipeline (data.pipeline, num_workers, pin_memory)
    optim: OptimConfig  # the config's [optim]: for runs whose spec brings none
    epochs: int
    target_accuracy: float
    micro_batch: int  # sweep.micro_batch (0 = off)
    perf: PerfConfig
    gns: GnsConfig

    @classmethod
    def from_config(cls, cfg: Config) -> RunSettings:
        return cls(
            model=cfg.model.name,
            data=cfg.data,
            optim=cfg.optim,
            epochs=cfg.sweep.epochs,
            target_accuracy=cfg.sweep.target_accuracy,
            micro_batch=cfg.sweep.micro_batch,
            perf=cfg.perf,
            gns=cfg.gns,
        )
