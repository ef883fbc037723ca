"""Benchmark: a sweep in shards (trainer.runlog.shards, trainer.cli.submit) against the same sweep in one process.

1. Wall time of a 12-run CPU sweep (synthetic-digits; batch sizes 10, 30, 100 x lrs 0.01, 0.02 x 2 seeds),
   from the command's start to its end (Python and torch start-up included): `python -m trainer run`
   unsharded, against `python -m trainer submit --nodes 2 --executor local --wait` (2 shards as local
   processes through submitit). Every run trains on 1 CPU thread (perf.cpu_threads = 1) in both, so the
   ratio is what a second process buys; on 2 free cores expect about 2, less the second start-up.
2. Merge cost: reading 3 shards of 100,000 events each as one sweep (trainer.runlog.shards.read_sharded: three
   tolerant reads, the merge onto one clock, the sort) against reading the same 300,000 events from one
   events.jsonl (trainer.runlog.read_events), the cost an unsharded sweep of that size has anyway.

    python bench/shards.py [--repeats 3] [--skip-sweep]

Prints figures (median and range over the repeats, the machine named); not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from trainer.runlog import read_events  # noqa: E402
from trainer.runlog.shards import read_sharded  # noqa: E402

SWEEP_SETS = [
    'data.dataset="synthetic-digits"',
    "data.train_samples=1200",
    "data.test_samples=200",
    "sweep.batch_sizes=[10,30,100]",
    "sweep.lrs=[0.01,0.02]",
    "sweep.seeds=2",
    "sweep.epochs=2",
    "perf.cpu_threads=1",
    'perf.fuse_runs="off"',
]


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {load:.1f} at start"


def spread(xs: list[float]) -> str:
    return f"{statistics.median(xs):.1f} s (range {min(xs):.1f}-{max(xs):.1f}, n={len(xs)})"


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return time.perf_counter() - t0


def sweep_times(repeats: int, data_root: Path) -> None:
    sets = [a for s in SWEEP_SETS + [f'data.root="{data_root}"'] for a in ("--set", s)]
    base = [sys.executable, "-m", "trainer"]
    timed(
        base
        + ["run", "experiments.toml", *sets, "--device", "cpu", "--quiet", "--out", str(data_root / "warm")]
    )  # the dataset generated once, not timed
    one, two = [], []
    for i in range(repeats):  # alternated, so a change in the machine's load falls on both
        out = data_root / f"one-{i}"
        one.append(
            timed(base + ["run", "experiments.toml", *sets, "--device", "cpu", "--quiet", "--out", str(out)])
        )
        out = data_root / f"two-{i}"
        two.append(
            timed(
                base
                + [
                    "submit",
                    "experiments.toml",
                    *sets,
                    "--device",
                    "cpu",
                    "--nodes",
                    "2",
                    "--executor",
                    "local",
                    "--wait",
                    "--out",
                    str(out),
                ]
            )
        )
    print(
        "12-run CPU sweep (synthetic-digits, 1,200 samples, batch 10/30/100 x 2 lrs x 2 seeds, 2 epochs, "
        "1 thread per run), wall time of the command:"
    )
    print(f"  unsharded (python -m trainer run):               {spread(one)}")
    print(f"  2 shards (submit --executor local --wait):       {spread(two)}")
    print(f"  speed-up unsharded / 2 shards: {statistics.median(one) / statistics.median(two):.2f}x")


def write_events(path: Path, n: int, run_ids: list[str], shard: int | None, count: int) -> None:
    """n events like a sweep's: sweep_started, then losses blocks and epoch ends of its runs, sweep_finished."""
    path.mkdir(parents=True, exist_ok=True)
    rows = [
        {"run": r, "batch_size": 10, "lr": 0.01, "split_chunks": 1, "seed": 0, "variant": ""} for r in run_ids
    ]
    head = {"type": "sweep_started", "t": 0.0, "started_at": 1.7e9, "runs": rows, "config": {}}
    if shard is not None:
        head["shard"] = {"index": shard, "count": count}
    lines = [json.dumps(head)]
    for k in range(n - 2):
        run = run_ids[k % len(run_ids)]
        t = 0.001 * k + (shard or 0) * 0.0003
        if k % 50 == 49:
            lines.append(
                json.dumps(
                    {
                        "type": "epoch_end",
                        "t": t,
                        "run": run,
                        "epoch": k // 50,
                        "test_acc": 0.9,
                        "train_loss": 0.3,
                        "wall_s": 1.0,
                    }
                )
            )
        else:
            lines.append(
                json.dumps({"type": "losses", "t": t, "run": run, "first_iter": k * 10, "values": [0.5] * 10})
            )
    lines.append(json.dumps({"type": "sweep_finished", "t": 0.001 * n, "status": "done", "summaries": []}))
    (path / "events.jsonl").write_text("\n".join(lines) + "\n")


def merge_times(repeats: int, tmp: Path) -> None:
    per_shard, count = 100_000, 3
    runs = [[f"bs10-lr0.01-s{s}-{i}" for i in range(4)] for s in range(count)]
    root = tmp / "sharded"
    plan_rows = [
        {"run": r, "batch_size": 10, "lr": 0.01, "split_chunks": 1, "seed": 0, "variant": "", "shard": s}
        for s in range(count)
        for r in runs[s]
    ]
    for s in range(count):
        d = root / "shards" / str(s)
        write_events(d, per_shard, runs[s], s, count)
        (d / "shard.json").write_text(json.dumps({"index": s, "count": count, "runs": plan_rows}))
    single = tmp / "single"
    write_events(single, per_shard * count, [r for rs in runs for r in rs], None, 1)
    merged, plain = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        log = read_sharded(root)
        merged.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        one = read_events(single)
        plain.append(time.perf_counter() - t0)
    assert len(log.events) == count * (per_shard - 2) + 2 and len(one.events) == count * per_shard
    print(
        f"merge: {count} shards x {per_shard:,} events read as one sweep (read_sharded) vs the same "
        f"{count * per_shard:,} events in one events.jsonl (read_events):"
    )
    print(f"  shards merged: {spread(merged)}")
    print(f"  one file:      {spread(plain)}")
    print(f"  merge cost: {statistics.median(merged) / statistics.median(plain):.2f}x the read of one file")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-sweep", action="store_true", help="only the merge cost")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    tmp = Path(tempfile.mkdtemp(prefix="bstui-bench-shards-"))
    try:
        merge_times(args.repeats, tmp)
        if not args.skip_sweep:
            sweep_times(args.repeats, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
