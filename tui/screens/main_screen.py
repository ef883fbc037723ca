"""The one screen: header, controls, loss grid, then table and timing panel."""
from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer

from tui.widgets.controls_bar import ControlsBar
from tui.widgets.loss_grid import LossGrid
from tui.widgets.run_table import RunTable
from tui.widgets.sweep_header import SweepHeader
from tui.widgets.timing_panel import TimingPanel

#: At least this many columns to show table and timing panel side by side;
#: narrower terminals show one of them (key t swaps).
WIDE = 130


class MainScreen(Screen[None]):
    """Lays the widgets out; the app fills them (it owns the state)."""

    def compose(self) -> ComposeResult:
        yield SweepHeader(id="header")
        yield ControlsBar(id="controls")
        yield LossGrid(id="grid")
        with Horizontal(id="bottom"):
            yield RunTable(id="table")
            yield TimingPanel(id="timing")
        yield Footer(compact=True)  # every key fits in 80 columns, ? help and q quit included

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.width < WIDE, "-narrow")

    def on_mount(self) -> None:
        self.set_class(self.size.width < WIDE, "-narrow")
        self.query_one(RunTable).focus()
