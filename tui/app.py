"""bstui: watch batch sizes train side by side.

A thin App composed of two objects: the feed pump (tui.pump: the feed, its thread worker and the
sweep state built from its events) and the sweep controls (tui.controls: the keys that reach the
trainer). They talk to the app by the typed messages of tui.messages and by plain calls; the app
redraws the screens at most ~10 times a second. Layout lives in screens/, drawing in widgets/ and
render/, the model in state/.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from textual import on
from textual.app import App
from textual.binding import Binding
from textual.widgets import Switch
from textual.worker import Worker, WorkerState

from tui.controls import SweepControls
from tui.feeds.base import Feed, FeedEnd
from tui.feeds.detach import ExitAction
from tui.feeds.system import LiveSystem, SystemSnapshot, SystemSource
from tui.messages import EventsPending, FeedCaughtUp, FeedEnded, SystemSampled
from tui.pump import FeedFactory, FeedPump, SystemPump
from tui.screens.bcrit_screen import BcritScreen
from tui.screens.help_screen import HelpScreen
from tui.screens.main_screen import Frame, MainScreen
from tui.screens.scaling_screen import ScalingScreen
from tui.state.status import StatusInputs, StatusLine, status_line
from tui.state.sweep import SweepState

REDRAW_S = 0.1  # at most ~10 redraws a second, however fast events come
MAX_REDRAW_S = 1.0  # ... and at least one a second
#: Share of one CPU core the app may use for itself while the trainer works: on a small
#: machine every redraw is taken from training (attached within 5% of headless).
APP_CPU_BUDGET = 0.08


class RedrawPacer:
    """When to redraw: every REDRAW_S, less often (down to MAX_REDRAW_S) while the app's own share of a
    CPU core is over APP_CPU_BUDGET, faster again once it is under half of it."""

    def __init__(self) -> None:
        self.redraw_s = REDRAW_S
        self._cpu_mark = (time.process_time(), time.perf_counter())
        self._last_redraw = 0.0

    def due(self, now: float, cpu: float) -> bool:
        """At wall time `now` with the process's CPU time `cpu`: redraw now?"""
        cpu0, wall0 = self._cpu_mark
        if now - wall0 >= 1.0:
            share = (cpu - cpu0) / (now - wall0)
            self._cpu_mark = (cpu, now)
            if share > APP_CPU_BUDGET:
                self.redraw_s = min(MAX_REDRAW_S, self.redraw_s * 1.5)
            elif share < APP_CPU_BUDGET / 2:
                self.redraw_s = max(REDRAW_S, self.redraw_s / 1.5)
        if now - self._last_redraw >= self.redraw_s - 1e-3:
            self._last_redraw = now
            return True
        return False


