"""Benchmark: per-batch time of a plain step and of split-backward (retain_graph vs vectorized).

the study found split-backward with backward(retain_graph=True) too slow to be
useful. This measures, side by side in one run, on the SimpleModel with MNIST-shaped random data:
a plain SGD step, and a split step of k chunks (k chunk gradients + k optimizer steps) by each
method. Target: vectorized >= 3x faster than retain_graph at batch 6000 on a GPU, faster on CPU.

    python bench/split.py [--device auto|cpu|cuda] [--batches 600 6000] [--chunks 10] [--json PATH]

Timing: warm-up steps first (cuDNN autotuning, allocator, lazy init), then rounds in which the
three methods take turns (so drift on a shared machine hits all of them alike); the figure is the
median over rounds. CUDA: CUDA events around each step, read after one synchronize per round.
CPU: perf_counter around each step.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/common.py

from common import device_name  # noqa: E402

from trainer.engine.split import plain_step, split_step  # noqa: E402
from trainer.models.builtin import build_model  # noqa: E402

METHODS = ("plain", "retain_graph", "vectorized")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda, but no CUDA GPU is available to torch; use --device cpu or auto")
    return torch.device(name)


def make_steps(
    batch: int, chunks: int, device: torch.device, seed: int
) -> dict[str, Callable[[], torch.Tensor]]:
    """One step function per method, each with its own copy of the same model and optimizer."""
    torch.manual_seed(seed)
    base = build_model("simple_cnn").to(device)
    x = torch.rand(batch, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    steps: dict[str, Callable[[], torch.Tensor]] = {}
    for method in METHODS:
        model = copy.deepcopy(base)
        opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.5)  # the study's optimizer
        if method == "plain":
            steps[method] = lambda m=model, o=opt: plain_step(m, o, x, y)
        else:
            steps[method] = lambda m=model, o=opt, meth=method: split_step(m, o, x, y, chunks, meth)
    return steps


def time_batch(
    batch: int, chunks: int, device: torch.device, warmup: int, rounds: int, seed: int
) -> dict[str, list[float]]:
    """Milliseconds per step, per method, one sample per round."""
    steps = make_steps(batch, chunks, device, seed)
    for _ in range(warmup):
        for step in steps.values():
            step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    samples: dict[str, list[float]] = {m: [] for m in METHODS}
    for _ in range(rounds):
        if device.type == "cuda":
            events = {}
            for method, step in steps.items():
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                step()
                end.record()
                events[method] = (start, end)
            torch.cuda.synchronize(device)
            for method, (start, end) in events.items():
                samples[method].append(start.elapsed_time(end))
        else:
            for method, step in steps.items():
                t0 = time.perf_counter()
                step()
                samples[method].append((time.perf_counter() - t0) * 1e3)
    return samples


def summarize(batch: int, samples: dict[str, list[float]]) -> dict[str, float | int | dict[str, list[float]]]:
    med = {m: statistics.median(samples[m]) for m in METHODS}
    return {
        "batch_size": batch,
        "plain_ms": med["plain"],
        "retain_graph_ms": med["retain_graph"],
        "vectorized_ms": med["vectorized"],
        "retain_graph_over_vectorized": med["retain_graph"] / med["vectorized"],
        "retain_graph_over_plain": med["retain_graph"] / med["plain"],
        "vectorized_over_plain": med["vectorized"] / med["plain"],
        "samples_ms": samples,
    }


def print_table(rows: list[dict], chunks: int) -> None:
    head = (
        f"{'batch':>6} {'plain ms':>10} {'retain ms':>10} {'vector ms':>10} "
        f"{'retain/vec':>11} {'retain/plain':>13} {'vec/plain':>10}"
    )
    print(f"split-backward, k = {chunks} chunks; median ms per batch (one update of the batch)")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['batch_size']:>6} {r['plain_ms']:>10.2f} {r['retain_graph_ms']:>10.2f} {r['vectorized_ms']:>10.2f} "
            f"{r['retain_graph_over_vectorized']:>10.2f}x {r['retain_graph_over_plain']:>12.2f}x "
            f"{r['vectorized_over_plain']:>9.2f}x"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--batches", type=int, nargs="+", default=[600, 6000], help="batch sizes (default 600 6000)"
    )
    parser.add_argument("--chunks", type=int, default=10, help="split-backward chunks k (default 10)")
    parser.add_argument(
        "--warmup", type=int, default=None, help="warm-up steps per method (default 2 CPU, 5 CUDA)"
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="timed steps per method (default 5 CPU, 20 CUDA)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads for torch (default: torch's choice; 1 gives steadier figures on a busy shared CPU)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    for b in args.batches:
        if args.chunks < 1 or b % args.chunks:
            parser.error(f"--chunks {args.chunks} must divide every batch size (it does not divide {b})")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        parser.error(str(exc))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # the training loop's setting: tuned kernels per shape
    warmup = args.warmup if args.warmup is not None else (5 if device.type == "cuda" else 2)
    rounds = args.rounds if args.rounds is not None else (20 if device.type == "cuda" else 5)

    name = device_name(device)
    print(f"device: {name}; torch {torch.__version__}; warm-up {warmup}, median of {rounds} rounds")
    rows = [summarize(b, time_batch(b, args.chunks, device, warmup, rounds, args.seed)) for b in args.batches]
    print_table(rows, args.chunks)
    if args.json is not None:
        report = {
            "device": name,
            "device_type": device.type,
            "torch": torch.__version__,
            "chunks": args.chunks,
            "warmup": warmup,
            "rounds": rounds,
            "results": rows,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
