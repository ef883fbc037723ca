"""Time alone (trainer.sweep.calibrate): what the calibration costs, and the step time alone against a fused share.

One small sweep, trained in this process on one device exactly as `python -m trainer run` trains it: batch
sizes 1, 6 and 60 (default) x an lr grid of K lrs. With perf.fuse_runs = "auto" on a CPU, batches 1 and 6
train as fused groups of K runs and batch 60 as K lone runs. Before training, the trainer times one step of
each batch size alone (a `step_time` event each). Printed:

- the calibration's cost: the sum of the `step_time` events' `cost_s` (building the model and step, warm-up,
  timed blocks), in seconds and as a share of the whole sweep's wall time (target: under 3%), and the same
  without the first calibration, which also pays the process's one-off start (first model, data pipeline,
  first kernels);
- per batch size: the step time alone (median, fastest-slowest block), and beside it what a run was charged
  per step: a fused run's share (the group's wall time per fused step / K), a lone run's measured wall time
  per step (its epochs' wall / iterations; data path and bookkeeping included). alone / share shows how far
  a fused share understates the step's cost alone; for a lone run alone / measured should be near 1.

    python bench/time_alone.py                          # CPU, 6,000 synthetic-digits samples, 1 epoch, K = 3
    python bench/time_alone.py --device cuda --fuse on --train-samples 12000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from trainer.config import FUSE_CHOICES, Config  # noqa: E402
from trainer.data.datasets import load_dataset  # noqa: E402
from trainer.runlog import Emitter, ListSink  # noqa: E402
from trainer.sweep.driver import run_sweep  # noqa: E402
from trainer.sweep.prepare import device_name, resolve_device  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 6, 60])
    ap.add_argument("--lrs", type=float, nargs="+", default=[0.01, 0.02, 0.05])
    ap.add_argument("--train-samples", type=int, default=6000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--data-root", default=str(Path("~/.cache/bstui/data").expanduser()))
    ap.add_argument(
        "--fuse",
        default="auto",
        choices=FUSE_CHOICES,
        help='perf.fuse_runs ("on" on a GPU: auto trains CUDA-graph runs alone)',
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="perf.cpu_threads (0: the trainer's choice by batch; 1 on a CPU shared with other jobs)",
    )
    ap.add_argument("--json", default="", help="also write the figures as JSON here")
    args = ap.parse_args(argv)

    cfg = Config()
    cfg.data.dataset, cfg.data.root, cfg.data.fallback = "synthetic-digits", args.data_root, ""
    cfg.data.train_samples, cfg.data.test_samples = args.train_samples, 1000
    cfg.sweep.batch_sizes, cfg.sweep.lrs, cfg.sweep.epochs = args.batches, args.lrs, args.epochs
    cfg.sweep.device, cfg.sweep.eval_every, cfg.sweep.target_accuracy = args.device, 0, 0.5
    cfg.perf.fuse_runs, cfg.perf.cpu_threads = args.fuse, args.threads
    cfg.gns.every, cfg.gns.probe_every = (
        0,
        0,
    )  # probes are off the clocks anyway; they would only slow the bench
    device = resolve_device(args.device)
    dataset = load_dataset(cfg.data, seed=0)
    sink = ListSink()
    t0 = time.perf_counter()
    run_sweep(cfg, Emitter([sink]), device=device, dataset=dataset)
    sweep_s = time.perf_counter() - t0

    times = sink.of_type("step_time")
    cost = sum(e["cost_s"] for e in times)
    print(
        f"device: {device_name(device)} (torch {torch.__version__}); {len(cfg.sweep.lrs)} lrs x batch "
        f"{', '.join(map(str, args.batches))}; {args.train_samples:,} samples x {args.epochs} epoch(s)"
    )
    print(
        f"sweep wall time {sweep_s:.1f} s; calibration {cost:.2f} s = {100 * cost / sweep_s:.1f}% of it "
        f"(target < 3%); per calibration: "
        + ", ".join(f"batch {e['batch_size']} {e['cost_s']:.2f} s" for e in times)
    )
    later = sum(e["cost_s"] for e in times[1:])
    print(
        f"  without the first calibration (the first also pays the process's one-off start: its first model, "
        f"data pipeline and kernels): {later:.2f} s = {100 * later / sweep_s:.1f}%"
    )
    groups = {e["batch_size"]: e for e in sink.of_type("fused_group")}
    walls: dict[str, list[float]] = {}
    iters: dict[str, int] = {}
    for e in sink.of_type("epoch_end"):
        walls.setdefault(e["run"], []).append(e["wall_s"])
        iters[e["run"]] = e["total_iters"]
    rows = []
    print(f"{'batch':>6} {'alone ms/step':>24} {'charged ms/step':>22} {'alone / charged':>16}")
    for e in times:
        b = e["batch_size"]
        alone = 1e3 * e["step_s"]
        spread = f"{alone:.3g} [{1e3 * e['step_s_lo']:.3g}-{1e3 * e['step_s_hi']:.3g}]"
        g = groups.get(b)
        if g is not None and g["steps"]:
            charged, how = (
                1e3 * g["wall_s"] / g["steps"] / len(g["runs"]),
                f"fused share (K={len(g['runs'])})",
            )
        else:
            per_run = [sum(walls[r]) / iters[r] for r in e["runs"] if r in walls and iters.get(r)]
            charged, how = 1e3 * statistics.median(per_run), "measured alone"
        rows.append(
            {
                "batch_size": b,
                "alone_ms": alone,
                "alone_lo_ms": 1e3 * e["step_s_lo"],
                "alone_hi_ms": 1e3 * e["step_s_hi"],
                "charged_ms": charged,
                "charged_as": how,
                "calibration_s": e["cost_s"],
            }
        )
        print(f"{b:>6} {spread:>24} {f'{charged:.3g} {how}':>22} {alone / charged:>16.2f}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "device": device_name(device),
                    "sweep_s": sweep_s,
                    "calibration_s": cost,
                    "share": cost / sweep_s,
                    "rows": rows,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
