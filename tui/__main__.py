"""`bstui [CONFIG] [--set KEY=VALUE]... [--out DIR]` and `bstui --replay DIR` (also `python -m tui`).

Everything a user can get wrong (a bad experiments.toml, a run directory that is
not one) is reported here, with exit code 2, before any window opens.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bstui",
        description="Watch batch sizes train side by side: a live sweep, or a recorded run directory.",
        epilog="Keys in the app: x l m o (view), s + - (split-backward), p pause, r restart, ? help, q quit.",
    )
    p.add_argument("config", nargs="?", default=None, metavar="CONFIG",
                   help="experiments.toml to run (default: ./experiments.toml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key, VALUE in TOML (e.g. sweep.batch_sizes=[6,60]); repeatable")
    p.add_argument("--out", default=None, metavar="DIR", help="the run directory to write (must not hold a run)")
    p.add_argument("--replay", default=None, metavar="DIR",
                   help="show a run directory instead of training (followed live while a trainer writes it)")
    p.add_argument("--no-follow", action="store_true", help="with --replay: read the file once, do not follow it")
    return p


def fail(message: str) -> None:
    print(f"bstui: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tui.app import make_app  # after argument errors: --help stays instant

    if args.replay is not None:
        if args.config or args.overrides or args.out:
            fail("--replay shows a recorded run directory; CONFIG, --set and --out do not apply to it")
        from tui.replay import ReplayError, events_path

        try:
            events_path(args.replay)
        except ReplayError as exc:
            fail(str(exc))
        app = make_app(replay=args.replay, follow=not args.no_follow)
    else:
        from trainer.config import load_or_exit

        cfg = load_or_exit(args.config, args.overrides)  # prints the trainer's message, exits 2
        if args.out is not None and (Path(args.out) / "events.jsonl").exists():
            fail(f"--out {args.out!r} already holds a run (events.jsonl); choose a new directory, "
                 f"or watch it with --replay {args.out}")
        label = cfg.source or "(default config)"
        app = make_app(
            config_path=args.config,
            overrides=args.overrides,
            out_dir=args.out,
            config_label=label,
            split_on=bool(cfg.split_backward.enabled),
            chunks=int(cfg.split_backward.chunks),
        )
    try:
        code = app.run()
    finally:
        if app.feed is not None:
            app.feed.close()  # whatever ended the app, leave no trainer behind
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
