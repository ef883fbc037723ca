"""`python -m trainer report DIR`: the batch-size science of a run directory, as tables and plots.

Lays out what trainer/report/collect.py gathers from the run directory (the runs' summaries, completed
where older run directories did not record a field, their analysis, and the epochs and losses for the
plots) as Markdown, prints the report and writes it as report.md into the run directory. No torch.

Every figure is shown at the precision its data has: crossings of the target as intervals (last miss
to hit), accuracies to the test set's resolution, B_crit and B_simple with their 95% intervals.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from trainer.analysis.accuracy import DESCRIPTION, SLICE, standard_error, worst_standard_error
from trainer.analysis.answer import METRIC_NAMES, Scheduled, answers, lr_rule, markdown_table, matrix
from trainer.analysis.answer.scheduled import fit_note
from trainer.analysis.bcrit import DRAWS, MAX_SPAN, MIN_POINTS
from trainer.analysis.figures import count, setting, sig, span, with_interval
from trainer.analysis.figures import finite as _finite
from trainer.report.branch import proposed_run
from trainer.report.branch import section as branch_section
from trainer.report.collect import collect
from trainer.report.schedule import entries, matrix_rows
from trainer.report.schedule import section as schedule_section
from trainer.runlog import EVENTS, REPORT, EventType, write_atomic


def _decimals(n: int) -> int:
    """Decimals of a percentage measured on n images (its resolution, 100 / n %)."""
    return max(0, math.floor(math.log10(n)) - 2) if n > 0 else 2


def _accuracy_line(facts: dict[str, Any], n_test: int, n_slice: int) -> str:
    """Which images each accuracy of the report was measured on, with the slice's sampling error."""
    crossing = (
        "crossings of the target are intervals: after the last evaluation below it, at or before the "
        "first at or above it"
    )
    if not n_slice:
        return (
            f"- accuracies on {n_test:,} test samples (resolution {100 / n_test:.2g}%); evaluation set: not "
            "recorded (this run directory's trainer did not record it; best acc and final acc are the epoch "
            f"ends' full test set); {crossing}"
        )
    best = [r["best_test_acc"] for r in facts["rows"] if _finite(r.get("best_test_acc"))]
    at_best = standard_error(max(best), n_slice) if best else None
    seed = facts["eval"].get("eval_slice_seed")
    return (
        f"- best acc, the target and collapse: every evaluation (within epochs and at their ends) on "
        f"{DESCRIPTION[SLICE]}: {n_slice:,} of the {n_test:,} test images"
        + (f", seed {seed}" if _finite(seed) else "")
        + ", the same images for every run; resolution "
        f"{100 / n_slice:.2g}%, sampling error (binomial standard error) at most "
        f"{100 * worst_standard_error(n_slice):.2g} points"
        + (f", {100 * at_best:.2g} points at the best run's {100 * max(best):.1f}%" if at_best else "")
        + f"; final acc: the full test set at the last epoch end (resolution {100 / n_test:.2g}%); {crossing}"
    )


def _pct(value: Any, decimals: int) -> str:
    return f"{100 * value:.{decimals}f}%" if _finite(value) else "-"


def _lr(p: dict[str, Any]) -> str:
    return setting(p["lr"]) + (f" {p['variant']}" if p.get("variant") else "")


def _steps(p: dict[str, Any]) -> str:
    """Optimizer steps to target, with the batches beside them where they differ (split-backward)."""
    steps = span(p.get("optimizer_steps_lo"), p.get("optimizer_steps"))
    batches = span(p.get("steps_lo"), p.get("steps"))
    return steps if steps == batches else f"{steps} ({batches})"


def _b_simple(p: dict[str, Any]) -> str:
    return with_interval(p.get("b_simple"), p.get("b_simple_lo"), p.get("b_simple_hi"))


def _seconds(lo: Any, hi: Any) -> str:
    return span(lo, hi, lambda v: sig(v, 3))


