"""Benchmark: how long `q` takes to give the terminal back, and to stop the sweep cleanly.

The real `bstui` runs in a real terminal (tmux, 110x30) on a CPU sweep of batch 6000 (one step takes
seconds on a CPU core). Once the run has started and is inside a step (0.3-1.5 s later, varied), `q`
is sent; the clock starts at the send. It stops twice: when the app process is gone (the terminal
is the user's again; target < 1 s) and when the trainer has exited after its clean stop: runs
`stopped`, sweep_finished, summary.csv written and trainer.lock released, all checked (target < 2 s).
Processes are polled every 5 ms: each time is good to about +-5 ms (plus tmux's key delivery).

    python bench/stop.py [--repeats 5] [--batch 6000]

Prints figures (median and range over the repeats, the machine named); not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POLL_S = 0.005


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def tmux(socket: str, *args: str) -> str:
    return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=30).stdout


def wait(condition, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench/stop.py: {what} did not happen within {timeout:.0f} s")
        time.sleep(POLL_S)


def read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def one_stop(work: Path, batch: int, seed: int) -> tuple[float, float]:
    """Seconds from q to the app's exit and to the trainer's exit after its clean stop."""
    run_dir, pidfile = work / f"run{seed}", work / f"app{seed}.pid"
    exe = Path(sys.executable).parent / "bstui"
    app = [str(exe)] if exe.exists() else [sys.executable, "-m", "tui"]
    sets = [
        'data.dataset="synthetic-digits"',
        f"data.train_samples={2 * batch}",
        "data.test_samples=500",
        f"sweep.batch_sizes=[{batch}]",
        "sweep.epochs=20",
        'sweep.device="cpu"',
    ]
    cmd = [
        *app,
        str(ROOT / "experiments.toml"),
        *[x for s in sets for x in ("--set", s)],
        "--out",
        str(run_dir),
    ]
    shell = (
        f"cd {shlex.quote(str(work))} && echo $$ > {shlex.quote(str(pidfile))} && "
        f"PYTHONPATH={shlex.quote(str(ROOT))} TERM=xterm-256color exec {' '.join(shlex.quote(c) for c in cmd)}"
    )
    socket = f"bstui-bench-stop-{os.getpid()}-{seed}"
    tmux(socket, "new-session", "-d", "-s", "app", "-x", "110", "-y", "30", f"bash -c {shlex.quote(shell)}")
    try:
        wait(lambda: '"type":"run_started"' in read(run_dir / "events.jsonl"), "the run's start", 300)
        app_pid = int(pidfile.read_text())
        trainer_pid = json.loads(read(run_dir / "trainer.lock"))["pid"]
        time.sleep(random.Random(seed).uniform(0.3, 1.5))  # somewhere inside a multi-second step
        t0 = time.perf_counter()
        tmux(socket, "send-keys", "-t", "app", "q")
        wait(lambda: not alive(app_pid), "the app's exit", 60)
        t_app = time.perf_counter() - t0
        wait(lambda: not alive(trainer_pid), "the trainer's exit", 60)
        t_trainer = time.perf_counter() - t0
    finally:
        tmux(socket, "kill-server")
    events = [json.loads(x) for x in read(run_dir / "events.jsonl").splitlines()]
    clean = (
        events[-1]["type"] == "sweep_finished"
        and events[-1]["status"] == "stopped"
        and all(e["status"] == "stopped" for e in events if e["type"] == "run_finished")
        and (run_dir / "summary.csv").is_file()
        and not (run_dir / "trainer.lock").exists()
    )
    if not clean:
        raise SystemExit(f"bench/stop.py: the stop was not clean: see {run_dir}")
    return t_app, t_trainer


def cpu_name() -> str:
    for line in read(Path("/proc/cpuinfo")).splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=6000)
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        raise SystemExit("bench/stop.py needs tmux (apt install tmux)")
    work = Path(tempfile.mkdtemp(prefix="bstui-bench-stop-"))
    print(
        f"device: CPU ({cpu_name()}, {os.cpu_count()} cores), sweep: batch {args.batch} on synthetic-digits; "
        f"times from q, polled every {POLL_S * 1000:.0f} ms"
    )
    apps, trainers = [], []
    for i in range(args.repeats):
        t_app, t_trainer = one_stop(work, args.batch, i)
        apps.append(t_app)
        trainers.append(t_trainer)
        print(
            f"  repeat {i + 1}: app gone {t_app:.2f} s, trainer stopped cleanly {t_trainer:.2f} s", flush=True
        )
    for name, values, target in (("q -> app exit", apps, 1.0), ("q -> trainer clean exit", trainers, 2.0)):
        med = statistics.median(values)
        verdict = "met" if med < target else "MISSED"
        print(
            f"{name:24s} median {med:.2f} s (range {min(values):.2f}-{max(values):.2f} s, n={len(values)}); "
            f"target < {target:.0f} s: {verdict}"
        )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
