"""Terminal plots of the headless report, drawn with plotext into plain strings.

Four plots: training loss against samples per run, test accuracy against samples with the target,
steps to target against batch size (log-log) with each crossing's interval, the B_crit fit and its
95% band, each batch size's regime and the batch sizes no lr reached the target at, and the best lr
against batch size with the lr rule measured from the grid (trainer/analysis/answer/). Plain text (no colours), so they read the same in a terminal, in report.md and over SSH;
runs are told apart by their marker characters, named in each legend. No torch, no Textual.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from typing import Any

import plotext as plt

from trainer.analysis.accuracy import evaluations, run_kind
from trainer.analysis.answer.scheduled import MARKER, Scheduled

WIDTH, HEIGHT = 78, 20
MAX_RUNS = 8  # lines per plot; beyond that only the best lr of each batch size is drawn
MAX_POINTS = 120  # loss points per run (means over buckets of iterations)
MARKERS = ("x", "o", "+", "*", "#", "@", "%", "&")


def compact(value: float) -> str:
    """An axis label: 3 significant figures at most, k/M for thousands and millions."""
    if value == 0:
        return "0"
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= div:
            return f"{float(f'{value / div:.3g}'):g}{suffix}"
    return f"{float(f'{value:.3g}'):g}"


def linear_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round ticks (1, 2, 2.5 or 5 x 10^n apart) covering [lo, hi], about `count` of them."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(1, count - 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]


def log_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Ticks of a log axis over [lo, hi]: 1-2-5, 1-3 or 1 per decade, the densest with <= count."""
    if lo <= 0 or hi <= lo:
        return [lo] if lo > 0 else []
    ticks: list[float] = []
    for mantissas in ((1, 2, 5), (1, 3), (1,)):
        ticks = [
            m * 10.0**k
            for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
            for m in mantissas
            if lo * (1 - 1e-9) <= m * 10.0**k <= hi * (1 + 1e-9)
        ]
        if len(ticks) <= count:
            break
    return ticks or [lo, hi]


def _start(xlabel: str, width: int, height: int) -> None:
    plt.clear_figure()
    plt.plot_size(width, height)
    plt.theme("clear")
    plt.xlabel(xlabel)


def _build(title: str, legend: Sequence[tuple[str, str]]) -> str:
    """The figure as plain text: the title, the canvas, then the legend (marker = what) on its own
    lines, so it never hides a point and long titles are not cut."""
    text = plt.uncolorize(plt.build())
    plt.clear_figure()
    lines = [*textwrap.wrap(title, WIDTH), *(line.rstrip() for line in text.splitlines())]
    row = ""
    for marker, what in legend:
        item = f"{marker} {what}"
        if row and len(row) + 3 + len(item) > WIDTH:
            lines.append(row)
            row = ""
        row = f"{row}   {item}" if row else f"  {item}"
    if row:
        lines.append(row)
    return "\n".join(lines)


def _runs_to_draw(runs: dict[str, dict[str, Any]], analysis: dict[str, Any]) -> tuple[list[str], int]:
    """Run ids to draw (at most MAX_RUNS) and how many were left out. Beyond MAX_RUNS, one run per batch
    size: its best lr's, or where no lr reached the target its most accurate lr's, so every batch size
    stays in the plot."""
    ids = [r for r in runs if runs[r]["points"]]
    if len(ids) <= MAX_RUNS:
        return ids, 0
    pick: dict[tuple[int, str], float] = {}
    for p in analysis.get("best", []):
        if p.get("lr") is not None:
            pick[(p["batch_size"], p.get("variant") or "")] = p["lr"]
    accurate: dict[tuple[int, str], tuple[float, float]] = {}
    for p in analysis.get("points", []):
        key = (p["batch_size"], p.get("variant") or "")
        acc = p.get("best_test_acc") if isinstance(p.get("best_test_acc"), (int, float)) else -1.0
        if key not in pick and (key not in accurate or acc > accurate[key][0]):
            accurate[key] = (acc, p["lr"])
    pick.update({key: lr for key, (_, lr) in accurate.items()})
    keep: list[str] = []
    seen: set[tuple[int, str]] = set()
    for r in ids:
        key = (runs[r]["batch_size"], runs[r]["variant"])
        if key not in seen and pick.get(key) == runs[r]["lr"]:
            seen.add(key)
            keep.append(r)
    keep = sorted(keep, key=lambda r: (runs[r]["batch_size"], runs[r]["variant"]))[:MAX_RUNS]
    return keep, len(ids) - len(keep)


