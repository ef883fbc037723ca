"""The run directory: the source of truth for a sweep.

    <run dir>/config.toml    the resolved config (every key, defaults included)
    <run dir>/events.jsonl   one event per line (whole lines only), flushed at least each epoch
    <run dir>/summary.csv    one row per run, rewritten atomically as runs finish
    <run dir>/errors.log     tracebacks of runs that failed (only when one did)
    <run dir>/trainer.lock   while a trainer writes the directory: who (pid, host, start, command)
    <run dir>/checkpoints/   one <run id>.pt per run, rewritten at each epoch end (trainer.checkpoint)

No torch here: the app reads run directories (and `lock_status` tells it whether one is live).
"""
from __future__ import annotations

import csv
import errno
import io
import json
import os
import re
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterable

from trainer.config import Config, config_to_dict, to_toml
from trainer.events import Event, encode

SUMMARY_FIELDS = [
    "run",
    "batch_size",
    "lr",
    "split_chunks",
    "status",
    "epochs",
    "best_test_acc",
    "time_to_target_s",
    "compute_to_target_s",
    "iters_to_target",
    "samples_per_s",
    "mean_epoch_wall_s",
    "mean_epoch_compute_s",
]
EVENTS = "events.jsonl"
SUMMARY = "summary.csv"
CONFIG = "config.toml"
ERRORS = "errors.log"
LOCK = "trainer.lock"
CHECKPOINTS = "checkpoints"


class RunDirError(Exception):
    """The run directory cannot be used (exists with a run, not writable): a user error."""


class RunDirLocked(RunDirError):
    """Another trainer, still alive, is writing the run directory."""


class RunDirWriteError(Exception):
    """Writing the run directory failed mid-sweep (disk full, directory removed, permissions).

    Not an OSError on purpose: the training loop ends a run on any ordinary exception, but this
    one must stop the whole sweep (nothing more can be recorded), so the loop lets it through.
    """

    def __init__(self, path: Path, exc: OSError) -> None:
        self.path = Path(path)
        self.errno = exc.errno
        self.strerror = exc.strerror or str(exc)
        super().__init__(
            f"cannot write the run directory {self.path}: {self.strerror}. It is valid up to its last "
            f"whole line; once there is room, continue with: python -m trainer resume {self.path}"
        )


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


def holds_run(path: Path) -> bool:
    return (path / EVENTS).exists() or (path / SUMMARY).exists()


def create_run_dir(path: Path, force: bool = False) -> Path:
    """Create (or, with force, reuse) a run directory; refuse one that already holds a run.

    Takes no lock: trainers use `open_run_dir`, which does this under the directory's lock.
    """
    path = _checked_dir(path)
    if holds_run(path) and not force:
        raise RunDirError(_holds_run_message(path))
    status = lock_status(path)
    if status["state"] == "live":
        raise RunDirLocked(_locked_message(path, status))
    _probe_writable(path)
    if force:
        _clear_run(path)
    return path


def open_run_dir(path: Path, force: bool = False, command: str | None = None) -> tuple[Path, RunLock]:
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
            _clear_run(path)
    except BaseException:
        lock.release()
        raise
    return path, lock


def _checked_dir(path: Path) -> Path:
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path} exists and is not a directory; choose another --out")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _not_writable(path, exc) from exc
    return path


def _probe_writable(path: Path) -> None:
    try:
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise _not_writable(path, exc) from exc


def _not_writable(path: Path, exc: OSError) -> RunDirError:
    return RunDirError(f"cannot write the run directory {path}: {exc.strerror or exc}; "
                       "choose a writable --out or output.dir")


def _holds_run_message(path: Path) -> str:
    return (f"{path} already holds a run ({EVENTS}); choose another --out, pass --force to overwrite it, "
            f"or continue it with: python -m trainer resume {path}")


def _clear_run(path: Path) -> None:
    """Remove an old run's files (--force), checkpoints included so a resume cannot mix two runs."""
    for name in (EVENTS, SUMMARY, ERRORS):
        (path / name).unlink(missing_ok=True)
    ckpt = path / CHECKPOINTS
    if ckpt.is_dir():
        for item in ckpt.iterdir():
            if item.is_file() and (item.suffix in (".pt", ".tmp")):
                item.unlink(missing_ok=True)


# -- the lock -------------------------------------------------------------------------------------

STALE_GARBLED_S = 10.0  # a lock file without readable content older than this is taken as stale


