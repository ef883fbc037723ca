"""Detach and attach: a trainer started in its own session, the newest run found,
a live lock told from a stale one on screen, a replaced events.jsonl rebuilt, and `d`."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.tui.conftest import FIXTURE_DIR, FakeBridge, fixture_events, notes, wait_for
from tests.waiting import wait_until
from trainer.runlog import RunLock
from trainer.runlog.commands import app_command, trainer_command
from tui.__main__ import main
from tui.assemble import make_app
from tui.feeds.detach import (
    AttachError,
    DetachedTrainer,
    ExitAction,
    describe,
    exit_hint,
    newest_run_dir,
    reattach_hint,
    start_detached,
    trainer_state,
)
from tui.feeds.live import LiveFeed
from tui.feeds.replay import ReplayFeed

#: A stand-in detached process; its sleep only bounds its life should a test fail to kill it.
SLEEPER = [
    sys.executable,
    "-c",
    "import os, sys, time; print('sid', os.getsid(0), 'stdin', sys.stdin.read() == '', "
    "flush=True); time.sleep(60)",
]


def stop(trainer: DetachedTrainer) -> None:
    """End a test's detached process (by its own pid) and reap it."""
    if trainer.process.poll() is None:
        os.kill(trainer.pid, signal.SIGKILL)
    trainer.process.wait(5)


def write_lock(run_dir: Path, pid: int) -> None:
    info = {"pid": pid, "hostname": socket.gethostname(), "started": time.time() - 1, "command": "test"}
    (run_dir / "trainer.lock").write_text(json.dumps(info) + "\n")


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(10)
    return proc.pid


def partial_run(tmp_path: Path, n: int = 12) -> Path:
    """A run directory whose sweep has started but not finished."""
    run = tmp_path / "run"
    run.mkdir()
    lines = (FIXTURE_DIR / "events.jsonl").read_text().splitlines()[:n]
    (run / "events.jsonl").write_text("\n".join(lines) + "\n")
    shutil.copy(FIXTURE_DIR / "config.toml", run / "config.toml")
    return run


@pytest.mark.subprocess
def test_a_detached_trainer_has_its_own_session_no_stdin_and_a_log(tmp_path):
    trainer = start_detached(SLEEPER, tmp_path / "run")
    try:
        log = trainer.log_path
        wait_until(lambda: "\nsid " in log.read_text(), "the detached process to write its session", 120)
        words = log.read_text().splitlines()[-1].split()
        assert int(words[1]) == trainer.pid != os.getsid(0)  # session leader: no SIGHUP from our terminal
        assert words[3] == "True"  # stdin is /dev/null: it never waits on the terminal
        assert log.read_text().startswith("$ ")  # the command, for whoever reads the log later
        assert trainer_state(trainer.run_dir, trainer)["state"] == "starting"  # no lock taken yet
    finally:
        stop(trainer)
    assert trainer_state(trainer.run_dir, trainer)["exitcode"] == -signal.SIGKILL


def test_newest_run_dir_is_the_last_started_and_errors_say_what_to_pass(tmp_path):
    with pytest.raises(AttachError, match="does not exist"):
        newest_run_dir(tmp_path / "runs")
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "not-a-run").mkdir()
    with pytest.raises(AttachError, match=re.escape(f"{app_command('--attach')} DIR")):
        newest_run_dir(runs)
    for i, name in enumerate(["b-older", "a-newer"]):
        (runs / name).mkdir()
        (runs / name / "config.toml").write_text("")
        os.utime(runs / name / "config.toml", (1000 + i, 1000 + i))
    assert newest_run_dir(runs) == runs / "a-newer"
    # A run with a live trainer comes first, however old: that is the one to watch after an SSH drop.
    (runs / "c-live").mkdir()
    (runs / "c-live" / "config.toml").write_text("")
    os.utime(runs / "c-live" / "config.toml", (900, 900))
    lock = RunLock.acquire(runs / "c-live")  # held by this (live) process
    try:
        assert newest_run_dir(runs) == runs / "c-live"
    finally:
        lock.release()
    assert newest_run_dir(runs) == runs / "a-newer"  # its trainer gone: the newest again


