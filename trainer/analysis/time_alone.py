"""A run's time to target as if trained alone: from the calibration of its step (the median seconds of
one training step timed alone, trainer/sweep/calibrate.py) x batches to the target, or its measured time
where it trained alone without one. Fused runs without a calibration have none: their measured time is a
share of their group's. No torch, no numpy.
"""

from __future__ import annotations

import statistics
from typing import Any

from trainer.runlog import summary_number


def time_alone_fields(row: dict[str, Any], calibration: dict[str, Any] | None) -> dict[str, Any]:
    """A summary's time-alone fields from its step's calibration (a `step_time` event's fields, None:
    not calibrated): `step_alone_s` with its spread and `time_alone_to_target_s` / `_lo_s`, batches to
    the target (hit / last miss) x the step time alone."""
    cal = calibration or {}
    step = summary_number(cal.get("step_s"))
    hit, lo = summary_number(row.get("iters_to_target")), summary_number(row.get("iters_to_target_lo"))
    return {
        "step_alone_s": step,
        "step_alone_s_lo": summary_number(cal.get("step_s_lo")),
        "step_alone_s_hi": summary_number(cal.get("step_s_hi")),
        "time_alone_to_target_s": hit * step if step is not None and hit is not None else None,
        "time_alone_to_target_lo_s": lo * step
        if step is not None and hit is not None and lo is not None
        else None,
    }


def alone_of(row: dict[str, Any]) -> dict[str, Any] | None:
    """A run's time to target as if trained alone, or None where it is not recorded.

    With a calibration (`step_alone_s`: the median seconds of one of its training steps timed alone,
    trainer/sweep/calibrate.py) it is batches to the target x that time, for every run, fused or not; its
    bounds use the calibration's spread (`step_alone_s_lo` / `_hi`). A run without one (a run directory
    recorded before calibration, torchrun, sweep.parallel) that trained alone has its measured time; one
    that trained fused has none: its measured time is a share of its group's.
    """
    hit = summary_number(row.get("iters_to_target"))
    if hit is None:
        return None
    lo = summary_number(row.get("iters_to_target_lo"))
    step = summary_number(row.get("step_alone_s"))
    if step is not None and step > 0:
        s_lo = summary_number(row.get("step_alone_s_lo"))
        s_hi = summary_number(row.get("step_alone_s_hi"))
        s_lo = step if s_lo is None or s_lo > step else s_lo
        s_hi = step if s_hi is None or s_hi < step else s_hi
        lo_iters = lo if lo is not None and lo <= hit else None
        return {
            "hi": hit * step,
            "lo": None if lo_iters is None else lo_iters * step,
            "max": hit * s_hi,
            "min": (hit if lo_iters is None else lo_iters) * s_lo,
            "step": step,
            "source": "calibrated",
        }
    if (summary_number(row.get("fused_runs")) or 0) > 1:
        return None
    t = summary_number(row.get("time_to_target_s"))
    if t is None:
        return None
    t_lo = summary_number(row.get("time_to_target_lo_s"))
    return {
        "hi": t,
        "lo": t_lo,
        "max": t,
        "min": t if t_lo is None else t_lo,
        "step": None,
        "source": "measured",
    }


def alone_point(reached: list[dict[str, Any]], resolved: bool) -> dict[str, Any]:
    """A point's time to target alone over its seeds: `time_alone_s` (mean of the hits), `_lo` (of the
    last misses), `_std` (over seeds), `_min` / `_max` (the crossing interval widened by the calibration's
    spread), `step_alone_s` and `time_alone_source` (`calibrated`, `measured` alone, or None: some seed
    trained fused without a calibration, so no time alone is recorded)."""
    alone = [alone_of(r) for r in reached]
    empty = {
        "time_alone_s": None,
        "time_alone_s_lo": None,
        "time_alone_s_std": None,
        "time_alone_s_min": None,
        "time_alone_s_max": None,
        "step_alone_s": None,
        "time_alone_source": None,
    }
    if not alone or any(a is None for a in alone):
        return empty
    hits = [a["hi"] for a in alone]
    hi, std = statistics.fmean(hits), (statistics.stdev(hits) if len(hits) > 1 else 0.0)
    lows = [a["lo"] for a in alone]
    sources = {a["source"] for a in alone}
    steps = [a["step"] for a in alone if a["step"] is not None]
    return {
        "time_alone_s": hi,
        "time_alone_s_std": std,
        "time_alone_s_lo": statistics.fmean(lows) if resolved and None not in lows else None,
        "time_alone_s_min": statistics.fmean(a["min"] for a in alone),
        "time_alone_s_max": statistics.fmean(a["max"] for a in alone),
        "step_alone_s": statistics.fmean(steps) if steps else None,
        "time_alone_source": sources.pop() if len(sources) == 1 else "mixed",
    }
