"""The shards of a sweep (DIR/shards/I, trainer.runlog.shards) followed as one sweep: `bstui --replay DIR` and
`bstui --attach DIR` on a sharded sweep's directory.

Each shard is read by its own ReplayFeed (the tolerant, growing-file reader; with --attach it also
watches that shard's trainer.lock), and trainer.runlog.shards.ShardMerger turns their events into one sweep's:
one sweep_started naming every run, each shard's events on one clock, one sweep_finished once every
shard has finished. Shards that appear later (a job array starting node by node) are picked up as they
come. Controls go to every live shard through its own control file. A shard rewritten by `resume` makes
the whole view start again from the top (FEED_RESET), as for one run directory.
"""

from __future__ import annotations

import time
from typing import Any

from trainer.runlog import EVENTS, Event, lock_status
from trainer.runlog.shards import ShardInfo, ShardMerger, shard_dirs, shard_problems, sort_by_time, sweep_plan
from tui.feeds.base import FEED_RESET, FeedEnd, FeedReset
from tui.feeds.replay import ReplayFeed
from tui.state.status import Severity, StatusLine

DISCOVER_S = 1.0  # how often DIR/shards/ is looked at for shards that appeared


class ShardedFeed:
    """A sharded sweep's directory as one feed (the Feed protocol of tui.feeds.base)."""

    live = False

    def __init__(
        self, root: str, poll_s: float = 0.25, follow: bool = True, watch_trainer: bool = False
    ) -> None:
        self.run_dir = str(root)
        self.poll_s = poll_s
        self.follow = follow
        self.follows_trainer = watch_trainer
        self.plan: ShardInfo | None = None
        self.feeds: dict[int, ReplayFeed] = {}
        self.merger: ShardMerger | None = None
        self.ended_status: dict[int, str | None] = {}
        self.watch: StatusLine | None = None
        self.send_error = ""
        self._closed = False
        self._looked = -DISCOVER_S
        self._locked: set[int] = set()

    # -- the protocol --------------------------------------------------------------------------------

    @property
    def bad_lines(self) -> int:
        return sum(f.bad_lines for f in self.feeds.values())

    @property
    def trainer_pid(self) -> int | None:
        return next((f.trainer_pid for f in self.feeds.values() if f.trainer_pid is not None), None)

    def start(self) -> None:
        self._discover(force=True)

    def read(self, timeout: float) -> list[Event | FeedReset]:
        self._discover()
        batches: dict[int, list[Event]] = {}
        reset = False
        for index, feed in sorted(self.feeds.items()):
            got = feed.read(0)
            if got and got[0] is FEED_RESET:
                reset = True
            batches[index] = [e for e in got if isinstance(e, dict)]
        out: list[Event | FeedReset] = []
        if reset:  # a shard was rewritten (resumed): every shard is read again from its start
            self._rebuild()
            out.append(FEED_RESET)
            batches = {
                i: [e for e in f.read(0) if isinstance(e, dict)] for i, f in sorted(self.feeds.items())
            }
        out.extend(self._merge(batches))
        self._describe()
        if len(out) == int(reset) and timeout > 0:
            time.sleep(min(timeout, self.poll_s))
        return out

    def ended(self) -> FeedEnd | None:
        if self._closed:
            return FeedEnd("closed")
        if self.plan is None or not all(f.reader.at_end for f in self.feeds.values()):
            return None
        if self.follows_trainer and any(
            f.trainer.get("state") in ("live", "starting") for f in self.feeds.values()
        ):
            return None
        if self.merger is not None and self.merger.all_finished:
            return FeedEnd("finished")
        if not self.follow:
            return FeedEnd(
                "finished", "the sweep did not finish in this run directory (not every shard finished)"
            )
        return None

    @property
    def controllable(self) -> bool:
        return any(f.controllable for f in self.feeds.values())

    def send(self, message: dict[str, Any]) -> None:
        """To every live shard, through its own control file; `send_error` names the shards it did not reach."""
        errors = []
        for index, feed in sorted(self.feeds.items()):
            if feed.controllable:
                feed.send(message)
                if feed.send_error:
                    errors.append(f"shard {index}: {feed.send_error}")
        self.send_error = "; ".join(errors)

    def close(self) -> None:
        self._closed = True
        for feed in self.feeds.values():
            feed.close()

    # -- inside --------------------------------------------------------------------------------------

    def _discover(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._looked < DISCOVER_S:
            return
        self._looked = now
        if self.plan is None:
            self.plan = sweep_plan(self.run_dir)
            if self.plan is None:
                return
            from trainer.analysis.scaling import analyse  # numpy: once there is a sharded sweep to show

            self.merger = ShardMerger(self.plan, self.run_dir, analyse)
        dirs = shard_dirs(self.run_dir)
        if not self.follows_trainer:
            self._locked = {i for i, path in dirs.items() if lock_status(path).get("state") == "live"}
        for index, path in dirs.items():
            if index in self.feeds or index >= self.plan.count:
                continue
            if not self.follows_trainer and not (path / EVENTS).is_file():
                continue  # a plain replay reads event files that are there
            feed = ReplayFeed(
                str(path), poll_s=self.poll_s, follow=self.follow, watch_trainer=self.follows_trainer
            )
            feed.start()
            self.feeds[index] = feed

    def _rebuild(self) -> None:
        for feed in self.feeds.values():
            feed.close()
        self.feeds, self.ended_status = {}, {}
        self.plan = self.merger = None
        self._discover(force=True)

    def _merge(self, batches: dict[int, list[Event]]) -> list[Event]:
        if self.merger is None:
            return []
        self.merger.set_base(e for evs in batches.values() for e in evs if e.get("type") == "sweep_started")
        merged: list[Event] = []
        for index, events in sorted(batches.items()):
            if events:
                self.ended_status.setdefault(index, None)
            for e in events:
                if e.get("type") == "sweep_finished":
                    self.ended_status[index] = str(e.get("status") or "done")
                elif e.get("type") == "sweep_resumed":
                    self.ended_status[index] = None
            merged.extend(self.merger.feed(index, events))
        return sort_by_time(merged)

    def _describe(self) -> None:
        """The status line: how many shards train, and the first shard that needs the user, with its command."""
        if self.plan is None:
            self.watch = StatusLine(
                f"no shard of {self.run_dir} has started yet (no shard.json under shards/)", Severity.MUTED
            )
            return
        live = self._live
        problems = shard_problems(self.run_dir, self.plan, self.ended_status, live)
        head = f"{self.plan.count} shards"
        if self.follows_trainer:
            head += f" · {len(live)} training" + (" · p/s/+/- reach every live shard" if live else "")
        if problems:
            more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
            self.watch = StatusLine(f"{head} · {problems[0]}{more}", Severity.WARNING)
        elif self.merger is not None and self.merger.all_finished and not live:
            self.watch = None
        else:
            self.watch = StatusLine(head, Severity.INFO)

    @property
    def _live(self) -> set[int]:
        """The shards a trainer writes now (attach: each feed's view of its lock; replay: the locks, looked
        at with the discovery, about once a second)."""
        if self.follows_trainer:
            return {i for i, f in self.feeds.items() if f.trainer.get("state") in ("live", "starting")}
        return self._locked
