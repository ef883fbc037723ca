"""A line plot drawn with braille dots, in numpy: frame, ticks, title, series, marks.

plotext builds a plot cell by cell in Python (tens of ms for one 50x20 plot); a
frame of the loss grid must cost under 50 ms for five plots (issue 3). Here the
dots of every line segment are computed with numpy, and only the finished cells
are walked once to make the Rich text: about a millisecond per plot.

Each character cell holds 2 x 4 dots (U+2800 braille patterns), so a plot of W x H
cells has 2W x 4H dots of resolution.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from rich.text import Text

# Bit of each dot (column dx 0..1, row dy 0..3 from the top) in a braille cell.
_BITS = np.array([[0x01, 0x02, 0x04, 0x40], [0x08, 0x10, 0x20, 0x80]], dtype=np.uint8)
BRAILLE_BASE = 0x2800


@dataclass
class Line:
    """One series: points (x, y) joined by straight segments, in one colour."""

    x: np.ndarray
    y: np.ndarray
    color: str  # a Rich colour, e.g. "rgb(0,175,215)"
    label: str = ""


@dataclass
class Chart:
    """Everything one plot shows, in data coordinates."""

    title: str
    lines: list[Line]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    xticks: list[tuple[float, str]] = field(default_factory=list)
    yticks: list[tuple[float, str]] = field(default_factory=list)
    #: Vertical marks: (x, colour); drawn in cells the data leaves empty.
    vlines: list[tuple[float, str]] = field(default_factory=list)
    legend: bool = False


def segment_dots(cols: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every dot on the straight segments joining consecutive (col, row) points."""
    if len(cols) == 0:
        return cols.astype(np.int64), rows.astype(np.int64)
    if len(cols) == 1:
        return np.rint(cols).astype(np.int64), np.rint(rows).astype(np.int64)
    c0, c1 = cols[:-1], cols[1:]
    r0, r1 = rows[:-1], rows[1:]
    steps = np.maximum(np.abs(c1 - c0), np.abs(r1 - r0))
    steps = np.minimum(np.ceil(steps).astype(np.int64), 10_000) + 1  # dots per segment, ends included
    seg = np.repeat(np.arange(len(steps)), steps)
    start = np.cumsum(steps) - steps
    t = (np.arange(int(steps.sum())) - start[seg]) / np.maximum(steps[seg] - 1, 1)
    c = np.rint(c0[seg] + t * (c1[seg] - c0[seg])).astype(np.int64)
    r = np.rint(r0[seg] + t * (r1[seg] - r0[seg])).astype(np.int64)
    return c, r


Row = list[tuple[str, str | None]]  # runs of (text, colour or None) making one line


def render_chart(chart: Chart, width: int, height: int) -> Text:
    """The chart as Rich text: `height` lines of `width` cells (tests, snapshots of one plot)."""
    text = Text(no_wrap=True, overflow="crop", end="")
    for i, row in enumerate(chart_rows(chart, width, height)):
        if i:
            text.append("\n")
        for chunk, color in row:
            text.append(chunk, style=color)
    return text


