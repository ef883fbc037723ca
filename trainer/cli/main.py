"""`python -m trainer run [CONFIG] [--set KEY=VALUE]... [--out DIR] [--device ...] [--force] [--shard I/N]`
`python -m trainer resume DIR [--device ...]`
`python -m trainer report DIR`
`python -m trainer branch DIR [--config FILE] [--batch-sizes ...] ... [--out NEWDIR]` (trainer/cli/branch.py)

The arguments, checked here; a sweep starts in trainer/cli/start.py. Exit codes: trainer/cli/exits.py.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from trainer.cli.branch import add_parser as add_branch_parser
from trainer.cli.branch import cmd_branch
from trainer.cli.exits import EXIT_BUG, EXIT_OK, EXIT_USAGE
from trainer.cli.start import resume_sweep, train
from trainer.config import ConfigError, config_from_toml, load_config
from trainer.runlog.commands import app_command, trainer_command
from trainer.runlog.contract import CONFIG, EVENTS
from trainer.runlog.controls import (
    StopSignals,
    exit_code,
    interrupt_signal,
    signal_name,
)

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
    add_branch_parser(sub)
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
            if args.command == "branch":
                return cmd_branch(args, signals)
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


def cmd_resume(args: argparse.Namespace, signals: StopSignals | None = None) -> int:
    """Continue the interrupted sweep of a run directory."""
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
