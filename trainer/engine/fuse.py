"""Which runs train fused (perf.fuse_runs): the plan of a sweep's units, and starting them as groups.

An lr grid (and seeds) multiplies a sweep's cost by lrs x seeds, yet a small-batch step leaves the
device nearly idle: its time is per-kernel overhead, not arithmetic. Runs that share a batch size, a
model and plain SGD can take their steps together as one stacked model (trainer.engine.stacked), trained
by one group (trainer.engine.group) with stacked steps (trainer.engine.steppers). Each run keeps its own
data order (its seed), warm-up, losses, evaluations, probes, events and checkpoint.

- `plan_units` groups a sweep's runs: runs of one batch size that may share steps form a unit, the others
  train alone, and `static_reason` says why (run_started's fused_reason).
- `start_unit` prepares a unit's runs, makes their group (each run in a group of its own when they
  cannot share steps after all: a model torch.func cannot batch, batch norm, dropout), and announces them.
- Timing: the group's wall and compute time are measured once and shared equally among the runs that
  were training (each run's epoch time and compute time are its share: the cost of that run when K train
  together); the group's own totals are in the `fused_group` event at its end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from trainer.engine.group import Group
from trainer.engine.run import Run
from trainer.engine.stacked import FuseUnavailable
from trainer.engine.stops import STOP_INSIDE_MIN_BATCH
from trainer.plan import RunSettings, RunSpec

#: perf.fuse_runs = "auto" on a CPU fuses runs of batches up to this size. bench/fuse.py on a 2-core VM
#: (samples/s of all runs, fused / separate, 2 threads): K = 16: batch 1 3.7x, 6 2.3x, 16 1.6x, 60 0.98x;
#: K = 4: 1.3x, 1.4x, 1.3x, 0.84x. From batch 60 the arithmetic dominates and vmap's batched convolutions
#: are no faster than K plain ones.
CPU_AUTO_MAX_BATCH = 16


@dataclass
class Unit:
    """Runs of a sweep that start together: a fused group when `fused` (2 or more specs), else one run.
    `reason` is why a spec trains alone ("" when fusion is off or it is fused)."""

    specs: list[RunSpec]
    fused: bool = False
    reason: str = ""


def static_reason(
    spec: RunSpec,
    settings: RunSettings,
    device: torch.device,
    fast_path: str,
    *,
    ddp: bool = False,
    parallel: bool = False,
) -> str:
    """Why `spec` cannot join a fused group whatever the other runs are ("" if it can)."""
    mode = settings.perf.fuse_runs
    optim = spec.optim if spec.optim is not None else settings.optim
    if ddp:
        return "torchrun: data parallel runs train alone"
    if spec.schedule:
        return "its batch size changes as it trains (sweep.batch_schedule)"
    if parallel:
        return "sweep.parallel: each run trains in its own GPU worker"
    if optim.name != "sgd":
        return f'optim.name = "{optim.name}": fused steps reproduce SGD only'
    if spec.split_chunks > 1:
        return "split-backward is on from the start: each run takes its own k chunk steps"
    if 0 < settings.micro_batch < spec.batch_size:
        return f"sweep.micro_batch = {settings.micro_batch}: gradient accumulation trains each run alone"
    if settings.perf.precision != "fp32":
        return f'perf.precision = "{settings.perf.precision}": fused steps are fp32 only'
    if settings.perf.channels_last:
        return "perf.channels_last: fused steps use the default memory format only"
    if spec.batch_size >= STOP_INSIDE_MIN_BATCH:
        return f"batch {spec.batch_size} >= {STOP_INSIDE_MIN_BATCH}: a step is long enough alone (and must stop within 2 s)"
    if mode == "auto":
        if device.type == "cpu" and spec.batch_size > CPU_AUTO_MAX_BATCH:
            return (
                f"batch {spec.batch_size} > {CPU_AUTO_MAX_BATCH}: on a CPU fused steps of larger batches are slower than "
                'separate ones (bench/fuse.py); perf.fuse_runs = "on" fuses them anyway'
            )
        if fast_path == "cuda_graph":
            return (
                'perf.fuse_runs = "auto" leaves CUDA-graph runs apart until bench/gpu_checks.sh measures their fused '
                'graph faster on this trainer; perf.fuse_runs = "on" fuses them inside one CUDA graph'
            )
    return ""


def group_key(spec: RunSpec) -> tuple[Any, ...]:
    """Runs with equal keys may train as one group (lr, momentum, weight decay and warm-up may differ)."""
    return (spec.batch_size, spec.split_chunks, spec.split_method)


def plan_units(
    specs: list[RunSpec],
    settings: RunSettings,
    device: torch.device,
    fast_path: str,
    *,
    ddp: bool = False,
    parallel: bool = False,
) -> list[Unit]:
    """The sweep's runs as units in sweep order: each fused group where its first run stands, the other
    runs one by one. perf.fuse_runs = "off" gives one unit per run and no reasons."""
    if settings.perf.fuse_runs == "off":
        return [Unit([s]) for s in specs]
    reasons = {
        s.run_id: static_reason(s, settings, device, fast_path, ddp=ddp, parallel=parallel) for s in specs
    }
    groups: dict[tuple[Any, ...], list[RunSpec]] = {}
    for s in specs:
        if not reasons[s.run_id]:
            groups.setdefault(group_key(s), []).append(s)
    units: list[Unit] = []
    placed: set[str] = set()
    for s in specs:
        if s.run_id in placed:
            continue
        members = groups.get(group_key(s), []) if not reasons[s.run_id] else []
        if len(members) > 1:
            units.append(Unit(list(members), fused=True))
            placed.update(m.run_id for m in members)
        else:
            reason = reasons[s.run_id] or f"no other run of batch {s.batch_size} can train with it"
            units.append(Unit([s], reason=reason))
            placed.add(s.run_id)
    return units


def start_unit(
    unit: Unit,
    runs: list[Run],
    restorers: dict[str, Callable[[Run], None] | None],
    label: str,
    resumed: bool = True,
) -> list[Group]:
    """Start the runs of `unit` (announcing each with run_started) and return the groups the sweep
    advances: one fused group of the runs that train fused, and a group of one for each other run.
    A restorer puts its run back where a resumed sweep left it (run_started: resumed_from_epoch); with
    `resumed` False it puts the run somewhere new (a branch at its point), which run_started does not call
    a resume."""
    if not unit.fused or len(runs) < 2:
        for run in runs:
            run.fused_reason = unit.reason
            restore = restorers.get(run.run_id)
            run.announce(run.prepare(restore), restored=resumed and restore is not None)
        return [Group([run]) for run in runs]
    ooms = {run.run_id: run.prepare(restorers.get(run.run_id)) for run in runs}
    ready = [r for r in runs if ooms[r.run_id] is None and r.ledger.totals.epochs < r.settings.epochs]
    group: Group | None = None
    reason = ""
    try:
        group = Group(ready, label, fused=True)  # its steps take the threads of the whole group's work
    except FuseUnavailable as exc:
        reason = str(exc)
    for run in runs:
        if group is not None and run in ready:
            run.fused, run.fused_runs = label, [r.run_id for r in ready]
            if group.steps.fast_path != run.parts.fast_path:  # the group's step is eager: say why
                run.parts.fast_path, run.parts.fast_path_reason = (
                    "eager",
                    "it trains fused (perf.fuse_runs): fused steps run eagerly",
                )
        else:
            run.fused_reason = reason or (
                "it did not fit in memory" if ooms[run.run_id] else "it had trained every epoch"
            )
        run.announce(ooms[run.run_id], restored=resumed and restorers.get(run.run_id) is not None)
    if group is None:
        return [Group([run]) for run in runs]
    return [group] + [Group([r]) for r in runs if r not in ready]