def chart_rows(chart: Chart, width: int, height: int) -> list[Row]:
    """The chart as `height` rows of `width` cells (title, framed canvas, x tick labels)."""
    width, height = max(1, width), max(1, height)
    ylabels = [label for _, label in chart.yticks]
    label_w = max((len(s) for s in ylabels), default=0)
    cw = width - label_w - 2  # canvas cells inside the frame
    ch = height - 4  # title, top rule, bottom rule, x labels
    if cw < 2 or ch < 1:
        return [[(chart.title[:width].center(width), None)]] + [[(" " * width, None)]] * (height - 1)
    cells = np.zeros((ch, cw), dtype=np.uint8)
    color = np.full((ch, cw), -1, dtype=np.int16)
    palette: list[str] = []
    (x0, x1), (y0, y1) = chart.xlim, chart.ylim
    xspan = (x1 - x0) or 1.0
    yspan = (y1 - y0) or 1.0
    dots_w, dots_h = 2 * cw, 4 * ch
    for line in chart.lines:
        if len(line.x) == 0:
            continue
        palette.append(line.color)
        ci = len(palette) - 1
        cols = (np.asarray(line.x, dtype=np.float64) - x0) / xspan * (dots_w - 1)
        rows = (y1 - np.asarray(line.y, dtype=np.float64)) / yspan * (dots_h - 1)
        ok = np.isfinite(cols) & np.isfinite(rows)
        c, r = segment_dots(cols[ok], rows[ok])
        inside = (c >= 0) & (c < dots_w) & (r >= 0) & (r < dots_h)
        c, r = c[inside], r[inside]
        cy, cx = r // 4, c // 2
        np.bitwise_or.at(cells, (cy, cx), _BITS[c % 2, r % 4])
        color[cy, cx] = ci  # the last series drawn owns a shared cell
    marks = np.full(cw, -1, dtype=np.int16)
    for x, mark_color in chart.vlines:
        col = int(round((x - x0) / xspan * (cw - 1)))
        if 0 <= col < cw:
            palette.append(mark_color)
            marks[col] = len(palette) - 1

    ytick_rows: dict[int, str] = {}
    for value, label in chart.yticks:
        row = int(round((y1 - value) / yspan * (ch - 1)))
        if 0 <= row < ch and row not in ytick_rows:
            ytick_rows[row] = label
    xtick_cols: dict[int, str] = {}
    for value, label in chart.xticks:
        col = int(round((value - x0) / xspan * (cw - 1)))
        if 0 <= col < cw:
            xtick_cols[col] = label

    legend_rows: dict[int, tuple[str, int]] = {}
    if chart.legend:
        for i, line in enumerate(chart.lines[:ch]):
            if line.label:
                legend_rows[i] = (line.label, palette.index(line.color) if line.color in palette else -1)

    pad = " " * label_w
    rows: list[Row] = [[(chart.title[:width].center(width), "bold")], [(pad + "┌" + "─" * cw + "┐", None)]]
    for r in range(ch):
        label = ytick_rows.get(r)
        row: Row = [((label.rjust(label_w) + "┤") if label is not None else (pad + "│"), None)]
        row += _canvas_row(cells[r], color[r], marks, palette, legend_rows.get(r))
        row.append(("│", None))
        rows.append(row)
    bottom = "".join("┬" if col in xtick_cols else "─" for col in range(cw))
    rows.append([(pad + "└" + bottom + "┘", None)])
    rows.append([(_tick_labels(xtick_cols, label_w + 1, width), None)])
    return rows


def _canvas_row(
    cells: np.ndarray,
    colors: np.ndarray,
    marks: np.ndarray,
    palette: list[str],
    legend: tuple[str, int] | None,
) -> Row:
    """One canvas row: braille cells in their series' colour, marks where the row is empty."""
    chars: list[str] = []
    owners: list[int] = []
    for i, (bits, owner) in enumerate(zip(cells.tolist(), colors.tolist())):
        if bits:
            chars.append(chr(BRAILLE_BASE + bits))
            owners.append(owner)
        elif marks[i] >= 0:
            chars.append("│")
            owners.append(int(marks[i]))
        else:
            chars.append(" ")
            owners.append(-1)
    if legend is not None:  # overlay legend: "⣀⣀ bs 60" at the left of the row
        label, owner = legend
        entry = "⣀⣀ " + label
        for i, ch in enumerate(entry[: len(chars)]):
            chars[i] = ch
            owners[i] = owner if i < 2 else -1
    runs: Row = []
    start = 0
    for i in range(1, len(chars) + 1):  # one run per stretch of the same colour
        if i == len(chars) or owners[i] != owners[start]:
            owner = owners[start]
            runs.append(("".join(chars[start:i]), palette[owner] if owner >= 0 else None))
            start = i
    return runs


def _tick_labels(cols: dict[int, str], offset: int, width: int) -> str:
    """The x tick labels centred under their ticks, skipping any that would overlap."""
    line = [" "] * width
    last_end = -1
    for col in sorted(cols):
        label = cols[col]
        start = max(0, min(width - len(label), offset + col - len(label) // 2))
        if start <= last_end:
            continue
        line[start : start + len(label)] = list(label)
        last_end = start + len(label)
    return "".join(line).rstrip().ljust(width)[:width]

