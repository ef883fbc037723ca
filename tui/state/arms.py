"""The scaling view's model: the sweep's [[variants]] arms, each with its analysis, its folded points
and the lr rule measured from them. Pure: no Textual, no torch.

The analysis is trainer.analysis.scaling.analyse, run on every run of the sweep (those still training
count, so an lr with a seed still running is never the best yet); once the sweep has finished, its own
sweep_finished.scaling is used (the trainer's word, resumed runs merged in). tui.render.scaling draws it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from trainer.analysis import answer
from trainer.analysis.scaling import analyse, lr_points
from tui.state.sweep import SweepState

Analysis = dict[str, Any]


class Arm:
    """One [[variants]] arm ("" without variants): its analysis, its folded points and what follows."""

    def __init__(self, name: str, analysis: Analysis, points: list[dict[str, Any]], unfinished: int) -> None:
        self.name = name
        self.analysis = analysis
        self.points = points
        self.unfinished = unfinished
        self.curve = answer.curve(analysis)
        self.rule = answer.lr_rule(points)
        # The rule's 95% band at a few batch sizes, for the plot (the draws are too many to redo per frame).
        sizes = [p["batch_size"] for p in points]
        self.rule_band: list[tuple[float, float, float, float]] = []
        if self.rule.slope is not None and sizes:
            for x in np.linspace(math.log10(min(sizes)), math.log10(max(sizes)), 9):
                lr, lo, hi = self.rule.lr_at(10.0**x)  # type: ignore[misc]
                self.rule_band.append((float(x), lr, lo, hi))

    def matrix(self, metric: str) -> answer.Matrix:
        return answer.matrix(self.points, metric)


def finite(value: Any) -> float | None:
    """A finite number as a float; None for anything else (bools, NaN, strings, absent)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _base(config: dict[str, Any], overrides: dict[str, Any] | None = None) -> tuple[float | None, int | None]:
    """(base lr, base batch size) of the config, or of one [[variants]] arm of it (the trainer's
    analysis sets the textbook rules beside the best lrs; this screen draws the measured rule)."""
    optim = dict(config.get("optim") or {})
    if overrides and isinstance(overrides.get("optim"), dict):
        optim.update(overrides["optim"])
    lr, batch = finite(optim.get("lr")), finite(optim.get("base_batch_size"))
    return lr, (int(batch) if batch else None)


def _rows(state: SweepState) -> list[dict[str, Any]]:
    """Every run as a summary row: the finished ones' summaries, the others' batch size, lr and status
    (so the matrix shows them as running and no lr with a seed still training can be best), each with
    its last epoch's training loss (the matrix's final-loss metric)."""
    rows = []
    for r in state.run_list():
        if r.run in state.branch_runs or r.run in state.scheduled_runs:
            continue  # measured apart (branched B_crit, the schedule's verdict: key b), not points of the grid
        losses = [e.train_loss for e in r.epochs if e.train_loss is not None]
        loss = {"final_train_loss": losses[-1]} if losses else {}
        if r.summary:
            rows.append({**r.summary, **loss})
        else:
            rows.append(
                {
                    "run": r.run,
                    "batch_size": r.batch_size,
                    "lr": r.lr,
                    "seed": r.seed,
                    "variant": r.variant,
                    "status": r.status if r.status in ("waiting", "running") else "running",
                    "best_test_acc": r.best_acc,
                    **loss,
                }
            )
    return rows


def scheduled_of(state: SweepState) -> list[answer.Scheduled]:
    """The sweep's scheduled runs (sweep.batch_schedule), each its own row beside the matrix
    (trainer.analysis.answer.scheduled): from its summary once finished, else what it has so far."""
    out = []
    for run_id in sorted(state.scheduled_runs):
        r = state.runs.get(run_id)
        if r is None or not r.schedule_stages:
            continue
        losses = [e.train_loss for e in r.epochs if e.train_loss is not None]
        row: dict[str, Any] = {"run": r.run, "status": r.status, "best_test_acc": r.best_acc}
        if r.summary:
            row = dict(r.summary)
        if losses:
            row["final_train_loss"] = losses[-1]
        out.append(answer.scheduled_entry(row, r.schedule_stages))
    return out


def arms_of(state: SweepState) -> dict[str, Arm]:
    """One Arm per [[variants]] arm of the sweep ("" without variants), from what is known now."""
    arms_rows: dict[str, list[dict[str, Any]]] = {}
    for row in _rows(state):
        arms_rows.setdefault(str(row.get("variant") or ""), []).append(row)
    overrides = {str(v.get("name")): v for v in (state.config.get("variants") or []) if isinstance(v, dict)}
    finished = state.scaling if isinstance(state.scaling, dict) else None
    if finished is not None and isinstance(finished.get("variants"), dict):
        for name in finished["variants"]:
            arms_rows.setdefault(str(name), [])
    out = {}
    for name, rows in arms_rows.items():
        if finished is not None:
            variants = finished.get("variants")
            a = variants.get(name) if isinstance(variants, dict) else (finished if not name else None)
        else:
            a = None
        if rows and (
            not isinstance(a, dict) or "b_crit" not in a
        ):  # live, or from before the B_crit interval
            a = analyse(rows, *_base(state.config, overrides.get(name)))
        unfinished = sum(1 for r in rows if r.get("status") in answer.UNFINISHED)
        out[name] = Arm(name, a, lr_points(rows) if rows else list(a.get("points") or []), unfinished)
    return out


def analyses(state: SweepState) -> dict[str, Analysis]:
    """One analysis per arm of the sweep ("" when it has no [[variants]]), from what is known now."""
    return {name: arm.analysis for name, arm in arms_of(state).items()}
