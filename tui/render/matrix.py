"""The scaling screen's batch x lr matrix as text (trainer.analysis.answer's matrix: colour-scaled cells, ▸
the best of each row, ★ the answer), and a scheduled run's own rows under it (tui.render.scheduled_rows),
coloured on the same scale but never a cell of it. Pure: Rich text, no Textual, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.text import Text

from trainer.analysis import answer
from trainer.analysis.figures import setting
from tui.render import scheduled_rows
from tui.state.arms import Arm

__all__ = ["matrix_text", "scheduled_text"]

# The matrix's colour scale, best to worst (in log for time and steps), and its statuses.
SCALE = ("rgb(95,215,95)", "rgb(175,215,95)", "rgb(215,215,95)", "rgb(255,175,95)", "rgb(255,135,95)")
STATUS_COLORS = {
    "diverged": "bold red",
    "collapsed": "bold magenta",
    "running": "cyan",
    answer.NOT_REACHED: "dim",
}


def _scale_color(value: float, lo: float, hi: float, metric: str) -> str:
    if hi <= lo:
        return SCALE[0]
    if metric in ("time", "steps") and lo > 0:
        share = (math.log(value) - math.log(lo)) / (math.log(hi) - math.log(lo))
    else:
        share = (value - lo) / (hi - lo)
    if not answer.LOWER_IS_BETTER[metric]:
        share = 1 - share
    return SCALE[min(len(SCALE) - 1, max(0, int(share * len(SCALE))))]


def matrix_text(arm: Arm, metric: str, width: int) -> Text:
    """The batch x lr matrix as text: colour-scaled cells (green best), ▸ the best of each row,
    ★ (reversed) the overall answer; the spread over seeds is dropped where the terminal is narrow."""
    m = arm.matrix(metric)
    text = Text(no_wrap=True, overflow="ellipsis")
    seeds = max((c.seeds for c in m.cells.values()), default=1)
    text.append(f"{answer.METRIC_NAMES[metric]}", style="bold")
    text.append(
        f"{' · ±sd of ' + str(seeds) + ' seeds' if seeds > 1 else ''} · ▸ row best · ★ answer · m: metric\n",
        style="dim",
    )
    if not m.cells:
        text.append("no run of this sweep has a batch size and an lr yet")
        return text
    rng = m.value_range()
    label_w = max(len("batch"), *(len(str(b)) for b in m.batch_sizes)) + 1
    for spread in (True, False):
        texts = {k: _cell_label(c, metric, spread) for k, c in m.cells.items()}
        col_w = max([len(setting(lr)) for lr in m.lrs] + [len(t) for t in texts.values()]) + 3
        if label_w + col_w * len(m.lrs) <= width:
            break
    shown = max(1, (width - label_w) // col_w)
    lrs = m.lrs[:shown]
    text.append(f"{'batch':>{label_w - 1}} ", style="bold")
    for lr in lrs:
        text.append(f"{setting(lr):>{col_w}}", style="bold")
    if len(lrs) < len(m.lrs):
        text.append(f" +{len(m.lrs) - len(lrs)} lrs", style="dim")
    for b in m.batch_sizes:
        text.append("\n")
        text.append(f"{b:>{label_w - 1}} ", style="bold")
        for lr in lrs:
            c = m.cell(b, lr)
            label = texts.get((b, lr), "")
            best, top = m.best.get(b) == lr, m.answer == (b, lr)
            mark = "★" if top else ("▸" if best else " ")
            cell = f"{mark}{label}"
            if c is None or c.value is None:
                style = (
                    STATUS_COLORS.get(c.status if c else "", "dim")
                    if metric != "status" or c is None
                    else STATUS_COLORS.get(c.status, "green" if c.status == "reached" else "dim")
                )
            else:
                style = _scale_color(c.value, *rng, metric) if rng else ""
            if top:
                style = f"bold reverse {style}"
            elif best:
                style = f"bold {style}"
            text.append(" " * (col_w - len(cell) - 1))
            text.append(cell, style=style)
            text.append(" ")
    return text


def scheduled_text(
    arms: dict[str, Arm], scheduled: Sequence[answer.Scheduled], metric: str, width: int
) -> Text:
    """The scheduled runs' own rows under the matrix, coloured on the (first) arm's scale so they compare
    at a glance; never a cell of it."""
    arm = arms.get("") or next(iter(arms.values()), None)
    rng = arm.matrix(metric).value_range() if arm is not None else None

    def style_of(entry: answer.Scheduled) -> str:
        if metric == "status":
            return STATUS_COLORS.get(entry.status, "green" if entry.status == "reached" else "dim")
        value = entry.value(metric)
        if value is None:
            return STATUS_COLORS.get(entry.status, "dim")
        return _scale_color(value, *rng, metric) if rng and value > 0 else ""

    return scheduled_rows.matrix_rows(scheduled, metric, style_of, width)


def _cell_label(c: answer.Cell, metric: str, spread: bool) -> str:
    if not spread and c.value is not None and metric != "status":
        c = answer.Cell(c.batch_size, c.lr, 1, c.reached, c.status, c.value, None, c.eligible, c.fused)
    return answer.cell_text(c, metric)
