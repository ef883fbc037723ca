"""Which runs each shard of a sweep trains: units of work (a run, or runs that may train as one fused
group, kept whole) dealt to N shards by expected cost, deterministically.

Every shard computes the same assignment from the same config (no coordination), and records it in
its shard.json (trainer.runlog.shards), which `resume` then follows.

Expected cost of a unit, in sample-equivalents: epochs x (steps per epoch x STEP_COST + runs x
training samples). A step's fixed cost (kernel launches, the optimizer, Python) is worth about
STEP_COST samples of arithmetic at the model sizes this trainer runs, so small batches weigh more per
sample, as they do on a GPU; a fused group pays its steps once for all its runs. Units are dealt
longest first, each to the least loaded shard (the longest-processing-time rule), ties to the lower
shard index and in sweep order.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from trainer.config import Config
from trainer.engine.fuse import group_key, static_reason
from trainer.plan import RunSettings, RunSpec, run_specs
from trainer.runlog.shards import ShardInfo

STEP_COST = 32  # sample-equivalents per optimizer step (see the module docstring)
NOMINAL_TRAIN_SAMPLES = 60_000  # data.train_samples = 0 (the whole set): MNIST's size, for the weights only


@dataclass
class ShardUnit:
    """Runs that go to one shard together (several: they may train as one fused group)."""

    specs: list[RunSpec]
    cost: float


def shard_units(cfg: Config) -> list[ShardUnit]:
    """The sweep's units of work in sweep order. Runs that could train fused on some device (trainer.engine.fuse's
    device-independent rules: perf.fuse_runs "auto" counts as "on" here) stay together, so a shard's
    fused groups are whole whatever device it lands on; perf.fuse_runs = "off" gives one unit per run."""
    import torch

    specs = run_specs(cfg)
    settings = RunSettings.from_config(cfg)
    n = cfg.data.train_samples if cfg.data.train_samples > 0 else NOMINAL_TRAIN_SAMPLES
    epochs = max(1, cfg.sweep.epochs)
    if settings.perf.fuse_runs == "off":
        groups = [[s] for s in specs]
    else:
        anywhere = dataclasses.replace(settings, perf=dataclasses.replace(settings.perf, fuse_runs="on"))
        keyed: dict[tuple, list[RunSpec]] = {}
        groups = []
        for s in specs:
            if static_reason(s, anywhere, torch.device("cpu"), "eager"):
                groups.append([s])
                continue
            key = (s.variant, *group_key(s))
            if key not in keyed:
                keyed[key] = []
                groups.append(keyed[key])
            keyed[key].append(s)
    return [ShardUnit(g, epochs * (math.ceil(n / g[0].batch_size) * STEP_COST + len(g) * n)) for g in groups]


def assign(cfg: Config, count: int) -> list[list[str]]:
    """The run ids of each of `count` shards, each list in sweep order; every run in exactly one."""
    units = shard_units(cfg)
    load = [0.0] * count
    owner: dict[str, int] = {}
    for unit in sorted(units, key=lambda u: -u.cost):  # stable: ties stay in sweep order
        target = min(range(count), key=lambda i: (load[i], i))
        load[target] += unit.cost
        for s in unit.specs:
            owner[s.run_id] = target
    return [[s.run_id for s in run_specs(cfg) if owner[s.run_id] == i] for i in range(count)]


class ShardError(ValueError):
    """A shard that cannot be planned (more shards than units of work): the message names the fix."""


def plan_shard(cfg: Config, index: int, count: int) -> ShardInfo:
    """Shard `index` of `count`: what its shard.json records. ShardError when some shard would get no work."""
    units = shard_units(cfg)
    if count > len(units):
        raise ShardError(
            f"{count} shards but the sweep has {len(units)} units of work (runs, with runs that may "
            f"train fused kept together); use at most {len(units)} shards"
        )
    owners = assign(cfg, count)
    shard_of = {r: i for i, runs in enumerate(owners) for r in runs}
    rows = tuple({**s.as_event(), "shard": shard_of[s.run_id]} for s in run_specs(cfg))
    return ShardInfo(index, count, rows)
