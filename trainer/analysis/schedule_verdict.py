"""Did the batch-size schedule pay? The scheduled run (sweep.batch_schedule) against the best fixed batch size
of the same sweep: steps, samples and time alone to the target, each as an interval, and one sentence.

Each run's crossing of the target is an interval (its last evaluation below the target, its first at or
above it), so each comparison is too: the share saved lies between 1 - schedule_hi / fixed_lo and
1 - schedule_lo / fixed_hi (positive: the schedule took less). Time is time alone (trainer.sweep.calibrate:
batches x the seconds a step of that batch size takes trained alone; for the schedule, each stage's batches
at its own batch size), so runs that shared the machine are compared as if each had it to itself.

The best fixed batch size is the one that reached the target in the least time alone (where no time alone
is recorded: in the fewest steps): the batch size a user would otherwise have picked. Pure: no torch.
"""

from __future__ import annotations

from typing import Any

from trainer.analysis.figures import count, pct
from trainer.analysis.time_alone import alone_of
from trainer.runlog.summary import summary_number

METRICS = (
    ("steps", "iters_to_target", "iters_to_target_lo"),
    ("samples", "samples_to_target", "samples_to_target_lo"),
    ("time", "time_alone_to_target_s", "time_alone_to_target_lo_s"),
)


def span_of(row: dict[str, Any], hi_key: str, lo_key: str) -> tuple[float, float] | None:
    """(last miss, hit) of one metric to the target (METRICS' keys); time alone, else the measured time of a run
    that trained alone; None where the run has no such figure."""
    if hi_key.startswith("time") and summary_number(row.get(hi_key)) is None:  # a run of one batch size
        alone = alone_of(row)
        if alone is None:
            return None
        hi, lo = alone["hi"], alone["lo"]
    else:
        hi, lo = summary_number(row.get(hi_key)), summary_number(row.get(lo_key))
    if hi is None or hi <= 0:
        return None
    return (lo if lo is not None and 0 <= lo <= hi else hi), hi


