"""A scheduled run (sweep.batch_schedule) beside the batch x lr matrix: its own row, labelled by its stages
("ramp 16→64→128", the lr following them), with its steps, samples and time alone to the target each as an
interval (last evaluation below the target, first at it), as the fixed runs' crossings are.

It is never a cell of a fixed batch size, never a point of the S(B) fit (trainer.analysis.bcrit) and never
a candidate for the best fixed batch size: it has no single batch size. Where it is drawn on the
steps-to-target curve it sits at its mean batch size, samples / steps to the target (so the steps and the
samples plot agree: samples = mean batch x steps), with its own marker. The app's scaling view and report.md
both read this, so they say the same. Pure: no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from trainer.analysis.answer.matrix import NOT_REACHED, UNFINISHED, UNUSABLE
from trainer.analysis.figures import count, finite, setting, sig
from trainer.analysis.schedule_verdict import METRICS as VERDICT_METRICS
from trainer.analysis.schedule_verdict import span_of

#: Why a scheduled run is a row of its own: said where the fit and the best batch size are shown.
APART = "its batch size changes, so it is not in the B_crit fit nor a candidate for the best fixed batch size"
#: Where it is drawn on the steps/samples-to-target plots.
AT_MEAN_BATCH = "at its mean batch size (samples ÷ steps to the target)"
#: The marker of a scheduled run on those plots (app and report alike).
MARKER = "■"


@dataclass(frozen=True)
class Scheduled:
    """One scheduled run as the matrix and the curves show it."""

    run: str
    batch_sizes: tuple[int, ...]  # its stages' batch sizes, in order
    lrs: tuple[float | None, ...]  # its stages' lrs
    status: str  # reached | not reached | running | diverged | collapsed
    #: (last miss, hit) to the target; None where it did not reach it (or has no such figure).
    steps: tuple[float, float] | None
    samples: tuple[float, float] | None
    time: tuple[float, float] | None  # alone (each stage's batches at its batch size's step time alone)
    best_acc: float | None
    final_loss: float | None
    variant: str = ""
    row: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def label(self) -> str:
        """'ramp 16→64→128' (batch sizes that only grow), else 'schedule 64→16→64'."""
        sizes = self.batch_sizes
        word = "ramp" if all(a <= b for a, b in zip(sizes, sizes[1:])) else "schedule"
        return f"{word} {self.sizes_label}"

    @property
    def sizes_label(self) -> str:
        """'16→64→128', its stages' batch sizes (where a table's batch column shows it)."""
        return "→".join(str(b) for b in self.batch_sizes)

    @property
    def lr_label(self) -> str:
        """'lr 0.0125→0.05→0.1', the lr of each stage."""
        return "lr " + self.lrs_times(1)

    def lrs_times(self, k: float) -> str:
        """'0.0125→0.05→0.1': each stage's lr times `k` (split-backward's effective lr, lr x k)."""
        return "→".join(setting(lr * k) if lr is not None else "?" for lr in self.lrs)

    @property
    def mean_batch(self) -> float | None:
        """Samples / steps to the target (at the hit): where it is drawn against batch size."""
        if self.steps is None or self.samples is None or self.steps[1] <= 0:
            return None
        return self.samples[1] / self.steps[1]

    def value(self, metric: str) -> float | None:
        """The figure a matrix of `metric` would colour it by (the hit for steps and time)."""
        if metric == "time":
            return self.time[1] if self.time else None
        if metric in ("steps", "status"):
            return self.steps[1] if self.steps else None
        if metric == "samples":
            return self.samples[1] if self.samples else None
        if metric == "accuracy":
            return self.best_acc
        if metric == "loss":
            return self.final_loss
        raise ValueError(f"unknown metric {metric!r}")

    def text(self, metric: str) -> str:
        """Its figure for `metric` with its interval ('1,210–1,320'), its status where it has none."""
        if metric == "status":
            return self.status
        if metric == "accuracy":
            return f"{100 * self.best_acc:.1f}%" if self.best_acc is not None else self.status
        if metric == "loss":
            return sig(self.final_loss, 3) if self.final_loss is not None else self.status
        spans = {"time": self.time, "steps": self.steps, "samples": self.samples}
        got = spans[metric]
        if got is None:
            return self.status if metric != "time" or self.steps is None else "not recorded"
        return interval(got, metric)

    def to_target(self) -> str:
        """'steps 1,210–1,320 · samples 30,000–31,200 · time alone 18.5–19.3 s', or its status."""
        if self.steps is None:
            return self.status
        parts = [f"steps {interval(self.steps, 'steps')}", f"samples {interval(self.samples, 'samples')}"]
        parts.append(f"time alone {interval(self.time, 'time') + ' s' if self.time else 'not recorded'}")
        return " · ".join(parts)


def interval(got: tuple[float, float] | None, metric: str) -> str:
    """A crossing interval: '1,210–1,320' steps or samples, '18.5–19.3' seconds; one figure where it is one."""
    if got is None:
        return "-"

    def fmt(v: float) -> str:
        return sig(v, 3) if metric == "time" else count(v)

    lo, hi = got
    return fmt(hi) if lo == hi else f"{fmt(lo)}–{fmt(hi)}"


def _status(row: dict[str, Any]) -> str:
    """As a matrix cell's: diverged or collapsed first, then reached; a run that ended otherwise says how
    (stopped, failed, not finished)."""
    status = str(row.get("status") or "")
    if status in UNUSABLE:
        return status
    if finite(row.get("iters_to_target")):
        return "reached"
    if status in UNFINISHED or not status:
        return "running"
    return NOT_REACHED if status == "done" else status


def scheduled_entry(row: dict[str, Any], stages: Sequence[dict[str, Any]]) -> Scheduled:
    """A scheduled run from its summary (or, while it trains, its run id, status and best accuracy so far)
    and its stages (run_started's `batch_schedule`: samples, batch_size, lr each)."""
    spans = {name: span_of(row, hi, lo) for name, hi, lo in VERDICT_METRICS}
    reached = finite(row.get("iters_to_target"))
    acc, loss = row.get("best_test_acc"), row.get("final_train_loss")
    return Scheduled(
        run=str(row.get("run") or ""),
        batch_sizes=tuple(int(s["batch_size"]) for s in stages),
        lrs=tuple(float(s["lr"]) if finite(s.get("lr")) else None for s in stages),
        status=_status(row),
        steps=spans["steps"] if reached else None,
        samples=spans["samples"] if reached else None,
        time=spans["time"] if reached else None,
        best_acc=float(acc) if finite(acc) else None,
        final_loss=float(loss) if finite(loss) else None,
        variant=str(row.get("variant") or ""),
        row=row,
    )


def fit_note(entries: Sequence[Scheduled]) -> str:
    """'ramp 16→64→128 (a scheduled run): its batch size changes, so it is not in ...'; '' without one."""
    if not entries:
        return ""
    names = ", ".join(e.label for e in entries)
    return f"{names} ({'a scheduled run' if len(entries) == 1 else 'scheduled runs'}): {APART}"


def markdown_rows(entries: Sequence[Scheduled]) -> list[str]:
    """The report's table of scheduled runs, one row each."""
    rows = [
        "| schedule | lr by stage | status | steps | samples | time alone s | mean batch | best acc | "
        "final loss | run |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for e in entries:
        mean = e.mean_batch
        rows.append(
            f"| {e.label} | {e.lr_label.removeprefix('lr ')} | {e.status} | {e.text('steps')} | "
            f"{e.text('samples')} | {e.text('time')} | {sig(mean, 3) if mean else '-'} | "
            f"{e.text('accuracy')} | {e.text('loss')} | {e.run} |"
        )
    return rows
