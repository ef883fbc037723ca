"""A run's cumulative figures (`RunTotals`), what is drawn from them (the run's accuracy, the collapse
verdicts), and the checks that a saved copy of them is one a run records (a checkpoint's totals)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trainer.analysis.accuracy import FULL, HEAD, SLICE, RunAccuracy, run_accuracy, run_kind
from trainer.analysis.collapse import Collapse, find_collapse


@dataclass
class RunTotals:
    """Cumulative figures of a run (for time to target and the summary)."""

    iters: int = 0
    samples: int = 0
    wall_s: float = 0.0
    compute_s: float = 0.0
    epochs: int = 0
    epoch_walls: list[float] = field(default_factory=list)
    epoch_computes: list[float] = field(default_factory=list)
    best_test_acc: float | None = (
        None  # the best of the run's evaluations of its kind (trainer/analysis/accuracy.py)
    )
    target: dict[str, Any] | None = None
    loss_diff_stds: list[float | None] = field(default_factory=list)
    grad_cosines: list[float | None] = field(default_factory=list)
    b_simple: float | None = None
    # The science fields (older checkpoints lack them and resume with these defaults):
    optimizer_steps: int = 0  # k per batch while split-backward is on
    final_test_acc: float | None = None  # the last full-test-set evaluation's
    last_miss: dict[str, Any] | None = (
        None  # totals at the last evaluation below the target (None: the start)
    )
    target_lo: dict[str, Any] | None = None  # the last miss before the hit (None with a target: not recorded)
    # every evaluation: acc, loss, iters, samples, epoch, epoch_end, eval_set (older checkpoints lack the set:
    # their epoch ends were on the full test set, the rest on its first 2,000 images)
    evals: list[dict[str, Any]] = field(default_factory=list)
    collapse: dict[str, Any] | None = None  # where and why the run collapsed (trainer/analysis/collapse.py)


#: The totals a crossing of the target is given at (the hit and the last miss).
CROSSING_KEYS = ("iters", "samples", "wall_s", "compute_s", "optimizer_steps")


def observe(
    t: RunTotals,
    target_accuracy: float,
    test_acc: float,
    loss: float | None,
    *,
    epoch_end: bool,
    epoch: int,
    wall_s: float,
    compute_s: float,
    stretch: float | None = None,
) -> dict[str, Any] | None:
    """Book one evaluation on the slice at the current totals: the run's best accuracy, the evaluation
    history the collapse verdicts are drawn from, and the crossing of the target. Returns target_reached's
    fields (the hit, with the last miss before it) the first time the target is met, else None."""
    # loss: the epoch's mean training loss at an epoch end (never-learned verdicts), else the stretch's
    # since the previous evaluation; stretch: that stretch's at an epoch end too (fall-back confirmation)
    t.evals.append(
        {
            "acc": test_acc,
            "loss": loss,
            "iters": t.iters,
            "samples": t.samples,
            "epoch": epoch,
            "epoch_end": epoch_end,
            "eval_set": SLICE,
            "stretch": loss if not epoch_end else stretch,
        }
    )
    t.best_test_acc = accuracy(t).best
    point = {
        "iters": t.iters,
        "samples": t.samples,
        "wall_s": wall_s,
        "compute_s": compute_s,
        "optimizer_steps": t.optimizer_steps,
    }
    if t.target is not None:
        return None
    if test_acc < target_accuracy:
        t.last_miss = point
        return None
    lo = t.last_miss or {k: 0 for k in CROSSING_KEYS}  # before any evaluation: the untrained start
    t.target_lo = dict(lo)
    t.target = {
        "epoch": epoch,
        "iter": t.iters,
        "samples": t.samples,
        "wall_s": wall_s,
        "compute_s": compute_s,
        "test_acc": test_acc,
        "optimizer_steps": t.optimizer_steps,
    }
    return {
        **t.target,
        "iter_lo": lo["iters"],
        "samples_lo": lo["samples"],
        "wall_s_lo": lo["wall_s"],
        "compute_s_lo": lo["compute_s"],
        "optimizer_steps_lo": lo["optimizer_steps"],
    }


def accuracy(totals: RunTotals) -> RunAccuracy:
    """The run's current and best accuracy (trainer/analysis/accuracy.py: its evaluations of one kind)."""
    return run_accuracy((_eval_set(e), e["acc"]) for e in totals.evals)


def _own_evals(totals: RunTotals) -> list[dict[str, Any]]:
    """The evaluations of the run's kind (the slice; a run resumed from an older checkpoint may also
    hold evaluations of the older kinds, which are left out)."""
    evals = totals.evals
    kind = run_kind(_eval_set(e) for e in evals)
    return [e for e in evals if _eval_set(e) == kind]


def fell_back(totals: RunTotals, classes: int = 10) -> Collapse | None:
    """A collapse that ends the run now: accuracy back near chance after being well above it, and
    confirmed by the next evaluation, over the run's evaluations so far (trainer/analysis/collapse.py).
    Recorded in the totals."""
    evals = _own_evals(totals)
    verdict = find_collapse([e["acc"] for e in evals], n_classes=classes)
    return _book(totals, verdict, evals) if verdict is not None else None


