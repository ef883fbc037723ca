"""Benchmark (issue 3): what the live app costs.

1. Frame: time to turn a 5 x 600,000-point sweep into one frame of the loss grid
   (downsample every series to its plot's width + the build of all 5 plots),
   measured on the real widgets under Textual's headless driver. Target < 50 ms.
2. Attached vs headless: the trainer's iterations per second with the app attached
   (trainer in the app's subprocess, the app draining the queue and redrawing) and
   headless (`python -m trainer run`), same config, same device, alternating in one
   run. Target: attached within 5% of headless.

    python bench/ui.py [--device auto|cpu|cuda] [--quick] [--skip-frame] [--skip-trainer] [--json PATH]

Prints figures; not a test. The frame part needs no torch; the second part needs the trainer.
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from trainer.runlog import EventType, read_events  # noqa: E402
from tui.app import make_app  # noqa: E402
from tui.feed import FeedEnd  # noqa: E402
from tui.state import SweepState  # noqa: E402
from tui.widgets.loss_grid import GridView, LossGrid  # noqa: E402
from tui.widgets.loss_plot import LossPlot  # noqa: E402

BATCH_SIZES = (1, 6, 60, 600, 6000)
POINTS = 600_000
FRAME_TARGET_MS = 50.0
ATTACHED_TARGET = 0.95  # attached iterations/s >= 95% of headless


# ---------------------------------------------------------------- part 1: one frame


def synthetic_events(points: int, block: int = 1000, seed: int = 0) -> list[dict[str, Any]]:
    """A finished-looking sweep: 5 runs of `points` noisy per-iteration losses each."""
    rng = np.random.default_rng(seed)
    runs = [{"run": f"bs{b}", "batch_size": b, "lr": 0.02, "split_chunks": 1} for b in BATCH_SIZES]
    events: list[dict[str, Any]] = [
        {"type": "sweep_started", "t": 0.0, "dataset": "bench", "device": "cpu", "runs": runs,
         "config": {"sweep": {"epochs": 10}}}
    ]
    for b in BATCH_SIZES:
        ipe = max(1, points // 10)
        events.append({"type": "run_started", "t": 0.0, "run": f"bs{b}", "batch_size": b, "lr": 0.02,
                       "split_chunks": 1, "iters_per_epoch": ipe})
        it = np.arange(points)
        curve = 0.05 + 2.25 * np.exp(-it / (points / 8)) * (1 + rng.normal(0, 1 / np.sqrt(b), points))
        curve = np.abs(curve).astype(np.float32)
        for first in range(0, points, block):
            events.append({"type": "losses", "t": 1.0, "run": f"bs{b}", "first_iter": first,
                           "values": curve[first:first + block].tolist()})
        for e in range(1, 11):
            events.append({"type": "epoch_end", "t": 2.0, "run": f"bs{b}", "epoch": e, "iters": ipe,
                           "samples": ipe * b, "wall_s": 10.0, "compute_s": 8.0, "test_acc": 0.9})
        events.append({"type": "mode_changed", "t": 2.0, "run": f"bs{b}", "iter": points // 2, "split_chunks": 4})
    events.append({"type": "sweep_finished", "t": 3.0, "status": "done"})
    return events


class ListFeed:
    """A recorded sweep handed over in one go (a replay without the JSON parsing)."""

    live = False
    run_dir = "(bench)"
    bad_lines = 0

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events, self.done = events, False

    def start(self) -> None:
        pass

    def read(self, timeout: float) -> list[dict[str, Any]]:
        if self.done:
            time.sleep(timeout)
            return []
        self.done = True
        return self.events

    def ended(self) -> FeedEnd | None:
        return FeedEnd("finished") if self.done else None

    def send(self, message: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        self.done = True


def state_costs(points: int) -> dict[str, float]:
    """One-off costs behind the first frame: events -> state, and the first EMA pass."""
    events = synthetic_events(points)
    state = SweepState()
    t0 = time.perf_counter()
    state.apply_all(events)
    apply_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for run in state.run_list():
        run.losses.smooth  # computed once, then extended incrementally
    ema_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for run in state.run_list():
        run.losses.select(100), run.losses.select(100, smooth=True)  # block summaries, first time
    index_s = time.perf_counter() - t0
    return {"events": len(events), "apply_s": apply_s, "ema_first_s": ema_s, "index_first_s": index_s}


def frame_ms(size: tuple[int, int], view: GridView, repeats: int, points: int) -> dict[str, Any]:
    """Median/max ms of one loss-grid frame (downsample + braille rebuild of every plot)."""
    events = synthetic_events(points)
    app = make_app(feed_factory=lambda attempt: ListFeed(events))
    out: dict[str, Any] = {}

    async def run() -> None:
        async with app.run_test(size=size) as pilot:
            while app.feed_end is None or app._inbox:
                await pilot.pause(0.01)
            app.x_axis, app.log_y, app.smooth, app.overlay = view.x_axis, view.log_y, view.smooth, view.overlay
            await pilot.pause(0.3)
            grid = app.screen.query_one(LossGrid)
            plots = list(grid.query(LossPlot))
            times = []
            for _ in range(repeats):
                grid._drawn.clear()  # as if every run had new data: nothing reused
                t0 = time.perf_counter()
                grid._draw()
                for plot in plots:
                    plot.strips()  # the plot's build: what a repaint costs
                times.append(1e3 * (time.perf_counter() - t0))
            out.update(
                plots=len(plots),
                plot_size=f"{plots[0].size.width}x{plots[0].size.height}",
                points_per_run=points,
                median_ms=statistics.median(times),
                max_ms=max(times),
            )
            await pilot.press("q")

    asyncio.run(run())
    return out


# ---------------------------------------------------------------- part 2: attached vs headless


def sweep_overrides(args: argparse.Namespace) -> list[str]:
    return [
        'data.dataset="synthetic-digits"',
        f"data.train_samples={args.train_samples}",
        f"data.test_samples={args.test_samples}",
        f"sweep.batch_sizes=[{','.join(str(b) for b in args.batch_sizes)}]",
        f"sweep.epochs={args.epochs}",
        f'sweep.device="{args.device}"',
        'sweep.schedule="sequential"',
    ]


def iters_per_s(run_dir: Path) -> dict[int, float]:
    """Training iterations per second per batch size, from the run directory's epoch_end events
    (epoch wall time excludes evaluation; the first epoch is warm-up when there are several)."""
    per: dict[int, list[tuple[int, float]]] = {}
    sizes: dict[str, int] = {}
    for e in read_events(run_dir).events:
        if e["type"] == EventType.RUN_STARTED:
            sizes[e["run"]] = e["batch_size"]
        elif e["type"] == EventType.EPOCH_END and e.get("wall_s"):
            per.setdefault(sizes[e["run"]], []).append((e["iters"], e["wall_s"]))
    out = {}
    for b, epochs in per.items():
        timed = epochs[1:] if len(epochs) > 1 else epochs
        out[b] = sum(i for i, _ in timed) / sum(w for _, w in timed)
    return out


def run_headless(args: argparse.Namespace, out: Path) -> dict[int, float]:
    cmd = [sys.executable, "-m", "trainer", "run", "--out", str(out)]
    for o in sweep_overrides(args):
        cmd += ["--set", o]
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=args.timeout)
    return iters_per_s(out)


def run_attached(args: argparse.Namespace, out: Path, app_cpu: list[float]) -> dict[int, float]:
    """The real app (headless driver, 160x48) with the real trainer subprocess, until the sweep ends.

    Appends the app process's own CPU use (fraction of one core, trainer excluded) to app_cpu.
    """
    app = make_app(overrides=sweep_overrides(args), out_dir=str(out))

    async def run() -> None:
        async with app.run_test(size=(160, 48)) as pilot:
            deadline = time.monotonic() + args.timeout
            while not app.state.started and time.monotonic() < deadline:
                await pilot.pause(0.2)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            while app.feed_end is None and time.monotonic() < deadline:
                await pilot.pause(0.2)
            app_cpu.append((time.process_time() - cpu0) / (time.perf_counter() - wall0))
            if app.feed_end is None or app.feed_end.kind != "finished":
                raise SystemExit(f"attached run did not finish: {app.feed_end}")
            await pilot.press("q")

    asyncio.run(run())
    return iters_per_s(out)


def attached_vs_headless(args: argparse.Namespace) -> dict[str, Any]:
    rows: dict[int, dict[str, list[float]]] = {}
    app_cpu: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bstui-bench-ui-") as tmp:
        for rep in range(args.repeats):
            # Alternate the order so drift in the machine's load hits both alike.
            order = ("headless", "attached") if rep % 2 == 0 else ("attached", "headless")
            for mode in order:
                out = Path(tmp) / f"{mode}-{rep}"
                t0 = time.perf_counter()
                result = run_headless(args, out) if mode == "headless" else run_attached(args, out, app_cpu)
                print(f"  {mode:8} rep {rep + 1}: {time.perf_counter() - t0:6.1f} s  "
                      + "  ".join(f"bs{b} {v:,.1f} it/s" for b, v in sorted(result.items())), flush=True)
                for b, v in result.items():
                    rows.setdefault(b, {"headless": [], "attached": []})[mode].append(v)
    table = {}
    for b, r in sorted(rows.items()):
        h, a = statistics.median(r["headless"]), statistics.median(r["attached"])
        table[b] = {"headless_it_s": h, "attached_it_s": a, "ratio": a / h, "runs": r}
    return {"per_batch_size": table, "app_cpu_fraction": statistics.median(app_cpu)}


def device_label(device: str) -> str:
    try:
        import torch

        if device in ("auto", "cuda") and torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (trainer part)")
    p.add_argument("--quick", action="store_true", help="fewer repeats, smaller sweep (CPU smoke run)")
    p.add_argument("--skip-frame", action="store_true")
    p.add_argument("--skip-trainer", action="store_true")
    p.add_argument("--points", type=int, default=POINTS, help="losses per run in the frame part")
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args(argv)
    args.repeats = 1 if args.quick else 2
    args.batch_sizes = [60, 600] if args.quick else [6, 60, 600]
    args.epochs = 2 if args.quick else 3
    args.train_samples = 3000 if args.quick else 12000
    args.test_samples = 500 if args.quick else 2000
    args.timeout = 900
    report: dict[str, Any] = {"machine": platform.node(), "python": sys.version.split()[0]}

    if not args.skip_frame:
        print(f"1. one frame of the loss grid, 5 runs x {args.points:,} losses (target < {FRAME_TARGET_MS:.0f} ms)")
        costs = state_costs(args.points)
        print(f"  one-off: {costs['events']:,} events -> state {costs['apply_s']:.2f} s, first EMA pass "
              f"{costs['ema_first_s']:.2f} s, first block summaries {costs['index_first_s']:.2f} s (all 5 runs)")
        report["state"] = costs
        frames = {}
        for size in ((160, 48), (80, 24)):
            for name, view in (("raw", GridView()), ("log+ema", GridView(log_y=True, smooth=True)),
                               ("overlay", GridView(overlay=True))):
                r = frame_ms(size, view, repeats=5 if args.quick else 20, points=args.points)
                key = f"{size[0]}x{size[1]} {name}"
                frames[key] = r
                verdict = "ok" if r["median_ms"] < FRAME_TARGET_MS else "OVER TARGET"
                print(f"  {key:18} {r['plots']} plot(s) of {r['plot_size']:>6}: median {r['median_ms']:6.1f} ms, "
                      f"max {r['max_ms']:6.1f} ms  [{verdict}]", flush=True)
        report["frame"] = frames

    if not args.skip_trainer:
        print(f"2. trainer iterations/s, app attached vs headless, device {device_label(args.device)} "
              f"(target attached >= {ATTACHED_TARGET:.0%} of headless)")
        result = attached_vs_headless(args)
        table = result["per_batch_size"]
        for b, r in table.items():
            verdict = "ok" if r["ratio"] >= ATTACHED_TARGET else "BELOW TARGET"
            print(f"  bs {b:>5}: headless {r['headless_it_s']:9,.1f} it/s  attached {r['attached_it_s']:9,.1f} it/s  "
                  f"attached/headless {r['ratio']:.3f}  [{verdict}]")
        print(f"  the app itself used {result['app_cpu_fraction']:.0%} of one core while the sweep ran")
        report["attached_vs_headless"] = {"device": device_label(args.device), **result}

    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
