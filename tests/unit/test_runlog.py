"""trainer.runlog: the contract is defined once and used; the one writer and the one reader behave."""

from __future__ import annotations

import ast
import json
import os
import stat
import threading
from pathlib import Path

import pytest

from trainer import runlog
from trainer.runlog import (
    EVENT_TYPES,
    SUMMARY_FIELDS,
    EventType,
    UnreadableFile,
    open_append,
    open_regular,
    parse_event,
    read_events,
    read_text,
    summary_rows,
    write_atomic,
)
from trainer.runlog.field_types import EVENT_FIELDS
from trainer.runlog.reader import LineSplitter, parse_json

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = [p for d in ("trainer", "tui") for p in (ROOT / d).rglob("*.py")]
NAMES = {
    runlog.EVENTS,
    runlog.SUMMARY,
    runlog.CONFIG,
    runlog.CHECKPOINTS,
    runlog.LOCK,
    runlog.REPORT,
    runlog.ERRORS,
    runlog.TRAINER_LOG,
}


def _no_block(fn, *args, timeout: float = 20.0):
    """Run fn in a thread; fail (instead of hanging the suite) if it blocks."""
    out: dict = {}

    def target():
        try:
            out["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            out["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{fn.__name__} blocked"
    return out


# -- the contract ---------------------------------------------------------------------------------


def _string_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    return [
        (n.lineno, n.value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


def test_run_directory_names_are_spelled_only_in_the_contract():
    found = [
        f"{p.relative_to(ROOT)}:{line}: {value!r}"
        for p in PRODUCTION
        if p.name != "contract.py"
        for line, value in _string_constants(p)
        if value in NAMES
    ]
    assert not found, "use trainer.runlog's constants:\n" + "\n".join(found)


def test_the_event_alias_is_defined_once():
    defs = [str(p.relative_to(ROOT)) for p in PRODUCTION if "Event = dict[str, Any]" in p.read_text()]
    assert defs == ["trainer/runlog/contract.py"]


def _emitted_types() -> set[str]:
    """Every event type the trainer emits: emit("x", ...) and emit(EventType.X, ...) calls."""
    found = set()
    for path in (ROOT / "trainer").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "emit" and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.add(arg.value)
                elif isinstance(arg, ast.Attribute) and getattr(arg.value, "id", "") == "EventType":
                    found.add(getattr(EventType, arg.attr))
    return found


def test_every_emitted_type_is_in_the_contract_and_the_contract_is_complete():
    emitted = _emitted_types()
    assert emitted and emitted <= set(EVENT_TYPES), emitted - set(EVENT_TYPES)
    assert {"paused", "sweep_resumed"} <= set(EVENT_TYPES)
    assert set(EVENT_FIELDS) == set(EVENT_TYPES)
    assert set(runlog.RUN_STATUSES) == {"done", "diverged", "oom", "stopped", "failed", "collapsed"}
    assert set(runlog.SWEEP_STATUSES) == {"done", "stopped", "failed"}


def test_summary_columns_are_the_documented_ones_in_order():
    # The first version's columns stay first, in order; later versions added columns after them (add only).
    assert SUMMARY_FIELDS[:13] == [
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
    assert SUMMARY_FIELDS[13:24] == [
        "final_test_acc",
        "iters_to_target_lo",
        "time_to_target_lo_s",
        "compute_to_target_lo_s",
        "samples_to_target",
        "samples_to_target_lo",
        "optimizer_steps_to_target",
        "effective_lr",
        "last_test_acc",
        "eval_set",
        "eval_samples",
    ]
    # then the time to target as if trained alone (trainer.sweep.calibrate)
    assert SUMMARY_FIELDS[24:] == ["time_alone_to_target_s", "time_alone_to_target_lo_s", "step_alone_s"]
    readme = (ROOT / "docs" / "run-directory.md").read_text()
    assert all(f"`{c}`" in readme for c in SUMMARY_FIELDS)
    assert all(f"`{t}`" in readme for t in EVENT_TYPES)


@pytest.mark.subprocess
def test_runlog_and_the_apps_reader_are_pure():
    """The app imports these before any window opens: no torch, numpy, rich or textual."""
    import subprocess
    import sys

    code = (
        "import sys, trainer.runlog, tui.feeds.event_reader; "
        "bad = {'torch', 'numpy', 'rich', 'textual'} & set(sys.modules); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


# -- the one atomic writer ------------------------------------------------------------------------


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o644), (0o077, 0o600)])
def test_written_files_are_readable_by_the_group_less_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_atomic(tmp_path / "summary.csv", "a,b\n")
        write_atomic(tmp_path / "x.pt", b"\x00\x01")
        write_atomic(tmp_path / "c.npz", lambda fh: fh.write(b"zz"))
        with open_append(tmp_path / "events.jsonl") as fh:
            fh.write("{}\n")
    finally:
        os.umask(old)
    for name in ("summary.csv", "x.pt", "c.npz", "events.jsonl"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
    assert (tmp_path / "x.pt").read_bytes() == b"\x00\x01" and (tmp_path / "c.npz").read_bytes() == b"zz"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "summary.csv"
    target.write_text("old\n")

    def boom(fh):
        fh.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        write_atomic(target, boom)
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.csv"]


def test_writes_replace_a_symlink_and_never_touch_its_target(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    run = tmp_path / "run"
    run.mkdir()
    for name in ("summary.csv", "errors.log"):
        (run / name).symlink_to(outside)
    write_atomic(run / "summary.csv", "run\n")
    with open_append(run / "errors.log") as fh:
        fh.write("traceback\n")
    assert outside.read_text() == "precious\n"
    for name, text in (("summary.csv", "run\n"), ("errors.log", "traceback\n")):
        assert not (run / name).is_symlink() and (run / name).read_text() == text


def test_an_append_never_blocks_on_a_fifo_in_place_of_a_file(tmp_path):
    os.mkfifo(tmp_path / "errors.log")
    out = _no_block(lambda: open_append(tmp_path / "errors.log").close())
    assert "error" not in out and (tmp_path / "errors.log").is_file()


# -- the one tolerant reader ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory", "dangling"])
def test_only_regular_files_are_read_and_nothing_blocks(tmp_path, kind):
    path = tmp_path / "events.jsonl"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "directory":
        path.mkdir()
    else:
        path.symlink_to(tmp_path / "nothing")
    for reader in (read_events, lambda p: read_text(p, 1000), open_regular):
        out = _no_block(reader, path)
        if kind == "dangling":
            assert isinstance(out.get("error"), FileNotFoundError)
        else:
            assert isinstance(out.get("error"), UnreadableFile), out
            assert str(path) in str(out["error"]) and "not a regular file" in str(out["error"])


def test_a_file_beyond_its_size_bound_is_refused(tmp_path):
    path = tmp_path / "config.toml"
    path.write_bytes(b"x" * 2000)
    with pytest.raises(UnreadableFile, match="more than the 1,000"):
        read_text(path, 1000)


def test_200000_nested_brackets_are_an_unreadable_line_not_a_recursion_error(tmp_path):
    deep = b"[" * 200_000 + b"]" * 200_000
    obj = b'{"type": "losses", "run": "bs1", "values": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert parse_event(deep) is None and parse_event(obj) is None
    (tmp_path / "events.jsonl").write_bytes(deep + b"\n" + obj + b"\n" + b'{"type": "sweep_started"}\n')
    log = read_events(tmp_path)
    assert [e["type"] for e in log.events] == ["sweep_started"] and log.skipped == 2
    with pytest.raises(ValueError, match="nested deeper"):
        parse_json("[" * 65 + "]" * 65)


def test_brackets_inside_strings_do_not_count_as_nesting():
    reason = "[" * 500 + '\\"' + "{" * 500  # a traceback may hold anything
    line = json.dumps(
        {"type": "run_finished", "run": "bs1", "status": "failed", "traceback": reason}
    ).encode()
    assert parse_event(line)["traceback"] == reason


def test_nan_infinity_and_overflow_read_as_null():
    event = parse_event(
        b'{"type": "epoch_end", "run": "bs1", "epoch": 1, "test_loss": NaN, "wall_s": Infinity, "lr": 1e999}'
    )
    assert event["test_loss"] is None and event["wall_s"] is None and event["lr"] is None


@pytest.mark.parametrize(
    "line",
    [
        b'{"type": "losses", "run": "bs1", "first_iter": "0", "values": [1.0]}',
        b'{"type": "losses", "run": "bs1", "first_iter": 0, "values": "not a list"}',
        b'{"type": "losses", "run": "bs1", "first_iter": 0, "values": [1.0, "x"]}',
        b'{"type": "epoch_end", "run": "bs1", "epoch": [1]}',
        b'{"type": "epoch_end", "run": "bs1", "epoch": true}',
        b'{"type": "epoch_end", "run": 7, "epoch": 1}',
        b'{"type": "epoch_end", "run": "bs1", "epoch": 1, "t": "soon"}',
        b'{"type": "sweep_started", "runs": 3}',
        b'{"type": "sweep_started", "runs": [{"run": 1}]}',
        b'{"type": "sweep_started", "runs": [], "config": [1]}',
        b'{"type": "run_finished", "run": "bs1", "status": "done", "summary": {"batch_size": 6}}',
        b'{"type": "run_finished", "run": "bs1", "status": "done", "summary": {"run": "bs1", "batch_size": "many"}}',
        b'{"type": "sweep_finished", "status": "done", "summaries": [{"no_run": 1}]}',
        b'{"type": "paused", "paused": "yes"}',
        b'{"type": ["list"]}',
        b"[1, 2]",
        b'"text"',
        b"\xff\xfe{}",
        b'{"type": "losses"',
        b'\xef\xbb\xbf{"type": "sweep_finished"}',
        b"12345678901234567890" * 300,
    ],
)
def test_events_with_wrong_types_or_no_shape_are_unreadable(line):
    assert parse_event(line) is None


def test_unknown_types_and_extra_fields_stay_readable():
    """Add fields and types freely: a newer trainer's events are read by an older reader."""
    assert parse_event(b'{"type": "gns", "t": 1.5, "run": "bs6", "whatever": {"a": [1]}}')["type"] == "gns"
    assert parse_event(b'{"type": "losses", "run": "bs1", "first_iter": 0, "values": [1.0, null], "new": 1}')


def test_the_recorded_fixtures_are_read_without_a_skipped_line():
    for path in (ROOT / "tests" / "tui" / "fixtures").rglob("events.jsonl"):
        log = read_events(path)
        assert log.events and log.skipped == 0 and not log.partial, path


def test_the_line_splitter_drops_an_over_long_line_as_it_arrives():
    splitter = LineSplitter(max_line_bytes=10)
    assert splitter.feed(b"ok\n" + b"x" * 50) == ([b"ok"], 1)
    assert splitter.partial == b"" and splitter.discarding
    assert splitter.feed(b"xxx\nnext\npart") == ([b"next"], 0)
    assert splitter.partial == b"part"


# -- summary.csv ----------------------------------------------------------------------------------


def test_summary_rows_skip_what_is_not_a_row(tmp_path):
    path = tmp_path / "summary.csv"
    path.write_text("run,batch_size\nbs6,6\nbs60\nbs600,600,extra\n" + "bs7," + "9" * 200_000 + "\nbs8,8\n")
    rows, bad = summary_rows(tmp_path)
    assert [r["run"] for r in rows] == ["bs6", "bs8"] and bad == 3
    path.write_bytes(b"\xff\xfe garbage")
    with pytest.raises(UnreadableFile, match="not UTF-8"):
        summary_rows(path)


# -- trainer.lock ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "dangling", "huge", "directory"])
def test_a_lock_that_is_not_a_small_regular_file_is_unreadable_and_replaceable_once_old(tmp_path, kind):
    lock = tmp_path / runlog.LOCK
    if kind == "fifo":
        os.mkfifo(lock)
    elif kind == "dev-zero":
        lock.symlink_to("/dev/zero")
    elif kind == "dangling":
        lock.symlink_to(tmp_path / "nothing")
    elif kind == "huge":
        lock.write_bytes(b"{" + b" " * (1 << 20) + b"}")
    else:
        lock.mkdir()
    status = _no_block(runlog.lock_status, tmp_path)["value"]
    assert status["state"] == "live" and status["unreadable"], status  # fresh: maybe being written
    old = os.lstat(lock).st_mtime - 60
    os.utime(lock, (old, old), follow_symlinks=False)
    assert runlog.lock_status(tmp_path)["state"] == "stale"
    if kind == "directory":  # not ours to remove: said so, not a traceback
        with pytest.raises(runlog.RunDirLocked, match="remove it by hand"):
            runlog.RunLock.acquire(tmp_path)
        return
    held = runlog.RunLock.acquire(tmp_path)
    assert held.replaced["unreadable"] and lock.is_file() and not lock.is_symlink()
    held.release()
    assert not os.path.lexists(lock)


def test_the_locks_own_fields_are_still_written(tmp_path):
    old = os.umask(0o022)
    try:
        held = runlog.RunLock.acquire(tmp_path, command="python -m trainer run x.toml")
    finally:
        os.umask(old)
    info = json.loads((tmp_path / runlog.LOCK).read_text())
    assert set(info) == set(runlog.contract.LOCK_FIELDS)
    assert stat.S_IMODE((tmp_path / runlog.LOCK).stat().st_mode) == 0o644
    held.release()


def test_events_hold_plain_values_only_so_the_app_never_unpickles_torch():
    """torch.__version__ is a str subclass from torch: on the app's queue, unpickling it imported torch
    in the app (seconds of CPU, and the app's exit waited for it). Events carry plain values only."""
    import numpy as np

    from trainer.runlog import Emitter, ListSink

    class Version(str):  # what torch.torch_version.TorchVersion is
        pass

    class Count(int):
        pass

    sink = ListSink()
    Emitter([sink]).emit(
        "sweep_started",
        torch=Version("2.9.0"),
        n=Count(3),
        acc=np.float64(0.5),
        runs=(Version("bs1"), np.float32(0.25)),
        nested={"x": np.float64("nan")},
    )
    event = sink.events[0]
    assert type(event["torch"]) is str and event["torch"] == "2.9.0"
    assert type(event["n"]) is int and type(event["acc"]) is float
    assert [type(v) for v in event["runs"]] == [str, float] and event["nested"]["x"] is None
