"""A run's saved state: what a checkpoint holds of a run, putting it back into the run's parts, and
finding out beforehand whether it can be put back.

The layout is checkpoint format 1 (trainer.engine.checkpoint adds the format number and the RNG states):
run, batch_size, lr, seed; epoch, iters, samples, totals (trainer.engine.ledger); split_chunks,
iters_per_epoch; model, optimizer (their own state dicts); probes (trainer.measure.probes). Only tensors
and plain containers, so `torch.load(..., weights_only=True)` reads it.

Loading goes part by part and names the part that does not fit (`StateError`). A resume calls
`restore_problem` first, on fresh CPU copies of the parts, so a checkpoint that cannot be restored
restarts its run before anything is rewritten, instead of failing the resume.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch

from trainer.config import OptimConfig
from trainer.engine.ledger import Ledger
from trainer.measure.probes import Probes
from trainer.models.builtin import build_model
from trainer.models.optim import build_optimizer, check_loaded_state
from trainer.plan import RunSettings, RunSpec
from trainer.runlog import Emitter


class StateError(ValueError):
    """A saved state that cannot be put back into a run (another run's, or damaged)."""


def run_optim(spec: RunSpec, settings: RunSettings) -> OptimConfig:
    """The run's optimizer settings: the spec's momentum (a sweep point), the rest from its [optim]."""
    return dataclasses.replace(spec.optim or settings.optim, momentum=spec.momentum)


def run_micro_batch(spec: RunSpec, settings: RunSettings) -> int:
    """Gradient accumulation only for batches larger than a micro-batch (0 = off for this run)."""
    return settings.micro_batch if 0 < settings.micro_batch < spec.batch_size else 0


def model_and_optimizer(
    spec: RunSpec, settings: RunSettings, optim: OptimConfig, device: torch.device
) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """A fresh model on `device`, in training mode, and its optimizer at the run's lr."""
    model = build_model(settings.model).to(device)
    model.train()
    return model, build_optimizer(optim, model.parameters(), spec.lr)


def saved_state(
    spec: RunSpec,
    ledger: Ledger,
    split_chunks: int,
    iters_per_epoch: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    probes: Probes | None,
) -> dict[str, Any]:
    """The state of a run at an epoch boundary, in the checkpoint's layout."""
    return {
        "run": spec.run_id,
        "batch_size": spec.batch_size,
        "lr": spec.lr,
        "seed": spec.seed,
        **ledger.state_dict(),  # epoch, iters, samples, totals
        "split_chunks": split_chunks,
        "iters_per_epoch": iters_per_epoch,
        "model": _own_storage(model.state_dict()),
        "optimizer": _own_storage(optimizer.state_dict()),
        "probes": probes.state_dict() if probes is not None else None,
    }


def _own_storage(state: Any) -> Any:
    """`state` with every tensor that is a view into a larger storage copied out: the runs of a fused group
    (trainer.engine.fuse) keep their weights and momentum as slices of the group's stacked tensors, and torch.save
    writes a view's whole storage (every member's weights in each checkpoint)."""
    if isinstance(state, torch.Tensor):
        whole = state.untyped_storage().nbytes()
        return state.clone() if whole > state.numel() * state.element_size() else state
    if isinstance(state, dict):
        return {k: _own_storage(v) for k, v in state.items()}
    if isinstance(state, list):
        return [_own_storage(v) for v in state]
    return state


def load_saved_state(
    state: dict[str, Any],
    spec: RunSpec,
    settings: RunSettings,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    ledger: Ledger,
    probes: Probes | None,
) -> int:
    """Load a saved run state into a run's parts; returns its split chunks. StateError names the part
    that does not fit (earlier parts are then loaded already: the caller drops the run)."""
    mine = (spec.run_id, spec.batch_size, spec.lr, spec.seed)
    theirs = tuple(state.get(k) for k in ("run", "batch_size", "lr", "seed"))
    if mine != theirs:
        raise StateError(f"checkpoint of {theirs} does not belong to run {mine}")
    chunks = state.get("split_chunks")
    if not isinstance(chunks, int) or isinstance(chunks, bool) or chunks < 1 or spec.batch_size % chunks:
        raise StateError(
            f"its split_chunks {_short(chunks)} is not a divisor of batch size {spec.batch_size}"
        )
    try:
        model.load_state_dict(state["model"])  # copies into the existing tensors (a graph may hold them)
    except Exception as exc:  # noqa: BLE001 - whatever the file holds, the weights do not fit
        raise StateError(
            f"its weights do not fit model {settings.model.name!r} ({_first_line(exc)})"
        ) from exc
    parts: list[tuple[str, Callable[[], object]]] = [
        (
            "optimizer state",
            lambda: (optimizer.load_state_dict(state["optimizer"]), check_loaded_state(optimizer)),
        ),
        ("totals", lambda: ledger.load_state_dict(state)),
    ]
    if probes is not None and state.get("probes") is not None:
        parts.append(("probe state", lambda: probes.load_state_dict(state["probes"])))
    for part, load in parts:
        try:
            load()
        except Exception as exc:  # noqa: BLE001 - a damaged part is reported, never a traceback
            raise StateError(f"its {part} cannot be restored ({_first_line(exc)})") from exc
    return chunks


def trained_batch_fields(batch_size: int, lr: float) -> dict[str, Any]:
    """The batch size and lr in force when a run is saved (a batch-size schedule changes them): a restore
    trains on at them."""
    return {"trained_batch_size": batch_size, "trained_lr": lr}


def trained_batch(state: dict[str, Any]) -> tuple[int, float] | None:
    """The batch size and lr a saved run trained at; None where the checkpoint is older than the fields."""
    size, lr = state.get("trained_batch_size"), state.get("trained_lr")
    if isinstance(size, int) and not isinstance(size, bool) and size >= 1 and isinstance(lr, float):
        return size, lr
    return None


def restore_problem(spec: RunSpec, settings: RunSettings, state: dict[str, Any]) -> str:
    """Why `state` cannot be put back into a run of `spec` ("" when it can). Tried on fresh CPU copies
    of the run's model, optimizer, ledger and probes with the calls `Run.load_state_dict` makes."""
    ipe = state.get("iters_per_epoch")
    probes = Probes(
        settings.gns,
        run_micro_batch(spec, settings) or spec.batch_size,
        ipe if isinstance(ipe, int) and not isinstance(ipe, bool) and ipe > 0 else 1,
    )
    with torch.random.fork_rng(devices=[]):  # building the model draws initial weights: leave no trace
        model, optimizer = model_and_optimizer(spec, settings, run_optim(spec, settings), torch.device("cpu"))
    try:
        load_saved_state(state, spec, settings, model, optimizer, Ledger(spec, Emitter([]), 1.0), probes)
    except StateError as exc:
        return str(exc)
    return ""


def _first_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
