"""A line chart drawn with braille dots, in numpy: frame, ticks, axis labels, lines, bands, marks.

plotext builds a plot cell by cell in Python (tens of ms for one 50x20 plot); a frame of
the loss grid must cost under 20 ms for five plots (bench/ui.py measures both).
Here the dots of every segment and band are computed with numpy, and each row of cells is
made into runs of one colour with numpy too: about a millisecond per plot.

Each character cell holds 2 x 4 dots (U+2800 braille patterns), so a canvas of W x H
cells has 2W x 4H dots. Layout, top to bottom: title; top rule carrying the y-axis label;
canvas rows with y tick labels on the left; bottom rule with x tick marks; x tick labels
with the x-axis label at the right. An optional legend sits right of the frame, outside
the data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from rich.text import Text

# Bit of each dot (column dx 0..1, row dy 0..3 from the top) in a braille cell.
_BITS = np.array([[0x01, 0x02, 0x04, 0x40], [0x08, 0x10, 0x20, 0x80]], dtype=np.uint8)
BRAILLE_BASE = 0x2800
SPACE = ord(" ")
OVER, UNDER = "▴", "▾"  # a series goes past the top / bottom of the y range in this column


@dataclass
class Line:
    """One series: points (x, y) joined by straight segments, in one colour."""

    x: np.ndarray
    y: np.ndarray
    color: str  # a Rich style, e.g. "rgb(0,175,215)"
    label: str = ""


@dataclass
class Band:
    """A filled vertical extent per point (x, lo..hi): the min/max of a series under its EMA."""

    x: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    color: str


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
    #: Horizontal marks (a target line): (y, colour); drawn in cells the data leaves empty.
    hlines: list[tuple[float, str]] = field(default_factory=list)
    #: Single glyphs over the data, e.g. where a run crossed the target: (x, y, glyph, colour).
    points: list[tuple[float, float, str, str]] = field(default_factory=list)
    bands: list[Band] = field(default_factory=list)
    #: (label, colour, emphasised) per entry, drawn right of the frame; True: one entry per line.
    legend: list[tuple[str, str, bool]] | bool = False
    xlabel: str = ""
    ylabel: str = ""
    #: Cells the y tick labels take at least (a grid gives all its plots one width, so they line up).
    label_width: int = 0
    title_style: str = "bold"
    #: Mark (▴ ▾) the columns where a line leaves the y range, instead of silently dropping it.
    edge_marks: bool = False
    #: The crosshair's x, drawn over empty cells in `cursor_color`.
    cursor: float | None = None
    cursor_color: str = "bold white"
    #: Said in the middle of an empty canvas ("no evaluation yet").
    message: str = ""


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


class _Canvas:
    """Cells of braille bits with an owner colour per cell, plus glyphs drawn over them."""

    def __init__(self, chart: Chart, cw: int, ch: int) -> None:
        self.cw, self.ch = cw, ch
        self.palette: list[str] = []
        (self.x0, x1), (self.y0, self.y1) = chart.xlim, chart.ylim
        self.xspan = (x1 - self.x0) or 1.0
        self.yspan = (self.y1 - self.y0) or 1.0
        self.line_bits = np.zeros((ch, cw), dtype=np.uint8)
        self.band_bits = np.zeros((ch, cw), dtype=np.uint8)
        self.owner = np.full((ch, cw), -1, dtype=np.int32)
        self.band_owner = np.full((ch, cw), -1, dtype=np.int32)
        self.code = np.zeros((ch, cw), dtype=np.int32)  # a glyph drawn over the data (0: none)
        self.code_owner = np.full((ch, cw), -1, dtype=np.int32)
        self.empty_code = np.zeros((ch, cw), dtype=np.int32)  # marks shown only where no data is
        self.empty_owner = np.full((ch, cw), -1, dtype=np.int32)

    def color(self, color: str) -> int:
        if color not in self.palette:
            self.palette.append(color)
        return self.palette.index(color)

    def dot_cols(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.x0) / self.xspan * (2 * self.cw - 1)

    def dot_rows(self, y: np.ndarray) -> np.ndarray:
        return (self.y1 - np.asarray(y, dtype=np.float64)) / self.yspan * (4 * self.ch - 1)

    def cell_col(self, x: float) -> int:
        return int(round((x - self.x0) / self.xspan * (self.cw - 1)))

    def cell_row(self, y: float) -> int:
        return int(round((self.y1 - y) / self.yspan * (self.ch - 1)))

    def band(self, band: Band) -> None:
        cols = np.rint(self.dot_cols(band.x)).astype(np.int64)
        top = np.rint(self.dot_rows(band.hi)).astype(np.int64)
        bottom = np.rint(self.dot_rows(band.lo)).astype(np.int64)
        dots_w, dots_h = 2 * self.cw, 4 * self.ch
        ok = (cols >= 0) & (cols < dots_w) & np.isfinite(band.lo) & np.isfinite(band.hi)
        if not ok.any():
            return
        lo_row = np.full(dots_w, dots_h, dtype=np.int64)
        hi_row = np.full(dots_w, -1, dtype=np.int64)
        np.minimum.at(lo_row, cols[ok], np.clip(top[ok], 0, dots_h - 1))
        np.maximum.at(hi_row, cols[ok], np.clip(bottom[ok], 0, dots_h - 1))
        rows = np.arange(dots_h)[:, None]
        mask = (rows >= lo_row[None, :]) & (rows <= hi_row[None, :])
        bits = (
            (mask.reshape(self.ch, 4, self.cw, 2) * _BITS.T[None, :, None, :])
            .sum(axis=(1, 3))
            .astype(np.uint8)
        )
        filled = bits > 0
        self.band_bits |= bits
        self.band_owner[filled] = self.color(band.color)

    def line(self, line: Line, edge_marks: bool) -> None:
        if len(line.x) == 0:
            return
        ci = self.color(line.color)
        cols, rows = self.dot_cols(line.x), self.dot_rows(line.y)
        ok = np.isfinite(cols) & np.isfinite(rows)
        c, r = segment_dots(cols[ok], rows[ok])
        dots_w, dots_h = 2 * self.cw, 4 * self.ch
        inside = (c >= 0) & (c < dots_w) & (r >= 0) & (r < dots_h)
        ci_, ri_ = c[inside], r[inside]
        cy, cx = ri_ // 4, ci_ // 2
        np.bitwise_or.at(self.line_bits, (cy, cx), _BITS[ci_ % 2, ri_ % 4])
        self.owner[cy, cx] = ci  # the last series drawn owns a shared cell
        if edge_marks:
            for beyond, row, glyph in ((r < 0, 0, OVER), (r >= dots_h, self.ch - 1, UNDER)):
                out = beyond & (c >= 0) & (c < dots_w)
                if out.any():
                    xs = np.unique(c[out] // 2)
                    self.code[row, xs] = ord(glyph)
                    self.code_owner[row, xs] = ci

    def vline(self, x: float, color: str) -> None:
        col = self.cell_col(x)
        if 0 <= col < self.cw:
            self.empty_code[:, col] = ord("│")
            self.empty_owner[:, col] = self.color(color)

    def hline(self, y: float, color: str) -> None:
        row = self.cell_row(y)
        if 0 <= row < self.ch:
            free = self.empty_code[row] == 0
            self.empty_code[row, free] = ord("╌")
            self.empty_owner[row, free] = self.color(color)

    def glyph(self, x: float, y: float, glyph: str, color: str) -> None:
        col, row = self.cell_col(x), self.cell_row(y)
        if 0 <= col < self.cw and 0 <= row < self.ch:
            self.code[row, col] = ord(glyph)
            self.code_owner[row, col] = self.color(color)

    def message(self, text: str) -> None:
        text = text[: self.cw]
        row, start = self.ch // 2, (self.cw - len(text)) // 2
        self.code[row, start : start + len(text)] = [ord(c) for c in text]
        self.code_owner[row, start : start + len(text)] = self.color("dim")

    def rows(self) -> list[Row]:
        """Each canvas row as runs of one colour: glyph > line > band > mark > blank."""
        has_line = self.line_bits > 0
        bits = np.where(has_line, self.line_bits, self.band_bits)
        owner = np.where(has_line, self.owner, self.band_owner)
        code = np.where(bits > 0, BRAILLE_BASE + bits.astype(np.int32), 0)
        empty = code == 0
        code = np.where(empty, self.empty_code, code)
        owner = np.where(empty, self.empty_owner, owner)
        over = self.code > 0
        code = np.where(over, self.code, code)
        owner = np.where(over, self.code_owner, owner)
        code[code == 0] = SPACE
        owner[code == SPACE] = -1
        out: list[Row] = []
        for r in range(self.ch):
            text = "".join(map(chr, code[r].tolist()))
            own = owner[r]
            cuts = np.flatnonzero(own[1:] != own[:-1]) + 1
            starts = [0, *cuts.tolist()]
            ends = [*cuts.tolist(), self.cw]
            out.append(
                [(text[a:b], self.palette[own[a]] if own[a] >= 0 else None) for a, b in zip(starts, ends)]
            )
        return out


def _legend_entries(chart: Chart) -> list[tuple[str, str, bool]]:
    if chart.legend is True:
        return [(line.label, line.color, False) for line in chart.lines if line.label]
    return list(chart.legend) if chart.legend else []


def chart_rows(chart: Chart, width: int, height: int) -> list[Row]:
    """The chart as `height` rows of `width` cells."""
    width, height = max(1, width), max(1, height)
    label_w = max([chart.label_width] + [len(label) for _, label in chart.yticks])
    legend = _legend_entries(chart)
    legend_w = min(max((len(lbl) for lbl, _, _ in legend), default=0) + 3, width // 3) if legend else 0
    cw = width - label_w - 2 - legend_w  # canvas cells inside the frame
    ch = height - 4  # title, top rule, bottom rule, x labels
    if cw < 2 or ch < 1:
        return [[(chart.title[:width].center(width), None)]] + [[(" " * width, None)]] * (height - 1)
    canvas = _Canvas(chart, cw, ch)
    for band in chart.bands:
        canvas.band(band)
    for line in chart.lines:
        canvas.line(line, chart.edge_marks)
    for y, color in chart.hlines:
        canvas.hline(y, color)
    for x, color in chart.vlines:
        canvas.vline(x, color)
    if chart.cursor is not None:
        canvas.vline(chart.cursor, chart.cursor_color)
    for x, y, glyph, color in chart.points:
        canvas.glyph(x, y, glyph, color)
    if chart.message:
        canvas.message(chart.message)

    ytick_rows: dict[int, str] = {}
    for value, label in chart.yticks:
        row = canvas.cell_row(value)
        if 0 <= row < ch and row not in ytick_rows:
            ytick_rows[row] = label
    xtick_cols: dict[int, str] = {}
    for value, label in chart.xticks:
        col = canvas.cell_col(value)
        if 0 <= col < cw:
            xtick_cols[col] = label

    pad = " " * label_w
    ylabel = chart.ylabel[: max(0, cw - 2)]
    top = "┌" + (ylabel + "─" * (cw - len(ylabel)) if ylabel else "─" * cw) + "┐"
    frame_w = label_w + cw + 2
    rows: list[Row] = [[(chart.title[:width].center(width), chart.title_style)], [(pad + top, None)]]
    for r, cells in enumerate(canvas.rows()):
        label = ytick_rows.get(r)
        row: Row = [((label.rjust(label_w) + "┤") if label is not None else (pad + "│"), None)]
        row += cells
        row.append(("│", None))
        rows.append(row)
    bottom = "".join("┬" if col in xtick_cols else "─" for col in range(cw))
    rows.append([(pad + "└" + bottom + "┘", None)])
    rows.append([(_tick_labels(xtick_cols, label_w + 1, frame_w, chart.xlabel), None)])
    if legend_w:
        _add_legend(rows, legend, legend_w, ch)
    return rows


def _add_legend(rows: list[Row], legend: list[tuple[str, str, bool]], legend_w: int, ch: int) -> None:
    """Entries right of the frame from the top rule down; the ones that do not fit are counted."""
    room = ch + 2  # top rule to bottom rule
    shown = legend if len(legend) <= room else legend[: room - 1]
    for i in range(room):
        target = rows[1 + i]
        if i < len(shown):
            label, color, strong = shown[i]
            text = label[: legend_w - 3].ljust(legend_w - 3)
            target += [(" ━ ", color), (text, f"bold {color}" if strong else None)]
        elif i == len(shown) and len(shown) < len(legend):
            target.append((f" +{len(legend) - len(shown)} more".ljust(legend_w), "dim"))
        else:
            target.append((" " * legend_w, None))


def _tick_labels(cols: dict[int, str], offset: int, width: int, axis_label: str = "") -> str:
    """The x tick labels centred under their ticks, skipping any that would overlap. The highest tick and
    the axis label (its unit) always read: the unit at the right end, or right after the lowest tick
    where the highest leaves no room, or in the lowest tick's place where nothing else fits; then the
    lowest tick, then the middle ticks that fit."""
    line = [" "] * width
    taken: list[tuple[int, int]] = []

    def put(start: int, text: str) -> bool:
        end = start + len(text)
        if start < 0 or end > width or any(start <= b and a <= end for a, b in taken):  # a space between
            return False
        line[start:end] = list(text)
        taken.append((start, end))
        return True

    def at(col: int, label: str) -> int:
        return max(0, min(width - len(label), offset + col - len(label) // 2))

    items = sorted(cols.items())
    if items:
        put(at(*items[-1]), items[-1][1])
    placed = bool(axis_label) and put(width - len(axis_label), axis_label)
    if len(items) > 1:
        col, label = items[0]
        if put(at(col, label), label) and axis_label and not placed:
            placed = put(taken[-1][1] + 1, axis_label)
    if axis_label and not placed and len(taken) > 1:  # no room for the lowest tick and the unit: the unit
        start, end = taken.pop()
        line[start:end] = [" "] * (end - start)
        put(0, axis_label)
    for col, label in items[1:-1]:
        put(at(col, label), label)
    return "".join(line).rstrip().ljust(width)[:width]
