"""A scheduled run (sweep.batch_schedule) on the scaling screen: its own row under the batch x lr matrix,
its mark on the steps/samples/time-to-target charts and its lines in the facts, all from
trainer.analysis.answer.scheduled (report.md reads the same). It is never a cell of a fixed batch size and
never a point of the fit: its batch size changes. Pure: numpy and Rich text, no Textual.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from rich.text import Text

from trainer.analysis import answer, schedule_verdict
from trainer.analysis.answer.scheduled import APART, AT_MEAN_BATCH, MARKER
from tui.render.braille import Line
from tui.render.palette import BATCH_MARK

SCHEDULE_COLOR = BATCH_MARK  # as the batch-size change marks on its plots and the schedule in the b view
KEYS = {"steps": "steps", "samples": "samples", "time": "time"}


def matrix_rows(
    entries: Sequence[answer.Scheduled],
    metric: str,
    style_of: Callable[[answer.Scheduled], str],
    width: int,
) -> Text:
    """Under the matrix, per scheduled run: its label and the shown metric (with its interval; `style_of`:
    the matrix's colour for it), its lrs, and its steps, samples and time alone to the target (on a line of
    their own where `width` is too narrow for one)."""
    text = Text(no_wrap=True, overflow="ellipsis")
    for entry in entries:
        head = f"{entry.label}  {entry.text(metric)}  {entry.lr_label}"
        tail = f"to target: {entry.to_target()}"
        text.append("\n")
        text.append(entry.label, style=f"bold {SCHEDULE_COLOR}")
        text.append("  ")
        text.append(entry.text(metric), style=style_of(entry))
        text.append(f"  {entry.lr_label}", style="dim")
        text.append("  " if len(head) + 5 + len(tail) <= width else "\n  ")
        text.append(tail, style="dim")
    return text


def extent(entries: Sequence[answer.Scheduled], what: str) -> tuple[list[float], list[float]]:
    """Batch sizes (its mean batch) and values (hit and last miss) the chart's axes must hold."""
    xs, ys = [], []
    for entry in entries:
        got = getattr(entry, KEYS[what])
        if entry.mean_batch and got:
            xs.append(entry.mean_batch)
            ys += [v for v in got if v > 0]
    return xs, ys


def marks(
    entries: Sequence[answer.Scheduled], what: str
) -> tuple[list[Line], list[tuple[float, float, str, str]]]:
    """Each scheduled run at its mean batch size: its crossing interval as a bar and ■ at its hit."""
    lines: list[Line] = []
    glyphs: list[tuple[float, float, str, str]] = []
    for entry in entries:
        got = getattr(entry, KEYS[what])
        if not entry.mean_batch or not got or got[1] <= 0:
            continue
        x, (lo, hi) = math.log10(entry.mean_batch), got
        if 0 < lo < hi:
            lines.append(Line(np.array([x, x]), np.log10([lo, hi]), SCHEDULE_COLOR))
        glyphs.append((x, math.log10(hi), MARKER, f"bold {SCHEDULE_COLOR}"))
    return lines, glyphs


def facts(entries: Sequence[answer.Scheduled], fixed: list[dict], target: float | None, text: Text) -> None:
    """The note where the fit is shown (not in it, not a best batch size) and each run's verdict against the
    best fixed batch size (trainer.analysis.schedule_verdict, as the b view and report.md say it)."""
    for entry in entries:
        text.append("\n")
        text.append(entry.label, style=f"bold {SCHEDULE_COLOR}")
        text.append(f" (scheduled): {APART}; {MARKER} on the charts {AT_MEAN_BATCH}.", style="dim")
        if entry.status == "running":
            continue
        verdict = schedule_verdict.compare(entry.row, fixed)
        text.append("\n")
        text.append(schedule_verdict.sentence(verdict, entry.sizes_label, target))