def best_fixed(fixed: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The fixed run that reached the target in the least time alone (else the fewest steps); None if none did."""
    reached = [r for r in fixed if summary_number(r.get("iters_to_target")) is not None]
    if not reached:
        return None
    timed = [r for r in reached if alone_of(r) is not None]
    if timed and len(timed) == len(reached):
        return min(timed, key=lambda r: alone_of(r)["hi"])  # type: ignore[index]
    return min(reached, key=lambda r: summary_number(r["iters_to_target"]))  # type: ignore[arg-type]


def compare(scheduled: dict[str, Any], fixed: list[dict[str, Any]]) -> dict[str, Any]:
    """{run, best: {run, batch_size, by}, reached, and per metric (steps, samples, time): schedule (lo, hi),
    fixed (lo, hi), saved (the point: 1 - hi / hi), saved_lo, saved_hi} where both runs have it."""
    best = best_fixed(fixed)
    out: dict[str, Any] = {
        "run": scheduled.get("run"),
        "reached": summary_number(scheduled.get("iters_to_target")) is not None,
        "best": None,
    }
    if best is None:
        return out
    by_time = all(
        alone_of(r) is not None for r in fixed if summary_number(r.get("iters_to_target")) is not None
    )
    out["best"] = {
        "run": best.get("run"),
        "batch_size": best.get("batch_size"),
        "by": "time" if by_time else "steps",
    }
    for name, hi_key, lo_key in METRICS:
        mine, theirs = span_of(scheduled, hi_key, lo_key), span_of(best, hi_key, lo_key)
        if theirs is None:
            continue
        entry: dict[str, Any] = {"fixed": list(theirs)}
        if mine is not None:
            entry.update(
                schedule=list(mine),
                saved=1 - mine[1] / theirs[1],
                saved_lo=1 - mine[1] / theirs[0],
                saved_hi=1 - mine[0] / theirs[1],
            )
        out[name] = entry
    return out


def change(saved: Any, fewer: str, more: str) -> str:
    """A saved fraction in words, two significant figures: "38% fewer", "2.8% more"; "-" for nothing."""
    if not isinstance(saved, (int, float)):
        return "-"
    return f"{pct(abs(saved), 2)} {fewer if saved >= 0 else more}"


def _share(entry: dict[str, Any], fewer: str, more: str, noun: str) -> str:
    """'31% fewer steps (interval 25% to 37%)'; a negative saving is 'more' ('140% more steps', its interval
    in the same words); an interval that straddles no change names both sides; one narrower than the
    rounding (step counts are exact) is left out."""
    saved, lo, hi = entry["saved"], entry["saved_lo"], entry["saved_hi"]
    text = f"{change(saved, fewer, more)} {noun}"
    if pct(lo, 2) == pct(hi, 2):
        return text
    if lo >= 0 or hi <= 0:  # the whole interval on one side: its magnitudes, in the same word
        a, b = sorted((abs(lo), abs(hi)))
        return f"{text} (interval {pct(a, 2)} to {pct(b, 2)})"
    return f"{text} (interval {pct(-lo, 2)} {more} to {pct(hi, 2)} {fewer})"


def sentence(result: dict[str, Any], schedule_text: str, target: float | None) -> str:
    """The verdict in one sentence, with the percentages and their intervals."""
    goal = f"{pct(target, 3)} accuracy" if target is not None else "the target"
    ramp = f"the schedule {schedule_text}"
    best = result.get("best")
    if not result.get("reached"):
        tail = (
            f"; the best fixed batch ({best['batch_size']}) did" if best else "; nor did any fixed batch size"
        )
        return f"{ramp.capitalize()} did not reach {goal}{tail}."
    if best is None:
        return f"{ramp.capitalize()} reached {goal}; no fixed batch size did, so there is nothing to compare."
    parts = []
    if "saved" in (result.get("steps") or {}):
        parts.append(_share(result["steps"], "fewer", "more", "steps"))
    if "saved" in (result.get("time") or {}):
        parts.append(_share(result["time"], "less", "more", "time alone"))
    if "saved" in (result.get("samples") or {}):
        parts.append(_share(result["samples"], "fewer", "more", "samples"))
    why = "the fastest to the target alone" if best["by"] == "time" else "the fewest steps to the target"
    verdict = "saved" if _saved(result) else "did not save"
    return (
        f"{ramp.capitalize()} reached {goal} in {', '.join(parts)} than the best fixed batch "
        f"({best['batch_size']}, {why}): it {verdict} {'time' if 'saved' in (result.get('time') or {}) else 'steps'}."
    )


def _saved(result: dict[str, Any]) -> bool:
    """Saved for certain: the whole interval of time (else steps) is a saving."""
    key = "time" if "saved" in (result.get("time") or {}) else "steps"
    entry = result.get(key) or {}
    return bool(entry) and entry.get("saved_lo", -1) > 0


def table(result: dict[str, Any]) -> list[str]:
    """Markdown rows: metric | schedule | best fixed | saved (interval)."""
    rows = ["| to the target | schedule | best fixed | saved (interval) |", "| --- | ---: | ---: | ---: |"]
    for name, _, _ in METRICS:
        entry = result.get(name)
        if not entry:
            continue

        saved = (
            f"{pct(entry['saved'], 2)} ({pct(entry['saved_lo'], 2)} to {pct(entry['saved_hi'], 2)})"
            if "saved" in entry
            else "—"
        )
        label = "time alone" if name == "time" else name
        rows.append(
            f"| {label} | {_show(entry.get('schedule'), name)} | {_show(entry['fixed'], name)} | {saved} |"
        )
    return rows


def _show(span: list[float] | None, name: str) -> str:
    """An interval of one metric: '190–200', '3.1–3.3 s'."""
    if span is None:
        return "not reached"

    def fmt(v: float) -> str:
        return f"{v:.3g} s" if name == "time" else count(v)

    return fmt(span[1]) if span[0] == span[1] else f"{fmt(span[0])}–{fmt(span[1])}"


def scheduled_time_alone(
    row: dict[str, Any], stages: list[tuple[int, int]], calibrations: dict[int, dict[str, Any]]
) -> dict[str, Any]:
    """A scheduled run's time-alone fields: its batches to the target (hit, last miss), each stage's batches
    at the seconds one step of that stage's batch size takes alone. `stages`: (the iteration it began at,
    its batch size) in order, from iteration 0; `calibrations`: per batch size a step_time event's fields.
    None where a stage it trained to the target in has no time alone."""

    def alone(iters: float | None) -> float | None:
        if iters is None:
            return None
        total = 0.0
        for k, (start, size) in enumerate(stages):
            end = stages[k + 1][0] if k + 1 < len(stages) else float("inf")
            n = min(iters, end) - start
            if n <= 0:
                break
            step = summary_number((calibrations.get(size) or {}).get("step_s"))
            if step is None:
                return None
            total += n * step
        return total

    hit = summary_number(row.get("iters_to_target"))
    lo = summary_number(row.get("iters_to_target_lo"))
    return {
        "step_alone_s": None,  # a step of which batch size? each stage has its own (time_alone_*)
        "step_alone_s_lo": None,
        "step_alone_s_hi": None,
        "time_alone_to_target_s": alone(hit),
        "time_alone_to_target_lo_s": alone(lo) if hit is not None else None,
    }
