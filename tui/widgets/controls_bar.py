"""Status and controls in one line: sweep status, split-backward Switch, chunks, view choices."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, Switch

from tui.state.status import StatusLine


class ControlsBar(Horizontal):
    """`#status` says what the sweep is doing; the Switch asks for split-backward on/off."""

    DEFAULT_CSS = """
    ControlsBar {
        height: 1;
        padding: 0 1;
    }
    ControlsBar > Label {
        height: 1;
        margin-right: 1;
    }
    ControlsBar > #status {
        width: 1fr;
    }
    ControlsBar > Switch {
        height: 1;
        border: none;
        padding: 0;
        margin-right: 1;
    }
    ControlsBar > Switch:focus {
        border: none;
        text-style: reverse;
    }
    /* Off reads as a grey knob on the left, on as a green one on the right (Textual's own off knob is
       dark on dark). */
    ControlsBar > Switch .switch--slider {
        color: $foreground 75%;
    }
    ControlsBar > Switch.-on .switch--slider {
        color: $success;
    }
    """

    def compose(self) -> ComposeResult:
        yield Label("", id="status")
        yield Label("split", id="split-label")
        yield Switch(False, id="split", tooltip="split-backward on/off (s)")
        yield Label("", id="chunks")
        yield Label("", id="view")

    def show(self, status: StatusLine, chunks: int, view: str) -> None:
        self.query_one("#status", Label).update(status.text())
        self.query_one("#chunks", Label).update(Text.assemble(("÷", "dim"), str(chunks), (" +/-", "dim")))
        self.query_one("#view", Label).update(Text(view, style="dim"))
