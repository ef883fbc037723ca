"""Sweeps that survive the terminal: start a trainer detached, find a run to attach to.

`bstui --detach` starts `python -m trainer run ... --out DIR` in a session of its own
(`start_new_session`: no controlling terminal, so a dropped SSH connection's SIGHUP never
reaches it), stdin from /dev/null and its output in DIR/trainer.log; the app is then only a
viewer of DIR, and quitting it leaves the trainer running. `bstui --attach [DIR]` views a
run directory again; `trainer.runlog.lock_status` (pure Python: no torch here) says whether a
trainer still writes it. A plain `bstui`'s trainer outlives its app too (tui.feeds.bridge): `d` leaves
it training, `q` stops it cleanly, and `exit_hint` says which happened.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from trainer.runlog import CONFIG, EVENTS, LOCK, TRAINER_LOG, lock_status, open_append
from trainer.runlog.commands import app_command, trainer_command
from tui.state.status import Severity, StatusLine

LOG_FILE = TRAINER_LOG


class ExitAction(Enum):
    """What the viewer's exit did to the sweep (the words printed on exit follow it)."""

    NONE = "none"  # nothing asked (a finished or recorded sweep, or the app ended otherwise)
    STOPPED = "stopped"  # q: the app's trainer stopped cleanly before the app exited
    STOPPING = "stopping"  # q: a clean stop was asked; the trainer finishes its step, then ends the sweep
    REFUSED = "refused"  # q: the stop could not be sent (another user's run directory)
    LEFT = "left"  # d: the sweep trains on without a viewer


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
        raise AttachError(
            f"output.dir {str(root)!r} does not exist, so there is no run to attach to; "
            f"pass the run directory: {app_command('--attach')} DIR"
        )
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
        raise AttachError(
            f"no run directory under {str(root)!r} (output.dir); start one with "
            f"{app_command('--detach')}, or pass the run directory: {app_command('--attach')} DIR"
        )
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
    resume = trainer_command("resume", run_dir)
    if status.get("unreadable"):  # garbage, a FIFO, an absurd pid: say so rather than guess a pid
        return StatusLine(
            f"⚠ {_cut(str(status.get('reason')))}; once no trainer runs, resume with {resume}",
            Severity.WARNING,
        )
    if state == "live":
        return StatusLine(
            f"attached · trainer pid {status.get('pid', '?')} is writing this run · p/s/+/- control it · "
            "q stops it · d leaves it running",
            Severity.INFO,
        )
    if state == "starting":
        return StatusLine(
            f"detached trainer pid {status.get('pid', '?')} is starting… "
            f"(its log: {Path(run_dir) / LOG_FILE})",
            Severity.MUTED,
        )
    if state == "stale":
        return StatusLine(f"✖ the trainer of this run is gone; resume with {resume}", Severity.ERROR)
    return StatusLine(
        f"no trainer is writing this run and the sweep has not finished; resume with {resume}",
        Severity.WARNING,
    )


def _cut(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def exit_hint(
    run_dir: Path | str, status: dict[str, Any], action: ExitAction = ExitAction.NONE, finished: bool = False
) -> str:
    """What to print when the viewer closes, given what quitting did (`action`) and whether the sweep
    finished (then its report command); every command runs as printed (trainer.runlog.commands)."""
    if action is ExitAction.STOPPING and status.get("state") == "live":
        return (
            f"bstui: stopping the sweep in {run_dir}: the trainer (pid {status.get('pid', '?')}) ends it cleanly "
            "after its current step (runs stopped, summary.csv, lock released)\n"
            f"  watch it end: {app_command('--attach', run_dir)}\n"
            f"  continue it later: {trainer_command('resume', run_dir)}"
        )
    if action is ExitAction.REFUSED:
        return (
            f"bstui: the stop could not be sent to the trainer of {run_dir} (only its user can control it); "
            "it keeps running\n" + reattach_hint(run_dir, status)
        )
    return reattach_hint(run_dir, status, finished)


def reattach_hint(run_dir: Path | str, status: dict[str, Any], finished: bool = False) -> str:
    """What to print when the viewer closes: how to come back, or what became of the sweep."""
    state = status.get("state")
    if status.get("unreadable"):
        return (
            f"bstui: {status.get('reason')}\n"
            f"  show the run with: {app_command('--replay', run_dir)}; once no trainer runs, continue it with: "
            f"{trainer_command('resume', run_dir)}"
        )
    if state in ("live", "starting"):
        return (
            f"bstui: the trainer (pid {status.get('pid', '?')}) keeps running in {run_dir}\n"
            f"  re-attach with: {app_command('--attach', run_dir)}\n"
            f"  its output: {Path(run_dir) / LOG_FILE}"
        )
    if (Path(run_dir) / EVENTS).exists():
        words = (
            f"bstui: no trainer is writing {run_dir} now; show it with: {app_command('--replay', run_dir)}\n"
        )
        if finished:
            return words + f"  its report (report.md, plots): {trainer_command('report', run_dir)}"
        return words + f"  (an unfinished sweep continues with: {trainer_command('resume', run_dir)})"
    log = Path(run_dir) / LOG_FILE
    return f"bstui: the trainer wrote no events into {run_dir}" + (f"; see {log}" if log.exists() else "")
