"""bstui: watch batch sizes train side by side (issue 3).

A thin App: it owns the sweep state and the feed (live trainer or run directory),
runs one thread worker that drains the feed into an inbox, applies events on the UI
thread, and redraws the widgets at most ~10 times a second. Layout lives in
screens/, drawing in widgets/, the model in state.py.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rich.text import Text
from textual import on, work
from textual.app import App
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Switch
from textual.worker import Worker, WorkerState, get_current_worker

from tui.bridge import TrainerBridge
from tui.detach import DetachedTrainer, resume_command, start_detached
from tui.feed import FEED_RESET, FeedEnd, LiveFeed, ReplayFeed
from tui.plotdata import X_AXES
from tui.screens.help_screen import HelpScreen
from tui.screens.main_screen import MainScreen
from tui.screens.scaling_screen import ScalingScreen
from tui.state import SweepState
from tui.widgets.controls_bar import ControlsBar
from tui.widgets.loss_grid import GridView, LossGrid
from tui.widgets.run_table import RunTable
from tui.widgets.sweep_header import SweepHeader
from tui.widgets.timing_panel import TimingPanel

Feed = LiveFeed | ReplayFeed
#: Builds the feed for attempt n (0 first, 1 after the first restart, ...).
FeedFactory = Callable[[int], Feed]

REDRAW_S = 0.1  # at most ~10 redraws a second, however fast events come
MAX_REDRAW_S = 1.0  # ... and at least one a second
#: Share of one CPU core the app may use for itself while the trainer works: on a small
#: machine every redraw is taken from training (issue 3: attached within 5% of headless).
APP_CPU_BUDGET = 0.08
APPLY_BUDGET_S = 0.05  # UI-thread time per batch of events before yielding to input


class EventsPending(Message):
    """New events wait in the app's inbox (a backlog of these collapses into one)."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, EventsPending)


@dataclass
class FeedEnded(Message):
    """The feed has no more events: the sweep finished, or the trainer died."""

    feed: Any
    end: FeedEnd


