"""Time alone: the seconds one training step of a batch size takes when its run trains alone.

A run that trains in a fused group (trainer.engine.fuse) pays a 1/K share of the group's time; a run that trains
alone pays its own. Neither is what a comparison of batch sizes needs: that is the time each batch size's
steps cost alone, on this device, with this model and these settings. Before the sweep trains, for every
distinct kind of step (batch size, model, optimizer, split-backward, micro-batch, precision, fast path,
device, CPU threads) this module builds the step a lone run of that kind would use (the run's own
`Run.prepare`: same model, data pipeline, step and threads), runs it a few times as warm-up, then times
it in blocks of m steps (each block synchronised at both ends, m chosen so a block lasts at least
MIN_BLOCK_S): the step time is the median over blocks of block time / m, its spread the fastest and the
slowest block. Warm-up and blocks stop at their minimum counts once BUDGET_S is spent, so a step of
seconds (a CPU at batch 6000) costs a few steps, a step of a millisecond a few hundred.

The calibration is outside every run's clocks, its model is thrown away, and the random state of torch
is put back afterwards: the runs train exactly as they would without it. Each measurement is a
`step_time` event (with what it cost); one measurement serves every run of its kind (an lr grid, seeds),
and `resume` reuses the recorded ones instead of measuring again. A run's summary then carries
`step_alone_s` (and its spread): time to target alone = batches to the target x step_alone_s.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Iterable, Iterator
from typing import Any

import torch

from trainer.data.datasets import Dataset
from trainer.engine.evaluation import TestSet
from trainer.engine.run import Run
from trainer.engine.state import run_micro_batch, run_optim
from trainer.engine.stops import is_oom
from trainer.engine.threads import cpu_threads
from trainer.engine.timing import synchronize
from trainer.plan import RunSettings, RunSpec
from trainer.runlog import Emitter, Event, EventType
from trainer.runlog.controls import Controls, StopRequested

WARMUP_STEPS = (1, 3)  # at least / at most: the first step pays one-off costs (allocation, lazy init)
BLOCKS = (3, 7)  # timed blocks: at least / at most
MIN_BLOCK_S = 0.005  # a block lasts at least this long (timer resolution; GPU launch queues)
MAX_BLOCK_STEPS = 200
BUDGET_S = 0.2  # seconds of stepping after which warm-up and blocks stop at their minimum counts
#: Runs of fewer steps than this are not calibrated: the 4 or more steps a calibration takes at least would
#: be a large share of them (a few-step test sweep, a batch of thousands for an epoch or two); their
#: lone runs compare by their measured time, which is a time alone.
MIN_RUN_STEPS = 50


def step_key(spec: RunSpec, settings: RunSettings, device: torch.device) -> str:
    """What one step's time alone depends on, as a string: runs with equal keys share a measurement.
    lr, momentum, seed, weight decay and warm-up change no step's cost and are left out."""
    micro = run_micro_batch(spec, settings)
    perf = settings.perf
    return json.dumps(
        {
            "batch_size": spec.batch_size,
            "split_chunks": spec.split_chunks,
            "split_method": spec.split_method,
            "micro_batch": micro,
            "optim": run_optim(spec, settings).name,
            "model": settings.model.name,
            "model_args": settings.model.args,
            "precision": perf.precision,
            "channels_last": perf.channels_last,
            "fast_path": perf.fast_path,
            "pipeline": settings.data.pipeline,
            "augment": settings.data.augment,
            "device": str(device),
            "cpu_threads": cpu_threads(spec.batch_size, micro, perf.cpu_threads)
            if device.type == "cpu"
            else 0,
        },
        sort_keys=True,
        default=str,
    )


def _items(run: Run) -> Iterator[Any]:
    """The lone run's step inputs, epoch after epoch (a tiny dataset may hold fewer steps than a calibration)."""
    epoch = 0
    while True:
        empty = True
        for item in run.parts.step.items(epoch):
            empty = False
            yield item
        if empty:
            return
        epoch += 1


