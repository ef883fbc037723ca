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
import time
from pathlib import Path

import pytest

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
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.screen()
            if re.search(pattern, text, re.MULTILINE):
                return text
            time.sleep(0.5)
        raise AssertionError(f"screen never matched {pattern!r}; last screen:\n{text}")


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


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_file(path: Path, needle: str, timeout: float = TIMEOUT_S) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            text = path.read_text()
            if needle in text:
                return text
        time.sleep(0.5)
    raise AssertionError(f"{needle!r} never appeared in {path}")


def mode_changes(run_dir: Path, wait_for_runs: set[str], timeout: float) -> list[dict]:
    """mode_changed events of the run directory, waiting (bounded) until every run has one;
    a run that finished before the switch reached it has none, so this does not insist."""
    deadline = time.monotonic() + timeout
    while True:
        lines = (run_dir / "events.jsonl").read_text().splitlines()
        changed = [json.loads(x) for x in lines if '"mode_changed"' in x]
        if {e["run"] for e in changed} >= wait_for_runs or time.monotonic() > deadline:
            return changed
        if any('"sweep_finished"' in x for x in lines):
            return changed
        time.sleep(0.5)


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
        changed = mode_changes(run_dir, wait_for_runs={"bs50", "bs500"}, timeout=30)
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
        deadline = time.monotonic() + 5
        while any(alive(p) for p in tree) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [p for p in tree if alive(p)]  # the shell's `sleep` came later: not in `tree`
        assert not left, f"processes of the app's tree still alive after quit: {left}"
        # q stopped the sweep cleanly (issue 11): runs stopped, the sweep's end, summary.csv, no lock.
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
