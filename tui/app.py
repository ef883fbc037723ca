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

from textual import on, work
from textual.app import App
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.worker import Worker, WorkerState, get_current_worker

from tui.controls import SweepControls
from tui.feeds.base import Feed, FeedEnd
from tui.feeds.detach import ExitAction
from tui.feeds.system import LiveSystem, SystemSnapshot, SystemSource
from tui.pump import FeedPump
from tui.screens.help_screen import HelpScreen
from tui.screens.main_screen import Frame, MainScreen
from tui.screens.scaling_screen import ScalingScreen
from tui.state.status import TOAST, StatusInputs, StatusLine, status_line
from tui.state.sweep import SweepState

#: Builds the feed for attempt n (0 first, 1 after the first restart, ...).
FeedFactory = Callable[[int], Feed]

REDRAW_S = 0.1  # at most ~10 redraws a second, however fast events come
MAX_REDRAW_S = 1.0  # ... and at least one a second
#: Share of one CPU core the app may use for itself while the trainer works: on a small
#: machine every redraw is taken from training (issue 3: attached within 5% of headless).
APP_CPU_BUDGET = 0.08
SYSTEM_S = 1.0  # the system pane's readings (NVML, /proc), about once a second


@dataclass
class SystemSampled(Message):
    """A new reading of GPUs, host CPU and trainer memory (a backlog collapses to the newest)."""

    snapshot: SystemSnapshot

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SystemSampled)


