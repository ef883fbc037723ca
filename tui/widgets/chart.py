"""One braille chart widget for every plot of the app: loss grid, overlay and scaling view.

It holds a factory that builds a `tui.render.braille.Chart` for a size, and draws it through
Textual's line API (render_line returns ready Strips). The strips are cached until the
factory, the size or the base style changes: a repaint of an unchanged plot costs nothing,
and converting a Rich Text of a few thousand braille cells on every repaint cost more than
drawing it.
"""

from __future__ import annotations

from typing import Callable

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual.widget import Widget

from tui.render.braille import Chart, chart_rows, render_chart

#: Builds a chart for a size (width, height) in cells.
ChartFactory = Callable[[int, int], Chart]


class BrailleChart(Widget):
    """A cached braille chart; `show(factory)` replaces what it draws."""

    DEFAULT_CSS = """
    BrailleChart {
        width: 1fr;
        height: 1fr;
        min-height: 4;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.factory: ChartFactory | None = None
        #: The chart last built (tests read its lines, ranges and ticks).
        self.chart: Chart | None = None
        self._cache: tuple[tuple[object, ...], list[Strip]] | None = None
        self._styles: dict[tuple[str | None, Style], Style] = {}

    @property
    def data_columns(self) -> int:
        """Data columns worth preparing: braille gives two dots per character cell."""
        return max(8, 2 * max(1, self.size.width - 6))

    def show(self, factory: ChartFactory) -> None:
        """Take a new chart factory; the chart is built at the next render."""
        self.factory = factory
        self._cache = None
        self.refresh()

    def _style(self, color: str | None, base: Style) -> Style:
        key = (color, base)
        style = self._styles.get(key)
        if style is None:
            style = self._styles[key] = base + Style.parse(color) if color else base
        return style

    def strips(self) -> list[Strip]:
        """The chart's lines at the widget's size (cached until the factory, size or style changes)."""
        w, h = self.size.width, self.size.height
        base = self.rich_style
        key = (id(self.factory), w, h, base)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        if self.factory is None or w <= 0 or h <= 0:
            lines: list[Strip] = [Strip.blank(w, base) for _ in range(h)]
        else:
            self.chart = self.factory(w, h)
            lines = [
                Strip([Segment(chunk, self._style(color, base)) for chunk, color in row]).adjust_cell_length(
                    w, base
                )
                for row in chart_rows(self.chart, w, h)
            ]
        self._cache = (key, lines)
        return lines

    def render_line(self, y: int) -> Strip:
        lines = self.strips()
        return lines[y] if 0 <= y < len(lines) else Strip.blank(self.size.width, self.rich_style)

    def chart_text(self) -> Text:
        """The chart as plain Rich text at the widget's size (tests)."""
        w, h = self.size.width, self.size.height
        return render_chart(self.factory(w, h), w, h) if self.factory is not None else Text("")

    def on_resize(self) -> None:
        self._cache = None
        self.refresh()
