"""The cost of a branched B_crit measurement (trainer.sweep.branch) relative to one epoch of its base run, fused and not.

One small sweep with a [branch] table (a base run at batch 64 for 3 epochs; branches after epochs 1, 2 and 3
at 5 batch sizes x 3 lr factors: 45 branches) is trained twice in this process on one device, side by side:
perf.fuse_runs = "off" (each branch alone, from its own copy of the point) and "on" (the branches of one
batch size at a point, its 3 lrs, as one fused group: trainer.sweep.branch_groups; on a CPU "auto" would
fuse batches up to 16 only). Printed, per point and in all:

- samples: the training samples of the point's branches together (each until its crossing or
  branch.max_samples), and x epoch: that over one base epoch's samples;
- wall s: the seconds the point took, from the sweep's last event before its branches to its `branch_point`
  event (building and restoring each branch, the loss at the point, the step timed alone before a fused
  group, training, evaluations), and x epoch: over one base epoch's seconds (its run_started to
  run_finished / epochs: training and its evaluations); fused/alone: the fused wall time over the alone one;
- below, the training clocks alone (evaluations and restoring are off every run's clocks): the branches' clocked
  seconds (a fused branch's clock is its share of its group's time; the shares of a group add up to the
  group's time) against the base run's mean epoch, and per batch size, alone and fused.

    python bench/branch.py --threads 1                   # CPU (1 thread: a CPU shared with other jobs)
    python bench/branch.py --device cuda --train-samples 4000 --json out.json
    python bench/branch.py --run-dir runs/branch         # only read a finished run directory's events
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, Path(__file__).resolve().parent):  # the trainer, and bench/common.py
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

MODES = ("off", "on")  # perf.fuse_runs: alone, fused


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", type=Path, help="only read this finished run directory (its events.jsonl)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dataset", default="fashion-mnist", help="falls back to synthetic-digits, visibly")
    ap.add_argument("--data-root", default=str(Path("~/.cache/bstui/data").expanduser()))
    ap.add_argument("--train-samples", type=int, default=2000)
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    ap.add_argument("--lr-factors", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    ap.add_argument("--lr", type=float, default=0.05, help="the base run's lr at batch 64 (linear rule)")
    ap.add_argument("--threads", type=int, default=0, help="perf.cpu_threads (0: the trainer's choice)")
    ap.add_argument("--json", default="", help="also write the figures as JSON here")
    ap.add_argument(
        "--events", default="", help="also write each sweep's events to EVENTS-off.jsonl, EVENTS-on.jsonl"
    )
    ap.add_argument("--test-samples", type=int, default=1000)
    args = ap.parse_args(argv)
    if args.run_dir is not None:
        path = args.run_dir / "events.jsonl"
        if not path.is_file():
            print(f"{args.run_dir}: no events.jsonl (is it a run directory?)", file=sys.stderr)
            return 2
        events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        found = measure(events)
        if found is None:
            print(f"{args.run_dir}: no branches from a base run with a finished epoch", file=sys.stderr)
            return 2
        device = next((e.get("device") for e in events if e["type"] == "sweep_started"), "?")
        print(f"device: {device} (from {args.run_dir})")
        print_table({"as run": found}, ("as run",))
        return 0
    return run_both(args)


def run_both(args: argparse.Namespace) -> int:
    from common import device_name, resolve_device

    from trainer.config import Config
    from trainer.data.datasets import load_dataset
    from trainer.runlog import Emitter, ListSink
    from trainer.sweep.driver import run_sweep

    cfg = Config()
    cfg.data.dataset, cfg.data.fallback, cfg.data.root = args.dataset, "synthetic-digits", args.data_root
    cfg.data.train_samples, cfg.data.test_samples = args.train_samples, args.test_samples
    cfg.optim.lr, cfg.optim.momentum = args.lr, 0.5
    cfg.optim.lr_scaling, cfg.optim.base_batch_size = "linear", 64
    cfg.sweep.batch_sizes, cfg.sweep.epochs, cfg.sweep.device = [64], 3, args.device
    cfg.sweep.eval_every = max(1, args.train_samples // 10)  # the base run's trend at each point
    cfg.gns.every = cfg.gns.probe_every = 0  # no B_simple: the bench measures the branches' cost
    cfg.perf.cpu_threads = args.threads
    br = cfg.branch
    br.epochs, br.batch_sizes, br.lr_factors = [1, 2, 3], args.batches, args.lr_factors
    br.decrease, br.max_samples, br.eval_every = 0.1, args.train_samples, max(1, args.train_samples // 15)
    device = resolve_device(args.device)
    dataset = load_dataset(cfg.data, seed=0)
    results: dict[str, dict[str, Any]] = {}
    for mode in MODES:
        cfg.perf.fuse_runs = mode
        sink = ListSink()
        t0 = time.perf_counter()
        run_sweep(cfg, Emitter([sink]), device=device, dataset=dataset)
        if args.events:
            Path(f"{args.events}-{mode}.jsonl").write_text("".join(json.dumps(e) + "\n" for e in sink.events))
        found = measure(sink.events)
        if found is None:
            print(f"fuse_runs {mode}: the base run ended before its first epoch", file=sys.stderr)
            return 2
        results[mode] = {**found, "sweep_s": time.perf_counter() - t0}
        print(f"fuse_runs = {mode}: the sweep took {results[mode]['sweep_s']:.3g} s", flush=True)
    n = len(br.epochs) * len(br.batch_sizes) * len(br.lr_factors)
    print(
        f"device: {device_name(device)}; {dataset.name} {args.train_samples:,} training samples; base run batch 64, "
        f"3 epochs; branches after epochs 1, 2, 3 x batch {', '.join(map(str, br.batch_sizes))} x lr factors "
        f"{', '.join(f'{f:g}' for f in br.lr_factors)} ({n} per mode), each to a 10% fall of the slice loss "
        f"or {br.max_samples:,} samples"
    )
    print_table(results, MODES)
    differ = [
        run
        for a, b in zip(results["off"]["points"], results["on"]["points"])
        for run, steps in a["crossings"].items()
        if b["crossings"].get(run) != steps
    ]
    print(
        f"crossings (steps to the fall, per branch): {'the same in both modes' if not differ else 'differ for ' + ', '.join(differ)}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device_name(device), **results}, indent=2))
    return 0


def measure(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """One sweep's base epoch and, per branch point, its branches' samples, wall and clocked seconds."""
    started = {e["run"]: e for e in events if e["type"] == "run_started"}
    branches = {r: e["branch"] for r, e in started.items() if isinstance(e.get("branch"), dict)}
    base = next((b.get("base_run") for b in branches.values()), None)
    epochs = [e for e in events if e["type"] == "epoch_end" and e.get("run") == base]
    if base is None or not epochs:
        return None
    finished = next(e for e in events if e["type"] == "run_finished" and e.get("run") == base)
    others = [r for r in started if r not in branches and r != base]  # other runs share the base's time
    groups = [e for e in events if e["type"] == "fused_group" and set(e["runs"]) <= set(branches)]
    out: dict[str, Any] = {
        "base_run": base,
        "epoch_samples": statistics.fmean(e["samples"] for e in epochs),
        "epoch_clock_s": statistics.fmean(e["wall_s"] for e in epochs),
        "epoch_wall_s": None if others else (finished["t"] - started[base]["t"]) / len(epochs),
        "fused_groups": len(groups),
        "calibration_s": sum(
            e.get("cost_s") or 0.0
            for e in events
            if e["type"] == "step_time" and set(e["runs"]) <= set(branches)
        ),
        "points": [],
        "by_batch": {},
    }
    for epoch in sorted({b["epoch"] for b in branches.values()}):
        runs = [r for r, b in branches.items() if b["epoch"] == epoch]
        first = next(i for i, e in enumerate(events) if _names(e) & set(runs))
        end = next(
            (e["t"] for e in events if e["type"] == "branch_point" and e.get("epoch") == epoch),
            events[-1]["t"],
        )
        point = next((e for e in events if e["type"] == "branch_point" and e.get("epoch") == epoch), {})
        row = {
            "epoch": epoch,
            "crossings": {b["run"]: [b.get("steps_lo"), b.get("steps")] for b in point.get("branches") or []},
            "branches": len(runs),
            "samples": sum(_samples(events, r) - branches[r]["samples"] for r in runs),
            "clock_s": sum(_clock(events, r) for r in runs),
            "wall_s": end - events[max(first - 1, 0)]["t"],
        }
        out["points"].append(row)
        for r in runs:
            b = str(started[r]["batch_size"])
            out["by_batch"][b] = out["by_batch"].get(b, 0.0) + _clock(events, r)
    return out


def _names(e: dict[str, Any]) -> set[str]:
    """The runs an event is about (a step_time event serves several)."""
    if isinstance(e.get("run"), str):
        return {e["run"]}
    return {r for r in e.get("runs") or [] if isinstance(r, str)} if e["type"] == "step_time" else set()


def _samples(events: list[dict[str, Any]], run: str) -> int:
    """A branch's last recorded position in training samples (its last evaluation or epoch end)."""
    return max(
        int((e.get("total_samples") if e["type"] == "epoch_end" else e.get("samples")) or 0)
        for e in events
        if e["type"] in ("evaluation", "epoch_end") and e.get("run") == run
    )


