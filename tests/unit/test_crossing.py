"""Crossing of the target as an interval (trainer/analysis/crossing.py): the tracker the run loop will keep, and
the same fields derived from the events of run directories recorded before it."""

from __future__ import annotations

import json

import pytest

from trainer.analysis.crossing import SCIENCE_FIELDS, TargetCrossing, fill_from_events, optimizer_steps_at


def _observe(c: TargetCrossing, acc: float, it: int, k: int = 1) -> bool:
    return c.observe(
        acc, iters=it, samples=it * 10, wall_s=it / 100, compute_s=it / 200, optimizer_steps=it * k
    )


def test_the_crossing_is_kept_between_the_last_miss_and_the_hit():
    c = TargetCrossing(0.9)
    assert not _observe(c, 0.5, 100)
    assert not _observe(c, 0.85, 200)
    assert _observe(c, 0.91, 300)
    assert not _observe(c, 0.95, 400)  # only the first hit counts
    f = c.fields()
    assert (f["iters_to_target_lo"], f["iters_to_target"]) == (200, 300)
    assert (f["samples_to_target_lo"], f["samples_to_target"]) == (2000, 3000)
    assert (f["time_to_target_lo_s"], f["time_to_target_s"]) == (2.0, 3.0)
    assert (f["optimizer_steps_to_target_lo"], f["optimizer_steps_to_target"]) == (200, 300)


def test_a_hit_at_the_first_evaluation_has_the_start_as_its_last_miss():
    c = TargetCrossing(0.5)
    assert _observe(c, 0.6, 50)
    assert c.fields()["iters_to_target_lo"] == 0


def test_not_reached_leaves_every_field_empty_and_state_round_trips():
    c = TargetCrossing(0.99)
    _observe(c, 0.5, 10)
    assert all(v is None for v in c.fields().values())
    d = TargetCrossing(0.1)
    d.load_state_dict(json.loads(json.dumps(c.state_dict())))
    assert _observe(d, 0.995, 20) and d.fields()["iters_to_target_lo"] == 10
    with pytest.raises(ValueError, match="optimizer_steps"):
        c.observe(0.5, iters=1, samples=1, wall_s=0, compute_s=0)


def test_every_new_field_is_documented():
    assert {
        "iters_to_target_lo",
        "samples_to_target_lo",
        "time_to_target_lo_s",
        "optimizer_steps",
        "effective_lr",
        "final_test_acc",
        "b_simple_lo",
        "b_simple_hi",
    } <= set(SCIENCE_FIELDS)
    assert set(TargetCrossing(0.5).fields()) - {
        "iters_to_target",
        "samples_to_target",
        "time_to_target_s",
        "compute_to_target_s",
    } <= set(SCIENCE_FIELDS)


def test_optimizer_steps_follow_the_split_backward_schedule():
    schedule = [(0.0, 1), (100.0, 4), (300.0, 1)]
    assert optimizer_steps_at(schedule, 50) == 50
    assert optimizer_steps_at(schedule, 200) == 100 + 4 * 100
    assert optimizer_steps_at(schedule, 400) == 100 + 4 * 200 + 100


def _epoch(run, epoch, it, acc, loss=0.5, b=10):
    return {
        "type": "epoch_end",
        "run": run,
        "epoch": epoch,
        "iters": 100,
        "samples": 1000,
        "wall_s": 2.0,
        "compute_s": 1.0,
        "test_acc": acc,
        "train_loss": loss,
        "total_iters": it,
        "total_samples": it * b,
    }


def test_older_run_directories_get_epoch_resolution_intervals_and_collapse():
    events = [
        {"type": "run_started", "run": "a", "batch_size": 10, "split_chunks": 1},
        {"type": "mode_changed", "run": "a", "iter": 150, "split_chunks": 2},
        _epoch("a", 1, 100, 0.5),
        _epoch("a", 2, 200, 0.7),
        _epoch("a", 3, 300, 0.95),
        {"type": "target_reached", "run": "a", "epoch": 3, "iter": 300},
        {"type": "run_started", "run": "b", "batch_size": 10, "split_chunks": 1},
        _epoch("b", 1, 100, 0.926),
        _epoch("b", 2, 200, 0.829),
        _epoch("b", 3, 300, 0.1135, loss=2.36),
    ]
    rows = [
        {
            "run": "a",
            "batch_size": 10,
            "lr": 0.1,
            "split_chunks": 2,
            "status": "done",
            "iters_to_target": 300,
            "samples_to_target": 3000,
            "time_to_target_s": 6.0,
        },
        {
            "run": "b",
            "batch_size": 10,
            "lr": 0.2,
            "split_chunks": 1,
            "status": "done",
            "iters_to_target": 100,
        },
    ]
    out, notes = fill_from_events(rows, events)
    a, b = out
    assert (a["iters_to_target_lo"], a["samples_to_target_lo"], a["time_to_target_lo_s"]) == (200, 2000, 4.0)
    assert a["effective_lr"] == 0.2 and a["final_test_acc"] == 0.95
    assert (
        a["optimizer_steps_to_target"] == 150 + 2 * 150 and a["optimizer_steps_to_target_lo"] == 150 + 2 * 50
    )
    assert b["iters_to_target_lo"] == 0  # reached at the first epoch end: the start is the last miss
    assert b["status"] == "collapsed" and b["recorded_status"] == "done" and b["collapsed_at_iter"] == 300
    assert rows[1]["status"] == "done"  # the caller's rows are not changed
    assert any("crossing intervals" in n for n in notes) and any("collapse" in n for n in notes)
    # one epoch at chance with a training loss still far below ln(10): not confirmed, the run stays done
    events[-1] = _epoch("b", 3, 300, 0.1135, loss=0.5)
    (_, b), _ = fill_from_events(rows, events)
    assert b["status"] == "done"


def test_fields_a_run_recorded_are_kept():
    events = [_epoch("a", 1, 100, 0.5), _epoch("a", 2, 200, 0.95)]
    rows = [
        {
            "run": "a",
            "batch_size": 10,
            "lr": 0.1,
            "status": "done",
            "iters_to_target": 180,
            "iters_to_target_lo": 170,
            "final_test_acc": 0.96,
        }
    ]
    (row,), notes = fill_from_events(rows, events)
    assert row["iters_to_target_lo"] == 170 and row["final_test_acc"] == 0.96
    assert not any("crossing" in n for n in notes)


def test_collapse_is_judged_against_the_datasets_own_chance():
    from trainer.report.collect import classes

    events = [
        {"type": "sweep_started", "classes": 100},
        {"type": "run_started", "run": "b", "batch_size": 10, "split_chunks": 1},
        _epoch("b", 1, 100, 0.926),
        _epoch("b", 2, 200, 0.829),
        _epoch("b", 3, 300, 0.1135, loss=2.36),
    ]
    rows = [{"run": "b", "batch_size": 10, "lr": 0.2, "split_chunks": 1, "status": "done"}]
    assert classes(events) == 100 and classes(events[1:]) == 10  # an older directory: ten, as before
    # 11% on ten classes is chance (collapsed); on a hundred it is eleven times chance
    (ten,), _ = fill_from_events(rows, events, classes(events[1:]))
    (hundred,), _ = fill_from_events(rows, events, classes(events))
    assert ten["status"] == "collapsed" and hundred["status"] == "done"