def _alone(p: dict[str, Any]) -> str:
    """Time to target alone (trainer.analysis.time_alone.alone_of): "not recorded" for a fused point without a calibration."""
    if not _finite(p.get("steps")):
        return "not reached"
    if not _finite(p.get("time_alone_s")):
        return "not recorded"
    return _seconds(p.get("time_alone_s_lo"), p.get("time_alone_s"))


def _measured(p: dict[str, Any]) -> str:
    """The recorded wall time to target; a fused run's is its share of the group's."""
    text = _seconds(p.get("time_s_lo"), p.get("time_s"))
    k = p.get("fused_runs") or 0
    return f"{text} (share of {k})" if k > 1 and _finite(p.get("time_s")) else text


def _fused_groups(events: list[dict[str, Any]]) -> list[str]:
    """The fused groups' actual cost: their own wall and compute time (fused_group events)."""
    groups = [e for e in events if e.get("type") == EventType.FUSED_GROUP]
    if not groups:
        return []
    lines = [
        "",
        "Fused groups, their actual cost (the group's own wall and compute time; each run's measured time "
        "above is its share):",
        "",
    ]
    for e in groups:
        runs = e.get("runs") if isinstance(e.get("runs"), list) else []
        lines.append(
            f"- {e.get('group')}: {', '.join(map(str, runs))}: {count(e.get('steps'))} fused steps, "
            f"{sig(e.get('wall_s'), 3)} s wall, {sig(e.get('compute_s'), 3)} s compute"
            + (f" ({e['continues_alone']} trained on alone)" if e.get("continues_alone") else "")
        )
    return lines


def _b_simple_target(p: dict[str, Any]) -> str:
    if not p.get("reached_target", True) or not _finite(p.get("steps")):
        return "-"
    if not _finite(p.get("b_simple_target")):
        return "not recorded"
    return with_interval(p["b_simple_target"], p.get("b_simple_target_lo"), p.get("b_simple_target_hi"))


def _b_simple_lines(a: dict[str, Any], rows: list[dict[str, Any]]) -> list[str]:
    """B_simple next to B_crit: at the target crossing (McCandlish et al. 2018) where the probe read around
    it, else the runs' last figures, said as such."""
    batches = ", ".join(str(b) for b in a.get("b_simple_batches", []))
    if a.get("b_simple_at") == "target":
        per = "; ".join(
            f"batch {p['batch_size']}: {_b_simple_target(p)}" for p in a["best"] if p.get("reached_target")
        )
        return [
            f"- gradient noise scale B_simple at the target crossing: median {sig(a.get('b_simple'))} over the "
            f"batch sizes that reached it ({batches}; per batch size, best lr: {per}). Each is fitted to the "
            "noise probe's readings within 3 probe intervals on either side of the crossing (|G|^2 and "
            "tr(Sigma) each as an exponential in training samples, read at the crossing), with a 95% jackknife "
            "interval; B_simple grows as the loss falls, so it is compared with B_crit where both are measured."
        ]
    if batches:
        return [
            f"- gradient noise scale B_simple at the target crossing: not recorded (no noise-probe readings "
            f"around the crossings); median of the runs' last figures {sig(a.get('b_simple'))} over the batch "
            f"sizes that reached the target ({batches}); {_b_simple_source(rows)}"
        ]
    return [
        "- gradient noise scale B_simple: no summary (no batch size that reached the target has one; "
        f"each run's is in the table below); {_b_simple_source(rows)}"
    ]


def _b_simple_source(rows: list[dict[str, Any]]) -> str:
    """Which part of training the runs' B_simple comes from, in words."""
    probed = [r for r in rows if _finite(r.get("b_simple_to_samples"))]
    if probed and any(_finite(r.get("b_simple_at_samples")) for r in probed):
        return (
            "each run's last figure is B_simple at its last noise-probe reading, fitted to its readings of the "
            "last 5 probe intervals (|G|^2 and tr(Sigma) each as an exponential in training samples, so the "
            "drift across them is followed), with a 95% jackknife interval; undefined: readings whose |G|^2 "
            "estimate was <= 0"
        )
    if probed:
        windows = "; ".join(
            f"{r.get('run')}: samples {count(r.get('b_simple_from_samples'))}–{count(r['b_simple_to_samples'])}, "
            f"{count(r.get('b_simple_readings'))} readings, {_pct(r.get('b_simple_undefined'), 0)} undefined"
            for r in probed[:8]
        ) + (f"; and {len(probed) - 8} more runs" if len(probed) > 8 else "")
        return (
            "each run's value is the noise probe's last window (late training: the readings of the "
            "run's last window of training samples, each on a 1,024-sample probe batch drawn from the "
            "training set); the interval is a jackknife over the window's readings; undefined: readings "
            f"whose |G|^2 estimate was <= 0 (windows: {windows})"
        )
    return (
        "each run's value is the running average (EMA) of the last ~10 estimates at its last epoch "
        "end, each from chunks of a training batch (late training; the estimator of this run directory's "
        "trainer version: noisy at small batches, lagging at large ones, no interval)"
    )