class BstuiApp(App[int]):
    """The live view of a sweep (or of a recorded run directory)."""

    CSS_PATH = "app.tcss"
    TITLE = "bstui"
    ENABLE_COMMAND_PALETTE = False

    BINDINGS = [
        Binding("c", "scaling", "scale"),
        Binding("b", "bcrit", "B_crit", show=False),
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
        #: Events in: the feed, its worker and the sweep state (tests read app.state, app.feed_end ...).
        self.pump = FeedPump(self, feed_factory, ring_bell=bell)
        #: The keys that reach the trainer, and what the user asked of it.
        self.controls = SweepControls(self, self.pump, split_on=split_on, chunks=chunks)
        #: Where the system pane's figures come from (tests pass a fake NVML / fixed readings).
        self.system_pump = SystemPump(
            self, system if system is not None else LiveSystem(), self.pump.trainer_pid
        )
        #: The newest system reading (the pane shows it; tests read it).
        self.last_system: SystemSnapshot | None = None
        self.config_label = config_label
        self._drawn: tuple[Any, ...] | None = ()
        self._quitting = False
        self.pacer = RedrawPacer()

    # -- what the parts hold, read by the screens' frame, the exit words and the tests -------------

    @property
    def state(self) -> SweepState:
        return self.pump.state

    @property
    def feed(self) -> Feed | None:
        return self.pump.feed

    @property
    def feed_end(self) -> FeedEnd | None:
        return self.pump.end

    @property
    def live(self) -> bool:
        return self.pump.live

    @property
    def exit_action(self) -> ExitAction:
        return self.controls.exit_action

    # -- life cycle -------------------------------------------------------------------------

    async def on_mount(self) -> None:
        await self.push_screen(MainScreen())
        self.start_feed()
        self.set_interval(REDRAW_S, self._tick)
        self.system_pump.start()

    def on_unmount(self) -> None:
        self.pump.close()

    def start_feed(self) -> None:
        """A fresh sweep state from the feed of the current attempt (at start, and on `r`)."""
        self.controls.reset(self.pump.start())

    def split_switch(self, shown_only: bool = True) -> Switch | None:
        """The split-backward switch on the screen shown (a key acts on what is seen), or with
        shown_only=False on the main screen wherever it is in the stack (a new feed resets it)."""
        screens = [self.screen] if shown_only else [s for s in self.screen_stack if isinstance(s, MainScreen)]
        return next((s.query_one("#split", Switch) for s in screens if s.query("#split")), None)

    @on(Worker.StateChanged)
    def _worker_failed(self, event: Worker.StateChanged) -> None:
        """A worker error must show, not vanish."""
        if event.state == WorkerState.ERROR and event.worker.group == "feed":
            self.pump.worker_failed(event.worker.error)
        elif event.state == WorkerState.ERROR and event.worker.group == "system":
            self.notify(
                f"the system pane stopped: {event.worker.error!r}", title="system", severity="warning"
            )

    # -- the feed pump's messages -------------------------------------------------------------

    def on_events_pending(self, _: EventsPending) -> None:
        self.controls.show_split(self.pump.apply_pending())

    def on_feed_caught_up(self, message: FeedCaughtUp) -> None:
        self.pump.caught_up_with(message.feed)

    def on_feed_ended(self, message: FeedEnded) -> None:
        self.pump.ended(message.feed, message.end)

    def on_switch_changed(self, event: Switch.Changed) -> None:
        self.controls.switch_changed(event)

    # -- system pane ------------------------------------------------------------------------

    def on_system_sampled(self, message: SystemSampled) -> None:
        self.last_system = message.snapshot
        if self.screen_stack and isinstance(self.screen, MainScreen):  # not while the app closes
            self.screen.show_system(message.snapshot)

    # -- drawing ----------------------------------------------------------------------------

    def _tick(self) -> None:
        """Redraw on a timer, slower when the app's own CPU use goes over its budget."""
        if self.pacer.due(time.perf_counter(), time.process_time()):
            self.redraw()

    def status(self) -> StatusLine:
        """What the sweep is doing, in words, with a severity (tui.state.status)."""
        return sweep_status(self.pump, self.controls)

    def status_text(self):  # noqa: ANN201 - rich Text
        """The status line as Rich text (tests read its .plain)."""
        return self.status().text()

    def redraw(self, force: bool = False) -> None:
        """Update every widget if anything changed since the last redraw."""
        if not self.screen_stack:  # the timer can fire while the app starts or closes
            return
        if isinstance(self.screen, (ScalingScreen, BcritScreen)):  # each skips the work when nothing changed
            self.screen.update_from(self.state, self.status_text())
            return
        if not isinstance(self.screen, MainScreen):
            return
        feed = self.feed
        key = (
            self.state.version,
            id(self.state),
            self.controls.chunks,
            self.controls.pause_requested,
            self.feed_end,
            self.controls.stopping,
            feed.bad_lines if feed else 0,
            feed.watch if feed else None,
        )
        if key == self._drawn and not force:
            return
        self.pump.tell_watch()
        run_dir = self.pump.run_dir()
        skipped = self.state.skipped + (feed.bad_lines if feed else 0)
        mode = "" if self.live else "attached" if getattr(feed, "follows_trainer", False) else "replay"
        frame = Frame(
            self.state, self.status(), self.config_label, run_dir, skipped, mode, self.controls.chunks
        )
        self._drawn = key if self.screen.update_from(frame) else None

    # -- keys -------------------------------------------------------------------------------

    def action_split(self) -> None:
        self.controls.split()

    def action_chunks(self, delta: int) -> None:
        self.controls.step_chunks(delta)

    def action_pause(self) -> None:
        self.controls.pause()

    def action_restart(self) -> None:
        self.controls.restart()

    def action_detach(self) -> None:
        self.controls.detach()

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
        run_dir = self.pump.run_dir()
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
        """c: open the scaling view, or go back from it."""
        await self._toggle(ScalingScreen)

    async def action_bcrit(self) -> None:
        """b: open B_crit over training (branched B_crit and the schedule), or go back from it."""
        await self._toggle(BcritScreen)

    async def _toggle(self, screen: type[ScalingScreen] | type[BcritScreen]) -> None:
        if isinstance(self.screen, screen):
            await self.pop_screen()
            self.redraw(force=True)
        elif isinstance(self.screen, MainScreen):
            await self.push_screen(screen())
            self.redraw()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        """q: quit the viewer and stop the sweep cleanly. The app does not wait for the trainer: it
        sends the stop and exits; the trainer ends the stop on its own (bench/stop.py times both)."""
        if self._quitting:
            return
        self._quitting = True
        self.controls.stop_on_quit()  # a message on a queue or a line in a file: no waiting
        self.pump.close()
        self.exit(0)


def sweep_status(pump: FeedPump, controls: SweepControls) -> StatusLine:
    """What the sweep is doing, in words, with a severity, from what the feed sent and the user asked."""
    s, end, feed = pump.state, pump.end, pump.feed
    return status_line(
        StatusInputs(
            live=pump.live,
            started=s.started,
            finished=s.finished,
            sweep_status=s.status,
            reason=s.reason,
            stopping=controls.stopping,
            died=end.detail if end is not None and end.kind == "died" else None,
            run_dir=s.run_dir or "",
            paused=controls.pause_requested or s.paused,
            watch=feed.watch if feed is not None else None,
            stage=s.stage if pump.live else "",
        )
    )


def screenshot_name(run_dir: Path, now: time.struct_time) -> str:
    """screenshot-YYYYmmdd-HHMMSS.svg, with -2, -3 ... when that name is taken (two in a second)."""
    stem = time.strftime("screenshot-%Y%m%d-%H%M%S", now)
    name, n = f"{stem}.svg", 2
    while (run_dir / name).exists():
        name, n = f"{stem}-{n}.svg", n + 1
    return name
