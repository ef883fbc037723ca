"""The control file under hostile or careless use: any bytes, over-long lines, floods, a deleted,
replaced or linked file, a reader that fails or stalls. The reader never raises out of its thread,
never executes part of a line it dropped, reads a backlog to its end in one poll, and tells (a
`controls` event in the run directory, which viewers show) when the controls stop working."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.waiting import wait_until
from trainer.runlog import CONTROLS, EVENTS, Emitter, EventType, RunDirSink
from trainer.runlog.controls import MAX_LINE_BYTES, VIEWER_STOP, ControlFile, Controls, parse_control


def line(msg: object) -> bytes:
    return (json.dumps(msg) + "\n").encode()


def append(run_dir: Path, data: bytes) -> None:
    with open(run_dir / CONTROLS, "ab") as f:
        f.write(data)


class Told:
    """The reports of a ControlFile, in order."""

    def __init__(self) -> None:
        self.said: list[tuple[bool, str]] = []

    def __call__(self, working: bool, reason: str) -> None:
        self.said.append((working, reason))


def hand_polled(run_dir: Path, **kw) -> tuple[ControlFile, Controls, Told]:
    controls, told = Controls(), Told()
    cf = ControlFile(run_dir, controls, interval_s=3600, report=told, **kw)  # polled by hand
    return cf, controls, told


def test_a_deeply_nested_line_is_refused_without_recursing():
    assert parse_control(b"[" * 5000) is None
    assert parse_control(b'{"cmd": "pause", "x": ' + b"[" * 3000 + b"]" * 3000 + b"}") is None
    assert parse_control(b'{"cmd": "pause", "note": "[[[[[[[[[[[[[[[[[["}') == {
        "cmd": "pause"
    }  # inside a string


def test_a_bad_line_does_not_disable_the_commands_after_it(tmp_path: Path):
    controls = Controls()
    cf = ControlFile(tmp_path, controls, interval_s=0.01)
    assert cf.start()
    try:
        append(tmp_path, b"[" * 5000 + b"\n" + b"{" * 100_000 + b"\n" + b"\xff\x00\n")
        append(tmp_path, line({"cmd": "pause"}))
        wait_until(lambda: controls.paused, "the pause after the bad lines to apply")
        append(tmp_path, line({"cmd": "stop"}))
        wait_until(lambda: controls.stop, "the stop to apply")
        assert not cf.problem
    finally:
        cf.close()


@pytest.mark.parametrize(
    "flood",
    [b"x" * (2 << 20) + b"\n", line({"cmd": "bogus"}) * 400_000],
    ids=["a 2 MiB line", "a 7 MiB flood"],
)
def test_a_backlog_is_read_to_its_end_in_one_poll(tmp_path: Path, flood: bytes):
    cf, controls, _ = hand_polled(tmp_path)
    cf.start()
    try:
        append(tmp_path, flood + line({"cmd": "pause"}))
        assert cf.poll() == 1 and controls.paused
    finally:
        cf.close()


def test_in_a_backlog_the_latest_command_wins_and_any_stop_stops(tmp_path: Path):
    cf, controls, _ = hand_polled(tmp_path)
    cf.start()
    try:
        append(
            tmp_path,
            line({"cmd": "pause"})
            + line({"cmd": "split", "enabled": True, "chunks": 4})
            + line({"cmd": "resume"})
            + line({"cmd": "split", "enabled": True, "chunks": 8}),
        )
        before = controls.version
        assert cf.poll() == 2
        assert not controls.paused and controls.split_chunks == 8 and controls.version == before + 2
        append(tmp_path, line({"cmd": "stop"}) + line({"cmd": "resume"}))
        cf.poll()
        assert controls.stop
    finally:
        cf.close()


@pytest.mark.parametrize("polls_between", [False, True])
def test_the_tail_of_an_over_long_line_never_executes(tmp_path: Path, polls_between: bool):
    cf, controls, _ = hand_polled(tmp_path)
    cf.start()
    try:
        append(tmp_path, b"x" * (128 << 10))
        if polls_between:
            assert cf.poll() == 0
        append(tmp_path, b'{"cmd":"stop"}\n')
        assert cf.poll() == 0 and not controls.stop
        append(tmp_path, b"x" * (MAX_LINE_BYTES + 1) + b'{"cmd":"stop"}\n')  # just over, cut inside one read
        assert cf.poll() == 0 and not controls.stop
        append(tmp_path, line({"cmd": "pause"}))  # the next line is a line again
        assert cf.poll() == 1 and controls.paused
    finally:
        cf.close()


def test_a_deleted_file_is_made_again_and_a_replaced_one_is_read(tmp_path: Path):
    cf, controls, told = hand_polled(tmp_path)
    cf.start()
    try:
        os.unlink(tmp_path / CONTROLS)
        cf.poll()
        assert (tmp_path / CONTROLS).is_file() and told.said and told.said[-1][0]  # made again, and said
        append(tmp_path, line({"cmd": "pause"}))  # a viewer appends to the new file
        assert cf.poll() == 1 and controls.paused
        (tmp_path / "new").write_bytes(line({"cmd": "resume"}))
        os.replace(tmp_path / "new", tmp_path / CONTROLS)  # replaced: what it holds came after
        assert cf.poll() == 1 and not controls.paused
        append(tmp_path, line({"cmd": "stop"}))
        assert cf.poll() == 1 and controls.stop
    finally:
        cf.close()


def test_a_link_in_place_of_the_file_is_refused_and_said(tmp_path: Path):
    target = tmp_path / "elsewhere"
    target.write_bytes(b"")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / CONTROLS).symlink_to(target)
    cf, controls, told = hand_polled(run_dir)
    assert not cf.start()
    try:
        assert told.said == [(False, cf.problem)] and "symbolic link" in cf.problem
        target.write_bytes(line({"cmd": "stop"}))
        assert cf.poll() == 0 and not controls.stop  # nothing read through the link
        os.unlink(run_dir / CONTROLS)  # the user removes the link: the trainer makes its own file
        cf.poll()
        assert not cf.problem and told.said[-1][0]
        append(run_dir, line({"cmd": "pause"}))
        assert cf.poll() == 1 and controls.paused
    finally:
        cf.close()


def test_a_file_replaced_by_a_link_is_refused_and_a_paused_headless_sweep_resumes(tmp_path: Path):
    cf, controls, told = hand_polled(tmp_path, resume_on_loss=True)
    cf.start()
    try:
        append(tmp_path, line({"cmd": "pause"}))
        cf.poll()
        assert controls.paused
        os.unlink(tmp_path / CONTROLS)
        (tmp_path / CONTROLS).symlink_to("/dev/zero")
        cf.poll()
        assert cf.problem and told.said[-1][0] is False and "symbolic link" in told.said[-1][1]
        assert not controls.paused  # nobody could resume it any more
    finally:
        cf.close()


@pytest.mark.skipif(os.getuid() != 0, reason="making a file of another user needs root")
def test_another_users_file_is_refused_and_said(tmp_path: Path):
    (tmp_path / CONTROLS).write_bytes(b"")
    os.chown(tmp_path / CONTROLS, 54321, 54321)
    cf, controls, told = hand_polled(tmp_path)
    assert not cf.start()
    try:
        assert "another user" in cf.problem and told.said == [(False, cf.problem)]
        append(tmp_path, line({"cmd": "stop"}))
        assert cf.poll() == 0 and not controls.stop
    finally:
        cf.close()


def test_a_failing_poll_is_said_and_the_thread_goes_on(tmp_path: Path, monkeypatch):
    controls, told = Controls(), Told()
    failures = iter([RuntimeError("boom")])
    real_apply = controls.apply

    def apply_once_failing(msg):
        failure = next(failures, None)
        if failure is not None:
            raise failure
        real_apply(msg)

    monkeypatch.setattr(controls, "apply", apply_once_failing)
    cf = ControlFile(tmp_path, controls, interval_s=0.01, report=told)
    assert cf.start()
    try:
        append(tmp_path, line({"cmd": "pause"}))
        wait_until(lambda: told.said, "the reader's failure to be said")
        assert told.said[0][0] is False and "RuntimeError: boom" in told.said[0][1]
        append(tmp_path, line({"cmd": "pause"}))
        wait_until(lambda: controls.paused, "the next pause to apply (the reader goes on after a failure)")
        wait_until(lambda: len(told.said) >= 2, "the reader to say it works again")
        assert told.said[1][0] is True
    finally:
        cf.close()


def test_the_watchdog_says_when_polls_stop_coming(tmp_path: Path):
    controls, told = Controls(), Told()
    cf = ControlFile(tmp_path, controls, interval_s=0.01, report=told, stall_s=0.05)
    assert cf.start()
    try:
        with cf._lock:  # a read that hangs (a stalled file system) holds the reader here
            wait_until(lambda: told.said, "the watchdog to say the reader stalled")
        assert told.said[0][0] is False and "has not been read" in told.said[0][1]
    finally:
        cf.close()


def test_a_lost_control_file_is_recorded_in_the_run_directory(tmp_path: Path):
    from tui.state.sweep import SweepState

    sink = RunDirSink(tmp_path)
    emitter = Emitter([sink])
    cf = ControlFile(
        tmp_path,
        Controls(),
        interval_s=3600,
        report=lambda working, reason: emitter.emit(
            EventType.CONTROLS_CHANGED, working=working, reason=reason
        ),
    )
    cf.start()
    try:
        os.unlink(tmp_path / CONTROLS)
        os.mkfifo(tmp_path / CONTROLS)  # a FIFO in its place: refused, never waited on
        cf.poll()
    finally:
        cf.close()
        emitter.close()
    events = [json.loads(x) for x in (tmp_path / EVENTS).read_text().splitlines()]
    lost = [e for e in events if e["type"] == "controls"]
    assert lost and lost[0]["working"] is False and "not a regular file" in lost[0]["reason"]
    state = SweepState()
    assert state.apply(lost[0]) and "not a regular file" in state.controls_problem


def test_a_thread_beside_the_loop_never_cuts_an_event_line(tmp_path: Path):
    sink = RunDirSink(tmp_path)
    emitter = Emitter([sink])

    def emit_many(tag: str) -> None:
        for i in range(2000):
            emitter.emit(EventType.CONTROLS_CHANGED, working=True, reason=f"{tag} {i} " + "y" * 300)

    threads = [threading.Thread(target=emit_many, args=(tag,)) for tag in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    emitter.close()
    lines = (tmp_path / EVENTS).read_text().splitlines()
    assert len(lines) == 4000 and all(json.loads(x)["type"] == "controls" for x in lines)


# -- property: whatever bytes arrive, in whatever pieces ---------------------------------------------

_junk = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(
        [
            b"[" * 3000,
            b"{" * 3000,
            b'{"cmd": "stop"',
            b"\n",
            b'"',
            b"\\",
            b"x" * 5000,
            b"\xff\xfe",
            b'{"cmd": "split", "enabled": true, "chunks": 1e999}',
            b'{"cmd": "split", "enabled": true}',
            b'{"cmd": null}',
            b"NaN",
            b"[" * 4 + b"]" * 4,
        ]
    ),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(pieces=st.lists(_junk, max_size=12))
def test_any_bytes_leave_the_reader_working(tmp_path_factory, pieces):
    run_dir = tmp_path_factory.mktemp("run")
    cf, controls, told = hand_polled(run_dir)
    cf.start()
    try:
        for piece in pieces:
            append(run_dir, piece)
            cf.poll()  # never raises
        assert not cf.problem and not told.said
        append(run_dir, b"\n" + line({"cmd": "pause"}))  # after any junk, a new line is a command again
        cf.poll()
        assert controls.paused
    finally:
        cf.close()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    junk=st.binary(max_size=200),
    extra=st.integers(min_value=1, max_value=2 * MAX_LINE_BYTES),
    cut=st.integers(min_value=0, max_value=3 * MAX_LINE_BYTES),
)
def test_no_part_of_an_over_long_line_is_ever_a_command(tmp_path_factory, junk, extra, cut):
    prefix = junk.replace(b"\n", b" ") + b"x" * (MAX_LINE_BYTES + extra)
    run_dir = tmp_path_factory.mktemp("run")
    cf, controls, _ = hand_polled(run_dir)
    cf.start()
    try:
        data = prefix + b'{"cmd": "stop"}\n'
        cut = min(cut, len(data))
        append(run_dir, data[:cut])  # the line arrives in two pieces, polled in between
        cf.poll()
        append(run_dir, data[cut:])
        cf.poll()
        assert not controls.stop
        assert controls.stop_reason != VIEWER_STOP
    finally:
        cf.close()


_lines = st.lists(
    st.sampled_from(
        [
            b'{"cmd": "pause"}',
            b'{"cmd": "resume"}',
            b'{"cmd": "stop"}',
            b'{"cmd": "\\u0073top"}',
            b'{"cmd": "split", "enabled": true, "chunks": 4}',
            b'{"cmd": "split", "enabled": false}',
            b'{"cmd": "split", "enabled": true, "chunks": 8}',
            b"junk",
            b'{"cmd": "stopper"}',
            b"[" * 50,
        ]
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(lines=_lines)
def test_reading_a_backlog_from_its_end_gives_what_applying_every_line_would(lines):
    from trainer.runlog.controls import latest_commands, latest_in

    everything = [c for c in map(parse_control, lines) if c is not None]
    assert latest_in(lines) == latest_commands(everything)
    one_by_one, reduced = Controls(), Controls()
    for command in everything:
        one_by_one.apply(command)
    for command in latest_in(lines):
        reduced.apply(command)
    assert (reduced.stop, reduced.split_chunks) == (one_by_one.stop, one_by_one.split_chunks)
    if not reduced.stop:  # a stop ends the sweep: whether a pause came after it changes nothing
        assert reduced.paused == one_by_one.paused