def _crit_lines(a: dict[str, Any], scheduled: list[Scheduled]) -> list[str]:
    fit = a.get("b_crit") or {}
    used = ", ".join(f"{b:g}" for b in fit.get("batch_sizes", [])) or "none"
    lines = [
        f"Fit of S = S_min (1 + B_crit / B) and E = E_min (1 + B / B_crit), B_crit = E_min / S_min "
        f"(McCandlish et al. 2018), to the best lr of each batch size that reached the target (batch sizes: "
        f"{used}). Each crossing is drawn uniformly between its last miss and its hit, seeds are resampled, "
        f"and where other lrs' crossings overlap the best one's (the tie band) each draw takes the lr with the "
        f"fewest drawn steps, so the lr choice is in the interval; {DRAWS:,} draws; figures are the median (95% "
        f"interval). Not determined when fewer than {MIN_POINTS} batch sizes remain or the interval spans more "
        f"than {MAX_SPAN:g}x.",
        "",
    ]
    if "B_crit" not in fit:
        lines.append(f"- B_crit: not determined ({fit.get('reason') or 'no fit'})")
    elif fit["determined"]:
        lines.append(f"- B_crit = {with_interval(fit['B_crit'], fit['B_crit_lo'], fit['B_crit_hi'])}")
        lines.append(
            f"- S_min = {with_interval(fit['S_min'], fit['S_min_lo'], fit['S_min_hi'])} steps, "
            f"E_min = {with_interval(fit['E_min'], fit['E_min_lo'], fit['E_min_hi'])} samples"
        )
    else:
        lines.append(
            f"- B_crit: not determined: {fit['reason']} (draws: median "
            f"{with_interval(fit['B_crit'], fit['B_crit_lo'], fit['B_crit_hi'])})"
        )
    picks = fit.get("lr_picks") or {}
    for batch, lrs in (fit.get("tie_lrs") or {}).items():
        shares = picks.get(batch)
        if len(lrs) > 1 and shares and len(shares) == len(lrs):
            lines.append(
                f"- lr choice at batch {batch}: "
                + ", ".join(f"lr {setting(lr)} in {_share(share)} of draws" for lr, share in zip(lrs, shares))
            )
    for item in a.get("left_out", []):
        lines.append(f"- left out: batch {item['batch_size']}: {item['reason']}")
    if scheduled:
        lines.append(f"- left out: {fit_note(scheduled)}")
    return lines


def _share(share: float) -> str:
    """A share of draws in whole percent, never rounded to 0% or 100% when it is not."""
    if 0 < share < 0.005:
        return "<1%"
    if 0.995 < share < 1:
        return ">99%"
    return f"{100 * share:.0f}%"


MATRIX_METRICS = ("time", "steps", "accuracy", "loss")


