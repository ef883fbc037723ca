"""`python -m trainer report DIR`: the batch-size science of a run directory, as tables.

Reads events.jsonl (the run summaries in run_finished events, which hold more than
summary.csv), prints the tables and writes report.md into the run directory. No torch.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from trainer.runlog import EVENTS, REPORT, EventType, UnreadableFile, read_events, write_atomic
from trainer.scaling import analyse


class ReportError(Exception):
    """The directory is not a run directory, or holds no finished run."""


def _f(value: Any, spec: str = ".3g") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return "-"
    return format(value, spec) if isinstance(value, (int, float)) else str(value)


def _pm(mean: Any, std: Any, spec: str = ".3g") -> str:
    if mean is None:
        return "not reached"
    return _f(mean, spec) + (f" ± {_f(std, spec)}" if std else "")


def collect(run_dir: Path) -> dict[str, Any]:
    """The sweep's facts (device, dataset, config) and the analysis of its finished runs."""
    run_dir = Path(run_dir)
    try:
        log = read_events(run_dir / EVENTS)
    except FileNotFoundError:
        raise ReportError(f"{run_dir} holds no {EVENTS}; pass a run directory made by `python -m trainer run`") from None
    except UnreadableFile as exc:
        raise ReportError(str(exc)) from None
    events = log.events
    started = next((e for e in events if e["type"] == EventType.SWEEP_STARTED), {})
    rows = [e["summary"] for e in events if e["type"] == EventType.RUN_FINISHED and isinstance(e.get("summary"), dict)]
    if not rows:
        raise ReportError(f"{run_dir} holds no finished run yet; wait for one, or run the sweep"
                          + (f" ({log.skipped} unreadable lines skipped)" if log.skipped else ""))
    optim = (started.get("config") or {}).get("optim")
    optim = optim if isinstance(optim, dict) else {}
    result = analyse(rows, _positive(optim.get("lr")), _positive(optim.get("base_batch_size")))
    return {"started": started, "rows": rows, "analysis": result, "skipped": log.skipped,
            "finished": any(e["type"] == EventType.SWEEP_FINISHED for e in events)}


def _positive(value: Any) -> float | None:
    """A positive finite number from the recorded config, else None (the rules are then left out)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    return value if ok else None


def markdown(facts: dict[str, Any]) -> str:
    """The report as Markdown tables."""
    s, a = facts["started"], facts["analysis"]
    cfg = s.get("config") or {}
    sweep = cfg.get("sweep")
    target = sweep.get("target_accuracy") if isinstance(sweep, dict) else None
    lines = [
        "# bstui report",
        "",
        f"- device: {s.get('device', '?')} (torch {s.get('torch', '?')}), dataset: {s.get('dataset', '?')}"
        + (f" ({s['dataset_note']})" if s.get("dataset_note") else ""),
        f"- target test accuracy: {target}; runs finished: {len(facts['rows'])}"
        + ("" if facts["finished"] else " (sweep still running or interrupted)"),
        *([f"- {facts['skipped']} lines of {EVENTS} were unreadable (garbled, cut or of the wrong types) "
           "and were skipped"] if facts.get("skipped") else []),
        "",
        "## Best lr per batch size (steps, samples and time to target; mean ± sd over seeds)",
        "",
        "| batch | best lr | lrs tried | linear rule | sqrt rule | steps | samples | time s | best acc | B_simple |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in a["best"]:
        lines.append(
            f"| {p['batch_size']} | {_f(p['lr'])}{' ' + p['variant'] if p.get('variant') else ''} | {p['lrs_tried']} | {_f(p.get('lr_linear_rule'))} | "
            f"{_f(p.get('lr_sqrt_rule'))} | {_pm(p['steps'], p['steps_std'], '.0f')} | "
            f"{_pm(p['samples'], p['samples_std'], '.0f')} | {_pm(p['time_s'], p['time_s_std'], '.2f')} | "
            f"{_f(p['best_test_acc'], '.4f')} | {_f(p.get('b_simple'), '.0f')} |"
        )
    lines += ["", "## Critical batch size", ""]
    fs, fe = a["fit_steps"], a["fit_examples"]
    lines.append(
        f"- fit of S = S_min (1 + B_crit / B): "
        + (f"B_crit = {fs['B_crit']:.0f}, S_min = {fs['S_min']:.0f} steps (rel. rms {fs['rel_rms']:.2f})"
           if "B_crit" in fs else f"n/a ({fs['error']})")
    )
    lines.append(
        f"- fit of E = E_min (1 + B / B_crit): "
        + (f"B_crit = {fe['B_crit']:.0f}, E_min = {fe['E_min']:.0f} samples (rel. rms {fe['rel_rms']:.2f})"
           if "B_crit" in fe else f"n/a ({fe['error']})")
    )
    lines.append(f"- measured gradient noise scale B_simple (median over batch sizes): {_f(a['b_simple'], '.0f')}")
    lines += [
        "",
        "## Every point (batch size x lr)",
        "",
        "| batch | lr | seeds | reached | steps | time s | best acc | loss-diff sd | grad cos | samples/s | status |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for p in a["points"]:
        lines.append(
            f"| {p['batch_size']}{' ' + p['variant'] if p.get('variant') else ''} | {_f(p['lr'])} | {p['seeds']} | {p['reached']} | "
            f"{_pm(p['steps'], p['steps_std'], '.0f')} | {_pm(p['time_s'], p['time_s_std'], '.2f')} | "
            f"{_f(p['best_test_acc'], '.4f')} | {_f(p['loss_diff_std'])} | {_f(p['grad_cos'], '.2f')} | "
            f"{_f(p['samples_per_s'], ',.0f')} | {', '.join(p['statuses'])} |"
        )
    lines += [
        "",
        "Steps/samples/time: to the first epoch whose test accuracy reached the target. loss-diff sd: standard",
        "deviation of successive per-iteration loss differences (oscillation). grad cos: mean cosine between",
        "consecutive gradients. B_simple = tr(Sigma)/|G|^2 (McCandlish et al. 2018), from chunk gradients.",
    ]
    return "\n".join(lines) + "\n"


def write_report(run_dir: Path) -> tuple[str, Path]:
    """Write report.md into the run directory; returns (markdown, path)."""
    text = markdown(collect(run_dir))
    path = Path(run_dir) / REPORT
    write_atomic(path, text)
    return text, path
