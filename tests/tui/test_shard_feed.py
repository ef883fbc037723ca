"""A sharded sweep's directory (DIR/shards/I) replayed and attached as one sweep."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.tui.conftest import fake_system, settle
from trainer.runlog import RunLock
from trainer.runlog.shards import SHARDS
from tui.assemble import make_app
from tui.feeds.replay import ReplayFeed
from tui.feeds.sharded import ShardedFeed
from tui.state.sweep import SweepState

LRGRID = Path(__file__).resolve().parent / "fixtures" / "run_lrgrid"
START = 1_700_000_000.0  # the wall time the fixture's shards say they started at


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def shard_the_fixture(dst: Path, count: int = 3, skip: tuple[int, ...] = ()) -> dict[int, Path]:
    """The lr-grid fixture as `count` shards (by batch size, as the trainer deals them), written into
    dst/shards/I as the trainer writes a shard; `skip`: shards left out (not started)."""
    events = _lines(LRGRID / "events.jsonl")
    started = events[0]
    sizes = sorted({r["batch_size"] for r in started["runs"]})
    shard_of = {r["run"]: sizes.index(r["batch_size"]) % count for r in started["runs"]}
    rows = [{**r, "shard": shard_of[r["run"]]} for r in started["runs"]]
    finished = next(e for e in events if e["type"] == "sweep_finished")
    dirs = {}
    for i in range(count):
        if i in skip:
            continue
        path = dst / SHARDS / str(i)
        path.mkdir(parents=True)
        mine = [e for e in events if e.get("run") is not None and shard_of[e["run"]] == i]
        head = {
            **started,
            "runs": [r for r in started["runs"] if shard_of[r["run"]] == i],
            "shard": {"index": i, "count": count},
            "started_at": START + started["t"],
        }
        end = {
            **finished,
            "summaries": [s for s in finished.get("summaries", []) if shard_of[s["run"]] == i],
            "t": max(e["t"] for e in mine),
        }
        (path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in [head, *mine, end]))
        (path / "shard.json").write_text(json.dumps({"index": i, "count": count, "runs": rows}))
        shutil.copy(LRGRID / "config.toml", path / "config.toml")
        dirs[i] = path
    return dirs


def drain(feed) -> list:
    feed.start()
    out = []
    for _ in range(100):
        out.extend(feed.read(0))
        if feed.ended() is not None:
            return out
    raise AssertionError("the feed never ended")


def runs_of(events: list) -> dict:
    state = SweepState()
    state.apply_all([e for e in events if isinstance(e, dict)])
    return {
        rid: (r.status, [float(v) for v in r.losses.raw], r.summary, r.batch_size)
        for rid, r in state.runs.items()
    }, state


def test_the_shards_replay_as_the_sweep_they_were_cut_from(tmp_path):
    shard_the_fixture(tmp_path)
    merged = drain(ShardedFeed(str(tmp_path), follow=False))
    whole = drain(ReplayFeed(str(LRGRID), follow=False))
    assert [e["type"] for e in merged].count("sweep_started") == 1 and merged[0]["type"] == "sweep_started"
    assert merged[-1]["type"] == "sweep_finished"
    assert [r["run"] for r in merged[0]["runs"]] == [r["run"] for r in whole[0]["runs"]]  # sweep order
    one, s1 = runs_of(merged)
    two, s2 = runs_of(whole)
    assert one == two and s1.finished and s1.status == s2.status
    untimed = [{k: v for k, v in e.items() if k != "t"} for e in merged if e.get("run")]
    assert sorted(map(json.dumps, untimed)) == sorted(
        json.dumps({k: v for k, v in e.items() if k != "t"}) for e in whole if e.get("run")
    )  # each event once
    times = [e["t"] for e in merged[1:-1]]
    assert times == sorted(times)


def test_a_shard_not_started_is_named_with_the_command_that_starts_it(tmp_path):
    shard_the_fixture(tmp_path, skip=(2,))
    feed = ShardedFeed(str(tmp_path), follow=False)
    events = drain(feed)
    assert not any(e.get("type") == "sweep_finished" for e in events)  # the sweep has not finished
    text = feed.watch.head
    assert "shard 2/3 has not started" in text and f"--shard 2/3 --out {tmp_path}" in text
    assert "bs600" in text


def test_attached_controls_reach_every_live_shard_through_its_own_file(tmp_path):
    dirs = shard_the_fixture(tmp_path)
    locks = []
    for i in (0, 2):  # shards 0 and 2 have a live trainer (this process holds their locks)
        locks.append(RunLock.acquire(dirs[i]))
        (dirs[i] / "controls.jsonl").write_text("")
    try:
        feed = ShardedFeed(str(tmp_path), watch_trainer=True)
        feed.start()
        feed.read(0)
        assert feed.controllable
        feed.send({"cmd": "pause"})
        assert feed.send_error == ""
        for i in (0, 2):
            assert _lines(dirs[i] / "controls.jsonl") == [{"cmd": "pause"}]
        assert not (dirs[1] / "controls.jsonl").exists()  # no trainer there: nothing is created
        assert "2 training" in feed.watch.head
        assert feed.ended() is None  # live shards: more may come
    finally:
        for lock in locks:
            lock.release()


@pytest.mark.parametrize("size", [(80, 24)])
def test_the_app_replays_a_sharded_sweep(snap_compare, tmp_path, monkeypatch, size):
    shard_the_fixture(tmp_path / "sweep")
    monkeypatch.chdir(tmp_path)  # a relative path, so the header reads the same on every machine
    app = make_app(replay="sweep", follow=False, system=fake_system())
    assert snap_compare(app, terminal_size=size, run_before=settle)
