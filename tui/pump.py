"""The app's pumps: its events in, and the system pane's readings.

The feed pump starts and closes the feed drains it in a thread worker into
an inbox, applies events to the sweep state on the UI thread within a time budget, and tells news (a
run reached the target or diverged, the trainer died) apart from a replay's history.

An object the app composes (tui.app.BstuiApp holds one as `pump`): the worker posts typed messages
(tui.messages) to the app, whose handlers call back into the pump on the UI thread.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable, Protocol

from textual.message import Message
from textual.worker import get_current_worker

from trainer.runlog.commands import trainer_command
from tui.feeds.base import FEED_RESET, Feed, FeedEnd
from tui.feeds.system import SystemSource
from tui.messages import EventsPending, FeedCaughtUp, FeedEnded, SystemSampled
from tui.state.labels import run_labels
from tui.state.status import TOAST, StatusLine
from tui.state.sweep import SweepState

#: Builds the feed for attempt n (0 first, 1 after the first restart, ...).
FeedFactory = Callable[[int], Feed]

APPLY_BUDGET_S = 0.05  # UI-thread time per batch of events before yielding to input


class PumpHost(Protocol):
    """What the pump needs of the app: post its messages, run its thread, and tell the user."""

    def post_message(self, message: Message) -> bool: ...

    def run_worker(self, work: Callable[[], None], **options: Any) -> Any: ...

    def notify(self, message: str, **options: Any) -> None: ...

    def bell(self) -> None: ...


class FeedPump:
    """Events in: the feed, its worker, and the sweep state built from what it sends."""

    def __init__(self, host: PumpHost, feed_factory: FeedFactory, ring_bell: bool = False) -> None:
        self.host = host
        self.feed_factory = feed_factory
        #: Ring the terminal bell with the target / divergence toasts.
        self.ring_bell = ring_bell
        #: Feeds made so far less one: a restart makes the next (a live restart writes a new run directory).
        self.attempt = 0
        self.state = SweepState()
        self.feed: Feed | None = None
        #: Why the feed has no more events (None while more may come).
        self.end: FeedEnd | None = None
        #: Events read by the worker and not yet applied (the worker appends, the UI thread pops).
        self.inbox: deque[dict[str, Any]] = deque()
        self.caught_up = False
        self._watch_told: StatusLine | None = None

    @property
    def live(self) -> bool:
        """The feed is a trainer this app started (controls reach it; its news is news)."""
        return self.feed is not None and self.feed.live

    def run_dir(self) -> str:
        """The run directory shown: a replay's the one it reads; a live sweep's the one its trainer reports."""
        feed_dir = self.feed.run_dir if self.feed else ""
        return (self.state.run_dir if self.live else feed_dir) or feed_dir or self.state.run_dir

    def trainer_pid(self) -> int | None:
        """The pid of the feed's trainer on this host, if any (the system pane reads its memory)."""
        return self.feed.trainer_pid if self.feed is not None else None

    def start(self) -> Feed:
        """A fresh sweep state and the feed of the current attempt, drained by a new worker."""
        self.state = SweepState()
        self.inbox = deque()
        self.end = None
        self.caught_up = False
        feed = self.feed = self.feed_factory(self.attempt)
        feed.start()
        inbox = self.inbox
        self.host.run_worker(
            lambda: self._drain(feed, inbox), thread=True, exclusive=True, group="feed", exit_on_error=False
        )
        return feed

    def close(self) -> None:
        if self.feed is not None:
            self.feed.close()

    def worker_failed(self, error: BaseException | None) -> None:
        """The worker raised: what it read is kept, the error shows."""
        self.end = FeedEnd("died", f"reading events failed: {error!r}")
        self.host.notify(self.end.detail, title="feed error", severity="error", timeout=10)

    # -- in the worker's thread ---------------------------------------------------------------

    def _drain(self, feed: Feed, inbox: deque[dict[str, Any]]) -> None:
        """Drain the feed without ever blocking the UI; post when events wait."""
        worker = get_current_worker()
        told = False
        while not worker.is_cancelled:
            events = feed.read(0.1)
            if events:
                inbox.extend(events)
                self.host.post_message(EventsPending())
                continue
            if not told:  # the first empty read: what was already recorded is in
                told = True
                self.host.post_message(FeedCaughtUp(feed))
            end = feed.ended()
            if end is not None:
                inbox.extend(feed.read(0))  # anything that arrived with the end
                self.host.post_message(EventsPending())
                self.host.post_message(FeedEnded(feed, end))
                return

    # -- on the UI thread (the app's handlers of tui.messages call these) ----------------------

    def apply_pending(self) -> SweepState:
        """Apply waiting events, for at most APPLY_BUDGET_S, then let input through; tell the news."""
        start = time.perf_counter()
        inbox, state = self.inbox, self.state
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
            self.host.post_message(EventsPending())
        if self.live:  # a replay's notices are history
            for notice in state.notices:
                self.host.notify(notice, title="trainer", severity="warning")
        state.notices.clear()
        self._toast_alerts(state)
        return state

    def tell_watch(self) -> None:
        """A followed run's trainer gone (or never there): also a toast, since the status line is short."""
        watch = self.feed.watch if self.feed is not None else None
        if watch is None or watch == self._watch_told:
            return
        self._watch_told = watch
        severity = TOAST.get(watch.severity)
        if severity is not None:
            self.host.notify(watch.plain, title="trainer", severity=severity, timeout=30)

    def caught_up_with(self, feed: Feed) -> None:
        if feed is self.feed:
            self.caught_up = True

    def _toast_alerts(self, state: SweepState) -> None:
        """A run reached the target or diverged: a toast (and the bell, if asked), for news only.

        A replay's or an attach's backlog is history; the table shows its outcome.
        """
        if not (self.live or self.caught_up):
            state.alerts.clear()
            return
        if not state.alerts:
            return
        labels = run_labels([r.key() for r in state.run_list()])
        for alert in state.alerts:
            target = alert.kind == "target"
            self.host.notify(
                f"{labels.get(alert.run, alert.run)} {alert.detail}",
                title="target reached" if target else "run diverged",
                severity="information" if target else "error",
                timeout=8,
            )
            if self.ring_bell:
                self.host.bell()
        state.alerts.clear()

    def ended(self, feed: Feed, end: FeedEnd) -> None:
        """The feed `feed` has no more events: keep why, and say what it means for the sweep."""
        if feed is not self.feed or end.kind == "closed":
            return
        self.end = end
        if end.kind == "finished" and self.live and self.state.run_dir:
            self.host.notify(
                f"c shows the scaling view; report.md and plots: "
                f"{trainer_command('report', self.state.run_dir)}",
                title=f"sweep {self.state.status}",
                timeout=30,
            )
        if end.kind == "died":
            killed = end.killed
            self.state.mark_lost(
                "the trainer was killed" if killed else "the trainer process died",
                "interrupted" if killed else "failed",
            )
            run_dir = self.state.run_dir
            resume = f" Continue the sweep with: {trainer_command('resume', run_dir)}" if run_dir else ""
            self.host.notify(
                f"The trainer died ({end.detail}). What it sent is kept.{resume} r restarts, q quits.",
                title="trainer died",
                severity="error",
                timeout=10,
            )


SYSTEM_S = 1.0  # the system pane's readings (NVML, /proc), about once a second


class SystemPump:
    """Readings in: GPUs, host CPU and the trainer's memory, read in a thread worker about once a second
    (never in the trainer) and posted to the app as tui.messages.SystemSampled."""

    def __init__(self, host: PumpHost, source: SystemSource, trainer_pid: Callable[[], int | None]) -> None:
        self.host = host
        self.source = source
        self.trainer_pid = trainer_pid

    def start(self) -> None:
        self.host.run_worker(self._read, thread=True, exclusive=True, group="system", exit_on_error=False)

    def _read(self) -> None:
        worker = get_current_worker()
        while not worker.is_cancelled:
            self.host.post_message(SystemSampled(self.source.sample(self.trainer_pid())))
            for _ in range(10):  # wake often enough to stop promptly on exit
                if worker.is_cancelled:
                    return
                time.sleep(SYSTEM_S / 10)
