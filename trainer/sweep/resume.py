"""Continue an interrupted sweep from its run directory (`python -m trainer resume DIR`).

`plan_resume` reads events.jsonl and the checkpoints and decides, per run:
  keep        it finished (done, diverged, oom): its events and summary stay as they are;
  checkpoint  it was interrupted after epoch E with a usable checkpoint: it continues at E + 1;
  restart     it was interrupted before its first checkpoint, or its checkpoint cannot be used (it
              cannot be read, does not match the recorded events, or a part of it - weights,
              optimizer, totals, probes, RNG - cannot be put back: `restore_check` tries them all
              before anything is rewritten): it trains again from the start, and the reason is
              reported on the console and in `sweep_resumed`.
`Resume.apply` then rewrites events.jsonl atomically without what the continuation will produce
again: the interrupted runs' events after their checkpointed epoch (losses after it, a partial
epoch, their run_finished "stopped"), every sweep_finished, and any partial last line. The
continuation appends after that, so each run's per-iteration losses have no gap and no duplicate.
`run_sweep(..., resume=...)` uses the other methods here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from trainer.data.datasets import Dataset
from trainer.engine.checkpoint import (
    CheckpointError,
    checkpoint_path,
    clean_temp_files,
    load_checkpoint,
    restore_run,
    rng_problem,
)
from trainer.engine.state import restore_problem
from trainer.plan import RunSettings, RunSpec
from trainer.runlog import CONFIG, EVENTS, KEPT_STATUSES, Emitter, Event, EventType, read_events, write_atomic
from trainer.sweep.resume_config import ResumeError, check_config

Check = Callable[
    [str, dict[str, Any]], str
]  # (run id, loaded checkpoint) -> why it cannot be restored, or ""


@dataclass
class RunPlan:
    """What happens to one run of the sweep on resume."""

    run_id: str
    action: str  # keep | checkpoint | restart
    from_epoch: int = 0  # completed epochs it continues after (0: from the start)
    iters: int = 0  # iterations already recorded (its next losses start here)
    status: str = ""  # the status it had: done/diverged/oom (kept), stopped/failed, or "" (cut off)
    reason: str = ""  # why a run restarts from the start
    summary: dict[str, Any] | None = None  # the recorded summary of a kept run
    state: dict[str, Any] | None = field(default=None, repr=False)  # the loaded checkpoint

    def as_event(self) -> dict[str, Any]:
        out = {
            "run": self.run_id,
            "from_epoch": self.from_epoch,
            "iters": self.iters,
            "checkpoint": self.action == "checkpoint",
            "was": self.status or "interrupted",
        }
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass
class Resume:
    """The plan for continuing the sweep recorded in `run_dir`."""

    run_dir: Path
    runs: dict[str, RunPlan]  # in the sweep's run order
    lines: list[str]  # the event lines kept (events.jsonl after `apply`), each ending in a newline
    events: list[Event]  # the same, parsed
    dropped: int  # whole event lines removed because the continuation replaces them
    skipped: int  # lines that were not whole, valid events (a partial last line after a kill)
    last_t: float  # the latest `t` recorded: the continuation's clock goes on from there
    started: Event | None  # the recorded sweep_started (None: the sweep never got that far)
    was_finished: bool  # a sweep_finished was recorded, not one of a stop
    resumes: int = 0  # sweep_resumed events already recorded
    notes: list[str] = field(default_factory=list)  # what the continuation does with keys changed safely

    # -- for the command -----------------------------------------------------------------------

    @property
    def fresh(self) -> bool:
        """Nothing usable was recorded (killed before sweep_started): run the sweep from the start."""
        return self.started is None

    @property
    def nothing_to_do(self) -> bool:
        """Every run finished and so did the sweep."""
        return self.was_finished and all(p.action == "keep" for p in self.runs.values())

    @property
    def resumed(self) -> list[RunPlan]:
        return [p for p in self.runs.values() if p.action != "keep"]

    def check_dataset(self, dataset: Dataset) -> None:
        """The continuation must train on the data the sweep started with."""
        if self.started is None:
            return
        want = (
            self.started.get("dataset"),
            self.started.get("train_samples"),
            self.started.get("test_samples"),
        )
        have = (dataset.name, int(dataset.train.labels.shape[0]), int(dataset.test.labels.shape[0]))
        if want[0] != have[0] or any(w is not None and w != h for w, h in zip(want[1:], have[1:])):
            raise ResumeError(
                f"the sweep in {self.run_dir} trained on {want[0]} ({want[1]} train / {want[2]} test samples) "
                f"but {have[0]} ({have[1]} / {have[2]}) is what loads now; make the same data available "
                f"(data.root in {CONFIG}) to resume it"
            )

    def describe(self) -> list[str]:
        """One line per run, for the console."""
        out = list(self.notes)
        for p in self.runs.values():
            if p.action == "keep":
                out.append(f"{p.run_id}: kept ({p.status})")
            elif p.action == "checkpoint":
                out.append(f"{p.run_id}: continues after epoch {p.from_epoch} (iteration {p.iters})")
            else:
                out.append(
                    f"{p.run_id}: starts again from the beginning" + (f" ({p.reason})" if p.reason else "")
                )
        return out

    def apply(self) -> None:
        """Rewrite events.jsonl (atomically) to the kept lines; drop leftovers of the interrupted runs."""
        write_atomic(self.run_dir / EVENTS, "".join(self.lines))
        clean_temp_files(self.run_dir)
        for p in self.runs.values():
            if p.action == "restart":  # an unusable or out-of-step checkpoint must not be read later
                checkpoint_path(self.run_dir, p.run_id).unlink(missing_ok=True)

    # -- for run_sweep -------------------------------------------------------------------------------

    def is_kept(self, run_id: str) -> bool:
        plan = self.runs.get(run_id)
        return plan is not None and plan.action == "keep"

    def restorer(self, run_id: str) -> Callable[[Any], None] | None:
        """The function that puts a prepared Run back at its checkpoint (None: start it afresh)."""
        plan = self.runs.get(run_id)
        if plan is None or plan.action != "checkpoint" or plan.state is None:
            return None
        state = plan.state

        def restore(run: Any) -> None:
            restore_run(run, state)
            plan.state = None  # the run holds its own copies now

        return restore

    def announce(self, emitter: Emitter, **fields: Any) -> Event:
        """Emit `sweep_resumed`: which runs continue from which epoch, which are kept."""
        return emitter.emit(
            EventType.SWEEP_RESUMED,
            run_dir=str(self.run_dir),
            runs=[p.as_event() for p in self.resumed],
            kept=[p.run_id for p in self.runs.values() if p.action == "keep"],
            dropped_lines=self.dropped,
            skipped_lines=self.skipped,
            resume=self.resumes + 1,
            **fields,
        )

    def merge_summaries(self, run_ids: list[str], trained: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every run's summary in sweep order: recorded for kept runs, fresh for the others."""
        fresh = {s["run"]: s for s in trained}
        out = []
        for run_id in run_ids:
            if run_id in fresh:
                out.append(fresh[run_id])
            elif self.is_kept(run_id) and self.runs[run_id].summary:
                out.append(self.runs[run_id].summary)
        return out


