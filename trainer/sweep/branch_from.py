"""Branched B_crit measured later, from a run directory whose base run already trained
(`python -m trainer branch DIR`): other batch sizes, lr factors, decrease or max_samples without training
the base run again.

DIR is a sweep's run directory with a [branch] table: it holds the base run's events and the checkpoints it
kept after branch.epochs (`checkpoints/<base>-e<N>.pt`, trainer.sweep.branch_points). DIR is only read. The
measurement goes into a new run directory that reads as a sweep whose one run is that base run: its
config.toml is DIR's with the new [branch] table (trainer.config.branch_from); its events.jsonl starts with a
`sweep_started` that names DIR (`branched_from`) followed by the base run's own events as DIR recorded them
(its evaluations, noise-probe readings, epoch ends: the branches' target and the B_simple beside B_crit come
from them), then the branches exactly as a sweep trains them (trainer.sweep.branch.run_branches),
`branch_point`, `branch_result` and `sweep_finished`. The kept points it branches from are copied into it,
so `python -m trainer resume` continues it after an interruption as it continues a sweep.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from trainer.analysis.scaling import analyse
from trainer.config import Config, config_from_toml, config_to_dict
from trainer.engine.checkpoint import CheckpointError, load_checkpoint
from trainer.engine.evaluation import prepare_test
from trainer.engine.state import restore_problem
from trainer.plan import RunSettings, RunSpec, run_specs
from trainer.runlog import (
    CHECKPOINTS,
    CONFIG,
    EVENTS,
    KEPT_STATUSES,
    Emitter,
    Event,
    EventType,
    UnreadableFile,
    encode,
    ensure_dir,
    read_events,
    read_text,
    write_atomic,
)
from trainer.runlog.commands import trainer_command
from trainer.runlog.controls import Controls, StopRequested
from trainer.runlog.shards import is_sharded
from trainer.sweep import branch
from trainer.sweep.branch_points import PointKeeper, point_path
from trainer.sweep.driver import SweepResult
from trainer.sweep.prepare import PreparedSweep, device_name

MAX_CONFIG_BYTES = 4 << 20  # a resolved config.toml is a few kB


class BranchFromError(Exception):
    """A run directory branches cannot be measured from, or a request it cannot serve (exit 2)."""


@dataclass
class Source:
    """The run directory the branches start from, as read: its config, its base run, the points it kept."""

    run_dir: Path
    text: str  # config.toml
    cfg: Config  # as it trained
    base: RunSpec  # its base run
    kept: list[int]  # the epochs after which the base run's checkpoint was kept
    lines: list[str]  # events.jsonl's whole lines, each ending in a newline
    events: list[Event]  # the same, parsed
    started: Event  # its sweep_started

    @property
    def config_path(self) -> Path:
        return self.run_dir / CONFIG


def read_source(run_dir: Path) -> Source:
    """Read DIR: BranchFromError (naming the cause and the fix) where it is no run directory, holds no kept
    points, or its base run did not finish; ConfigError from its config.toml."""
    if not run_dir.is_dir():
        raise BranchFromError(
            f"{run_dir}: no such directory; give the run directory of a sweep that had a [branch] table"
        )
    if is_sharded(run_dir):
        raise BranchFromError(
            f"{run_dir} holds a sweep in shards; give the shard directory that trained the base run "
            f"({run_dir / 'shards'}/I, the one with checkpoints/<base>-e<N>.pt)"
        )
    config = run_dir / CONFIG
    if not config.exists() or not (run_dir / EVENTS).exists():
        missing = CONFIG if not config.exists() else EVENTS
        raise BranchFromError(
            f"{run_dir} is not a run directory (no {missing} in it); give the directory that "
            f"`{trainer_command('run')}` wrote"
        )
    try:
        text = read_text(config, MAX_CONFIG_BYTES)
        log = read_events(run_dir / EVENTS)
    except (OSError, UnreadableFile) as exc:
        raise BranchFromError(f"cannot read {run_dir}: {getattr(exc, 'strerror', None) or exc}") from exc
    cfg = config_from_toml(text, source=str(config))
    started = next((e for e in log.events if e["type"] == EventType.SWEEP_STARTED), None)
    if started is None:
        raise BranchFromError(f"{run_dir / EVENTS} records no sweep_started: the sweep never began there")
    if not cfg.branch.epochs:
        raise BranchFromError(
            f"{run_dir} kept no branch points: its sweep had no [branch] table; add [branch] epochs = [...] "
            "(and batch_sizes) to its config and run it again"
        )
    base = branch.base_spec(cfg, run_specs(cfg))
    if base is None:  # the config check makes the base run one of the sweep's
        raise BranchFromError(f"{config} names no base run (branch.base_batch_size)")
    kept = kept_epochs(run_dir, base.run_id)
    if not kept:
        raise BranchFromError(
            f"{run_dir / CHECKPOINTS} holds no kept point of the base run {base.run_id} ({base.run_id}-e<N>.pt); "
            "was it run with a [branch] table? add [branch] epochs = [...] and run it again"
        )
    end = next(
        (e for e in log.events if e["type"] == EventType.RUN_FINISHED and e.get("run") == base.run_id), None
    )
    if end is None or end.get("status") not in KEPT_STATUSES:
        was = f"ended {end.get('status')}" if end is not None else "did not finish"
        raise BranchFromError(
            f"the base run {base.run_id} in {run_dir} {was}; finish it first with "
            f"{trainer_command('resume', run_dir)}"
        )
    lines = [line if line.endswith("\n") else line + "\n" for line in log.lines]
    return Source(run_dir, text, cfg, base, kept, lines, list(log.events), started)


def kept_epochs(run_dir: Path, run_id: str) -> list[int]:
    """The epochs after which the base run `run_id` kept its checkpoint in `run_dir`."""
    pattern = re.compile(re.escape(run_id) + r"-e([0-9]{1,9})\.pt")
    try:
        names = [p.name for p in (run_dir / CHECKPOINTS).iterdir() if p.is_file()]
    except OSError:
        return []
    return sorted(int(m.group(1)) for n in names if (m := pattern.fullmatch(n)))


def check_points(source: Source, cfg: Config) -> None:
    """Each kept point of branch.epochs must be a checkpoint of the base run that the config can put back
    (its model, optimizer, totals, probes): BranchFromError naming the file and why otherwise."""
    settings = RunSettings.from_config(cfg)
    for epoch in sorted(cfg.branch.epochs):
        path = point_path(source.run_dir, source.base.run_id, epoch)
        try:
            state = load_checkpoint(path)
        except (OSError, CheckpointError) as exc:
            raise BranchFromError(f"{path}: {getattr(exc, 'strerror', None) or exc}") from exc
        why = ""
        if state.get("run") != source.base.run_id:
            why = f"it holds run {state.get('run')!r}, not the base run {source.base.run_id}"
        elif state.get("epoch") != epoch:
            why = f"it was saved after epoch {state.get('epoch')}, not {epoch}"
        else:
            why = restore_problem(source.base, settings, state)
        if why:
            raise BranchFromError(
                f"{path} does not fit the config of {source.run_dir} ({why}); was {CONFIG} edited or the "
                "checkpoint copied from another run? branch from the directory that trained it"
            )


def check_dataset(source: Source) -> Callable[[Any], None]:
    """prepare's check: the branches must train on the data the base run trained on."""
    want = tuple(source.started.get(k) for k in ("dataset", "train_samples", "test_samples"))

    def check(dataset: Any) -> None:
        have = (dataset.name, int(dataset.train.labels.shape[0]), int(dataset.test.labels.shape[0]))
        if want[0] != have[0] or any(w is not None and w != h for w, h in zip(want[1:], have[1:])):
            raise BranchFromError(
                f"the base run in {source.run_dir} trained on {want[0]} ({want[1]} train / {want[2]} test "
                f"samples) but {have[0]} ({have[1]} / {have[2]}) is what loads now; make the same data "
                f"available (data.root in {source.config_path})"
            )

    return check


