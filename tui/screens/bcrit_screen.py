"""`b`: B_crit over training full screen: a status line, the chart of B_crit and B_simple against training
samples with the proposed schedule drawn on it (tui.render.bcrit), the points and the verdict in words, the
footer. Filled from the app's state on the same redraw timer as the main screen."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Static

from tui.render.bcrit import curve_chart, facts_text
from tui.state.sweep import SweepState
from tui.widgets.chart import BrailleChart
from tui.widgets.footer import compact_footer


class BcritScreen(Screen[None]):
    """B_crit and B_simple over training, with the schedule; b or Esc goes back."""

    DEFAULT_CSS = """
    BcritScreen #bcrit-status {
        height: 1;
        padding: 0 1;
        background: $panel;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    BcritScreen #bcrit-chart {
        height: 2fr;
    }
    BcritScreen #bcrit-facts-box {
        height: 1fr;
        padding: 0 1;
    }
    BcritScreen #bcrit-facts {
        width: 100%;
        height: auto;
    }
    """

    BINDINGS = [Binding("escape", "app.bcrit", "back", show=False)]

    def __init__(self) -> None:
        super().__init__()
        self._drawn: int | None = None  # the state version last drawn

    def compose(self) -> ComposeResult:
        yield Static("", id="bcrit-status")
        yield BrailleChart(id="bcrit-chart")
        with VerticalScroll(id="bcrit-facts-box"):
            yield Static("", id="bcrit-facts")
        yield compact_footer()

    def update_from(self, state: SweepState, status: Text) -> None:
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append("B_crit over training ", style="bold")
        line.append("(b or Esc: back) ", style="dim")
        line.append_text(status)
        try:
            status_line = self.query_one("#bcrit-status", Static)
            chart = self.query_one("#bcrit-chart", BrailleChart)
            facts = self.query_one("#bcrit-facts", Static)
        except NoMatches:  # a redraw came before this screen composed; the next one fills it
            return
        status_line.update(line)
        if self._drawn == state.version:
            return
        self._drawn = state.version
        chart.show(lambda w, h: curve_chart(state, w, h))
        facts.update(facts_text(state))
