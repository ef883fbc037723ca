"""Benchmark: how long a plain `bstui` takes to put the first loss point on screen.

The real app (Textual's headless driver, 160x48) starts the real trainer subprocess on the
shipped experiments.toml (or --config), exactly as `bstui` does; the clock starts when the
app is created. For each repeat it prints when each start-up stage first reached the screen
("loading torch", "generating synthetic-digits 40%", ...), when the sweep started, and when
the first loss point was drawn. Target: first loss point < 5 s when the dataset is cached.

The first repeat may generate or read the dataset cold; the median is over the later ones
(the dataset then sits in the data root's cache, as on any second start).

    python bench/startup.py [--repeats 4] [--config experiments.toml] [--json PATH]

Prints figures; not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from tui.assemble import make_app  # noqa: E402
from tui.widgets.chart import BrailleChart  # noqa: E402


def one_start(config: str, out: Path, timeout_s: float) -> dict[str, Any]:
    """Seconds from app creation to each stage, the sweep's start and the first drawn loss."""
    t0 = time.perf_counter()
    app = make_app(config_path=config, out_dir=str(out))
    stages: dict[str, float] = {}
    marks: dict[str, float] = {}

    def drawn_loss() -> bool:
        return any(r.losses for r in app.state.runs.values()) and any(
            p.chart is not None for p in app.screen.query(BrailleChart)
        )

    async def run() -> None:
        async with app.run_test(size=(160, 48)) as pilot:
            deadline = t0 + timeout_s
            while time.perf_counter() < deadline:
                now = time.perf_counter() - t0
                stage = app.state.stage
                if stage:
                    stages.setdefault(stage.split(" (")[0].rstrip("%0123456789 "), now)
                if app.state.started:
                    marks.setdefault("sweep_started", now)
                if drawn_loss():
                    marks["first_loss_drawn"] = now
                    break
                if app.feed_end is not None:
                    raise SystemExit(f"the trainer ended before a loss was drawn: {app.feed_end}")
                await pilot.pause(0.02)
            await pilot.press("q")

    asyncio.run(run())
    if "first_loss_drawn" not in marks:
        raise SystemExit(f"no loss drawn within {timeout_s:.0f} s")
    return {"stages": stages, **marks}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "experiments.toml"))
    p.add_argument("--repeats", type=int, default=4, help="starts; the first may be cold (default 4)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per start before giving up")
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args(argv)
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    )
    print(f"bstui start-up to the first drawn loss: {args.config} on this machine ({machine})")
    print("(device as the config says: the shipped default is auto, i.e. CUDA when there is one)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bstui-bench-startup-") as tmp:
        for rep in range(args.repeats):
            row = one_start(args.config, Path(tmp) / f"run-{rep}", args.timeout)
            rows.append(row)
            stages = "  ".join(f"{name} @{t:.1f}s" for name, t in row["stages"].items())
            print(
                f"  start {rep + 1}: sweep started @{row.get('sweep_started', float('nan')):.1f} s, "
                f"first loss drawn @{row['first_loss_drawn']:.1f} s   [{stages}]",
                flush=True,
            )
    warm = [r["first_loss_drawn"] for r in rows[1:]] or [rows[0]["first_loss_drawn"]]
    median = statistics.median(warm)
    print(
        f"first loss drawn, median of {len(warm)} warm starts: {median:.1f} s "
        f"(range {min(warm):.1f}-{max(warm):.1f} s; cold first start {rows[0]['first_loss_drawn']:.1f} s); "
        f"target < 5 s: {'met' if median < 5 else 'MISSED'}"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"machine": machine, "config": args.config, "starts": rows, "warm_median_s": median}, indent=2
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
