"""The sweep's batch x lr matrix: rows are batch sizes, columns lrs, one cell per (batch size, lr) with
its seeds folded into a mean and a spread (sample standard deviation over seeds), for one metric: time
to target, steps to target, best test accuracy, final training loss, or the status. The best cell of
each row and the overall answer follow trainer.analysis.scaling's rule: only lrs whose every seed reached
the target and none diverged or collapsed can be best at time or steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from trainer.analysis.figures import count, finite, setting, sig

#: The matrix's metrics, in the order a key cycles them.
METRICS: tuple[str, ...] = ("time", "steps", "accuracy", "loss", "status")
METRIC_NAMES = {
    "time": "time to target alone (s)",
    "steps": "steps to target",
    "accuracy": "best test accuracy",
    "loss": "final training loss",
    "status": "status",
}
LOWER_IS_BETTER = {"time": True, "steps": True, "accuracy": False, "loss": True, "status": True}

UNUSABLE = ("diverged", "collapsed")
UNFINISHED = ("running", "pending", "waiting")
NOT_REACHED = "not reached"  # a cell's status, and a batch size's regime (trainer.analysis.answer.regime)


@dataclass(frozen=True)
class Cell:
    """One (batch size, lr) of the grid, its seeds folded."""

    batch_size: int
    lr: float
    seeds: int
    reached: int  # seeds that reached the target
    status: str  # reached | k/n reached | not reached | diverged | collapsed | running
    value: float | None  # the metric's mean over seeds (None: the metric has no value here)
    spread: float | None  # the metric's standard deviation over seeds (0 for one seed)
    eligible: bool  # every seed reached the target and none diverged or collapsed
    fused: bool = False  # trained in a fused group (without a time alone, its time is a share of the group's)
    point: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Matrix:
    metric: str
    batch_sizes: list[int]
    lrs: list[float]
    cells: dict[tuple[int, float], Cell]
    best: dict[int, float]  # per batch size, the lr of its best cell (absent: no cell can be best)
    answer: tuple[int, float] | None  # the overall best cell

    def cell(self, batch_size: int, lr: float) -> Cell | None:
        return self.cells.get((batch_size, lr))

    def value_range(self) -> tuple[float, float] | None:
        """(lowest, highest) value shown, for colour scales."""
        values = [c.value for c in self.cells.values() if c.value is not None]
        return (min(values), max(values)) if values else None


def cell_status(p: dict[str, Any]) -> str:
    """One word (or two) for a folded point: what became of its seeds."""
    statuses = [str(s) for s in p.get("statuses") or []]
    bad = [s for s in UNUSABLE if s in statuses]
    if bad:
        return " / ".join(bad)
    seeds, reached = int(p.get("seeds") or 0), int(p.get("reached") or 0)
    if seeds and reached == seeds:
        return "reached"
    if any(s in UNFINISHED for s in statuses):
        return "running"
    if reached:
        return f"{reached}/{seeds} reached"
    return NOT_REACHED


def eligible(p: dict[str, Any]) -> bool:
    """Every seed of a folded point reached the target and none diverged, collapsed or is unfinished."""
    return (
        bool(p.get("seeds"))
        and p.get("reached") == p.get("seeds")
        and finite(p.get("steps"))
        and not any(s in UNUSABLE or s in UNFINISHED for s in p.get("statuses") or [])
    )


def _metric(p: dict[str, Any], metric: str) -> tuple[float | None, float | None]:
    """(mean, spread) of one metric for a folded point; time and steps only where every seed reached."""
    reached = eligible(p)
    if (
        metric == "time"
    ):  # alone where recorded (trainer.analysis.time_alone.alone_of), else the measured time
        if reached and finite(p.get("time_alone_s")):
            return p["time_alone_s"], p.get("time_alone_s_std")
        return (p.get("time_s"), p.get("time_s_std")) if reached and finite(p.get("time_s")) else (None, None)
    if metric in ("steps", "status"):
        k = p.get("split_chunks") or 1
        sd = p.get("steps_std")
        value = p.get("optimizer_steps") if finite(p.get("optimizer_steps")) else p.get("steps")
        return (value, sd * k if finite(sd) else None) if reached and finite(value) else (None, None)
    if metric == "accuracy":
        return p.get("best_test_acc"), p.get("best_test_acc_std")
    if metric == "loss":
        return p.get("final_train_loss"), p.get("final_train_loss_std")
    raise ValueError(f"unknown metric {metric!r}; one of {', '.join(METRICS)}")


def rank(p: dict[str, Any], metric: str) -> float | None:
    """The number a cell is ranked by (smaller is better); time and steps by their crossing intervals'
    midpoints, as trainer.analysis.scaling and trainer.analysis.recommend rank them."""
    if metric in ("time", "status"):
        if finite(
            p.get("time_alone_s")
        ):  # as trainer.analysis.recommend ranks: the interval alone, its midpoint
            hi = p["time_alone_s_max"] if finite(p.get("time_alone_s_max")) else p["time_alone_s"]
            lo = p["time_alone_s_min"] if finite(p.get("time_alone_s_min")) else hi
            return (lo + hi) / 2
        if not finite(p.get("time_s")):
            return None
        lo = p["time_s_lo"] if finite(p.get("time_s_lo")) else p["time_s"]
        return (lo + p["time_s"]) / 2
    if metric == "steps":
        lo = p["steps_lo"] if finite(p.get("steps_lo")) else p["steps"]
        return (lo + p["steps"]) / 2 * (p.get("split_chunks") or 1)
    value, _ = _metric(p, metric)
    if not finite(value):
        return None
    return -value if metric == "accuracy" else value


def matrix(points: Sequence[dict[str, Any]], metric: str = "time", variant: str | None = None) -> Matrix:
    """The grid of trainer.analysis.scaling.lr_points (seeds already folded) for one metric; with `variant`,
    only that [[variants]] arm's points (an arm's own analysis holds only its own)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; one of {', '.join(METRICS)}")
    cells: dict[tuple[int, float], Cell] = {}
    for p in points:
        if (variant is not None and str(p.get("variant") or "") != variant) or p.get("lr") is None:
            continue
        value, spread = _metric(p, metric)
        key = (int(p["batch_size"]), float(p["lr"]))
        cells[key] = Cell(
            key[0],
            key[1],
            int(p.get("seeds") or 0),
            int(p.get("reached") or 0),
            cell_status(p),
            value if finite(value) else None,
            spread if finite(spread) else None,
            eligible(p),
            (p.get("fused_runs") or 0) > 1,
            p,
        )
    batch_sizes = sorted({b for b, _ in cells})
    lrs = sorted({lr for _, lr in cells})
    best: dict[int, float] = {}
    ranked: list[tuple[float, int, float]] = []
    for b in batch_sizes:
        row = []
        for lr in lrs:
            c = cells.get((b, lr))
            if c is None:
                continue
            # Time and steps: only an lr every seed of which reached the target, none lost on the way.
            # Accuracy and loss: any lr whose runs ended usable.
            ok = (
                c.eligible
                if metric in ("time", "steps", "status")
                else not any(s in c.status for s in UNUSABLE)
            )
            r = rank(c.point, metric) if ok else None
            if r is not None:
                row.append((r, lr))
        if row:
            r, lr = min(row)
            best[b] = lr
            ranked.append((r, b, lr))
    answer = (min(ranked)[1], min(ranked)[2]) if ranked else None
    return Matrix(metric, batch_sizes, lrs, cells, best, answer)


