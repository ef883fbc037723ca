"""The scaling view's model and charts (issue 4), pure: no Textual widgets, no torch.

Steps and samples to target against batch size on log-log axes with the fitted
critical-batch curves S = S_min (1 + B_crit / B) and E = E_min (1 + B / B_crit)
(McCandlish et al. 2018), and the best lr per batch size beside the linear and sqrt
rules. The analysis is trainer.scaling.analyse (numpy only), run on the summaries of
the runs that have finished, so the view fills live; once the sweep has finished, its
own sweep_finished.scaling is used (the trainer's word, resumed runs merged in).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from rich.text import Text

from trainer.recommend import recommendation
from trainer.scaling import analyse
from tui.braille import Chart, Line
from tui.labels import run_labels
from tui.palette import run_rich_color
from tui.plotdata import compact
from tui.state import SweepState
from tui.ticks import log_ticks

__all__ = ["analyses", "facts_text", "log_ticks", "lr_chart", "target_chart"]

Analysis = dict[str, Any]

FIT_COLOR = "rgb(255,135,0)"  # the fitted curve (one arm); an arm's own colour when there are several
BCRIT_MARK = "yellow"  # vertical mark at the fitted B_crit
BSIMPLE_MARK = "magenta"  # vertical mark at the measured B_simple
LINEAR_RULE = "rgb(255,215,0)"
SQRT_RULE = "rgb(95,215,95)"


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _base(config: dict[str, Any], overrides: dict[str, Any] | None = None) -> tuple[float | None, int | None]:
    """(base lr, base batch size) of the config, or of one [[variants]] arm of it."""
    optim = dict(config.get("optim") or {})
    if overrides and isinstance(overrides.get("optim"), dict):
        optim.update(overrides["optim"])
    lr, batch = _num(optim.get("lr")), _num(optim.get("base_batch_size"))
    return lr, (int(batch) if batch else None)


def analyses(state: SweepState) -> dict[str, Analysis]:
    """One analysis per arm of the sweep ("" when it has no [[variants]]), from what is known now."""
    if state.scaling is not None:
        variants = state.scaling.get("variants")
        if isinstance(variants, dict):
            return {str(k): v for k, v in variants.items() if isinstance(v, dict)}
        return {"": state.scaling}
    rows = [r.summary for r in state.run_list() if r.summary]
    arms: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        arms.setdefault(str(row.get("variant") or ""), []).append(row)
    overrides = {
        str(v.get("name")): v for v in (state.config.get("variants") or []) if isinstance(v, dict)
    }
    return {name: analyse(arm, *_base(state.config, overrides.get(name))) for name, arm in arms.items()}


# -- charts -------------------------------------------------------------------------------


def _limits(values: list[float], pad: float = 0.08) -> tuple[float, float]:
    """log10 range around positive values, padded so end points do not sit on the frame."""
    logs = [math.log10(v) for v in values if v is not None and v > 0 and math.isfinite(v)]
    if not logs:
        return 0.0, 1.0
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


def _dot_sizes(xlim: tuple[float, float], ylim: tuple[float, float], width: int, height: int) -> tuple[float, float]:
    cw, ch = max(2, width - 7), max(1, height - 4)  # canvas cells, about (tick labels, frame)
    return (xlim[1] - xlim[0]) / (2 * cw), (ylim[1] - ylim[0]) / (4 * ch)


def _colors(n: int) -> list[tuple[str, str]]:
    """(measured, fit) colours per arm: one arm gets two clear colours, several share theirs."""
    if n == 1:
        return [(run_rich_color(0), FIT_COLOR)]
    return [(run_rich_color(i), run_rich_color(i)) for i in range(n)]


def target_chart(arms: dict[str, Analysis], what: str, width: int, height: int) -> Chart:
    """Steps (`what="steps"`) or samples (`"samples"`) to target against batch size, log-log,
    with the fitted curve and marks at B_crit and B_simple."""
    fit_key = "fit_steps" if what == "steps" else "fit_examples"
    pts = {
        name: [(p["batch_size"], p[what]) for p in a.get("best", []) if p.get("reached_target") and _num(p.get(what))]
        for name, a in arms.items()
    }
    all_b = [b for a in arms.values() for p in a.get("best", []) for b in [p["batch_size"]]]
    all_v = [v for ps in pts.values() for _, v in ps]
    xlim, ylim = _limits(all_b), _limits(all_v)
    xdot, ydot = _dot_sizes(xlim, ylim, width, height)
    lines: list[Line] = []
    vlines: list[tuple[float, str]] = []
    grid = np.linspace(xlim[0], xlim[1], 96)
    for (name, a), (color, fit_color) in zip(arms.items(), _colors(len(arms))):
        fit = a.get(fit_key) or {}
        b_crit = _num(fit.get("B_crit"))
        if b_crit and b_crit > 0:
            bs = 10**grid
            if what == "steps" and _num(fit.get("S_min")):
                curve = fit["S_min"] * (1 + b_crit / bs)
            elif what == "samples" and _num(fit.get("E_min")):
                curve = fit["E_min"] * (1 + bs / b_crit)
            else:
                curve = None
            if curve is not None:
                lines.append(Line(grid, np.log10(curve), fit_color, "fit"))
            vlines.append((math.log10(b_crit), BCRIT_MARK))
        b_simple = _num(a.get("b_simple"))
        if b_simple and b_simple > 0:
            vlines.append((math.log10(b_simple), BSIMPLE_MARK))
        ps = sorted(pts[name])
        if ps:
            xs = np.log10([b for b, _ in ps])
            ys = np.log10([v for _, v in ps])
            lines.append(Line(xs, ys, color, "measured"))
            for x, y in zip(xs, ys):
                lines += _marker(float(x), float(y), color, xdot, ydot)
    title = "steps to target vs batch" if what == "steps" else "samples to target vs batch"
    if not all_v:
        title += " (no run reached it yet)"
    return Chart(
        title=title,
        lines=lines,
        xlim=xlim,
        ylim=ylim,
        xticks=log_ticks(*xlim, max(2, width // 8)),
        yticks=log_ticks(*ylim, max(2, (height - 4) // 2)),
        vlines=vlines,
    )


def lr_chart(arms: dict[str, Analysis], width: int, height: int) -> Chart:
    """Best lr per batch size (log-log) beside the linear and sqrt scaling rules."""
    best = {name: [p for p in a.get("best", []) if _num(p.get("lr")) and p["lr"] > 0] for name, a in arms.items()}
    all_b = [p["batch_size"] for ps in best.values() for p in ps]
    all_lr = [p[k] for ps in best.values() for p in ps for k in ("lr", "lr_linear_rule", "lr_sqrt_rule")
              if _num(p.get(k))]
    xlim, ylim = _limits(all_b), _limits(all_lr)
    xdot, ydot = _dot_sizes(xlim, ylim, width, height)
    lines: list[Line] = []
    for (name, ps), (color, _) in zip(best.items(), _colors(len(best))):
        ps = sorted(ps, key=lambda p: p["batch_size"])
        if not ps:
            continue
        anchor = ps[0]
        if _num(anchor.get("lr_linear_rule")) and _num(anchor.get("lr_sqrt_rule")):
            # Both rules are straight in log-log: slope 1 (linear) and 1/2 (sqrt) through the base.
            x0 = math.log10(anchor["batch_size"])
            lin0, sqrt0 = math.log10(anchor["lr_linear_rule"]), math.log10(anchor["lr_sqrt_rule"])
            xs = np.array(xlim)
            lines.append(Line(xs, lin0 + (xs - x0), LINEAR_RULE, "linear rule"))
            lines.append(Line(xs, sqrt0 + 0.5 * (xs - x0), SQRT_RULE, "sqrt rule"))
        xs = np.log10([p["batch_size"] for p in ps])
        ys = np.log10([p["lr"] for p in ps])
        lines.append(Line(xs, ys, color, f"best lr {name}".strip()))
        for x, y in zip(xs, ys):
            lines += _marker(float(x), float(y), color, xdot, ydot)
    return Chart(
        title="best lr vs batch",
        lines=lines,
        xlim=xlim,
        ylim=ylim,
        xticks=log_ticks(*xlim, max(2, width // 8)),
        yticks=log_ticks(*ylim, max(2, (height - 4) // 2)),
        legend=True,
    )


# -- the facts in words -------------------------------------------------------------------


def _fit_line(label: str, fit: dict[str, Any], min_key: str) -> Text:
    text = Text()
    text.append(f"{label} fit: ", style="bold")
    if _num(fit.get("B_crit")):
        text.append("B_crit ")
        text.append(compact(fit["B_crit"], 2), style=f"bold {BCRIT_MARK}")  # a fit: 2 figures, as the report
        text.append(f" · {min_key} {compact(fit.get(min_key), 2)}")
        if _num(fit.get("rel_rms")) is not None:
            text.append(f" (rms {fit['rel_rms']:.1%})", style="dim")
    else:
        text.append("no fit: ", style="bold red")
        text.append(str(fit.get("error") or "not computed"))
    return text


def facts_text(state: SweepState, arms: dict[str, Analysis]) -> Text:
    """What the charts say in words: fitted B_crit, measured B_simple, points used (or why none)."""
    text = Text()
    finished = sum(1 for r in state.run_list() if r.summary)
    target = f"{state.target_accuracy:.0%}" if state.target_accuracy is not None else "the target"
    # The best run of each batch size by its label (what tells it apart in the sweep, tui.labels).
    names = run_labels([r.key() for r in state.run_list()])
    labels = {(r.batch_size, r.lr, r.variant): names[r.run] for r in state.run_list()}
    if not arms:
        text.append("No run has finished yet", style="bold")
        text.append(f": this view fills as runs finish ({len(state.runs)} in the sweep).")
        return text
    for i, ((name, a), (color, fit_color)) in enumerate(zip(arms.items(), _colors(len(arms)))):
        if i:
            text.append("\n\n")
        if name:
            text.append(f"{name}\n", style=f"bold {color}")
        best = a.get("best", [])
        if not best:  # summaries without batch size and lr: a run directory from before issue 4
            text.append("The finished runs' summaries carry no batch size and lr to analyse", style="bold")
            text.append(" (a run directory written before lr sweeps were recorded?); rerun the sweep.")
            continue
        text.append("answer: ", style="bold")
        text.append(recommendation(a, state.target_accuracy, state.device))
        text.append("\n")
        reached = sum(1 for p in best if p.get("reached_target"))
        lrs = max((p.get("lrs_tried") or 1 for p in best), default=1)
        text.append(f"{reached} of {len(best)} batch sizes reached {target}")
        # One lr per batch size means no lr sweep only once every run is in; live, more may come.
        no_sweep = " (no lr sweep)" if lrs == 1 and state.finished else ""
        text.append(f" · {lrs} lr{'s' if lrs != 1 else ''} each{no_sweep}")
        text.append("\n")
        text.append_text(_fit_line("steps", a.get("fit_steps") or {}, "S_min"))
        text.append("\n")
        text.append_text(_fit_line("samples", a.get("fit_examples") or {}, "E_min"))
        text.append("\n")
        best_runs = [labels.get((p.get("batch_size"), p.get("lr"), name)) for p in best]
        best_runs = [label for label in best_runs if label]
        if best_runs:
            text.append("best: ", style="bold")
            text.append(", ".join(best_runs))
            text.append("\n")
        text.append("B_simple ", style="bold")
        b_simple = _num(a.get("b_simple"))
        text.append(compact(b_simple) if b_simple else "not measured", style=f"bold {BSIMPLE_MARK}")
        text.append(" (measured noise scale, median)", style="dim")
    if not state.finished:
        text.append(f"\n\nlive: {finished} of {len(state.runs)} runs finished", style="dim")
    text.append("\n━ measured", style=_colors(len(arms))[0][0])
    if len(arms) == 1:
        text.append("  ━ fit", style=FIT_COLOR)
    text.append("  │ B_crit", style=BCRIT_MARK)
    text.append("  │ B_simple", style=BSIMPLE_MARK)
    return text
