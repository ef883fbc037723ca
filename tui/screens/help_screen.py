"""`?`: what every key does and what the plot marks mean."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.keys import KEYS

TABLE = [
    ("run", "what tells the run apart in this sweep: batch, lr (3 digits), seed, variant, split k"),
    ("lr", "the run's lr; split on: lr→lr×k, the lr split-backward acts like"),
    ("done", "share of the run's planned iterations trained"),
    ("left", "training time the run still needs at its measured rate (the header: the sweep's ETA)"),
    ("acc / best", "test accuracy of the last evaluation / the best so far"),
    ("target", "training wall time until test accuracy reached the target"),
    ("B_simple", "gradient noise scale tr(Σ)/|G|², latest epoch (McCandlish 2018)"),
    ("osc", "loss oscillation: sd of successive loss differences, latest epoch"),
    ("gcos", "cosine between consecutive gradients, latest epoch"),
    ("samples/s", "training samples per second of epoch wall time"),
]

MARKS = [
    ("│ yellow", "split-backward switched on or off"),
    ("│ green", "target accuracy reached"),
    ("│ cyan", "a scheduled run's batch size changed (sweep.batch_schedule)"),
    ("╌ ◆", "accuracy view: the target accuracy; where each run crossed it"),
    ("▴ ▾", "the series goes beyond the y range in that column (a spike); l shows it whole"),
    ("░ band", "min/max of the raw loss under its EMA (where the raw loss is denser than the plot)"),
    ("░ timing", "epoch time not spent computing: data loading, host work"),
    ("│ scaling", "yellow: fitted B_crit; magenta: measured B_simple"),
    ("■ scaling", "a scheduled run at its mean batch size (samples ÷ steps to the target), not in the fit"),
]


def _section(title: str, rows: list[tuple[str, str]], style: str, justify: str) -> Table:
    """A titled two-column grid: a description that wraps stays in its column (a hanging indent)."""
    grid = Table.grid(padding=(0, 2, 0, 0), pad_edge=False)
    grid.title, grid.title_justify, grid.title_style = title, "left", "bold"
    grid.add_column(style=style, justify=justify, no_wrap=True)
    grid.add_column(overflow="fold")
    for name, what in rows:
        grid.add_row(name, what)
    return grid


def help_text() -> Group:
    """Keys, table columns and marks, each description wrapping under itself, not under the key."""
    return Group(
        _section("Keys", KEYS, "bold cyan", "right"),
        Text(""),
        _section("Table", TABLE, "bold", "left"),
        Text(""),
        _section("Marks", MARKS, "bold", "left"),
        Text("\nEsc, ? or q closes this help; arrows scroll it.", style="dim"),
    )


class HelpScreen(ModalScreen[None]):
    """A modal list of keys; any of Esc, ?, q closes it."""

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen > VerticalScroll {
        width: 78;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: round $accent;
        background: $surface;
        padding: 0 1;
    }
    HelpScreen #help-text {
        width: 100%;
        height: auto;
    }
    """

    BINDINGS = [
        Binding("escape", "dismiss", "close"),
        Binding("question_mark", "dismiss", "close", show=False),
        Binding("q", "dismiss", "close", show=False),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll():  # scrolls (arrows, PgUp/PgDn) when the terminal is short
            yield Static(help_text(), id="help-text")