@pytest.mark.subprocess
def test_status_line_tells_live_stale_and_unfinished_apart(tmp_path):
    run = partial_run(tmp_path)
    none = describe(trainer_state(run), run, finished=False)
    assert none is not None and f"resume with {trainer_command('resume')}" in none.plain
    assert describe(trainer_state(run), run, finished=True) is None
    write_lock(run, os.getpid())
    live = describe(trainer_state(run), run, finished=False)
    assert live is not None and f"pid {os.getpid()}" in live.plain and "writing" in live.plain
    assert app_command("--attach") in reattach_hint(run, trainer_state(run))
    write_lock(run, dead_pid())
    stale = describe(trainer_state(run), run, finished=False)
    assert stale is not None
    assert (
        "the trainer of this run is gone" in stale.plain
        and f"{trainer_command('resume', run)}" in stale.plain
    )


def run_main(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code, capsys.readouterr().err


def test_detach_with_a_bad_config_exits_2_and_starts_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = run_main(["--detach", "--set", "sweep.batch_sizes=[0]", "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and "batch_sizes" in err
    assert not (tmp_path / "r").exists()


def test_detach_refuses_a_directory_that_holds_a_run(capsys, tmp_path, monkeypatch, run_copy):
    monkeypatch.chdir(tmp_path)
    code, err = run_main(["--detach", "--out", str(run_copy)], capsys)
    assert code == 2 and "already holds a run" in err and "--attach" in err


def test_attach_errors_name_the_cause(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = run_main(["--attach", str(tmp_path / "gone")], capsys)
    assert code == 2 and "does not exist" in err
    code, err = run_main(["--attach", str(tmp_path)], capsys)
    assert code == 2 and "not a run directory" in err
    code, err = run_main(["--attach", "--set", 'output.dir="nowhere"'], capsys)
    assert code == 2 and "nowhere" in err and f"{app_command('--attach')} DIR" in err
    code, err = run_main(["--attach", str(tmp_path), "--replay", str(tmp_path)], capsys)
    assert code == 2 and "cannot be combined" in err


@pytest.mark.subprocess
async def test_attach_shows_a_stale_lock_then_follows_a_resume_that_replaces_the_file(tmp_path):
    run = partial_run(tmp_path)
    write_lock(run, dead_pid())
    app = make_app(feed_factory=lambda attempt: ReplayFeed(str(run), poll_s=0.02, watch_trainer=True))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.state.started and "gone" in app.status_text().plain)
        assert f"{trainer_command('resume', run)}" in app.status_text().plain
        old_state = app.state
        # A resume: live lock, and events.jsonl rewritten atomically (a new inode) with more in it.
        write_lock(run, os.getpid())
        lines = (FIXTURE_DIR / "events.jsonl").read_text().splitlines(keepends=True)
        (run / "events.tmp").write_text("".join(lines[:100]))
        os.replace(run / "events.tmp", run / "events.jsonl")
        await wait_for(
            pilot, lambda: app.state is not old_state and "attached · trainer pid" in app.status_text().plain
        )
        expected = [json.loads(x) for x in lines[:100]]
        await wait_for(
            pilot,
            lambda: (
                "bs60" in app.state.runs  # the rebuilt state may not have reached the run yet
                and len(app.state.runs["bs60"].epochs)
                == len([e for e in expected if e["type"] == "epoch_end" and e["run"] == "bs60"])
            ),
        )  # rebuilt, not applied twice
        assert app.state.skipped == 0 and app.feed.bad_lines == 0
        assert app.feed_end is None  # a live trainer may write more: still following
        with open(run / "events.jsonl", "a") as f:  # the resumed sweep finishes and lets go of the lock
            f.write("".join(lines[100:]))
        (run / "trainer.lock").unlink()
        await wait_for(pilot, lambda: app.feed_end is not None and app.feed_end.kind == "finished")
        assert app.state.finished and "sweep done" in app.status_text().plain
        await pilot.press("d")  # detach from a followed run: leave the viewer, the trainer goes on
        await wait_for(pilot, lambda: app.return_value == 0)


async def test_d_in_a_recorded_replay_only_explains(fixture_dir):
    app = make_app(replay=str(fixture_dir), follow=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.state.finished)
        await pilot.press("d")
        await wait_for(
            pilot, lambda: any("no trainer to leave running" in str(n.message) for n in notes(app))
        )
        assert app.is_running


def started_bridge(tmp_path: Path) -> tuple[FakeBridge, Path]:
    """A fake trainer that has started a sweep writing a (partial) run directory."""
    run = partial_run(tmp_path)
    started = list(fixture_events()[:12])
    started[0] = {**started[0], "run_dir": str(run)}
    return FakeBridge(started), run


async def test_d_in_a_live_sweep_leaves_its_trainer_training_and_quits(tmp_path):
    bridge, run = started_bridge(tmp_path)
    app = make_app(feed_factory=lambda attempt: LiveFeed(bridge))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.state.started and app.live)
        await pilot.press("d")
        await wait_for(pilot, lambda: not app.is_running)
    assert (
        bridge.released == 1 and bridge.shutdowns == 0 and bridge.alive
    )  # nothing stopped, nothing retrained
    assert {"cmd": "stop"} not in bridge.controls()
    assert app.exit_action is ExitAction.LEFT and app.return_code == 0


async def test_q_stops_the_sweep_and_waits_for_a_trainer_that_ends_at_once(tmp_path):
    bridge, run = started_bridge(tmp_path)
    app = make_app(feed_factory=lambda attempt: LiveFeed(bridge))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.state.started and app.live)
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running)
    assert bridge.controls()[-1] == {"cmd": "stop"} and not bridge.alive
    assert bridge.released == 0
    assert app.exit_action is ExitAction.STOPPED


