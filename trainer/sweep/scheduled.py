"""The sweep's scheduled run (sweep.batch_schedule): a run whose batch size changes by samples, trained beside
the fixed batch sizes so the report can say whether the schedule paid.

A schedule given in the config is one more run of the sweep (trainer.plan.run_specs): it trains interleaved
with the others, resumes from its checkpoints like them, and is listed in sweep_started. "proposed" trains
the schedule the sweep's branches proposed (trainer.sweep.branch's `branch_result`), after them; a resumed
sweep measures the branches again and trains it again (its events are dropped as the branches' are).

Either way the run learns, before it trains, the seconds a step of each of its stages' batch sizes takes
alone (trainer.sweep.calibrate), so its time alone to the target counts each stage's steps at their own
price; the run itself does the changing (trainer.engine.run: `Run.schedule`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from trainer.analysis.schedule_verdict import scheduled_time_alone
from trainer.config import Config
from trainer.config.batch_schedule import PROPOSED, Stage, change_points, stage_at
from trainer.plan import RunSettings, RunSpec, scheduled_spec
from trainer.sweep.calibrate import StepTimes

CONFIGURED = "as configured in sweep.batch_schedule"


def is_proposed(cfg: Config) -> bool:
    return cfg.sweep.batch_schedule.strip() == PROPOSED


def proposed_spec(cfg: Config, result: dict[str, Any] | None) -> RunSpec | None:
    """The run of the schedule the branches proposed (None when they proposed none)."""
    stages = [
        Stage(int(s["samples"]), int(s["batch_size"]), float(s["lr"]))
        for s in (result or {}).get("schedule") or []
    ]
    return scheduled_spec(cfg, stages) if stages else None


def started_fields(spec: RunSpec, source: str) -> dict[str, Any]:
    """What its run_started carries besides a run's own fields."""
    return {"batch_schedule": [s.as_dict() for s in spec.schedule], "batch_schedule_source": source}


def stage_calibrations(
    alone: StepTimes, spec: RunSpec, settings: RunSettings, *context: Any
) -> dict[int, dict[str, Any]]:
    """Each stage's batch size timed alone (the step_time fields), measured where not recorded yet.
    `context`: StepTimes.ensure's dataset, device, test, emitter and controls."""
    out: dict[int, dict[str, Any]] = {}
    for stage in spec.schedule:
        if stage.batch_size in out:
            continue
        one = dataclasses.replace(spec, batch_size=stage.batch_size, schedule=())
        out[stage.batch_size] = alone.ensure([one], settings, *context)[spec.run_id]
    return out


class Scheduled:
    """What the sweep advances for a scheduled run: its group of one, never across a stage's first sample;
    at each stage the group trains on at the stage's batch size and lr (Group.change_batch: the rest of the
    epoch in the same data order, the optimizer state carried) and the run records `batch_size_changed`.
    A batch takes the stage its first sample is in: the change comes at the first batch that starts at or
    after the stage's samples. A run restored from its checkpoint is at the batch size it was saved at; if
    a stage begins right there, the change comes (and is recorded) then, as it did before the interruption."""

    def __init__(self, group: Any, run: Any, emitter: Any) -> None:
        self.group, self.run, self.emitter = group, run, emitter
        self.stages = list(run.spec.schedule)

    @property
    def finished(self) -> bool:
        return self.group.finished

    def close(self) -> None:
        self.group.close()

    def advance(self, samples: int) -> None:
        self.follow()
        if self.group.finished:
            return
        done = self.run.ledger.totals.samples
        later = [s.samples for s in self.stages if s.samples > done]
        self.group.advance(min(samples, later[0] - done) if later else samples)
        self.follow()

    def follow(self) -> None:
        """The stage for the next batch; a new one changes the group's batch size and lr, recorded."""
        run = self.run
        if run.finished:
            return
        totals = run.ledger.totals
        stage = stage_at(self.stages, totals.samples)
        if (stage.batch_size, stage.lr) == (run.parts.batch_size, run.parts.lr):
            return
        try:
            self.group.change_batch(stage.batch_size, {run.run_id: stage.lr})
        except ValueError as exc:  # torchrun: a data parallel run keeps its batch size
            run.finish("failed", f"{exc}; a batch-size schedule trains without torchrun")
            return
        self.emitter.emit(
            "batch_size_changed",
            run=run.run_id,
            iter=totals.iters,
            samples=totals.samples,
            batch_size=stage.batch_size,
            lr=stage.lr,
        )


def price_alone(spec: RunSpec, n_train: int, epochs: int, calibrations: dict[int, dict[str, Any]]) -> Any:
    """The scheduled run's summary fields of time alone (Run.price_alone): each stage's batches at the step
    time of its batch size (trainer.analysis.schedule_verdict.scheduled_time_alone)."""
    points = [(it, size) for it, _, size in change_points(list(spec.schedule), n_train, epochs)]
    return lambda row: scheduled_time_alone(row, points, calibrations)


def wrap(group: Any, emitter: Any) -> Any:
    """What the sweep advances for `group`: the group itself, or a scheduled run's Scheduled."""
    member = group.members[0]
    return Scheduled(group, member, emitter) if member.spec.schedule else group
