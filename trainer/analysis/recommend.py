"""The sweep's answer in one sentence per arm: which batch size and lr reached the target first, and
where larger batches stop paying (B_crit), each with the uncertainty its data has. No torch.

Read from trainer.analysis.scaling.analyse's result, so the end of `python -m trainer run`, report.md and the
app's scaling view say the same thing. "Fastest" is the least time of training to the target alone
(evaluation excluded) on the device that ran the sweep: batches to the target x the time of one training
step timed alone for that batch size (trainer/sweep/calibrate.py), so a run that trained in a fused group is
compared at what it would cost alone, not at its share of the group's time. A crossing of the target is
known only between the last evaluation below it and the first at or above it, and the step time has the
calibration's spread, so times and steps are intervals, and points whose intervals overlap the fastest
one's are named as ties rather than ranked.

Run directories without a calibration fall back to the measured wall time, which is a time alone for
runs that trained alone; a point that trained fused there has no time alone recorded, and the sentence
says so.
"""

from __future__ import annotations

from typing import Any

from trainer.analysis.figures import count, finite, setting, sig

MAX_TIES = 3  # points named as ties with the fastest; the rest are counted


def _alone(p: dict[str, Any]) -> bool:
    """Whether the point has a time to target alone (trainer.analysis.time_alone.alone_of)."""
    return finite(p.get("time_alone_s"))


def _time_bounds(p: dict[str, Any]) -> tuple[float, float]:
    """(earliest, latest) time of training at which the point reached the target: alone where recorded
    (its crossing interval x the step time's spread), else the measured wall time; widened by one
    standard deviation over seeds."""
    if _alone(p):
        hi = float(p["time_alone_s_max"]) if finite(p.get("time_alone_s_max")) else float(p["time_alone_s"])
        lo = float(p["time_alone_s_min"]) if finite(p.get("time_alone_s_min")) else hi
        sd = float(p["time_alone_s_std"]) if finite(p.get("time_alone_s_std")) else 0.0
        return max(0.0, lo - sd), hi + sd
    hi = float(p["time_s"])
    lo = float(p["time_s_lo"]) if finite(p.get("time_s_lo")) else hi
    sd = float(p["time_s_std"]) if finite(p.get("time_s_std")) else 0.0
    return max(0.0, lo - sd), hi + sd


def _mid(p: dict[str, Any]) -> float:
    lo, hi = _time_bounds(p)
    return (lo + hi) / 2


def _seconds(lo: float, hi: float) -> str:
    return f"{sig(hi, 3)} s" if lo == hi else f"{sig(lo, 3)}–{sig(hi, 3)} s"


def _steps(p: dict[str, Any]) -> str:
    hi, lo = p.get("optimizer_steps"), p.get("optimizer_steps_lo")
    if not finite(hi):
        return ""
    steps = count(hi) if not finite(lo) or round(lo) == round(hi) else f"{count(lo)}–{count(hi)}"
    return f"{steps} steps"


def _name(p: dict[str, Any]) -> str:
    k = p.get("split_chunks") or 1
    split = f", split-backward k={k}" if k > 1 else ""
    variant = f" ({p['variant']})" if p.get("variant") else ""
    return f"batch {p['batch_size']} at lr {setting(p['lr'])}{variant}{split}"


def _target(target: float | None) -> str:
    return f"{100 * target:.4g}% test accuracy" if target is not None else "the target"


def _bcrit_clause(a: dict[str, Any]) -> str:
    fit = a.get("b_crit") or {}
    if fit.get("determined") and finite(fit.get("B_crit")):
        lo, hi = fit.get("B_crit_lo"), fit.get("B_crit_hi")
        b = sig(fit["B_crit"])
        if finite(lo) or finite(hi):
            b += f" ({sig(lo) if finite(lo) else '?'}–{sig(hi) if finite(hi) else '?'}, 95% interval)"
        return (
            f"beyond B_crit ~ {b} larger batches save few steps and cost more samples; "
            "well below it, steps fall almost in proportion to the batch"
        )
    reason = fit.get("reason") or "too few batch sizes reached the target"
    return f"B_crit is not determined ({reason}), so where larger batches stop paying is not known"


def recommendation(a: dict[str, Any], target: float | None, device: str = "") -> str:
    """One sentence (for one arm's analysis): the fastest batch size and lr to `target` and B_crit."""
    points = [
        p
        for p in a.get("points", [])
        if p.get("reached") == p.get("seeds")
        and p.get("usable", True)
        and (finite(p.get("time_s")) or _alone(p))
        and p.get("lr") is not None
    ]
    goal = _target(target)
    if not points:
        best = [p for p in a.get("best", []) if finite(p.get("best_test_acc"))]
        if not best:
            return f"no batch size reached {goal} yet; nothing to recommend"
        top = max(best, key=lambda p: p["best_test_acc"])
        partly = " with every seed" if any(p.get("reached") for p in a.get("points", [])) else ""
        return (
            f"no batch size reached {goal}{partly} (best: batch {top['batch_size']} at "
            f"{100 * top['best_test_acc']:.4g}%); lower sweep.target_accuracy or train more epochs"
        )
    fastest = min(points, key=_mid)
    lo, hi = _time_bounds(fastest)
    seeds = fastest.get("seeds") or 1
    where = f" on {device}" if device else ""
    timed = (
        " (its steps timed alone)"
        if _alone(fastest) and fastest.get("time_alone_source") != "measured"
        else ""
    )
    detail = ", ".join(
        part
        for part in (
            f"{_seconds(lo, hi)} of training{where}{timed}",
            _steps(fastest),
            f"mean of {seeds} seeds" if seeds > 1 else "",
        )
        if part
    )
    sentence = f"fastest to {goal}: {_name(fastest)} ({detail})"
    ties = sorted((p for p in points if p is not fastest and _time_bounds(p)[0] <= hi), key=_mid)
    if ties:
        named = ", ".join(_name(p) for p in ties[:MAX_TIES])
        more = f" and {len(ties) - MAX_TIES} more" if len(ties) > MAX_TIES else ""
        sentence += f", tied within the measured intervals with {named}{more}"
    # Only a run directory without a calibration has fused points without a time alone.
    fused = sorted(
        {p["batch_size"] for p in [fastest, *ties] if (p.get("fused_runs") or 0) > 1 and not _alone(p)}
    )
    if fused:
        sentence += (
            f" (batch {', '.join(map(str, fused))} trained fused and this run directory has no time alone "
            f"for {'it' if len(fused) == 1 else 'them'}: {'its times are' if len(fused) == 1 else 'their times are'}"
            " shares of a group's, not recorded alone)"
        )
    return f"{sentence}; {_bcrit_clause(a)}."


def recommendations(scaling: dict[str, Any], target: float | None, device: str = "") -> list[str]:
    """One sentence per arm of a sweep_finished.scaling (or an app analysis): "name: ..." for
    [[variants]] arms, the bare sentence without variants."""
    variants = scaling.get("variants") if isinstance(scaling, dict) else None
    if isinstance(variants, dict):
        return [
            f"{name}: {recommendation(a, target, device)}"
            for name, a in variants.items()
            if isinstance(a, dict)
        ]
    return [recommendation(scaling, target, device)] if isinstance(scaling, dict) else []
