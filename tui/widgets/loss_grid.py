"""Small multiples of per-iteration loss, one plot per batch size, on one shared y range.

Wraps into rows on narrow terminals (`grid_columns`); `overlay` swaps the grid for
one plot of every run. Each redraw downsamples every series to its plot's width
first, so the cost does not grow with the length of the sweep.
"""
from __future__ import annotations

from dataclasses import dataclass

from textual.containers import Container
from textual.widgets import Static

from tui.palette import run_color
from tui.plotdata import X_LABELS, Series, grid_columns, prepare_series, shared_ylim
from tui.state import RunState, SweepState
from tui.widgets.loss_plot import LossPlot, PlotSpec


@dataclass(frozen=True)
class GridView:
    """The user's view choices (keys x, l, m, o)."""

    x_axis: str = "iteration"
    log_y: bool = False
    smooth: bool = False
    overlay: bool = False


def plot_title(run: RunState, width: int, show_device: bool = False) -> str:
    """'bs 60 lars · lr 0.02 · split ÷4 · cuda:1 · done', cut to what fits in `width` cells.

    The variant names the [[variants]] arm; the device is shown when the sweep ran on several
    (sweep.parallel), so the grid says which GPU ran what.
    """
    name = f"bs {run.batch_size}" + (f" {run.variant}" if run.variant else "")
    parts = [name, f"lr {run.lr:g}"]
    if run.split_chunks > 1:
        parts.append(f"split ÷{run.split_chunks}")
    if show_device and run.device:
        parts.append(run.device)
    parts.append(run.status)
    for title in (" · ".join(parts), f"{name} · {run.status}", f"{name} {run.status}", f"bs {run.batch_size}"):
        if len(title) <= width:
            return title
    return f"bs {run.batch_size}"


class LossGrid(Container):
    """The loss plots; `update_view(state, view)` redraws them all."""

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
        self._view = GridView()

    def update_view(self, state: SweepState, view: GridView) -> None:
        """Redraw every plot from `state` (cheap: downsampled to the plot widths)."""
        self._state, self._view = state, view
        runs = state.run_list()
        key = (view.overlay, tuple(r.run for r in runs))
        if key != self._layout_key:
            self._layout_key = key
            self._rebuild(len(runs), view.overlay)
            return  # new plots draw on their first resize (sizes are known then)
        self._fit_columns()
        self._draw()

    def _rebuild(self, n_runs: int, overlay: bool) -> None:
        self.remove_children()
        self._drawn = {}
        if n_runs == 0:
            self._count = 1
            self._fit_columns()
            self.mount(Static("waiting for the sweep to start…", classes="empty"))
            return
        count = self._count = 1 if overlay else n_runs
        self.mount_all([LossPlot(classes="loss-plot") for _ in range(count)])
        self._fit_columns()
        self.call_after_refresh(self._draw)

    def _fit_columns(self) -> None:
        cols = grid_columns(max(1, self._count), self.size.width, self.size.height)
        if self.styles.grid_size_columns != cols:
            self.styles.grid_size_columns = cols

    def on_resize(self) -> None:
        self._fit_columns()
        self._drawn = {}
        self.call_after_refresh(self._draw)

    def _changed(self, plot: LossPlot, key: tuple[object, ...]) -> bool:
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
        plots = list(self.query(LossPlot))
        runs = state.run_list()
        if not plots or len(plots) != self._count:
            return  # a rebuild is under way; it draws when mounted
        diverged = {r.run for r in runs if r.status == "diverged"}
        several_devices = len({r.device for r in runs if r.device}) > 1
        axis_note = X_LABELS.get(view.x_axis, view.x_axis)
        if view.overlay:
            plot = plots[0]
            if not self._changed(plot, (view, tuple((r.version, r.status) for r in runs))):
                return
            series = [
                (prepare_series(r, view.x_axis, view.log_y, False, plot.data_columns), run_color(i))
                for i, r in enumerate(runs)
            ]
            ylim = shared_ylim([s for s, _ in series], exclude=diverged, log_y=view.log_y)
            title = f"all batch sizes · {axis_note}" + (" · smoothed" if view.smooth else "")
            if view.smooth:  # overlay: smoothed lines only, raw would be a blur of colours
                series = [
                    (prepare_series(r, view.x_axis, view.log_y, True, plot.data_columns), run_color(i))
                    for i, r in enumerate(runs)
                ]
                for s, _ in series:
                    s.faint_x = s.faint_y = None
                ylim = shared_ylim([s for s, _ in series], exclude=diverged, log_y=view.log_y)
            plot.show(PlotSpec(title=title, series=series, ylim=ylim, log_y=view.log_y, legend=True))
            return
        prepared: list[Series] = [
            prepare_series(r, view.x_axis, view.log_y, view.smooth, p.data_columns) for r, p in zip(runs, plots)
        ]
        ylim = shared_ylim(prepared, include_faint=True, exclude=diverged, log_y=view.log_y)
        with self.app.batch_update():
            for i, (run, plot, series) in enumerate(zip(runs, plots, prepared)):
                if not self._changed(plot, (view, run.version, run.status, run.split_chunks, ylim)):
                    continue  # nothing new for this run: no repaint
                plot.show(
                    PlotSpec(
                        title=plot_title(run, plot.size.width - 8, several_devices),
                        series=[(series, run_color(i))],
                        ylim=ylim,
                        log_y=view.log_y,
                    )
                )
