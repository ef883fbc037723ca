"""Run colours, the same in plots, legend, table and timing panel, plus the marks' colours.

Twelve hues that stay apart on dark and light backgrounds and in 256-colour terminals;
a sweep of more runs gets each hue twice, bright and dim (runs i and i + 12).
"""

from __future__ import annotations

RGB = tuple[int, int, int]

RUN_COLORS: tuple[RGB, ...] = (
    (0, 175, 215),  # cyan
    (255, 135, 0),  # orange
    (95, 215, 95),  # green
    (215, 95, 215),  # magenta
    (255, 215, 0),  # yellow
    (135, 135, 255),  # blue
    (255, 95, 95),  # red
    (0, 215, 175),  # teal
    (255, 175, 215),  # pink
    (175, 255, 95),  # lime
    (215, 175, 95),  # tan
    (175, 215, 255),  # sky
)
FAINT: RGB = (88, 88, 88)  # a min/max band or raw series under a smoothed one
SPLIT_MARK = "yellow"  # vertical line where split-backward was switched
BATCH_MARK = "cyan"  # vertical line where a scheduled run's batch size changed
TARGET_MARK = "green"  # vertical line where the target accuracy was reached
TARGET_LINE = "rgb(95,215,95)"  # the target accuracy as a horizontal line
CURSOR = "bold white"  # the crosshair

STATUS_STYLES = {
    "waiting": "dim",
    "running": "bold cyan",
    "done": "green",
    "diverged": "bold red",
    "collapsed": "bold red",
    "oom": "bold magenta",
    "stopped": "yellow",
    "interrupted": "yellow",
    "failed": "bold red",
}


def scale(color: RGB, factor: float) -> RGB:
    """The colour made darker (factor < 1) toward black."""
    return (round(color[0] * factor), round(color[1] * factor), round(color[2] * factor))


def run_color(index: int, total: int = 0) -> RGB:
    """Run `index` of a sweep of `total` runs: its own hue up to 12 runs, then bright/dim pairs."""
    hue = RUN_COLORS[index % len(RUN_COLORS)]
    if total > len(RUN_COLORS) and (index // len(RUN_COLORS)) % 2 == 1:
        return scale(hue, 0.55)
    return hue


def rgb(color: RGB) -> str:
    """A colour as a Rich style string."""
    return f"rgb({color[0]},{color[1]},{color[2]})"


def run_rich_color(index: int, total: int = 0) -> str:
    """The run's colour as a Rich style string."""
    return rgb(run_color(index, total))


def faded(color: RGB) -> RGB:
    """A run that is not in focus (overlay with a focused run): still its hue, well back."""
    return scale(color, 0.4)
