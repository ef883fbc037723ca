"""trainer.lock: one trainer per run directory; a dead trainer's lock is recognised and replaced.

The lock is one JSON object (contract.LOCK_FIELDS: pid, hostname, started, command, token),
created atomically with O_CREAT | O_EXCL. Reading it back is as careful as reading events: a
lock that is not a regular file, not UTF-8 JSON, or whose pid or start time is absurd (1e20,
1e300) is "unreadable", reported in words and aged like a half-written one, never a crash.
Pure Python: the app asks `lock_status` whether a trainer is live.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from trainer.runlog.contract import LOCK
from trainer.runlog.errors import RunDirLocked, UnreadableFile, not_writable
from trainer.runlog.files import FILE_MODE, read_bytes
from trainer.runlog.reader import parse_json

STALE_GARBLED_S = 10.0  # an unreadable lock older than this is taken as stale (not one being written)
MAX_LOCK_BYTES = 64 << 10
MAX_PID = (1 << 31) - 1
LATEST_START = 1e11  # Unix seconds (year 5138): a later `started` is not a real time
MAX_COMMAND_CHARS = 2000


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
    except (OSError, OverflowError):
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
        btime = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def parse_lock(data: bytes) -> dict[str, Any]:
    """The fields of a trainer.lock's bytes; ValueError saying what is wrong with them."""
    try:
        info = parse_json(data.decode("utf-8"), non_finite=False)
    except UnicodeDecodeError:
        raise ValueError("it is not UTF-8 text") from None
    except ValueError:
        raise ValueError("it is not JSON") from None
    if not isinstance(info, dict):
        raise ValueError("it is not a JSON object")
    pid = info.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid <= MAX_PID:
        raise ValueError(f"its pid {_short(pid)} is not a process id")
    started = info.get("started")
    if started is not None and (
        not isinstance(started, (int, float))
        or isinstance(started, bool)
        or not (math.isfinite(started) and 0 <= started <= LATEST_START)
    ):
        raise ValueError(f"its start time {_short(started)} is not a time")
    for name in ("hostname", "command", "token"):
        if info.get(name) is not None and not isinstance(info[name], str):
            raise ValueError(f"its {name} is not text")
    if isinstance(info.get("command"), str):
        info["command"] = _short(info["command"], MAX_COMMAND_CHARS)
    return info


def _short(value: Any, limit: int = 40) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def lock_status(run_dir: Path | str) -> dict[str, Any]:
    """Whether a trainer is writing `run_dir`: state "none", "live" or "stale", with the lock's
    fields (pid, hostname, started, command) and a `reason` in words. Never raises.

    Live: the pid runs on this host (and started before the lock), or the lock belongs to another
    host (its pid cannot be checked from here, so it is assumed alive). Stale: the pid is gone, or
    now belongs to a process started after the lock (pid reuse), or the lock is unreadable and old.
    """
    path = Path(run_dir) / LOCK
    try:
        mtime = path.lstat().st_mtime
    except FileNotFoundError:
        return {"state": "none", "path": str(path), "reason": "no trainer.lock"}
    except OSError as exc:
        return {
            "state": "live",
            "path": str(path),
            "reason": f"trainer.lock cannot be read: {exc.strerror or exc}",
        }
    try:
        data = read_bytes(path, MAX_LOCK_BYTES)
    except FileNotFoundError:
        if not path.is_symlink():  # removed since: its trainer released it
            return {"state": "none", "path": str(path), "reason": "no trainer.lock"}
        return _unreadable(path, mtime, "trainer.lock is a symbolic link to nothing")
    except UnreadableFile as exc:
        return _unreadable(path, mtime, str(exc))
    except OSError as exc:
        return {
            "state": "live",
            "path": str(path),
            "reason": f"trainer.lock cannot be read: {exc.strerror or exc}",
        }
    try:
        info = parse_lock(data)
    except ValueError as exc:
        return _unreadable(path, mtime, f"trainer.lock is unreadable: {exc}")
    pid = info["pid"]
    out = {**info, "path": str(path)}
    host = socket.gethostname()
    if info.get("hostname") not in (None, host):
        out.update(
            state="live",
            reason=f"held by pid {pid} on host {_short(info.get('hostname'))}, "
            "which cannot be checked from here",
        )
        return out
    if not _pid_alive(pid):
        out.update(state="stale", reason=f"pid {pid} is no longer running")
        return out
    started = info.get("started")
    begun = _process_start(pid)
    if started is not None and begun is not None and begun > started + 2.0:
        out.update(state="stale", reason=f"pid {pid} now belongs to a process started after the lock")
        return out
    out.update(state="live", reason=f"pid {pid} is running")
    return out


def _unreadable(path: Path, mtime: float, why: str) -> dict[str, Any]:
    """An unreadable lock: live while it may still be being written, stale once it is old."""
    age = time.time() - mtime
    state = "stale" if age > STALE_GARBLED_S else "live"
    return {
        "state": state,
        "path": str(path),
        "unreadable": True,
        "reason": f"{why} (written {max(age, 0.0):.0f} s ago)",
    }


def locked_message(run_dir: Path, status: dict[str, Any]) -> str:
    """Why a trainer may not write `run_dir` now, and what to do."""
    started = status.get("started")
    when = (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
        if isinstance(started, (int, float))
        else "?"
    )
    return (
        f"{run_dir} is being written by another trainer ({status.get('reason')}; started {when}, "
        f"command: {status.get('command', '?')}). Wait for it to end, stop it, or choose another --out; "
        f"if you are sure no trainer is running, delete {Path(run_dir) / LOCK}"
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
    def acquire(cls, run_dir: Path | str, command: str | None = None) -> RunLock:
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
            try:  # O_EXCL never follows a symlink: a link named trainer.lock counts as a lock file
                fd = os.open(
                    path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), FILE_MODE
                )
            except FileExistsError:
                status = lock_status(run_dir)
                if status["state"] != "stale" or replaced is not None:
                    raise RunDirLocked(locked_message(run_dir, status)) from None
                replaced = status
                try:
                    path.unlink(missing_ok=True)
                except OSError as exc:  # a directory named trainer.lock, say
                    raise RunDirLocked(
                        f"{path} is stale but cannot be removed ({exc.strerror or exc}); remove it by hand"
                    ) from None
                continue
            except OSError as exc:
                raise not_writable(run_dir, exc) from exc
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(json.dumps(info) + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as exc:
                path.unlink(missing_ok=True)
                raise not_writable(run_dir, exc) from exc
            return cls(path, info, replaced)
        raise RunDirLocked(locked_message(run_dir, lock_status(run_dir)))  # pragma: no cover - a race

    def release(self) -> None:
        """Remove the lock if it is still ours (a later trainer may have replaced a stale one)."""
        try:
            current = parse_lock(read_bytes(self.path, MAX_LOCK_BYTES))
        except (OSError, ValueError, UnreadableFile):  # gone or garbled: not ours any more
            return
        if current.get("token") == self.info["token"]:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