class BstuiApp(FeedPump, SweepControls, App[int]):
    """The live view of a sweep (or of a recorded run directory)."""

    CSS_PATH = "app.tcss"
    TITLE = "bstui"
    ENABLE_COMMAND_PALETTE = False

    BINDINGS = [
        Binding("c", "scaling", "scale"),
        Binding("s", "split", "split"),
        Binding("plus,equals_sign", "chunks(1)", "+chunks", show=False),
        Binding("minus", "chunks(-1)", "-chunks", show=False),
        Binding("p", "pause", "pause"),
        Binding("r", "restart", "restart"),
        Binding("d", "detach", "detach", show=False),
        Binding("t", "swap_bottom", "table/timing", show=False),
        Binding("e", "screenshot", "screenshot", show=False),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit", "quit"),
    ]

    chunks: reactive[int] = reactive(4)
    """Split-backward chunks k for the next switch."""
    pause_requested: reactive[bool] = reactive(False)
    """The user asked the trainer to pause."""

    def __init__(
        self,
        feed_factory: FeedFactory,
        config_label: str = "",
        split_on: bool = False,
        chunks: int = 4,
        system: SystemSource | None = None,
        bell: bool = False,
    ) -> None:
        super().__init__()
        #: Where the system pane's figures come from (tests pass a fake NVML / fixed readings).
        self.system = system if system is not None else LiveSystem()
        #: Ring the terminal bell with the target / divergence toasts.
        self.ring_bell = bell
        #: The newest system reading (the pane shows it; tests read it).
        self.last_system: SystemSnapshot | None = None
        self._caught_up = False
        self.feed_factory = feed_factory
        self.config_label = config_label
        self.attempt = 0
        self.state = SweepState()
        self.feed: Feed | None = None
        self.feed_end: FeedEnd | None = None
        self._inbox: deque[dict[str, Any]] = deque()
        self._drawn: tuple[Any, ...] = ()
        self._split_initial = split_on
        #: The split switch as last taken from the run directory (tui.pump._show_split).
        self._split_shown: tuple[bool, int] | None = None
        self.set_reactive(BstuiApp.chunks, max(2, chunks))
        self._stopping = False
        self._quitting = False
        self.redraw_s = REDRAW_S
        self._cpu_mark = (time.process_time(), time.perf_counter())
        self._last_redraw = 0.0
        #: What quitting did to the trainer, for the words printed on exit (tui.feeds.detach.ExitAction).
        self.exit_action = ExitAction.NONE
        self._watch_told: StatusLine | None = None

    # -- life cycle -------------------------------------------------------------------------

    async def on_mount(self) -> None:
        await self.push_screen(MainScreen())
        self._start_feed()
        self.set_interval(REDRAW_S, self._tick)
        self._system_worker()

    def on_unmount(self) -> None:
        self._close_feed()

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """A worker error must show, not vanish."""
        if event.state == WorkerState.ERROR and event.worker.group == "feed":
            self.feed_end = FeedEnd("died", f"reading events failed: {event.worker.error!r}")
            self.notify(self.feed_end.detail, title="feed error", severity="error", timeout=10)
        elif event.state == WorkerState.ERROR and event.worker.group == "system":
            self.notify(
                f"the system pane stopped: {event.worker.error!r}", title="system", severity="warning"
            )

    # -- system pane ------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="system", exit_on_error=False)
    def _system_worker(self) -> None:
        """Read GPUs, host CPU and the trainer's memory about once a second (never in the trainer)."""
        worker = get_current_worker()
        while not worker.is_cancelled:
            feed = self.feed
            self.post_message(
                SystemSampled(self.system.sample(feed.trainer_pid if feed is not None else None))
            )
            for _ in range(10):  # wake often enough to stop promptly on exit
                if worker.is_cancelled:
                    return
                time.sleep(SYSTEM_S / 10)

    def on_system_sampled(self, message: SystemSampled) -> None:
        self.last_system = message.snapshot
        if self.screen_stack and isinstance(self.screen, MainScreen):  # not while the app closes
            self.screen.show_system(message.snapshot)

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

    def status(self) -> StatusLine:
        """What the sweep is doing, in words, with a severity (tui.state.status)."""
        s, end = self.state, self.feed_end
        return status_line(
            StatusInputs(
                live=self.live,
                started=s.started,
                finished=s.finished,
                sweep_status=s.status,
                reason=s.reason,
                stopping=self._stopping,
                died=end.detail if end is not None and end.kind == "died" else None,
                run_dir=s.run_dir or "",
                paused=self.pause_requested or s.paused,
                watch=self.feed.watch if self.feed is not None else None,
                stage=s.stage if self.live else "",
            )
        )

    def status_text(self):  # noqa: ANN201 - rich Text
        """The status line as Rich text (tests read its .plain)."""
        return self.status().text()

    def redraw(self, force: bool = False) -> None:
        """Update every widget if anything changed since the last redraw."""
        if not self.screen_stack:  # the timer can fire while the app starts or closes
            return
        if isinstance(self.screen, ScalingScreen):  # it skips the work itself when nothing changed
            self.screen.update_from(self.state, self.status_text())
            return
        if not isinstance(self.screen, MainScreen):
            return
        feed = self.feed
        key = (
            self.state.version,
            id(self.state),
            self.chunks,
            self.pause_requested,
            self.feed_end,
            self._stopping,
            feed.bad_lines if feed else 0,
            feed.watch if feed else None,
        )
        if key == self._drawn and not force:
            return
        self._tell_watch(feed.watch if feed else None)
        feed_dir = feed.run_dir if feed else ""
        # A replay shows the directory it reads; a live sweep the one the trainer reports.
        run_dir = (feed_dir if not self.live else self.state.run_dir) or feed_dir or self.state.run_dir
        skipped = self.state.skipped + (feed.bad_lines if feed else 0)
        mode = "" if self.live else "attached" if getattr(feed, "follows_trainer", False) else "replay"
        frame = Frame(self.state, self.status(), self.config_label, run_dir, skipped, mode, self.chunks)
        self._drawn = key if self.screen.update_from(frame) else None

    # -- keys -------------------------------------------------------------------------------

    def _tell_watch(self, watch: StatusLine | None) -> None:
        """A followed run's trainer gone (or never there): also a toast, since the status line is short."""
        if watch is None or watch == self._watch_told:
            return
        self._watch_told = watch
        severity = TOAST.get(watch.severity)
        if severity is not None:
            self.notify(watch.plain, title="trainer", severity=severity, timeout=30)

    def action_swap_bottom(self) -> None:
        """t: on a narrow terminal, the table or the timing panel; on a wide one both show, and t says so."""
        if not isinstance(self.screen, MainScreen):
            self.notify(
                "t: the table and the timing panel are on the main view (c goes back to it).",
                severity="warning",
                timeout=4,
            )
        elif not self.screen.has_class("-narrow"):
            self.notify(
                "t: the table and the timing panel both show at this width; t swaps them on narrow "
                "terminals.",
                timeout=4,
            )
        else:
            self.screen.toggle_class("-timing")

    def action_screenshot(self) -> None:
        """e: save the screen as SVG into the run directory, named with the time; a toast says where."""
        feed_dir = self.feed.run_dir if self.feed else ""
        run_dir = (self.state.run_dir if self.live else feed_dir) or feed_dir or self.state.run_dir
        if not run_dir or not Path(run_dir).is_dir():
            self.notify(
                "screenshot: the run directory is not known yet (the sweep has not started).",
                severity="warning",
            )
            return
        name = screenshot_name(Path(run_dir), time.localtime())
        try:
            path = self.save_screenshot(name, run_dir)
        except OSError as exc:
            self.notify(f"screenshot: cannot write into {run_dir}: {exc.strerror or exc}", severity="error")
            return
        # The name and its directory as words of their own: a toast wraps at spaces, so a whole path (one long
        # word) would break mid-name.
        self.notify(f"{Path(path).name}\nin {Path(path).parent}", title="screenshot saved", timeout=10)

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
        """q: quit the viewer and stop the sweep cleanly. The app does not wait for the trainer: it
        sends the stop and exits; the trainer ends the stop on its own (bench/stop.py times both)."""
        if self._quitting:
            return
        self._quitting = self._stopping = True
        self.exit_action = self._stop_on_quit()  # a message on a queue or a line in a file: no waiting
        self._close_feed()
        self.exit(0)

    # -- reactives --------------------------------------------------------------------------

    def watch_chunks(self) -> None:
        self.redraw()


def screenshot_name(run_dir: Path, now: time.struct_time) -> str:
    """screenshot-YYYYmmdd-HHMMSS.svg, with -2, -3 ... when that name is taken (two in a second)."""
    stem = time.strftime("screenshot-%Y%m%d-%H%M%S", now)
    name, n = f"{stem}.svg", 2
    while (run_dir / name).exists():
        name, n = f"{stem}-{n}.svg", n + 1
    return name