def _matrix_lines(a: dict[str, Any], scheduled: list[Scheduled]) -> list[str]:
    """The batch x lr matrix (trainer/analysis/answer/) per metric, as Markdown tables, every batch size a row
    (one set per [[variants]] arm); a scheduled run in a table of its own under them."""
    points = a.get("points", [])
    seeds = max((p.get("seeds") or 1 for p in points), default=1)
    lines = [
        "",
        "## Batch size x lr",
        "",
        "Rows: batch sizes; columns: lrs"
        + (f"; each cell the mean ± sd over {seeds} seeds" if seeds > 1 else "")
        + ". **Bold**: the best lr of each batch size for that metric (time and steps: only lrs whose every "
        "seed reached the target and none diverged or collapsed); ★: the best cell overall. Time: to the "
        "target alone where recorded (÷: a fused run's share of its group's time, no time alone recorded). "
        "Final training loss: the last epoch's.",
    ]
    for name in sorted({str(p.get("variant") or "") for p in points}):
        for metric in MATRIX_METRICS:
            m = matrix(points, metric, variant=name)
            if m.cells:
                lines += ["", f"{name + ': ' if name else ''}{METRIC_NAMES[metric]}", "", *markdown_table(m)]
    lines += matrix_rows(scheduled)
    return lines


