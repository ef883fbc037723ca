"""End to end in a real terminal: bstui on a tiny synthetic-digits sweep inside tmux.

Watch the table fill, press `s` and find the switch recorded in events.jsonl, press
`q`, and check that no process of the app's tree is left. Needs tmux (skipped
without it, except in CI where it must be there) and the trainer (torch).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.waiting import alive, wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TMUX = shutil.which("tmux")
if TMUX is None:
    if os.environ.get("CI"):
        pytest.fail("tmux is required for the end-to-end test in CI (apt-get install tmux)", pytrace=False)
    pytest.skip(
        "tmux is not installed (the end-to-end test drives bstui inside tmux)", allow_module_level=True
    )

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
    "sweep.epochs=2",
]
# Training a row takes seconds on an idle CPU; a shared CI box may be much slower.
TIMEOUT_S = 240


class Tmux:
    """A private tmux server (its own socket) holding one session."""

    def __init__(self, name: str) -> None:
        self.socket = name

    def __call__(self, *args: str) -> str:
        out = subprocess.run([TMUX, "-L", self.socket, *args], capture_output=True, text=True, timeout=30)
        return out.stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "app")

    def wait_screen(self, pattern: str, timeout: float = TIMEOUT_S) -> str:
        """The screen, once it matches `pattern`."""
        last = ""

        def matched() -> str | None:
            nonlocal last
            last = self.screen()
            return last if re.search(pattern, last, re.MULTILINE) else None

        return wait_until(
            matched, lambda: f"the screen to match {pattern!r}; last screen:\n{last}", timeout, interval=0.2
        )


def children_of(pid: int) -> list[int]:
    """Every descendant of pid, read from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def wait_file(path: Path, needle: str, timeout: float = TIMEOUT_S) -> str:
    """The text of `path`, once it holds `needle`."""

    def holds() -> str | None:
        text = path.read_text() if path.exists() else ""
        return text if needle in text else None

    return wait_until(holds, f"{needle!r} in {path}", timeout, interval=0.2)


def mode_changes(run_dir: Path, runs: set[str]) -> list[dict]:
    """The mode_changed events of the run directory, once each of `runs` has one or has finished
    (a run that finished before the switch reached it has none)."""

    def settled() -> list[dict] | None:
        try:
            events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
        except json.JSONDecodeError:  # a line being written: look again
            return None
        changed = [e for e in events if e["type"] == "mode_changed"]
        finished = {e["run"] for e in events if e["type"] == "run_finished"}
        return changed if {e["run"] for e in changed} | finished >= runs else None

    return wait_until(settled, f"each of {sorted(runs)} to switch or finish", TIMEOUT_S, interval=0.2)


def test_bstui_live_in_tmux_split_then_quit_leaves_nothing(tmp_path):
    run_dir = tmp_path / "run"
    exe = Path(sys.executable).parent / "bstui"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "tui"]
    line = " ".join(shlex.quote(a) for a in [*cmd, *SWEEP, "--out", str(run_dir)])
    shell = f"cd {shlex.quote(str(tmp_path))} && TERM=xterm-256color {line}; echo BSTUI-EXIT=$?; sleep 120"
    tmux = Tmux(f"bstui-e2e-{os.getpid()}")
    env_path = f"PYTHONPATH={shlex.quote(str(ROOT))}"
    tmux(
        "new-session", "-d", "-s", "app", "-x", "100", "-y", "30", f"{env_path} bash -c {shlex.quote(shell)}"
    )
    try:
        pane_pid = int(tmux("display", "-p", "-t", "app", "#{pane_pid}").strip())
        # The table fills: both rows running with a loss value.
        tmux.wait_screen(r"^\s+bs 50\s+0\.02\s+running\s+\d+%\s+\S+\s+\d")
        tmux.wait_screen(r"^\s+bs 500\s+0\.02\s+running\s+\d+%\s+\S+\s+\d")
        screen = tmux.wait_screen(r"[⠁-⣿]")  # plotted points (a capture is one moment of a live screen)
        # The header names the run directory after the sweep's progress (the config file after it); a long
        # path is cut with "…" at the header's width, so its start is what is sure to show.
        assert "synthetic-digits" in screen and re.search(r"· /tmp/\S*", screen.splitlines()[0])

        tmux("send-keys", "-t", "app", "s")
        wait_file(run_dir / "events.jsonl", '"mode_changed"')
        changed = mode_changes(run_dir, {"bs50", "bs500"})
        assert changed and {e["run"] for e in changed} <= {"bs50", "bs500"}
        for e in changed:  # each run switches at its next iteration, or says why it cannot
            if e["run"] == "bs500":
                assert e["split_chunks"] == 4  # 4 divides 500
            else:
                assert e["split_chunks"] == 1 and "do not divide" in e["reason"]  # 4 does not divide 50

        tree = children_of(pane_pid)
        assert len(tree) >= 2, f"expected the app and its trainer under the pane, got {tree}"
        tmux("send-keys", "-t", "app", "q")
        tmux.wait_screen(r"BSTUI-EXIT=0", timeout=30)
        # The shell's `sleep` came later: not in `tree`.
        wait_until(
            lambda: not any(alive(p) for p in tree),
            lambda: f"the app's tree to end after quit (alive: {[p for p in tree if alive(p)]})",
            timeout=30,
        )
        # q stopped the sweep cleanly: runs stopped, the sweep's end, summary.csv, no lock.
        events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
        assert events[-1]["type"] == "sweep_finished" and events[-1]["status"] == "stopped"
        assert {e["status"] for e in events if e["type"] == "run_finished"} <= {"stopped", "done"}
        assert (run_dir / "summary.csv").is_file() and not (run_dir / "trainer.lock").exists()
        # The run directory stays valid: whole JSON lines and its config.
        lines = (run_dir / "events.jsonl").read_text().splitlines()
        assert all(isinstance(json.loads(x), dict) for x in lines)
        assert (run_dir / "config.toml").exists()
    finally:
        tmux("kill-server")
