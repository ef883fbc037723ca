"""The main screen: header, controls, plots, crosshair line, table and timing panel, system pane.

It owns the view (the view keys' state, tui.state.view.View) and draws every widget from what
the app hands it on each redraw; the app owns the sweep state and the feed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Static

from tui.feeds.system import SystemSnapshot
from tui.messages import GridInfo, GridInfoChanged
from tui.state.status import StatusLine
from tui.state.sweep import SweepState
from tui.state.view import View
from tui.widgets.controls_bar import ControlsBar
from tui.widgets.footer import compact_footer
from tui.widgets.loss_grid import LossGrid
from tui.widgets.run_table import RunTable
from tui.widgets.sweep_header import SweepHeader
from tui.widgets.system_pane import SystemPane
from tui.widgets.timing_panel import TimingPanel

#: At least this many columns to show table and timing panel side by side;
#: narrower terminals show one of them (key t swaps).
WIDE = 130
#: Below this many rows the bottom pane gets shorter (it scrolls) so the plots keep their room.
SHORT = 36


@dataclass(frozen=True)
class Frame:
    """What the app hands the screen on each redraw."""

    state: SweepState
    status: StatusLine
    config_label: str
    run_dir: str
    skipped: int
    #: "" live, "attached" (following a trainer's run directory) or "replay".
    mode: str
    chunks: int


class MainScreen(Screen[None]):
    """Lays the widgets out and keeps the view; the app fills it (it owns the state)."""

    BINDINGS = [
        Binding("a", "cycle('metric')", "metric"),
        Binding("x", "cycle('x_axis')", "axis"),
        Binding("l", "toggle('log_y')", "log"),
        Binding("o", "toggle('overlay')", "overlay"),
        Binding("w", "cycle('window')", "window", show=False),
        Binding("m", "cycle('smoothing')", "smooth", show=False),
        Binding("y", "toggle('shared_y')", "y range", show=False),
        Binding("h", "hide_run", "hide", show=False),
        Binding("H", "show_all", "show all", show=False),
        Binding("S", "sort", "sort", show=False),
        Binding("tab", "focus_run(1)", "focus", show=False, priority=True),
        Binding("shift+tab", "focus_run(-1)", "focus", show=False, priority=True),
        Binding("left", "cursor(-1)", "crosshair", show=False, priority=True),
        Binding("right", "cursor(1)", "crosshair", show=False, priority=True),
        Binding("shift+left", "cursor(-12)", "crosshair", show=False, priority=True),
        Binding("shift+right", "cursor(12)", "crosshair", show=False, priority=True),
        Binding("escape", "cursor_off", "no crosshair", show=False),
        Binding("pageup", "page(-1)", "page", show=False, priority=True),
        Binding("pagedown", "page(1)", "page", show=False, priority=True),
    ]

    view: reactive[View] = reactive(View())
    """The view keys' state: metric, axes, window, smoothing, overlay, focus, crosshair, page."""

    def __init__(self) -> None:
        super().__init__()
        self._frame: Frame | None = None
        self._pages = 1

    def compose(self) -> ComposeResult:
        yield SweepHeader(id="header")
        yield ControlsBar(id="controls")
        yield LossGrid(id="grid")
        yield Static("", id="inspect")
        with Horizontal(id="bottom"):
            yield RunTable(id="table")
            yield TimingPanel(id="timing")
        yield SystemPane(id="system")
        yield compact_footer()

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.width < WIDE, "-narrow")
        self.set_class(event.size.height < SHORT, "-short")

    def on_mount(self) -> None:
        self.set_class(self.size.width < WIDE, "-narrow")
        self.set_class(self.size.height < SHORT, "-short")
        self.query_one(RunTable).focus()

    # -- drawing ----------------------------------------------------------------------------

    def update_from(self, frame: Frame) -> bool:
        """Draw every widget from `frame`; False when the screen has not composed yet."""
        self._frame = frame
        try:
            header, controls = self.query_one(SweepHeader), self.query_one(ControlsBar)
            grid, table, timing = (
                self.query_one(LossGrid),
                self.query_one(RunTable),
                self.query_one(TimingPanel),
            )
            inspect = self.query_one("#inspect", Static)
        except NoMatches:  # a redraw before the screen has composed: draw on the next tick
            return False
        state = frame.state
        view = self.view.for_sweep({r.batch_size for r in state.run_list()})
        if view != self.view:
            self.view = view  # watch_view draws again with it
            return True
        with self.app.batch_update():
            header.update_from(state, frame.config_label, frame.run_dir, frame.skipped, mode=frame.mode)
            info = grid.update_view(state, self.view)
            controls.show(frame.status, frame.chunks, self.view.describe())
            self._show_info(info, inspect)
            table.update_from(state, self.view.hidden, self.view.sort)
            timing.update_from(state)
        return True

    def _show_info(self, info: GridInfo, inspect: Static) -> None:
        """The inspect line: which runs this page shows, and the crosshair's values."""
        self._pages = info.pages
        line = Text(no_wrap=False)
        if info.page_text:
            line.append(f"{info.page_text} (PgUp/PgDn)", style="bold")
        if info.cursor is not None:
            line.append("  " if info.page_text else "")
            line.append_text(info.cursor)
        inspect.display = bool(line.plain)
        inspect.update(line)

    def on_grid_info_changed(self, message: GridInfoChanged) -> None:
        try:
            self._show_info(message.info, self.query_one("#inspect", Static))
        except NoMatches:
            pass

    def show_system(self, snapshot: SystemSnapshot) -> None:
        try:
            self.query_one(SystemPane).show(snapshot)
        except NoMatches:
            pass

    def watch_view(self) -> None:
        if self._frame is not None:
            self.update_from(self._frame)

    # -- view keys --------------------------------------------------------------------------

    def action_cycle(self, name: str) -> None:
        v = self.view
        self.view = {
            "metric": v.cycle_metric,
            "x_axis": v.cycle_x,
            "window": v.cycle_window,
            "smoothing": v.cycle_smoothing,
        }[name]()

    def action_toggle(self, name: str) -> None:
        self.view = self.view.toggle(name)

    def action_focus_run(self, step: int) -> None:
        runs = list(self._frame.state.runs) if self._frame is not None else []
        self.view = self.view.cycle_focus(runs, step)

    def action_hide_run(self) -> None:
        """h: hide the focused run from the plots and the overlay (again: show it)."""
        if self.view.focus is None:
            self.notify("Tab to a run first: h hides the focused run, H shows every run", timeout=4)
            return
        self.view = self.view.toggle_hidden(self.view.focus)

    def action_show_all(self) -> None:
        self.view = self.view.show_all()

    def action_sort(self) -> None:
        self.view = self.view.cycle_sort()

    def action_cursor(self, steps: int) -> None:
        self.view = self.view.move_cursor(steps)

    def action_cursor_off(self) -> None:
        if self.view.cursor is not None:
            self.view = replace(self.view, cursor=None)

    def action_page(self, step: int) -> None:
        self.view = self.view.turn_page(step, self._pages)
