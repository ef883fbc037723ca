"""The run directory's files: whole event lines, atomic summary, safe reading."""

from __future__ import annotations

import json

import pytest

from trainer.runlog import (
    SUMMARY_FIELDS,
    Emitter,
    RunDirError,
    RunDirSink,
    create_run_dir,
    encode,
    read_events,
    read_summary,
    summary_csv,
)


def test_nan_and_inf_become_null_so_every_line_is_strict_json():
    line = encode({"type": "losses", "t": 0.0, "run": "bs1", "first_iter": 0, "values": [1.0, float("nan")]})
    assert json.loads(line)["values"] == [1.0, None]
    assert "NaN" not in line and "\n" not in line


def test_sink_writes_events_and_keeps_summary_current(tmp_path):
    sink = RunDirSink(create_run_dir(tmp_path / "r"))
    emitter = Emitter([sink])
    emitter.emit("sweep_started", runs=[{"run": "bs6", "batch_size": 6, "lr": 0.02, "split_chunks": 1}])
    emitter.emit(
        "run_finished",
        run="bs6",
        status="diverged",
        reason="nan",
        summary={
            "run": "bs6",
            "batch_size": 6,
            "lr": 0.02,
            "split_chunks": 1,
            "status": "diverged",
            "epochs": 1,
            "best_test_acc": 0.5,
            "time_to_target_s": None,
        },
    )
    rows = read_summary(tmp_path / "r")  # readable while the sweep is still running
    assert rows[0]["status"] == "diverged" and rows[0]["time_to_target_s"] == ""
    sink.close()
    log = read_events(tmp_path / "r")
    events, skipped = log.events, log.skipped
    assert [e["type"] for e in events] == ["sweep_started", "run_finished"] and skipped == 0


def test_summary_has_the_design_columns_in_order():
    header = summary_csv([]).splitlines()[0]
    assert header.split(",") == SUMMARY_FIELDS


def test_reader_skips_garbled_lines_and_waits_for_a_partial_last_line(tmp_path):
    run = create_run_dir(tmp_path / "r")
    (run / "events.jsonl").write_text(
        '{"type":"sweep_started","t":0}\nnot json\n[1,2]\n{"type":"losses","t":1,"run":"bs1","first_iter":0,"values":[2.3]}\n{"type":"epo'
    )
    log = read_events(run)
    assert [e["type"] for e in log.events] == ["sweep_started", "losses"]
    assert log.skipped == 2 and log.partial  # the partial last line is not a skipped one: it may grow


def test_a_directory_holding_a_run_is_refused_unless_forced(tmp_path):
    run = create_run_dir(tmp_path / "r")
    (run / "events.jsonl").write_text("{}\n")
    with pytest.raises(RunDirError, match="--force"):
        create_run_dir(run)
    create_run_dir(run, force=True)
    assert not (run / "events.jsonl").exists()


def test_an_unwritable_place_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RunDirError, match="not a directory"):
        create_run_dir(blocker)
