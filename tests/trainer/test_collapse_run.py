"""Collapse in the run loop: a run that falls back to chance or never learns ends `collapsed`,
never `done`; a healthy run stays `done`. Tiny CPU sweeps on generated data."""

from __future__ import annotations

import pytest

from trainer.runlog import Emitter, ListSink
from trainer.sweep.driver import run_sweep


@pytest.fixture(autouse=True)
def _shared_dataset(tiny_dataset, monkeypatch):
    monkeypatch.setattr("trainer.sweep.prepare.load_dataset", lambda cfg, **kwargs: tiny_dataset)


def _finished(cfg):
    sink = ListSink()
    result = run_sweep(cfg, Emitter([sink]))
    return {e["run"]: e for e in sink.of_type("run_finished")}, result, sink


def test_a_huge_lr_ends_collapsed_and_a_healthy_lr_stays_done(tiny_config):
    # lr 1 on the tiny set: accuracy at chance and the loss flat at ln(10) for three epochs (measured:
    # 2.3214 -> 2.3228 -> 2.3249); lr 0.05 learns slowly (loss 2.308 -> 2.295), which is not a collapse.
    finished, result, _ = _finished(tiny_config(sweep={"batch_sizes": [20], "lrs": [0.05, 1.0], "epochs": 3}))
    healthy, huge = finished["bs20-lr0.05"], finished["bs20-lr1"]
    assert healthy["status"] == "done"
    assert healthy["summary"]["collapse_reason"] is None
    assert huge["status"] == "collapsed"
    assert "ln(10)" in huge["reason"] and "epoch 3" in huge["reason"]
    s = huge["summary"]
    assert s["status"] == "collapsed" and s["collapsed_at_epoch"] == 3 and s["collapsed_at_iter"] == 90
    assert s["final_test_acc"] is not None and s["final_test_acc"] <= 0.15
    # best lr: only an lr that reached the target, and a collapsed one never
    best = [p for p in result.summaries if p["status"] == "collapsed"]
    assert [p["run"] for p in best] == ["bs20-lr1"]


def test_accuracy_falling_back_to_chance_ends_the_run_once_the_next_evaluation_confirms_it(
    tiny_config, monkeypatch
):
    accuracies = iter([0.9, 0.8, 0.11, 0.1, 0.95])  # the third evaluation falls back, the fourth confirms
    monkeypatch.setattr("trainer.engine.evaluation.evaluate", lambda model, x, y: (0.5, next(accuracies)))
    finished, result, sink = _finished(
        tiny_config(sweep={"batch_sizes": [200], "epochs": 5, "eval_every": 0})
    )
    run = finished["bs200"]
    assert run["status"] == "collapsed"
    assert "fell back to 11.0%" in run["reason"] and "after reaching 90.0%" in run["reason"]
    assert [e["epoch"] for e in sink.of_type("epoch_end")] == [1, 2, 3, 4]  # it trained no further
    s = run["summary"]
    assert (s["epochs"], s["best_test_acc"], s["last_test_acc"], s["final_test_acc"]) == (4, 0.9, 0.1, 0.1)
    assert (s["collapsed_at_epoch"], s["collapsed_at_iter"]) == (3, 9)  # where it fell
    assert result.status == "done"  # a collapse ends the run, not the sweep


def test_a_dip_to_chance_that_recovers_trains_on_to_done(tiny_config, monkeypatch):
    # A batch 64 run at lr 0.4 seen in a real sweep: 0.35 -> 0.09 -> 0.43 is not a collapse.
    accuracies = iter([0.35, 0.09, 0.43])
    monkeypatch.setattr("trainer.engine.evaluation.evaluate", lambda model, x, y: (0.5, next(accuracies)))
    finished, _, sink = _finished(tiny_config(sweep={"batch_sizes": [200], "epochs": 3, "eval_every": 0}))
    run = finished["bs200"]
    assert run["status"] == "done" and run["summary"]["collapse_reason"] is None
    assert [e["epoch"] for e in sink.of_type("epoch_end")] == [1, 2, 3]
    assert (run["summary"]["best_test_acc"], run["summary"]["last_test_acc"]) == (0.43, 0.43)
