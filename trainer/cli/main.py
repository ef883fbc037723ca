"""`python -m trainer run [CONFIG] [--set KEY=VALUE]... [--out DIR] [--device ...] [--force] [--shard I/N]`
`python -m trainer resume DIR [--device ...]`
`python -m trainer report DIR`

Exit codes (DESIGN.md): 0 the sweep finished (diverged/oom runs are results);
2 bad configuration or arguments (or a run directory another trainer is writing),
nothing trained; 130 interrupted (Ctrl-C), run directory still valid; 143 / 129
stopped by SIGTERM / SIGHUP (128 + the signal, as a shell reports it), a clean stop like
Ctrl-C's; 74 the run directory could not be written mid-sweep (disk full...), valid up
to its last whole line; 1 a bug (a run failed with an unexpected error, see errors.log).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from trainer.config import Config, ConfigError, config_from_toml, config_to_dict, load_config
from trainer.runlog.commands import app_command, trainer_command
from trainer.runlog.contract import CONFIG, ERRORS, EVENTS
from trainer.runlog.controls import (
    VIEWER_STOP,
    ControlFile,
    Controls,
    StopSignals,
    exit_code,
    interrupt_signal,
    signal_name,
)

if TYPE_CHECKING:
    from trainer.engine.ddp import DistContext

EXIT_OK, EXIT_BUG, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_IO = 74  # sysexits.h EX_IOERR: the run directory stopped taking writes mid-sweep
MAX_CONFIG_BYTES = 4 << 20  # a resolved config.toml is a few kB; more is not one the trainer wrote


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own exit code is 2 as well; keep its usage line
        self.print_usage(sys.stderr)
        print(f"bstui trainer: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m trainer", description="bstui's headless batch-size sweep trainer.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the sweep of an experiments.toml, writing a run directory")
    run.add_argument("config", nargs="?", default=None, help="experiments.toml (default: ./experiments.toml)")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help='override a config key, VALUE in TOML (e.g. --set sweep.batch_sizes=[6,60])',
    )
    run.add_argument("--out", default=None, metavar="DIR", help="the run directory itself (created)")
    run.add_argument("--force", action="store_true", help="reuse --out even if it already holds a run")
    run.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"], help="overrides sweep.device")
    run.add_argument("--quiet", action="store_true", help="no progress bars; still prints the summary")
    run.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="train only shard I of N (from 0) of the sweep, into DIR/shards/I (needs --out DIR)",
    )
    resume = sub.add_parser("resume", help="continue an interrupted sweep in its run directory")
    resume.add_argument("run_dir", metavar="DIR", help="the run directory of the interrupted sweep")
    resume.add_argument(
        "--device",
        default=None,
        choices=["auto", "cpu", "cuda"],
        help="overrides the recorded sweep.device (results then differ from an uninterrupted run)",
    )
    resume.add_argument("--quiet", action="store_true", help="no progress bars; still prints the summary")
    submit = sub.add_parser(
        "submit",
        help="submit the sweep's shards as a job array (SLURM through submitit, or "
        "local processes), into one directory that reads as one sweep",
    )
    submit.add_argument(
        "config", nargs="?", default=None, help="experiments.toml (default: ./experiments.toml)"
    )
    submit.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, as for run",
    )
    submit.add_argument(
        "--out", default=None, metavar="DIR", help="the sweep's directory (shards in DIR/shards/I)"
    )
    submit.add_argument(
        "--device", default=None, choices=["auto", "cpu", "cuda"], help="overrides sweep.device"
    )
    submit.add_argument(
        "--nodes", type=int, default=2, metavar="N", help="shards, one node (array task) each"
    )
    submit.add_argument(
        "--executor",
        default="slurm",
        choices=["slurm", "local"],
        help="slurm (sbatch, through submitit) or local (processes on this machine)",
    )
    submit.add_argument("--partition", default="", help="SLURM partition")
    submit.add_argument(
        "--gpus-per-node",
        type=int,
        default=0,
        metavar="G",
        help="GPUs per shard (sweep.parallel = \"auto\" spreads its runs over them)",
    )
    submit.add_argument("--cpus-per-task", type=int, default=0, metavar="C", help="CPUs per shard")
    submit.add_argument(
        "--time",
        type=int,
        default=24 * 60,
        metavar="MIN",
        help="time limit per job in minutes; a shard stopped by it is requeued and resumes",
    )
    submit.add_argument(
        "--wait", action="store_true", help="wait for every shard to end (exit 1 if one failed)"
    )
    report = sub.add_parser(
        "report",
        help="tables and plots of a run directory: best lr per batch size, "
        "B_crit with its interval, B_simple, collapse, oscillation",
    )
    report.add_argument("run_dir", metavar="DIR", help="a run directory")
    report.add_argument(
        "--no-plots",
        action="store_true",
        help="tables only: no terminal plots (in the output or in report.md)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Ctrl-C, SIGTERM and SIGHUP: a clean stop whenever they come (trainer.runlog.controls.StopSignals).
    with StopSignals() as signals:
        try:
            if args.command == "run":
                return cmd_run(args, signals)
            if args.command == "report":
                return cmd_report(args)
            if args.command == "resume":
                return cmd_resume(args, signals)
            if args.command == "submit":
                return cmd_submit(args)
            return EXIT_USAGE
        except KeyboardInterrupt as exc:  # before the sweep began (it handles its own): nothing trained
            signum = interrupt_signal(exc)
            what = "" if args.command == "report" else " before training began; nothing was trained"
            print(f"bstui: interrupted by {signal_name(signum)}{what}", file=sys.stderr)
            return exit_code(signum)


def cmd_report(args: argparse.Namespace) -> int:
    """Print the report of a run directory (Markdown) and write it as report.md there."""
    # Start-up cost: the report's modules load only for this command.
    from trainer.report.build import write_report
    from trainer.report.collect import ReportError

    try:
        text, path = write_report(Path(args.run_dir), plots=not args.no_plots)
    except ReportError as exc:
        print(f"bstui: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"bstui: cannot write the report into {args.run_dir}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    print(text)
    print(f"written to {path}")
    return EXIT_OK


def cmd_submit(args: argparse.Namespace) -> int:
    """Submit the shards of a sweep as one job array (trainer.cli.submit)."""
    overrides = list(args.overrides) + ([f'sweep.device="{args.device}"'] if args.device else [])
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"bstui: config error:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    for name, value, least in (
        ("--nodes", args.nodes, 1),
        ("--gpus-per-node", args.gpus_per_node, 0),
        ("--cpus-per-task", args.cpus_per_task, 0),
        ("--time", args.time, 1),
    ):
        if value < least:
            print(f"bstui: {name} must be at least {least}, not {value}", file=sys.stderr)
            return EXIT_USAGE
    from trainer.cli.submit import SUBMITIT_DIR, Cluster, SubmitError, make_executor, submit
    from trainer.runlog import RunDirError, default_run_dir, ensure_dir, write_config
    from trainer.runlog.shards import SHARDS
    from trainer.sweep.shard_plan import ShardError, plan_shard

    try:
        plan_shard(cfg, 0, args.nodes)
    except ShardError as exc:
        print(f"bstui: {exc} (--nodes)", file=sys.stderr)
        return EXIT_USAGE
    root = (Path(args.out).expanduser() if args.out else default_run_dir(cfg)).absolute()
    if (root / SHARDS).exists() or (root / SUBMITIT_DIR).exists() or os.path.lexists(root / EVENTS):
        print(
            f"bstui: {root} already holds a sweep; choose a new --out (an interrupted shard continues with "
            f"{trainer_command('resume', root / SHARDS)}/I)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    cluster = Cluster(
        nodes=args.nodes,
        executor=args.executor,
        partition=args.partition,
        gpus_per_node=args.gpus_per_node,
        cpus_per_task=args.cpus_per_task,
        timeout_min=args.time,
    )
    try:
        executor = make_executor(cluster, root / SUBMITIT_DIR)  # no SLURM: refused before anything is written
        root.mkdir(parents=True, exist_ok=True)
        folder = ensure_dir(root / SUBMITIT_DIR)
        write_config(folder, cfg)  # the shards train from this frozen copy
        jobs = submit(executor, folder / CONFIG, root, cluster)
    except (SubmitError, RunDirError) as exc:
        print(f"bstui: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"bstui: cannot submit into {root}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    ids = ", ".join(str(j.job_id) for j in jobs)
    print(
        f"submitted {len(jobs)} shards ({args.executor}: {ids}) into {root}\n"
        f"  watch them as one sweep: {app_command('--attach', root)}\n"
        f"  the whole sweep's report: {trainer_command('report', root)}\n"
        f"  submitit's logs: {root / SUBMITIT_DIR}"
    )
    if not args.wait:
        return EXIT_OK
    failed = 0
    for index, job in enumerate(jobs):
        try:
            job.result()
        except Exception as exc:  # submitit re-raises the job's error: its last line says why
            failed += 1
            why = str(exc).strip().splitlines()
            print(f"bstui: shard {index}/{len(jobs)} failed: {why[-1] if why else exc}", file=sys.stderr)
    return EXIT_BUG if failed else EXIT_OK


def cmd_run(args: argparse.Namespace, signals: StopSignals | None = None) -> int:
    overrides = list(args.overrides)
    if args.device:
        overrides.append(f'sweep.device="{args.device}"')
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"bstui: config error:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    shard = None
    if args.shard is not None:
        from trainer.runlog.shards import parse_shard

        try:
            shard = parse_shard(args.shard)
        except ValueError as exc:
            print(f"bstui: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if not args.out:
            print(
                "bstui: --shard needs --out DIR, the sweep's directory that every shard shares "
                "(shard I trains into DIR/shards/I)",
                file=sys.stderr,
            )
            return EXIT_USAGE
    return train(cfg, out=args.out, force=args.force, quiet=args.quiet, signals=signals, shard=shard)


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

    from trainer.data.datasets import DatasetUnavailable, load_dataset
    from trainer.engine import ddp
    from trainer.models.builtin import ModelError
    from trainer.runlog import RunDirError, default_run_dir, open_run_dir, write_config
    from trainer.sweep.driver import DeviceUnavailable, check_dataset, check_model, preflight

    console = Console(stderr=True)
    _report_slow_factories(console)
    try:
        ctx = ddp.init_from_env(cfg)  # under torchrun: join the job (issue 7); None for one process
    except ddp.DistributedError as exc:
        _error(console, f"bstui: {exc}")
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
            _error(console, f"bstui: {exc}")
            return EXIT_USAGE
        out = str(shard_dir(out, shard[0]))
    if ctx is not None and not ctx.is_main:
        return _ddp_worker(cfg, ctx, shard_info)  # trains its slices; only rank 0 writes and prints
    lock = None
    try:
        device = preflight(cfg) if ctx is None else ctx.device
        dataset = load_dataset(cfg.data, seed=cfg.sweep.seed, log=lambda m: console.print(f"[yellow]{m}[/]"))
        check_dataset(cfg, dataset)
        check_model(cfg, dataset)
        with signals.deferred():  # a signal waits until the directory and its lock are made
            run_dir, lock = open_run_dir(Path(out) if out else default_run_dir(cfg), force=force)
    except (DeviceUnavailable, DatasetUnavailable, ModelError, RunDirError) as exc:
        _error(console, f"bstui: {exc}")
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
            _error(
                console, "bstui: another torchrun process could not load the dataset (its message is above)"
            )
            return EXIT_USAGE
        _report_stale_lock(console, lock)
        return _sweep_into(
            run_dir, cfg, device, dataset, console, quiet=quiet, ddp=ctx, signals=signals, shard=shard_info
        )
    except RunDirError as exc:
        _error(console, f"bstui: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt as exc:  # after the directory was made, before the sweep began
        return _interrupted_before_training(console, run_dir, exc)
    finally:
        lock.release()
        ddp.shutdown()


def _ddp_worker(cfg: Config, ctx: DistContext, shard=None) -> int:
    """A torchrun rank other than 0: wait until rank 0 has the dataset (it may download or generate it)
    and the run directory, then train the same sweep, emitting nothing. Returns an exit code like rank 0's."""
    # Start-up cost: torch and the trainer load only once the config is known to be good.
    from trainer.data.datasets import DatasetUnavailable, load_dataset
    from trainer.engine import ddp
    from trainer.runlog import Emitter
    from trainer.sweep.driver import run_sweep

    try:
        if not ctx.agree(True):  # rank 0 could not start; it prints why
            return EXIT_USAGE
        try:
            dataset = load_dataset(cfg.data, seed=cfg.sweep.seed)
        except DatasetUnavailable as exc:
            print(f"bstui (torchrun rank {ctx.rank}): {exc}", flush=True)
            dataset = None
        if not ctx.agree(dataset is not None):
            return EXIT_USAGE
        result = run_sweep(cfg, Emitter([]), device=ctx.device, dataset=dataset, ddp=ctx, shard=shard)
        return EXIT_BUG if result.any_failed else EXIT_OK
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        ddp.shutdown()