@dataclass
class Branching:
    """What the new run directory starts with: sweep_started, then the base run's events from DIR. It reads
    as what a sweep recorded before its branches (trainer.cli.session.sweep_into continues after it)."""

    source: Source
    started: Event  # the new directory's sweep_started
    lines: list[str]  # events.jsonl as it starts (sweep_started and the base run's events)
    events: list[Event]  # the same, parsed
    last_t: float  # the clock goes on from the base run's last event
    resumed: tuple = ()  # no run of the directory continues (sweep_into marks none running)

    @property
    def base_summary(self) -> dict[str, Any] | None:
        end = next(
            (e for e in self.events if e["type"] == EventType.RUN_FINISHED and e.get("run") == self.base_id),
            None,
        )
        return end.get("summary") if end is not None else None

    @property
    def base_id(self) -> str:
        return self.source.base.run_id

    def write(self, run_dir: Path, epochs: list[int]) -> None:
        """events.jsonl as it starts, and the kept points of `epochs` copied in (OSError otherwise)."""
        for epoch in epochs:
            target = point_path(run_dir, self.base_id, epoch)
            ensure_dir(target.parent)
            tmp = target.with_name(target.name + ".tmp")
            shutil.copyfile(point_path(self.source.run_dir, self.base_id, epoch), tmp)
            tmp.replace(target)
        write_atomic(run_dir / EVENTS, "".join(self.lines))


