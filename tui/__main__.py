"""`bstui [CONFIG] [--set KEY=VALUE]... [--out DIR]`, `bstui --replay DIR`, `bstui --detach [CONFIG] ...`
and `bstui --attach [DIR]` (also `python -m tui`).

Everything a user can get wrong (a bad experiments.toml, a run directory that is
not one) is reported here, with exit code 2, before any window opens.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from trainer.runlog.commands import app_command, trainer_command

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    from tui.keys import keys_help  # pure data: --help stays instant

    p = argparse.ArgumentParser(
        prog="bstui",
        description="Watch batch sizes train side by side: a live sweep, or a recorded run directory.",
        epilog="keys in the app:\n" + keys_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    p.add_argument(
        "config",
        nargs="?",
        default=None,
        metavar="CONFIG",
        help="experiments.toml to run (default: ./experiments.toml)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key, VALUE in TOML (e.g. sweep.batch_sizes=[6,60]); repeatable",
    )
    p.add_argument(
        "--out", default=None, metavar="DIR", help="the run directory to write (must not hold a run)"
    )
    p.add_argument(
        "--replay",
        default=None,
        metavar="DIR",
        help="show a run directory instead of training (followed live while a trainer writes it)",
    )
    p.add_argument(
        "--no-follow", action="store_true", help="with --replay: read the file once, do not follow it"
    )
    p.add_argument(
        "--detach",
        action="store_true",
        help="start the trainer in its own session (it survives the terminal and the app), "
        "then watch its run directory; q leaves it running",
    )
    p.add_argument(
        "--attach",
        nargs="?",
        const="",
        default=None,
        metavar="DIR",
        help="watch a run directory live and say whether its trainer still runs "
        "(default: under the config's output.dir, the newest run a trainer still writes, else the newest)",
    )
    p.add_argument(
        "--bell",
        action="store_true",
        help="ring the terminal bell when a run reaches the target accuracy or diverges",
    )
    return p


def version() -> str:
    """The installed bstui's version (from its package metadata; the source tree's pyproject otherwise)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("bstui")
    except PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def fail(message: str) -> None:
    print(f"bstui: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tui.assemble import make_app  # after argument errors: --help stays instant

    modes = [
        name
        for name, on in (
            ("--replay", args.replay is not None),
            ("--detach", args.detach),
            ("--attach", args.attach is not None),
        )
        if on
    ]
    if len(modes) > 1:
        fail(f"{' and '.join(modes)} cannot be combined; pick one")
    if args.attach is not None:
        return attach(args)
    if args.detach:
        return detach(args)
    if args.replay is not None:
        if args.config or args.overrides or args.out:
            fail("--replay shows a recorded run directory; CONFIG, --set and --out do not apply to it")
        from trainer.runlog.shards import is_sharded
        from tui.feeds.event_reader import ReplayError, events_path

        try:
            if not is_sharded(
                Path(args.replay).expanduser()
            ):  # a sharded sweep's DIR holds shards/, no events
                events_path(args.replay)
        except ReplayError as exc:
            fail(str(exc))
        app = make_app(replay=args.replay, follow=not args.no_follow, bell=args.bell)
    else:
        from trainer.config import load_or_exit

        cfg = load_or_exit(args.config, args.overrides)  # prints the trainer's message, exits 2
        from trainer.runlog import EVENTS

        if args.out is not None and (Path(args.out) / EVENTS).exists():
            fail(
                f"--out {args.out!r} already holds a run ({EVENTS}); choose a new directory, "
                f"or watch it with --replay {args.out}"
            )
        label = cfg.source or "(default config)"
        app = make_app(
            config_path=args.config,
            overrides=args.overrides,
            out_dir=args.out,
            config_label=label,
            split_on=bool(cfg.split_backward.enabled),
            chunks=int(cfg.split_backward.chunks),
            bell=args.bell,
        )
    code = run_app(app)
    from tui.feeds.detach import exit_hint, trainer_state

    if args.replay is None and app.state.run_dir:  # the app's own trainer: stopped, stopping, or training on
        print(
            exit_hint(
                app.state.run_dir, trainer_state(Path(app.state.run_dir)), app.exit_action, app.state.finished
            )
        )
    return code


def run_app(app) -> int:  # noqa: ANN001 - BstuiApp, imported lazily
    try:
        code = app.run()
    finally:
        if app.feed is not None:
            app.feed.close()  # whatever ended the app: a trainer that writes a run trains on without it
    return int(code or 0)


def detach(args: argparse.Namespace) -> int:
    """--detach: check the config, start the headless trainer in its own session, then follow it."""
    from trainer.config import load_or_exit
    from trainer.runlog import default_run_dir, holds_run, lock_status
    from tui.assemble import make_app
    from tui.feeds.detach import exit_hint, run_command, start_detached, trainer_state
    from tui.feeds.replay import ReplayFeed

    if args.no_follow:
        fail("--no-follow applies to --replay only")
    cfg = load_or_exit(args.config, args.overrides)  # prints the trainer's message, exits 2
    # The trainer would pick the same default, but the app must know where to look.
    run_dir = Path(args.out).expanduser() if args.out is not None else default_run_dir(cfg)
    run_dir = run_dir.absolute()
    if run_dir.exists() and not run_dir.is_dir():
        fail(f"--out {str(run_dir)!r} exists and is not a directory; choose another --out")
    if run_dir.is_dir() and holds_run(run_dir):
        fail(
            f"{str(run_dir)!r} already holds a run; choose a new --out, or watch it with {app_command('--attach', run_dir)}"
        )
    if lock_status(run_dir)["state"] == "live":
        fail(
            f"a trainer is already writing {str(run_dir)!r}; watch it with {app_command('--attach', run_dir)}"
        )
    try:
        trainer = start_detached(run_command(args.config, args.overrides, run_dir), run_dir)
    except OSError as exc:
        fail(f"cannot start the trainer in {str(run_dir)!r}: {exc.strerror or exc}; choose a writable --out")
    print(
        f"bstui: trainer started (pid {trainer.pid}) in its own session, writing {run_dir}", file=sys.stderr
    )
    app = make_app(
        feed_factory=lambda attempt: ReplayFeed(str(run_dir), detached=trainer),
        config_label=cfg.source or "(default config)",
        bell=args.bell,
    )
    code = run_app(app)
    print(exit_hint(run_dir, trainer_state(run_dir, trainer), app.exit_action, app.state.finished))
    return code


def attach(args: argparse.Namespace) -> int:
    """--attach [DIR]: follow a run directory live, showing whether its trainer still runs."""
    from trainer.runlog import EVENTS, lock_status
    from trainer.runlog.shards import is_sharded
    from tui.assemble import make_app, replay_feed_factory
    from tui.feeds.detach import AttachError, exit_hint, is_run_dir, newest_run_dir
    from tui.feeds.event_reader import ReplayError, events_path
    from tui.feeds.replay import ReplayFeed

    if args.out is not None or args.no_follow:
        fail("--attach follows an existing run directory; --out and --no-follow do not apply to it")
    if args.attach:
        if args.config or args.overrides:
            fail(
                f"{app_command('--attach')} DIR reads DIR; CONFIG and --set only choose output.dir when DIR is left out"
            )
        run_dir = Path(args.attach).expanduser()
        if not run_dir.exists():
            fail(
                f"run directory {str(run_dir)!r} does not exist; pass a directory made by {app_command('--detach')} "
                f"or {trainer_command('run')}"
            )
        if not is_run_dir(run_dir) and not is_sharded(run_dir):
            fail(
                f"{str(run_dir)!r} is not a run directory (no events.jsonl, config.toml or trainer.lock in it)"
            )
    else:
        from trainer.config import load_or_exit

        cfg = load_or_exit(args.config, args.overrides)  # output.dir is where the runs are
        try:
            run_dir = newest_run_dir(cfg.output.dir)
        except AttachError as exc:
            fail(str(exc))
        print(f"bstui: attaching to {run_dir}", file=sys.stderr)
    if os.path.lexists(run_dir / EVENTS):  # it may not exist yet (a trainer still starting)
        try:
            events_path(run_dir)  # a FIFO or /dev/zero in its place is refused here, with the cause
        except ReplayError as exc:
            fail(str(exc))
    if is_sharded(run_dir):  # the shards of one sweep (trainer.runlog.shards), followed as that sweep
        app = make_app(feed_factory=replay_feed_factory(str(run_dir), watch_trainer=True), bell=args.bell)
        code = run_app(app)
        print(
            f"bstui: re-attach with: {app_command('--attach', run_dir)}; the whole sweep's report: "
            f"{trainer_command('report', run_dir)}"
        )
        return code
    app = make_app(feed_factory=lambda attempt: ReplayFeed(str(run_dir), watch_trainer=True), bell=args.bell)
    code = run_app(app)
    print(exit_hint(run_dir, lock_status(run_dir), app.exit_action, app.state.finished))
    return code


def entry() -> None:
    """The `bstui` command: main(), then the process ends at once. Everything is written and printed by
    then (the trainer's controls went out synchronously); the interpreter's teardown (joining Textual's
    idle worker threads, multiprocessing's finalizers) only kept the terminal waiting."""
    from multiprocessing import util

    from trainer.process.exit import quick_exit

    code = main()
    # multiprocessing's own exit step (its atexit function): the queues' semaphores are released, so its
    # resource tracker has nothing to warn about on the user's terminal; a released trainer is not waited for.
    util._exit_function()  # noqa: SLF001
    quick_exit(code)


if __name__ == "__main__":
    entry()
