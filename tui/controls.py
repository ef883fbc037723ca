"""The keys that control a live sweep: split-backward, chunks, pause, restart, detach and quit's stop.

An object the app composes (tui.app.BstuiApp holds one as `controls`; its key actions call these):
it keeps what the user asked of the trainer (k, pause, a stop under way, what quitting did) and
talks to the trainer through the feed pump's feed. Stopping a trainer can take a second or two, so
restart does it in a thread.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from textual.widgets import Switch

from tui.feeds.base import Feed
from tui.feeds.detach import ExitAction
from tui.feeds.live import LiveFeed
from tui.pump import FeedPump
from tui.state.split_choice import split_outcome, step_chunks
from tui.state.sweep import SweepState


class ControlsHost(Protocol):
    """What the controls need of the app: its split switch, a redraw, a new feed, and its exit."""

    def split_switch(self, shown_only: bool = True) -> Switch | None: ...

    def redraw(self, force: bool = False) -> None: ...

    def start_feed(self) -> None: ...

    def exit(self, result: Any = None) -> None: ...

    def notify(self, message: str, **options: Any) -> None: ...

    def run_worker(self, work: Callable[[], None], **options: Any) -> Any: ...

    def call_from_thread(self, callback: Callable[[], Any]) -> Any: ...


class SweepControls:
    """s, + -, p, r, d and quit's stop (the app's bindings name these actions and call these methods)."""

    def __init__(self, host: ControlsHost, pump: FeedPump, split_on: bool = False, chunks: int = 4) -> None:
        self.host = host
        self.pump = pump
        #: Split-backward chunks k for the next switch.
        self.chunks = max(2, chunks)
        #: The user asked the trainer to pause.
        self.pause_requested = False
        #: A restart or quit is stopping the trainer.
        self.stopping = False
        #: What quitting did to the trainer, for the words printed on exit (tui.feeds.detach.ExitAction).
        self.exit_action = ExitAction.NONE
        self._split_initial = split_on
        #: The split switch as last taken from the run directory (show_split).
        self._split_shown: tuple[bool, int] | None = None

    def _set_chunks(self, k: int) -> None:
        if k != self.chunks:
            self.chunks = k
            self.host.redraw()

    def reset(self, feed: Feed) -> None:
        """A new feed: nothing asked of its trainer yet; the switch as the config says, usable when a
        trainer can hear it."""
        self.pause_requested = False
        self._split_shown = None
        switch = self.host.split_switch(shown_only=False)
        if switch is None:
            return
        with switch.prevent(Switch.Changed):  # a fresh trainer starts as its config says
            switch.value = self._split_initial
        switch.disabled = not (feed.live or getattr(feed, "follows_trainer", False))

    def show_split(self, state: SweepState) -> None:
        """The switch and k as the trainer recorded them (an attached viewer starts from the run directory,
        not from a config), set when what the run directory says changes: a key press waits for its answer."""
        shown = state.split_switch()
        if shown == self._split_shown:
            return
        self._split_shown = shown
        on, k = shown
        switch = self.host.split_switch()
        if switch is not None and switch.value != on:
            with switch.prevent(Switch.Changed):
                switch.value = on
        if k > 1:
            self._set_chunks(k)

    def _live_only(self, what: str) -> bool:
        pump = self.pump
        if pump.live and pump.end is None:
            return True
        if pump.feed is not None and getattr(pump.feed, "controllable", False):
            return True  # attached to a live trainer: its run directory's control file reaches it
        why = (
            "a recorded run directory cannot be controlled" if not pump.live else "the trainer is not running"
        )
        self.host.notify(f"{what}: {why}.", severity="warning")
        return False

    def split(self) -> None:
        """s: flip the split switch (its change tells the trainer)."""
        if self._live_only("split-backward"):
            switch = self.host.split_switch()
            if switch is not None:
                switch.toggle()
            else:
                self.host.notify(
                    "split-backward: the switch is on the main view (c goes back to it).", severity="warning"
                )

    def _batch_sizes_left(self) -> list[int]:
        """The batch sizes still to train (all of the sweep's once none is left)."""
        runs = self.pump.state.run_list()
        left = [r.batch_size for r in runs if r.status in ("waiting", "running")]
        return left or [r.batch_size for r in runs]

    def switch_changed(self, event: Switch.Changed) -> None:
        """The split Switch (key s, or a click): tell the trainer, and say what the switch does to each
        batch size."""
        if event.switch.id != "split":
            return
        feed = self.pump.feed
        if feed is None or not (self.pump.live or getattr(feed, "controllable", False)):
            return
        if event.value:
            message, partial, none = split_outcome(self.chunks, self._batch_sizes_left())
            if none:
                with event.switch.prevent(Switch.Changed):
                    event.switch.value = False
                self.host.notify(message, title="split-backward", severity="warning")
                return
            self.host.notify(
                message, title="split-backward", severity="warning" if partial else "information"
            )
        self._send({"cmd": "split", "enabled": event.value, "chunks": self.chunks})

    def step_chunks(self, delta: int) -> None:
        """+/-: the next k that divides a batch size still to train; at either end, say so."""
        k = step_chunks(self.chunks, delta, self._batch_sizes_left())
        if k == self.chunks:
            self.host.notify(
                f"k {k} is the {'largest' if delta > 0 else 'smallest'} chunk count that divides a batch "
                "size of this sweep.",
                title="split-backward",
                timeout=3,
            )
        self._set_chunks(k)

    def pause(self) -> None:
        """p: pause the trainer, or let it go on."""
        if self._live_only("pause") and self.pump.feed is not None and not self.pump.state.finished:
            self.pause_requested = not self.pause_requested
            self._send({"cmd": "pause" if self.pause_requested else "resume"})

    def _send(self, message: dict) -> None:
        """A control to the trainer; a refusal (say, another user's run directory) is said at once."""
        feed = self.pump.feed
        if feed is None:
            return
        feed.send(message)
        error = getattr(feed, "send_error", "")
        if error:
            self.host.notify(error, title="control refused", severity="error")
        elif not getattr(feed, "live", False) and self.pump.state.controls_problem:
            self.host.notify(
                f"the trainer may not hear this: its controls stopped working "
                f"({self.pump.state.controls_problem})",
                title="control refused",
                severity="error",
            )

    def restart(self) -> None:
        """r. Live: stop this sweep (off the UI thread) and start a fresh one. Replay: read again."""
        if self.stopping:
            return  # a restart (or quit) is already under way
        old = self.pump.feed
        self.pump.attempt += 1
        if old is not None and old.live:
            self.stopping = True
            self.host.redraw()
            self.host.run_worker(lambda: self._stop_then_restart(old), thread=True, group="restart")
        else:
            if old is not None:
                old.close()
            self.host.start_feed()

    def _stop_then_restart(self, old: Feed) -> None:
        """In a thread: the old trainer stopped (or its feed closed), then a new feed on the UI thread."""
        old.stop_trainer() if isinstance(old, LiveFeed) else old.close()
        self.host.call_from_thread(self._after_restart)

    def _after_restart(self) -> None:
        self.stopping = False
        self.host.start_feed()
        self.host.redraw(force=True)

    def detach(self) -> None:
        """d: quit the viewer and leave the sweep training (nothing is retrained: the same trainer
        goes on headless); bstui --attach comes back to it."""
        feed, state = self.pump.feed, self.pump.state
        if feed is None or self.stopping:
            return
        if feed.live:
            if self.pump.end is not None or state.finished or not state.run_dir:
                why = "the sweep has not started yet" if not state.run_dir else "the trainer is not running"
                self.host.notify(f"detach: {why}.", severity="warning")
                return
            feed.leave()
            self.exit_action = ExitAction.LEFT
            self.host.exit(0)
        elif feed.follows_trainer:
            self.exit_action = ExitAction.LEFT
            self.host.exit(0)
        else:
            self.host.notify(
                "detach: a recorded run directory has no trainer to leave running.", severity="warning"
            )

    def stop_on_quit(self) -> None:
        """q: stop the sweep. The app's own trainer is asked and left to finish its clean stop alone
        (one that has already ended is tidied up). An attached trainer is asked
        through its control file. A finished or recorded sweep has nothing to stop."""
        self.stopping = True
        self.exit_action = self._stop()

    def _stop(self) -> ExitAction:
        feed = self.pump.feed
        if isinstance(feed, LiveFeed):
            if self.pump.end is not None:
                return ExitAction.NONE
            return ExitAction.STOPPED if feed.stop_sweep() else ExitAction.STOPPING
        if feed is not None and getattr(feed, "controllable", False) and not self.pump.state.finished:
            feed.send({"cmd": "stop"})
            return ExitAction.REFUSED if getattr(feed, "send_error", "") else ExitAction.STOPPING
        return ExitAction.NONE
