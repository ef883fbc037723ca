"""One loss plot: one run (small multiple) or all runs (overlay), on a given y range."""
from __future__ import annotations

from dataclasses import dataclass

from textual_plotext import PlotextPlot

from tui.palette import FAINT, SPLIT_MARK, TARGET_MARK
from tui.plotdata import Series, compact, format_tick, nice_ticks


@dataclass
class PlotSpec:
    """What one plot shows; built by the loss grid, drawn by `LossPlot.replot`."""

    title: str
    series: list[tuple[Series, tuple[int, int, int]]]
    ylim: tuple[float, float] | None
    log_y: bool
    legend: bool = False


class LossPlot(PlotextPlot):
    """A plotext plot of per-iteration loss; data lives in `spec`, `replot()` draws it."""

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

    @property
    def data_columns(self) -> int:
        """Data columns worth drawing: braille dots give two per character cell."""
        return max(8, 2 * max(1, self.size.width - 8))

    def show(self, spec: PlotSpec) -> None:
        self.spec = spec
        self.replot()

    def replot(self) -> None:
        """Clear and redraw from `spec` (the plot is built at the next render)."""
        plt = self.plt
        plt.clear_figure()
        spec = self.spec
        if spec is None:
            return
        plt.title(spec.title)
        xmin = xmax = None
        for series, color in spec.series:
            if series.faint_x is not None and series.faint_y is not None and len(series.faint_x):
                plt.plot(series.faint_x.tolist(), series.faint_y.tolist(), marker="braille", color=FAINT)
            if len(series.x):
                label = series.label if spec.legend else None
                plt.plot(series.x.tolist(), series.y.tolist(), marker="braille", color=color, label=label)
                lo, hi = float(series.x[0]), float(series.x[-1])
                xmin = lo if xmin is None else min(xmin, lo)
                xmax = hi if xmax is None else max(xmax, hi)
            for x, _chunks in series.marks:
                plt.vline(x, color=SPLIT_MARK)
            if series.target_x is not None:
                plt.vline(series.target_x, color=TARGET_MARK)
        height = max(1, self.size.height)
        width = max(1, self.size.width)
        if spec.ylim is not None:
            lo, hi = spec.ylim
            plt.ylim(lo, hi)
            ticks = nice_ticks(lo, hi, max(2, min(5, (height - 3) // 2)))
            plt.yticks(ticks, [format_tick(t, spec.log_y) for t in ticks])
        if xmin is not None and xmax is not None and xmax > xmin:
            plt.xlim(xmin, xmax)
            ticks = nice_ticks(xmin, xmax, max(2, min(6, width // 12)))
            plt.xticks(ticks, [compact(t) for t in ticks])
        self.refresh()

    def on_resize(self) -> None:
        # Tick counts depend on the size; the grid re-downsamples for the new width.
        self.replot()
