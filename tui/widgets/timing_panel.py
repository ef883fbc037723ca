"""Epoch wall time against compute time per batch size: where the data-loading share shows.

One bar per run, as long as its mean epoch wall time (scaled to the slowest run);
the solid part is compute (forward, backward, step), the shaded rest is everything
else (data loading, host work): the study's "until data loading dominates". A fused run (trainer.engine.fuse)
is marked ÷K: its times are its 1/K share of its group's.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tui.render.looks import sweep_looks
from tui.render.palette import RGB, rgb
from tui.state.sweep import SweepState


def seconds(v: float | None) -> str:
    """A duration in at most 6 characters: 0.4ms, 68.5ms, 1.23s, 123s, 2.1h."""
    if v is None:
        return "-"
    if v >= 3600:
        return f"{v / 3600:.1f}h"
    if v >= 100:
        return f"{v:.0f}s"
    if v >= 1:
        return f"{v:.3g}s"
    return f"{v * 1000:.3g}ms"


def timing_text(state: SweepState, width: int, looks: dict[str, tuple[str, RGB]]) -> Text:
    """The panel's content for a given width (pure: tests and snapshots call it)."""
    runs = state.run_list()
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append("mean epoch: ", style="bold")
    text.append("█ compute", style="bold")
    text.append("  ░ data/other", style="dim")
    if not runs:
        return text
    if any(r.fused_k for r in runs):
        text.append("  ÷K fused: 1/K of its group's time", style="dim")
    walls = [r.mean_wall_s for r in runs]
    longest = max((w for w in walls if w), default=0.0)
    label_w = min(max(len(looks[r.run][0]) for r in runs), max(6, width // 3))
    any_fused = any(r.fused_k for r in runs)
    numbers_w = 35 + (4 if any_fused else 0)  # "  12.3s wall   9.1s comp  26% data" (+ " ÷16")
    bar_w = max(6, width - label_w - numbers_w - 2)
    for run in runs:
        text.append("\n")
        label, rgb_color = looks[run.run]
        color = rgb(rgb_color)
        text.append(f"{label[:label_w]:>{label_w}} ", style=color)
        wall, comp = run.mean_wall_s, run.mean_compute_s
        if not wall or comp is None or longest <= 0:
            text.append("·" * bar_w, style="dim")
            text.append("  no epoch yet" if not run.epochs else "  -")
            continue
        full = max(1, round(bar_w * wall / longest))
        solid = min(full, round(full * min(comp, wall) / wall))
        text.append("█" * solid, style=color)
        text.append("░" * (full - solid), style=color + " dim")
        text.append(" " * (bar_w - full))
        share = max(0.0, (wall - comp) / wall)
        if any_fused:  # before the numbers (a narrow panel cuts the line's end), aligned for unfused runs
            text.append(f" ÷{run.fused_k}".ljust(4) if run.fused_k else "    ", style="bold")
        text.append(f" {seconds(wall):>6} wall {seconds(comp):>6} comp ", style="")
        text.append(f"{share:4.0%}", style="bold" if share >= 0.5 else "")
        text.append(" data", style="dim")
    return text


class TimingPanel(Static):
    """Per-run bars of mean epoch wall vs compute time, with the numbers."""

    DEFAULT_CSS = """
    TimingPanel {
        height: auto;
        min-height: 3;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self._state: SweepState | None = None

    def update_from(self, state: SweepState) -> None:
        self._state = state
        self._redraw()

    def on_resize(self) -> None:
        if self._state is not None:
            self._redraw()

    def _redraw(self) -> None:
        """From the state as it is now (it grows in place; looks of an earlier frame may lack a run)."""
        state = self._state
        assert state is not None
        self.update(timing_text(state, self.content_region.width or 60, sweep_looks(state.run_list())))