async def test_q_leaves_a_trainer_in_a_long_step_to_finish_its_clean_stop_alone(tmp_path):
    bridge, run = started_bridge(tmp_path)
    bridge.stop_takes_polls = 10**9  # a multi-second step: longer than the app waits
    app = make_app(feed_factory=lambda attempt: LiveFeed(bridge))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.state.started and app.live)
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running)
    assert bridge.controls()[-1] == {"cmd": "stop"}
    assert bridge.released == 1 and bridge.shutdowns == 0  # not killed mid-step: it stops cleanly on its own
    assert app.exit_action is ExitAction.STOPPING


async def test_an_app_that_ends_without_q_leaves_a_started_sweep_training(tmp_path):
    bridge, run = started_bridge(tmp_path)
    app = make_app(feed_factory=lambda attempt: LiveFeed(bridge))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.state.started and app.live)
        app.exit(1)  # a crash or any other way out
    assert bridge.released == 1 and bridge.shutdowns == 0 and bridge.alive


async def test_an_app_that_ends_while_its_trainer_still_starts_ends_that_trainer():
    bridge = FakeBridge([])  # no sweep_started yet: nothing recorded, no run to come back to
    app = make_app(feed_factory=lambda attempt: LiveFeed(bridge))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: bridge.started == 1)
        app.exit(0)
    assert bridge.shutdowns == 1 and bridge.released == 0


def test_exit_words_follow_what_quitting_did(tmp_path):
    run = partial_run(tmp_path)
    live = {"state": "live", "pid": 4242}
    stopping = exit_hint(run, live, ExitAction.STOPPING)
    assert "stopping the sweep" in stopping and "pid 4242" in stopping
    assert f"{app_command('--attach', run)}" in stopping and f"{trainer_command('resume', run)}" in stopping
    left = exit_hint(run, live, ExitAction.LEFT)
    assert "keeps running" in left and f"re-attach with: {app_command('--attach', run)}" in left
    refused = exit_hint(run, live, ExitAction.REFUSED)
    assert "could not be sent" in refused and "keeps running" in refused
    done = exit_hint(run, {"state": "none"}, ExitAction.STOPPED)  # the trainer stopped before the app exited
    assert f"no trainer is writing {run} now" in done and f"{trainer_command('resume', run)}" in done