def markdown(facts: dict[str, Any], plots: bool = True) -> str:
    """The report as Markdown: tables, and the plots as text blocks unless plots is False."""
    s, a = facts["started"], facts["analysis"]
    cfg = s.get("config") or {}
    sweep = cfg.get("sweep")
    target = sweep.get("target_accuracy") if isinstance(sweep, dict) else None
    n_test = facts["test_samples"]
    dec = _decimals(n_test)
    ev = facts.get("eval") or {}
    n_slice = (
        int(ev["eval_samples"]) if ev.get("eval_set") == SLICE and _finite(ev.get("eval_samples")) else 0
    )
    best_dec = _decimals(n_slice) if n_slice else dec
    lines = [
        "# bstui report",
        "",
        f"- device: {s.get('device', '?')} (torch {s.get('torch', '?')}), dataset: {s.get('dataset', '?')}"
        + (f" ({s['dataset_note']})" if s.get("dataset_note") else ""),
        f"- target test accuracy: {target}; runs finished: {len(facts['rows'])}"
        + ("" if facts["finished"] else " (sweep still running or interrupted)")
        + (f"; branched from the base run of {s['branched_from']}" if s.get("branched_from") else ""),
        _accuracy_line(facts, n_test, n_slice),
        *(
            [
                f"- {facts['skipped']} lines of {EVENTS} were unreadable (garbled, cut or of the wrong types) "
                "and were skipped"
            ]
            if facts.get("skipped")
            else []
        ),
        *[f"- {note}" for note in facts.get("shards") or []],
    ]
    if facts["derived"]:
        lines.append(
            "- derived by this report from the recorded events (this run directory's trainer did not "
            "record them): " + "; ".join(facts["derived"])
        )
    lines += ["", "## Recommendation", ""]
    lines += [
        f"- {sentence}"
        for sentence in answers(a, target if _finite(target) else None, str(s.get("device") or ""))
    ]
    scheduled = entries(facts.get("scheduled") or [])
    lines += _matrix_lines(a, scheduled)
    lines += [
        "",
        "## Best lr per batch size",
        "",
        "Best: the fewest steps to the target among the lrs whose every seed reached it and none diverged or "
        "collapsed. k: split-backward chunks (k optimizer steps per batch); eff. lr = lr x k. Rule lr: the lr "
        "rule measured from this grid (see the lr-rule plot) at that batch size, with its 95% interval; it passes "
        "through the measured best lrs, never through an lr the grid did not try.",
        "",
        "| batch | best lr | k | eff. lr | lrs tried | rule lr (95%) | optimizer steps | batches "
        "| samples | time alone s | measured s | best acc | final acc | B_simple at target |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rules = {
        name: lr_rule([q for q in a.get("points", []) if str(q.get("variant") or "") == name], name)
        for name in {str(q.get("variant") or "") for q in a.get("points", [])}
    }
    for p in a["best"]:
        reached = p["reached_target"]
        at = rules[str(p.get("variant") or "")].lr_at(p["batch_size"]) if rules else None
        rule = f"{setting(at[0])} ({setting(at[1])}–{setting(at[2])})" if at else "-"
        lines.append(
            f"| {p['batch_size']} | {_lr(p) if reached else 'not reached'} | {p['split_chunks']} | "
            f"{setting(p.get('effective_lr'))} | {p['lrs_tried']} | {rule} | "
            f"{span(p.get('optimizer_steps_lo'), p.get('optimizer_steps'))} | "
            f"{span(p.get('steps_lo'), p.get('steps'))} | {span(p.get('samples_lo'), p.get('samples'))} | "
            f"{_alone(p)} | {_measured(p)} | "
            f"{_pct(p.get('best_test_acc'), best_dec)} | {_pct(p.get('final_test_acc'), dec)} | {_b_simple_target(p)} |"
        )
    lines += ["", "## Critical batch size", "", *_crit_lines(a, scheduled)]
    lines += _b_simple_lines(a, facts["rows"])
    lines += [
        "",
        "## Every point (batch size x lr)",
        "",
        "| batch | lr | k | eff. lr | seeds | reached | optimizer steps (batches) | time alone s | measured s "
        "| best acc | final acc | B_simple at target | B_simple (end) | loss-diff sd | grad cos | samples/s | status |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | --- |",
    ]
    for p in a["points"]:
        lines.append(
            f"| {p['batch_size']} | {_lr(p)} | {p['split_chunks']} | {setting(p.get('effective_lr'))} | "
            f"{p['seeds']} | {p['reached']} | {_steps(p)} | {_alone(p)} | {_measured(p)} | "
            f"{_pct(p.get('best_test_acc'), best_dec)} | {_pct(p.get('final_test_acc'), dec)} | {_b_simple_target(p)} | "
            f"{_b_simple(p)} | "
            f"{sig(p.get('loss_diff_std'))} | {sig(p.get('grad_cos'))} | {sig(p.get('samples_per_s'), 3)} | "
            f"{', '.join(p['statuses'])} |"
        )
    lines += _fused_groups(facts["events"])
    ended = [r for r in facts["rows"] if r.get("status") not in ("done", None)]
    if ended:
        lines += ["", "Runs that did not end `done`:", ""]
        for r in ended:
            why = r.get("collapse_reason") or facts["reasons"].get(str(r.get("run"))) or "-"
            at = f" (at batch {count(r['collapsed_at_iter'])})" if _finite(r.get("collapsed_at_iter")) else ""
            lines.append(f"- {r.get('run')}: {r.get('status')}{at}: {why}")
    lines += [
        "",
        "Batches: forward passes; optimizer steps: k per batch while split-backward is on (k x batches), which",
        "at momentum 0 equal one step per batch at lr x k. Samples: training samples to the target. Time alone",
        "s: batches to the target x the time of one step of that batch size trained alone (measured before the",
        "sweep, outside the runs' clocks): the time batch sizes are compared by. Measured s: the wall seconds of",
        "training to the target as recorded (evaluation excluded); a fused run's is its share of its group's.",
        "Where the sweep timed no step alone (an older trainer, torchrun, sweep.parallel), a run that trained",
        "alone has its measured time as its time alone, and a fused one has none (not recorded).",
        "loss-diff sd: standard deviation of successive per-iteration loss differences (oscillation). grad cos:",
        "mean cosine between consecutive gradients. B_simple = tr(Sigma)/|G|^2 (McCandlish et al. 2018), with",
        "its 95% interval where measured: at the target crossing, and at the run's end.",
    ]
    if facts.get("branch"):
        trained = proposed_run([e for e, _ in facts.get("scheduled") or []])
        lines += branch_section(facts["branch"], str(s.get("device") or "?"), trained)
    for started_event, row in facts.get("scheduled") or []:
        lines += schedule_section(
            started_event, row, facts["rows"], facts["events"], target, str(s.get("device") or "?")
        )
    if plots:
        from trainer.report.plots import plots as draw  # plotext loads only when plots are wanted

        lines += ["", "## Plots", ""]
        for block in draw(facts["events"], a, target, scheduled=scheduled):
            lines += ["```text", block, "```", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def write_report(run_dir: Path, plots: bool = True) -> tuple[str, Path]:
    """Write report.md into the run directory; returns (markdown, path)."""
    text = markdown(collect(run_dir), plots=plots)
    path = Path(run_dir) / REPORT
    write_atomic(path, text)
    return text, path