def _bucket_means(points: Sequence[tuple[float, float]], n: int) -> tuple[list[float], list[float]]:
    """At most n points: means of x and y over consecutive equal buckets."""
    if len(points) <= n:
        return [p[0] for p in points], [p[1] for p in points]
    xs, ys = [], []
    size = len(points) / n
    for i in range(n):
        chunk = points[int(i * size) : int((i + 1) * size)]
        if chunk:
            xs.append(sum(p[0] for p in chunk) / len(chunk))
            ys.append(sum(p[1] for p in chunk) / len(chunk))
    return xs, ys


def run_series(events: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per run: batch size, lr, variant, per-iteration losses as (samples, loss) and evaluations as
    (samples, test accuracy) of the run's kind (trainer/analysis/accuracy.py: the evaluation slice; older run
    directories: the epoch ends' full test set), from the run directory's events. A scheduled run's samples
    count each stage's iterations at its own batch size (its batch_size_changed events)."""
    runs: dict[str, dict[str, Any]] = {}
    for e in events:
        run = e.get("run")
        if not isinstance(run, str):
            continue
        if e.get("type") == "run_started":
            old = runs.get(run)
            b = e.get("batch_size") or 1
            runs[run] = {
                "batch_size": b,
                "lr": e.get("lr"),
                "variant": str(e.get("variant") or ""),
                "points": old["points"] if old else {},
                # (iteration, samples, batch size) from which each batch size held: one, or a schedule's
                "stages": old["stages"] if old else [(0, 0, b)],
            }
        elif run not in runs:
            continue
        elif e.get("type") == "batch_size_changed" and all(
            isinstance(e.get(k), int) for k in ("iter", "samples", "batch_size")
        ):
            stages = runs[run]["stages"]
            if e["iter"] > stages[-1][0]:
                stages.append((e["iter"], e["samples"], e["batch_size"]))
        elif e.get("type") == "losses" and isinstance(e.get("values"), list):
            first, stages = int(e.get("first_iter") or 0), runs[run]["stages"]
            for i, v in enumerate(e["values"]):
                if isinstance(v, (int, float)) and math.isfinite(v):
                    it0, s0, b = next(st for st in reversed(stages) if st[0] <= first + i)
                    runs[run]["points"][first + i] = (s0 + (first + i + 1 - it0) * b, float(v))
    evaluated = evaluations(events)
    for run, r in runs.items():  # a resumed run's repeated iterations: the later copy, in order
        r["points"] = [r["points"][k] for k in sorted(r["points"])]
        evals = [e for e in evaluated.get(run, []) if e["test_acc"] is not None]
        kind = run_kind(e["eval_set"] for e in evals)
        r["evals"] = [(e["samples"], e["test_acc"]) for e in evals if e["eval_set"] == kind]
    return runs


def loss_plot(
    runs: dict[str, dict[str, Any]], analysis: dict[str, Any], width: int = WIDTH, height: int = HEIGHT
) -> str:
    ids, omitted = _runs_to_draw(runs, analysis)
    note = (
        f"; {omitted} runs not drawn (one per batch size: its best lr, else its most accurate)"
        if omitted
        else ""
    )
    title = f"Training loss vs samples (each run's iterations in {MAX_POINTS} buckets, their means{note})"
    if not ids:
        return f"{title}\n(no training loss recorded)"
    _start("samples", width, height)
    xs_all, ys_all = [], []
    for run, marker in zip(ids, MARKERS):
        xs, ys = _bucket_means(runs[run]["points"], MAX_POINTS)
        xs_all += xs
        ys_all += ys
        plt.plot(xs, ys, marker=marker)
    _ticks(xs_all, ys_all, log=False)
    return _build(title, list(zip(MARKERS, ids)))


def accuracy_plot(
    runs: dict[str, dict[str, Any]],
    analysis: dict[str, Any],
    target: float | None,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> str:
    ids, omitted = _runs_to_draw({k: {**v, "points": v["evals"]} for k, v in runs.items()}, analysis)
    note = (
        f"; {omitted} runs not drawn (one per batch size: its best lr, else its most accurate)"
        if omitted
        else ""
    )
    line = f"; the horizontal line is the target, {100 * target:g}%" if target is not None else ""
    title = f"Test accuracy vs samples (at each evaluation{line}{note})"
    if not ids:
        return f"{title}\n(no evaluation recorded)"
    _start("samples", width, height)
    xs_all, ys_all = [], []
    for run, marker in zip(ids, MARKERS):
        xs = [p[0] for p in runs[run]["evals"]]
        ys = [100 * p[1] for p in runs[run]["evals"]]
        xs_all += xs
        ys_all += ys
        plt.plot(xs, ys, marker=marker)
    if target is not None:
        plt.hline(100 * target)
        ys_all.append(100 * target)
    _ticks(xs_all, ys_all, log=False, y_suffix="%")
    return _build(title, list(zip(MARKERS, ids)))


def _ticks(xs: list[float], ys: list[float], log: bool, y_suffix: str = "") -> None:
    make = log_ticks if log else linear_ticks
    for values, axis in ((xs, plt.xticks), (ys, plt.yticks)):
        if values:
            ticks = make(min(values), max(values))
            axis(ticks, [compact(t) + (y_suffix if axis is plt.yticks else "") for t in ticks])


def steps_plot(
    analysis: dict[str, Any],
    width: int = WIDTH,
    height: int = HEIGHT,
    scheduled: Sequence[Scheduled] = (),
) -> str:
    """Steps (batches) to target vs batch size, log-log: | each best point's crossing interval (last
    miss to hit), x the hit, the fit's median curve and its 95% band, ^ at the top for batch sizes no lr
    of which reached the target; each batch size's regime (trainer/analysis/answer/) under the plot. A
    scheduled run: ■ at its mean batch size (samples / steps to the target) with its interval, not in the fit."""
    from trainer.analysis.answer import curve

    c = curve(analysis)
    reached = [p for p in c.points if p.reached]
    missed = [p.batch_size for p in c.points if not p.reached]
    drawn = [e for e in scheduled if e.mean_batch and e.steps]
    fit = c.fit
    title = "Steps (batches) to target vs batch size, log-log, best lr of each batch size"
    if not reached and not drawn:
        sizes = ", ".join(str(p.batch_size) for p in c.points)
        return f"{title}\n(no batch size reached the target: nothing to plot against batch size; batch sizes run: {sizes or 'none'})"
    _start("batch size", width, height)
    plt.xscale("log")
    plt.yscale("log")
    xs_all: list[float] = [float(p.batch_size) for p in c.points]
    ys_all: list[float] = []
    band = fit.get("band")
    legend = [("|", "crossing interval (last miss to hit)"), ("x", "hit")]
    if band:
        plt.plot(band["batch"], band["steps_lo"], marker=".")
        plt.plot(band["batch"], band["steps_hi"], marker=".")
        plt.plot(band["batch"], band["steps_mid"], marker="o")
        xs_all += band["batch"]
        ys_all += [v for v in band["steps_lo"] + band["steps_hi"] if v > 0]
        legend += [("o", "fit S = S_min (1 + B_crit / B), median"), (".", "its 95% band")]
    for p in reached:
        b, hi, lo = p.batch_size, p.steps, p.steps_lo
        if lo is not None and 0 < lo < hi:
            seg = [lo * (hi / lo) ** (i / 15) for i in range(16)]
            plt.scatter([b] * len(seg), seg, marker="|")
            ys_all.append(lo)
        plt.scatter([b], [hi], marker="x")
        ys_all.append(hi)
    for e in drawn:
        lo, hi = e.steps  # type: ignore[misc]
        if 0 < lo < hi:
            seg = [lo * (hi / lo) ** (i / 15) for i in range(16)]
            plt.scatter([e.mean_batch] * len(seg), seg, marker="|")
            ys_all.append(lo)
        plt.scatter([e.mean_batch], [hi], marker=MARKER)
        ys_all.append(hi)
        xs_all.append(e.mean_batch)  # type: ignore[arg-type]
        legend.append((MARKER, f"{e.label} (scheduled) at samples ÷ steps; not in the fit"))
    ys_all = [v for v in ys_all if v > 0]
    if missed:
        top = max(ys_all)
        plt.scatter(missed, [top] * len(missed), marker="^")
        legend.append(("^", "not reached by any lr (drawn at the top)"))
    _ticks(xs_all, ys_all, log=True)
    regimes = "; ".join(f"{p.batch_size}: {p.regime}" for p in c.points)
    return _build(title, legend) + f"\n  regime per batch size: {regimes}"


def lr_rule_plot(analysis: dict[str, Any], width: int = WIDTH, height: int = HEIGHT) -> str:
    """Best lr vs batch size, log-log (trainer.analysis.answer's lr rule): x the best lr tried, | its tie band,
    o the rule fitted through them, . its 95% band."""
    from trainer.analysis.answer import lr_rule, rule_sentence

    rule = lr_rule(analysis.get("points", []))
    title = "Best lr vs batch size, log-log (the lr rule measured from the grid)"
    if not rule.best:
        return f"{title}\n(no batch size has a best lr: no lr reached the target)"
    _start("batch size", width, height)
    plt.xscale("log")
    plt.yscale("log")
    sizes = sorted({p["batch_size"] for p in analysis.get("points", [])})
    lrs = [
        p["lr"] for p in analysis.get("points", []) if isinstance(p.get("lr"), (int, float)) and p["lr"] > 0
    ]
    legend = [("x", "best lr tried"), ("|", "tie band (lrs whose crossings overlap the best's)")]
    if rule.slope is not None:
        grid = [sizes[0] * (sizes[-1] / sizes[0]) ** (i / 24) for i in range(25)]
        at = [rule.lr_at(b) for b in grid]
        plt.plot(grid, [v[1] for v in at], marker=".")  # type: ignore[index]
        plt.plot(grid, [v[2] for v in at], marker=".")  # type: ignore[index]
        plt.plot(grid, [v[0] for v in at], marker="o")  # type: ignore[index]
        lrs += [v[1] for v in at] + [v[2] for v in at]  # type: ignore[index]
        legend += [("o", f"rule: lr ~ B^{rule.slope:.2f}"), (".", "its 95% band")]
    for p in rule.best:
        if p.tie_hi > p.tie_lo:
            seg = [p.tie_lo * (p.tie_hi / p.tie_lo) ** (i / 15) for i in range(16)]
            plt.scatter([p.batch_size] * len(seg), seg, marker="|")
        plt.scatter([p.batch_size], [p.lr], marker="x")
    _ticks([float(b) for b in sizes], lrs, log=True)
    return _build(title, legend) + "\n  " + "\n  ".join(textwrap.wrap(rule_sentence(rule), WIDTH - 2))


def plots(
    events: Sequence[dict[str, Any]],
    analysis: dict[str, Any],
    target: float | None,
    width: int = WIDTH,
    height: int = HEIGHT,
    scheduled: Sequence[Scheduled] = (),
) -> list[str]:
    """The report's four plots, as plain-text blocks (a scheduled run ■ on the steps plot)."""
    runs = run_series(events)
    return [
        loss_plot(runs, analysis, width, height),
        accuracy_plot(runs, analysis, target, width, height),
        steps_plot(analysis, width, height, scheduled),
        lr_rule_plot(analysis, width, height),
    ]
