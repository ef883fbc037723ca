"""Per-run checkpoints, so an interrupted sweep can continue (`python -m trainer resume`, issue 6).

At each epoch end of each run, `<run dir>/checkpoints/<run id>.pt` is rewritten atomically
(temp file + fsync + os.replace): model and optimizer state, RNG states, the run's totals
(iterations, samples, wall/compute sums, per-epoch lists, best accuracy, target), the probes'
running state, split chunks and the number of completed epochs. It is saved outside the run's
timers (like evaluation), so checkpointing costs the measured epoch times nothing.

Only tensors and plain containers are stored, so `torch.load(..., weights_only=True)` can read
it: no pickled classes, nothing from the file is ever executed.

Data order needs no saved state: `trainer.data.epoch_permutation` is a function of the seed and
the epoch, so a run restarted at an epoch boundary sees exactly the batches it would have seen.
"""
from __future__ import annotations

import dataclasses
import io
import random
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from trainer.runlog import CHECKPOINTS, RunDirWriteError, UnreadableFile, ensure_dir, open_regular, write_atomic

if TYPE_CHECKING:
    from trainer.loop import Run

FORMAT = 1  # bumped when the layout below changes; older files are then refused, not misread


class CheckpointError(Exception):
    """A checkpoint file cannot be used (unreadable, another format, another run)."""


def checkpoint_path(run_dir: Path | str, run_id: str) -> Path:
    """Where the checkpoint of `run_id` lives (ids are made of [A-Za-z0-9.-]; anything else becomes _)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", run_id)
    return Path(run_dir) / CHECKPOINTS / f"{safe}.pt"


def _rng_state(device: torch.device) -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "numpy": {
            "name": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "cuda": [],
    }
    if device.type == "cuda" and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    npd = state["numpy"]
    np.random.set_state((npd["name"], npd["keys"].cpu().numpy().astype(np.uint32), npd["pos"], npd["has_gauss"],
                         npd["cached_gaussian"]))
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _probe_state(run: Run) -> dict[str, Any] | None:
    probes = run.probes
    if probes is None:
        return None
    tracker = probes.tracker
    return {
        "g2": tracker._g2,
        "trace": tracker._trace,
        "count": tracker.count,
        "estimates": probes.estimates,
        "cos_pending": probes._cos_pending,
        "cos_prev": probes.cosine._prev,
        "cosines": list(probes._cosines),
    }


def _set_probe_state(run: Run, state: dict[str, Any] | None) -> None:
    probes = run.probes
    if probes is None or state is None:
        return
    probes.tracker._g2 = state["g2"]
    probes.tracker._trace = state["trace"]
    probes.tracker.count = int(state["count"])
    probes.estimates = int(state["estimates"])
    probes._cos_pending = bool(state["cos_pending"])
    probes.cosine._prev = state["cos_prev"]
    probes._cosines = list(state["cosines"])


def run_state(run: Run) -> dict[str, Any]:
    """Everything needed to continue `run` from its last completed epoch (tensors and plain data)."""
    if run.model is None or run.optimizer is None:
        raise CheckpointError(f"run {run.run_id} has no model any more (it finished); nothing to save")
    totals = dataclasses.asdict(run.totals)
    return {
        "format": FORMAT,
        "run": run.run_id,
        "batch_size": run.spec.batch_size,
        "lr": run.spec.lr,
        "seed": run.spec.seed,
        "epoch": run.totals.epochs,  # completed epochs
        "iters": run.totals.iters,  # the next losses event starts here: first_iter == iters
        "samples": run.totals.samples,
        "split_chunks": run.split_chunks,
        "iters_per_epoch": run.iters_per_epoch,
        "totals": totals,
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "rng": _rng_state(run.device),
        "probes": _probe_state(run),
    }


def save_checkpoint(run_dir: Path | str, run: Run) -> Path:
    """Write the run's checkpoint atomically; RunDirWriteError when the directory cannot take it."""
    path = checkpoint_path(run_dir, run.run_id)
    buf = io.BytesIO()
    # Serialised in memory first: a full disk then shows up as an OSError from a plain write,
    # never as a half-written file under the real name.
    torch.save(run_state(run), buf)
    try:
        ensure_dir(path.parent)  # never a link to a folder elsewhere
        write_atomic(path, buf.getbuffer())  # 0644 less the umask, like every file of the run directory
    except OSError as exc:
        raise RunDirWriteError(Path(run_dir), exc) from exc
    return path


def load_checkpoint(path: Path | str, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a checkpoint with weights_only=True (tensors and plain containers only)."""
    try:
        with open_regular(path) as fh:  # a FIFO or a device is refused, never read
            state = torch.load(fh, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except UnreadableFile as exc:
        raise CheckpointError(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same problem to the user
        raise CheckpointError(f"{path} cannot be read ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path} is not a bstui checkpoint of format {FORMAT} (found {found!r})")
    return state


def restore_run(run: Run, state: dict[str, Any]) -> None:
    """Put a freshly prepared run (model, optimizer, batches allocated) back at its checkpoint."""
    from trainer.loop import RunTotals

    spec = run.spec
    mine = (spec.run_id, spec.batch_size, spec.lr, spec.seed)
    theirs = (state["run"], state["batch_size"], state["lr"], state["seed"])
    if mine != theirs:
        raise CheckpointError(f"checkpoint of {theirs} does not belong to run {mine}")
    try:
        run.model.load_state_dict(state["model"])  # copies into the existing tensors (a graph may hold them)
        run.optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"the checkpoint of {spec.run_id} does not fit its model or optimizer ({exc}); delete "
            f"{CHECKPOINTS}/{checkpoint_path('.', spec.run_id).name} to train that run again from the start"
        ) from exc
    names = {f.name for f in dataclasses.fields(RunTotals)}
    run.totals = RunTotals(**{k: v for k, v in state["totals"].items() if k in names})
    run._epoch = int(state["epoch"])
    run.split_chunks = int(state["split_chunks"])
    if run.graph is not None:
        run.graph.set_split(run.split_chunks)
    _set_probe_state(run, state.get("probes"))
    _set_rng_state(state["rng"])


class CheckpointWriter:
    """The Run's epoch-end hook: save its checkpoint into `run_dir`."""

    def __init__(self, run_dir: Path | str) -> None:
        self.run_dir = Path(run_dir)
        self.saved = 0

    def __call__(self, run: Run) -> None:
        save_checkpoint(self.run_dir, run)
        self.saved += 1


def clean_temp_files(run_dir: Path | str) -> int:
    """Remove temp files a killed trainer left in checkpoints/ (never a finished .pt); returns how many."""
    folder = Path(run_dir) / CHECKPOINTS
    removed = 0
    if folder.is_dir() and not folder.is_symlink():  # never delete in a folder outside the run directory
        for item in folder.glob(".*.tmp"):
            item.unlink(missing_ok=True)
            removed += 1
    return removed
