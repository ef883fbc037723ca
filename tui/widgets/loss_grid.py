"""Small multiples of one metric, one plot per run, paged when they do not fit; or one overlay.

Every plot shares the x range (window_xlim), and the y range unless the user asked for
one per plot (`y`). Each redraw downsamples every series to its plot's width first, so the
cost does not grow with the length of the sweep. The crosshair's values come back to the
screen in `GridInfo` for its status line.
"""

from __future__ import annotations

import numpy as np
from rich.text import Text
from textual.containers import Container
from textual.widgets import Static

from trainer.analysis.figures import pct
from tui.messages import GridInfo, GridInfoChanged
from tui.render.charts import PlotFrame, overlay_chart, plot_title, run_chart, y_label_width
from tui.render.layout import grid_columns, page_bounds, per_page
from tui.render.looks import sweep_looks
from tui.render.palette import RGB, rgb
from tui.render.plotdata import (
    Series,
    compact,
    first_iter_at,
    iter_to_x,
    series_for,
    shared_ylim,
    value_at,
    window_xlim,
)
from tui.state.progress import run_progress
from tui.state.sweep import RunState, SweepState
from tui.state.view import METRIC_NAMES, View
from tui.widgets.chart import BrailleChart

Looks = dict[str, tuple[str, RGB]]


def x_words(axis: str, x: float) -> str:
    """An x position in its unit, for the crosshair line."""
    if axis == "iteration":
        return f"it {x:,.0f}"
    if axis == "epoch":
        return f"epoch {x:.2f}"
    if axis == "samples":
        return f"{compact(x)} samples"
    return f"{x:.3g} s"


def _reading(run: RunState, series: Series, view: View, x: float) -> float | None:
    """The value of what is drawn for `run` at x (the loss of that very iteration, or its EMA)."""
    if view.metric != "loss":
        value = value_at(series, x)
        return None if value is None else (10**value if view.log_y and view.metric == "test_loss" else value)
    n = len(run.losses)
    if n == 0 or not iter_to_x(run, view.x_axis, 0) <= x <= iter_to_x(run, view.x_axis, n - 1):
        return None  # the run has no loss at that x (it has not got there, or started later)
    i = first_iter_at(run, view.x_axis, x, n)
    i = min(n - 1, i)
    values = run.losses.smooth if series.band_x is not None else run.losses.raw
    v = float(values[i])
    return v if np.isfinite(v) else None


