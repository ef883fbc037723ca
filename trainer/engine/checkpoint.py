"""Per-run checkpoints, so an interrupted sweep can continue (`python -m trainer resume`).

At each epoch end of each run, `<run dir>/checkpoints/<run id>.pt` is rewritten atomically
(temp file + fsync + os.replace): the run's own `state_dict()` (model and optimizer state, its
totals: iterations, samples, wall/compute sums, per-epoch lists, best accuracy, target; the probes'
running state, split chunks, the number of completed epochs) plus the process's RNG states and the
format number. It is saved outside the run's timers (like evaluation), so checkpointing costs the
measured epoch times nothing. This module knows runs only through `Checkpointable`: what a run
holds is the run's business (trainer.engine.run), how it is stored is this module's.

Only tensors and plain containers are stored, so `torch.load(..., weights_only=True)` can read
it: no pickled classes, nothing from the file is ever executed. A file that cannot be read, or whose
parts cannot be put back (`rng_problem`, and the run's own check), restarts its run from the start.

Data order needs no saved state: `trainer.data.pipelines.epoch_permutation` is a function of the seed and
the epoch, so a run restarted at an epoch boundary sees exactly the batches it would have seen.
"""

from __future__ import annotations

import io
import random
import re
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from trainer.runlog import (
    CHECKPOINTS,
    RunDirWriteError,
    UnreadableFile,
    ensure_dir,
    open_regular,
    write_atomic,
)

FORMAT = 1  # bumped when the layout below changes; older files are then refused, not misread
# What resume reads before it decides anything: a file whose header is not this is damaged.
HEADER = {"run": str, "batch_size": int, "seed": int, "epoch": int, "iters": int, "samples": int}


class CheckpointError(Exception):
    """A checkpoint file cannot be used (unreadable, another format, another run)."""


class Checkpointable(Protocol):
    """What a checkpoint needs of a run (trainer.engine.run.Run)."""

    device: torch.device

    @property
    def run_id(self) -> str: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


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
    np.random.set_state(
        (
            npd["name"],
            npd["keys"].cpu().numpy().astype(np.uint32),
            npd["pos"],
            npd["has_gauss"],
            npd["cached_gaussian"],
        )
    )
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def rng_problem(state: Any) -> str:
    """Why a saved RNG state cannot be set ("" when it can): it is set, then this process's own put back."""
    mine = _rng_state(torch.device("cuda") if torch.cuda.is_initialized() else torch.device("cpu"))
    try:
        _set_rng_state(state)
    except Exception as exc:  # noqa: BLE001 - whatever the file holds, it is not an RNG state
        detail = str(exc).splitlines()[0][:200] if str(exc) else ""
        return f"its RNG state cannot be restored ({type(exc).__name__}: {detail})"
    finally:
        _set_rng_state(mine)
    return ""


def run_state(run: Checkpointable) -> dict[str, Any]:
    """What the checkpoint of `run` holds: the format, the run's state and the RNG states."""
    try:
        state = run.state_dict()
    except ValueError as exc:  # trainer.engine.run.StateError: nothing to save
        raise CheckpointError(str(exc)) from exc
    return {"format": FORMAT, **state, "rng": _rng_state(run.device)}


def save_checkpoint(run_dir: Path | str, run: Checkpointable) -> Path:
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
    for key, kind in HEADER.items():
        value = state.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 0):
            raise CheckpointError(f"{path} is damaged: its {key} is {_short(value)}")
    return state


def restore_run(run: Checkpointable, state: dict[str, Any]) -> None:
    """Put a freshly prepared run (model, optimizer, data allocated) back at its checkpoint, RNG included."""
    try:
        run.load_state_dict(state)
        _set_rng_state(state["rng"])
    except Exception as exc:  # noqa: BLE001 - a resume checks this first (trainer.sweep.resume); never a traceback
        raise CheckpointError(f"the checkpoint of {run.run_id} cannot be restored: {exc}") from exc


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class CheckpointWriter:
    """The Run's epoch-end hook: save its checkpoint into `run_dir`."""

    def __init__(self, run_dir: Path | str) -> None:
        self.run_dir = Path(run_dir)
        self.saved = 0

    def __call__(self, run: Checkpointable) -> None:
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