def time_steps(run: Run, device: torch.device, budget_s: float = BUDGET_S) -> dict[str, Any]:
    """Warm up and time the prepared run's step (see the module's docstring); nothing is recorded. A stop
    (the run's controls) raises StopRequested between steps, and inside a large one (Run.prepare's hooks)."""
    items, step, controls = _items(run), run.parts.step, run.controls

    def timed(n: int) -> float:
        if controls is not None and controls.stop:
            raise StopRequested()
        synchronize(device)
        t0 = time.perf_counter()
        for _ in range(n):
            step(next(items))
        synchronize(device)
        return time.perf_counter() - t0

    warm: list[float] = []
    while len(warm) < WARMUP_STEPS[1] and (len(warm) < WARMUP_STEPS[0] or sum(warm) < budget_s / 2):
        warm.append(timed(1))
    m = max(1, min(MAX_BLOCK_STEPS, math.ceil(MIN_BLOCK_S / max(warm[-1], 1e-9))))
    blocks: list[float] = []
    spent = sum(warm)
    while len(blocks) < BLOCKS[1] and (len(blocks) < BLOCKS[0] or spent < budget_s):
        seconds = timed(m)
        blocks.append(seconds / m)
        spent += seconds
    return {
        "step_s": statistics.median(blocks),
        "step_s_lo": min(blocks),
        "step_s_hi": max(blocks),
        "steps": m * len(blocks),
        "blocks": len(blocks),
        "block_steps": m,
        "warmup_steps": len(warm),
    }


def measure(
    spec: RunSpec,
    settings: RunSettings,
    dataset: Dataset,
    device: torch.device,
    test: TestSet,
    budget_s: float = BUDGET_S,
    controls: Controls | None = None,
) -> dict[str, Any]:
    """One calibration: the step a lone run of `spec` would train with, timed; with `cost_s` (everything it
    took: building the model and step, a CUDA graph's capture, warm-up, blocks) and `fast_path`. A step
    that does not fit in memory, or fails, gives `step_s` None and the reason (the run itself then says
    more). torch's random state is put back. A stop from `controls` raises StopRequested."""
    t0 = time.perf_counter()
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if device.type == "cuda" else None
    run = Run(spec, settings, dataset, device, Emitter([]), test, controls)
    out: dict[str, Any] = {"step_s": None, "step_s_lo": None, "step_s_hi": None, "reason": ""}
    try:
        oom = run.prepare()
        if oom is not None:
            out["reason"] = f"the step does not fit in memory ({type(oom).__name__})"
        else:
            out.update(time_steps(run, device, budget_s))
            out["fast_path"] = run.parts.fast_path
        out["cpu_threads"] = run.parts.cpu_threads
    except StopRequested:
        raise
    except Exception as exc:  # noqa: BLE001 - a failed calibration must not end the sweep; the run says more
        kind = "the step does not fit in memory" if is_oom(exc) else "the step failed"
        out["reason"] = f"{kind} ({type(exc).__name__}: {str(exc)[:200]})"
    finally:
        run.parts.free()
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
    out["cost_s"] = time.perf_counter() - t0
    return out


class StepTimes:
    """The sweep's calibrations by step key: recorded ones (a resumed sweep's `step_time` events) are
    reused, missing ones measured and recorded."""

    def __init__(self, recorded: Iterable[Event] = ()) -> None:
        self.by_key: dict[str, dict[str, Any]] = {}
        for e in recorded:
            if e.get("type") == EventType.STEP_TIME and isinstance(e.get("key"), str):
                self.by_key[e["key"]] = {k: v for k, v in e.items() if k not in ("type", "t")}

    def ensure(
        self,
        specs: Iterable[RunSpec],
        settings: RunSettings,
        dataset: Dataset,
        device: torch.device,
        test: TestSet,
        emitter: Emitter,
        controls: Controls | None = None,
        budget_s: float = BUDGET_S,
    ) -> dict[str, dict[str, Any]]:
        """Each spec's calibration (run id -> the step_time fields), measuring and emitting a `step_time`
        event for each key not recorded yet (with the runs it serves)."""
        grouped: dict[str, list[RunSpec]] = {}
        for spec in specs:
            grouped.setdefault(step_key(spec, settings, device), []).append(spec)
        out: dict[str, dict[str, Any]] = {}
        for key, members in grouped.items():
            record = self.by_key.get(key)
            if record is None:
                first = members[0]
                steps = math.ceil(int(dataset.train.labels.shape[0]) / first.batch_size) * settings.epochs
                record = {
                    "key": key,
                    "batch_size": first.batch_size,
                    "device": str(device),
                    "runs": [s.run_id for s in members],
                }
                if steps < MIN_RUN_STEPS:
                    record.update(
                        step_s=None,
                        step_s_lo=None,
                        step_s_hi=None,
                        cost_s=0.0,
                        reason=f"its runs take {steps} steps, fewer than {MIN_RUN_STEPS}: a calibration "
                        "would cost a large share of them",
                    )
                else:
                    emitter.emit(EventType.STARTUP, run=first.run_id, stage="timing one step alone")
                    record.update(measure(first, settings, dataset, device, test, budget_s, controls))
                emitter.emit(EventType.STEP_TIME, **record)
                self.by_key[key] = record
            for spec in members:
                out[spec.run_id] = record
        return out
