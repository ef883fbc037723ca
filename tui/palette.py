"""One colour per batch size, the same in plots, table and timing panel."""
from __future__ import annotations

# Distinguishable on dark and light backgrounds, and in 256-colour terminals.
RUN_COLORS: tuple[tuple[int, int, int], ...] = (
    (0, 175, 215),  # cyan
    (255, 135, 0),  # orange
    (95, 215, 95),  # green
    (215, 95, 215),  # magenta
    (255, 215, 0),  # yellow
    (135, 135, 255),  # blue
    (255, 95, 95),  # red
)
FAINT = (88, 88, 88)  # the raw series under a smoothed one
SPLIT_MARK = "yellow"  # vertical line where split-backward was switched
TARGET_MARK = "green"  # vertical line where the target accuracy was reached

STATUS_STYLES = {
    "waiting": "dim",
    "running": "bold cyan",
    "done": "green",
    "diverged": "bold red",
    "oom": "bold magenta",
    "stopped": "yellow",
    "failed": "bold red",
    "collapsed": "bold yellow",
}


def run_color(index: int) -> tuple[int, int, int]:
    return RUN_COLORS[index % len(RUN_COLORS)]


def run_rich_color(index: int) -> str:
    """The run's colour as a Rich style string."""
    r, g, b = run_color(index)
    return f"rgb({r},{g},{b})"
