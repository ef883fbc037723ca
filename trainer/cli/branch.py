"""`python -m trainer branch DIR [--config FILE] [--epochs ...] [--batch-sizes ...] [--lr-factors ...]
[--decrease X] [--max-samples N] [--eval-every N] [--out NEWDIR] [--device ...]`: branched B_crit measured
again from the base run a sweep's run directory already holds (trainer.sweep.branch_from), into a new run
directory; DIR is only read. Every mistake a user can make is refused, exit 2, before anything is written.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from trainer.cli.exits import EXIT_OK, EXIT_USAGE
from trainer.cli.session import say_error, sweep_into
from trainer.cli.start import interrupted_before_training
from trainer.config import ConfigError
from trainer.config.branch_from import Option, branch_config
from trainer.config.load import read_config_text
from trainer.runlog.controls import StopSignals


def _numbers(kind: type) -> object:
    """An argparse type: comma-separated numbers of `kind` ("16,32,64")."""

    def parse(text: str) -> list:
        try:
            return [kind(part) for part in text.split(",") if part.strip()]
        except ValueError:
            what = "whole numbers" if kind is int else "numbers"
            raise argparse.ArgumentTypeError(
                f"{text!r}: give {what} separated by commas, e.g. 16,32,64"
            ) from None

    parse.__name__ = f"list of {kind.__name__}"
    return parse


def add_parser(sub: argparse._SubParsersAction) -> None:
    branch = sub.add_parser(
        "branch",
        help="measure branched B_crit again from the base run of a sweep's run directory (other batch sizes, "
        "lr factors, decrease...), into a new run directory",
        description="Branched B_crit from the checkpoints a sweep with a [branch] table kept "
        "(DIR/checkpoints/<base>-e<N>.pt), without training its base run again. DIR is only read; the "
        "measurement goes into a new run directory that the app and `report` read like a sweep's.",
    )
    branch.add_argument(
        "run_dir", metavar="DIR", help="the run directory of a sweep that had a [branch] table"
    )
    branch.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="a TOML file whose [branch] table replaces DIR's (its other tables are not used)",
    )
    lists = {"--epochs": int, "--batch-sizes": int, "--lr-factors": float}
    helps = {
        "--epochs": "branch.epochs: which of the kept points to branch from, e.g. 1,3 (default: every kept one)",
        "--batch-sizes": "branch.batch_sizes, e.g. 16,32,64,128,256",
        "--lr-factors": "branch.lr_factors, e.g. 0.5,1,2",
    }
    for flag, kind in lists.items():
        branch.add_argument(flag, type=_numbers(kind), default=None, metavar="N,N,...", help=helps[flag])
    branch.add_argument("--decrease", type=float, default=None, metavar="X", help="branch.decrease, e.g. 0.1")
    branch.add_argument("--max-samples", type=int, default=None, metavar="N", help="branch.max_samples")
    branch.add_argument("--eval-every", type=int, default=None, metavar="N", help="branch.eval_every")
    branch.add_argument(
        "--out",
        default=None,
        metavar="NEWDIR",
        help="the new run directory (created; default: beside DIR, <date>-<time>-<name>-branch)",
    )
    branch.add_argument(
        "--device", default=None, choices=["auto", "cpu", "cuda"], help="overrides DIR's sweep.device"
    )
    branch.add_argument("--quiet", action="store_true", help="no progress bars; still prints the summary")


def options(args: argparse.Namespace) -> list[Option]:
    """The [branch] keys given as options, in the order of the table."""
    out = []
    for flag, key in (
        ("--epochs", "epochs"),
        ("--batch-sizes", "batch_sizes"),
        ("--lr-factors", "lr_factors"),
        ("--decrease", "decrease"),
        ("--max-samples", "max_samples"),
        ("--eval-every", "eval_every"),
    ):
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            shown = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            out.append(Option(key, value, f"{flag} {shown}"))
    return out


def cmd_branch(args: argparse.Namespace, signals: StopSignals | None = None) -> int:
    """Measure the branches of `args` from DIR into a new run directory. Returns the exit code."""
    # Start-up cost: torch and rich load here, for this command only.
    from rich.console import Console

    from trainer.data.datasets import DatasetUnavailable
    from trainer.models.builtin import ModelError
    from trainer.runlog import RunDirError, open_run_dir, write_config
    from trainer.sweep.branch_from import (
        BranchFromError,
        check_dataset,
        check_points,
        default_out,
        plan,
        read_source,
        run_branching,
    )
    from trainer.sweep.prepare import DeviceUnavailable, preflight, prepare

    signals = signals or StopSignals(enabled=False)
    console = Console(stderr=True)
    try:
        source = read_source(Path(args.run_dir).expanduser())
    except BranchFromError as exc:
        say_error(console, f"bstui: {exc}")
        return EXIT_USAGE
    except ConfigError as exc:
        say_error(console, f"bstui: config error in the run directory:\n{exc}")
        return EXIT_USAGE
    try:
        file_text = read_config_text(args.config) if args.config else None
        cfg, notes = branch_config(
            source.text,
            str(source.config_path),
            source.base.batch_size,
            source.kept,
            file_text=file_text,
            file_source=args.config or "",
            options=options(args),
        )
    except ConfigError as exc:
        say_error(console, f"bstui: config error:\n{exc}")
        return EXIT_USAGE
    for note in notes:
        console.print(note, style="yellow", markup=False, soft_wrap=True)
    if args.device:
        cfg.sweep.device = args.device
    trained = source.started.get("dataset")
    if isinstance(trained, str) and trained != cfg.data.dataset:  # its fallback: what the base run trained on
        cfg.data.dataset = trained
    out = (Path(args.out).expanduser() if args.out else default_out(source)).absolute()
    inside = source.run_dir.resolve()
    if out.resolve() == inside or inside in out.resolve().parents:
        say_error(
            console,
            f"bstui: --out {out} is inside {source.run_dir}, which is only read; give a new directory outside it",
        )
        return EXIT_USAGE
    lock = None
    try:
        prepared = prepare(
            cfg,
            device=preflight(cfg),
            log=lambda m: console.print(f"[yellow]{m}[/]"),
            check=check_dataset(source),
        )
        check_points(source, prepared.cfg)
        with signals.deferred():  # a signal waits until the directory and its lock are made
            run_dir, lock = open_run_dir(out)
    except (BranchFromError, DeviceUnavailable, DatasetUnavailable, ModelError, RunDirError) as exc:
        say_error(console, f"bstui: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:  # main says so in one line; the directory holds nothing yet
        if lock is not None:
            lock.release()
        raise
    try:
        with (
            signals.deferred()
        ):  # config.toml, the base run's events and the points, before a signal is taken
            write_config(run_dir, cfg)
            start = plan(source, prepared, run_dir)
            try:
                start.write(run_dir, sorted(cfg.branch.epochs))
            except OSError as exc:
                raise RunDirError(f"cannot write into {run_dir}: {exc.strerror or exc}") from exc
        console.print(
            f"branching from {source.run_dir} (base run {source.base.run_id}, points after epochs "
            f"{', '.join(map(str, sorted(cfg.branch.epochs)))}) into {run_dir}",
            markup=False,
            soft_wrap=True,
        )
        code = sweep_into(
            run_dir,
            prepared,
            console,
            quiet=args.quiet,
            resume=start,
            signals=signals,
            trainer=run_branching,
            closing=False,  # print_curve says it in full
        )
        if code == EXIT_OK:
            print_curve(run_dir)
        return code
    except RunDirError as exc:
        say_error(console, f"bstui: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt as exc:  # after the directory was made, before the branches began
        return interrupted_before_training(console, run_dir, exc)
    finally:
        lock.release()


def print_curve(run_dir: Path) -> None:
    """The measurement's answer on stdout: the report's section on B_crit over training (trainer.report.branch)."""
    from trainer.report.branch import branch_result, section
    from trainer.runlog import UnreadableFile, read_events

    try:
        events = read_events(run_dir).events
    except (OSError, UnreadableFile):
        return
    result = branch_result(events)
    started = next((e for e in events if e.get("type") == "sweep_started"), {})
    if result is not None:
        print("\n".join(section(result, str(started.get("device") or "?"))).strip())