def read_event_lines(run_dir: Path) -> tuple[list[tuple[str, Event]], int]:
    """Readable event lines of events.jsonl with their text, and how many lines were not (a line cut
    off by a kill or a full disk included). UnreadableFile when events.jsonl is not a regular file."""
    try:
        log = read_events(Path(run_dir) / EVENTS)
    except FileNotFoundError:
        return [], 0
    return list(zip(log.lines, log.events)), log.skipped + int(log.partial)


def _losses_cover(events: list[Event], run_id: str, iters: int) -> bool:
    """Whether the run's losses events cover iterations 0..iters-1 exactly once, in order."""
    nxt = 0
    for e in events:
        if e.get("type") == EventType.LOSSES and e.get("run") == run_id:
            if e.get("first_iter") != nxt:
                return False
            nxt += len(e.get("values") or [])
    return nxt == iters


def restore_check(specs: list[RunSpec], settings: RunSettings) -> Check:
    """The check `plan_resume` makes of each usable checkpoint: every part of it is put back into fresh
    copies of its run's parts (weights, optimizer, totals, probes) and its RNG state is tried."""
    by_id = {spec.run_id: spec for spec in specs}

    def check(run_id: str, state: dict[str, Any]) -> str:
        spec = by_id.get(run_id)
        if spec is None:
            return f"no run {run_id!r} in the config"
        return restore_problem(spec, settings, state) or rng_problem(state.get("rng"))

    return check


