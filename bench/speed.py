"""Benchmark: epoch time of the study's loop vs bstui's resident eager loop vs the fast path.

For batch sizes 1, 6, 60, 600, 6000, side by side in one process on one device: epoch time (for a
60,000-sample epoch) of
  study     DataLoader + per-sample ToTensor + copy + eager step + loss.item() each iteration,
  resident  bstui's eager loop (data resident on the device, losses copied to the host per block),
  graph     bstui's fast path (trainer.engine.cuda_graph.GraphStep: one CUDA graph replay per iteration),
as ratios, with samples/s and peak memory; on a GPU also what bf16 autocast and channels_last buy the
fast path. Each cell is warmed up, then timed for up to an epoch or --budget seconds; cells cut short
(always batch 1 and 6, whose epochs are 60,000 and 10,000 iterations) are extrapolated per epoch from
the iterations timed, and marked "~".

    python bench/speed.py [--device auto|cpu|cuda] [--quick] [--json PATH]
    python bench/speed.py --model resnet_small --dataset cifar10 --batches 32 128 512

--model times another model (a built-in, or "package.module:factory"); --dataset cifar10/cifar100 times
colour 32x32 images (CIFAR-shaped random tensors when CIFAR-10 is not in --root: timings depend on the
shape, not the pixels), with 50,000-sample epochs.

Targets on one H100/H200, fast path vs the study's loop: >= 20x at batch 1 and 6, 30x at 60, 60x at
600 and 6000; stretch: batch 1 epoch under 4 s. On CPU there are no CUDA graphs: the table shows the
study's loop against the resident loop and says that the GPU figures are unmeasured.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/common.py, wherever we are run from

import common  # noqa: E402  (bench/common.py: its MODEL and EPOCH_SAMPLES are set from the arguments)
from common import (  # noqa: E402
    EPOCH_SAMPLES,
    GraphLoop,
    ResidentLoop,
    StudyLoop,
    device_name,
    fmt_s,
    jsonable,
    load_train_split,
    measure,
    peak_rss_mb,
    ratio,
    resolve_device,
)

BATCH_SIZES = (1, 6, 60, 600, 6000)
TARGETS = {1: 20.0, 6: 20.0, 60: 30.0, 600: 60.0, 6000: 60.0}  # fast path vs study, on one H100/H200
STRETCH_BS1_EPOCH_S = 4.0
# Fast-path variants beyond fp32: (label, precision, channels_last).
VARIANTS = (
    ("graph bf16", "bf16", False),
    ("graph channels_last", "fp32", True),
    ("graph bf16+cl", "bf16", True),
)


def run_cells(
    args: argparse.Namespace, device: torch.device, split, t_start: float, on_row=None
) -> list[dict]:
    """Every (loop, batch size) cell, in order: study, resident, graph (and variants on CUDA).

    `on_row(rows)` is called after each batch size (the JSON is rewritten, so a killed run keeps
    what it measured); batch sizes left when --deadline has passed are skipped, and say so.
    """
    cuda = device.type == "cuda"
    rows = []
    for bs in args.batches:
        if args.deadline and time.perf_counter() - t_start > args.deadline:
            print(f"batch {bs}: skipped, --deadline {args.deadline:g} s passed")
            continue
        if bs > len(split):
            print(f"batch {bs}: skipped, larger than the {len(split)} samples loaded (raise --samples)")
            continue
        # Few warm-up iterations for big CPU batches (seconds each); graphs need GraphStep's 3 + capture.
        base_warm = 1 if (not cuda and bs >= 600) else (2 if not cuda else 5)
        budget = args.budget
        cells = [
            (
                "study",
                lambda: StudyLoop(split, bs, device, args.seed, args.workers, args.pin_memory),
                base_warm,
            ),
            ("resident", lambda: ResidentLoop(split, bs, device, args.seed), base_warm),
        ]
        if cuda:
            cells.append(("graph", lambda: GraphLoop(split, bs, device, args.seed), 6))
            if not args.no_variants:
                for label, precision, cl in VARIANTS:
                    cells.append(
                        (label, lambda p=precision, c=cl: GraphLoop(split, bs, device, args.seed, p, c), 6)
                    )
        row: dict = {"batch_size": bs, "cells": {}}
        for label, make, warm in cells:
            res = measure(label, make, bs, device, warmup_iters=warm, budget_s=budget)
            row["cells"][label] = res.as_dict()
            mark = "~" if res.extrapolated else " "
            extra = f"  ERROR {res.error}" if res.error else ""
            if res.info and res.info.get("capture_errors"):
                extra += f"  (capture failed, ran eager: {res.info['capture_errors']})"
            print(
                f"  bs {bs:>5} {label:<20} epoch {mark}{fmt_s(res.epoch_s):>8} s"
                f"  ({res.timed_iters}/{res.iters_per_epoch} iters timed){extra}",
                flush=True,
            )
        c = row["cells"]
        study = c["study"]["epoch_s"]
        resident = c["resident"]["epoch_s"]
        row["study_over_resident"] = ratio(study, resident)
        if cuda:
            graph = c["graph"]["epoch_s"]
            row["study_over_graph"] = ratio(study, graph)
            row["resident_over_graph"] = ratio(resident, graph)
            row["target_study_over_graph"] = TARGETS.get(bs)
            for label, _, _ in VARIANTS:
                if label in c:
                    row[f"graph_over_{label.split(' ', 1)[1]}"] = ratio(graph, c[label]["epoch_s"])
        rows.append(row)
        if on_row is not None:
            on_row(rows)
    return rows


def print_table(rows: list[dict], cuda: bool) -> None:
    """The epoch-time table, ratios, samples/s and memory; '~' marks extrapolated epochs."""
    loops = ["study", "resident"] + (["graph"] if cuda else [])
    head = f"{'batch':>6} " + " ".join(f"{name + ' s':>12}" for name in loops)
    head += f" {'study/res':>10}" + (f" {'study/graph':>12} {'res/graph':>10} {'target':>7}" if cuda else "")
    print(f"\nepoch time for {common.EPOCH_SAMPLES:,} samples ('~' = extrapolated from the iterations timed)")
    print(head)
    print("-" * len(head))
    for row in rows:
        c = row["cells"]
        line = f"{row['batch_size']:>6} "
        line += " ".join(
            f"{('~' if c[n]['extrapolated'] else '') + fmt_s(c[n]['epoch_s']):>12}" for n in loops
        )
        line += f" {row['study_over_resident']:>9.1f}x"
        if cuda:
            t = row["target_study_over_graph"]
            ok = "" if t is None else (" ok" if row["study_over_graph"] >= t else " MISS")
            line += (
                f" {row['study_over_graph']:>11.1f}x {row['resident_over_graph']:>9.1f}x {t or 0:>5.0f}x{ok}"
            )
        print(line)

    print(
        "\nsamples/s"
        + ("   (peak GPU memory MiB: torch.cuda.max_memory_allocated over setup + run)" if cuda else "")
    )
    for row in rows:
        c = row["cells"]
        parts = []
        for n in loops:
            mem = c[n]["peak_mem_mb"]
            parts.append(
                f"{n} {c[n]['samples_per_s']:>10,.0f}" + (f" ({mem:,.0f} MiB)" if mem is not None else "")
            )
        print(f"{row['batch_size']:>6}  " + "   ".join(parts))

    if cuda and any(f"graph_over_{v[0].split(' ', 1)[1]}" in r for r in rows for v in VARIANTS):
        print(
            "\nwhat bf16 autocast / channels_last buy the fast path (fp32 graph epoch / variant epoch; >1 = faster)"
        )
        for row in rows:
            parts = []
            for label, _, _ in VARIANTS:
                key = f"graph_over_{label.split(' ', 1)[1]}"
                if key in row:
                    cell = row["cells"][label]
                    mem = cell["peak_mem_mb"]
                    parts.append(
                        f"{label[6:]} {row[key]:.2f}x ({mem:,.0f} MiB)"
                        if mem is not None
                        else f"{label[6:]} {row[key]:.2f}x"
                    )
            print(f"{row['batch_size']:>6}  " + "   ".join(parts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCH_SIZES))
    parser.add_argument(
        "--quick", action="store_true", help="shorter budget per cell and a smaller split (CPU: ~2 min)"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds timed per cell at most (default 1.5 GPU, 3 CPU; --quick 1)",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=None,
        help="training samples loaded (default 60000; --quick on CPU 12000)",
    )
    parser.add_argument(
        "--dataset",
        default="synthetic-digits",
        help="mnist | fashion-mnist | kmnist | synthetic-digits (default) | cifar10 | cifar100 (colour 32x32; CIFAR-shaped tensors when not in --root)",
    )
    parser.add_argument(
        "--model",
        default="simple_cnn",
        help="simple_cnn (the study's, default) | resnet_small | package.module:factory",
    )
    parser.add_argument("--root", default="~/.cache/bstui/data", help="data root (data.root)")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="DataLoader workers of the study's loop (data.num_workers, default 0)",
    )
    parser.add_argument(
        "--pin-memory", action="store_true", help="pinned memory + non-blocking copies in the study's loop"
    )
    parser.add_argument(
        "--no-variants", action="store_true", help="skip the bf16 / channels_last cells on GPU"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--deadline",
        type=float,
        default=0,
        help="skip batch sizes not started within this many seconds (0: none)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="write every figure to this JSON file (rewritten after each batch size)",
    )
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    if args.budget is None:
        args.budget = 1.0 if args.quick else (1.5 if cuda else 3.0)
    if args.samples is None:
        args.samples = (
            12_000
            if (args.quick and not cuda)
            else (50_000 if args.dataset in common.CIFAR_SHAPED else EPOCH_SAMPLES)
        )
    for b in args.batches:
        if b < 1:
            parser.error(f"--batches: batch sizes must be >= 1, got {b}")

    colour = args.dataset in common.CIFAR_SHAPED
    if colour:
        common.EPOCH_SAMPLES = 50_000  # CIFAR's training set
    # resnet_small takes colour by default; on the grey datasets it is told so (as experiments/fashion-mnist.toml)
    model_args = {"in_channels": 1} if args.model == "resnet_small" and not colour else {}
    common.MODEL = common.ModelConfig(
        name=args.model, args=model_args, path=str(Path.cwd()) if ":" in args.model else ""
    )
    name = device_name(device)
    print(
        f"device: {name}; model {args.model}; torch {torch.__version__}; budget {args.budget:g} s per cell; "
        f"study's loop with {args.workers} DataLoader workers{' and pinned memory' if args.pin_memory else ''}"
    )
    t0 = time.perf_counter()
    split, dataset = load_train_split(args.dataset, args.root, args.samples, args.seed)
    print(
        f"data: {dataset}, {len(split):,} training samples loaded ({time.perf_counter() - t0:.1f} s); "
        f"epochs below are for {common.EPOCH_SAMPLES:,} samples"
    )
    if not cuda:
        print(
            "GPU figures: unmeasured (no CUDA device here): no fast-path (CUDA graph), bf16 or "
            "channels_last cells, and no per-cell memory (CPU: process peak RSS at the end)"
        )

    def write_json(rows: list[dict], finished: bool = False) -> None:
        if args.json is None:
            return
        report = {
            "benchmark": "speed",
            "finished": finished,
            "device": name,
            "device_type": device.type,
            "torch": torch.__version__,
            "dataset": dataset,
            "samples_loaded": len(split),
            "epoch_samples": common.EPOCH_SAMPLES,
            "model": args.model,
            "budget_s": args.budget,
            "workers": args.workers,
            "pin_memory": args.pin_memory,
            "gpu_figures": "measured" if cuda else "unmeasured (no CUDA device)",
            "targets_study_over_graph": TARGETS,
            "peak_rss_mb": peak_rss_mb(),
            "seconds": time.perf_counter() - t0,
            "rows": rows,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(jsonable(report), indent=2) + "\n")

    rows = run_cells(args, device, split, t0, on_row=write_json)
    print_table(rows, cuda)
    if cuda and rows and rows[0]["batch_size"] == 1:
        bs1 = rows[0]["cells"]["graph"]["epoch_s"]
        verdict = "met" if bs1 < STRETCH_BS1_EPOCH_S else "not met"
        print(
            f"\nstretch: batch 1 fast-path epoch {fmt_s(bs1)} s (goal < {STRETCH_BS1_EPOCH_S:g} s): {verdict}"
        )
    print(f"\nprocess peak RSS {peak_rss_mb():,.0f} MiB; benchmark took {time.perf_counter() - t0:.0f} s")
    write_json(rows, finished=True)
    if args.json is not None:
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
