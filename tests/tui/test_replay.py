"""Reading events.jsonl: whole lines only, garbage skipped and counted, growth followed."""

from __future__ import annotations

import json

import pytest

from tui.feeds.event_reader import EventReader, ReplayError, events_path, read_all


def test_partial_last_line_waits_for_its_newline(tmp_path):
    path = tmp_path / "events.jsonl"
    first = json.dumps({"type": "sweep_started", "t": 0})
    second = json.dumps({"type": "sweep_finished", "t": 1, "status": "done"})
    path.write_text(first + "\n" + second[:10])
    reader = EventReader(path)
    assert [e["type"] for e in reader.read()] == ["sweep_started"]
    assert reader.read() == []
    with open(path, "a") as f:
        f.write(second[10:] + "\n")
    assert [e["type"] for e in reader.read()] == ["sweep_finished"]
    assert reader.bad_lines == 0


def test_garbled_and_foreign_lines_are_skipped_and_counted(tmp_path):
    path = tmp_path / "events.jsonl"
    lines = [
        json.dumps({"type": "sweep_started", "t": 0}),
        "this is not json",
        "[1, 2, 3]",
        json.dumps({"no_type": 1}),
        "\x00\xff garbage",
        '{"type": "__import__(\'os\').system(\'false\')", "t": 0}',  # just a string: never evaluated
        json.dumps({"type": "sweep_finished", "t": 1}),
    ]
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8", "surrogateescape"))
    events, bad = read_all(tmp_path)
    assert [e["type"] for e in events][0] == "sweep_started" and events[-1]["type"] == "sweep_finished"
    assert bad == 4


def test_not_a_run_directory_says_what_to_pass(tmp_path):
    with pytest.raises(ReplayError, match="does not exist"):
        events_path(tmp_path / "missing")
    with pytest.raises(ReplayError, match="no events.jsonl"):
        events_path(tmp_path)


def test_a_truncated_file_is_read_again_from_the_start(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({"type": "a"}) + "\n" + json.dumps({"type": "b"}) + "\n")
    reader = EventReader(path)
    assert len(reader.read()) == 2
    path.write_text(json.dumps({"type": "c"}) + "\n")
    assert [e["type"] for e in reader.read()] == ["c"]
