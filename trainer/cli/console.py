"""Headless progress: a rich progress bar per run, then a summary table.

An event sink like any other, so the console shows exactly what the run
directory records. Rich only (no Textual): the trainer runs on bare GPU boxes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from trainer.analysis import schedule_verdict
from trainer.analysis.answer.scheduled import Scheduled, scheduled_entry
from trainer.analysis.figures import num, pct, setting
from trainer.report.branch import branch_result, brief
from trainer.report.collect import sweep_runs
from trainer.report.schedule import scheduled_runs, verdict
from trainer.runlog import Event, EventType, RunStatus, summary_number


def _fmt(value: Any, spec: str = "", dash: str = "-") -> str:
    if value is None or value == "":
        return dash
    try:
        return format(float(value), spec) if spec else str(value)
    except (TypeError, ValueError):
        return str(value)


class ConsoleSink:
    """Shows sweep progress on a terminal (or plain lines when not a terminal)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.slice_acc: dict[str, Any] = {}  # each run's last accuracy on the evaluation slice
        self.progress = Progress(
            TextColumn("{task.fields[run]:>8}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("iters"),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            # From the rate measured over the last minute: in an interleaved sweep it counts the other
            # runs' slices too, so it is this run's wall-clock time left, not its compute time.
            TimeRemainingColumn(compact=True, elapsed_when_finished=False),
            console=self.console,
            transient=False,
        )
        self.tasks: dict[str, Any] = {}
        self.started = False
        #: Not a terminal (redirected to a file, a batch job's log): a progress bar would only show at the
        #: end, so each run gets a line as it starts, at each epoch end and when it ends, written at once.
        self.lines = not self.console.is_terminal
        self.totals: dict[str, int] = {}

    def emit(self, event: Event) -> None:
        kind = event["type"]
        if kind == EventType.SWEEP_STARTED:
            note = f" ({event['dataset_note']})" if event.get("dataset_note") else ""
            self.console.print(
                f"[bold]bstui sweep[/] on [cyan]{event.get('device')}[/] (torch {event.get('torch')}), "
                f"dataset [cyan]{event.get('dataset')}[/]{note}"
            )
            if event.get("run_dir"):
                self.console.print(f"run directory: {event['run_dir']}")
            if not self.lines:
                self.progress.start()
                self.started = True
        elif self.lines:
            self._line(event)
        elif kind == EventType.RUN_STARTED:
            total = max(1, int(event.get("iters_per_epoch", 0)) * int(event.get("epochs", 1)))
            self.tasks[event["run"]] = self.progress.add_task(
                "", total=total, run=event["run"], info=f"lr {setting(event.get('lr'))}"
            )
        elif kind == EventType.LOSSES:
            task = self.tasks.get(event["run"])
            if task is not None:
                self.progress.update(task, completed=event["first_iter"] + len(event["values"]))
        elif kind == EventType.EVALUATION:
            self.slice_acc[event["run"]] = event.get("test_acc")
        elif kind == EventType.EPOCH_END:
            task = self.tasks.get(event["run"])
            # the run's accuracy is of one kind: the slice's (trainer/analysis/accuracy.py), where it is evaluated
            acc = self.slice_acc.get(event["run"], event.get("test_acc"))
            if task is not None:
                self.progress.update(
                    task,
                    info=f"epoch {event['epoch']} acc {pct(acc)} "
                    f"wall {num(event.get('wall_s'))}s compute {num(event.get('compute_s'))}s",
                )
        elif kind == EventType.MODE_CHANGED:
            k = event.get("split_chunks") or 1
            mode = f"split-backward ÷{k}" if k > 1 else "plain steps"
            why = f" ({event['reason']})" if event.get("reason") else ""
            self.console.print(f"{event['run']}: {mode} from iteration {event.get('iter')}{why}")
        elif kind == EventType.RUN_FINISHED:
            task = self.tasks.get(event["run"])
            if task is not None:
                self.progress.update(task, info=f"[bold]{event['status']}[/]")
            if event["status"] not in (RunStatus.DONE, RunStatus.STOPPED):
                self.console.print(f"[red]{event['run']}: {event['status']}[/]: {event.get('reason', '')}")
        elif kind == EventType.SWEEP_FINISHED:
            self.close()

    def _line(self, event: Event) -> None:
        """One plain line for a run's start, each epoch end, a split switch and its end (not a terminal)."""
        kind, run = event["type"], event.get("run")
        if kind == EventType.RUN_STARTED:
            epochs = int(event.get("epochs") or 1)
            self.totals[run] = int(event.get("iters_per_epoch") or 0) * epochs
            text = (
                f"{run}: started, lr {setting(event.get('lr'))}, {epochs} epoch{'s' if epochs != 1 else ''}"
            )
        elif kind == EventType.EPOCH_END:
            total, done = self.totals.get(run), event.get("total_iters")
            share = f" ({done / total:.0%})" if isinstance(done, int) and total else ""
            text = (
                f"{run}: epoch {event['epoch']}{share} test acc {pct(event.get('test_acc'))} "
                f"wall {num(event.get('wall_s'))}s compute {num(event.get('compute_s'))}s"
            )
        elif kind == EventType.MODE_CHANGED:
            k = event.get("split_chunks") or 1
            why = f" ({event['reason']})" if event.get("reason") else ""
            text = f"{run}: {f'split-backward ÷{k}' if k > 1 else 'plain steps'} from iteration {event.get('iter')}{why}"
        elif kind == EventType.RUN_FINISHED:
            why = f": {event['reason']}" if event.get("reason") else ""
            text = f"{run}: {event['status']}{why}"
        else:
            return
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)
        self.console.file.flush()

    def close(self) -> None:
        if self.started:
            self.progress.stop()
            self.started = False