class LossGrid(Container):
    """The plots; `update_view(state, view)` redraws them all."""

    DEFAULT_CSS = """
    LossGrid {
        layout: grid;
        grid-size: 1;
        grid-gutter: 0 1;
        height: 1fr;
        min-height: 6;
    }
    LossGrid > .empty {
        color: $text-muted;
        content-align: center middle;
        width: 1fr;
        height: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._layout_key: tuple[object, ...] = ()
        self._count = 0  # plots in the grid (children mount and unmount asynchronously)
        self._drawn: dict[int, tuple[object, ...]] = {}  # per plot: what it shows now
        self._state: SweepState | None = None
        self._view = View()
        self.info = GridInfo()

    def page_size(self, n_runs: int, overlay: bool) -> int:
        return max(1, n_runs) if overlay else per_page(n_runs, self.size.width, self.size.height)

    def update_view(self, state: SweepState, view: View) -> GridInfo:
        """Redraw every plot from `state` (cheap: downsampled to the plot widths)."""
        self._state, self._view = state, view
        runs = [r for r in state.run_list() if r.run not in view.hidden]
        first, end, pages = page_bounds(len(runs), self.page_size(len(runs), view.overlay), view.page)
        key = (view.overlay, tuple(r.run for r in runs[first:end]))
        if key != self._layout_key:
            self._layout_key = key
            self._rebuild(end - first, view.overlay)
        else:
            self._fit_columns()
            self._draw()
        return self.info

    def _rebuild(self, n_plots: int, overlay: bool) -> None:
        self.remove_children()
        self._drawn = {}
        if n_plots == 0:
            self._count = 1
            self._fit_columns()
            self.mount(Static("waiting for the sweep to start…", classes="empty"))
            return
        count = self._count = 1 if overlay else n_plots
        self.mount_all([BrailleChart(classes="loss-plot") for _ in range(count)])
        self._fit_columns()
        self.call_after_refresh(self._draw)

    def _fit_columns(self) -> None:
        cols = grid_columns(max(1, self._count), self.size.width, self.size.height)
        if self.styles.grid_size_columns != cols:
            self.styles.grid_size_columns = cols

    def on_resize(self) -> None:
        self._drawn = {}
        if self._state is not None:  # re-laid out only if the page now holds other runs (no blank frame)
            self.update_view(self._state, self._view)

    def _changed(self, plot: BrailleChart, key: tuple[object, ...]) -> bool:
        """True (and remembered) when a plot's inputs differ from what it shows."""
        full = (*key, plot.size.width, plot.size.height)
        if self._drawn.get(id(plot)) == full:
            return False
        self._drawn[id(plot)] = full
        return True

    def _draw(self) -> None:
        state, view = self._state, self._view
        if state is None:
            return
        plots = list(self.query(BrailleChart))
        looks = sweep_looks(
            state.run_list()
        )  # now, not at update_view: runs may have started since (deferred draw)
        runs = [
            r for r in state.run_list() if r.run not in view.hidden
        ]  # labels and colours stay as unhidden
        if not runs or not plots or len(plots) != self._count:
            return  # a rebuild is under way; it draws when mounted
        first, end, pages = page_bounds(len(runs), self.page_size(len(runs), view.overlay), view.page)
        shown = runs[first:end]
        xlim = window_xlim(runs, view)
        columns = plots[0].data_columns
        measured = runs if view.shared_y else shown  # a shared y range covers the runs of every page
        # Windowed small multiples: each plot its own run's window (never emptied by a longer run).
        xlims = {
            r.run: window_xlim([r], view) if view.window != "full" and not view.overlay else xlim
            for r in measured
        }
        series = {r.run: series_for(r, view, xlims[r.run], columns) for r in measured}
        diverged = {r.run for r in runs if r.status in ("diverged", "collapsed")}
        target = state.target_accuracy
        shared = shared_ylim(list(series.values()), diverged, view.log_y, view.metric, target)
        versions = tuple((r.version, r.status) for r in runs)
        info = GridInfo(
            pages,
            f"runs {first + 1}-{end} of {len(runs)}" if pages > 1 else "",
            self._cursor_text(shown, series, view, xlim, looks),
        )
        if info != self.info:  # after a rebuild this runs a refresh later than update_view returned
            self.info = info
            self.post_message(GridInfoChanged(info))
        if view.overlay:
            plot = plots[0]
            if self._changed(plot, (view, xlim, shared, versions)):
                entries = [(series[r.run], looks[r.run][1], looks[r.run][0]) for r in shown]
                frame = PlotFrame(view, xlim, shared, target)
                title = f"{METRIC_NAMES[view.metric]} · all runs"
                plot.show(lambda w, h: overlay_chart(entries, frame, title, w, h))
            return
        several_devices = len({r.device for r in runs if r.device}) > 1
        ylims = {
            run.run: shared
            if view.shared_y
            else shared_ylim([series[run.run]], None, view.log_y, view.metric, target)
            for run in shown
        }
        label_w = y_label_width(
            [PlotFrame(view, xlims[r.run], ylims[r.run], target) for r in shown], plots[0].size.height
        )
        with self.app.batch_update():
            for run, plot in zip(shown, plots):
                s = series[run.run]
                ylim = ylims[run.run]
                run_xlim = xlims[run.run]
                if not self._changed(plot, (view, run.run, run.version, run.status, run_xlim, ylim, label_w)):
                    continue  # nothing new for this run: no repaint
                label, color = looks[run.run]
                frac = run_progress(run).fraction
                progress = f"{frac:.0%}" if frac is not None else ""
                title = plot_title(run, label, plot.size.width - 1, progress, several_devices)
                frame = PlotFrame(view, run_xlim, ylim, target, label_w)
                plot.show(
                    lambda w, h, run=run, s=s, frame=frame, color=color, title=title: run_chart(
                        run, s, frame, color, title, run.run == view.focus, w, h
                    )
                )

    def _cursor_text(
        self,
        runs: list[RunState],
        series: dict[str, Series],
        view: View,
        xlim: tuple[float, float] | None,
        looks: Looks,
    ) -> Text | None:
        """'it 1,200 │ bs 1 lr 0.02 2.31 │ bs 6 …': every shown run's value at the crosshair."""
        if view.cursor is None or xlim is None:
            return None
        x = xlim[0] + view.cursor * (xlim[1] - xlim[0])
        text = Text(no_wrap=False)
        text.append(x_words(view.x_axis, x), style="bold")
        for run in runs:
            label, color = looks[run.run]
            value = _reading(run, series[run.run], view, x) if run.run in series else None
            text.append(" │ ", style="dim")
            text.append(label, style=rgb(color))
            shown = "-" if value is None else (pct(value) if view.metric == "acc" else compact(value))
            text.append(f" {shown}", style="bold" if run.run == view.focus else "")
        return text
