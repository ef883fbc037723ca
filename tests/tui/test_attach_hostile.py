"""`bstui --attach` and `--replay` on hostile run directories: an events.jsonl
that is a FIFO or /dev/zero is refused at once, an unreadable trainer.lock is said to be one, and the
app starts (no UnicodeDecodeError, no hang)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.tui.conftest import FIXTURE_DIR, wait_for
from trainer.runlog import EVENTS, LOCK, lock_status, open_append
from trainer.runlog.commands import trainer_command
from tui.assemble import make_app
from tui.feeds.detach import describe, reattach_hint, start_detached, trainer_state
from tui.feeds.event_reader import EventReader
from tui.feeds.replay import ReplayFeed
from tui.state.status import Severity

ROOT = Path(__file__).resolve().parents[2]
GARBAGE_LOCKS = [b"\x80\xff\x00garbage", b'{"pid": 1e20, "started": 1.0}', b'{"pid": 4242, "started": 1e300}']


def partial_run(tmp_path: Path, n: int = 12) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    lines = (FIXTURE_DIR / EVENTS).read_text().splitlines()[:n]
    (run / EVENTS).write_text("\n".join(lines) + "\n")
    shutil.copy(FIXTURE_DIR / "config.toml", run / "config.toml")
    return run


def bstui(*args: str) -> subprocess.CompletedProcess:
    """The real command, with a timeout: a blocking read fails the test instead of hanging it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "tui", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.subprocess
@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_attach_and_replay_refuse_an_events_file_that_is_not_a_regular_file(tmp_path, kind):
    run = partial_run(tmp_path)
    (run / EVENTS).unlink()
    if kind == "fifo":
        os.mkfifo(run / EVENTS)
    else:
        (run / EVENTS).symlink_to("/dev/zero")
    for mode in ("--attach", "--replay"):
        proc = bstui(mode, str(run))
        assert proc.returncode == 2, proc.stderr
        assert "not a regular file" in proc.stderr and "Traceback" not in proc.stderr


def test_the_follow_reader_never_blocks_on_a_fifo_and_says_why(tmp_path):
    path = tmp_path / EVENTS
    os.mkfifo(path)
    reader = EventReader(path)
    assert reader.read() == [] and "FIFO" in reader.problem and reader.at_end


@pytest.mark.parametrize("data", GARBAGE_LOCKS)
def test_an_unreadable_lock_is_said_to_be_one(tmp_path, data):
    run = partial_run(tmp_path)
    (run / LOCK).write_bytes(data)
    status = trainer_state(run)
    assert status["state"] == "live" and status["unreadable"]  # fresh: it may be being written
    line = describe(status, run, finished=False)
    assert "unreadable" in line.plain and f"{trainer_command('resume', run)}" in line.plain
    assert line.severity is Severity.WARNING
    assert "unreadable" in reattach_hint(run, status)


async def test_attach_with_a_garbage_lock_starts_and_shows_the_cause(tmp_path):
    run = partial_run(tmp_path)
    (run / LOCK).write_bytes(GARBAGE_LOCKS[0])
    old = time.time() - 60
    os.utime(run / LOCK, (old, old))
    assert lock_status(run)["state"] == "stale"
    app = make_app(feed_factory=lambda attempt: ReplayFeed(str(run), poll_s=0.02, watch_trainer=True))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.state.started and "unreadable" in app.status_text().plain)
        assert "not UTF-8" in app.status_text().plain


@pytest.mark.subprocess
def test_a_detached_trainers_log_is_never_written_through_a_symlink(tmp_path):
    outside = tmp_path / "outside.log"
    outside.write_text("keep\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "trainer.log").symlink_to(outside)
    trainer = start_detached([sys.executable, "-c", "print('hello from the trainer')"], run)
    assert trainer.process.wait(60) == 0
    assert outside.read_text() == "keep\n"
    assert (
        not (run / "trainer.log").is_symlink()
        and "hello from the trainer" in (run / "trainer.log").read_text()
    )
    with open_append(run / "trainer.log") as fh:  # the same writer the sink uses
        fh.write("more\n")
    assert outside.read_text() == "keep\n"
