"""What `python -m trainer report DIR` reports on, gathered from a run directory: the sweep's facts (device,
dataset, config), the runs' summaries from their run_finished events (which hold more than summary.csv),
completed where older run directories did not record a field (trainer/analysis/crossing.py: crossing
intervals, final accuracy, optimizer steps, collapse), and the scaling analysis of the finished runs. A
sharded sweep is read as one sweep. No torch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple

from trainer.analysis.crossing import fill_from_events
from trainer.analysis.figures import finite as _finite
from trainer.analysis.scaling import analyse
from trainer.report.branch import branch_result, branch_runs
from trainer.report.schedule import scheduled_runs
from trainer.runlog import EVENTS, EventType, RunDirError, UnreadableFile, read_events
from trainer.runlog.shards import is_sharded, read_sharded

N_CLASSES = 10  # a run directory whose sweep_started names no `classes` (an older trainer's): mnist-like
FULL_TEST_SET = 10_000  # their test sets, when data.test_samples = 0


class ReportError(Exception):
    """The directory is not a run directory, or holds no finished run."""


def collect(run_dir: Path) -> dict[str, Any]:
    """The sweep's facts (device, dataset, config), the runs' summaries (completed from the events)
    and the analysis of its finished runs."""
    run_dir = Path(run_dir)
    shard_notes: list[str] = []
    try:
        if is_sharded(run_dir):  # the shards of one sweep (trainer.runlog.shards), read as that sweep
            log = read_sharded(run_dir, analyse)
            shard_notes = log.notes + log.problems
        else:
            log = read_events(run_dir / EVENTS)
    except FileNotFoundError:
        raise ReportError(
            f"{run_dir} holds no {EVENTS}; pass a run directory made by `python -m trainer run`"
        ) from None
    except (UnreadableFile, RunDirError) as exc:
        raise ReportError(str(exc)) from None
    events = log.events
    started = next((e for e in events if e["type"] == EventType.SWEEP_STARTED), {})
    finished = finished_runs(events)
    if not finished:
        raise ReportError(
            f"{run_dir} holds no finished run yet; wait for one, or run the sweep"
            + (f" ({log.skipped} unreadable lines skipped)" if log.skipped else "")
        )
    runs = sweep_runs(events)
    rows = runs.rows
    cfg = started.get("config") if isinstance(started.get("config"), dict) else {}
    optim = cfg.get("optim")
    optim = optim if isinstance(optim, dict) else {}
    result = analyse(rows, _positive(optim.get("lr")), _positive(optim.get("base_batch_size")))
    data = cfg.get("data") if isinstance(cfg.get("data"), dict) else {}
    test_n = data.get("test_samples")
    test_n = (
        int(test_n)
        if isinstance(test_n, int) and not isinstance(test_n, bool) and test_n > 0
        else FULL_TEST_SET
    )
    recorded = next((e for e in events if e["type"] == EventType.RUN_STARTED and e.get("eval_set")), {})
    if _finite(recorded.get("test_samples")) and recorded["test_samples"] > 0:
        test_n = int(recorded["test_samples"])
    return {
        "started": started,
        "rows": rows,
        "analysis": result,
        "skipped": log.skipped,
        "events": events,
        "derived": runs.derived,
        "reasons": runs.reasons,
        "test_samples": test_n,
        "eval": recorded,
        "branch": branch_result(events),
        "scheduled": runs.scheduled,
        "finished": any(e["type"] == EventType.SWEEP_FINISHED for e in events),
        "shards": shard_notes,
    }


class Runs(NamedTuple):
    """A sweep's finished runs as the report reads them."""

    rows: list[dict[str, Any]]  # the fixed runs' summaries, completed from the events
    derived: Any  # what fill_from_events completed (trainer.analysis.crossing)
    reasons: dict[str, str]  # each fixed run's run_finished reason
    #: Each scheduled run: its run_started and its completed summary, or None while it has not finished.
    scheduled: list[tuple[dict[str, Any], dict[str, Any] | None]]


def sweep_runs(events: list[dict[str, Any]]) -> Runs:
    """The finished runs of the sweep's own analysis and its scheduled runs: what the report and the
    trainer's closing lines compare."""
    finished = finished_runs(events)
    # Branches and a scheduled run are measured apart (their sections): not points of the sweep's own analysis.
    branches = branch_runs(events)
    scheduled = scheduled_runs(events)
    sched_finished = [e for e in finished if e.get("run") in scheduled]
    # A scheduled run never stands in for a fixed batch size (it has no single one), even while it alone is done.
    fixed = [e for e in finished if e.get("run") not in branches and e.get("run") not in scheduled] or [
        e for e in finished if e.get("run") not in scheduled
    ]
    reasons = {e["run"]: str(e.get("reason") or "") for e in fixed if isinstance(e.get("run"), str)}
    n_classes = classes(events)
    rows, derived = fill_from_events([e["summary"] for e in fixed], events, n_classes)
    done = {e["run"] for e in sched_finished}
    return Runs(
        rows=_with_final_loss(rows, events),
        derived=derived,
        reasons=reasons,
        scheduled=[
            (
                scheduled[e["run"]],
                _with_final_loss(fill_from_events([e["summary"]], events, n_classes)[0], events)[0],
            )
            for e in sched_finished
        ]
        + [(st, None) for run_id, st in scheduled.items() if run_id not in done],
    )


def finished_runs(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The run_finished events that carry a summary."""
    return [e for e in events if e["type"] == EventType.RUN_FINISHED and isinstance(e.get("summary"), dict)]


def _with_final_loss(rows: list[dict[str, Any]], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row with its run's last epoch's training loss (`final_train_loss`, the matrix's loss metric;
    not a summary field)."""
    last: dict[str, float] = {}
    for e in events:
        if (
            e.get("type") == EventType.EPOCH_END
            and isinstance(e.get("run"), str)
            and _finite(e.get("train_loss"))
        ):
            last[e["run"]] = float(e["train_loss"])
    return [
        {**r, "final_train_loss": last[str(r.get("run"))]} if str(r.get("run")) in last else r for r in rows
    ]


def _positive(value: Any) -> float | None:
    """A positive finite number from the recorded config, else None (the rules are then left out)."""
    ok = (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    )
    return value if ok else None


def classes(events: list[dict[str, Any]]) -> int:
    """The number of classes the sweep's dataset has (sweep_started.classes; chance accuracy is 1 / it),
    N_CLASSES where it is not recorded."""
    started = next((e for e in events if e.get("type") == "sweep_started"), {})
    n = started.get("classes")
    return n if isinstance(n, int) and not isinstance(n, bool) and n >= 2 else N_CLASSES
