"""Build the braille charts of the loss grid from runs, series and the view: pure.

One function for a small multiple (one run), one for the overlay (every run on the page);
both put the same x range, axis labels, ticks and marks on their charts. The widget only
calls these at its size and caches the result.
"""

from __future__ import annotations

from dataclasses import dataclass

from tui.render.braille import Band, Chart, Line
from tui.render.palette import BATCH_MARK, FAINT, RGB, SPLIT_MARK, TARGET_LINE, TARGET_MARK, faded, rgb
from tui.render.plotdata import Series
from tui.render.ticks import log_ticks, ticks_with_labels
from tui.state.run import RunState
from tui.state.view import METRIC_NAMES, X_LABELS, View

CROSSED = "◆"  # where a run crossed the target accuracy


@dataclass(frozen=True)
class PlotFrame:
    """What every plot of one redraw shares: the view, the x range, the y range and the target."""

    view: View
    xlim: tuple[float, float] | None
    ylim: tuple[float, float] | None
    target: float | None = None
    #: Cells every y tick label takes (at least): the same for every plot of a grid, so the small
    #: multiples' frames line up however wide their own labels are (0: as wide as its own labels).
    label_width: int = 0


def plot_title(run: RunState, label: str, width: int, progress: str = "", show_device: bool = False) -> str:
    """'bs 60 lr 0.02 · split ÷4 · cuda:1 · 45% · running', cut to what fits in `width` cells."""
    parts = [label]
    if run.split_chunks > 1 and run.split_chunks != run.initial_chunks:
        parts.append(f"split ÷{run.split_chunks}")
    if show_device and run.device:
        parts.append(run.device)
    status = f"{progress} {run.status}".strip() if run.status == "running" and progress else run.status
    parts.append(status)
    for title in (
        " · ".join(parts),
        f"{label} · {status}",
        f"{label} {run.status}",
        label,
        f"bs {run.batch_size}",
    ):
        if len(title) <= width:
            return title
    return f"bs {run.batch_size}"[:width]


def y_ticks(frame: PlotFrame, height: int) -> list[tuple[float, str]]:
    """The y ticks of a plot `height` rows high: (value, label)."""
    if frame.ylim is None:
        return []
    rows = max(2, min(6, (height - 4) // 2))
    if frame.view.log_y and frame.view.metric != "acc":
        return log_ticks(*frame.ylim, rows)
    return ticks_with_labels(*frame.ylim, rows, percent=frame.view.metric == "acc")


def y_label_width(frames: list[PlotFrame], height: int) -> int:
    """The widest y tick label of these plots (all `height` rows high): one width for a grid."""
    return max((len(label) for f in frames for _, label in y_ticks(f, height)), default=0)


def _axes(frame: PlotFrame, width: int, height: int) -> dict:
    view = frame.view
    xlim = frame.xlim or (0.0, 1.0)
    ylim = frame.ylim or (0.0, 1.0)
    yticks = y_ticks(frame, height)
    xticks = ticks_with_labels(*xlim, max(2, min(8, width // 11))) if frame.xlim is not None else []
    ylabel = METRIC_NAMES[view.metric] + (" (log)" if view.log_y and view.metric != "acc" else "")
    cursor = xlim[0] + view.cursor * (xlim[1] - xlim[0]) if view.cursor is not None and frame.xlim else None
    return dict(
        xlim=xlim,
        ylim=ylim,
        xticks=xticks,
        yticks=yticks,
        xlabel=X_LABELS[view.x_axis],
        ylabel=ylabel,
        edge_marks=True,
        cursor=cursor,
        label_width=frame.label_width,
    )


def _empty_message(view: View) -> str:
    return "no losses yet" if view.metric == "loss" else "no evaluation yet"


def _target_marks(series: Series, frame: PlotFrame, color: str) -> tuple[list, list, list]:
    """(vlines, hlines, points): loss view: a vertical mark where the target was reached;
    accuracy view: the target as a line and a glyph where the run crossed it."""
    if frame.view.metric == "acc":
        hlines = [(frame.target, TARGET_LINE)] if frame.target is not None else []
        points = (
            [(series.target_x, frame.target, CROSSED, color)]
            if series.target_x is not None and frame.target is not None
            else []
        )
        return [], hlines, points
    vlines = (
        [(series.target_x, TARGET_MARK)]
        if series.target_x is not None and frame.view.metric == "loss"
        else []
    )
    return vlines, [], []


def run_chart(
    run: RunState,
    series: Series,
    frame: PlotFrame,
    color: RGB,
    title: str,
    focused: bool,
    width: int,
    height: int,
) -> Chart:
    """One run's small multiple."""
    c = rgb(color)
    bands = (
        [Band(series.band_x, series.band_y, series.band_y, rgb(FAINT))] if series.band_x is not None else []
    )
    vlines, hlines, points = _target_marks(series, frame, c)
    vlines += [(x, SPLIT_MARK) for x, _ in series.marks] if frame.view.metric == "loss" else []
    vlines += [(x, BATCH_MARK) for x, _ in series.batch_marks]  # a scheduled run's batch-size changes
    return Chart(
        title=title,
        lines=[Line(series.x, series.y, c)],
        bands=bands,
        vlines=vlines,
        hlines=hlines,
        points=points,
        title_style="bold reverse" if focused else "bold",
        message="" if len(series.x) else _empty_message(frame.view),
        **_axes(frame, width, height),
    )


def overlay_chart(
    entries: list[tuple[Series, RGB, str]], frame: PlotFrame, title: str, width: int, height: int
) -> Chart:
    """Every run of `entries` (series, colour, label) in one plot; the focused run drawn last and
    bright (with its band), the others dimmed; the legend right of the frame."""
    focus = frame.view.focus
    order = [e for e in entries if e[0].run != focus] + [e for e in entries if e[0].run == focus]
    lines: list[Line] = []
    bands: list[Band] = []
    hlines: list = []
    points: list = []
    for series, color, label in order:
        dim = focus is not None and series.run != focus
        c = rgb(faded(color) if dim else color)
        if series.run == focus and series.band_x is not None:
            bands.append(Band(series.band_x, series.band_y, series.band_y, rgb(FAINT)))
        lines.append(Line(series.x, series.y, c, label))
        _, h, p = _target_marks(series, frame, c)
        hlines, points = hlines or h, points + p
    legend = [
        (label, rgb(faded(color) if focus is not None and s.run != focus else color), s.run == focus)
        for s, color, label in entries
    ]
    return Chart(
        title=title,
        lines=lines,
        bands=bands,
        hlines=hlines,
        points=points,
        legend=legend,
        message="" if any(len(s.x) for s, _, _ in entries) else _empty_message(frame.view),
        **_axes(frame, width, height),
    )