class BstuiApp(App[int]):
    """The live view of a sweep (or of a recorded run directory)."""

    CSS_PATH = "app.tcss"
    TITLE = "bstui"
    ENABLE_COMMAND_PALETTE = False

    BINDINGS = [
        Binding("x", "cycle_x", "axis"),
        Binding("l", "toggle('log_y')", "log"),
        Binding("m", "toggle('smooth')", "smooth"),
        Binding("o", "toggle('overlay')", "overlay"),
        Binding("c", "scaling", "scale"),
        Binding("s", "split", "split"),
        Binding("plus,equals_sign", "chunks(1)", "+chunks", show=False),
        Binding("minus", "chunks(-1)", "-chunks", show=False),
        Binding("p", "pause", "pause"),
        Binding("r", "restart", "restart"),
        Binding("d", "detach", "detach", show=False),
        Binding("t", "swap_bottom", "table/timing", show=False),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit", "quit"),
    ]

    x_axis: reactive[str] = reactive("iteration")
    """Loss plots' x axis: iteration, epoch, samples or wall."""
    log_y: reactive[bool] = reactive(False)
    """Loss on a log10 axis (plotted as log10 values; plotext's log scale breaks on redraw)."""
    smooth: reactive[bool] = reactive(False)
    """Show the debiased EMA, the raw loss faint behind it."""
    overlay: reactive[bool] = reactive(False)
    """One plot of all batch sizes instead of one plot each."""
    chunks: reactive[int] = reactive(4)
    """Split-backward chunks k for the next switch."""
    pause_requested: reactive[bool] = reactive(False)
    """The user asked the trainer to pause."""

    def __init__(self, feed_factory: FeedFactory, config_label: str = "", split_on: bool = False, chunks: int = 4) -> None:
        super().__init__()
        self.feed_factory = feed_factory
        self.config_label = config_label
        self.attempt = 0
        self.state = SweepState()
        self.feed: Feed | None = None
        self.feed_end: FeedEnd | None = None
        self._inbox: deque[dict[str, Any]] = deque()
        self._drawn: tuple[Any, ...] = ()
        self._split_initial = split_on
        self.set_reactive(BstuiApp.chunks, max(2, chunks))
        self._stopping = False
        self._quitting = False
        self.redraw_s = REDRAW_S
        self._cpu_mark = (time.process_time(), time.perf_counter())
        self._last_redraw = 0.0
        #: The trainer `d` left running in its own session (its run directory is followed).
        self.detached: DetachedTrainer | None = None
        self._watch_told: tuple[str, str] | None = None

    # -- life cycle -------------------------------------------------------------------------

    async def on_mount(self) -> None:
        await self.push_screen(MainScreen())
        self._start_feed()
        self.set_interval(REDRAW_S, self._tick)

    def on_unmount(self) -> None:
        self._close_feed()

    def _start_feed(self) -> None:
        self.state = SweepState()
        self._inbox = deque()
        self.feed_end = None
        self.pause_requested = False
        self.feed = self.feed_factory(self.attempt)
        switch = self.screen.query_one("#split", Switch)
        with switch.prevent(Switch.Changed):  # a fresh trainer starts as its config says
            switch.value = self._split_initial
        switch.disabled = not self.feed.live
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
        while not worker.is_cancelled:
            events = feed.read(0.1)
            if events:
                inbox.extend(events)
                self.post_message(EventsPending())
                continue
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
        if self.live:  # a replay's refusals are history: the table already shows the outcome
            for notice in state.notices:
                self.notify(notice, title="split-backward", severity="warning")
        state.notices.clear()

    def on_feed_ended(self, message: FeedEnded) -> None:
        if message.feed is not self.feed or message.end.kind == "closed":
            return
        self.feed_end = message.end
        if message.end.kind == "died":
            self.state.mark_lost("the trainer process died")
            self.notify(
                f"The trainer died ({message.end.detail}). What it sent is kept. r restarts, q quits.",
                title="trainer died",
                severity="error",
                timeout=10,
            )

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """A worker error must show, not vanish."""
        if event.state == WorkerState.ERROR and event.worker.group == "feed":
            self.feed_end = FeedEnd("died", f"reading events failed: {event.worker.error!r}")
            self.notify(self.feed_end.detail, title="feed error", severity="error", timeout=10)

    # -- drawing ----------------------------------------------------------------------------

    def _tick(self) -> None:
        """Redraw on a timer, slower when the app's own CPU use goes over its budget."""
        now = time.perf_counter()
        cpu0, wall0 = self._cpu_mark
        if now - wall0 >= 1.0:
            cpu = time.process_time()
            share = (cpu - cpu0) / (now - wall0)
            self._cpu_mark = (cpu, now)
            if share > APP_CPU_BUDGET:
                self.redraw_s = min(MAX_REDRAW_S, self.redraw_s * 1.5)
            elif share < APP_CPU_BUDGET / 2:
                self.redraw_s = max(REDRAW_S, self.redraw_s / 1.5)
        if now - self._last_redraw >= self.redraw_s - 1e-3:
            self._last_redraw = now
            self.redraw()

    def status_text(self) -> Text:
        """What the sweep is doing, in words (no clock: snapshots stay stable)."""
        s, end = self.state, self.feed_end
        if self._stopping:
            return Text("stopping the trainer…", style="bold yellow")
        if end is not None and end.kind == "died":
            return Text.assemble(("✖ trainer died", "bold red"), f" ({end.detail}) · r restarts, q quits")
        prefix = "" if self.live else "replay · "
        if s.finished:
            style = {"done": "bold green", "failed": "bold red"}.get(s.status, "bold yellow")
            why = f": {s.reason}" if s.reason else ""
            return Text.assemble((f"{prefix}sweep {s.status}", style), why, (" · r restarts" if self.live else ""))
        watch = getattr(self.feed, "watch", None)  # --attach/--detach: is a trainer writing it?
        if not self.live and watch is not None:
            return Text(watch[0], style=watch[1])
        if not s.started:
            return Text(f"{prefix}starting the trainer…" if self.live else f"{prefix}waiting for events…", style="dim")
        if self.live and (self.pause_requested or s.paused):
            return Text("⏸ paused · p resumes", style="bold yellow")
        if not self.live:
            return Text("replay · following (the sweep has not finished)", style="bold cyan")
        return Text("● running", style="bold cyan")

    def view_text(self) -> str:
        return " ".join(
            [
                f"x:{self.x_axis}",
                "log" if self.log_y else "lin",
                "ema" if self.smooth else "raw",
                "overlay" if self.overlay else "grid",
            ]
        )

    def redraw(self, force: bool = False) -> None:
        """Update every widget if anything changed since the last redraw."""
        if isinstance(self.screen, ScalingScreen):  # it skips the work itself when nothing changed
            self.screen.update_from(self.state, self.status_text())
            return
        if not isinstance(self.screen, MainScreen):
            return
        view = GridView(self.x_axis, self.log_y, self.smooth, self.overlay)
        key = (
            self.state.version,
            id(self.state),
            view,
            self.chunks,
            self.pause_requested,
            self.feed_end,
            self._stopping,
            self.feed.bad_lines if self.feed else 0,
            getattr(self.feed, "watch", None),
        )
        if key == self._drawn and not force:
            return
        self._tell_watch(getattr(self.feed, "watch", None))
        self._drawn = key
        screen = self.screen
        feed_dir = self.feed.run_dir if self.feed else ""
        # A replay shows the directory it reads; a live sweep the one the trainer reports.
        run_dir = (feed_dir if not self.live else self.state.run_dir) or feed_dir or self.state.run_dir
        skipped = self.state.skipped + (self.feed.bad_lines if self.feed else 0)
        try:
            header, controls = screen.query_one(SweepHeader), screen.query_one(ControlsBar)
            grid, table, timing = screen.query_one(LossGrid), screen.query_one(RunTable), screen.query_one(TimingPanel)
        except NoMatches:  # a redraw before the screen has composed: draw on the next tick
            self._drawn = None
            return
        with self.batch_update():
            header.update_from(self.state, self.config_label, run_dir, skipped, replay=not self.live)
            controls.show(self.status_text(), self.chunks, self.view_text())
            grid.update_view(self.state, view)
            table.update_from(self.state)
            timing.update_from(self.state)

    # -- keys -------------------------------------------------------------------------------

    def action_cycle_x(self) -> None:
        self.x_axis = X_AXES[(X_AXES.index(self.x_axis) + 1) % len(X_AXES)]

    def _live_only(self, what: str) -> bool:
        if self.live and self.feed_end is None:
            return True
        why = "a recorded run directory cannot be controlled" if not self.live else "the trainer is not running"
        self.notify(f"{what}: {why}.", severity="warning")
        return False

    def action_split(self) -> None:
        if self._live_only("split-backward"):
            self.screen.query_one("#split", Switch).toggle()

    @on(Switch.Changed, "#split")
    def _split_changed(self, event: Switch.Changed) -> None:
        if self.feed is not None and self.live:
            self.feed.send({"cmd": "split", "enabled": event.value, "chunks": self.chunks})

    def action_chunks(self, delta: int) -> None:
        self.chunks = min(64, max(2, self.chunks + delta))

    def action_pause(self) -> None:
        if self._live_only("pause") and self.feed is not None and not self.state.finished:
            self.pause_requested = not self.pause_requested
            self.feed.send({"cmd": "pause" if self.pause_requested else "resume"})

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
        old.close()
        self.call_from_thread(self._after_restart)

    def _after_restart(self) -> None:
        self._stopping = False
        self._start_feed()
        self.redraw(force=True)

    def _tell_watch(self, watch: tuple[str, str] | None) -> None:
        """A followed run's trainer gone (or never there): also a toast, since the status line is short."""
        if watch is None or watch == self._watch_told:
            return
        self._watch_told = watch
        severity = "error" if "red" in watch[1] else "warning" if "yellow" in watch[1] else None
        if severity is not None:
            self.notify(watch[0], title="trainer", severity=severity, timeout=30)

    def action_detach(self) -> None:
        """d: leave the sweep running without this app (issue 6).

        Following a run directory (--detach, --attach): quit the viewer, the trainer goes on.
        Live: stop this app's trainer (its run directory stays valid and resumable) and continue
        the sweep as a detached `python -m trainer resume DIR`, which the app then follows.
        """
        feed = self.feed
        if feed is None or self._stopping:
            return
        if not feed.live:
            if getattr(feed, "watch_trainer", False):
                self.exit(0)
            else:
                self.notify("detach: a recorded run directory has no trainer to leave running.", severity="warning")
            return
        run_dir = self.state.run_dir
        if self.feed_end is not None or self.state.finished or not run_dir:
            why = "the sweep has not started yet" if not run_dir else "the trainer is not running"
            self.notify(f"detach: {why}.", severity="warning")
            return
        self._stopping = True
        self.attempt += 1
        self.redraw()
        self._detach_worker(feed, run_dir)

    @work(thread=True, group="restart")
    def _detach_worker(self, old: Feed, run_dir: str) -> None:
        old.close()  # the stopped sweep's run directory is complete up to its last epoch
        try:
            trainer: DetachedTrainer | None = start_detached(resume_command(Path(run_dir)), Path(run_dir))
        except OSError as exc:
            trainer = None
            self.call_from_thread(self.notify, f"detach: cannot start the trainer: {exc}", severity="error")
        self.call_from_thread(self._after_detach, run_dir, trainer)

    def _after_detach(self, run_dir: str, trainer: DetachedTrainer | None) -> None:
        self._stopping = False
        self.detached = trainer
        self.feed_factory = lambda attempt: ReplayFeed(run_dir, watch_trainer=True, detached=trainer)
        self._start_feed()
        self.redraw(force=True)

    def action_swap_bottom(self) -> None:
        self.screen.toggle_class("-timing")

    async def action_scaling(self) -> None:
        """c: open the scaling view (issue 4), or go back from it."""
        if isinstance(self.screen, ScalingScreen):
            await self.pop_screen()
            self.redraw(force=True)
        elif isinstance(self.screen, MainScreen):
            await self.push_screen(ScalingScreen())
            self.redraw()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        """Stop the trainer (within ~2 s, off the UI thread), then exit."""
        if self._quitting:
            return
        self._quitting = self._stopping = True
        self.redraw()
        self._quit_worker()

    @work(thread=True, group="quit")
    def _quit_worker(self) -> None:
        self._close_feed()
        self.call_from_thread(self.exit, 0)

    # -- reactives --------------------------------------------------------------------------

    def watch_x_axis(self) -> None:
        self.redraw()

    def watch_log_y(self) -> None:
        self.redraw()

    def watch_smooth(self) -> None:
        self.redraw()

    def watch_overlay(self) -> None:
        self.redraw()

    def watch_chunks(self) -> None:
        self.redraw()


def live_feed_factory(config_path: str | None, overrides: list[str], out_dir: str | None) -> FeedFactory:
    """Feeds that start the trainer; a restart writes a new run directory."""

    def make(attempt: int) -> Feed:
        out = out_dir
        if out is not None and attempt > 0:
            out = next_free_dir(out)
        return LiveFeed(TrainerBridge(config_path, overrides, out), run_dir=out or "")

    return make


def replay_feed_factory(run_dir: str, follow: bool = True) -> FeedFactory:
    return lambda attempt: ReplayFeed(run_dir, follow=follow)


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
) -> BstuiApp:
    """Build the app (the command line and the tests both use this).

    `replay`: show a run directory; else a live trainer on config_path + overrides.
    `feed_factory` replaces either (tests pass fakes).
    """
    if feed_factory is None:
        if replay is not None:
            feed_factory = replay_feed_factory(replay, follow=follow)
        else:
            feed_factory = live_feed_factory(config_path, list(overrides or []), out_dir)
    return BstuiApp(feed_factory, config_label=config_label, split_on=split_on, chunks=chunks)
