"""The fields of a run's own events that are drawn from all its parts: run_started (what the run is and
trains with) and noise_probe (a reading of the batch-independent noise probe)."""

from __future__ import annotations

from typing import Any, Protocol

from trainer.analysis.accuracy import SLICE, SLICE_SEED, worst_standard_error
from trainer.data.datasets import Dataset, as_inputs
from trainer.engine.evaluation import Checks, TestSet
from trainer.engine.ledger import Ledger
from trainer.engine.parts import RunParts
from trainer.engine.steps import split_request
from trainer.models.builtin import count_parameters
from trainer.plan import RunSettings, RunSpec


class Member(Protocol):
    """What run_started reads of a run (trainer.engine.run.Run)."""

    spec: RunSpec
    settings: RunSettings
    parts: RunParts
    test: TestSet
    checks: Checks
    ledger: Ledger
    split_chunks: int
    fused: str
    fused_runs: list[str]
    fused_reason: str
    started_extra: dict[str, Any]


def started_fields(run: Member, restored: bool) -> dict[str, Any]:
    """run_started's fields (docs/run-directory.md lists them)."""
    spec, settings, parts, test = run.spec, run.settings, run.parts, run.test
    probes = parts.probes
    return dict(
        run=spec.run_id,
        batch_size=spec.batch_size,
        lr=spec.lr,
        momentum=spec.momentum,
        split_chunks=run.split_chunks,
        split_method=spec.split_method,
        iters_per_epoch=parts.iters_per_epoch,
        epochs=settings.epochs,
        warmup_iters=parts.warmup_iters,
        device=str(parts.device),
        seed=spec.seed,
        fast_path=parts.fast_path,
        fast_path_reason=parts.fast_path_reason,
        micro_batch=parts.micro_batch,
        variant=spec.variant,
        optim=parts.optim_cfg.name,
        precision=settings.perf.precision,
        cpu_threads=parts.cpu_threads,
        model=settings.model.name,
        model_output=settings.model.output,
        parameters=count_parameters(parts.model) if parts.model is not None else 0,
        batch_norm=parts.batch_norm,
        gns_interval=probes.interval if probes else 0,
        gns_chunks=probes.chunks if probes else 0,
        eval_every=run.checks.every,
        eval_samples=test.slice_size,
        eval_set=SLICE,
        eval_slice_seed=SLICE_SEED,
        test_samples=int(test.y.shape[0]),
        eval_se_max=worst_standard_error(test.slice_size),
        gns_probe_every=probes.noise.every if probes and probes.noise else 0,
        fused=run.fused,
        fused_runs=list(run.fused_runs),
        fused_reason=run.fused_reason,
        **({"resumed_from_epoch": run.ledger.totals.epochs} if restored else {}),
        **run.started_extra,
    )


def read_noise(parts: RunParts, dataset: Dataset, samples: int, iters: int) -> dict[str, Any]:
    """One reading of the run's batch-independent noise probe at its current weights
    (trainer/measure/noise_probe.py): a probe batch drawn from the training set by the probe's own
    generator. Returns noise_probe's fields: the reading and the window's B_simple, its 95% interval and
    the share of undefined readings."""
    noise, train, device = parts.probes.noise, dataset.train, parts.device
    x, y = noise.draw(train.images, train.labels)
    x = as_inputs(x).to(device)  # as the training batches (ToTensor's x / 255 for grey images)
    reading = noise.update(parts.model, x, y.to(device), samples)
    return dict(
        run=parts.spec.run_id,
        iter=iters,
        samples=reading.samples,
        g2=reading.g2,
        trace=reading.trace,
        loss=reading.loss,
        probe_size=noise.probe_size,
        chunk_size=noise.chunk_size,
        window_samples=noise.window,
        **noise.figures(),
    )


def split_switch(
    requested: int, batch_size: int, chunks: int, iteration: int, lr: float
) -> tuple[int, dict[str, Any]]:
    """The chunks a request of the app's split-backward switch gives a run now using `chunks` (1 where the
    request does not divide its batch), and mode_changed's fields. Every request is recorded, also one that
    changes nothing, so a viewer that attaches later reads the switch's state from the run directory."""
    k, why = split_request(batch_size, requested)
    fields: dict[str, Any] = {"iter": iteration, "requested": requested, **({"reason": why} if why else {})}
    if k != chunks:
        return k, {**fields, "split_chunks": k, "effective_lr": lr * k}
    return k, {"split_chunks": k, **fields}
