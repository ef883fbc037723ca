"""The replay reader on hostile files: a recorded events.jsonl randomly truncated,
byte-flipped, shuffled and salted with junk (binary, foreign JSON, NaN literals, deep nesting,
over-long lines). Reader + SweepState never raise, every line is either used or counted as
skipped, and a file replaced or truncated under the reader is read again from its start."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.tui.conftest import FIXTURE_DIR
from trainer.runlog import parse_event as parse_line
from tui.feeds.base import FEED_RESET
from tui.feeds.event_reader import EventReader
from tui.feeds.replay import ReplayFeed
from tui.state.sweep import SweepState

FIXTURE = (FIXTURE_DIR / "events.jsonl").read_bytes()
MAX_LINE = 4096  # the reader's line limit in these tests (the real one is 8 MiB)
#: How many garbled files the property test built.
TRIED = {"files": 0}

JUNK = st.one_of(
    st.binary(min_size=1, max_size=200),
    st.sampled_from(
        [
            b"NaN",
            b'{"type": NaN}',
            b'{"type": "losses", "run": "bs1", "first_iter": 0, "values": [NaN, Infinity]}',
            b'{"type": "epoch_end", "run": "bs60", "epoch": 1e999, "wall_s": -Infinity}',
            b'{"type": "losses", "run": "bs6", "first_iter": -5, "values": [1]}',
            b'{"type": "losses", "run": "bs1", "first_iter": 1000000000000, "values": [1]}',  # terabytes, if believed
            b'{"type": "losses", "run": "bs60", "first_iter": 900000000, "values": [1]}',
            b'{"type": "run_started", "run": "bs7", "batch_size": "many"}',
            b'{"type": "sweep_started", "runs": 3}',
            b'{"type": "sweep_started", "runs": [{"run": 1}]}',
            b'{"type": "__import__(\'os\').system(\'touch PWNED\')"}',
            b"[" * 5000 + b"]" * 5000,
            b'"just a string"',
            b"null",
            b"12345678901234567890",
            b'{"type": ["list"]}',
            b'\xef\xbb\xbf{"type": "sweep_finished"}',
            b"\x80\x81\x82\x00\xff",
            b'{"type": "losses", "run": "bs1", "first_iter": 0, "values": "not a list"}',
            b'{"type": "mode_changed", "run": "bs60", "iter": null, "split_chunks": 4}',
        ]
    ),
    st.builds(lambda n: b"x" * n, st.integers(MAX_LINE + 1, 3 * MAX_LINE)),  # over the line limit
    st.recursive(  # foreign JSON objects, some with a known event type and wrong field types
        st.none()
        | st.booleans()
        | st.integers(-(10**6), 10**6)
        | st.floats(allow_nan=False)
        | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=8,
    ).map(lambda v: json.dumps(v).encode()),
    st.builds(
        lambda kind, run, body: json.dumps({"type": kind, "run": run, **body}).encode(),
        st.sampled_from(
            [
                "sweep_started",
                "run_started",
                "losses",
                "epoch_end",
                "mode_changed",
                "target_reached",
                "run_finished",
                "sweep_finished",
                "paused",
                "martian",
            ]
        ),
        st.sampled_from(["bs1", "bs6", "bs60", "bs600", "bs6000", "nope", ""]),
        st.dictionaries(
            st.sampled_from(
                [
                    "epoch",
                    "first_iter",
                    "values",
                    "status",
                    "batch_size",
                    "iter",
                    "paused",
                    "runs",
                    "summary",
                    "split_chunks",
                    "test_acc",
                ]
            ),
            st.none()
            | st.integers(-3, 10**5)
            | st.text(max_size=4)
            | st.lists(st.integers(0, 3), max_size=4),
            max_size=4,
        ),
    ),
)


@st.composite
def garbled(draw: st.DrawFn) -> bytes:
    """The fixture after a few random mutations, in random order."""
    lines = FIXTURE.split(b"\n")
    ops = draw(
        st.lists(
            st.sampled_from(["shuffle", "insert", "flip", "drop", "truncate", "cut_line"]),
            min_size=1,
            max_size=6,
        )
    )
    data = b""
    for op in ops:
        if op == "shuffle":  # reordered: an epoch_end before its run_started and the like
            rnd = random.Random(draw(st.integers(0, 2**32)))
            body = [ln for ln in lines if ln]
            k = draw(st.integers(2, max(2, len(body))))
            start = draw(st.integers(0, max(0, len(body) - k)))
            part = body[start : start + k]
            rnd.shuffle(part)
            lines = body[:start] + part + body[start + k :] + [b""]
        elif op == "insert":
            for _ in range(draw(st.integers(1, 5))):
                lines.insert(draw(st.integers(0, len(lines))), draw(JUNK).replace(b"\n", b" "))
        elif op == "drop" and len(lines) > 1:
            del lines[draw(st.integers(0, len(lines) - 1))]
        elif op == "cut_line" and lines:  # a line cut short (a crash mid-write), still newline-ended
            i = draw(st.integers(0, len(lines) - 1))
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        data = b"\n".join(lines)
        if op == "flip" and data:
            buf = bytearray(data)
            for _ in range(draw(st.integers(1, 20))):
                buf[draw(st.integers(0, len(buf) - 1))] ^= draw(st.integers(1, 255))
            lines = bytes(buf).split(b"\n")
        elif op == "truncate" and data:
            lines = data[: draw(st.integers(0, len(data)))].split(b"\n")
    return b"\n".join(lines)


def expected_counts(data: bytes) -> tuple[int, int]:
    """(complete non-blank lines, lines that are not usable events), judged line by line."""
    *complete, tail = data.split(b"\n")  # the tail (after the last newline) is still being written ...
    lines = [ln for ln in complete if ln.strip()]
    bad = sum(1 for ln in lines if len(ln) > MAX_LINE or parse_line(ln) is None)
    runaway = int(len(tail) > MAX_LINE)  # ... unless it is already too long to be an event
    return len(lines) + runaway, bad + runaway


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(data=garbled(), chunk=st.integers(512, 1 << 16))
def test_garbled_files_never_break_the_reader_or_the_state(tmp_path_factory, data, chunk):
    TRIED["files"] += 1
    path = tmp_path_factory.mktemp("garbled") / "events.jsonl"
    path.write_bytes(data)
    reader = EventReader(path, chunk_bytes=chunk, max_line_bytes=MAX_LINE)
    state = SweepState()
    events = []
    while True:
        batch = reader.read()
        events.extend(batch)
        if not batch and reader.at_end:
            break
    applied = sum(state.apply(e) for e in events)
    lines, bad = expected_counts(data)
    assert reader.lines == lines
    assert reader.bad_lines == bad  # every skipped line is counted ...
    assert len(events) + reader.bad_lines == lines  # ... and every other line is an event
    assert applied + state.skipped == len(events)  # events the model could not use are counted too
    assert not Path("PWNED").exists()
    for run in state.runs.values():  # what is shown stays drawable
        run.losses.select(40)
        run.losses.smooth  # noqa: B018 - the property computes the smoothed series


def test_the_property_test_tried_many_files():
    """Runs after the property test in this module: it did build and read garbled files."""
    assert TRIED["files"] >= 100, TRIED


def test_the_clean_fixture_has_no_skipped_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(FIXTURE)
    reader = EventReader(path)
    state = SweepState()
    state.apply_all(reader.read())
    assert reader.bad_lines == 0 and state.skipped == 0 and state.finished


def test_nan_and_overflowing_numbers_read_as_missing(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"type": "losses", "values": [NaN, Infinity, -Infinity, 1e999, 0.5]}\n')
    (event,) = EventReader(path).read()
    assert event["values"] == [None, None, None, None, 0.5]


def test_an_over_long_line_is_skipped_even_while_it_is_being_written(tmp_path):
    path = tmp_path / "events.jsonl"
    reader = EventReader(path, max_line_bytes=1000)
    path.write_bytes(b'{"type": "a"}\n' + b"y" * 5000)  # a runaway line, no newline yet
    assert [e["type"] for e in reader.read()] == ["a"]
    assert reader.bad_lines == 1 and not reader._partial  # counted and not kept in memory
    with open(path, "ab") as f:
        f.write(b"y" * 5000 + b'\n{"type": "b"}\n')
    assert [e["type"] for e in reader.read()] == ["b"]
    assert reader.bad_lines == 1 and reader.lines == 3


def test_a_replaced_file_is_read_again_from_its_start(tmp_path):
    """resume rewrites events.jsonl atomically: a new inode, which the reader must notice."""
    path = tmp_path / "events.jsonl"
    path.write_text('{"type": "a"}\n{"type": "b"}\n{"type": "junk"\n')
    reader = EventReader(path)
    assert len(reader.read()) == 2 and reader.bad_lines == 1
    tmp = tmp_path / "events.jsonl.tmp"
    tmp.write_text('{"type": "a"}\n{"type": "b"}\n{"type": "c"}\n{"type": "d"}\n')  # longer, same start
    os.replace(tmp, path)
    assert [e["type"] for e in reader.read()] == ["a", "b", "c", "d"]
    assert reader.generation == 1 and reader.bad_lines == 0


def test_a_rewrite_in_place_that_grew_past_the_reader_is_noticed(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"type": "a"}\n')
    reader = EventReader(path)
    assert len(reader.read()) == 1
    with open(path, "r+") as f:  # same inode, longer, different first bytes
        f.write('{"type": "x"}\n{"type": "y"}\n')
    assert [e["type"] for e in reader.read()] == ["x", "y"]
    assert reader.generation == 1


def test_the_replay_feed_marks_a_replaced_file_so_the_state_is_rebuilt(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    path = run / "events.jsonl"
    path.write_bytes(FIXTURE)
    feed = ReplayFeed(str(run), poll_s=0.01)
    first = feed.read(0)
    assert FEED_RESET not in first and first[-1]["type"] == "sweep_finished"
    kept = b"\n".join(FIXTURE.split(b"\n")[:20]) + b"\n"
    (run / "new").write_bytes(kept)
    os.replace(run / "new", path)
    again = feed.read(0)
    assert again[0] is FEED_RESET and len(again) == 21
    assert feed.ended() is None  # the replaced file has no sweep_finished: following goes on
