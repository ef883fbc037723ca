"""The scaling view (issue 4): steps and samples to target, and best lr, against batch size.

Three braille charts (tui.braille, log10 values plotted directly) and the facts in
words: fitted B_crit, measured B_simple, or why there is no fit yet. The charts are
built by tui.scaling from the sweep state; this file only lays them out and draws them.
"""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.css.query import NoMatches
from textual.containers import Grid, VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

from tui.scaling import Analysis, analyses, facts_text, lr_chart, target_chart
from tui.state import SweepState
from tui.widgets.chart import BrailleChart

class ScalingView(Widget):
    """Steps and samples to target (with the B_crit fits), best lr with the rules, and the facts."""

    DEFAULT_CSS = """
    ScalingView {
        height: 1fr;
    }
    ScalingView > Grid {
        grid-size: 2 2;
        grid-gutter: 0 1;
        height: 1fr;
    }
    ScalingView #scaling-facts-box {
        height: 1fr;
        padding: 0 1;
    }
    ScalingView #scaling-facts {
        width: 100%;
        height: auto;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._drawn: tuple[int, int] | None = None
        #: The analyses last drawn, one per arm of the sweep (tests read them).
        self.arms: dict[str, Analysis] = {}

    def compose(self) -> ComposeResult:
        with Grid():
            yield BrailleChart(id="scaling-steps")
            yield BrailleChart(id="scaling-samples")
            yield BrailleChart(id="scaling-lr")
            with VerticalScroll(id="scaling-facts-box"):
                yield Static("", id="scaling-facts")

    def update_from(self, state: SweepState) -> None:
        """Recompute from the state if it changed since the last call (the analysis is cheap, not free)."""
        key = (id(state), state.version)
        if key == self._drawn:
            return
        try:
            steps = self.query_one("#scaling-steps", BrailleChart)
            samples = self.query_one("#scaling-samples", BrailleChart)
            lr = self.query_one("#scaling-lr", BrailleChart)
            facts = self.query_one("#scaling-facts", Static)
        except NoMatches:  # a redraw came before the view's children mounted; the next one draws
            return
        self._drawn = key
        arms = self.arms = analyses(state)
        steps.show(lambda w, h: target_chart(arms, "steps", w, h))
        samples.show(lambda w, h: target_chart(arms, "samples", w, h))
        lr.show(lambda w, h: lr_chart(arms, w, h))
        facts.update(facts_text(state, arms))

    def facts(self) -> Text:
        """The facts panel's text (tests read it)."""
        return self.query_one("#scaling-facts", Static).render()  # type: ignore[return-value]