def cell_text(c: Cell | None, metric: str) -> str:
    """A cell in a few characters: the mean (± spread over seeds), or its status where it has no value."""
    if c is None:
        return ""
    if metric == "status":
        return c.status
    if c.value is None:
        return c.status
    if metric == "time":
        text = f"{sig(c.value, 3)}"
    elif metric == "steps":
        text = count(c.value)
    elif metric == "accuracy":
        text = f"{100 * c.value:.1f}%"
    else:
        text = sig(c.value, 3)
    if c.seeds > 1 and c.spread is not None:
        spread = (
            f"{100 * c.spread:.1f}"
            if metric == "accuracy"
            else count(c.spread)
            if metric == "steps"
            else sig(c.spread, 2)
        )
        text += f"±{spread}"
    if metric == "time" and c.fused and not finite(c.point.get("time_alone_s")):  # a share of a group's time
        text += "÷"
    return text


def markdown_table(m: Matrix) -> list[str]:
    """The matrix as a Markdown table: **bold** the best cell of each row, the overall answer also ★."""
    head = "| batch \\ lr | " + " | ".join(setting(lr) for lr in m.lrs) + " |"
    lines = [head, "| ---: |" + " ---: |" * len(m.lrs)]
    for b in m.batch_sizes:
        cells = []
        for lr in m.lrs:
            text = cell_text(m.cell(b, lr), m.metric) or " "
            if m.best.get(b) == lr:
                text = f"**{text}**" + (" ★" if m.answer == (b, lr) else "")
            cells.append(text)
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    return lines