def plan(source: Source, prepared: PreparedSweep, run_dir: Path) -> Branching:
    """The new directory's start: its sweep_started (DIR's, with the new config, the one base run, this
    machine's device and `branched_from`) and the base run's events from DIR."""
    base = source.base.run_id
    row = next(
        (r for r in source.started.get("runs") or [] if isinstance(r, dict) and r.get("run") == base), None
    )
    started = {
        k: v for k, v in source.started.items() if k not in ("shard", "parallel_devices", "branched_from")
    }
    started.update(
        config=config_to_dict(prepared.given),
        config_path=prepared.given.source,
        run_dir=str(run_dir),
        runs=[row if row is not None else source.base.as_event()],
        device=device_name(prepared.device),
        torch=str(torch.__version__),
        fast_path=prepared.fast_path,
        parallel_devices=[],
        branched_from=str(source.run_dir.absolute()),
        **prepared.data_fields(),
    )
    lines, events = [encode(started) + "\n"], [started]
    for line, e in zip(source.lines, source.events):
        if e.get("run") == base or (e["type"] == EventType.STEP_TIME and base in (e.get("runs") or [])):
            lines.append(line)
            events.append(e)
    last_t = max((float(e["t"]) for e in events if isinstance(e.get("t"), (int, float))), default=0.0)
    return Branching(source, started, lines, events, last_t)


def run_branching(
    prepared: PreparedSweep,
    emitter: Emitter,
    *,
    controls: Controls | None = None,
    log: Callable[[str], None] = lambda msg: None,
    run_dir: str = "",
    resume: Branching | None = None,
    ddp: Any = None,
) -> SweepResult:
    """The branches from the kept points copied into `run_dir` (trainer.sweep.branch.run_branches), then
    sweep_finished; `resume` is what the directory starts with (`plan`). Called as the sweep's
    trainer.sweep.driver.run_prepared is, and ends as it does: a stop ends the branches `stopped`, Ctrl-C is
    re-raised once the events are complete."""
    assert resume is not None and ddp is None, "a branched measurement trains in one process, from its plan"
    cfg, dataset, device = prepared.cfg, prepared.dataset, prepared.device
    settings = RunSettings.from_config(cfg)
    base = resume.source.base
    keeper = PointKeeper(cfg.branch.epochs, run_dir)
    for e in resume.events:  # its evaluations (the branches' target) and its B_simple at each point
        if e.get("run") == base.run_id:
            keeper.take(e)
    keeper.recover(base.run_id)
    test = prepare_test(dataset, device)
    runs: list[Any] = []
    status, interrupted = "done", None
    try:
        branch.run_branches(
            cfg, settings, keeper, base, dataset, device, emitter, test, controls, run_dir, runs, log
        )
    except StopRequested:
        status = "stopped"
    except KeyboardInterrupt as exc:
        status, interrupted = "stopped", exc
    why = "interrupted (Ctrl-C)" if interrupted is not None else None
    if why is None:
        why = (controls.stop_reason if controls is not None else "") or "stopped by the user"
    for run in runs:
        if not run.finished:
            run.finish("stopped", why)
    own = [resume.base_summary] if resume.base_summary else []
    summaries = own + [r.summary() for r in runs]
    if status == "done" and any(s.get("status") == "failed" for s in summaries):
        status = "failed"
    scaling = analyse(own, cfg.optim.lr, cfg.optim.base_batch_size)
    emitter.emit("sweep_finished", status=status, summaries=summaries, scaling=scaling)
    if interrupted is not None:
        raise interrupted
    # No scaling in the result: the console's answer is the branches' curve (the command prints it), not the
    # one base run's.
    return SweepResult(status=status, summaries=summaries)


def default_out(source: Source, now: float | None = None) -> Path:
    """Beside DIR: <date>-<time>-<DIR's name without its own date>-branch, made unique with a suffix."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    name = re.sub(r"^[0-9]{8}-[0-9]{6}-", "", source.run_dir.absolute().name) or "run"
    base = source.run_dir.absolute().parent / f"{stamp}-{name}-branch"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path
