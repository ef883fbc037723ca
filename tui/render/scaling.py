"""The scaling screen's charts and facts, drawn from the arms of tui.state.arms (its matrix:
tui.render.matrix): no Textual, no torch.

What it shows is trainer.analysis.answer's (the same answer report.md and the end of a run give): steps
and samples to target against batch size on log-log axes with the crossing intervals, the B_crit fit and
its 95% band and each batch size's regime, a scheduled run apart at its mean batch size, and the lr rule
measured from the grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from rich.text import Text

from trainer.analysis import answer
from trainer.analysis.figures import setting, sig
from tui.render import scheduled_rows
from tui.render.braille import Chart, Line
from tui.render.palette import run_rich_color
from tui.render.ticks import log_ticks
from tui.state.arms import Arm, finite
from tui.state.sweep import SweepState

__all__ = ["curve_chart", "facts_text", "log_ticks", "lr_chart"]


FIT_COLOR = "rgb(255,135,0)"  # the fitted curve (one arm); an arm's own colour when there are several
BAND_COLOR = "rgb(88,58,20)"  # the fit's 95% band, behind everything
BCRIT_MARK = "yellow"  # vertical mark at the fitted B_crit
BSIMPLE_MARK = "magenta"  # vertical mark at the measured B_simple
MISSED = "red"  # a batch size no lr of which reached the target: ▴ at the top edge
REGIME_COLORS = {
    answer.PERFECT: "rgb(95,215,95)",
    answer.DIMINISHING: "rgb(255,215,0)",
    answer.NO_GAIN: "rgb(255,95,95)",
}
TIE_COLOR = "rgb(135,175,255)"
RULE_COLOR = "rgb(255,135,0)"
# -- charts ---------------------------------------------------------------------------------


def _limits(values: list[float], pad: float = 0.08) -> tuple[float, float] | None:
    """log10 range around positive values, padded so end points do not sit on the frame; None
    without values (an empty plot gets no invented axis)."""
    logs = [math.log10(v) for v in values if v is not None and v > 0 and math.isfinite(v)]
    if not logs:
        return None
    lo, hi = min(logs), max(logs)
    if hi - lo < 0.3:  # one point, or nearly: show about half a decade around it
        mid = (lo + hi) / 2
        lo, hi = mid - 0.3, mid + 0.3
    span = hi - lo
    return lo - pad * span, hi + pad * span


def _marker(x: float, y: float, color: str, xdot: float, ydot: float) -> list[Line]:
    """A small + at (x, y) in log10 coordinates, 1.5 dots each way: a lone point stays visible."""
    return [
        Line(np.array([x - 1.5 * xdot, x + 1.5 * xdot]), np.array([y, y]), color),
        Line(np.array([x, x]), np.array([y - 1.5 * ydot, y + 1.5 * ydot]), color),
    ]


def _dot_sizes(
    xlim: tuple[float, float], ylim: tuple[float, float], width: int, height: int
) -> tuple[float, float]:
    cw, ch = max(2, width - 7), max(1, height - 4)  # canvas cells, about (tick labels, frame)
    return (xlim[1] - xlim[0]) / (2 * cw), (ylim[1] - ylim[0]) / (4 * ch)


def _colors(n: int) -> list[tuple[str, str]]:
    """(measured, fit) colours per arm: one arm gets two clear colours, several share theirs."""
    if n == 1:
        return [(run_rich_color(0), FIT_COLOR)]
    return [(run_rich_color(i), run_rich_color(i)) for i in range(n)]


def _empty(title: str, xlim: tuple[float, float] | None, width: int, message: str) -> Chart:
    """A plot with nothing to draw: the batch sizes' axis if there are any, no invented y axis."""
    return Chart(
        title=title,
        lines=[],
        xlim=xlim or (0.0, 1.0),
        ylim=(0.0, 1.0),
        xticks=log_ticks(*xlim, max(2, width // 8)) if xlim else [],
        yticks=[],
        message=message,
        xlabel="batch" if xlim else "",
    )


CURVE_TITLES = {
    "steps": "steps to target vs batch",
    "samples": "samples to target vs batch",
    "time": "time to target alone (s) vs batch",
}


def curve_chart(
    arms: dict[str, Arm],
    what: str,
    width: int,
    height: int,
    scheduled: Sequence[answer.Scheduled] = (),
) -> Chart:
    """Steps (`what="steps"`), samples (`"samples"`) or time (`"time"`: alone where recorded, no fit)
    to target against batch size, log-log: each batch
    size at its best lr with its crossing interval as an error bar, coloured by its regime, the fit
    (trainer.analysis.bcrit's median) with its 95% band, marks at B_crit and B_simple, and ▴ at the top edge
    for batch sizes no lr of which reached the target. A scheduled run is ■ at its mean batch size
    (samples / steps to the target) with its interval, apart from the measured line and the fit."""
    title = CURVE_TITLES[what]
    key = {"steps": "steps", "samples": "samples", "time": "time_s"}[what]
    all_b = [p.batch_size for arm in arms.values() for p in arm.curve.points]
    values = [
        v
        for arm in arms.values()
        for p in arm.curve.points
        if p.reached
        for v in (getattr(p, key), getattr(p, f"{key}_lo"))
        if finite(v) and v > 0
    ]
    sched_x, sched_y = scheduled_rows.extent(scheduled, what)
    xlim = _limits([float(b) for b in all_b] + sched_x)
    ylim = _limits(values + sched_y)
    if xlim is None or ylim is None:
        training = any(arm.unfinished for arm in arms.values())
        said = "no batch size has reached the target yet" if training else "no batch size reached the target"
        return _empty(title, xlim, width, said if xlim else "no run yet")
    xdot, ydot = _dot_sizes(xlim, ylim, width, height)
    lines: list[Line] = []
    vlines: list[tuple[float, str]] = []
    glyphs: list[tuple[float, float, str, str]] = []
    for (name, arm), (color, fit_color) in zip(arms.items(), _colors(len(arms))):
        fit = arm.curve.fit
        s_min, e_min = finite(fit.get("S_min")), finite(fit.get("E_min"))
        if s_min and e_min and s_min > 0 and e_min > 0 and what != "time":  # time has no model to fit
            xs = np.linspace(xlim[0], xlim[1], 64)
            bs = 10**xs
            curve = s_min + e_min / bs if what == "steps" else s_min * bs + e_min
            band = fit.get("band") or {}
            if what == "steps" and band.get("batch"):
                bx = np.log10(np.asarray(band["batch"], dtype=float))
                for edge in ("steps_lo", "steps_hi"):
                    lines.append(Line(bx, np.log10(np.maximum(band[edge], 1e-12)), BAND_COLOR))
            lines.append(Line(xs, np.log10(curve), fit_color, "fit"))
            b_crit = finite(fit.get("B_crit"))
            if b_crit and b_crit > 0 and fit.get("determined"):
                vlines.append((math.log10(b_crit), BCRIT_MARK))
        b_simple = arm.curve.b_simple
        if b_simple and b_simple > 0:
            vlines.append((math.log10(b_simple), BSIMPLE_MARK))
        reached = [p for p in arm.curve.points if p.reached]
        pts = [(p, getattr(p, key), getattr(p, f"{key}_lo")) for p in reached if finite(getattr(p, key))]
        if pts:
            xs = np.log10([p.batch_size for p, _, _ in pts])
            ys = np.log10([v for _, v, _ in pts])
            lines.append(Line(xs, ys, color, f"measured {name}".strip()))
            for (p, hi, lo), x, y in zip(pts, xs, ys):
                mark = REGIME_COLORS.get(p.regime, color) if len(arms) == 1 else color
                if finite(lo) and lo > 0 and lo < hi:
                    lines.append(Line(np.array([x, x]), np.log10([lo, hi]), mark))
                lines += _marker(float(x), float(y), mark, xdot, ydot)
        for p in arm.curve.points:
            if p.regime == answer.NOT_REACHED:
                glyphs.append((math.log10(p.batch_size), ylim[1] - ydot, "▴", MISSED))
    sched_lines, sched_glyphs = scheduled_rows.marks(scheduled, what)
    lines += sched_lines
    glyphs += sched_glyphs
    return Chart(
        title=title,
        lines=lines,
        xlim=xlim,
        ylim=ylim,
        xticks=log_ticks(*xlim, max(2, width // 8)),
        yticks=log_ticks(*ylim, max(2, (height - 4) // 2)),
        vlines=vlines,
        points=glyphs,
        xlabel="batch",
    )


def lr_chart(arms: dict[str, Arm], width: int, height: int) -> Chart:
    """The lr rule measured: best lr per batch size (+) with its tie band (│), the fitted rule through
    them with its 95% band; the x axis spans every batch size run, the y axis every lr tried."""
    all_b = [float(p["batch_size"]) for arm in arms.values() for p in arm.points]
    all_lr = [
        float(p["lr"]) for arm in arms.values() for p in arm.points if finite(p.get("lr")) and p["lr"] > 0
    ]
    xlim, ylim = _limits(all_b), _limits(all_lr)
    title = "best lr vs batch (lr rule)"
    if xlim is None or ylim is None:
        return _empty(title, xlim, width, "no run yet")
    xdot, ydot = _dot_sizes(xlim, ylim, width, height)
    lines: list[Line] = []
    best_any = False
    for (name, arm), (color, _) in zip(arms.items(), _colors(len(arms))):
        rule = arm.rule
        if rule.slope is not None and arm.rule_band:
            xs = np.array([x for x, *_ in arm.rule_band])
            lines.append(Line(xs, np.log10([lo for *_, lo, _ in arm.rule_band]), BAND_COLOR))
            lines.append(Line(xs, np.log10([hi for *_, hi in arm.rule_band]), BAND_COLOR))
            label = f"rule B^{rule.slope:.2f} {name}".strip()
            lines.append(
                Line(
                    xs,
                    np.log10([lr for _, lr, _, _ in arm.rule_band]),
                    RULE_COLOR if len(arms) == 1 else color,
                    label,
                )
            )
        for p in rule.best:
            best_any = True
            x = math.log10(p.batch_size)
            if p.tie_hi > p.tie_lo:
                lines.append(Line(np.array([x, x]), np.log10([p.tie_lo, p.tie_hi]), TIE_COLOR))
            lines += _marker(x, math.log10(p.lr), color, xdot, ydot)
    legend: list[tuple[str, str, bool]] = [(line.label, line.color, False) for line in lines if line.label]
    if best_any:
        legend = [
            ("best lr", _colors(len(arms))[0][0], False),
            ("ties", TIE_COLOR, False),
            *legend,
            ("95% band", BAND_COLOR, False),
        ]
    return Chart(
        title=title,
        lines=lines,
        xlim=xlim,
        ylim=ylim,
        xticks=log_ticks(*xlim, max(2, width // 8)),
        yticks=log_ticks(*ylim, max(2, (height - 4) // 2)),
        legend=legend,
        xlabel="batch",
        message=""
        if best_any
        else (
            "no best lr yet"
            if any(arm.unfinished for arm in arms.values())
            else "no best lr: no lr reached the target"
        ),
    )


# -- the facts in words -------------------------------------------------------------------


def facts_text(state: SweepState, arms: dict[str, Arm], scheduled: Sequence[answer.Scheduled] = ()) -> Text:
    """The answer in words (trainer/analysis/answer/) per arm, the best lr of each batch size, and a scheduled
    run's note (not in the fit, not a best batch size) and verdict against the best fixed batch size."""
    text = Text()
    if not arms:
        text.append("No run has started yet", style="bold")
        text.append(f": this view fills as runs train ({len(state.runs)} in the sweep).")
        return text
    for i, ((name, arm), (color, _)) in enumerate(zip(arms.items(), _colors(len(arms)))):
        if i:
            text.append("\n\n")
        if name:
            text.append(f"{name}\n", style=f"bold {color}")
        a = arm.analysis
        if not a.get("best"):  # summaries without batch size and lr: a run directory from before lr sweeps
            text.append("The runs carry no batch size and lr to analyse", style="bold")
            text.append(" (a run directory written before lr sweeps were recorded?); rerun the sweep.")
            continue
        lines = answer.answer_lines(a, state.target_accuracy, state.device, unfinished=arm.unfinished)
        heads = ("answer: ", "", "", "regimes: ", "", "lr rule: ")
        for j, line in enumerate(lines):
            if j:
                text.append("\n")
            if j == 0:
                text.append("answer: ", style="bold")
                text.append(line)
                continue
            for head in heads:
                if head and line.startswith(head):
                    text.append(head, style="bold")
                    line = line[len(head) :]
                    break
            text.append(line)
        fit = a.get("b_crit") or {}
        if fit.get("determined") and finite(fit.get("B_crit")):  # (not determined: the answer says why)
            text.append("\n")
            text.append("B_crit ", style="bold")
            text.append(sig(fit["B_crit"]), style=f"bold {BCRIT_MARK}")
            text.append(
                f" (95% {sig(fit.get('B_crit_lo'))}–{sig(fit.get('B_crit_hi'))}) · S_min "
                f"{sig(fit.get('S_min'))} steps · E_min {sig(fit.get('E_min'))} samples"
            )
        best_runs = [f"bs {p['batch_size']} lr {setting(p['lr'])}" for p in a["best"] if finite(p.get("lr"))]
        if best_runs:
            text.append("\n")
            text.append("best: ", style="bold")
            text.append(", ".join(best_runs))
    if scheduled:
        fixed = [
            r.summary
            for r in state.run_list()
            if r.summary and r.run not in state.branch_runs and r.run not in state.scheduled_runs
        ]
        scheduled_rows.facts(scheduled, fixed, state.target_accuracy, text)
    arm0_color = _colors(len(arms))[0][0]
    text.append("\n━ measured", style=arm0_color)
    if len(arms) == 1:
        text.append("  ━ fit", style=FIT_COLOR)
    text.append("  │ B_crit", style=BCRIT_MARK)
    text.append("  │ B_simple", style=BSIMPLE_MARK)
    text.append("  ▴ not reached", style=MISSED)
    for regime, color in REGIME_COLORS.items():
        text.append(f"  + {regime}", style=color)
    if scheduled:
        text.append(f"  {scheduled_rows.MARKER} scheduled", style=f"bold {scheduled_rows.SCHEDULE_COLOR}")
    return text
