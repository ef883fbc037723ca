"""Branches trained in groups: the branches of one point that share a batch size, fused where they can.

At one point, the branches of one batch size (its lr grid, `branch.lr_factors`) start from the same
weights, optimizer state, RNG state and data order and differ only in lr. They can take their steps
together as one fused group (trainer.engine.fuse, trainer.engine.steppers.StackedSteps), as a sweep's lr
grid does, and the sweep's own rule decides whether they do (perf.fuse_runs: trainer.engine.fuse.plan_units,
"auto" on a CPU fuses batches up to 16 only); each branch's run_started says whether it trained fused, with
which runs, or why not.

Each branch keeps its own stop: every `every` samples each member is checked, and one that is over (its
crossing established, or branch.max_samples trained) ends and leaves the group; the others train on (a
group down to one goes on with that run's own step). Its losses and evaluations are those it has alone,
up to the float order of the stacked step.

Time: a fused branch's clocks hold its share of the group's time (1/K of each interval while K train, as a
fused sweep run's); the group's own totals are in its `fused_group` event. The seconds per step a branch
hands on for the schedule's expected time (`step_s`) are a time alone: its own measured time where it
trained alone, else its batch size's step timed alone before the group trained (trainer.sweep.calibrate, a
`step_time` event); the share it was charged is kept beside it as `step_s_share`, with `fused_runs` K.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import torch

from trainer.data.datasets import Dataset
from trainer.engine.cuda_graph import FastPathUnavailable, resolve_fast_path
from trainer.engine.evaluation import TestSet
from trainer.engine.fuse import plan_units, start_unit
from trainer.engine.group import Group
from trainer.engine.run import Run
from trainer.plan import RunSettings
from trainer.runlog import Emitter
from trainer.runlog.controls import Controls
from trainer.sweep.calibrate import StepTimes


class Member(Protocol):
    """What a group needs of a branch (trainer.sweep.branch.Branch)."""

    run: Run
    every: int

    def restore(self, run: Run) -> None: ...

    def reached(self) -> bool: ...

    def end(self) -> dict[str, Any]: ...


class GroupTrainer:
    """Trains the branches of each point, one group per batch size (see the module's docstring); the
    batch sizes timed alone are kept from one point to the next."""

    def __init__(
        self,
        settings: RunSettings,
        dataset: Dataset,
        device: torch.device,
        test: TestSet,
        emitter: Emitter,
        controls: Controls | None,
        runs: list[Any],
    ) -> None:
        self.settings, self.dataset, self.device, self.test = settings, dataset, device, test
        self.emitter, self.controls, self.runs = emitter, controls, runs
        self.times = StepTimes()
        try:
            self.fast_path = resolve_fast_path(settings.perf.fast_path, device, settings.data.pipeline)
        except FastPathUnavailable:  # the sweep said so when it began; its runs train eagerly
            self.fast_path = "eager"

    def train(self, branches: Sequence[Member], label: str) -> list[dict[str, Any]]:
        """Train `branches` (one point's), each group in turn, appending each run to the sweep's `runs` as
        its group starts; returns their measurements in the order given."""
        by_id = {b.run.run_id: b for b in branches}
        measured: dict[str, dict[str, Any]] = {}
        for unit in plan_units([b.run.spec for b in branches], self.settings, self.device, self.fast_path):
            members = [by_id[s.run_id] for s in unit.specs]
            runs = [m.run for m in members]
            self.runs.extend(runs)
            if unit.fused:  # a share of the group's time is no time alone: time one step alone first
                alone = self.times.ensure(
                    [r.spec for r in runs],
                    runs[0].settings,
                    self.dataset,
                    self.device,
                    self.test,
                    self.emitter,
                    self.controls,
                )
                for r in runs:
                    r.step_alone = alone.get(r.run_id)
            restorers = {m.run.run_id: m.restore for m in members}
            name = f"{label}-bs{unit.specs[0].batch_size}"
            for group in start_unit(unit, runs, restorers, name, resumed=False):  # type: ignore[arg-type]
                measured.update(_train(group, [by_id[r.run_id] for r in group.members]))
        return [measured[b.run.run_id] for b in branches]


def _train(group: Group, members: list[Member]) -> dict[str, dict[str, Any]]:
    """Advance `group` until each member is over, ending each as it is (it leaves the group)."""
    out: dict[str, dict[str, Any]] = {}
    every = members[0].every
    try:
        while len(out) < len(members):
            group.advance(every)
            for b in members:
                if b.run.run_id not in out and (b.reached() or b.run.finished):
                    out[b.run.run_id] = _measurement(b)
    finally:
        group.close()  # a fused group records its time (fused_group), also when a stop ends it
    return out


def _measurement(b: Member) -> dict[str, Any]:
    m = b.end()
    run = b.run
    if run.fused_runs:
        m.update(
            fused_runs=len(run.fused_runs),
            step_s_share=m["step_s"],
            step_s=(run.step_alone or {}).get("step_s"),
        )
    return m
