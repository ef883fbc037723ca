"""The points branches start from (trainer.sweep.branch): the base run's kept checkpoints after the chosen
epochs, and its evaluations, whose trend at each point sets the branches' target."""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from trainer.analysis import branch_crossing
from trainer.analysis.branch_crossing import Reading
from trainer.engine.checkpoint import checkpoint_path, load_checkpoint, run_state
from trainer.engine.run import Run
from trainer.runlog import Emitter, RunDirWriteError, ensure_dir, write_atomic


@dataclass
class BranchPoint:
    """The base run after one of branch.epochs: where it stood, and its saved state."""

    epoch: int
    iters: int
    samples: int
    state: bytes  # the checkpoint, serialised (the file's bytes, or in memory without a run directory)
    path: str = ""  # the kept checkpoint file ("" without a run directory)
    probe: dict[str, Any] = field(default_factory=dict)  # the base run's noise-probe figures there


def point_path(run_dir: Path | str, run_id: str, epoch: int) -> Path:
    """Where the base run's checkpoint after `epoch` is kept."""
    return checkpoint_path(run_dir, f"{run_id}-e{epoch}")


class PointKeeper:
    """The base run's epoch-end hook: its usual hook (the checkpoint writer) first, then, after each of
    `epochs`, a kept copy of its checkpoint."""

    def __init__(
        self, epochs: list[int], run_dir: str = "", inner: Callable[[Run], None] | None = None
    ) -> None:
        self.epochs, self.run_dir, self.inner = set(epochs), run_dir, inner
        self.points: dict[int, BranchPoint] = {}
        # The base run's evaluations on the slice (samples, loss): its trend at each point sets the
        # branches' target, so a point that lands on a noisy spike does not make the target easy.
        self.readings: list[Reading] = []
        # The base run's noise-probe figures at each point, from recorded events (a resumed sweep's): the
        # newest reading's before the point's epoch_end, as the probe gave them when the point was kept.
        self.probes: dict[int, dict[str, Any]] = {}
        self._probe: dict[str, Any] = {}

    def watch(self, emitter: Emitter, run_id: str) -> Emitter:
        """The base run's emitter: every event passes on; its slice evaluations are also kept here."""
        keeper = self

        class Watching:
            def emit(self, type_: str, run: str | None = None, **fields: Any) -> dict[str, Any]:
                event = emitter.emit(type_, run, **fields)
                if type_ == "evaluation" and run == run_id:
                    keeper.take(event)
                return event

            def close(self) -> None:  # the sweep's emitter is closed by its owner
                pass

        return Watching()  # type: ignore[return-value]

    def take(self, event: dict[str, Any]) -> None:
        """Keep one of the base run's evaluations (from a live emit, or a resumed sweep's events); from
        recorded events also its noise-probe readings and epoch ends (`probes`, which `recover` gives the
        points)."""
        kind = event.get("type")
        if kind == "noise_probe":
            self._probe = {k: v for k, v in event.items() if k not in ("type", "t", "run")}
            return
        if kind == "epoch_end":
            if event.get("epoch") in self.epochs:
                self.probes[event["epoch"]] = self._probe
            return
        loss = event.get("test_loss")
        if isinstance(loss, (int, float)) and isinstance(event.get("samples"), int):
            self.readings.append(Reading(float(event.get("iter") or 0), float(event["samples"]), float(loss)))

    def trend(self, samples: int) -> float | None:
        """The base run's smoothed slice loss at `samples` (trainer.analysis.branch_crossing's local fit over
        the evaluations around it), None where it has no evaluation there."""
        readings = sorted({r.samples: r for r in self.readings}.values(), key=lambda r: r.samples)
        at = next((i for i, r in enumerate(readings) if r.samples == samples), None)
        sd = branch_crossing.noise([r.loss for r in readings])
        if at is None or sd is None:
            return None
        return branch_crossing.smooth(readings, sd)[at].loss

    def __call__(self, run: Run) -> None:
        if self.inner is not None:
            self.inner(run)
        totals = run.ledger.totals
        if totals.epochs not in self.epochs:
            return
        buf = io.BytesIO()
        torch.save(run_state(run), buf)
        path = ""
        if self.run_dir:
            target = point_path(self.run_dir, run.run_id, totals.epochs)
            try:
                ensure_dir(target.parent)
                write_atomic(target, buf.getbuffer())
            except OSError as exc:
                raise RunDirWriteError(Path(self.run_dir), exc) from exc
            path = str(target)
        noise = run.parts.probes.noise if run.parts.probes is not None else None
        self.points[totals.epochs] = BranchPoint(
            totals.epochs,
            totals.iters,
            totals.samples,
            buf.getvalue(),
            path,
            noise.figures() if noise is not None else {},
        )

    def recover(self, run_id: str) -> None:
        """Take up the points a resumed sweep's base run kept before the interruption (its kept files), with
        the probe figures its recorded events gave there (`take` them first)."""
        for epoch in sorted(self.epochs - set(self.points)):
            path = point_path(self.run_dir, run_id, epoch) if self.run_dir else None
            if path is None or not path.is_file():
                continue
            state = load_checkpoint(path)
            self.points[epoch] = BranchPoint(
                epoch, int(state["iters"]), int(state["samples"]), b"", str(path), self.probes.get(epoch, {})
            )


def load_point(point: BranchPoint) -> BranchPoint:
    """The point with its state read back from the kept checkpoint file (as a resume would find it)."""
    if not point.path:
        return point
    state = load_checkpoint(point.path)
    buf = io.BytesIO()
    torch.save(state, buf)
    return dataclasses.replace(point, state=buf.getvalue())
