"""Benchmark: what the live app costs.

1. Frame: time to turn a sweep of 600,000 losses per run into one frame of the loss grid
   (downsample every series to its plot's width + the build of every plot), measured on the
   real widgets under Textual's headless driver. Targets: < 20 ms at 160x48 with 5 runs,
   < 50 ms at 250x70 with 15 runs. 1b: one frame of the scaling screen (the batch x lr matrix in
   every metric, the steps-to-target, samples and lr-rule charts) for a 6 x 8 x 2 grid at 160x48,
   target < 20 ms, and the analysis behind it (recomputed once per finished run). Beside it, plotext's time to draw the same downsampled
   points at the same plot sizes, so the choice of the numpy renderer stays measured.
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
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from trainer.runlog import EventType, read_events  # noqa: E402
from tui.assemble import make_app  # noqa: E402
from tui.feeds.base import FeedEnd  # noqa: E402
from tui.feeds.system import FixedSystem, SystemSnapshot  # noqa: E402
from tui.screens.main_screen import MainScreen  # noqa: E402
from tui.state.status import StatusLine  # noqa: E402
from tui.state.sweep import SweepState  # noqa: E402
from tui.state.view import View  # noqa: E402
from tui.widgets.chart import BrailleChart  # noqa: E402
from tui.widgets.loss_grid import LossGrid  # noqa: E402

BATCH_SIZES = (1, 6, 60, 600, 6000)
LRS = (0.01, 0.03, 0.1)
POINTS = 600_000
#: (terminal size, runs, frame target in ms)
FRAME_CASES = (((160, 48), 5, 20.0), ((250, 70), 15, 50.0), ((80, 24), 5, 20.0))
ATTACHED_TARGET = 0.95  # attached iterations/s >= 95% of headless


# ---------------------------------------------------------------- part 1: one frame


def run_specs(n_runs: int) -> list[tuple[str, int, float]]:
    """(run id, batch size, lr): the study's 5 batch sizes, times up to 3 lrs."""
    specs = [(b, lr) for lr in LRS for b in BATCH_SIZES][:n_runs]
    return [(f"bs{b}-lr{lr:g}", b, lr) for b, lr in specs]