def test_a_live_app_says_on_exit_where_its_run_is_and_how_to_come_back(tmp_path, monkeypatch, capsys):
    import tui.__main__ as entry

    run = partial_run(tmp_path)  # what the app's trainer left when q stopped it mid-sweep

    def ran(app) -> int:  # the app ran and its trainer reported its run directory
        app.state.run_dir = str(run)
        return 0

    monkeypatch.setattr(entry, "run_app", ran)
    config = Path(__file__).resolve().parents[2] / "experiments.toml"
    assert entry.main([str(config)]) == 0
    out = capsys.readouterr().out
    assert f"no trainer is writing {run} now" in out and f"{app_command('--replay', run)}" in out
    assert f"{trainer_command('resume', run)}" in out


def test_a_replay_that_stopped_growing_says_whether_anyone_still_writes_it(tmp_path):
    from tui.feeds.replay import ReplayFeed

    run = partial_run(tmp_path)  # unfinished, no trainer.lock: its trainer is gone
    feed = ReplayFeed(str(run), idle_s=0.0)
    assert feed.read(0)  # the events so far
    assert feed.watch is None
    feed.read(0)  # nothing new
    assert feed.watch is not None and "no trainer writes this run" in feed.watch.text().plain
    assert f"{trainer_command('resume', run)}" in feed.watch.text().plain
    assert feed.ended() is None  # still followed: a resume from another terminal would show
    lock = RunLock.acquire(run)  # a live trainer holds it again (slow blocks, not gone)
    try:
        feed._checked = -1e9  # as if a second had passed since the last look at trainer.lock
        feed.read(0)
        assert feed.watch is None
    finally:
        lock.release()
    with open(run / "events.jsonl", "a") as f:  # it grows: following, nothing to warn about
        f.write((FIXTURE_DIR / "events.jsonl").read_text().splitlines()[12] + "\n")
    assert feed.read(0) and feed.watch is None


async def test_attached_to_a_live_trainer_p_and_s_reach_it_through_its_control_file(tmp_path, monkeypatch):
    from trainer.runlog import CONTROLS
    from tui.feeds.replay import ReplayFeed

    run = partial_run(tmp_path)
    lock = RunLock.acquire(run)  # a live trainer (this process) writes the run
    try:
        app = make_app(feed_factory=lambda attempt: ReplayFeed(str(run), watch_trainer=True), follow=True)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: app.state.started and app.feed is not None and app.feed.trainer)
            await pilot.press("p")  # no control file: a trainer older than the control channel
            await wait_for(pilot, lambda: any("cannot be controlled" in n.message for n in notes(app)))
            (run / CONTROLS).touch(mode=0o600)  # the trainer made its control file
            await pilot.press("p")
            await pilot.press("s")
            await wait_for(pilot, lambda: (run / CONTROLS).read_text().count("\n") >= 2)
            sent = [json.loads(x) for x in (run / CONTROLS).read_text().splitlines()]
            assert sent == [{"cmd": "pause"}, {"cmd": "split", "enabled": True, "chunks": 4}]
            import tui.feeds.replay as feed_mod

            def refused(path, line):  # another user's run: its 0600 file is not ours to write
                raise PermissionError(errno.EACCES, "Permission denied", str(path))

            monkeypatch.setattr(feed_mod, "append_line", refused)
            await pilot.press("p")
            await wait_for(pilot, lambda: any(n.title == "control refused" for n in notes(app)))
            assert "Permission denied" in next(n.message for n in notes(app) if n.title == "control refused")
    finally:
        lock.release()


