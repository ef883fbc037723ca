"""How many plots per row, and how many per page, for small multiples in an area of cells.

Pure: the loss grid asks on every resize; tests check the choices.
"""

from __future__ import annotations

import math

#: The smallest plot worth drawing: below this, small multiples page instead of shrinking
#: (a plot loses ~4 rows to title, rules and tick labels; 8 rows leave 4 of data, 16 dots).
MIN_PLOT_W = 24
MIN_PLOT_H = 8


def grid_columns(n: int, width: int, height: int, min_width: int = 14) -> int:
    """How many plots per row for `n` plots in a width x height area (in cells).

    Picks the layout whose plots have the largest drawing area of a useful shape: each plot
    loses about 5 columns (y ticks, frame) and 4 rows (title, frame, x ticks) to chrome, and a
    loss curve wants its data area about 2.5 cells wide per row. Never makes a plot narrower
    than `min_width`; wraps into rows when the terminal is narrow.
    """
    if n <= 1:
        return 1
    best, best_score = 1, -math.inf
    for cols in range(1, n + 1):
        rows = math.ceil(n / cols)
        w = width / cols
        if cols > 1 and w < min_width:
            break
        score = min((w - 5) / 2.5, height / rows - 4)
        if score > best_score + 1e-9:
            best, best_score = cols, score
    return best


def per_page(n: int, width: int, height: int) -> int:
    """How many of `n` plots fit at once without any being smaller than MIN_PLOT_W x MIN_PLOT_H."""
    if width <= 0 or height <= 0:
        return max(1, n)
    fit = max(1, (width + 1) // (MIN_PLOT_W + 1)) * max(1, height // MIN_PLOT_H)
    return max(1, min(n, fit))


def page_bounds(n: int, size: int, page: int) -> tuple[int, int, int]:
    """(first, end, pages) of page `page` (clamped) when `size` plots fit on one."""
    pages = max(1, math.ceil(n / max(1, size)))
    page = min(max(0, page), pages - 1)
    return page * size, min(n, (page + 1) * size), pages
