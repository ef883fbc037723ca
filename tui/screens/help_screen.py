"""`?`: what every key does and what the plot marks mean."""
from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = [
    ("x", "x axis: iteration → epoch → samples seen → wall time"),
    ("l", "log / linear loss axis"),
    ("m", "smoothing (debiased EMA; the raw loss stays, faint)"),
    ("o", "one overlaid plot of all batch sizes / one plot each"),
    ("c", "scaling view: steps, samples and best lr vs batch size, B_crit fit"),
    ("s", "split-backward on/off for the running sweep (or the Switch)"),
    ("+ -", "chunks k for the next split-backward switch"),
    ("p", "pause / resume the trainer"),
    ("r", "restart the sweep (replay: read the run directory again)"),
    ("d", "detach: the sweep goes on without the app (live: stops and resumes it in its own session); "
          "bstui --attach DIR comes back"),
    ("t", "table / timing panel (narrow terminals)"),
    ("?", "this help"),
    ("q", "quit (stops the trainer; the run directory stays valid)"),
]

TABLE = [
    ("lr", "the run's lr; split on: lr→lr×k, the lr split-backward acts like"),
    ("target", "training wall time until test accuracy reached the target"),
    ("B_simple", "gradient noise scale tr(Σ)/|G|², latest epoch (McCandlish 2018)"),
    ("osc", "loss oscillation: sd of successive loss differences, latest epoch"),
    ("gcos", "cosine between consecutive gradients, latest epoch"),
    ("samples/s", "training samples per second of epoch wall time"),
]

MARKS = [
    ("│ yellow", "split-backward switched on or off"),
    ("│ green", "target accuracy reached"),
    ("░ timing", "epoch time not spent computing: data loading, host work"),
    ("│ scaling", "yellow: fitted B_crit; magenta: measured B_simple"),
]


def help_text() -> Text:
    text = Text()
    text.append("Keys\n", style="bold")
    for key, what in HELP:
        text.append(f"  {key:>4}  ", style="bold cyan")
        text.append(what + "\n")
    text.append("\nTable\n", style="bold")
    for column, what in TABLE:
        text.append(f"  {column:<12}", style="bold")
        text.append(what + "\n")
    text.append("\nMarks\n", style="bold")
    for mark, what in MARKS:
        text.append(f"  {mark:<12}", style="bold")
        text.append(what + "\n")
    text.append("\nEsc, ? or q closes this help; arrows scroll it.", style="dim")
    return text


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