def _pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (zombies count as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    except OSError:
        return False
    stat = _proc_stat(pid)
    return not (stat and stat[0] in ("Z", "X"))


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (Linux), or None where there is none."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[-1].split()


def _process_start(pid: int) -> float | None:
    """When a process started (Unix time), from /proc; None where that cannot be read."""
    stat = _proc_stat(pid)
    try:
        ticks = int(stat[19]) if stat else None  # field 22 of stat, counted after the name
        if ticks is None:
            return None
        btime = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                     if line.startswith("btime "))
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def lock_status(run_dir: Path) -> dict[str, Any]:
    """Whether a trainer is writing `run_dir`: state "none", "live" or "stale", with the lock's
    fields (pid, hostname, started, command) and a `reason` in words. Pure Python, for the app too.

    Live: the pid runs on this host (and started before the lock), or the lock belongs to another
    host (its pid cannot be checked from here, so it is assumed alive). Stale: the pid is gone, or
    now belongs to a process started after the lock (pid reuse), or the file is unreadable and old.
    """
    path = Path(run_dir) / LOCK
    try:
        text = path.read_text(encoding="utf-8")
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return {"state": "none", "path": str(path), "reason": "no trainer.lock"}
    except OSError as exc:
        return {"state": "live", "path": str(path), "reason": f"trainer.lock cannot be read: {exc.strerror}"}
    try:
        info = json.loads(text)
        if not isinstance(info, dict):
            raise ValueError("not an object")
        pid = int(info["pid"])
    except (ValueError, KeyError, TypeError):
        age = time.time() - mtime
        state = "stale" if age > STALE_GARBLED_S else "live"
        return {"state": state, "path": str(path),
                "reason": f"trainer.lock is not readable JSON (written {age:.0f} s ago)"}
    out = {**info, "pid": pid, "path": str(path)}
    host = socket.gethostname()
    if info.get("hostname") not in (None, host):
        out.update(state="live", reason=f"held by pid {pid} on host {info.get('hostname')}, "
                                        "which cannot be checked from here")
        return out
    if not _pid_alive(pid):
        out.update(state="stale", reason=f"pid {pid} is no longer running")
        return out
    started = info.get("started")
    begun = _process_start(pid)
    if isinstance(started, (int, float)) and begun is not None and begun > started + 2.0:
        out.update(state="stale", reason=f"pid {pid} now belongs to a process started after the lock")
        return out
    out.update(state="live", reason=f"pid {pid} is running")
    return out


def _locked_message(path: Path, status: dict[str, Any]) -> str:
    started = status.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) else "?"
    return (
        f"{path} is being written by another trainer ({status.get('reason')}; started {when}, "
        f"command: {status.get('command', '?')}). Wait for it to end, stop it, or choose another --out; "
        f"if you are sure no trainer is running, delete {path / LOCK}"
    )


def _command_line() -> str:
    """This process's command as a person would type it (`python -m trainer run ...`)."""
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    head = f"python -m {argv0.parent.name}" if argv0.name == "__main__.py" else argv0.name
    return " ".join([head, *sys.argv[1:]])


