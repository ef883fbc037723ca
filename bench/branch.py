"""The cost of a branched B_crit measurement (trainer.sweep.branch) relative to one epoch of its base run.

Reads a run directory a sweep with a [branch] table wrote (events.jsonl): for each branch point, the
training samples and wall seconds of its branches together (training only: their evaluations are off the
clocks, as in every run), divided by the base run's mean epoch (samples and wall seconds), and the total.
Branches train alone (each starts from its own copy of the checkpoint; trainer.engine.fuse's groups start
together from one initialisation), so there is no fused column to compare.

    python -m trainer run experiments/batch-schedule.toml --out runs/branch
    python bench/branch.py runs/branch
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    events = [
        json.loads(line) for line in (args.run_dir / "events.jsonl").read_text().splitlines() if line.strip()
    ]
    started = {e["run"]: e for e in events if e["type"] == "run_started"}
    # The run the branches name as their base (the sweep may train other fixed batch sizes beside it).
    base = next(
        (e["branch"].get("base_run") for e in started.values() if isinstance(e.get("branch"), dict)), None
    )
    epochs = [e for e in events if e["type"] == "epoch_end" and e.get("run") == base]
    if base is None or not epochs:
        print(f"{args.run_dir}: no base run with a finished epoch", file=sys.stderr)
        return 2
    epoch_s = statistics.fmean(e["wall_s"] for e in epochs)
    epoch_n = statistics.fmean(e["samples"] for e in epochs)
    device = next((e.get("device") for e in events if e["type"] == "sweep_started"), "?")
    print(f"device: {device}; base run {base}: one epoch = {epoch_n:,.0f} samples, {epoch_s:.3g} s")
    print(f"{'point':>6} {'branches':>8} {'samples':>10} {'x epoch':>8} {'wall s':>8} {'x epoch':>8}")
    total_n = total_s = 0.0
    points = sorted({e["branch"]["epoch"] for e in started.values() if isinstance(e.get("branch"), dict)})
    for epoch in points:
        runs = [
            r
            for r, e in started.items()
            if isinstance(e.get("branch"), dict) and e["branch"]["epoch"] == epoch
        ]
        n = sum(_samples(events, r) - started[r]["branch"]["samples"] for r in runs)
        s = sum(_wall(events, r) for r in runs)
        total_n, total_s = total_n + n, total_s + s
        print(f"{epoch:>6} {len(runs):>8} {n:>10,.0f} {n / epoch_n:>8.2f} {s:>8.3g} {s / epoch_s:>8.2f}")
    print(
        f"{'all':>6} {sum(1 for e in started.values() if isinstance(e.get('branch'), dict)):>8} {total_n:>10,.0f} "
        f"{total_n / epoch_n:>8.2f} {total_s:>8.3g} {total_s / epoch_s:>8.2f}"
    )
    return 0


def _samples(events: list[dict], run: str) -> int:
    """A branch's last recorded position in training samples (its last evaluation or epoch end)."""
    return max(
        int((e.get("total_samples") if e["type"] == "epoch_end" else e.get("samples")) or 0)
        for e in events
        if e["type"] in ("evaluation", "epoch_end") and e.get("run") == run
    )


def _wall(events: list[dict], run: str) -> float:
    """A branch's training seconds: its epochs' wall time plus its last evaluation's (the unfinished epoch)."""
    ends = [e["wall_s"] for e in events if e["type"] == "epoch_end" and e.get("run") == run]
    evals = [
        e["wall_s"] for e in events if e["type"] == "evaluation" and e.get("run") == run and e.get("wall_s")
    ]
    return max([sum(ends)] + evals)


if __name__ == "__main__":
    raise SystemExit(main())
