"""trainer.lock: one trainer per run directory; a dead trainer's lock is recognised and replaced."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainer.runlog import LOCK, RunDirError, RunDirLocked, RunLock, lock_status, open_run_dir


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_lock(run_dir, **fields) -> None:
    info = {
        "pid": os.getpid(),
        "hostname": socket.gethostname(),
        "started": time.time(),
        "command": "python -m trainer run",
        "token": "someone-else",
    }
    info.update(fields)
    (run_dir / LOCK).write_text(json.dumps(info))


def test_a_lock_records_who_holds_it_and_is_removed_on_release(tmp_path):
    lock = RunLock.acquire(tmp_path, command="python -m trainer run x.toml")
    info = json.loads((tmp_path / LOCK).read_text())
    assert info["pid"] == os.getpid() and info["hostname"] == socket.gethostname()
    assert info["command"] == "python -m trainer run x.toml" and info["started"] <= time.time()
    status = lock_status(tmp_path)
    assert status["state"] == "live" and status["pid"] == os.getpid()
    lock.release()
    assert not (tmp_path / LOCK).exists()
    assert lock_status(tmp_path)["state"] == "none"


def test_a_second_trainer_is_refused_while_the_first_is_alive(tmp_path):
    _write_lock(tmp_path)  # this test process is the live owner
    with pytest.raises(RunDirLocked) as err:
        RunLock.acquire(tmp_path)
    message = str(err.value)
    assert f"pid {os.getpid()}" in message and "python -m trainer run" in message
    assert str(tmp_path / LOCK) in message  # how to clear it if the user knows better
    assert json.loads((tmp_path / LOCK).read_text())["token"] == "someone-else"  # untouched


@pytest.mark.subprocess
def test_a_stale_lock_is_recognised_reported_and_replaced(tmp_path):
    dead = _dead_pid()
    _write_lock(tmp_path, pid=dead)
    status = lock_status(tmp_path)
    assert status["state"] == "stale" and f"pid {dead}" in status["reason"]
    lock = RunLock.acquire(tmp_path)
    assert lock.replaced is not None and lock.replaced["pid"] == dead
    assert json.loads((tmp_path / LOCK).read_text())["pid"] == os.getpid()
    lock.release()


def test_a_reused_pid_does_not_keep_a_dead_trainers_lock_alive(tmp_path):
    # Our pid is alive, but this process started long after the lock was taken: another process.
    if not os.path.exists(f"/proc/{os.getpid()}/stat"):
        pytest.skip("process start times come from /proc (Linux)")
    _write_lock(tmp_path, started=1_000_000.0)
    status = lock_status(tmp_path)
    assert status["state"] == "stale" and "started after" in status["reason"]


@pytest.mark.subprocess
def test_a_lock_from_another_host_is_taken_as_live(tmp_path):
    _write_lock(tmp_path, pid=_dead_pid(), hostname="some-other-box")
    status = lock_status(tmp_path)
    assert status["state"] == "live" and "some-other-box" in status["reason"]
    with pytest.raises(RunDirLocked, match="some-other-box"):
        RunLock.acquire(tmp_path)


def test_an_unreadable_lock_is_live_while_fresh_and_stale_when_old(tmp_path):
    (tmp_path / LOCK).write_text('{"pid": 12')  # a writer cut off mid-line
    assert lock_status(tmp_path)["state"] == "live"
    old = time.time() - 3600
    os.utime(tmp_path / LOCK, (old, old))
    assert lock_status(tmp_path)["state"] == "stale"


def test_release_leaves_a_lock_that_is_no_longer_ours(tmp_path):
    lock = RunLock.acquire(tmp_path)
    _write_lock(tmp_path, token="a-later-trainer")  # ours was judged stale and replaced
    lock.release()
    assert json.loads((tmp_path / LOCK).read_text())["token"] == "a-later-trainer"


def test_force_does_not_override_a_live_lock(tmp_path):
    (tmp_path / "events.jsonl").write_text('{"type":"sweep_started","t":0}\n')
    _write_lock(tmp_path)
    with pytest.raises(RunDirLocked):
        open_run_dir(tmp_path, force=True)
    assert (tmp_path / "events.jsonl").read_text() == '{"type":"sweep_started","t":0}\n'


def test_a_refused_directory_keeps_no_lock_of_ours(tmp_path):
    (tmp_path / "events.jsonl").write_text("{}\n")
    with pytest.raises(RunDirError, match="--force"):
        open_run_dir(tmp_path)
    assert not (tmp_path / LOCK).exists()


@pytest.mark.subprocess
def test_lock_status_needs_no_torch():
    code = (
        "import sys, trainer.runlog; trainer.runlog.lock_status('.'); "
        "assert 'torch' not in sys.modules, 'trainer.runlog imported torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
