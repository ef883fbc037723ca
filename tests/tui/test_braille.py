"""The braille plot renderer: dots where the data is, frame, ticks and marks."""

from __future__ import annotations

import numpy as np
import pytest

from tui.render.braille import BRAILLE_BASE, Chart, Line, _tick_labels, render_chart, segment_dots


def lines_of(chart: Chart, w: int, h: int) -> list[str]:
    return render_chart(chart, w, h).plain.split("\n")


def test_segment_dots_join_points_without_gaps():
    c, r = segment_dots(np.array([0.0, 10.0]), np.array([0.0, 5.0]))
    assert c.tolist() == list(range(11))
    assert r[0] == 0 and r[-1] == 5 and np.all(np.diff(r) >= 0)


def test_a_rising_line_goes_from_bottom_left_to_top_right():
    chart = Chart("t", [Line(np.array([0.0, 1.0]), np.array([0.0, 1.0]), "red")], (0, 1), (0, 1))
    rows = lines_of(chart, 20, 10)
    assert len(rows) == 10 and all(len(r) == 20 for r in rows)
    canvas = [row[1:-1] for row in rows[2:8]]  # inside the frame
    bottom, top = canvas[-1], canvas[0]
    assert bottom[0] != " " and top[-1] != " "  # starts bottom left, ends top right
    assert top[0] == " " and bottom[-1] == " "
    assert all(ord(ch) >= BRAILLE_BASE or ch == " " for row in canvas for ch in row)


def test_title_ticks_and_frame_are_drawn():
    chart = Chart(
        "bs 60",
        [Line(np.array([0.0, 100.0]), np.array([2.0, 0.5]), "red")],
        (0, 100),
        (0, 2),
        xticks=[(0, "0"), (50, "50"), (100, "100")],
        yticks=[(0, "0"), (1, "1"), (2, "2")],
    )
    rows = lines_of(chart, 30, 12)
    assert rows[0].strip() == "bs 60"
    assert rows[1].startswith(" ┌") and rows[-2].startswith(" └")
    assert rows[2].startswith("2┤") and rows[-3].startswith("0┤")
    assert rows[-2].count("┬") == 3
    assert rows[-1].split() == ["0", "50", "100"]


def test_marks_fill_empty_cells_only_and_points_outside_are_dropped():
    chart = Chart(
        "",
        [
            Line(np.array([0.0, 10.0]), np.array([0.5, 0.5]), "red"),
            Line(np.array([5.0]), np.array([99.0]), "blue"),
        ],
        (0, 10),
        (0, 1),
        vlines=[(5.0, "yellow")],
    )
    rows = lines_of(chart, 24, 10)
    canvas = [row[1:-1] for row in rows[2:8]]  # 22 x 6 cells
    mark_cols = {i for row in canvas for i, ch in enumerate(row) if ch == "│"}
    assert mark_cols == {10}  # x = 5 of 0..10 on 22 columns
    data_rows = [row for row in canvas if any(ord(ch) >= BRAILLE_BASE for ch in row)]
    assert len(data_rows) == 1  # the flat line at 0.5; the point at y = 99 is outside: dropped
    assert ord(data_rows[0][10]) >= BRAILLE_BASE  # the data wins over the mark in its cell
    assert sum(row.count("│") for row in canvas) == 5


def test_too_small_to_plot_shows_the_title():
    chart = Chart("bs 6000", [], (0, 1), (0, 1), yticks=[(0, "0.001")])
    assert render_chart(chart, 6, 3).plain.split("\n") == ["bs 600", " " * 6, " " * 6]
    assert render_chart(chart, 9, 3).plain.split("\n")[0] == " bs 6000 "


def test_small_multiples_of_one_grid_share_their_tick_label_width():
    """Per-run y ranges give labels of different widths ("2" vs "0.05"); one width per grid keeps the frames
    of a row of plots lined up."""
    from tui.render.charts import PlotFrame, y_label_width, y_ticks
    from tui.state.view import View

    frames = [PlotFrame(View(), (0.0, 100.0), (0.0, 2.0)), PlotFrame(View(), (0.0, 100.0), (0.05, 0.25))]
    widths = {max(len(label) for _, label in y_ticks(f, 12)) for f in frames}
    assert len(widths) == 2  # on their own they differ
    shared = y_label_width(frames, 12)
    x = np.linspace(0, 100, 50)
    corners = set()
    for f in frames:
        chart = Chart(
            "run",
            [Line(x, np.linspace(f.ylim[1], f.ylim[0], 50), "red")],
            f.xlim,
            f.ylim,
            yticks=y_ticks(f, 12),
            label_width=shared,
        )
        corners.add(render_chart(chart, 40, 12).plain.splitlines()[1].index("┌"))
    assert len(corners) == 1


@pytest.mark.parametrize("width", [24, 30, 40, 80])
def test_the_x_axis_always_shows_its_range_and_unit(width):
    """Was: "0 ... iteration" with no upper value at 80x24, 100x30 and in a 16-run grid."""
    cols = {0: "0", 8: "2000", 16: "4000", width - 8: "6000"}
    line = _tick_labels(cols, 3, width, "samples")
    assert line.split()[0] == "0" and "6000" in line and "samples" in line


def test_a_narrow_axis_keeps_its_upper_tick_and_unit_before_its_lower_tick():
    line = _tick_labels({2: "23k", 14: "24k"}, 3, 23, "samples")
    assert "24k" in line and "samples" in line
