"""What the B_crit-over-training view shows (key b): the branched B_crit at each branch point with its 95%
interval, the noise probe's B_simple there with its interval, and the proposed batch-size schedule as a step
line, all against training samples (batch size on a log axis); under it the points in words, the schedule
in Megatron-LM's syntax, and, once a scheduled run finished, its verdict against the best fixed batch size.

Built from the sweep state's branch_point / branch_result events (trainer.sweep.branch) and the scheduled
run's summary (trainer.analysis.schedule_verdict). Pure: numpy and Rich text, no Textual.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from rich.text import Text

from trainer.analysis import schedule_verdict
from trainer.analysis.figures import count, pct, with_interval
from tui.render.braille import Chart, Line
from tui.render.ticks import log_ticks, ticks_with_labels
from tui.state.sweep import SweepState

TITLE = "B_crit and B_simple over training, and the schedule"
BCRIT_COLOR = "yellow"  # as the scaling view's B_crit mark
BSIMPLE_COLOR = "magenta"  # as the scaling view's B_simple mark
SCHEDULE_COLOR = "cyan"  # as the batch-size change marks on a scheduled run's plots


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def points_of(state: SweepState) -> list[dict[str, Any]]:
    """The branch points so far, in training order (the result's once the branches are done)."""
    result = state.branch_result
    points = result["points"] if result is not None else state.branch_points
    return sorted((p for p in points if isinstance(p, dict)), key=lambda p: p.get("samples") or 0)


def schedule_of(state: SweepState) -> list[dict[str, Any]]:
    """The proposed schedule's stages ([] before the branches are done, or when none was proposed)."""
    result = state.branch_result
    stages = result.get("schedule") if result is not None else None
    return [s for s in stages or [] if isinstance(s, dict) and _num(s.get("batch_size"))]


def _series(points: list[dict[str, Any]], key: str) -> list[tuple[float, float, float | None, float | None]]:
    """(samples, value, lo, hi) of every point with a value of `key` (B_crit only where determined)."""
    out = []
    for p in points:
        v = _num(p.get(key))
        if v is None or (key == "B_crit" and not p.get("determined")):
            continue
        x = float(p.get("samples") or 0)
        lo = _num(p.get(f"{key}_lo") if key == "B_crit" else p.get("b_simple_lo"))
        hi = _num(p.get(f"{key}_hi") if key == "B_crit" else p.get("b_simple_hi"))
        out.append((x, v, lo, hi))
    return out


def curve_chart(state: SweepState, width: int, height: int) -> Chart:
    """The chart: x training samples, y batch size (log10): B_crit and B_simple with their intervals as error
    bars, the schedule as a step line."""
    points = points_of(state)
    crit, simple = _series(points, "B_crit"), _series(points, "b_simple")
    stages = schedule_of(state)
    ys = [v for series in (crit, simple) for _, v, lo, hi in series for v in (v, lo, hi) if v]
    ys += [float(s["batch_size"]) for s in stages]
    xs = [x for series in (crit, simple) for x, *_ in series] + [float(s.get("samples") or 0) for s in stages]
    if not ys:
        said = "no branch point yet" if not points else "no branch point determined its B_crit"
        return Chart(title=TITLE, lines=[], xlim=(0.0, 1.0), ylim=(0.0, 1.0), message=said)
    x_hi = max(xs) * 1.15 if max(xs) > 0 else 1.0
    lo_y, hi_y = math.log10(min(ys)), math.log10(max(ys))
    pad = max(0.1, 0.08 * (hi_y - lo_y))
    ylim = (lo_y - pad, hi_y + pad)
    xlim = (0.0, x_hi)
    xdot = (xlim[1] - xlim[0]) / (2 * max(2, width - 7))
    lines: list[Line] = []
    for series, color, label in ((simple, BSIMPLE_COLOR, "B_simple"), (crit, BCRIT_COLOR, "B_crit")):
        if not series:
            continue
        lines.append(
            Line(np.array([x for x, *_ in series]), np.log10([v for _, v, _, _ in series]), color, label)
        )
        for x, _, lo, hi in series:
            if lo is not None and hi is not None and hi > lo:
                lines.append(Line(np.array([x, x]), np.log10([lo, hi]), color))
                for end in (lo, hi):  # the interval's caps
                    lines.append(Line(np.array([x - 2 * xdot, x + 2 * xdot]), np.log10([end, end]), color))
    if stages:
        sx: list[float] = []
        sy: list[float] = []
        for i, s in enumerate(stages):
            start = float(s.get("samples") or 0)
            end = float(stages[i + 1].get("samples") or 0) if i + 1 < len(stages) else x_hi
            y = math.log10(float(s["batch_size"]))
            sx += [start, end]
            sy += [y, y]
        lines.append(Line(np.array(sx), np.array(sy), SCHEDULE_COLOR, "schedule"))
    return Chart(
        title=TITLE,
        lines=lines,
        xlim=xlim,
        ylim=ylim,
        xticks=ticks_with_labels(*xlim, max(2, width // 10)),
        yticks=log_ticks(*ylim, max(2, (height - 4) // 2)),
        legend=True,
        xlabel="samples",
    )


def facts_text(state: SweepState) -> Text:
    """The points in words, the schedule in Megatron-LM's syntax and the verdict of a scheduled run."""
    text = Text()
    points = points_of(state)
    if not points:
        text.append("No branch point measured yet: the base run keeps checkpoints at branch.epochs, and the ")
        text.append("branches train from them once it is done.", style="dim")
        return text
    text.append("epoch  samples   loss     acc   B_crit (95%)        B_simple (95%)\n", style="bold")
    for p in points:
        crit = (
            with_interval(p.get("B_crit"), p.get("B_crit_lo"), p.get("B_crit_hi"))
            if p.get("determined")
            else "not determined"
        )
        simple = with_interval(p.get("b_simple"), p.get("b_simple_lo"), p.get("b_simple_hi"))
        loss = p.get("loss")
        loss_s = f"{loss:.3f}" if isinstance(loss, (int, float)) else "-"
        acc_s = pct(p.get("acc"), 3)
        text.append(f"{p.get('epoch', '-')!s:>5}  {count(p.get('samples')):>7}  {loss_s:>5}  {acc_s:>6}   ")
        text.append(f"{crit:<19}", style=BCRIT_COLOR if p.get("determined") else "dim")
        text.append(f" {simple}\n", style=BSIMPLE_COLOR)
    result = state.branch_result
    if result is None:
        text.append("branches still training", style="dim")
        return text
    stages = schedule_of(state)
    if not stages:
        text.append("no schedule proposed: no point determined its B_crit", style="dim")
    else:
        text.append("schedule ", style="bold")
        text.append(" -> ".join(str(s["batch_size"]) for s in stages), style=SCHEDULE_COLOR)
        text.append(f"   {result.get('megatron', '')}\n", style="dim")
        expected = result.get("expected") or {}
        if expected.get("steps_saved") is not None:
            text.append(
                f"expected (estimate from the fitted S(B)): {expected['steps_saved']:.0%} fewer steps than batch "
                f"{expected.get('base_batch_size')} fixed\n",
                style="dim",
            )
    for run_id in sorted(state.scheduled_runs):
        run = state.runs.get(run_id)
        if run is None:
            continue
        if not run.summary:
            text.append(f"{run_id}: training", style="dim")
            continue
        fixed = [
            r.summary
            for r in state.run_list()
            if r.summary and r.run not in state.branch_runs and r.run not in state.scheduled_runs
        ]
        verdict = schedule_verdict.compare(run.summary, fixed)
        ramp = " -> ".join(str(b) for _, _, b in run.batch_stages) or run_id
        text.append(schedule_verdict.sentence(verdict, ramp, state.target_accuracy), style="bold")
    return text
