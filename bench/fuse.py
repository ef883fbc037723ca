"""Fused runs vs the same runs trained separately (trainer.engine.fuse): samples/s of all K runs.

For each mode, K (runs of one batch size, e.g. an lr grid) and batch size, one process on one device
times, in alternating rounds so drift hits both alike:
- mode eager, separate: K SimpleModels, each stepped by trainer.engine.split.plain_step with its own
  torch.optim.SGD (what a sweep with perf.fuse_runs = "off" does every iteration on a CPU, minus bookkeeping);
  fused: one trainer.engine.stacked.StackedSGD over the same K models (the eager fused step);
- mode graph (a CUDA GPU): separate: K trainer.engine.cuda_graph.GraphSteps, each run replaying its own
  CUDA graph (what perf.fuse_runs = "off" does on a GPU); fused: one trainer.engine.stacked_graph.StackedGraph
  replaying the stacked step of all K (perf.fuse_runs = "on" on a GPU). Both gather their batches by index
  from the same resident tensors inside the graph.
Each run gets its own random batch each step (MNIST-shaped tensors: the step's cost does not depend on the
pixels). Clocks are synchronised (torch.cuda.synchronize) before and after each timed stretch. The figure
is the median over rounds of samples/s of all K runs together; the ratio fused/separate is per round,
median and range printed.

    python bench/fuse.py                          # K 1,4,16 x batch 1,6,60 on the default device
    python bench/fuse.py --device cuda --ks 1 4 16 --batches 1 6 60 --threads 1
    python bench/fuse.py --device cuda --modes eager graph   # both savings: fused inside one CUDA graph

Threads: --threads (default 1, the trainer's choice for batches below 16 on a CPU; `0` leaves torch's own).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from trainer.engine.cuda_graph import GraphStep  # noqa: E402
from trainer.engine.split import plain_step  # noqa: E402
from trainer.engine.stacked import StackedSGD  # noqa: E402
from trainer.engine.stacked_graph import StackedGraph  # noqa: E402
from trainer.models.builtin import SimpleModel  # noqa: E402

LR, MOMENTUM = 0.02, 0.5


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads)"


def make(k: int, device: torch.device) -> tuple[list[torch.nn.Module], list[torch.optim.Optimizer]]:
    models, opts = [], []
    for i in range(k):
        torch.manual_seed(i)
        m = SimpleModel().to(device)
        models.append(m)
        opts.append(torch.optim.SGD(m.parameters(), lr=LR * (1 + i), momentum=MOMENTUM))
    return models, opts


def time_separate(models, opts, data, steps: int, device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    for s in range(steps):
        xs, ys = data[s % len(data)]
        for i, (m, o) in enumerate(zip(models, opts)):
            plain_step(m, o, xs[i], ys[i])
    sync(device)
    return time.perf_counter() - t0


def time_fused(stack: StackedSGD, data, steps: int, device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    for s in range(steps):
        xs, ys = data[s % len(data)]
        stack.step(xs, ys)
    sync(device)
    return time.perf_counter() - t0


RESIDENT = 4096  # samples of the resident data the graph mode gathers from


def graph_sides(k: int, batch: int, device: torch.device) -> tuple:
    """The graph mode's two sides over the same resident data, and 4 index batches [K, B] to cycle."""
    images = torch.rand(RESIDENT, 1, 28, 28, device=device)
    labels = torch.randint(0, 10, (RESIDENT,), device=device)
    models, opts = make(k, device)
    separate = [GraphStep(m, o, images, labels, batch) for m, o in zip(models, opts)]
    models, opts = make(k, device)
    stack = StackedSGD(models[0], models, opts, [(LR * (1 + i), MOMENTUM, 0.0) for i in range(k)])
    fused = StackedGraph(stack, images, labels, batch)
    data = [torch.randint(0, RESIDENT, (k, batch), device=device) for _ in range(4)]
    return separate, fused, data