def _span(lo: Any, hi: Any, fmt: Callable[[Any], str] = _fmt, dash: str = "-") -> str:
    """A crossing of the target as the interval it is known in: "lo–hi" (after lo, at or before hi)."""
    if hi is None or hi == "":
        return dash
    return f"{fmt(lo)}–{fmt(hi)}" if lo is not None and lo != "" else fmt(hi)


def _typed(row: dict[str, Any]) -> dict[str, Any]:
    """A summary row with its numbers as numbers: rows read back from summary.csv hold strings."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, str) and summary_number(value) is not None:
            value = int(value) if value.lstrip("-").isdigit() else float(value)
        out[key] = value
    return out


def schedules(events: list[dict[str, Any]]) -> dict[str, Scheduled]:
    """Each scheduled run (sweep.batch_schedule) by run id, from its run_started: its stages label it."""
    return {
        run: scheduled_entry({"run": run}, started["batch_schedule"])
        for run, started in scheduled_runs(events).items()
    }


def summary_table(
    rows: list[dict[str, Any]], device: str = "", scheduled: Mapping[str, Scheduled] | None = None
) -> Table:
    """The end-of-sweep table (one row per run). Crossings of the target are intervals (last evaluation
    below it – first at or above it); with split-backward, k, the effective lr (lr x k) and the optimizer
    steps (k per batch) stand beside the batches. A scheduled run (`scheduled`, by run id) shows its
    stages' batch sizes and lrs ("16→64→128"), as the app and report.md label it, not its first stage's."""
    scheduled = scheduled or {}
    title = "summary" + (f" ({device})" if device else "")
    table = Table(title=title)
    for name in (
        "run",
        "batch",
        "lr",
        "k",
        "eff. lr",
        "status",
        "epochs",
        "best acc",
        "final acc",
        "time to target s",
        "compute to target s",
        "batches to target",
        "opt. steps to target",
        "samples/s",
        "epoch wall",
        "epoch compute",
    ):
        table.add_column(name, justify="right")
    for r in map(_typed, rows):
        staged = scheduled.get(str(r.get("run")))
        k = r.get("split_chunks")
        table.add_row(
            str(r.get("run")),
            staged.sizes_label if staged else _fmt(r.get("batch_size")),
            staged.lrs_times(1) if staged else setting(r.get("lr")),
            _fmt(k),
            staged.lrs_times(k if isinstance(k, int) and k > 0 else 1)
            if staged
            else setting(r.get("effective_lr")),
            str(r.get("status")),
            _fmt(r.get("epochs")),
            pct(r.get("best_test_acc")),
            pct(r.get("final_test_acc")),
            _span(r.get("time_to_target_lo_s"), r.get("time_to_target_s"), num, "not reached"),
            _span(r.get("compute_to_target_lo_s"), r.get("compute_to_target_s"), num),
            _span(r.get("iters_to_target_lo"), r.get("iters_to_target")),
            _span(r.get("optimizer_steps_to_target_lo"), r.get("optimizer_steps_to_target")),
            num(r.get("samples_per_s")),
            num(r.get("mean_epoch_wall_s")),
            num(r.get("mean_epoch_compute_s")),
        )
    return table


def closing_lines(events: list[dict[str, Any]]) -> list[str]:
    """What the sweep's end prints after the answer, as report.md says it: each finished scheduled run's
    verdict against the best fixed batch size, and, where the sweep branched, B_crit at each branch point
    with the schedule it proposes in Megatron-LM's syntax. Nothing for a sweep with neither."""
    lines: list[str] = []
    scheduled = scheduled_runs(events)
    if scheduled:
        started = next((e for e in events if e.get("type") == EventType.SWEEP_STARTED), {})
        sweep = (started.get("config") or {}).get("sweep")
        target = sweep.get("target_accuracy") if isinstance(sweep, dict) else None
        runs = sweep_runs(events)
        for run_started, row in runs.scheduled:
            # stopped on the way (its resume finishes it) or failed (a bug): no verdict to give
            if row is not None and row.get("status") not in (RunStatus.STOPPED, RunStatus.FAILED):
                result = schedule_verdict.compare(row, runs.rows)
                lines.append(verdict(result, run_started["batch_schedule"], target))
    result = branch_result(events)
    if result is not None:
        lines += brief(result)
    return lines
