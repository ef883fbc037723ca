"""The real trainer subprocess plumbing, with stand-in trainers (no torch): controls
reach it, a stuck trainer and its workers are killed on shutdown, a death is seen."""

from __future__ import annotations

import os
import time

import pytest

from tui.feeds.bridge import TrainerBridge, TrainerExit
from tui.feeds.live import LiveFeed

ENTRY = "tests.tui.fake_trainer:"


def alive(pid: int) -> bool:
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def read_until(feed: LiveFeed, count: int, timeout: float = 30.0) -> list[dict]:
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(events) < count and time.monotonic() < deadline:
        events += feed.read(0.1)
    return events


def wait_end(feed: LiveFeed, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        feed.read(0.1)
        end = feed.ended()
        if end is not None:
            return end
    raise AssertionError("the feed did not end")


def test_stuck_trainer_and_its_worker_are_gone_after_shutdown(tmp_path):
    bridge = TrainerBridge(None, [], str(tmp_path), entry=ENTRY + "hang_with_a_worker")
    feed = LiveFeed(bridge)
    feed.start()
    try:
        assert len(read_until(feed, 3)) == 3
        deadline = time.monotonic() + 30
        while not (tmp_path / "pids").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        trainer_pid, worker_pid = map(int, (tmp_path / "pids").read_text().split())
        assert alive(trainer_pid) and alive(worker_pid)
    finally:
        feed.close()
    assert not alive(trainer_pid)
    deadline = time.monotonic() + 5  # the worker is reparented; give init a moment to reap it
    while alive(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(worker_pid)
    assert not os.path.exists(bridge.log_path)  # stopped by us: no log left behind


def test_controls_reach_the_trainer_and_stop_ends_it_cleanly(tmp_path):
    bridge = TrainerBridge(None, [], str(tmp_path), entry=ENTRY + "obey_stop")
    feed = LiveFeed(bridge)
    feed.start()
    try:
        read_until(feed, 3)
        feed.send({"cmd": "split", "enabled": True, "chunks": 3})
        (event,) = read_until(feed, 1)
        assert event["type"] == "mode_changed" and event["split_chunks"] == 3
        bridge.send({"cmd": "stop"})
        events = read_until(feed, 2)
        assert [e["type"] for e in events] == ["run_finished", "sweep_finished"]
        end = wait_end(feed)
        assert end.kind == "finished"
    finally:
        feed.close()


@pytest.mark.parametrize(
    ("entry", "words"),
    [("crash", ["exit code 1", "RuntimeError: boom"]), ("killed", ["killed by SIGKILL", "kill -9"])],
)
def test_a_dead_trainer_is_reported_with_its_cause(tmp_path, entry, words):
    bridge = TrainerBridge(None, [], str(tmp_path), entry=ENTRY + entry)
    feed = LiveFeed(bridge)
    feed.start()
    try:
        end = wait_end(feed)
        assert end.kind == "died"
        for word in words:
            assert word in end.detail
    finally:
        feed.close()
    if entry == "crash":  # the log of a trainer that died on its own stays, and is named
        assert os.path.exists(bridge.log_path) and bridge.log_path in end.detail
        os.unlink(bridge.log_path)


def test_exit_descriptions_are_plain_words():
    assert TrainerExit(0).describe() == "exit code 0"
    assert TrainerExit(-9).describe().startswith("killed by SIGKILL")
    assert TrainerExit(-15).describe() == "killed by SIGTERM"
    assert TrainerExit(None).describe() == "still running"