def _clock(events: list[dict[str, Any]], run: str) -> float:
    """A branch's clocked training seconds (its share, fused): its epochs' plus the unfinished epoch's, as
    its last evaluation read them (a branch evaluates at its last step)."""
    ends = [e for e in events if e["type"] == "epoch_end" and e.get("run") == run]
    evals = [e for e in events if e["type"] == "evaluation" and e.get("run") == run and e.get("wall_s")]
    done = sum(e["wall_s"] for e in ends)
    if evals and (not ends or evals[-1]["samples"] > ends[-1]["total_samples"]):
        return max(done, evals[-1]["wall_s"])  # an evaluation's wall_s counts the run's whole clock so far
    return done


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else "-"


def print_table(results: dict[str, dict[str, Any]], modes: tuple[str, ...]) -> None:
    first = results[modes[0]]
    wall = first["epoch_wall_s"]
    print(
        f"one base epoch ({first['base_run']}): {first['epoch_samples']:,.0f} samples, "
        + (f"{wall:.3g} s wall (training and its evaluations), " if wall else "")
        + f"{first['epoch_clock_s']:.3g} s on its training clock"
    )
    names = {"off": "alone", "on": "fused", "as run": "as run"}
    head = f"{'point':>6} {'branches':>8}"
    for m in modes:
        head += f" | {names[m]:>6}: {'samples':>9} {'x epoch':>7} {'wall s':>7} {'x epoch':>7}"
    if len(modes) == 2:
        head += f" | {'fused/alone wall':>16}"
    print(head)
    points = [p["epoch"] for p in first["points"]]
    for i, epoch in enumerate(points + ["all"]):
        rows = [r["points"][i] if epoch != "all" else _total(r["points"]) for r in results.values()]
        line = f"{epoch:>6} {rows[0]['branches']:>8}"
        for m, row in zip(modes, rows):
            r = results[m]
            line += (
                f" | {'':>6}  {row['samples']:>9,} {_ratio(row['samples'], r['epoch_samples']):>7} "
                f"{row['wall_s']:>7.3g} {_ratio(row['wall_s'], r['epoch_wall_s']):>7}"
            )
        if len(modes) == 2:
            line += f" | {_ratio(rows[1]['wall_s'], rows[0]['wall_s']):>16}"
        print(line)
    print(
        "training clocks only (evaluations, restoring and timing steps alone are off them; a fused branch's "
        "clock is its share of its group's time, the shares adding up to the group's):"
    )
    for m in modes:
        r = results[m]
        total = _total(r["points"])["clock_s"]
        extra = (
            f"; {r['fused_groups']} fused groups, their steps timed alone first: {r['calibration_s']:.2g} s"
            if r["fused_groups"]
            else ""
        )
        print(
            f"  {names[m]}: {total:.3g} s = {_ratio(total, r['epoch_clock_s'])} x the base run's epoch clock{extra}"
        )
    if len(modes) == 2:
        alone, fused = results["off"]["by_batch"], results["on"]["by_batch"]
        print(
            "  per batch size, all points, clocked s alone / fused (fused/alone): "
            + ", ".join(
                f"{b}: {alone[b]:.3g} / {fused.get(b, 0):.3g} ({_ratio(fused.get(b), alone[b])})"
                for b in alone
            )
        )


def _total(points: list[dict[str, Any]]) -> dict[str, Any]:
    return {k: sum(p[k] for p in points) for k in ("branches", "samples", "clock_s", "wall_s")}


if __name__ == "__main__":
    raise SystemExit(main())
