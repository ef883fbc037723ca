"""A batch-size schedule proposed from B_crit measured over training (trainer.sweep.branch), and its export.

McCandlish et al. (2018) and Merrill et al. (2025): the critical batch size grows as the loss falls, so
a batch that wastes samples early can be efficient later. The proposal is a piecewise-constant ramp:
from each measured point on, the largest measured batch size at or below that point's B_crit (never
smaller than the stage before), with the lr the branches measured best for that batch size at that point
(the fewest steps among branch.lr_factors; the config's lr rule where that batch size has no crossing).

Its expected cost comes from the same model: progress a fixed batch B0 makes in S0 steps takes
S0 (1 + B_crit / B) / (1 + B_crit / B0) steps at batch B (and E0 (1 + B / B_crit) / (1 + B0 / B_crit)
samples), per stage with that stage's B_crit; time is those steps times the seconds a step of each batch
size took in the branches. An estimate, not a measurement: the schedule has not been trained.

Megatron-LM's `--step-batch-size-schedule "T0:BS0 T1:BS1 ..."` gives the global batch size from each
threshold on; thresholds are samples unless --seq-length makes them tokens, and the first is 0.

Pure: no torch, no numpy (the app and the report use it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from trainer.config.batch_schedule import Stage, format_stages


def pick_batch(b_crit: float, batch_sizes: Sequence[int]) -> int:
    """The largest of `batch_sizes` at or below `b_crit` (the smallest when all are above it)."""
    sizes = sorted(batch_sizes)
    below = [b for b in sizes if b <= b_crit]
    return below[-1] if below else sizes[0]


def propose(
    points: Sequence[dict[str, Any]], batch_sizes: Sequence[int], lr_of: Callable[[int], float]
) -> list[Stage]:
    """The ramp: one stage per measured point with a determined B_crit (the first from sample 0), equal
    neighbours merged, never decreasing. `points`: {samples, B_crit, determined, best_lr} in training order;
    `lr_of` gives the lr of a batch size the point's best_lr lacks.
    [] when no point determined its B_crit."""
    stages: list[Stage] = []
    for point in sorted(points, key=lambda p: p["samples"]):
        if not point.get("determined") or point.get("B_crit") is None:
            continue
        size = pick_batch(float(point["B_crit"]), batch_sizes)
        if stages and size <= stages[-1].batch_size:
            continue
        measured = (point.get("best_lr") or {}).get(str(size))  # the branches' fewest-step lr there
        lr = float(measured) if isinstance(measured, (int, float)) else lr_of(size)
        stages.append(Stage(0 if not stages else int(point["samples"]), size, lr))
    return stages


def megatron(stages: Sequence[Stage]) -> str:
    """The schedule as Megatron-LM's `--step-batch-size-schedule` argument (thresholds in samples)."""
    if not stages:
        raise ValueError("an empty schedule has no Megatron-LM form")
    return "--step-batch-size-schedule \"" + " ".join(f"{s.samples}:{s.batch_size}" for s in stages) + "\""


def to_toml(stages: Sequence[Stage]) -> str:
    """The schedule in bstui's config form: sweep.batch_schedule with each stage's lr (trainer.config.batch_schedule)."""
    return (
        "# a batch-size schedule proposed by bstui's branched B_crit: from each number of samples on, that\n"
        "# batch size at that lr (samples:batch_size:lr)\n"
        "[sweep]\n"
        f'batch_schedule = "{format_stages(list(stages), with_lr=True)}"\n'
    )


def expected_savings(
    stages: Sequence[Stage],
    points: Sequence[dict[str, Any]],
    base_batch: int,
    total_samples: int,
    step_s: dict[int, float] | None = None,
) -> dict[str, Any]:
    """Steps, samples and (with `step_s`, seconds per step by batch size) time the schedule is expected to
    take for the progress the base run (fixed `base_batch`) makes in `total_samples`, as fractions saved
    (positive: the schedule is cheaper). Each stretch of the base run between points is priced with the
    B_crit measured at its start (before the first point: the first point's)."""
    measured = sorted(
        (p for p in points if p.get("determined") and p.get("B_crit")), key=lambda p: p["samples"]
    )
    if not stages or not measured or total_samples <= 0:
        return {}
    cuts = [0] + [int(p["samples"]) for p in measured[1:]] + [total_samples]
    base_steps = sched_steps = sched_samples = 0.0
    base_time = sched_time = 0.0
    timed = step_s is not None and base_batch in step_s
    for i, p in enumerate(measured):
        a, b = cuts[i], min(cuts[i + 1], total_samples)
        if b <= a:
            continue
        bc = float(p["B_crit"])
        size = stage_at(stages, a).batch_size
        s0 = (b - a) / base_batch
        s = s0 * (1 + bc / size) / (1 + bc / base_batch)
        base_steps += s0
        sched_steps += s
        sched_samples += (b - a) * (1 + size / bc) / (1 + base_batch / bc)
        if timed:
            timed = size in step_s  # type: ignore[operator]
            if timed:
                base_time += s0 * step_s[base_batch]  # type: ignore[index]
                sched_time += s * step_s[size]  # type: ignore[index]
    out: dict[str, Any] = {
        "base_batch_size": base_batch,
        "base_steps": base_steps,
        "steps": sched_steps,
        "samples": sched_samples,
        "base_samples": float(total_samples),
        "steps_saved": 1 - sched_steps / base_steps if base_steps else None,
        "samples_saved": 1 - sched_samples / total_samples,
    }
    if timed and base_time > 0:
        out.update(base_time_s=base_time, time_s=sched_time, time_saved=1 - sched_time / base_time)
    return out


def stage_at(stages: Sequence[Stage], samples: float) -> Stage:
    """The stage in force at `samples` training samples."""
    current = stages[0]
    for s in stages:
        if s.samples <= samples:
            current = s
    return current


def describe(stages: Sequence[Stage]) -> str:
    """One line: "32 from 0, 64 from 12,000 samples, ..."."""
    return ", ".join(f"{s.batch_size} (lr {s.lr:.3g}) from {s.samples:,} samples" for s in stages)
