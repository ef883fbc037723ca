"""A run's accuracy: the evaluation slice, its sampling error, and which evaluations count. Pure
Python (no torch): the trainer, the report and the app read it.

Every evaluation of a run, within epochs and at their ends, is taken on the **evaluation slice**: a
fixed class-stratified random sample of the test set (`SLICE_SIZE` images, drawn with `SLICE_SEED`, so
the same images for every run of every sweep on the same test set; the whole test set when it is
smaller). Epoch ends also evaluate the **full** test set; that is a second kind, recorded apart
(`epoch_end.test_acc`, summary `final_test_acc`) and never mixed with the slice.

Each evaluation says which set it used (`eval_set`):

- ``"slice"``: the stratified slice (`evaluation` events that say so);
- ``"full"``: the whole test set (`epoch_end` events; older run directories' epoch ends too);
- ``"head"``: the test set's first 2,000 images, which older run directories' sub-epoch `evaluation`
  events (recorded without `eval_set`) were taken on.

`run_accuracy` gives a run's current and best accuracy from its evaluations, always of one kind: the
slice where the run has any slice evaluation, else the full test set, else the head (so an older run
directory reads as it did: its table and summary took the epoch ends). The table, plots, target,
collapse verdicts, summary.csv, report and recommendation all take their accuracy through it.

The slice's sampling error: an accuracy p measured on n images has binomial standard error
sqrt(p (1 - p) / n) (at most 0.5 / sqrt(n): 1.1 points at n = 2,000, 0.5 points at 98% accuracy).
Stratifying by class removes the part of it that comes from the class mix, so this is an upper bound.
Every run is scored on the same images, so differences between runs are measured more finely than that.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

SLICE_SIZE = 2000  # images in the evaluation slice
SLICE_SEED = 2024  # the slice's draw; fixed, so every run and every sweep score the same images

SLICE = "slice"
FULL = "full"
HEAD = "head"
#: The kind a run's accuracy is read from: the first of these it has evaluations of.
PRECEDENCE = (SLICE, FULL, HEAD)
#: In words, for tables and the report.
DESCRIPTION = {
    SLICE: "the evaluation slice (a fixed class-stratified random sample of the test set)",
    FULL: "the full test set",
    HEAD: "the test set's first 2,000 images",
}


def stratified_slice(labels: Sequence[int], size: int = SLICE_SIZE, seed: int = SLICE_SEED) -> list[int]:
    """Ascending indices of a class-stratified random sample of `size` of `labels`.

    Each class gets its share of `size` in proportion to its count (largest remainder; ties go to the
    smaller label), its images drawn uniformly without replacement by a generator seeded with `seed`
    (random.Random: the same indices on every machine and Python version). `size` >= len(labels):
    every index."""
    n = len(labels)
    if size >= n:
        return list(range(n))
    if size <= 0:
        return []
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(int(label), []).append(i)
    classes = sorted(by_class)
    quotas = {c: size * len(by_class[c]) / n for c in classes}
    take = {c: math.floor(q) for c, q in quotas.items()}
    left = size - sum(take.values())
    for c in sorted(classes, key=lambda c: (-(quotas[c] - take[c]), c))[:left]:
        take[c] += 1
    rng = random.Random(seed)
    chosen: list[int] = []
    for c in classes:
        members = by_class[c]
        keys = [rng.random() for _ in members]  # a random order of the class: its k smallest keys
        order = sorted(range(len(members)), key=keys.__getitem__)
        chosen += [members[j] for j in order[: take[c]]]
    return sorted(chosen)


def standard_error(acc: float, n: int) -> float | None:
    """Binomial standard error of an accuracy measured on n images (None without images)."""
    if n <= 0 or not _finite(acc):
        return None
    p = min(1.0, max(0.0, float(acc)))
    return math.sqrt(p * (1.0 - p) / n)


def worst_standard_error(n: int) -> float | None:
    """The largest binomial standard error on n images (at 50% accuracy)."""
    return 0.5 / math.sqrt(n) if n > 0 else None


def event_eval_set(event: dict[str, Any]) -> str | None:
    """The evaluation set of an `evaluation` or `epoch_end` event (older events: what their trainer
    used), None for other events."""
    kind = event.get("type")
    recorded = event.get("eval_set")
    if kind == "evaluation":
        return recorded if isinstance(recorded, str) and recorded else HEAD
    if kind == "epoch_end":
        return recorded if isinstance(recorded, str) and recorded else FULL
    return None


@dataclass(frozen=True)
class RunAccuracy:
    """A run's accuracy, from its evaluations of one kind (`eval_set`; "" without any)."""

    current: float | None  # at the last evaluation of that kind
    best: float | None  # the highest of them
    eval_set: str
    evaluations: int  # how many evaluations of that kind


def run_kind(kinds: Iterable[str | None]) -> str:
    """The kind a run's accuracy is read from, given the kinds of its evaluations ("" with none)."""
    have = {k for k in kinds if k}
    return next((k for k in PRECEDENCE if k in have), next(iter(sorted(have)), ""))


def run_accuracy(evals: Iterable[tuple[str | None, Any]]) -> RunAccuracy:
    """Current and best accuracy from a run's evaluations, (eval_set, test accuracy) in training order.

    Only the run's kind counts (`run_kind`: slice, else full, else head); accuracies that are not
    finite numbers are left out."""
    pairs = [(k, float(a)) for k, a in evals if _finite(a)]
    kind = run_kind(k for k, _ in pairs)
    accs = [a for k, a in pairs if k == kind]
    return RunAccuracy(accs[-1] if accs else None, max(accs) if accs else None, kind, len(accs))


def evaluations(events: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per run, its evaluations from a run directory's events, each {eval_set, samples, iter, test_acc},
    ordered by training samples; a resumed run's repeated evaluation (same kind and samples): the later."""
    per_run: dict[str, dict[tuple[str, float], dict[str, Any]]] = {}
    summed: dict[str, dict[int, tuple[float, float]]] = {}  # run -> epoch -> its samples, iterations
    for e in events:
        kind, run = event_eval_set(e), e.get("run")
        if kind is None or not isinstance(run, str):
            continue
        if e.get("type") == "epoch_end":
            samples, at = e.get("total_samples"), e.get("total_iters")
            if _finite(e.get("epoch")):  # older epoch ends lack the totals: the sum of the epochs so far
                epochs = summed.setdefault(run, {})
                epochs[int(e["epoch"])] = (_number(e.get("samples")), _number(e.get("iters")))
                before = [v for k, v in epochs.items() if k <= int(e["epoch"])]
                samples = samples if _finite(samples) else sum(s for s, _ in before)
                at = at if _finite(at) else sum(i for _, i in before)
            if not _finite(samples):
                continue
        else:
            samples, at = e.get("samples"), e.get("iter")
            if not _finite(samples):
                continue
        per_run.setdefault(run, {})[(kind, float(samples))] = {
            "eval_set": kind,
            "samples": float(samples),
            "iter": at if _finite(at) else None,
            "test_acc": float(e["test_acc"]) if _finite(e.get("test_acc")) else None,
        }
    return {run: [by[k] for k in sorted(by, key=lambda k: (k[1], k[0]))] for run, by in per_run.items()}


def _number(value: Any) -> float:
    return float(value) if _finite(value) else 0.0


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
