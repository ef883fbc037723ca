"""The report's section on the scheduled run (sweep.batch_schedule): its schedule (bstui's and Megatron-LM's
form), where its batch size changed, and the verdict against the best fixed batch size of the same sweep
(trainer.analysis.schedule_verdict); and its own rows under the batch x lr matrix
(trainer.analysis.answer.scheduled). Pure: no torch."""

from __future__ import annotations

from typing import Any

from trainer.analysis import schedule_verdict
from trainer.analysis.answer.scheduled import MARKER, Scheduled, markdown_rows, scheduled_entry
from trainer.analysis.figures import count, setting

BATCH_SIZE_CHANGED = "batch_size_changed"


def scheduled_runs(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The run_started of each scheduled run (it carries `batch_schedule`), by run id."""
    return {
        e["run"]: e
        for e in events
        if e.get("type") == "run_started"
        and isinstance(e.get("batch_schedule"), list)
        and isinstance(e.get("run"), str)
    }


def changes(events: list[dict[str, Any]], run_id: str) -> list[dict[str, Any]]:
    """The run's batch_size_changed events, in order."""
    return [e for e in events if e.get("type") == BATCH_SIZE_CHANGED and e.get("run") == run_id]


def entries(scheduled: list[tuple[dict[str, Any], dict[str, Any] | None]]) -> list[Scheduled]:
    """Each scheduled run (its run_started, its filled summary or None) as the matrix shows it."""
    return [
        scheduled_entry(
            row or {"run": started.get("run"), "status": "not finished"}, started["batch_schedule"]
        )
        for started, row in scheduled
    ]


def matrix_rows(scheduled: list[Scheduled]) -> list[str]:
    """Under the batch x lr matrix: the scheduled runs' own table, and why they are not cells of it."""
    if not scheduled:
        return []
    return [
        "",
        "Scheduled runs (sweep.batch_schedule): the batch size changes by samples and the lr follows the "
        "stages, so each is a row of its own, never a cell of a fixed batch size above; it is not in the "
        "B_crit fit nor a candidate for the best fixed batch size (it has no single one). Steps, samples and "
        "time alone to the target are intervals (last evaluation below the target, first at it) as the fixed "
        "runs' are; time alone counts each stage's batches at the time one step of its batch size took "
        f"trained alone. Mean batch: samples ÷ steps to the target, where the steps plot draws it ({MARKER}).",
        "",
        *markdown_rows(scheduled),
    ]


def megatron_form(stages: list[dict[str, Any]]) -> str:
    """Megatron-LM's `--step-batch-size-schedule` argument (thresholds in samples)."""
    return (
        '--step-batch-size-schedule "' + " ".join(f"{s['samples']}:{s['batch_size']}" for s in stages) + '"'
    )


def plain_form(stages: list[dict[str, Any]]) -> str:
    """sweep.batch_schedule's form of the stages, each with its lr ("0:16:0.025 12000:64:0.05")."""
    return " ".join(f"{s['samples']}:{s['batch_size']}:{s['lr']:.6g}" for s in stages)


def arrow(stages: list[dict[str, Any]]) -> str:
    """'16 -> 64 -> 128'."""
    return " -> ".join(str(s["batch_size"]) for s in stages)


def verdict(result: dict[str, Any], stages: list[dict[str, Any]], target: float | None) -> str:
    """The verdict sentence on a finished scheduled run (`result`: schedule_verdict.compare's), as this
    section and the trainer's closing lines both word it."""
    return schedule_verdict.sentence(result, arrow(stages), target)


def section(
    started: dict[str, Any],
    row: dict[str, Any] | None,
    fixed: list[dict[str, Any]],
    events: list[dict[str, Any]],
    target: float | None,
    device: str,
) -> list[str]:
    """Markdown lines: the schedule, its changes, the comparison table and the verdict sentence."""
    run_id = started["run"]
    stages = started["batch_schedule"]
    lines = [
        "",
        "## Batch-size schedule against the best fixed batch size",
        "",
        f"Run {run_id} trained with the batch size changing by samples: "
        + ", ".join(f"{s['batch_size']} (lr {setting(s['lr'])}) from {count(s['samples'])}" for s in stages)
        + (f" ({started['batch_schedule_source']})" if started.get("batch_schedule_source") else "")
        + ".",
        "",
        f"- Megatron-LM: `{megatron_form(stages)}` (thresholds in samples)",
        f'- bstui: `[sweep] batch_schedule = "{plain_form(stages)}"`',
    ]
    done = changes(events, run_id)
    if done:
        lines.append(
            "- changed at "
            + ", ".join(
                f"iteration {count(e.get('iter'))} ({count(e.get('samples'))} samples) to {e.get('batch_size')}"
                for e in done
            )
        )
    if row is None:
        lines += ["", "The scheduled run did not finish; nothing to compare."]
        return lines
    result = schedule_verdict.compare(row, fixed)
    lines += ["", verdict(result, stages, target), ""]
    if result.get("best"):
        lines += schedule_verdict.table(result)
        lines += [
            "",
            f"Each figure is an interval: between the last evaluation below the target and the first at it. Time "
            f"alone: batches x the seconds one step of that batch size took trained alone on {device} (the "
            "schedule's batches each at their stage's batch size).",
        ]
    return lines