def cmd_resume(args: argparse.Namespace, signals: StopSignals | None = None) -> int:
    """Continue the interrupted sweep of a run directory (issue 6)."""
    # Start-up cost: trainer.engine.ddp imports torch; the arguments are checked first.
    from trainer.engine.ddp import world_size_from_env

    if world_size_from_env() > 1:
        print(
            f"bstui: resume runs in one process, not under torchrun; run {trainer_command('resume')} DIR",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from trainer.runlog import UnreadableFile, read_text

    run_dir = Path(args.run_dir).expanduser()
    from trainer.runlog.shards import is_sharded, shard_dirs

    if is_sharded(run_dir):  # each shard is resumed on its own (by its node, or by submit's requeue)
        shards = sorted(shard_dirs(run_dir))
        print(
            f"bstui: {run_dir} holds a sweep in shards; resume each shard that did not finish on its own: "
            + "; ".join(trainer_command("resume", run_dir / "shards" / str(i)) for i in shards[:4])
            + ("; ..." if len(shards) > 4 else "")
            + f" (`{trainer_command('report', run_dir)}` says which)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if not os.path.lexists(run_dir / CONFIG):
        print(
            f"bstui: {run_dir} is not a run directory (no {CONFIG} in it); give the directory "
            "that `python -m trainer run` wrote",
            file=sys.stderr,
        )
        return EXIT_USAGE
    overrides = [f'sweep.device="{args.device}"'] if args.device else []
    try:
        text = read_text(run_dir / CONFIG, MAX_CONFIG_BYTES)
        cfg = config_from_toml(text, source=str(run_dir / CONFIG), overrides=overrides)
    except (OSError, UnreadableFile) as exc:
        print(
            f"bstui: cannot read {run_dir / CONFIG}: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr
        )
        return EXIT_USAGE
    except ConfigError as exc:
        print(f"bstui: config error in the run directory:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    return resume_sweep(cfg, run_dir, quiet=args.quiet, signals=signals)


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
        _error(console, f"bstui: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:  # main says so in one line
        if lock is not None:
            lock.release()
        raise
    try:  # whatever ends the resume, the lock goes (a refusal or "nothing to do" included)
        return _resume_locked(cfg, run_dir, console, lock, quiet, signals)
    except KeyboardInterrupt as exc:  # during start-up: the directory is as it was, or rewritten whole
        return _interrupted_before_training(console, run_dir, exc)
    finally:
        lock.release()


def _resume_locked(cfg: Config, run_dir: Path, console, lock, quiet: bool, signals: StopSignals) -> int:
    """resume_sweep under the run directory's lock."""
    from trainer.data.datasets import DatasetUnavailable, load_dataset
    from trainer.models.builtin import ModelError
    from trainer.plan import RunSettings, run_specs
    from trainer.runlog import RunDirError, check_layout
    from trainer.runlog.shards import read_shard_file
    from trainer.sweep.driver import DeviceUnavailable, check_dataset, check_model, preflight
    from trainer.sweep.resume import ResumeError, plan_resume, restore_check

    try:
        _report_stale_lock(console, lock)
        check_layout(run_dir)
        device = preflight(cfg)
        shard = read_shard_file(run_dir)
        specs = run_specs(cfg)
        if shard is not None:  # a shard of a sweep: its own runs only (trainer.runlog.shards)
            mine = set(shard.runs)
            specs = [s for s in specs if s.run_id in mine]
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
        dataset = load_dataset(cfg.data, seed=cfg.sweep.seed, log=lambda m: console.print(f"[yellow]{m}[/]"))
        plan.check_dataset(dataset)
        check_dataset(cfg, dataset)
        check_model(cfg, dataset)
        with signals.deferred():  # events.jsonl is rewritten whole or not at all
            plan.apply()
    except (DeviceUnavailable, DatasetUnavailable, ModelError, ResumeError, RunDirError) as exc:
        _error(console, f"bstui: {exc}")
        return EXIT_USAGE
    except OSError as exc:
        _error(console, f"bstui: cannot rewrite {run_dir / EVENTS}: {exc.strerror or exc}")
        return EXIT_USAGE
    try:
        console.print(
            f"resuming {run_dir}" + (" (nothing was recorded: from the start)" if plan.fresh else ""),
            markup=False,
            soft_wrap=True,
        )
        for line in plan.describe():  # whole lines: a reason may hold a long path
            console.print(f"  {line}", markup=False, soft_wrap=True)
        return _sweep_into(
            run_dir,
            cfg,
            device,
            dataset,
            console,
            quiet=quiet,
            resume=None if plan.fresh else plan,
            signals=signals,
            shard=shard,
        )
    except RunDirError as exc:
        _error(console, f"bstui: {exc}")
        return EXIT_USAGE


def _sweep_into(
    run_dir: Path,
    cfg: Config,
    device,
    dataset,
    console,
    *,
    quiet: bool,
    resume=None,
    ddp: DistContext | None = None,
    signals: StopSignals | None = None,
    shard=None,
) -> int:
    """Train (or continue, with `resume`) the sweep into `run_dir`; print the summary; the exit code.
    Under torchrun (`ddp`, rank 0) every run trains data parallel with the other ranks. With
    `signals`, a SIGTERM or SIGHUP from here on stops the sweep as the app's stop does."""
    # Start-up cost: called once a sweep is sure to train (torch and rich are loaded by then anyway).
    import torch
    from rich.console import Console

    from trainer.analysis.answer import answers
    from trainer.cli.console import ConsoleSink, summary_table
    from trainer.engine.checkpoint import CheckpointError
    from trainer.runlog import (
        Clock,
        Emitter,
        EventType,
        RunDirSink,
        RunDirWriteError,
        RunStatus,
        UnreadableFile,
        read_summary,
    )
    from trainer.sweep.driver import device_name, run_sweep

    # Piped or captured output gets room for the whole table instead of rich's 80 columns.
    out_console = Console(width=None if sys.stdout.isatty() else 160)
    sink = RunDirSink(run_dir, prior=resume.events if resume is not None else ())
    sinks: list = [sink]
    progress = None if quiet else ConsoleSink(console)
    if progress is not None:
        sinks.append(progress)
    clock = None
    if resume is not None:
        clock = Clock(time.perf_counter() - resume.last_t)  # `t` goes on from the last recorded event
        for plan in resume.resumed:
            sink.mark(plan.run_id, RunStatus.RUNNING)
        if progress is not None:  # the recorded header starts the progress display
            progress.emit(
                {
                    **resume.started,
                    "device": device_name(device),
                    "torch": torch.__version__,
                    "run_dir": str(run_dir),
                }
            )
    emitter = Emitter(sinks, clock)
    code = EXIT_OK
    result = None
    write_error: Exception | None = None
    controls = None
    control_file = None
    if signals is not None and signals.enabled:
        controls = Controls()
        signals.stop_via(controls)  # the training loop sees the stop at its next step
        if ddp is None:  # one process: viewers (bstui --attach) pause, split and stop it through the file

            def controls_changed(working: bool, reason: str) -> None:  # from the control file's thread
                emitter.emit(EventType.CONTROLS_CHANGED, working=working, reason=reason)
                if not working:
                    console.print(
                        f"controls from viewers stopped working: {reason}; stop the sweep with "
                        f"kill -TERM {os.getpid()} and resume it",
                        style="yellow",
                        markup=False,
                        soft_wrap=True,
                    )

            control_file = ControlFile(run_dir, controls, report=controls_changed, resume_on_loss=True)
            control_file.start()
    try:
        if resume is not None:
            try:
                sink.write_summary()
            except OSError as exc:
                raise RunDirWriteError(run_dir, exc) from exc
        result = run_sweep(
            cfg,
            emitter,
            device=device,
            dataset=dataset,
            run_dir=str(run_dir),
            log=lambda m: console.print(m),
            resume=resume,
            ddp=ddp,
            controls=controls,
            shard=shard,
        )
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except RunDirWriteError as exc:
        code, write_error = EXIT_IO, exc
    except CheckpointError as exc:  # found only when the run is rebuilt; the directory stays resumable
        code, write_error = EXIT_USAGE, exc
    finally:
        emitter.close()
        if control_file is not None:
            control_file.close()
    try:
        rows = read_summary(run_dir)
    except (OSError, UnreadableFile):
        rows = []
    out_console.print(summary_table(rows, device=device_name(device)))
    if shard is not None:  # its runs are a part of the sweep: the analysis is the whole sweep's
        root = run_dir.parent.parent
        out_console.print(
            f"shard {shard.index}/{shard.count} of the sweep in {root}; the whole sweep, once every "
            f"shard has finished: {trainer_command('report', root)}",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
    elif result is not None and result.scaling and (ddp is None or ddp.is_main):
        for sentence in answers(result.scaling, cfg.sweep.target_accuracy, device_name(device)):
            out_console.print(sentence, soft_wrap=True, markup=False, highlight=False)
    out_console.print(f"run directory: {run_dir}", soft_wrap=True, markup=False)
    if code == EXIT_OK and result is not None and result.status == "done" and (ddp is None or ddp.is_main):
        out_console.print(
            f"report (report.md and plots): {trainer_command('report', run_dir)}",
            soft_wrap=True,
            markup=False,
            highlight=False,
        )
    if code == EXIT_OK and result is not None and result.status == "stopped" and signals and signals.received:
        console.print(
            f"stopped by {signal_name(signals.received)}: the run directory is valid up to the stop; "
            f"resume with: {trainer_command('resume', run_dir)}",
            style="yellow",
            markup=False,
            soft_wrap=True,
        )
        return exit_code(signals.received)
    if (
        code == EXIT_OK
        and result is not None
        and result.status == "stopped"
        and controls is not None
        and controls.stop_reason == VIEWER_STOP
    ):
        console.print(
            f"{VIEWER_STOP}: the run directory is valid up to the stop; "
            f"resume with: {trainer_command('resume', run_dir)}",
            style="yellow",
            markup=False,
            soft_wrap=True,
        )
        return EXIT_INTERRUPTED
    if code == EXIT_INTERRUPTED:
        console.print(
            "interrupted: the run directory is valid up to the interruption; "
            f"resume with: {trainer_command('resume', run_dir)}",
            style="yellow",
            markup=False,
            soft_wrap=True,
        )
        return code
    if write_error is not None:
        _error(console, f"bstui: {write_error}")
        return code
    if result is not None and result.any_failed:
        _error(console, f"a run failed with an unexpected error; see {run_dir / ERRORS}")
        return EXIT_BUG
    return code


def _interrupted_before_training(console, run_dir: Path, exc: KeyboardInterrupt) -> int:
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


def _error(console, message: str) -> None:
    """A user-facing error on stderr (no markup: paths may hold brackets)."""
    console.print(message, style="red", markup=False, soft_wrap=True)


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