def time_separate_graphs(separate: list[GraphStep], data, steps: int, device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    for s in range(steps):
        idx = data[s % len(data)]
        for i, g in enumerate(separate):
            g.step(idx[i])
    sync(device)
    return time.perf_counter() - t0


def time_fused_graph(fused: StackedGraph, data, steps: int, device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    for s in range(steps):
        fused.step(list(data[s % len(data)].unbind(0)))
    sync(device)
    return time.perf_counter() - t0


def steps_for(batch: int, k: int, device: torch.device, budget: float) -> int:
    """Steps per timed stretch: about `budget` seconds of the separate loop (estimated from 3 steps)."""
    models, opts = make(k, device)
    data = [(torch.rand(k, batch, 1, 28, 28, device=device), torch.randint(0, 10, (k, batch), device=device))]
    time_separate(models, opts, data, 2, device)
    t = time_separate(models, opts, data, 3, device) / 3
    return max(5, int(budget / max(t, 1e-6)))


def measure(
    k: int, batch: int, device: torch.device, rounds: int, budget: float, mode: str = "eager"
) -> dict:
    steps = steps_for(batch, k, device, budget)
    if mode == "graph":
        graphs, fused_graph, indices = graph_sides(k, batch, device)

        def run_separate(n: int) -> float:
            return time_separate_graphs(graphs, indices, n, device)

        def run_fused(n: int) -> float:
            return time_fused_graph(fused_graph, indices, n, device)

        run_separate(6)  # warm-up and capture (3 eager steps, then the graphs)
        run_fused(6)
        steps = max(steps, 20)  # the eager estimate overstates a replayed step
    else:
        data = [
            (torch.rand(k, batch, 1, 28, 28, device=device), torch.randint(0, 10, (k, batch), device=device))
            for _ in range(4)
        ]
        sep_models, sep_opts = make(k, device)
        fused_models, fused_opts = make(k, device)
        stack = StackedSGD(
            fused_models[0], fused_models, fused_opts, [(LR * (1 + i), MOMENTUM, 0.0) for i in range(k)]
        )

        def run_separate(n: int) -> float:
            return time_separate(sep_models, sep_opts, data, n, device)

        def run_fused(n: int) -> float:
            return time_fused(stack, data, n, device)

        run_separate(3)  # warm-up: allocator, kernels, vmap tracing
        run_fused(3)
    samples = steps * k * batch
    sep, fus, ratio = [], [], []
    for r in range(rounds):
        if r % 2 == 0:
            ts, tf = run_separate(steps), run_fused(steps)
        else:
            tf, ts = run_fused(steps), run_separate(steps)
        sep.append(samples / ts)
        fus.append(samples / tf)
        ratio.append(ts / tf)
    return {
        "mode": mode,
        "k": k,
        "batch": batch,
        "steps": steps,
        "rounds": rounds,
        "separate_samples_per_s": statistics.median(sep),
        "fused_samples_per_s": statistics.median(fus),
        "ratio": statistics.median(ratio),
        "ratio_min": min(ratio),
        "ratio_max": max(ratio),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 6, 60])
    ap.add_argument(
        "--modes",
        nargs="+",
        default=["eager"],
        choices=["eager", "graph"],
        help="eager: plain steps vs the eager fused step; graph (CUDA): each run's CUDA graph vs the fused graph",
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--budget", type=float, default=1.0, help="seconds per timed stretch of the separate loop"
    )
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args(argv)
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            print(
                "error: --device cuda, but torch sees no CUDA GPU; use --device cpu or auto", file=sys.stderr
            )
            return 2
    if "graph" in args.modes and device.type != "cuda":
        print("error: --modes graph needs a CUDA device (CUDA graphs); use --modes eager", file=sys.stderr)
        return 2
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print(
        f"device: {device_name(device)} | torch {torch.__version__} | {args.rounds} alternating rounds, "
        f"~{args.budget:g} s each side per round; samples/s of all K runs (median), ratio = fused / separate "
        "(median [min-max] over rounds)"
    )
    print(f"{'mode':>5} {'K':>3} {'batch':>6} {'separate/s':>11} {'fused/s':>10} {'ratio':>7}  range")
    rows = []
    for mode in args.modes:
        for batch in args.batches:
            for k in args.ks:
                row = measure(k, batch, device, args.rounds, args.budget, mode)
                rows.append(row)
                print(
                    f"{mode:>5} {k:>3} {batch:>6} {row['separate_samples_per_s']:>11.3g} "
                    f"{row['fused_samples_per_s']:>10.3g} "
                    f"{row['ratio']:>6.2f}x  [{row['ratio_min']:.2f}-{row['ratio_max']:.2f}]",
                    flush=True,
                )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"device": device_name(device), "torch": torch.__version__, "rows": rows}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
