"""`python -m trainer run [CONFIG] [--set KEY=VALUE]... [--out DIR] [--device ...] [--force]`
`python -m trainer report DIR`

Exit codes (DESIGN.md): 0 the sweep finished (diverged/oom runs are results);
2 bad configuration or arguments, nothing trained; 130 interrupted, run directory
still valid; 1 a bug (a run failed with an unexpected error, see errors.log).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from trainer.config import Config, ConfigError, load_config

EXIT_OK, EXIT_BUG, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


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
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help='override a config key, VALUE in TOML (e.g. --set sweep.batch_sizes=[6,60])')
    run.add_argument("--out", default=None, metavar="DIR", help="the run directory itself (created)")
    run.add_argument("--force", action="store_true", help="reuse --out even if it already holds a run")
    run.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"],
                     help="overrides sweep.device")
    run.add_argument("--quiet", action="store_true", help="no progress bars; still prints the summary")
    report = sub.add_parser("report", help="tables of a run directory: best lr per batch size, B_crit, oscillation")
    report.add_argument("run_dir", metavar="DIR", help="a run directory")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        return cmd_run(args)
    if args.command == "report":
        return cmd_report(args)
    return EXIT_USAGE


def cmd_report(args: argparse.Namespace) -> int:
    """Print the report of a run directory (Markdown) and write it as report.md there."""
    from trainer.report import ReportError, write_report

    try:
        text, path = write_report(Path(args.run_dir))
    except ReportError as exc:
        print(f"bstui: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"bstui: cannot write the report into {args.run_dir}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    print(text)
    print(f"written to {path}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.device:
        overrides.append(f'sweep.device="{args.device}"')
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"bstui: config error:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    return train(cfg, out=args.out, force=args.force, quiet=args.quiet)


def train(cfg: Config, out: str | None = None, force: bool = False, quiet: bool = False) -> int:
    """Run the sweep of `cfg` into a run directory, with console progress. Returns the exit code."""
    # torch is imported here, after the config is known to be good: bad input fails fast.
    from rich.console import Console

    from trainer.console import ConsoleSink, summary_table
    from trainer.data import DatasetUnavailable, load_dataset
    from trainer.events import Emitter
    from trainer.store import RunDirError, RunDirSink, create_run_dir, default_run_dir, write_config
    from trainer.sweep import DeviceUnavailable, device_name, preflight, run_sweep

    console = Console(stderr=True)
    # Piped or captured output gets room for the whole table instead of rich's 80 columns.
    out_console = Console(width=None if sys.stdout.isatty() else 160)
    try:
        device = preflight(cfg)
        dataset = load_dataset(cfg.data, seed=cfg.sweep.seed, log=lambda m: console.print(f"[yellow]{m}[/]"))
        run_dir = create_run_dir(Path(out) if out else default_run_dir(cfg), force=force)
    except (DeviceUnavailable, DatasetUnavailable, RunDirError) as exc:
        console.print(f"[red]bstui: {exc}[/]")
        return EXIT_USAGE
    write_config(run_dir, cfg)
    sinks: list = [RunDirSink(run_dir)]
    progress = None if quiet else ConsoleSink(console)
    if progress is not None:
        sinks.append(progress)
    emitter = Emitter(sinks)
    code = EXIT_OK
    result = None
    try:
        result = run_sweep(cfg, emitter, device=device, dataset=dataset, run_dir=str(run_dir),
                           log=lambda m: console.print(m))
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    finally:
        emitter.close()
    from trainer.store import read_summary

    rows = read_summary(run_dir) if (run_dir / "summary.csv").exists() else []
    out_console.print(summary_table(rows, device=device_name(device)))
    out_console.print(f"run directory: {run_dir}", soft_wrap=True)
    if code == EXIT_INTERRUPTED:
        console.print("[yellow]interrupted: the run directory is valid up to the interruption[/]")
        return code
    if result is not None and result.any_failed:
        console.print(f"[red]a run failed with an unexpected error; see {run_dir / 'errors.log'}[/]")
        return EXIT_BUG
    return code
