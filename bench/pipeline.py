"""Benchmark: the study's input loop vs bstui's resident loop, epoch time at batch 6, 60, 600.

Side by side in one process on one device, the same model, optimizer and sample order:
  study     DataLoader + per-sample PIL image + ToTensor, copy to the device, eager step,
            loss.item() every iteration (the study's loop);
  resident  `python -m trainer`'s eager loop: the whole split on the device, batches gathered by the
            epoch's permutation, plain_step, losses kept on the device and copied per 1,000 iterations.
Epoch times are for a 60,000-sample epoch; a cell whose budget ends before a whole epoch's worth of
iterations (batch 6 always: 10,000 iterations) is extrapolated per epoch from the iterations timed,
marked "~". Target on a 2-core CPU: resident at least 1.5x faster than the study's loop at batch 60.

    python bench/pipeline.py [--device auto|cpu|cuda] [--budget S] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from trainer.engine.threads import DEFAULT_THREADS, cpu_threads

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/common.py, wherever we are run from

from common import (  # noqa: E402
    EPOCH_SAMPLES,
    ResidentLoop,
    StudyLoop,
    device_name,
    fmt_s,
    jsonable,
    load_train_split,
    measure,
    ratio,
    resolve_device,
)

BATCH_SIZES = (6, 60, 600)
TARGET_BS, TARGET_RATIO = 60, 1.5  # on a 2-core CPU


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCH_SIZES))
    parser.add_argument(
        "--budget", type=float, default=None, help="seconds timed per cell at most (default 2 GPU, 5 CPU)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every cell this many times, alternating loops; report the median",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=12_000,
        help="training samples loaded (default 12000; epochs are for 60000)",
    )
    parser.add_argument(
        "--dataset", default="synthetic-digits", help="mnist | fashion-mnist | synthetic-digits (default)"
    )
    parser.add_argument("--root", default="~/.cache/bstui/data", help="data root (data.root)")
    parser.add_argument(
        "--workers", type=int, default=0, help="DataLoader workers of the study's loop (default 0)"
    )
    parser.add_argument(
        "--pin-memory", action="store_true", help="pinned memory + non-blocking copies in the study's loop"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads of both loops (default: the study's loop gets torch's choice, the "
        "resident loop the trainer's by batch size, trainer.engine.threads)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write every figure to this JSON file")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    budget = args.budget if args.budget is not None else (2.0 if device.type == "cuda" else 5.0)
    name = device_name(device)
    print(f"device: {name}; torch {torch.__version__}; budget {budget:g} s per cell, {args.rounds} round(s)")
    t0 = time.perf_counter()
    split, dataset = load_train_split(args.dataset, args.root, args.samples, args.seed)
    print(f"data: {dataset}, {len(split):,} samples loaded; epochs below are for {EPOCH_SAMPLES:,} samples")

    rows = []
    for bs in args.batches:
        if bs > len(split):
            print(f"batch {bs}: skipped, larger than the {len(split)} samples loaded (raise --samples)")
            continue
        warm = 1 if (device.type == "cpu" and bs >= 600) else 3
        makers = {
            "study": lambda: StudyLoop(split, bs, device, args.seed, args.workers, args.pin_memory),
            "resident": lambda: ResidentLoop(split, bs, device, args.seed),
        }
        threads = {
            "study": args.threads or DEFAULT_THREADS,
            "resident": args.threads or cpu_threads(bs),
        }  # each loop as its user would run it
        runs: dict[str, list] = {k: [] for k in makers}
        for _ in range(args.rounds):  # alternate, so drift on a shared machine hits both loops alike
            for label, make in makers.items():
                if device.type == "cpu":
                    torch.set_num_threads(threads[label])
                runs[label].append(measure(label, make, bs, device, warmup_iters=warm, budget_s=budget))
        cells = {label: _median(results) for label, results in runs.items()}
        row = {
            "batch_size": bs,
            "cells": {k: v.as_dict() for k, v in cells.items()},
            "all_epoch_s": {k: [r.epoch_s for r in v] for k, v in runs.items()},
            "cpu_threads": threads if device.type == "cpu" else None,
            "study_over_resident": ratio(cells["study"].epoch_s, cells["resident"].epoch_s),
        }
        rows.append(row)
        for label, res in cells.items():
            err = f"  ERROR {res.error}" if res.error else ""
            cpu = (
                f", {threads[label]} thread{'s' if threads[label] > 1 else ''}"
                if device.type == "cpu"
                else ""
            )
            print(
                f"  bs {bs:>4} {label:<9}{cpu} epoch {'~' if res.extrapolated else ' '}{fmt_s(res.epoch_s):>8} s "
                f"({res.timed_iters}/{res.iters_per_epoch} iters timed, {res.samples_per_s:,.0f} samples/s){err}",
                flush=True,
            )

    print(f"\nepoch time for {EPOCH_SAMPLES:,} samples ('~' = extrapolated from the iterations timed)")
    head = f"{'batch':>6} {'study s':>10} {'resident s':>11} {'study/resident':>15}"
    print(head)
    print("-" * len(head))
    for row in rows:
        c = row["cells"]
        cols = [("~" if c[k]["extrapolated"] else "") + fmt_s(c[k]["epoch_s"]) for k in ("study", "resident")]
        goal = ""
        if row["batch_size"] == TARGET_BS and device.type == "cpu":
            goal = f"  (target >= {TARGET_RATIO}x: {'met' if row['study_over_resident'] >= TARGET_RATIO else 'MISSED'})"
        print(
            f"{row['batch_size']:>6} {cols[0]:>10} {cols[1]:>11} {row['study_over_resident']:>14.2f}x{goal}"
        )
    total = time.perf_counter() - t0
    print(f"\nbenchmark took {total:.0f} s")
    if args.json is not None:
        report = {
            "benchmark": "pipeline",
            "device": name,
            "device_type": device.type,
            "torch": torch.__version__,
            "dataset": dataset,
            "samples_loaded": len(split),
            "epoch_samples": EPOCH_SAMPLES,
            "budget_s": budget,
            "rounds": args.rounds,
            "workers": args.workers,
            "pin_memory": args.pin_memory,
            "seconds": total,
            "rows": rows,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(jsonable(report), indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def _median(results: list):
    """The run with the median epoch time (failed runs sort last)."""
    ordered = sorted(results, key=lambda r: (r.epoch_s != r.epoch_s, r.epoch_s))
    return ordered[(len(ordered) - 1) // 2]


if __name__ == "__main__":
    sys.exit(main())
