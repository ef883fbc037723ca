"""The science fields of the summary, the crossing of the target as an interval, and how older run
directories get the same fields from their recorded events. Pure Python (no torch): the report and
the app read it.

A run's time to target is known only between two evaluations: the last one below the target (lo) and
the first one at or above it (the hit). The run loop keeps a `TargetCrossing` and writes its fields into
the run's summary; run directories recorded before that have only epoch-end evaluations, and
`fill_from_events` derives the same interval from their `epoch_end` events (lo = the previous epoch's
end), so they get honest intervals too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from trainer.analysis.bsimple import TARGET_HALF_READINGS, Reading, at_crossing
from trainer.analysis.collapse import find_collapse
from trainer.runlog import summary_number

#: The science fields of the summary (the run loop fills them; summary.csv gains them as columns). The
#: existing iters_to_target / samples_to_target / time_to_target_s / compute_to_target_s stay the hit.
SCIENCE_FIELDS: dict[str, str] = {
    "iters_to_target_lo": "batches trained at the last evaluation below the target before the hit "
    "(0 when the first evaluation hit); the crossing lies in (lo, iters_to_target]",
    "samples_to_target_lo": "training samples at that last miss",
    "time_to_target_lo_s": "wall seconds of training (timed slices only) at that last miss",
    "compute_to_target_lo_s": "compute seconds at that last miss",
    "optimizer_steps": "optimizer steps taken in the whole run (k per batch while split-backward is on)",
    "optimizer_steps_to_target": "optimizer steps at the hit",
    "optimizer_steps_to_target_lo": "optimizer steps at the last miss",
    "effective_lr": "lr x k, k the split-backward chunks (the lr one plain step per batch would need)",
    "final_test_acc": "test accuracy at the run's last evaluation on the full test set",
    "collapsed_at_iter": "batches trained at the evaluation where the run collapsed (trainer/analysis/collapse.py)",
    "collapse_reason": "why the run counts as collapsed, in words",
    "b_simple_lo": "lower end of B_simple's 95% interval (jackknife over the probe's window)",
    "b_simple_hi": "upper end of that interval (empty: open)",
    "b_simple_undefined": "share of the window's probe readings whose |G|^2 estimate was <= 0",
    "b_simple_readings": "probe readings in the window",
    "b_simple_from_samples": "training samples at the window's first reading",
    "b_simple_to_samples": "training samples at the window's last reading",
}


class TargetCrossing:
    """The first evaluation at or above the target, and the last one below it before that.

    `observe` after every evaluation (sub-epoch or epoch end) with the run's totals at that moment;
    `fields()` gives the summary fields (hit and last miss). Before any evaluation the last miss is the
    start of training (an untrained model is below any sensible target).
    """

    KEYS = ("iters", "samples", "wall_s", "compute_s", "optimizer_steps")

    def __init__(self, target: float) -> None:
        self.target = target
        self.last_miss: dict[str, float] = {k: 0 for k in self.KEYS}
        self.hit: dict[str, float] | None = None

    def observe(self, test_acc: float, **totals: float) -> bool:
        """Record one evaluation; True when it is the first to reach the target."""
        missing = [k for k in self.KEYS if k not in totals]
        if missing:
            raise ValueError(f"observe needs the run's totals {', '.join(missing)}")
        if self.hit is not None:
            return False
        point = {k: totals[k] for k in self.KEYS}
        if test_acc >= self.target:
            self.hit = {**point, "test_acc": test_acc}
            return True
        self.last_miss = point
        return False

    def fields(self) -> dict[str, Any]:
        """Summary fields: the hit (as today's *_to_target) and the last miss (*_lo); None if not reached."""
        h, m = self.hit, self.last_miss
        return {
            "iters_to_target": h and h["iters"],
            "samples_to_target": h and h["samples"],
            "time_to_target_s": h and h["wall_s"],
            "compute_to_target_s": h and h["compute_s"],
            "optimizer_steps_to_target": h and h["optimizer_steps"],
            "iters_to_target_lo": m["iters"] if h else None,
            "samples_to_target_lo": m["samples"] if h else None,
            "time_to_target_lo_s": m["wall_s"] if h else None,
            "compute_to_target_lo_s": m["compute_s"] if h else None,
            "optimizer_steps_to_target_lo": m["optimizer_steps"] if h else None,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "last_miss": dict(self.last_miss),
            "hit": dict(self.hit) if self.hit else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.target = float(state["target"])
        self.last_miss = {k: state["last_miss"][k] for k in self.KEYS}
        self.hit = dict(state["hit"]) if state.get("hit") else None


# -- older run directories ------------------------------------------------------------------------


def _epochs(events: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each run's epoch_end events, one per epoch (a resumed run's later copy wins), oldest first,
    with cumulative totals (total_iters/total_samples, else summed) and cumulative wall/compute."""
    per_run: dict[str, dict[int, dict[str, Any]]] = {}
    for e in events:
        if (
            e.get("type") == "epoch_end"
            and isinstance(e.get("run"), str)
            and summary_number(e.get("epoch")) is not None
        ):
            per_run.setdefault(e["run"], {})[int(e["epoch"])] = e
    out: dict[str, list[dict[str, Any]]] = {}
    for run, by_epoch in per_run.items():
        rows, iters, samples, wall, compute = [], 0.0, 0.0, 0.0, 0.0
        for epoch in sorted(by_epoch):
            e = by_epoch[epoch]
            iters = summary_number(e.get("total_iters")) or iters + (summary_number(e.get("iters")) or 0)
            samples = summary_number(e.get("total_samples")) or samples + (
                summary_number(e.get("samples")) or 0
            )
            wall += summary_number(e.get("wall_s")) or 0.0
            compute += summary_number(e.get("compute_s")) or 0.0
            rows.append(
                {
                    "epoch": epoch,
                    "iters": iters,
                    "samples": samples,
                    "wall_s": wall,
                    "compute_s": compute,
                    "test_acc": summary_number(e.get("test_acc")),
                    "train_loss": summary_number(e.get("train_loss")),
                }
            )
        out[run] = rows
    return out


def _chunk_schedule(events: Iterable[dict[str, Any]]) -> dict[str, list[tuple[float, int]]]:
    """Per run, (from iteration, k) in order: run_started's split_chunks, then each mode_changed."""
    out: dict[str, list[tuple[float, int]]] = {}
    for e in events:
        run, kind = e.get("run"), e.get("type")
        if not isinstance(run, str):
            continue
        k = summary_number(e.get("split_chunks"))
        if kind == "run_started":
            out[run] = [(0.0, int(k) if k and k >= 1 else 1)]  # a resumed run starts its schedule again
        elif kind == "mode_changed" and k and k >= 1:
            out.setdefault(run, [(0.0, 1)]).append((summary_number(e.get("iter")) or 0.0, int(k)))
    return out


def optimizer_steps_at(schedule: Sequence[tuple[float, int]], iters: float) -> float:
    """Optimizer steps after `iters` batches under a split-backward schedule [(from iter, k), ...]."""
    steps, sched = 0.0, list(schedule) or [(0.0, 1)]
    for (start, k), (end, _) in zip(sched, [*sched[1:], (math.inf, 1)]):
        if iters <= start:
            break
        steps += k * (min(iters, end) - start)
    return steps


def _last_iter(events: Iterable[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for e in events:
        if e.get("type") == "losses" and isinstance(e.get("run"), str) and isinstance(e.get("values"), list):
            end = (summary_number(e.get("first_iter")) or 0.0) + len(e["values"])
            out[e["run"]] = max(out.get(e["run"], 0.0), end)
    return out


def fill_from_events(
    rows: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]], n_classes: int = 10
) -> tuple[list[dict[str, Any]], list[str]]:
    """Copies of summary rows with the fields older trainers did not record, derived from the
    run directory's events, and notes saying what was derived. A field already in a row is kept.

    - crossing interval: lo = the totals at the end of the epoch before the target epoch (epoch-end
      evaluations were the only ones); optimizer steps from the split-backward schedule (run_started,
      mode_changed); effective_lr = lr x k; final_test_acc = the last epoch's test accuracy;
    - collapse (trainer/analysis/collapse.py) from the epochs' test accuracy and training loss: a run recorded
      `done` that collapsed gets status `collapsed` (the recorded status stays in `recorded_status`).
    """
    epochs = _epochs(events)
    schedules = _chunk_schedule(events)
    last_iters = _last_iter(events)
    targets = {
        e["run"]: e for e in events if e.get("type") == "target_reached" and isinstance(e.get("run"), str)
    }
    probes = probe_readings(events)
    derived: set[str] = set()
    out = []
    for original in rows:
        row = dict(original)
        run = str(row.get("run") or "")
        eps = epochs.get(run, [])
        sched = schedules.get(run) or [(0.0, int(summary_number(row.get("split_chunks")) or 1))]
        hit = summary_number(row.get("iters_to_target"))
        if hit is not None and summary_number(row.get("iters_to_target_lo")) is None and eps:
            if _derive_lo(row, eps, targets.get(run), hit):
                derived.add("the crossing intervals (lo = the end of the epoch before the target's)")
        if summary_number(row.get("final_test_acc")) is None and eps and eps[-1]["test_acc"] is not None:
            row["final_test_acc"] = eps[-1]["test_acc"]
            derived.add("final test accuracy (the last epoch's)")
        lr, k = summary_number(row.get("lr")), int(summary_number(row.get("split_chunks")) or 1)
        if summary_number(row.get("effective_lr")) is None and lr is not None:
            row["effective_lr"] = lr * k
        if summary_number(row.get("optimizer_steps")) is None:
            total = max(last_iters.get(run, 0.0), eps[-1]["iters"] if eps else 0.0)
            if total:
                row["optimizer_steps"] = optimizer_steps_at(sched, total)
        for field, base in (
            ("optimizer_steps_to_target", "iters_to_target"),
            ("optimizer_steps_to_target_lo", "iters_to_target_lo"),
        ):
            if summary_number(row.get(field)) is None and summary_number(row.get(base)) is not None:
                row[field] = optimizer_steps_at(sched, summary_number(row[base]))
        if "b_simple_target" not in row and summary_number(row.get("samples_to_target")) is not None:
            readings, every = probes.get(run, ([], 0))
            if readings and every:
                row.update(
                    at_crossing(
                        readings,
                        summary_number(row.get("samples_to_target_lo")),
                        summary_number(row["samples_to_target"]),
                        TARGET_HALF_READINGS * every,
                    )
                )
                derived.add("B_simple at the target crossing (from the noise probe's readings around it)")
        if row.get("status") == "done" and eps:
            verdict = find_collapse(
                [e["test_acc"] for e in eps], [e["train_loss"] for e in eps], n_classes, final=True
            )
            if verdict is not None:
                at = eps[verdict.index]
                row.update(
                    recorded_status="done",
                    status="collapsed",
                    collapse_reason=verdict.reason,
                    collapsed_at_iter=at["iters"],
                    collapsed_at_epoch=at["epoch"],
                )
                derived.add("collapse (from the epochs' test accuracy and training loss; recorded as done)")
        out.append(row)
    return out, sorted(derived)


def probe_readings(events: Sequence[dict[str, Any]]) -> dict[str, tuple[list[Reading], int]]:
    """Per run, the noise probe's readings (`noise_probe` events, oldest first) and the samples between
    them (run_started's gns_probe_every; else the readings' smallest spacing)."""
    every: dict[str, int] = {}
    readings: dict[str, list[Reading]] = {}
    for e in events:
        run = e.get("run")
        if not isinstance(run, str):
            continue
        if (
            e.get("type") == "run_started"
            and isinstance(e.get("gns_probe_every"), int)
            and e["gns_probe_every"] > 0
        ):
            every[run] = e["gns_probe_every"]
        elif e.get("type") == "noise_probe":
            samples, g2, trace = e.get("samples"), summary_number(e.get("g2")), summary_number(e.get("trace"))
            if isinstance(samples, int) and g2 is not None and trace is not None:
                readings.setdefault(run, []).append(
                    Reading(samples, g2, trace, summary_number(e.get("loss")))
                )
    out = {}
    for run, found in readings.items():
        found.sort(key=lambda r: r.samples)
        gaps = [b.samples - a.samples for a, b in zip(found, found[1:]) if b.samples > a.samples]
        out[run] = (found, every.get(run) or (min(gaps) if gaps else 0))
    return out


def _derive_lo(
    row: dict[str, Any], eps: list[dict[str, Any]], target: dict[str, Any] | None, hit: float
) -> bool:
    """Set the *_lo fields from the epoch before the target's; False when the events do not say."""
    epoch = summary_number(target.get("epoch")) if target else None
    idx = next((i for i, e in enumerate(eps) if e["epoch"] == epoch), None) if epoch is not None else None
    if idx is None:
        idx = next((i for i, e in enumerate(eps) if e["iters"] >= hit), None)
    if idx is None:
        return False
    prev = eps[idx - 1] if idx > 0 else {"iters": 0.0, "samples": 0.0, "wall_s": 0.0, "compute_s": 0.0}
    if prev["iters"] > hit:
        return False
    row["iters_to_target_lo"] = prev["iters"]
    row["samples_to_target_lo"] = prev["samples"]
    row["time_to_target_lo_s"] = prev["wall_s"]
    row["compute_to_target_lo_s"] = prev["compute_s"]
    return True
