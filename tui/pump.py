"""The app's feed plumbing (a mixin of tui.app.BstuiApp): start and close the feed, drain it in a
thread worker into an inbox, apply events on the UI thread within a time budget, and tell news
(a run reached the target or diverged) from a replay's history.

Kept apart so the app class stays about screens and drawing. Textual finds the `on_*` handlers
here by name; `@on`-decorated handlers stay in the app (Textual does not collect them from a mixin).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual import work
from textual.message import Message
from textual.widgets import Switch
from textual.worker import get_current_worker

from trainer.runlog.commands import trainer_command
from tui.feeds.base import FEED_RESET, Feed, FeedEnd
from tui.state.labels import run_labels
from tui.state.sweep import SweepState

if TYPE_CHECKING:
    # Typed as a Textual App (notify, post_message, screen ...); the attributes it shares with the app
    # (state, feed, attempt ...) are set by tui.app.BstuiApp, which this module must not import (no cycle).
    from textual.app import App as _Base
else:
    _Base = object

APPLY_BUDGET_S = 0.05  # UI-thread time per batch of events before yielding to input


class EventsPending(Message):
    """New events wait in the app's inbox (a backlog of these collapses into one)."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, EventsPending)


@dataclass
class FeedCaughtUp(Message):
    """The feed's backlog is read: events from now on are news (worth a toast), not history."""

    feed: Any


@dataclass
class FeedEnded(Message):
    """The feed has no more events: the sweep finished, or the trainer died."""

    feed: Any
    end: FeedEnd


class FeedPump(_Base):
    """Events in: the feed, its worker, and applying what it sends."""

    def _start_feed(self) -> None:
        self.state = SweepState()
        self._inbox = deque()
        self.feed_end = None
        self.pause_requested = False
        self._caught_up = False
        self._split_shown = None
        self.feed = self.feed_factory(self.attempt)
        switch = self.screen.query_one("#split", Switch)
        with switch.prevent(Switch.Changed):  # a fresh trainer starts as its config says
            switch.value = self._split_initial
        switch.disabled = not (self.feed.live or getattr(self.feed, "follows_trainer", False))
        self.feed.start()
        self._feed_worker(self.feed, self._inbox)

    def _close_feed(self) -> None:
        if self.feed is not None:
            self.feed.close()

    @property
    def live(self) -> bool:
        return self.feed is not None and self.feed.live

    # -- events in --------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="feed", exit_on_error=False)
    def _feed_worker(self, feed: Feed, inbox: deque[dict[str, Any]]) -> None:
        """Drain the feed without ever blocking the UI; post when events wait."""
        worker = get_current_worker()
        told = False
        while not worker.is_cancelled:
            events = feed.read(0.1)
            if events:
                inbox.extend(events)
                self.post_message(EventsPending())
                continue
            if not told:  # the first empty read: what was already recorded is in
                told = True
                self.post_message(FeedCaughtUp(feed))
            end = feed.ended()
            if end is not None:
                inbox.extend(feed.read(0))  # anything that arrived with the end
                self.post_message(EventsPending())
                self.post_message(FeedEnded(feed, end))
                return

    def on_events_pending(self, _: EventsPending) -> None:
        """Apply waiting events, for at most APPLY_BUDGET_S, then let input through."""
        start = time.perf_counter()
        inbox, state = self._inbox, self.state
        while inbox:
            for _ in range(min(len(inbox), 500)):
                event = inbox.popleft()
                if event is FEED_RESET:  # events.jsonl was replaced (a resume): rebuild from its start
                    state = self.state = SweepState()
                    continue
                state.apply(event)
            if time.perf_counter() - start > APPLY_BUDGET_S:
                break
        if inbox:
            self.post_message(EventsPending())
        if self.live:  # a replay's notices are history
            for notice in state.notices:
                self.notify(notice, title="trainer", severity="warning")
        state.notices.clear()
        self._show_split(state)
        self._toast_alerts(state)

    def _show_split(self, state: SweepState) -> None:
        """The switch and k as the trainer recorded them (an attached viewer starts from the run directory,
        not from a config), set when what the run directory says changes: a key press waits for its answer."""
        shown = state.split_switch()
        if shown == self._split_shown:
            return
        self._split_shown = shown
        on, k = shown
        switch = self.screen.query_one("#split", Switch) if self.screen.query("#split") else None
        if switch is not None and switch.value != on:
            with switch.prevent(Switch.Changed):
                switch.value = on
        if k > 1:
            self.chunks = k

    def on_feed_caught_up(self, message: FeedCaughtUp) -> None:
        if message.feed is self.feed:
            self._caught_up = True

    def _toast_alerts(self, state: SweepState) -> None:
        """A run reached the target or diverged: a toast (and the bell, if asked), for news only.

        A replay's or an attach's backlog is history; the table shows its outcome.
        """
        if not (self.live or self._caught_up):
            state.alerts.clear()
            return
        if not state.alerts:
            return
        labels = run_labels([r.key() for r in state.run_list()])
        for alert in state.alerts:
            target = alert.kind == "target"
            self.notify(
                f"{labels.get(alert.run, alert.run)} {alert.detail}",
                title="target reached" if target else "run diverged",
                severity="information" if target else "error",
                timeout=8,
            )
            if self.ring_bell:
                self.bell()
        state.alerts.clear()

    def on_feed_ended(self, message: FeedEnded) -> None:
        if message.feed is not self.feed or message.end.kind == "closed":
            return
        self.feed_end = message.end
        if message.end.kind == "finished" and self.live and self.state.run_dir:
            self.notify(
                f"c shows the scaling view; report.md and plots: "
                f"{trainer_command('report', self.state.run_dir)}",
                title=f"sweep {self.state.status}",
                timeout=30,
            )
        if message.end.kind == "died":
            killed = message.end.killed
            self.state.mark_lost(
                "the trainer was killed" if killed else "the trainer process died",
                "interrupted" if killed else "failed",
            )
            run_dir = self.state.run_dir
            resume = f" Continue the sweep with: {trainer_command('resume', run_dir)}" if run_dir else ""
            self.notify(
                f"The trainer died ({message.end.detail}). What it sent is kept.{resume} r restarts, q quits.",
                title="trainer died",
                severity="error",
                timeout=10,
            )