def synthetic_events(
    points: int, n_runs: int = 5, block: int = 1000, seed: int = 0
) -> Iterator[dict[str, Any]]:
    """A finished-looking sweep: `n_runs` runs of `points` noisy per-iteration losses each (made lazily)."""
    rng = np.random.default_rng(seed)
    specs = run_specs(n_runs)
    runs = [{"run": rid, "batch_size": b, "lr": lr, "split_chunks": 1, "seed": 0} for rid, b, lr in specs]
    yield {
        "type": "sweep_started",
        "t": 0.0,
        "dataset": "bench",
        "device": "cpu",
        "runs": runs,
        "config": {"sweep": {"epochs": 10, "target_accuracy": 0.9}},
    }
    for rid, b, lr in specs:
        ipe = max(1, points // 10)
        yield {
            "type": "run_started",
            "t": 0.0,
            "run": rid,
            "batch_size": b,
            "lr": lr,
            "split_chunks": 1,
            "iters_per_epoch": ipe,
            "epochs": 10,
        }
        it = np.arange(points)
        curve = 0.05 + 2.25 * np.exp(-it / (points / 8)) * (1 + rng.normal(0, 1 / np.sqrt(b), points))
        curve = np.abs(curve).astype(np.float32)
        for first in range(0, points, block):
            yield {
                "type": "losses",
                "t": 1.0,
                "run": rid,
                "first_iter": first,
                "values": curve[first : first + block].tolist(),
            }
        for e in range(1, 11):
            yield {
                "type": "epoch_end",
                "t": 2.0,
                "run": rid,
                "epoch": e,
                "iters": ipe,
                "samples": ipe * b,
                "wall_s": 10.0,
                "compute_s": 8.0,
                "test_acc": 0.8 + 0.015 * e,
                "test_loss": 0.5 / e,
                "total_iters": e * ipe,
            }
        yield {"type": "mode_changed", "t": 2.0, "run": rid, "iter": points // 2, "split_chunks": 4}
    yield {"type": "sweep_finished", "t": 3.0, "status": "done"}


class ListFeed:
    """A recorded sweep handed over in chunks (a replay without the JSON parsing)."""

    live = False
    run_dir = "(bench)"
    bad_lines = 0
    follows_trainer = False
    watch: StatusLine | None = None
    trainer_pid: int | None = None

    def __init__(self, events: Iterator[dict[str, Any]]) -> None:
        self.events, self.done = events, False

    def start(self) -> None:
        pass

    def read(self, timeout: float) -> list[dict[str, Any]]:
        if self.done:
            time.sleep(timeout)
            return []
        chunk = list(itertools.islice(self.events, 2000))
        if not chunk:
            self.done = True
        return chunk

    def ended(self) -> FeedEnd | None:
        return FeedEnd("finished") if self.done else None

    def send(self, message: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        self.done = True


def state_costs(points: int) -> dict[str, float]:
    """One-off costs behind the first frame: events -> state, and the first EMA pass."""
    events = list(synthetic_events(points))
    state = SweepState()
    t0 = time.perf_counter()
    state.apply_all(events)
    apply_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for run in state.run_list():
        run.losses.smooth  # noqa: B018 - computed once, then extended incrementally
    ema_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for run in state.run_list():
        run.losses.select(100), run.losses.select(100, smooth=True)  # block summaries, first time
    index_s = time.perf_counter() - t0
    return {"events": len(events), "apply_s": apply_s, "ema_first_s": ema_s, "index_first_s": index_s}


def plotext_ms(plots: list[BrailleChart]) -> float:
    """CPU ms of plotext drawing the very points of these plots (already downsampled) at the same sizes."""
    import plotext as plt  # only the comparison needs it

    t0 = time.process_time()
    for plot in plots:
        chart = plot.chart
        if chart is None:
            continue
        plt.clear_figure()
        plt.plotsize(plot.size.width, plot.size.height)
        for band in chart.bands:
            plt.plot(band.x.tolist(), band.hi.tolist(), marker="braille")
        for line in chart.lines:
            if len(line.x):
                plt.plot(line.x.tolist(), line.y.tolist(), marker="braille")
        plt.xlim(*chart.xlim)
        plt.ylim(*chart.ylim)
        plt.title(chart.title)
        plt.build()
    return 1e3 * (time.process_time() - t0)


VIEWS = (
    ("default", View()),
    ("log+raw", View(log_y=True, smoothing="raw")),
    ("overlay", View(overlay=True)),
    ("accuracy", View(metric="acc")),
)


def frame_ms(size: tuple[int, int], n_runs: int, repeats: int, points: int) -> dict[str, dict[str, Any]]:
    """Per view: median/max ms of one loss-grid frame (downsample + braille build of every plot),
    and plotext's median ms on the same points at the same sizes."""
    app = make_app(
        feed_factory=lambda attempt: ListFeed(synthetic_events(points, n_runs)),
        system=FixedSystem(SystemSnapshot()),
    )
    out: dict[str, dict[str, Any]] = {}

    async def run() -> None:
        async with app.run_test(size=size) as pilot:
            while app.feed_end is None or app.pump.inbox:
                await asyncio.sleep(0.05)  # not pilot.pause: on a busy machine it gives up waiting
            screen = app.screen
            assert isinstance(screen, MainScreen)
            for name, view in VIEWS:
                screen.view = view
                grid = screen.query_one(LossGrid)
                for _ in range(600):  # until the plots are laid out (a busy machine takes a while)
                    await asyncio.sleep(0.05)
                    plots = list(grid.query(BrailleChart))
                    if plots and all(p.size.width > 0 for p in plots):
                        break
                for plot in plots:
                    plot.strips()  # the first build also fills the EMA and block summaries: not a frame's cost
                times, cpu_times, plotext_times = [], [], []
                for i in range(repeats):
                    grid._drawn.clear()  # as if every run had new data: nothing reused
                    t0, c0 = time.perf_counter(), time.process_time()
                    grid._draw()
                    for plot in plots:
                        plot.strips()  # the plot's build: what a repaint costs
                    times.append(1e3 * (time.perf_counter() - t0))
                    cpu_times.append(1e3 * (time.process_time() - c0))
                    if i < 5:
                        plotext_times.append(plotext_ms(plots))
                out[name] = dict(
                    plots=len(plots),
                    plot_size=f"{plots[0].size.width}x{plots[0].size.height}",
                    points_per_run=points,
                    median_ms=statistics.median(times),
                    max_ms=max(times),
                    cpu_median_ms=statistics.median(cpu_times),
                    cpu_best_ms=min(cpu_times),
                    plotext_median_ms=statistics.median(plotext_times),
                    plotext_best_ms=min(plotext_times),
                )
            await pilot.press("q")

    asyncio.run(run())
    return out


# ---------------------------------------------------------------- part 1b: the scaling screen

GRID_BATCHES = (8, 32, 128, 512, 2048, 8192)
GRID_LRS = tuple(0.01 * 2 ** (i / 2) for i in range(8))
GRID_SEEDS = 2
SCALING_SIZE, SCALING_TARGET_MS = (160, 48), 20.0


def grid_events() -> Iterator[dict[str, Any]]:
    """A finished 6 x 8 x 2 lr grid (96 runs): summaries whose steps to target follow
    S = S_min (1 + B_crit / B) at each batch size's best lr (square-root rule), more steps off it."""
    rng = np.random.default_rng(1)
    specs = [(b, lr, s) for b in GRID_BATCHES for lr in GRID_LRS for s in range(GRID_SEEDS)]
    rid = {spec: f"bs{spec[0]}-lr{spec[1]:.4g}-s{spec[2]}" for spec in specs}
    yield {
        "type": "sweep_started",
        "t": 0.0,
        "dataset": "bench",
        "device": "cpu",
        "runs": [
            {"run": rid[x], "batch_size": x[0], "lr": x[1], "split_chunks": 1, "seed": x[2]} for x in specs
        ],
        "config": {"sweep": {"epochs": 3, "target_accuracy": 0.9}},
    }
    for b, lr, seed in specs:
        run = rid[(b, lr, seed)]
        yield {
            "type": "run_started",
            "t": 0.0,
            "run": run,
            "batch_size": b,
            "lr": lr,
            "split_chunks": 1,
            "iters_per_epoch": max(1, 60000 // b),
            "epochs": 3,
            "seed": seed,
        }
        best = 0.01 * (b / 8) ** 0.5
        steps = 40 * (1 + 300 / b) * (1 + 1.5 * abs(np.log2(lr / best))) * (1 + 0.05 * rng.standard_normal())
        summary: dict[str, Any] = {
            "run": run,
            "batch_size": b,
            "lr": lr,
            "seed": seed,
            "status": "done",
            "best_test_acc": 0.93 - 0.01 * abs(np.log2(lr / best)),
            "b_simple": 300.0,
        }
        if steps < 3 * 60000 / b:
            hi = float(np.ceil(steps / 10) * 10)
            summary.update(
                iters_to_target=hi,
                iters_to_target_lo=hi - 10,
                samples_to_target=hi * b,
                samples_to_target_lo=(hi - 10) * b,
                time_to_target_s=hi * 0.001 * b**0.5,
                time_to_target_lo_s=(hi - 10) * 0.001 * b**0.5,
            )
        yield {"type": "run_finished", "t": 1.0, "run": run, "status": "done", "summary": summary}
    yield {"type": "sweep_finished", "t": 2.0, "status": "done"}


def scaling_frame_ms(repeats: int) -> dict[str, Any]:
    """The scaling screen at 160x48 on a 6 x 8 x 2 grid: CPU ms of the analysis (once per finished run)
    and of one frame (the matrix for every metric, the curve, samples and lr-rule charts built)."""
    from tui.render.matrix import matrix_text
    from tui.screens.scaling_screen import ScalingScreen
    from tui.state.arms import arms_of
    from tui.widgets.scaling_view import ScalingView

    app = make_app(feed_factory=lambda attempt: ListFeed(grid_events()), system=FixedSystem(SystemSnapshot()))
    out: dict[str, Any] = {}

    async def run() -> None:
        async with app.run_test(size=SCALING_SIZE) as pilot:
            while app.feed_end is None or app.pump.inbox:
                await asyncio.sleep(0.05)
            await pilot.press("c")
            for _ in range(600):
                await asyncio.sleep(0.05)
                if isinstance(app.screen, ScalingScreen):
                    plots = list(app.screen.query(BrailleChart))
                    if plots and all(p.size.width > 0 and p.chart is not None for p in plots):
                        break
            app.screen.query_one(ScalingView)
            analysis, frames = [], []
            for _ in range(repeats):
                c0 = time.process_time()
                arms = arms_of(app.state)
                analysis.append(1e3 * (time.process_time() - c0))
                c0 = time.process_time()
                for metric in ("time", "steps", "accuracy", "loss", "status"):
                    for arm in arms.values():
                        matrix_text(arm, metric, SCALING_SIZE[0] - 4)
                for plot in plots:
                    plot.show(plot.factory)  # the chart rebuilt from the analysis, as a new frame does
                    plot.strips()
                frames.append(1e3 * (time.process_time() - c0))
            cells = sum(len(arm.matrix("time").cells) for arm in arms.values())
            out.update(
                runs=len(app.state.runs),
                cells=cells,
                plots=len(plots),
                plot_size=f"{plots[0].size.width}x{plots[0].size.height}",
                analysis_best_ms=min(analysis),
                analysis_median_ms=statistics.median(analysis),
                frame_best_ms=min(frames),
                frame_median_ms=statistics.median(frames),
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
    subprocess.run(
        cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=args.timeout
    )
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
                print(
                    f"  {mode:8} rep {rep + 1}: {time.perf_counter() - t0:6.1f} s  "
                    + "  ".join(f"bs{b} {v:,.1f} it/s" for b, v in sorted(result.items())),
                    flush=True,
                )
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
    p.add_argument(
        "--only",
        default=None,
        metavar="WxH",
        help="frame part: only the case of this terminal size (and the scaling screen); "
        "'scaling': the scaling screen alone",
    )
    args = p.parse_args(argv)
    args.repeats = 1 if args.quick else 2
    args.batch_sizes = [60, 600] if args.quick else [6, 60, 600]
    args.epochs = 2 if args.quick else 3
    args.train_samples = 3000 if args.quick else 12000
    args.test_samples = 500 if args.quick else 2000
    args.timeout = 900
    report: dict[str, Any] = {"machine": platform.node(), "python": sys.version.split()[0]}

    if not args.skip_frame:
        print(
            f"1. one frame of the loss grid, {args.points:,} losses per run, beside plotext on the same points\n"
            "   (CPU ms of this process, best and median of the repeats: on a shared VM, wall time and even\n"
            "   CPU time count other processes and steal; the best frame is the least disturbed one)"
        )
        costs = (
            state_costs(args.points)
            if args.only != "scaling"
            else {"events": 0, "apply_s": 0.0, "ema_first_s": 0.0, "index_first_s": 0.0}
        )
        if args.only != "scaling":
            print(
                f"  one-off: {costs['events']:,} events -> state {costs['apply_s']:.2f} s, first EMA pass "
                f"{costs['ema_first_s']:.2f} s, first block summaries {costs['index_first_s']:.2f} s (5 runs)"
            )
        report["state"] = costs
        frames = {}
        for size, n_runs, target in FRAME_CASES:
            if args.only and args.only != f"{size[0]}x{size[1]}" or args.only == "scaling":
                continue
            for name, r in frame_ms(
                size, n_runs, repeats=9 if args.quick else 25, points=args.points
            ).items():
                key = f"{size[0]}x{size[1]} {n_runs} runs {name}"
                frames[key] = r
                verdict = "ok" if r["cpu_best_ms"] < target else f"OVER {target:.0f} ms"
                print(
                    f"  {key:28} {r['plots']:>2} plot(s) of {r['plot_size']:>6}: best {r['cpu_best_ms']:6.1f} ms, "
                    f"median {r['cpu_median_ms']:6.1f} (wall {r['median_ms']:6.1f})  plotext best "
                    f"{r['plotext_best_ms']:7.1f} ms ({r['plotext_best_ms'] / max(1e-3, r['cpu_best_ms']):4.1f}x)"
                    f"  [{verdict}]",
                    flush=True,
                )
        report["frame"] = frames

        r = scaling_frame_ms(repeats=5 if args.quick else 15)
        verdict = "ok" if r["frame_best_ms"] < SCALING_TARGET_MS else f"OVER {SCALING_TARGET_MS:.0f} ms"
        print(
            f"1b. the scaling screen at {SCALING_SIZE[0]}x{SCALING_SIZE[1]}, a {len(GRID_BATCHES)} x {len(GRID_LRS)} x "
            f"{GRID_SEEDS} grid ({r['runs']} runs, {r['cells']} cells): one frame (the matrix in all 5 metrics, "
            f"{r['plots']} charts of {r['plot_size']}) best {r['frame_best_ms']:.1f} ms, median "
            f"{r['frame_median_ms']:.1f} ms [{verdict}]; the analysis behind it (once per finished run: "
            f"B_crit and lr-rule draws) best {r['analysis_best_ms']:.0f} ms, median {r['analysis_median_ms']:.0f} ms"
        )
        report["scaling"] = r

    if not args.skip_trainer:
        print(
            f"2. trainer iterations/s, app attached vs headless, device {device_label(args.device)} "
            f"(target attached >= {ATTACHED_TARGET:.0%} of headless)"
        )
        result = attached_vs_headless(args)
        table = result["per_batch_size"]
        for b, r in table.items():
            verdict = "ok" if r["ratio"] >= ATTACHED_TARGET else "BELOW TARGET"
            print(
                f"  bs {b:>5}: headless {r['headless_it_s']:9,.1f} it/s  attached {r['attached_it_s']:9,.1f} it/s  "
                f"attached/headless {r['ratio']:.3f}  [{verdict}]"
            )
        print(f"  the app itself used {result['app_cpu_fraction']:.0%} of one core while the sweep ran")
        report["attached_vs_headless"] = {"device": device_label(args.device), **result}

    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
