"""Starting a sweep from the console: `train` (`python -m trainer run`) and `resume_sweep` (`python -m
trainer resume`). Each resolves the sweep once, going down (trainer.sweep.prepare: the device, the
dataset, the model), before it makes or locks the run directory, then hands over to
trainer.cli.session, which trains it with progress on the console. A torchrun rank other than 0 trains
the same sweep silently (`_ddp_worker`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from trainer.cli.exits import EXIT_BUG, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from trainer.cli.session import say_error, sweep_into
from trainer.config import Config, config_to_dict
from trainer.runlog.commands import trainer_command
from trainer.runlog.contract import EVENTS
from trainer.runlog.controls import StopSignals, exit_code, interrupt_signal, signal_name

if TYPE_CHECKING:
    from trainer.engine.ddp import DistContext


def train(
    cfg: Config,
    out: str | None = None,
    force: bool = False,
    quiet: bool = False,
    signals: StopSignals | None = None,
    shard: tuple[int, int] | None = None,
) -> int:
    """Run the sweep of `cfg` into a run directory, with console progress. Returns the exit code.

    With `signals` (installed by main), a SIGTERM/SIGHUP once the sweep runs is a clean stop; one
    during start-up raises Interrupted (a KeyboardInterrupt), never while the run directory is made.
    With `shard` (I, N), only shard I's runs train, into `out`/shards/I (trainer.runlog.shards)."""
    signals = signals or StopSignals(enabled=False)
    # torch (and rich) are imported here, at start-up cost, after the config is known to be good:
    # bad input fails fast.
    from rich.console import Console

    from trainer.data.datasets import DatasetUnavailable
    from trainer.engine import ddp
    from trainer.models.builtin import ModelError
    from trainer.runlog import RunDirError, default_run_dir, open_run_dir, write_config
    from trainer.sweep.prepare import DeviceUnavailable, preflight, prepare

    console = Console(stderr=True)
    _report_slow_factories(console)
    try:
        ctx = ddp.init_from_env(cfg)  # under torchrun: join the job; None for one process
    except ddp.DistributedError as exc:
        say_error(console, f"bstui: {exc}")
        return EXIT_USAGE
    if ctx is not None:
        signals.restore()  # under torchrun, torchrun passes signals on to its ranks, as before
    shard_info = None
    if shard is not None:
        from trainer.runlog.shards import shard_dir
        from trainer.sweep.shard_plan import ShardError, plan_shard

        try:
            shard_info = plan_shard(cfg, *shard)
        except ShardError as exc:
            say_error(console, f"bstui: {exc}")
            return EXIT_USAGE
        out = str(shard_dir(out, shard[0]))
    if ctx is not None and not ctx.is_main:
        return _ddp_worker(cfg, ctx, shard_info)  # trains its slices; only rank 0 writes and prints
    lock = None
    try:
        prepared = prepare(
            cfg,
            device=preflight(cfg) if ctx is None else ctx.device,
            log=lambda m: console.print(f"[yellow]{m}[/]"),
            shard=shard_info,
        )
        with signals.deferred():  # a signal waits until the directory and its lock are made
            run_dir, lock = open_run_dir(Path(out) if out else default_run_dir(cfg), force=force)
    except (DeviceUnavailable, DatasetUnavailable, ModelError, RunDirError) as exc:
        say_error(console, f"bstui: {exc}")
        if ctx is not None:  # the other ranks wait for rank 0's word
            ddp.main_ready(ctx, False)
            ddp.shutdown()
        return EXIT_USAGE
    except KeyboardInterrupt:  # main says so in one line; the directory holds nothing yet
        if lock is not None:
            lock.release()
        raise
    try:
        with signals.deferred():  # config.toml (and a shard's shard.json) in place before a signal is taken
            if shard_info is not None:
                from trainer.runlog.shards import write_shard_file

                write_shard_file(run_dir, shard_info)
            write_config(run_dir, cfg)
        if ctx is not None and not ddp.main_ready(ctx, True):
            say_error(
                console, "bstui: another torchrun process could not load the dataset (its message is above)"
            )
            return EXIT_USAGE
        _report_stale_lock(console, lock)
        return sweep_into(run_dir, prepared, console, quiet=quiet, ddp=ctx, signals=signals)
    except RunDirError as exc:
        say_error(console, f"bstui: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt as exc:  # after the directory was made, before the sweep began
        return interrupted_before_training(console, run_dir, exc)
    finally:
        lock.release()
        ddp.shutdown()


def _ddp_worker(cfg: Config, ctx: DistContext, shard=None) -> int:
    """A torchrun rank other than 0: wait until rank 0 has the dataset (it may download or generate it)
    and the run directory, then train the same sweep, emitting nothing. Returns an exit code like rank 0's."""
    # Start-up cost: torch and the trainer load only once the config is known to be good.
    from trainer.data.datasets import DatasetUnavailable
    from trainer.engine import ddp
    from trainer.models.builtin import ModelError
    from trainer.runlog import Emitter
    from trainer.sweep.driver import run_prepared
    from trainer.sweep.prepare import DeviceUnavailable, prepare

    try:
        if not ctx.agree(True):  # rank 0 could not start; it prints why
            return EXIT_USAGE
        try:
            prepared = prepare(cfg, device=ctx.device, shard=shard)
        except (DatasetUnavailable, DeviceUnavailable, ModelError) as exc:
            print(f"bstui (torchrun rank {ctx.rank}): {exc}", flush=True)
            prepared = None
        if not ctx.agree(prepared is not None):
            return EXIT_USAGE
        result = run_prepared(prepared, Emitter([]), ddp=ctx)
        return EXIT_BUG if result.any_failed else EXIT_OK
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        ddp.shutdown()


def _report_slow_factories(console) -> None:
    """The user's factory or module that runs long says so on the console, with its time so far."""
    from trainer.config.user_code import set_reporter

    set_reporter(
        lambda text: console.print(text, style="yellow", markup=False, highlight=False, soft_wrap=True)
    )


def resume_sweep(cfg: Config, run_dir: Path, quiet: bool = False, signals: StopSignals | None = None) -> int:
    """Continue the sweep recorded in `run_dir` (resolved config `cfg`). Returns the exit code.
    `signals`: as for `train`."""
    # Start-up cost: rich and torch load only once the run directory's config is known to be good.
    from rich.console import Console

    from trainer.runlog import RunDirError, RunLock

    signals = signals or StopSignals(enabled=False)
    console = Console(stderr=True)
    _report_slow_factories(console)
    lock = None
    try:
        with signals.deferred():  # a signal waits until the lock is taken (and is then released below)
            lock = RunLock.acquire(run_dir)
    except RunDirError as exc:
        say_error(console, f"bstui: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:  # main says so in one line
        if lock is not None:
            lock.release()
        raise
    try:  # whatever ends the resume, the lock goes (a refusal or "nothing to do" included)
        return _resume_locked(cfg, run_dir, console, lock, quiet, signals)
    except KeyboardInterrupt as exc:  # during start-up: the directory is as it was, or rewritten whole
        return interrupted_before_training(console, run_dir, exc)
    finally:
        lock.release()


def _resume_locked(cfg: Config, run_dir: Path, console, lock, quiet: bool, signals: StopSignals) -> int:
    """resume_sweep under the run directory's lock."""
    from trainer.data.datasets import DatasetUnavailable
    from trainer.models.builtin import ModelError
    from trainer.plan import RunSettings, run_specs
    from trainer.runlog import RunDirError, check_layout
    from trainer.runlog.shards import read_shard_file
    from trainer.sweep.prepare import DeviceUnavailable, preflight, prepare
    from trainer.sweep.resume import ResumeError, plan_resume, restore_check

    try:
        _report_stale_lock(console, lock)
        check_layout(run_dir)
        device = preflight(cfg)
        shard = read_shard_file(run_dir)
        # A shard of a sweep: its own runs only (trainer.runlog.shards).
        specs = run_specs(cfg, only=shard.runs if shard is not None else None)
        plan = plan_resume(
            run_dir,
            [s.run_id for s in specs],
            device,
            check=restore_check(specs, RunSettings.from_config(cfg)),
            config=config_to_dict(cfg),
        )
        if plan.nothing_to_do:
            console.print(f"{run_dir}: every run and the sweep finished; nothing to resume", markup=False)
            return EXIT_OK
        if plan.started is not None and plan.started.get("dataset") not in (None, cfg.data.dataset):
            cfg.data.dataset = plan.started[
                "dataset"
            ]  # what it trained on (a fallback, say), not what it asked
        prepared = prepare(
            cfg,
            device=device,
            log=lambda m: console.print(f"[yellow]{m}[/]"),
            shard=shard,
            check=plan.check_dataset,
        )
        with signals.deferred():  # events.jsonl is rewritten whole or not at all
            plan.apply()
    except (DeviceUnavailable, DatasetUnavailable, ModelError, ResumeError, RunDirError) as exc:
        say_error(console, f"bstui: {exc}")
        return EXIT_USAGE
    except OSError as exc:
        say_error(console, f"bstui: cannot rewrite {run_dir / EVENTS}: {exc.strerror or exc}")
        return EXIT_USAGE
    try:
        console.print(
            f"resuming {run_dir}" + (" (nothing was recorded: from the start)" if plan.fresh else ""),
            markup=False,
            soft_wrap=True,
        )
        for line in plan.describe():  # whole lines: a reason may hold a long path
            console.print(f"  {line}", markup=False, soft_wrap=True)
        return sweep_into(
            run_dir, prepared, console, quiet=quiet, resume=None if plan.fresh else plan, signals=signals
        )
    except RunDirError as exc:
        say_error(console, f"bstui: {exc}")
        return EXIT_USAGE


def interrupted_before_training(console, run_dir: Path, exc: KeyboardInterrupt) -> int:
    """A stop signal after the run directory was ready but before the sweep began: one line, its exit code."""
    signum = interrupt_signal(exc)
    console.print(
        f"bstui: interrupted by {signal_name(signum)} before training began; nothing was trained; "
        f"resume with: {trainer_command('resume', run_dir)}",
        style="yellow",
        markup=False,
        soft_wrap=True,
    )
    return exit_code(signum)


def _report_stale_lock(console, lock) -> None:
    stale = lock.replaced
    if stale:
        console.print(
            f"note: replaced the stale lock of a trainer that is gone ({stale.get('reason')}; "
            f"command: {stale.get('command', '?')})",
            style="yellow",
            markup=False,
            soft_wrap=True,
        )
