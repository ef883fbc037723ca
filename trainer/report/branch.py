"""The report's section on branched B_crit (trainer.sweep.branch): B_crit against training progress beside
the noise probe's B_simple, the schedule it proposes (trainer.analysis.schedule) in Megatron-LM's syntax and in
bstui's TOML, and the steps, samples and time that schedule is expected to save. Pure: no torch."""

from __future__ import annotations

from typing import Any

from trainer.analysis.figures import count, num, pct, setting, sig, span, with_interval
from trainer.analysis.schedule import describe, to_toml
from trainer.analysis.schedule_verdict import change
from trainer.config.batch_schedule import PROPOSED_SOURCE, Stage

BRANCH_RESULT = "branch_result"


def branch_runs(events: list[dict[str, Any]]) -> set[str]:
    """The ids of the runs that are branches (their run_started carries `branch`)."""
    return {
        e["run"]
        for e in events
        if e.get("type") == "run_started"
        and isinstance(e.get("branch"), dict)
        and isinstance(e.get("run"), str)
    }


def branch_result(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The last branch_result event, if the sweep measured one."""
    found = [e for e in events if e.get("type") == BRANCH_RESULT]
    return found[-1] if found else None


def crit_text(point: dict[str, Any]) -> str:
    """A branch point's B_crit: '70 (48–110)', '69 (3.1–?), not determined' or 'not determined: <reason>'."""
    crit = with_interval(point.get("B_crit"), point.get("B_crit_lo"), point.get("B_crit_hi"))
    if point.get("determined"):
        return crit
    return (
        f"not determined: {point.get('reason')}" if point.get("B_crit") is None else f"{crit}, not determined"
    )


def brief(result: dict[str, Any]) -> list[str]:
    """The section in a few plain lines (what `python -m trainer run` prints at its end): B_crit at each
    branch point, and the proposed schedule in Megatron-LM's syntax."""
    lines = [f"branched B_crit (95% interval), from the checkpoints of {result.get('base_run')}:"]
    for p in result.get("points") or []:
        lines.append(
            f"  after epoch {p.get('epoch')} ({count(p.get('samples'))} samples, loss {num(p.get('loss'))}): "
            f"{crit_text(p)}"
        )
    megatron = result.get("megatron") if result.get("schedule") else None
    lines.append(
        f"proposed schedule: {megatron} (thresholds in samples)"
        if megatron
        else "proposed schedule: none, no point determined its B_crit"
    )
    return lines


def section(result: dict[str, Any], device: str, trained: str = "") -> list[str]:
    """Markdown lines of the section. `trained`: the run id of the scheduled run that trained the proposal
    ("" when the sweep did not train it)."""
    lines = [
        "",
        "## Critical batch size over training (branched)",
        "",
        f"From the checkpoints of {result.get('base_run')} (batch {result.get('base_batch_size')}), branches at "
        f"each batch size trained until the evaluation-slice loss fell by {pct(result.get('decrease'), 2)}; "
        "steps and samples are counted from the branch point, as intervals between two evaluations.",
        "",
        "| epoch | samples | loss | acc | B_crit (95%) | S_min | E_min | B_simple (95%) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in result.get("points") or []:
        lines.append(
            f"| {p.get('epoch')} | {count(p.get('samples'))} | {num(p.get('loss'))} | {pct(p.get('acc'), 3)} | "
            f"{crit_text(p)} | "
            f"{with_interval(p.get('S_min'), p.get('S_min_lo'), p.get('S_min_hi'))} | "
            f"{with_interval(p.get('E_min'), p.get('E_min_lo'), p.get('E_min_hi'))} | "
            f"{with_interval(p.get('b_simple'), p.get('b_simple_lo'), p.get('b_simple_hi'))} |"
        )
    lines += [
        "",
        "Branches (steps and samples to the loss decrease):",
        "",
        "| epoch | batch | lr | steps | samples | status |",
        "| ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for p in result.get("points") or []:
        for b in p.get("branches") or []:
            lines.append(
                f"| {p.get('epoch')} | {b.get('batch_size')} | {setting(b.get('lr'))} | "
                f"{span(b.get('steps_lo'), b.get('steps'))} | {span(b.get('samples_lo'), b.get('samples'))} | "
                f"{b.get('status')} |"
            )
    fused = sorted(
        {
            b.get("batch_size")
            for p in result.get("points") or []
            for b in p.get("branches") or []
            if b.get("fused_runs")
        }
    )
    if fused:
        lines += [
            "",
            f"The branches of batch {', '.join(map(str, fused))} trained fused with the other lrs of their batch "
            "size and point (perf.fuse_runs): their runs' times are shares of their group's time; the seconds "
            "per step below are those batch sizes' steps timed alone.",
        ]
    stages = [
        Stage(int(s["samples"]), int(s["batch_size"]), float(s["lr"])) for s in result.get("schedule") or []
    ]
    lines += ["", "### Proposed batch-size schedule", ""]
    if not stages:
        lines.append("- none: no point determined its B_crit")
        return lines
    lines.append(
        f"- batch {describe(stages)} (the largest measured batch size at or below each point's B_crit, "
        "never decreasing; each at the lr its branches measured best there, else the config's lr rule)"
    )
    lines.append(f"- Megatron-LM: `{result.get('megatron')}` (thresholds in samples)")
    exp = result.get("expected") or {}
    if exp:
        lines.append(
            f"- expected against batch {exp.get('base_batch_size')} fixed, for the progress it made in "
            f"{count(exp.get('base_samples'))} samples: {sig(exp.get('steps'))} steps instead of "
            f"{count(exp.get('base_steps'))} ({change(exp.get('steps_saved'), 'fewer', 'more')}), "
            f"{sig(exp.get('samples'))} samples ({change(exp.get('samples_saved'), 'fewer', 'more')})"
            + (
                f", {change(exp['time_saved'], 'less', 'more')} time (each batch size's seconds per step alone "
                f"on {device})"
                if exp.get("time_saved") is not None
                else ""
            )
            + ". An estimate from the fitted S(B) at each point"
            + (
                f"; the schedule itself trained as {trained} (measured in the next section)."
                if trained
                else "; the schedule itself has not been trained (sweep.batch_schedule = \"proposed\" trains it)."
            )
        )
    lines += ["", "```toml", to_toml(stages).rstrip(), "```"]
    return lines


def proposed_run(started: list[dict[str, Any]]) -> str:
    """The run id of the scheduled run (its run_started among `started`) that trained the branches'
    proposal; "" when none did."""
    return next((str(e.get("run")) for e in started if e.get("batch_schedule_source") == PROPOSED_SOURCE), "")
