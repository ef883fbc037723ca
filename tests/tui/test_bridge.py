"""The real trainer subprocess plumbing, with stand-in trainers (no torch): controls
reach it, a stuck trainer and its workers are killed on shutdown, a death is seen."""

from __future__ import annotations

import os

import pytest

from tests.waiting import alive, wait_gone, wait_until
from tui.feeds.bridge import TrainerBridge, TrainerExit
from tui.feeds.live import LiveFeed

ENTRY = "tests.tui.fake_trainer:"
FEED_GUARD_S = 120  # stand-in trainers start in a blink: a hang guard only


def read_until(feed: LiveFeed, count: int) -> list[dict]:
    """The feed's next events, once at least `count` have come."""
    events: list[dict] = []

    def enough() -> bool:
        events.extend(feed.read(0.1))
        return len(events) >= count

    wait_until(enough, lambda: f"{count} events from the feed (got {events})", FEED_GUARD_S, interval=0)
    return events


def wait_end(feed: LiveFeed):
    """How the feed ended, once it has."""

    def ended():
        feed.read(0.1)
        return feed.ended()

    return wait_until(ended, "the feed to end", FEED_GUARD_S, interval=0)


@pytest.mark.subprocess
def test_stuck_trainer_and_its_worker_are_gone_after_shutdown(tmp_path):
    bridge = TrainerBridge(None, [], str(tmp_path), entry=ENTRY + "hang_with_a_worker")
    feed = LiveFeed(bridge)
    feed.start()
    try:
        assert len(read_until(feed, 3)) == 3
        wait_until((tmp_path / "pids").exists, "the stuck trainer to write its pids", FEED_GUARD_S)
        trainer_pid, worker_pid = map(int, (tmp_path / "pids").read_text().split())
        assert alive(trainer_pid) and alive(worker_pid)
    finally:
        feed.close()
    assert not alive(trainer_pid)
    wait_gone(worker_pid, "the killed worker to be reaped (it was reparented to init)", FEED_GUARD_S)
    assert not os.path.exists(bridge.log_path)  # stopped by us: no log left behind


@pytest.mark.subprocess
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


@pytest.mark.subprocess
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
