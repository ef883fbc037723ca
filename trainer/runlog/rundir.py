"""The run directory itself: where it goes, taking it (lock, --force), and config.toml.

    <run dir>/config.toml    the resolved config (every key, defaults included)
    <run dir>/events.jsonl   one event per line (whole lines only), flushed at least each epoch
    <run dir>/summary.csv    one row per run, rewritten atomically as runs finish
    <run dir>/errors.log     tracebacks of runs that failed (only when one did)
    <run dir>/trainer.lock   while a trainer writes the directory: who (pid, host, start, command)
    <run dir>/checkpoints/   one <run id>.pt per run, rewritten at each epoch end (trainer.engine.checkpoint)
    <run dir>/report.md      written by `python -m trainer report`
    <run dir>/trainer.log    the output of a detached trainer (bstui --detach)

Nothing here ever leaves the directory: `--force` removes only the previous run's own files
inside it and never follows a symlink out (a link is removed, not what it points to), and a
checkpoints/ that is a link elsewhere is refused before anything trains.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from trainer.config import config_to_dict, to_toml
from trainer.runlog.commands import trainer_command
from trainer.runlog.contract import CHECKPOINTS, CONFIG, EVENTS, RUN_FILES, SUMMARY
from trainer.runlog.errors import RunDirError, RunDirLocked, not_writable
from trainer.runlog.files import create_temp, write_atomic
from trainer.runlog.lock import RunLock, lock_status, locked_message

if TYPE_CHECKING:
    from trainer.config import Config


def default_run_dir(cfg: Config, now: float | None = None) -> Path:
    """<output.dir>/<date>-<time>-<config name>, made unique with a suffix if needed."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    name = Path(cfg.source).stem if cfg.source else "defaults"
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name) or "run"
    base = Path(cfg.output.dir).expanduser() / f"{stamp}-{name}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def holds_run(path: Path | str) -> bool:
    """Whether a directory holds a run already (its events or summary; a dangling link counts)."""
    return any(os.path.lexists(Path(path) / name) for name in (EVENTS, SUMMARY))


def create_run_dir(path: Path | str, force: bool = False) -> Path:
    """Create (or, with force, reuse) a run directory; refuse one that already holds a run.

    Takes no lock: trainers use `open_run_dir`, which does this under the directory's lock.
    """
    path = _checked_dir(path)
    if holds_run(path) and not force:
        raise RunDirError(_holds_run_message(path))
    status = lock_status(path)
    if status["state"] == "live":
        raise RunDirLocked(locked_message(path, status))
    _probe_writable(path)
    if force:
        clear_run(path)
    check_layout(path, force_hint=True)
    return path


def open_run_dir(path: Path | str, force: bool = False, command: str | None = None) -> tuple[Path, RunLock]:
    """Create a run directory and take its lock, for a trainer about to write it.

    Refuses (RunDirLocked) while another trainer's lock is live, even with force; a stale lock
    (its trainer is gone) is replaced and reported in `lock.replaced`. Refuses a directory that
    already holds a run unless force, which then clears the old run's files (never the folder).
    """
    path = _checked_dir(path)
    lock = RunLock.acquire(path, command)
    try:
        if holds_run(path) and not force:
            raise RunDirError(_holds_run_message(path))
        if force:
            clear_run(path)
        check_layout(path, force_hint=True)
    except BaseException:
        lock.release()
        raise
    return path, lock


def check_layout(path: Path | str, force_hint: bool = False) -> None:
    """Refuse a run directory whose checkpoints/ is a symlink or a file: the trainer would write and
    delete checkpoints elsewhere. (Its files need no check: every write replaces a link, see files.py.)"""
    ckpt = Path(path) / CHECKPOINTS
    if ckpt.is_symlink():
        fix = (
            "pass --force (which removes the link, not what it points to) or choose another --out"
            if force_hint
            else "replace the link by a folder holding those checkpoints"
        )
        raise RunDirError(
            f"{ckpt} is a symbolic link to {os.readlink(ckpt)}; a run keeps its checkpoints inside "
            f"its run directory and never writes or deletes files elsewhere: {fix}"
        )
    if os.path.lexists(ckpt) and not ckpt.is_dir():
        raise RunDirError(f"{ckpt} is not a folder; remove it or choose another --out")


def _checked_dir(path: Path | str) -> Path:
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path} exists and is not a directory; choose another --out")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise not_writable(path, exc) from exc
    return path


def _probe_writable(path: Path) -> None:
    try:
        fd, tmp = create_temp(path / ".write-test")  # a fresh name, never through a link
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise not_writable(path, exc) from exc


def _holds_run_message(path: Path) -> str:
    return (
        f"{path} already holds a run ({EVENTS}); choose another --out, pass --force to overwrite it, "
        f"or continue it with: {trainer_command('resume', path)}"
    )


def clear_run(path: Path | str) -> None:
    """Remove the previous run's files (--force), checkpoints included so a resume cannot mix two runs.

    Only the run's own names inside `path`: a symlink among them is removed itself (its target is
    never touched), a checkpoints/ that is a link is unlinked, not entered.
    """
    path = Path(path)
    try:
        for name in RUN_FILES:
            _remove(path / name)
        ckpt = path / CHECKPOINTS
        if ckpt.is_symlink():
            ckpt.unlink()
        elif ckpt.is_dir():
            for item in ckpt.iterdir():
                if item.suffix in (".pt", ".tmp") and (item.is_symlink() or item.is_file()):
                    item.unlink(missing_ok=True)  # is_file() follows a link, but unlink removes the link
    except OSError as exc:
        raise not_writable(path, exc) from exc


def _remove(item: Path) -> None:
    if item.is_dir() and not item.is_symlink():
        raise RunDirError(f"{item} is a directory, which no run writes; remove it or choose another --out")
    item.unlink(missing_ok=True)


def write_config(path: Path | str, cfg: Config) -> None:
    """config.toml, the resolved config; RunDirError if it cannot be written (nothing trained yet)."""
    header = (
        f"# resolved config of this run (from {cfg.source or 'defaults'}); every key, defaults included\n"
    )
    try:
        write_atomic(Path(path) / CONFIG, header + to_toml(config_to_dict(cfg)))
    except OSError as exc:
        raise not_writable(Path(path), exc) from exc
