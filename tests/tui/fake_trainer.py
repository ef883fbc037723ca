"""Stand-in trainer entry points for the bridge tests: no torch, start in a blink.

Each has run_child's signature (config_path, overrides, out_dir, event_queue,
control_queue); out_dir is a scratch directory where they leave pids to check.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

RUNS = [{"run": "bs6", "batch_size": 6, "lr": 0.02, "split_chunks": 1}]


def _flush(event_queue: Any) -> None:
    """Wait until every event put so far has reached the app (a process that dies at once would lose
    what the queue's feeder thread had not yet written)."""
    event_queue.close()
    event_queue.join_thread()


def _start(event_queue: Any) -> None:
    event_queue.put({"type": "sweep_started", "t": 0.0, "dataset": "fake", "device": "cpu", "runs": RUNS})
    event_queue.put(
        {
            "type": "run_started",
            "t": 0.1,
            "run": "bs6",
            "batch_size": 6,
            "lr": 0.02,
            "split_chunks": 1,
            "iters_per_epoch": 10,
        }
    )
    event_queue.put({"type": "losses", "t": 0.2, "run": "bs6", "first_iter": 0, "values": [2.3, 2.2]})


def hang_with_a_worker(config_path, overrides, out_dir, event_queue, control_queue) -> None:
    """A stuck trainer with a worker process (a DataLoader worker, say) that ignores stop."""
    _start(event_queue)
    # The worker's sleep bounds its life should a test fail to end it; the tests kill it long before.
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    Path(out_dir, "pids").write_text(f"{os.getpid()} {worker.pid}")
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # even SIGTERM does not end it
    while True:
        signal.pause()  # until SIGKILL


def obey_stop(config_path, overrides, out_dir, event_queue, control_queue) -> None:
    """Answers controls like the real trainer: split -> mode_changed, stop -> sweep_finished."""
    _start(event_queue)
    while True:
        msg = control_queue.get()
        if msg.get("cmd") == "split":
            event_queue.put(
                {
                    "type": "mode_changed",
                    "t": 1.0,
                    "run": "bs6",
                    "iter": 2,
                    "split_chunks": msg["chunks"] if msg["enabled"] else 1,
                }
            )
        if msg.get("cmd") == "stop":
            event_queue.put(
                {"type": "run_finished", "t": 1.1, "run": "bs6", "status": "stopped", "reason": ""}
            )
            event_queue.put({"type": "sweep_finished", "t": 1.2, "status": "stopped"})
            return


def crash(config_path, overrides, out_dir, event_queue, control_queue) -> None:
    """A bug in the trainer: a traceback (to the log) and exit code 1."""
    _start(event_queue)
    _flush(event_queue)
    raise RuntimeError("boom: the trainer hit a bug")


def killed(config_path, overrides, out_dir, event_queue, control_queue) -> None:
    """Killed from outside (kill -9, the OOM killer)."""
    _start(event_queue)
    _flush(event_queue)
    os.kill(os.getpid(), signal.SIGKILL)