def plan_resume(
    run_dir: Path | str,
    run_ids: list[str],
    device: torch.device | str = "cpu",
    check: Check | None = None,
    config: dict[str, Any] | None = None,
) -> Resume:
    """Decide how to continue the sweep in `run_dir` whose runs (from its config) are `run_ids`;
    with `check` (`restore_check`), a checkpoint that cannot be restored restarts its run. With
    `config` (config.toml as loaded now, `config_to_dict`), an edit since the sweep started that
    changes what the runs train refuses (ResumeError, `check_config`) before anything else."""
    run_dir = Path(run_dir)
    pairs, skipped = read_event_lines(run_dir)
    events = [e for _, e in pairs]
    last_t = max((float(e["t"]) for e in events if isinstance(e.get("t"), (int, float))), default=0.0)
    started = next((e for e in events if e["type"] == EventType.SWEEP_STARTED), None)
    # A sweep stopped during its branches has every run kept but branches left to measure: not finished.
    was_finished = any(e["type"] == EventType.SWEEP_FINISHED and e.get("status") != "stopped" for e in events)
    resumes = sum(1 for e in events if e["type"] == EventType.SWEEP_RESUMED)
    if started is None:
        plans = {r: RunPlan(r, "restart", reason="nothing was recorded") for r in run_ids}
        return Resume(run_dir, plans, [], [], len(pairs), skipped, last_t, None, False, resumes)
    recorded = [r.get("run") for r in started.get("runs", []) if isinstance(r, dict)]
    if recorded != list(run_ids):
        raise ResumeError(
            f"{CONFIG} in {run_dir} describes runs {', '.join(run_ids)} but the sweep recorded in {EVENTS} "
            f"has {', '.join(map(str, recorded))}; was {CONFIG} edited? Restore it to resume"
        )
    notes = check_config(run_dir, started.get("config"), config) if config is not None else []

    # Where each run's events are (line positions), and how each run ended (if it did).
    finished: dict[str, Event] = {}
    for e in events:
        if e["type"] == EventType.RUN_FINISHED and e.get("run") in run_ids:
            finished[e["run"]] = e
    plans: dict[str, RunPlan] = {}
    cut: dict[str, int] = {}  # run -> keep its events at positions <= this (-1: keep none)
    for run_id in run_ids:
        end = finished.get(run_id)
        status = str(end.get("status")) if end else ""
        if status in KEPT_STATUSES:
            plans[run_id] = RunPlan(run_id, "keep", status=status, summary=end.get("summary"))
            continue
        plan = RunPlan(run_id, "restart", status=status)
        cut[run_id] = -1
        path = checkpoint_path(run_dir, run_id)
        if path.exists():
            try:
                state = load_checkpoint(path, device)
            except CheckpointError as exc:
                plan.reason = str(exc)
            else:
                epoch, iters = int(state.get("epoch", 0)), int(state.get("iters", 0))
                pos = next(
                    (
                        i
                        for i, e in enumerate(events)
                        if e["type"] == EventType.EPOCH_END
                        and e.get("run") == run_id
                        and e.get("epoch") == epoch
                    ),
                    None,
                )
                if state.get("run") != run_id:
                    plan.reason = f"{path.name} holds run {state.get('run')!r}"
                elif epoch < 1 or pos is None:
                    plan.reason = f"{EVENTS} has no epoch_end {epoch} of {run_id} to continue from"
                elif not _losses_cover(events[: pos + 1], run_id, iters):
                    plan.reason = (
                        f"the recorded losses of {run_id} do not match its checkpoint ({iters} iterations)"
                    )
                elif check is not None and (why := check(run_id, state)):
                    plan.reason = why
                else:
                    plan = RunPlan(
                        run_id, "checkpoint", from_epoch=epoch, iters=iters, status=status, state=state
                    )
                    cut[run_id] = pos
        plans[run_id] = plan

    # Branches (trainer.sweep.branch) are measured again from the base run's kept points, and the schedule
    # they proposed (sweep.batch_schedule = "proposed") is trained again after them: their events go.
    branches = {
        e.get("run")
        for e in events
        if e["type"] == EventType.RUN_STARTED
        and (isinstance(e.get("branch"), dict) or isinstance(e.get("batch_schedule"), list))
        and e.get("run") not in run_ids
    }
    lines: list[str] = []
    kept: list[Event] = []
    for i, (line, e) in enumerate(pairs):
        kind, run_id = e["type"], e.get("run")
        if (
            kind in (EventType.SWEEP_FINISHED, EventType.BRANCH_POINT, EventType.BRANCH_RESULT)
            or run_id in branches
        ):
            continue
        if run_id in cut and i > cut[run_id]:
            plan = plans[run_id]
            # target_reached follows its epoch_end: keep it when that epoch is kept.
            if not (
                kind == EventType.TARGET_REACHED
                and plan.action == "checkpoint"
                and isinstance(e.get("epoch"), int)
                and e["epoch"] <= plan.from_epoch
            ):
                continue
        lines.append(line)
        kept.append(e)
    return Resume(
        run_dir,
        plans,
        lines,
        kept,
        len(pairs) - len(lines),
        skipped,
        last_t,
        started,
        was_finished,
        resumes,
        notes,
    )
