"""The keys that control a live sweep: split-backward, chunks, pause, restart, detach and quit's stop.

A mixin of the app (tui.app.BstuiApp), kept apart so the app stays about drawing and
events: these methods talk to the trainer through the feed and start or replace feeds.
Stopping a trainer can take a second or two, so restart and quit do it in a thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work
from textual.widgets import Switch

from tui.feeds.base import Feed
from tui.feeds.detach import ExitAction
from tui.feeds.live import LiveFeed
from tui.state.split_choice import split_outcome, step_chunks

if TYPE_CHECKING:
    # Typed as a Textual App (notify, screen, exit ...); the attributes it shares with the app (feed,
    # state, live ...) are set by tui.app.BstuiApp, which this module must not import (no cycle).
    from textual.app import App as _Base
else:
    _Base = object


class SweepControls(_Base):
    """s, + -, p, r and d (the app's own bindings name these actions)."""

    def _live_only(self, what: str) -> bool:
        if self.live and self.feed_end is None:
            return True
        if self.feed is not None and getattr(self.feed, "controllable", False):
            return True  # attached to a live trainer: its run directory's control file reaches it
        why = (
            "a recorded run directory cannot be controlled" if not self.live else "the trainer is not running"
        )
        self.notify(f"{what}: {why}.", severity="warning")
        return False

    def action_split(self) -> None:
        if self._live_only("split-backward"):
            if self.screen.query("#split"):
                self.screen.query_one("#split", Switch).toggle()
            else:
                self.notify(
                    "split-backward: the switch is on the main view (c goes back to it).", severity="warning"
                )

    def _batch_sizes_left(self) -> list[int]:
        """The batch sizes still to train (all of the sweep's once none is left)."""
        runs = self.state.run_list()
        left = [r.batch_size for r in runs if r.status in ("waiting", "running")]
        return left or [r.batch_size for r in runs]

    def on_switch_changed(self, event: Switch.Changed) -> None:
        """The split Switch (key s, or a click): tell the trainer, and say what the switch does to each
        batch size. A handler by name, not @on: Textual collects @on handlers from message-pump classes
        only, and this is a mixin."""
        if event.switch.id != "split":
            return
        if self.feed is None or not (self.live or getattr(self.feed, "controllable", False)):
            return
        if event.value:
            message, partial, none = split_outcome(self.chunks, self._batch_sizes_left())
            if none:
                with event.switch.prevent(Switch.Changed):
                    event.switch.value = False
                self.notify(message, title="split-backward", severity="warning")
                return
            self.notify(message, title="split-backward", severity="warning" if partial else "information")
        self._send({"cmd": "split", "enabled": event.value, "chunks": self.chunks})

    def action_chunks(self, delta: int) -> None:
        """+/-: the next k that divides a batch size still to train; at either end, say so."""
        k = step_chunks(self.chunks, delta, self._batch_sizes_left())
        if k == self.chunks:
            self.notify(
                f"k {k} is the {'largest' if delta > 0 else 'smallest'} chunk count that divides a batch "
                "size of this sweep.",
                title="split-backward",
                timeout=3,
            )
        self.chunks = k

    def action_pause(self) -> None:
        if self._live_only("pause") and self.feed is not None and not self.state.finished:
            self.pause_requested = not self.pause_requested
            self._send({"cmd": "pause" if self.pause_requested else "resume"})

    def _send(self, message: dict) -> None:
        """A control to the trainer; a refusal (say, another user's run directory) is said at once."""
        if self.feed is None:
            return
        self.feed.send(message)
        error = getattr(self.feed, "send_error", "")
        if error:
            self.notify(error, title="control refused", severity="error")
        elif not getattr(self.feed, "live", False) and self.state.controls_problem:
            self.notify(
                f"the trainer may not hear this: its controls stopped working "
                f"({self.state.controls_problem})",
                title="control refused",
                severity="error",
            )

    def action_restart(self) -> None:
        """Live: stop this sweep (off the UI thread) and start a fresh one. Replay: read again."""
        if self._stopping:
            return  # a restart (or quit) is already under way
        old = self.feed
        self.attempt += 1
        if old is not None and old.live:
            self._stopping = True
            self.redraw()
            self._restart_worker(old)
        else:
            if old is not None:
                old.close()
            self._start_feed()

    @work(thread=True, group="restart")
    def _restart_worker(self, old: Feed) -> None:
        old.stop_trainer() if isinstance(old, LiveFeed) else old.close()
        self.call_from_thread(self._after_restart)

    def _after_restart(self) -> None:
        self._stopping = False
        self._start_feed()
        self.redraw(force=True)

    def action_detach(self) -> None:
        """d: quit the viewer and leave the sweep training (nothing is retrained: the same trainer
        goes on headless); bstui --attach comes back to it."""
        feed = self.feed
        if feed is None or self._stopping:
            return
        if feed.live:
            if self.feed_end is not None or self.state.finished or not self.state.run_dir:
                why = (
                    "the sweep has not started yet"
                    if not self.state.run_dir
                    else "the trainer is not running"
                )
                self.notify(f"detach: {why}.", severity="warning")
                return
            feed.leave()
            self.exit_action = ExitAction.LEFT
            self.exit(0)
        elif feed.follows_trainer:
            self.exit_action = ExitAction.LEFT
            self.exit(0)
        else:
            self.notify(
                "detach: a recorded run directory has no trainer to leave running.", severity="warning"
            )

    def _stop_on_quit(self) -> ExitAction:
        """q: stop the sweep. The app's own trainer is asked and left to finish its clean stop alone
        (one that has already ended is tidied up). An attached trainer is asked
        through its control file. A finished or recorded sweep has nothing to stop."""
        feed = self.feed
        if isinstance(feed, LiveFeed):
            if self.feed_end is not None:
                return ExitAction.NONE
            return ExitAction.STOPPED if feed.stop_sweep() else ExitAction.STOPPING
        if feed is not None and getattr(feed, "controllable", False) and not self.state.finished:
            feed.send({"cmd": "stop"})
            return ExitAction.REFUSED if getattr(feed, "send_error", "") else ExitAction.STOPPING
        return ExitAction.NONE
