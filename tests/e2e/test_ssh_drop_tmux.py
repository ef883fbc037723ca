"""The SSH story end to end in real terminals: a plain `bstui` live sweep in tmux, then the
terminal goes away (the tmux server is killed: SIGHUP to the app, as an SSH drop does). The trainer
keeps writing its run directory; `bstui --attach` shows it live; p records `paused`, s records
`mode_changed`; q stops it cleanly (runs stopped, sweep_finished, summary.csv, no lock).
Needs tmux (skipped without it, except in CI where it must be there) and the trainer (torch).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal

import pytest

from tests.e2e.test_detach_tmux import SWEEP, TIMEOUT_S, command
from tests.e2e.test_tmux import ROOT, Tmux, children_of
from tests.waiting import alive, wait_until

pytestmark = pytest.mark.e2e


def events(run_dir) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines() if x.endswith("}")]


def test_an_ssh_drop_leaves_the_sweep_training_and_attach_controls_and_stops_it(tmp_path):
    run_dir = tmp_path / "run"
    env = f"PYTHONPATH={shlex.quote(str(ROOT))} TERM=xterm-256color"
    tmux = Tmux(f"bstui-drop-{os.getpid()}")
    shell = f"cd {shlex.quote(str(tmp_path))} && {env} {command(*SWEEP, '--out', str(run_dir))}; sleep 120"
    tmux("new-session", "-d", "-s", "app", "-x", "110", "-y", "30", f"bash -c {shlex.quote(shell)}")
    trainer = 0
    try:
        pane = int(tmux("display", "-p", "-t", "app", "#{pane_pid}").strip())
        tmux.wait_screen(r"^\s+bs 50\s+0\.02\s+running", timeout=TIMEOUT_S)
        trainer = json.loads((run_dir / "trainer.lock").read_text())["pid"]
        app = [p for p in children_of(pane) if p != trainer and trainer in children_of(p)]
        assert app, "the app is not the trainer's parent under the pane"

        tmux("kill-server")  # the terminal is gone: SIGHUP to the pane's shell and the app
        wait_until(lambda: not alive(app[0]), "the app ending with its terminal", timeout=30)
        assert alive(trainer), "the trainer died with its terminal"
        size = (run_dir / "events.jsonl").stat().st_size
        wait_until(
            lambda: (run_dir / "events.jsonl").stat().st_size > size, "the trainer writing on", TIMEOUT_S
        )
        assert "the viewer left" in (run_dir / "trainer.log").read_text()

        attach = Tmux(f"bstui-reattach-{os.getpid()}")
        shell2 = f"{env} {command('--attach', str(run_dir))}; echo ATTACH-EXIT=$?; sleep 120"
        attach("new-session", "-d", "-s", "app", "-x", "110", "-y", "30", f"bash -c {shlex.quote(shell2)}")
        try:
            attach.wait_screen(rf"attached · trainer pid {trainer}", timeout=60)
            attach("send-keys", "-t", "app", "p")
            wait_until(
                lambda: any(e["type"] == "paused" and e["paused"] for e in events(run_dir)), "paused recorded"
            )
            attach("send-keys", "-t", "app", "p")
            wait_until(
                lambda: any(e["type"] == "paused" and not e["paused"] for e in events(run_dir)),
                "resumed recorded",
            )
            attach("send-keys", "-t", "app", "s")
            wait_until(
                lambda: any(e["type"] == "mode_changed" for e in events(run_dir)), "mode_changed recorded"
            )
            attach("send-keys", "-t", "app", "q")
            screen = attach.wait_screen(r"ATTACH-EXIT=0", timeout=30)
            said = re.sub(r"\s+", "", screen)  # the words wrap at the pane's width
            # "stopping the sweep" while the trainer still ends it; once its lock is gone (a quick stop
            # wins the race with the viewer's exit) the words say nobody writes the run now.
            assert "stoppingthesweep" in said or "notraineriswriting" in said, screen
            wait_until(lambda: not alive(trainer), "the trainer's clean stop", timeout=60)
        finally:
            attach("kill-server")
        done = events(run_dir)
        assert done[-1]["type"] == "sweep_finished" and done[-1]["status"] == "stopped"
        stopped = [e for e in done if e["type"] == "run_finished" and e["status"] == "stopped"]
        assert stopped and all("from a viewer" in e["reason"] for e in stopped)
        assert (run_dir / "summary.csv").is_file() and not (run_dir / "trainer.lock").exists()
    finally:
        tmux("kill-server")
        if trainer and alive(trainer):
            os.killpg(trainer, signal.SIGKILL)
