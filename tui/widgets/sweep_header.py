"""The header: dataset actually used (and why, if a fallback), device, input pipeline and data size, run
directory, config file."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tui.state.progress import duration, sweep_progress
from tui.state.sweep import SweepState


def header_text(state: SweepState, config_label: str, run_dir: str, skipped: int, mode: str = "") -> Text:
    """The header's content (pure: tests call it). `skipped` counts unreadable lines/events; `mode` is ""
    live, "attached" or "replay"."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"bstui {mode} " if mode else "bstui ", style="bold")
    if state.dataset:
        text.append(state.dataset, style="bold cyan")
    else:
        text.append("(no data yet)", style="dim")
    if state.device:
        text.append(" · ")
        text.append(state.device, style="bold")
    if state.pipeline:
        text.append(" · ")
        text.append(state.pipeline, style="bold yellow" if state.pipeline_reason else "")
        if state.data_bytes is not None:
            text.append(f" {data_size(state.data_bytes)}")
    progress = sweep_progress(state)
    if progress.fraction is not None and state.started and not state.finished:
        text.append(" · ")
        text.append(f"sweep {progress.fraction:.0%}", style="bold")
        if progress.eta_s is not None:
            text.append(f" eta {duration(progress.eta_s)}", style="bold")
    # The run directory before the config: on a narrow terminal the line is cut at its end, and the run
    # directory is what a user needs to replay, report or resume.
    text.append(" · ")
    text.append(
        run_dir or state.run_dir or "run directory not known yet",
        style="" if (run_dir or state.run_dir) else "dim",
    )
    text.append(" · ")
    text.append(config_label or state.config_path or "-")
    notes = bool(state.dataset_note or state.pipeline_reason)
    if state.dataset_note:
        text.append("\n")
        text.append("fallback: ", style="bold yellow")
        text.append(state.dataset_note, style="yellow")
    if state.pipeline_reason:
        text.append("  " if state.dataset_note else "\n")
        text.append(f"{state.pipeline}: ", style="bold yellow")
        text.append(state.pipeline_reason, style="yellow")
    if skipped:
        text.append("\n" if not notes else "  ")
        text.append(f"{skipped} unreadable line{'s' if skipped != 1 else ''} skipped", style="bold red")
    return text


def data_size(n: int) -> str:
    """Bytes as the header shows them: 614 MB, 1.2 GB, 24 kB (decimal units, two or three digits)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            value = n / scale
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{n} B"


class SweepHeader(Static):
    """One or two lines of facts about the sweep on screen."""

    DEFAULT_CSS = """
    SweepHeader {
        height: auto;
        max-height: 3;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        background: $panel;
    }
    """

    def update_from(
        self, state: SweepState, config_label: str, run_dir: str, skipped: int, mode: str = ""
    ) -> None:
        self.update(header_text(state, config_label, run_dir, skipped, mode))
