"""`c`: the scaling view full screen: a status line, the batch x lr matrix, the charts and the
answer in words, the footer.

A screen of its own rather than a panel of the main one: the matrix, three log-log charts and
the answer need the whole terminal at 80x24. The app fills it from its state on the
same redraw timer as the main screen.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Static

from tui.state.sweep import SweepState
from tui.widgets.footer import compact_footer
from tui.widgets.scaling_view import ScalingView


class ScalingScreen(Screen[None]):
    """Steps/samples to target and best lr against batch size; c or Esc goes back."""

    DEFAULT_CSS = """
    ScalingScreen #scaling-status {
        height: 1;
        padding: 0 1;
        background: $panel;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    BINDINGS = [
        Binding("escape", "app.scaling", "back", show=False),
        Binding("m", "metric", "metric", show=False),
        Binding("v", "lower", "samples/time", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield Static("", id="scaling-status")
        yield ScalingView(id="scaling")
        yield compact_footer()

    def action_metric(self) -> None:
        """m: the matrix's next metric."""
        self.query_one(ScalingView).cycle_metric()

    def action_lower(self) -> None:
        """v: the lower chart between samples and time to target."""
        self.query_one(ScalingView).cycle_lower()

    def update_from(self, state: SweepState, status: Text) -> None:
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append("scaling ", style="bold")
        line.append("(c or Esc: back · m: matrix metric · v: samples/time) ", style="dim")
        line.append_text(status)
        try:
            status_line, view = self.query_one("#scaling-status", Static), self.query_one(ScalingView)
        except NoMatches:  # a redraw came before this screen composed; the next one fills it
            return
        status_line.update(line)
        view.update_from(state)
