"""The trainer's log in the temp folder: a killed app, a dead trainer or a bridge
that never started leaves no empty bstui-trainer-*.log behind; a log that holds a cause stays."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from tests.tui.test_bridge import FEED_GUARD_S, wait_end
from tests.waiting import alive, wait_until
from tui.feeds.bridge import TrainerBridge
from tui.feeds.live import LiveFeed

pytestmark = pytest.mark.subprocess

ROOT = Path(__file__).resolve().parents[2]
ENTRY = "tests.tui.fake_trainer:"


def logs(folder: Path) -> list[Path]:
    return sorted(folder.glob("bstui-trainer-*.log"))


@pytest.fixture
def temp_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temp folder of this test alone (others' logs in the shared /tmp are none of its business)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_a_bridge_that_never_started_makes_no_log(temp_folder: Path, tmp_path: Path) -> None:
    bridge = TrainerBridge(None, [], str(tmp_path), entry=ENTRY + "obey_stop")
    assert logs(temp_folder) == []
    bridge.shutdown()
    assert logs(temp_folder) == []


def test_a_killed_trainer_leaves_no_empty_log(temp_folder: Path, tmp_path: Path) -> None:
    feed = LiveFeed(TrainerBridge(None, [], str(tmp_path), entry=ENTRY + "killed"))
    feed.start()
    try:
        assert len(logs(temp_folder)) == 1  # there while it runs: its output goes there
        end = wait_end(feed)
        assert end.kind == "died" and "SIGKILL" in end.detail
    finally:
        feed.close()
    assert logs(temp_folder) == []


def test_the_log_of_a_crash_stays_and_is_named(temp_folder: Path, tmp_path: Path) -> None:
    feed = LiveFeed(TrainerBridge(None, [], str(tmp_path), entry=ENTRY + "crash"))
    feed.start()
    try:
        end = wait_end(feed)
    finally:
        feed.close()
    (log,) = logs(temp_folder)
    assert str(log) in end.detail and "boom" in log.read_text()


APP = textwrap.dedent("""
    import sys, tempfile
    tempfile.tempdir = sys.argv[1]
    from tui.feeds.bridge import TrainerBridge
    bridge = TrainerBridge(None, [], sys.argv[2], entry="tests.tui.fake_trainer:hang_with_a_worker")
    bridge.start()
    print(bridge.log_path, flush=True)
    sys.stdin.read()  # until the test kills it
""")


def test_a_killed_app_leaves_no_empty_log(temp_folder: Path, tmp_path: Path) -> None:
    app = subprocess.Popen(
        [sys.executable, "-c", APP, str(temp_folder), str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        log = Path(app.stdout.readline().strip())
        assert log.parent == temp_folder and log.exists()
        wait_until((tmp_path / "pids").exists, "the app's trainer to run", FEED_GUARD_S, proc=app)
        trainer_pid = int((tmp_path / "pids").read_text().split()[0])
    finally:
        app.send_signal(signal.SIGKILL)
        app.wait()
    wait_until(
        lambda: not log.exists() and not alive(trainer_pid),
        "the trainer and its log to go with the app",
        FEED_GUARD_S,
    )
    assert logs(temp_folder) == []
