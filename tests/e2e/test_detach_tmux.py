"""End to end in a real terminal: `bstui --detach` on a tiny synthetic-digits sweep in
tmux, leave the viewer with d, find the trainer still alive and writing, `bstui --attach DIR`
shows it live, then kill -9 the trainer and the attached app says its lock is stale.
Needs tmux (skipped without it, except in CI where it must be there) and the trainer (torch).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import sys
from pathlib import Path

import pytest

from tests.e2e.test_tmux import ROOT, Tmux
from tests.waiting import alive, wait_until

pytestmark = pytest.mark.e2e

SWEEP = [
    "--set",
    'data.dataset="synthetic-digits"',
    "--set",
    "data.train_samples=2000",
    "--set",
    "data.test_samples=500",
    "--set",
    "sweep.batch_sizes=[50,500]",
    "--set",
    "sweep.epochs=50",  # far more than the test waits for: the trainer is still running at the end
]
TIMEOUT_S = 120  # the trainer's start (torch import, data) on a loaded shared CPU


def command(*args: str) -> str:
    exe = Path(sys.executable).parent / "bstui"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "tui"]
    return " ".join(shlex.quote(a) for a in [*cmd, *args])


def test_detach_quit_attach_then_a_killed_trainer_shows_as_stale(tmp_path):
    run_dir = tmp_path / "run"
    env = f"PYTHONPATH={shlex.quote(str(ROOT))} TERM=xterm-256color"
    tmux = Tmux(f"bstui-detach-{os.getpid()}")
    pid = 0
    shell = (
        f"cd {shlex.quote(str(tmp_path))} && {env} {command('--detach', *SWEEP, '--out', str(run_dir))}; "
        "echo BSTUI-EXIT=$?; sleep 120"
    )
    tmux("new-session", "-d", "-s", "app", "-x", "110", "-y", "30", f"bash -c {shlex.quote(shell)}")
    try:
        screen = tmux.wait_screen(r"attached · trainer pid \d+", timeout=TIMEOUT_S)
        pid = int(re.search(r"trainer pid (\d+)", screen).group(1))
        assert json.loads((run_dir / "trainer.lock").read_text())["pid"] == pid
        tmux.wait_screen(r"^\s+bs 50\s+0\.02\s+running", timeout=TIMEOUT_S)

        tmux("send-keys", "-t", "app", "d")  # leave it training (q would stop the sweep)
        screen = tmux.wait_screen(r"BSTUI-EXIT=0", timeout=30)
        # the command as it runs from that shell: `bstui` where PATH finds this one, else its path
        assert re.search(
            rf"re-attach with: \S*bstui --attach {re.escape(str(run_dir))}", screen.replace("\n", "")
        )
        assert alive(pid), "the detached trainer died with the app"
        size = (run_dir / "events.jsonl").stat().st_size
        wait_until(
            lambda: (run_dir / "events.jsonl").stat().st_size > size, "the trainer writing on", TIMEOUT_S
        )

        attach = Tmux(f"bstui-attach-{os.getpid()}")
        shell2 = f"{env} {command('--attach', str(run_dir))}; echo ATTACH-EXIT=$?; sleep 120"
        attach("new-session", "-d", "-s", "app", "-x", "110", "-y", "30", f"bash -c {shlex.quote(shell2)}")
        try:
            attach.wait_screen(rf"attached · trainer pid {pid}", timeout=60)
            attach.wait_screen(r"^\s+bs 500\s+0\.02\s+running", timeout=60)
            os.kill(pid, signal.SIGKILL)  # the trainer this test started (its own session leader)
            attach.wait_screen(r"the trainer of this run is gone", timeout=30)

            # The status line is cut at the terminal's width; the toast (shown a moment later) wraps the
            # full message over the lines right of its left edge (▌), beside other widgets' text.
            def toast() -> str:
                text = "".join(line.split("▌", 1)[1] for line in attach.screen().splitlines() if "▌" in line)
                return re.sub(r"[^\w/.-]+", "", text)

            wait_until(
                lambda: re.search(r"resumewith\S*python\S*-mtrainerresume", toast()),
                "a toast with the resume command",
                timeout=30,
            )
            attach("send-keys", "-t", "app", "q")
            attach.wait_screen(r"ATTACH-EXIT=0", timeout=30)
        finally:
            attach("kill-server")
        lines = (run_dir / "events.jsonl").read_text().splitlines()
        assert all(isinstance(json.loads(x), dict) for x in lines)  # whole lines only, after kill -9
    finally:
        tmux("kill-server")
        if pid and alive(pid):
            os.killpg(pid, signal.SIGKILL)
