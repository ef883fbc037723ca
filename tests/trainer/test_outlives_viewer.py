"""The trainer outlives its viewer: the app's trainer, left by `d` or orphaned by a crash
or an SSH drop, drops its live feed and trains on headless into its run directory, with nothing
retrained: every run's per-iteration losses continue with no gap and no duplicate, as many as an
uninterrupted sweep's, and its output moves into the run directory's trainer.log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

import pytest

from tests.trainer.test_signals import ROOT, events_of, trainer_cmd
from tests.waiting import HANG_GUARD_S, wait_gone, wait_until
from trainer.runlog import LOCK, SUMMARY, TRAINER_LOG
from tui.feeds.bridge import TrainerBridge
from tui.feeds.live import LiveFeed

pytestmark = pytest.mark.subprocess

CONFIG = str(ROOT / "experiments.toml")


def overrides(data_root: Path) -> list[str]:
    return [
        'data.dataset="synthetic-digits"',
        f'data.root="{data_root}"',
        "data.train_samples=3000",
        "data.test_samples=300",
        "sweep.batch_sizes=[30,300]",
        "sweep.epochs=3",
        'sweep.device="cpu"',
        "sweep.seed=7",
    ]


def loss_iterations(out: Path) -> dict[str, list[int]]:
    """Each run's recorded iterations, in file order (from its losses blocks)."""
    seen: dict[str, list[int]] = defaultdict(list)
    for e in events_of(out):
        if e["type"] == "losses":
            seen[e["run"]] += range(e["first_iter"], e["first_iter"] + len(e["values"]))
    return dict(seen)


def uninterrupted(data_root: Path, out: Path) -> dict[str, list[int]]:
    sets = [x for o in overrides(data_root) for x in ("--set", o)]
    done = subprocess.run(
        trainer_cmd("run", CONFIG, *sets, "--out", str(out), "--quiet"),
        cwd=out.parent,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )
    assert done.returncode == 0, done.stderr
    return loss_iterations(out)


@pytest.fixture(scope="module")
def reference(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[int]]:
    """The same sweep, never left by a viewer: each run's recorded iterations."""
    return uninterrupted(data_root, tmp_path_factory.mktemp("uninterrupted") / "run")


def assert_complete_and_continuous(out: Path, reference: dict[str, list[int]]) -> None:
    events = events_of(out)
    assert events[-1]["type"] == "sweep_finished" and events[-1]["status"] == "done"
    assert all(e["status"] == "done" for e in events if e["type"] == "run_finished")
    iters = loss_iterations(out)
    assert iters.keys() == reference.keys()
    for run, seen in iters.items():
        assert seen == list(range(len(seen))), f"{run}: a gap or a duplicate in its losses"
        assert len(seen) == len(reference[run]), (
            f"{run}: {len(seen)} iterations, uninterrupted {len(reference[run])}"
        )
    assert (out / SUMMARY).is_file() and not os.path.lexists(out / LOCK)
    log = (out / TRAINER_LOG).read_text()
    assert "the viewer left" in log and "Traceback" not in log


def test_d_leaves_the_apps_trainer_training_with_nothing_retrained(data_root, tmp_path, reference):
    out = tmp_path / "left"
    bridge = TrainerBridge(CONFIG, overrides(data_root), str(out))
    feed = LiveFeed(bridge)
    feed.start()
    try:
        wait_until(
            lambda: any(e.get("type") == "losses" for e in feed.read(0.1)),
            "the trainer's first losses",
            interval=0,
            proc=bridge.process,
        )
        pid, temp_log = bridge.process.pid, bridge.log_path
        feed.leave()  # what `d` does
        feed.close()  # and what the app's exit does afterwards: nothing more
        wait_gone(pid, f"the trainer {pid}, left training, to finish its sweep")
    finally:
        if bridge.is_alive():
            bridge.process.kill()
    assert_complete_and_continuous(out, reference)
    assert not os.path.exists(temp_log)  # the app's temporary log moved into the run directory


def test_an_app_that_dies_leaves_its_trainer_training(data_root, tmp_path, reference):
    """A crash or an SSH drop: the app process is killed outright; its trainer notices and trains on."""
    out = tmp_path / "orphaned"
    app = textwrap.dedent(f"""
        import os, signal, sys, time
        from tui.feeds.bridge import TrainerBridge
        from tui.feeds.live import LiveFeed
        feed = LiveFeed(TrainerBridge({CONFIG!r}, {overrides(data_root)!r}, {str(out)!r}))
        feed.start()
        while not any(e.get("type") == "losses" for e in feed.read(0.1)):
            pass
        print(feed.bridge.process.pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run(
        [sys.executable, "-c", app],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    pid = int(proc.stdout.split()[0])
    wait_gone(pid, f"the orphaned trainer {pid} to finish its sweep")
    assert_complete_and_continuous(out, reference)
