"""One loss plot: one run (small multiple) or all runs (overlay), on a given y range.

Drawn by tui.braille (numpy) rather than plotext: plotext builds a plot cell by cell
in Python, tens of milliseconds each, and a frame of five must stay under 50 ms
(issue 3). The look is the same: braille dots, a frame, ticks, a title.
"""
from __future__ import annotations

from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

from tui.braille import Chart, Line, chart_rows
from tui.palette import FAINT, SPLIT_MARK, TARGET_MARK
from tui.plotdata import Series, compact, format_tick, nice_ticks


def rgb(color: tuple[int, int, int]) -> str:
    return f"rgb({color[0]},{color[1]},{color[2]})"


@dataclass
class PlotSpec:
    """What one plot shows; built by the loss grid, drawn by `LossPlot`."""

    title: str
    series: list[tuple[Series, tuple[int, int, int]]]
    ylim: tuple[float, float] | None
    log_y: bool
    legend: bool = False


def build_chart(spec: PlotSpec, width: int, height: int) -> Chart:
    """The chart for a spec at a size: lines (faint raw under smoothed), marks, ticks."""
    lines: list[Line] = []
    vlines: list[tuple[float, str]] = []
    xmin = xmax = None
    for series, color in spec.series:
        if series.faint_x is not None and series.faint_y is not None and len(series.faint_x):
            lines.append(Line(series.faint_x, series.faint_y, rgb(FAINT)))
    for series, color in spec.series:
        if len(series.x):
            lines.append(Line(series.x, series.y, rgb(color), series.label))
            xmin = float(series.x[0]) if xmin is None else min(xmin, float(series.x[0]))
            xmax = float(series.x[-1]) if xmax is None else max(xmax, float(series.x[-1]))
        vlines += [(x, SPLIT_MARK) for x, _chunks in series.marks]
        if series.target_x is not None:
            vlines.append((series.target_x, TARGET_MARK))
    if xmin is None or xmax is None:
        xmin, xmax = 0.0, 1.0
    if xmax <= xmin:
        xmin, xmax = xmin - 0.5, xmax + 0.5
    ylim = spec.ylim or (0.0, 1.0)
    yticks = nice_ticks(ylim[0], ylim[1], max(2, min(5, (height - 4) // 2)))
    xticks = nice_ticks(xmin, xmax, max(2, min(6, width // 12)))
    return Chart(
        title=spec.title,
        lines=lines,
        xlim=(xmin, xmax),
        ylim=ylim,
        xticks=[(t, compact(t)) for t in xticks],
        yticks=[(t, format_tick(t, spec.log_y)) for t in yticks],
        vlines=vlines,
        legend=spec.legend,
    )


class LossPlot(Widget):
    """A braille plot of per-iteration loss; data lives in `spec`, drawn at render time.

    Uses Textual's line API (render_line returns ready Strips): converting a styled
    Rich Text of a few thousand braille cells on every repaint cost more than drawing it.
    """

    DEFAULT_CSS = """
    LossPlot {
        width: 1fr;
        height: 1fr;
        min-height: 4;
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.spec: PlotSpec | None = None
        self._cache: tuple[tuple[object, ...], list[Strip]] | None = None
        self._styles: dict[tuple[str | None, Style], Style] = {}

    @property
    def data_columns(self) -> int:
        """Data columns worth drawing: braille gives two dots per character cell."""
        return max(8, 2 * max(1, self.size.width - 6))

    def show(self, spec: PlotSpec) -> None:
        """Take a new spec; the plot is drawn at the next render."""
        self.spec = spec
        self._cache = None
        self.refresh()

    def replot(self) -> None:
        """Redraw from the current spec (after a resize, say)."""
        self._cache = None
        self.refresh()

    def _style(self, color: str | None, base: Style) -> Style:
        key = (color, base)
        style = self._styles.get(key)
        if style is None:
            style = self._styles[key] = base + Style.parse(color) if color else base
        return style

    def strips(self) -> list[Strip]:
        """The plot's lines at the widget's size (cached until the spec, size or style changes)."""
        w, h = self.size.width, self.size.height
        base = self.rich_style
        key = (id(self.spec), w, h, base)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        if self.spec is None or w <= 0 or h <= 0:
            lines: list[Strip] = [Strip.blank(w, base) for _ in range(h)]
        else:
            rows = chart_rows(build_chart(self.spec, w, h), w, h)
            lines = [
                Strip([Segment(chunk, self._style(color, base)) for chunk, color in row]).adjust_cell_length(w, base)
                for row in rows
            ]
        self._cache = (key, lines)
        return lines

    def render_line(self, y: int) -> Strip:
        lines = self.strips()
        return lines[y] if 0 <= y < len(lines) else Strip.blank(self.size.width, self.rich_style)

    def on_resize(self) -> None:
        self.replot()