class RunLock:
    """The `trainer.lock` of a run directory, held by this process (create with `acquire`)."""

    def __init__(self, path: Path, info: dict[str, Any], replaced: dict[str, Any] | None = None) -> None:
        self.path = path
        self.info = info
        self.replaced = replaced  # lock_status() of the stale lock this one replaced, if any

    @classmethod
    def acquire(cls, run_dir: Path, command: str | None = None) -> RunLock:
        """Create the lock atomically (O_CREAT | O_EXCL); replace a stale one; refuse a live one."""
        run_dir = Path(run_dir)
        path = run_dir / LOCK
        info = {
            "pid": os.getpid(),
            "hostname": socket.gethostname(),
            "started": time.time(),
            "command": command if command is not None else _command_line(),
            "token": uuid.uuid4().hex,  # release removes the lock only while it is still this one
        }
        replaced = None
        for _ in range(2):  # at most: find a stale lock, remove it, create ours
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                status = lock_status(run_dir)
                if status["state"] != "stale" or replaced is not None:
                    raise RunDirLocked(_locked_message(run_dir, status)) from None
                replaced = status
                path.unlink(missing_ok=True)
                continue
            except OSError as exc:
                raise _not_writable(run_dir, exc) from exc
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(json.dumps(info) + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as exc:
                path.unlink(missing_ok=True)
                raise _not_writable(run_dir, exc) from exc
            return cls(path, info, replaced)
        raise RunDirLocked(_locked_message(run_dir, lock_status(run_dir)))  # pragma: no cover - a race

    def release(self) -> None:
        """Remove the lock if it is still ours (a later trainer may have replaced a stale one)."""
        try:
            current = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(current, dict) and current.get("token") == self.info["token"]:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def write_atomic(path: Path, text: str) -> None:
    """Write a whole file or nothing: temp file in the same folder, then rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_config(path: Path, cfg: Config) -> None:
    """config.toml, the resolved config; RunDirError if it cannot be written (nothing trained yet)."""
    header = f"# resolved config of this run (from {cfg.source or 'defaults'}); every key, defaults included\n"
    try:
        write_atomic(path / CONFIG, header + to_toml(config_to_dict(cfg)))
    except OSError as exc:
        raise _not_writable(path, exc) from exc


def summary_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=SUMMARY_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in SUMMARY_FIELDS})
    return out.getvalue()


def read_summary(path: Path) -> list[dict[str, str]]:
    with open(Path(path) / SUMMARY, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


class RunDirSink:
    """Writes events to events.jsonl and keeps summary.csv and errors.log current.

    Each event is written as one whole line. The file is flushed on every event
    except `losses` (the high-rate one), and always at `epoch_end`, so a reader
    never sees more than the losses of the current epoch missing.

    `prior`: the events already in the directory (a resumed sweep), so summary.csv
    keeps the rows of runs this process does not train. A failed write (disk full,
    directory gone) raises RunDirWriteError once; the sink then writes nothing more.
    """

    FLUSH_ON = {"sweep_started", "sweep_resumed", "run_started", "epoch_end", "mode_changed",
                "target_reached", "run_finished", "sweep_finished", "paused"}

    def __init__(self, path: Path, prior: Iterable[Event] = ()) -> None:
        self.path = Path(path)
        self._rows: dict[str, dict[str, Any]] = {}
        self.error: RunDirWriteError | None = None
        for event in prior:
            self._track(event)
        try:
            self._fh = open(self.path / EVENTS, "a", encoding="utf-8")
        except OSError as exc:
            raise _not_writable(self.path, exc) from exc

    def emit(self, event: Event) -> None:
        if self.error is not None:
            return  # nothing can be recorded any more; the error was raised once already
        try:
            self._write(encode(event) + "\n")
            kind = event["type"]
            if kind in self.FLUSH_ON:
                self._fh.flush()
            if kind == "epoch_end":
                # On disk before the epoch's checkpoint is, so a checkpoint never runs ahead of the
                # events it continues (even after a power cut); once per epoch, outside the timers.
                os.fsync(self._fh.fileno())
            self._track(event)
            if kind == "run_finished" and event.get("traceback"):
                with open(self.path / ERRORS, "a", encoding="utf-8") as fh:
                    fh.write(f"== {event['run']}: {event.get('reason', '')}\n{event['traceback']}\n")
            if kind in ("run_finished", "sweep_finished"):
                self.write_summary()
        except OSError as exc:
            self.error = RunDirWriteError(self.path, exc)
            raise self.error from exc

    def _write(self, text: str) -> None:
        """Append text to events.jsonl (one seam, so tests can make the disk full)."""
        self._fh.write(text)

    def _track(self, event: Event) -> None:
        """Keep the summary rows current with an event (written or already on disk)."""
        kind = event.get("type")
        if kind == "sweep_started":
            for spec in event.get("runs", []):
                self._rows[spec["run"]] = {**spec, "status": "pending"}
        elif kind == "run_finished":
            self._rows[event["run"]] = event.get("summary", {})
        elif kind == "sweep_finished":
            for row in event.get("summaries", []):
                self._rows[row["run"]] = row

    def mark(self, run_id: str, status: str) -> None:
        """Set a row's status without an event (a resumed run is `running` again)."""
        self._rows.setdefault(run_id, {"run": run_id})["status"] = status

    def write_summary(self) -> None:
        write_atomic(self.path / SUMMARY, summary_csv(list(self._rows.values())))

    def close(self) -> None:
        if self._fh.closed:
            return
        try:
            self._fh.close()  # flushes; after a failed write the rest may not fit either
        except OSError:
            pass


def read_events(path: Path) -> tuple[list[Event], int]:
    """All whole, valid JSON event lines of a run directory, and how many lines were skipped."""
    events: list[Event] = []
    skipped = 0
    with open(Path(path) / EVENTS, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break  # a line still being written
            try:
                event = json.loads(line)
            except ValueError:
                skipped += 1
                continue
            if isinstance(event, dict) and isinstance(event.get("type"), str):
                events.append(event)
            else:
                skipped += 1
    return events, skipped