async def test_attached_q_asks_the_trainer_to_stop_and_d_only_leaves(tmp_path):
    from trainer.runlog import CONTROLS

    run = partial_run(tmp_path)
    (run / CONTROLS).touch(mode=0o600)  # the live trainer's control file
    lock = RunLock.acquire(run)  # a live trainer (this process) writes the run
    try:
        for key, action, sent in (("d", ExitAction.LEFT, []), ("q", ExitAction.STOPPING, [{"cmd": "stop"}])):
            (run / CONTROLS).write_text("")
            app = make_app(feed_factory=lambda attempt: ReplayFeed(str(run), watch_trainer=True))
            async with app.run_test(size=(120, 40)) as pilot:
                await wait_for(
                    pilot, lambda: app.state.started and app.feed is not None and app.feed.controllable
                )
                assert "q stops it · d leaves it running" in app.status_text().plain
                await pilot.press(key)
                await wait_for(pilot, lambda: not app.is_running)
            assert app.exit_action is action
            assert [json.loads(x) for x in (run / CONTROLS).read_text().splitlines()] == sent
    finally:
        lock.release()


async def test_attached_after_a_split_with_k3_shows_it_on_and_s_turns_it_off(tmp_path):
    """The SSH story: split ÷3 was switched on live (batch 1 stayed plain), the connection dropped; the
    attached viewer shows the switch on with k=3, and `s` turns it off (not k 3 -> 4)."""
    from textual.widgets import Switch

    from trainer.runlog import CONTROLS

    run = partial_run(tmp_path)
    with open(run / "events.jsonl", "a") as f:
        for rid, b in (("bs1", 1), ("bs6", 6), ("bs60", 60)):
            took = b % 3 == 0
            f.write(
                json.dumps(
                    {
                        "type": "mode_changed",
                        "t": 3.1,
                        "run": rid,
                        "iter": 300,
                        "requested": 3,
                        "split_chunks": 3 if took else 1,
                        **({} if took else {"reason": f"3 chunks do not divide batch size {b}"}),
                    }
                )
                + "\n"
            )
    (run / CONTROLS).touch(mode=0o600)
    lock = RunLock.acquire(run)
    try:
        app = make_app(
            feed_factory=lambda attempt: ReplayFeed(str(run), watch_trainer=True), split_on=False, chunks=4
        )
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(
                pilot,
                lambda: (
                    app.feed is not None
                    and app.feed.controllable
                    and "bs60" in app.state.runs  # the feed may be up before the replay reached the run
                    and app.state.runs["bs60"].split_chunks == 3
                ),
            )
            await pilot.pause()
            switch = app.screen.query_one("#split", Switch)
            assert switch.value and app.controls.chunks == 3 and not switch.disabled
            assert str(app.screen.query_one("#header").render()).startswith("bstui attached ")
            await pilot.press("s")
            await wait_for(pilot, lambda: (run / CONTROLS).read_text().count("\n") >= 1)
            assert [json.loads(x) for x in (run / CONTROLS).read_text().splitlines()] == [
                {"cmd": "split", "enabled": False, "chunks": 3}
            ]
            assert not switch.value
    finally:
        lock.release()


async def test_a_k_that_divides_only_some_batch_sizes_says_which_switched(tmp_path):
    """k=5 over batch 1, 6, 60, 600, 6000: one message names the batch sizes that switched and those that
    stay plain, and the switch reads on (so the next `s` turns it off, as the message says)."""
    from textual.widgets import Switch

    bridge = FakeBridge(fixture_events()[:12])
    app = make_app(feed_factory=lambda attempt: LiveFeed(bridge, run_dir="/tmp/run-0"), chunks=4)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.state.started)
        await pilot.press("plus")  # 4 -> 5
        assert app.controls.chunks == 5
        await pilot.press("s")
        await wait_for(pilot, lambda: bridge.controls())
        assert bridge.controls() == [{"cmd": "split", "enabled": True, "chunks": 5}]
        said = [n.message for n in notes(app) if n.title == "split-backward"]
        assert said == ["split ÷5 on for batch 60, 600, 6000; batch 1, 6 stay plain (5 does not divide them)"]
        assert app.screen.query_one("#split", Switch).value
