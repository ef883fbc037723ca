"""Build the app: the feeds for a live sweep or a replay, and `make_app` (the command line,
the tests and the benchmark all use it)."""

from __future__ import annotations

from pathlib import Path

from trainer.runlog.shards import is_sharded
from tui.app import BstuiApp
from tui.feeds.base import Feed
from tui.feeds.bridge import TrainerBridge
from tui.feeds.live import LiveFeed
from tui.feeds.replay import ReplayFeed
from tui.feeds.sharded import ShardedFeed
from tui.feeds.system import SystemSource
from tui.pump import FeedFactory


def live_feed_factory(config_path: str | None, overrides: list[str], out_dir: str | None) -> FeedFactory:
    """Feeds that start the trainer; a restart writes a new run directory."""

    def make(attempt: int) -> Feed:
        out = out_dir
        if out is not None and attempt > 0:
            out = next_free_dir(out)
        return LiveFeed(TrainerBridge(config_path, overrides, out), run_dir=out or "")

    return make


def replay_feed_factory(run_dir: str, follow: bool = True, watch_trainer: bool = False) -> FeedFactory:
    """Feeds of a run directory, or of a sharded sweep's directory (its shards as one sweep)."""
    if is_sharded(run_dir):
        return lambda attempt: ShardedFeed(run_dir, follow=follow, watch_trainer=watch_trainer)
    return lambda attempt: ReplayFeed(run_dir, follow=follow, watch_trainer=watch_trainer)


def next_free_dir(path: str) -> str:
    """path-2, path-3, ...: the first that does not exist (a restart with --out)."""
    n = 2
    while Path(f"{path}-{n}").exists():
        n += 1
    return f"{path}-{n}"


def make_app(
    *,
    replay: str | None = None,
    config_path: str | None = None,
    overrides: list[str] | None = None,
    out_dir: str | None = None,
    config_label: str = "",
    split_on: bool = False,
    chunks: int = 4,
    feed_factory: FeedFactory | None = None,
    follow: bool = True,
    system: SystemSource | None = None,
    bell: bool = False,
) -> BstuiApp:
    """Build the app (the command line and the tests both use this).

    `replay`: show a run directory; else a live trainer on config_path + overrides.
    `feed_factory` replaces either (tests pass fakes); `system` the source of the system
    pane's readings (tests pass a fake NVML and fixed host figures).
    """
    if feed_factory is None:
        if replay is not None:
            feed_factory = replay_feed_factory(replay, follow=follow)
        else:
            feed_factory = live_feed_factory(config_path, list(overrides or []), out_dir)
    return BstuiApp(
        feed_factory, config_label=config_label, split_on=split_on, chunks=chunks, system=system, bell=bell
    )
