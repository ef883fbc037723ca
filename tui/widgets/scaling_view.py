"""The scaling view (issue 4): steps and samples to target, and best lr, against batch size.

Three braille charts (tui.braille, log10 values plotted directly) and the facts in
words: fitted B_crit, measured B_simple, or why there is no fit yet. The charts are
built by tui.scaling from the sweep state; this file only lays them out and draws them.
"""
from __future__ import annotations

from typing import Callable

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, VerticalScroll
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Static

from tui.braille import Chart, chart_rows
from tui.scaling import Analysis, analyses, facts_text, lr_chart, target_chart
from tui.state import SweepState

#: Builds a chart for a size (width, height) in cells.
ChartFactory = Callable[[int, int], Chart]


class ChartPlot(Widget):
    """A braille chart drawn through the line API, rebuilt only when its factory or size changes."""

    DEFAULT_CSS = """
    ChartPlot {
        width: 1fr;
        height: 1fr;
        min-height: 6;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.factory: ChartFactory | None = None
        self._cache: tuple[tuple[object, ...], list[Strip]] | None = None

    def show(self, factory: ChartFactory) -> None:
        """Take a new chart factory; drawn at the next render."""
        self.factory = factory
        self._cache = None
        self.refresh()

    def chart_text(self) -> str:
        """The chart as plain text at the widget's size (tests read it)."""
        return "\n".join(strip.text for strip in self.strips())

    def strips(self) -> list[Strip]:
        w, h = self.size.width, self.size.height
        base = self.rich_style
        key = (id(self.factory), w, h, base)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        if self.factory is None or w <= 0 or h <= 0:
            lines = [Strip.blank(w, base) for _ in range(h)]
        else:
            rows = chart_rows(self.factory(w, h), w, h)
            lines = [
                Strip([Segment(chunk, base + Style.parse(color) if color else base) for chunk, color in row])
                .adjust_cell_length(w, base)
                for row in rows
            ]
        self._cache = (key, lines)
        return lines

    def render_line(self, y: int) -> Strip:
        lines = self.strips()
        return lines[y] if 0 <= y < len(lines) else Strip.blank(self.size.width, self.rich_style)

    def on_resize(self) -> None:
        self._cache = None
        self.refresh()


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
            yield ChartPlot(id="scaling-steps")
            yield ChartPlot(id="scaling-samples")
            yield ChartPlot(id="scaling-lr")
            with VerticalScroll(id="scaling-facts-box"):
                yield Static("", id="scaling-facts")

    def update_from(self, state: SweepState) -> None:
        """Recompute from the state if it changed since the last call (the analysis is cheap, not free)."""
        key = (id(state), state.version)
        if key == self._drawn:
            return
        self._drawn = key
        arms = self.arms = analyses(state)
        self.query_one("#scaling-steps", ChartPlot).show(lambda w, h: target_chart(arms, "steps", w, h))
        self.query_one("#scaling-samples", ChartPlot).show(lambda w, h: target_chart(arms, "samples", w, h))
        self.query_one("#scaling-lr", ChartPlot).show(lambda w, h: lr_chart(arms, w, h))
        self.query_one("#scaling-facts", Static).update(facts_text(state, arms))

    def facts(self) -> Text:
        """The facts panel's text (tests read it)."""
        return self.query_one("#scaling-facts", Static).render()  # type: ignore[return-value]
