"""sweep.batch_schedule: one run whose batch size changes as training goes on, piecewise by samples.

Written as Megatron-LM's `--step-batch-size-schedule` argument, "0:32 24000:64 48000:128": from each
number of training samples on, that batch size. A stage may give its lr as a third field ("0:32:0.05");
a stage without one takes the lr the config's rule gives its batch size (optim.lr_scaling). "proposed"
trains the schedule the sweep's own branches propose ([branch], trainer.sweep.branch) once they are
measured; "" trains none. Pure: no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PROPOSED = "proposed"
#: run_started.batch_schedule_source of a run that trains the schedule its sweep's branches proposed.
PROPOSED_SOURCE = "proposed by the sweep's branches"
FORMAT_HINT = 'e.g. "0:32 24000:64 48000:128" (samples:batch_size, optionally :lr), or "proposed"'


@dataclass(frozen=True)
class Stage:
    """From `samples` training samples on, batches of `batch_size` at `lr` (None: the lr rule's)."""

    samples: int
    batch_size: int
    lr: float | None = None

    def as_dict(self) -> dict[str, int | float | None]:
        return {"samples": self.samples, "batch_size": self.batch_size, "lr": self.lr}


class ScheduleError(ValueError):
    """A batch_schedule string that does not parse; the message names the part and the form."""


def parse(text: str) -> list[Stage]:
    """The stages of a schedule string ([] for "" and for "proposed", which the sweep fills in)."""
    text = text.strip()
    if not text or text == PROPOSED:
        return []
    stages = []
    for part in text.split():
        fields = part.split(":")
        if len(fields) not in (2, 3):
            raise ScheduleError(f"{part!r} is not samples:batch_size[:lr]; {FORMAT_HINT}")
        try:
            samples, size = int(fields[0]), int(fields[1])
            lr = float(fields[2]) if len(fields) == 3 else None
        except ValueError:
            raise ScheduleError(
                f"{part!r}: samples and batch size are whole numbers; {FORMAT_HINT}"
            ) from None
        if samples < 0 or size < 1:
            raise ScheduleError(f"{part!r}: samples must be >= 0 and the batch size >= 1")
        if lr is not None and not (math.isfinite(lr) and lr > 0):
            raise ScheduleError(f"{part!r}: the lr must be a positive number")
        stages.append(Stage(samples, size, lr))
    if stages[0].samples != 0:
        raise ScheduleError(f"the first stage starts at sample 0, not {stages[0].samples}; {FORMAT_HINT}")
    starts = [s.samples for s in stages]
    if any(b <= a for a, b in zip(starts, starts[1:])):
        raise ScheduleError(f"the stages' samples must increase ({' '.join(map(str, starts))})")
    return stages


def format_stages(stages: list[Stage], with_lr: bool = False) -> str:
    """The schedule string of `stages` ("0:32 24000:64"; with_lr adds each stage's lr where it has one)."""
    return " ".join(
        f"{s.samples}:{s.batch_size}" + (f":{s.lr:.6g}" if with_lr and s.lr is not None else "")
        for s in stages
    )


def run_id(stages: list[Stage]) -> str:
    """The scheduled run's id: its batch sizes in order, "sched32-64-128"."""
    return "sched" + "-".join(str(s.batch_size) for s in stages)


def stage_at(stages: list[Stage], samples: int) -> Stage:
    """The stage in force for a batch that starts after `samples` training samples."""
    current = stages[0]
    for s in stages:
        if s.samples <= samples:
            current = s
    return current


def change_points(stages: list[Stage], n_train: int, epochs: int) -> list[tuple[int, int, int]]:
    """(iteration, samples, batch size) where each stage's batches begin, the first at (0, 0): each batch
    takes the stage its first sample is in, an epoch's last batch is what is left of it (the data order of
    trainer.data.pipelines). A stage no batch starts in is left out."""
    out: list[tuple[int, int, int]] = []
    it = samples = 0
    total = n_train * epochs
    last: Stage | None = None
    while samples < total and n_train > 0:
        stage = stage_at(stages, samples)
        if stage is not last:
            out.append((it, samples, stage.batch_size))
            last = stage
        within = samples % n_train
        samples += min(stage.batch_size, n_train - within)
        it += 1
    return out
