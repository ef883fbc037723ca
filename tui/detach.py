"""Sweeps that survive the terminal (issue 6): start a trainer detached, find a run to attach to.

`bstui --detach` starts `python -m trainer run ... --out DIR` in a session of its own
(`start_new_session`: no controlling terminal, so a dropped SSH connection's SIGHUP never
reaches it), stdin from /dev/null and its output in DIR/trainer.log; the app is then only a
viewer of DIR, and quitting it leaves the trainer running. `bstui --attach [DIR]` views a
run directory again; `trainer.runlog.lock_status` (pure Python: no torch here) says whether a
trainer still writes it. `d` in a live app stops its trainer and continues the sweep as a
detached `python -m trainer resume DIR` (the run directory of a stopped sweep resumes).
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.runlog import CONFIG, EVENTS, LOCK, TRAINER_LOG, lock_status, open_append
from tui.status import Severity, StatusLine

LOG_FILE = TRAINER_LOG


class AttachError(Exception):
    """No run directory to attach to (the message says what to pass instead)."""


@dataclass
class DetachedTrainer:
    """A trainer this app started in its own session; it outlives the app."""

    process: subprocess.Popen[bytes]
    run_dir: Path
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def exitcode(self) -> int | None:
        """None while it runs; reaps it (no zombie) once it has ended."""
        return self.process.poll()


def _project_env() -> dict[str, str]:
    """This environment, with the folder that holds the `trainer` package first on PYTHONPATH,
    so `python -m trainer` finds the same code as this app (also when run from a source tree)."""
    env = dict(os.environ)
    spec = importlib.util.find_spec("trainer")
    if spec is not None and spec.origin:
        root = str(Path(spec.origin).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def run_command(config_path: str | None, overrides: list[str], run_dir: Path) -> list[str]:
    """The headless trainer command for a fresh sweep into run_dir."""
    cmd = [sys.executable, "-m", "trainer", "run"]
    if config_path is not None:
        cmd.append(str(config_path))
    for override in overrides:
        cmd += ["--set", override]
    return cmd + ["--out", str(run_dir), "--quiet"]


def resume_command(run_dir: Path) -> list[str]:
    """The headless trainer command that continues the sweep recorded in run_dir."""
    return [sys.executable, "-m", "trainer", "resume", str(run_dir), "--quiet"]


def start_detached(cmd: list[str], run_dir: Path) -> DetachedTrainer:
    """Start cmd in a new session, writing run_dir/trainer.log; return at once.

    run_dir is created first (the log lives there); it holds no run until the trainer writes
    events.jsonl, so the trainer's own checks (lock, "already holds a run") still apply.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / LOG_FILE
    # Never through a symlink named trainer.log: the log stays inside the run directory.
    with open_append(log_path) as log, open(os.devnull, "rb") as devnull:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=devnull,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session and process group: no SIGHUP, no Ctrl-C from ours
            close_fds=True,
            env=_project_env(),
        )
    return DetachedTrainer(proc, run_dir, log_path)


def is_run_dir(path: Path) -> bool:
    """A directory a trainer wrote (or is about to write): events, config, lock or detached log."""
    return path.is_dir() and any((path / name).exists() for name in (EVENTS, CONFIG, LOCK, LOG_FILE))


def newest_run_dir(output_dir: str | os.PathLike[str]) -> Path:
    """For `bstui --attach` without DIR: the run directory under output_dir with a live trainer whose
    sweep started last, else the one whose sweep started last of all (started: the time of its
    config.toml, else events.jsonl, else whatever it holds first)."""
    root = Path(output_dir).expanduser()
    if not root.is_dir():
        raise AttachError(f"output.dir {str(root)!r} does not exist, so there is no run to attach to; "
                          "pass the run directory: bstui --attach DIR")
    best: tuple[bool, float, str] | None = None
    for child in root.iterdir():
        try:
            if not is_run_dir(child):
                continue
            marks = [child / name for name in (CONFIG, EVENTS, LOG_FILE, LOCK) if (child / name).exists()]
            started = marks[0].stat().st_mtime
        except OSError:
            continue
        live = (child / LOCK).exists() and lock_status(child)["state"] == "live"
        if best is None or (live, started, child.name) > best:
            best = (live, started, child.name)
    if best is None:
        raise AttachError(f"no run directory under {str(root)!r} (output.dir); start one with bstui --detach, "
                          "or pass the run directory: bstui --attach DIR")
    return root / best[2]


def trainer_state(run_dir: Path, detached: DetachedTrainer | None = None) -> dict[str, Any]:
    """lock_status of run_dir, with "starting" while a trainer we started has not taken the lock yet,
    and "exited" (with `exitcode`) once it ended without ever writing a run."""
    status = lock_status(run_dir)
    if status["state"] == "none" and detached is not None:
        code = detached.exitcode()
        if code is None:
            return {**status, "state": "starting", "pid": detached.pid}
        return {**status, "exitcode": code}
    return status


def describe(status: dict[str, Any], run_dir: Path | str, finished: bool) -> StatusLine | None:
    """The status line for a followed run directory, or None when there is nothing to add
    (a finished sweep says so itself)."""
    state = status.get("state")
    if finished and state != "live":
        return None
    resume = f"python -m trainer resume {run_dir}"
    if status.get("unreadable"):  # garbage, a FIFO, an absurd pid: say so rather than guess a pid
        return StatusLine(f"⚠ {_cut(str(status.get('reason')))}; once no trainer runs, resume with {resume}",
                          Severity.WARNING)
    if state == "live":
        return StatusLine(f"attached · trainer pid {status.get('pid', '?')} is writing this run · p/s/+/- control it · "
                          "q/d leaves it running", Severity.INFO)
    if state == "starting":
        return StatusLine(f"detached trainer pid {status.get('pid', '?')} is starting… "
                          f"(its log: {Path(run_dir) / LOG_FILE})", Severity.MUTED)
    if state == "stale":
        return StatusLine(f"✖ the trainer of this run is gone; resume with {resume}", Severity.ERROR)
    return StatusLine(f"no trainer is writing this run and the sweep has not finished; resume with {resume}",
                      Severity.WARNING)


def _cut(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def reattach_hint(run_dir: Path | str, status: dict[str, Any]) -> str:
    """What to print when the viewer closes: how to come back, or what became of the sweep."""
    state = status.get("state")
    if status.get("unreadable"):
        return (f"bstui: {status.get('reason')}\n"
                f"  show the run with: bstui --replay {run_dir}; once no trainer runs, continue it with: "
                f"python -m trainer resume {run_dir}")
    if state in ("live", "starting"):
        return (f"bstui: the trainer (pid {status.get('pid', '?')}) keeps running in {run_dir}\n"
                f"  re-attach with: bstui --attach {run_dir}\n"
                f"  its output: {Path(run_dir) / LOG_FILE}")
    if (Path(run_dir) / EVENTS).exists():
        return (f"bstui: no trainer is writing {run_dir} now; show it with: bstui --replay {run_dir}\n"
                f"  (an unfinished sweep continues with: python -m trainer resume {run_dir})")
    log = Path(run_dir) / LOG_FILE
    return f"bstui: the trainer wrote no events into {run_dir}" + (f"; see {log}" if log.exists() else "")