def end_verdict(totals: RunTotals, classes: int = 10) -> Collapse | None:
    """At the run's last epoch: a fall back seen once at its last evaluation, confirmed by the
    training loss before it; else a collapse over the epoch-end evaluations of the run's kind (epoch
    training loss), either kind: a run that never learned is told from a slow learner by its loss."""
    evals = _own_evals(totals)
    verdict = find_collapse(
        [e["acc"] for e in evals], [e.get("stretch", e["loss"]) for e in evals], classes, final=True
    )
    if verdict is not None and verdict.kind == "fell_back":
        return _book(totals, verdict, evals)
    ends = [e for e in evals if e["epoch_end"]]
    verdict = find_collapse([e["acc"] for e in ends], [e["loss"] for e in ends], classes)
    return _book(totals, verdict, ends) if verdict is not None else None


def _book(totals: RunTotals, verdict: Collapse, evals: list[dict[str, Any]]) -> Collapse:
    at = evals[verdict.index]
    totals.collapse = {
        "iter": at["iters"],
        "samples": at["samples"],
        "epoch": at["epoch"],
        "kind": verdict.kind,
        "reason": verdict.reason,
    }
    return verdict


def totals_from_state(state: dict[str, Any]) -> RunTotals:
    """The totals of a ledger's `state_dict` (at an epoch boundary); ValueError or KeyError when they are
    not what a run records. Keys this version does not know are ignored; missing totals take defaults."""
    saved = state["totals"]
    if not isinstance(saved, dict):
        raise ValueError(f"totals must be a table, got {type(saved).__name__}")
    for name, value in saved.items():
        if name in _TOTALS_CHECKS and not _TOTALS_CHECKS[name](value):
            raise ValueError(f"totals.{name} = {_short(value)} is not what a run records")
    totals = RunTotals(**{k: v for k, v in saved.items() if k in _TOTALS_CHECKS})
    if (state["epoch"], state["iters"], state["samples"]) != (totals.epochs, totals.iters, totals.samples):
        raise ValueError(
            f"epoch {state['epoch']!r}, iterations {state['iters']!r} and samples "
            f"{state['samples']!r} do not match the run's totals"
        )
    return totals


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _optional_number(v: Any) -> bool:
    return v is None or _number(v)


def _numbers(v: Any) -> bool:
    return isinstance(v, list) and all(_number(x) for x in v)


def _optional_numbers(v: Any) -> bool:
    return isinstance(v, list) and all(_optional_number(x) for x in v)


def _target(v: Any) -> bool:
    return v is None or (isinstance(v, dict) and all(isinstance(k, str) and _number(x) for k, x in v.items()))


def _crossing_point(v: Any) -> bool:
    return isinstance(v, dict) and set(v) == set(CROSSING_KEYS) and all(_number(x) for x in v.values())


def _optional_point(v: Any) -> bool:
    return v is None or _crossing_point(v)


_EVAL_CHECKS = {
    "acc": _number,
    "loss": _optional_number,
    "iters": _count,
    "samples": _count,
    "epoch": _count,
    "epoch_end": lambda v: isinstance(v, bool),
}
_EVAL_OPTIONAL = {
    "eval_set": lambda v: v in (SLICE, FULL, HEAD),
    "stretch": _optional_number,
}  # older: absent


def _evals(v: Any) -> bool:
    checks = {**_EVAL_CHECKS, **_EVAL_OPTIONAL}
    return isinstance(v, list) and all(
        isinstance(e, dict)
        and set(_EVAL_CHECKS) <= set(e) <= set(checks)
        and all(checks[k](x) for k, x in e.items())
        for e in v
    )


def _eval_set(e: dict[str, Any]) -> str:
    """The set an evaluation in the totals was taken on (older checkpoints: what their trainer used)."""
    return e.get("eval_set") or (FULL if e["epoch_end"] else HEAD)


def _collapse(v: Any) -> bool:
    return v is None or (
        isinstance(v, dict)
        and _count(v.get("iter"))
        and _count(v.get("samples"))
        and _count(v.get("epoch"))
        and isinstance(v.get("kind"), str)
        and isinstance(v.get("reason"), str)
    )


_TOTALS_CHECKS = {
    "iters": _count,
    "samples": _count,
    "wall_s": _number,
    "compute_s": _number,
    "epochs": _count,
    "epoch_walls": _numbers,
    "epoch_computes": _numbers,
    "best_test_acc": _optional_number,
    "target": _target,
    "loss_diff_stds": _optional_numbers,
    "grad_cosines": _optional_numbers,
    "b_simple": _optional_number,
    "optimizer_steps": _count,
    "final_test_acc": _optional_number,
    "last_miss": _optional_point,
    "target_lo": _optional_point,
    "evals": _evals,
    "collapse": _collapse,
}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
