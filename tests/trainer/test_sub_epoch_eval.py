"""Sub-epoch evaluation: the evaluation slice every `sweep.eval_every` samples, off the clocks,
recorded as `evaluation` events; time, steps and samples to target from the first crossing, with the
last miss kept as the interval's lower end. Tiny CPU sweeps on generated data."""

from __future__ import annotations

import textwrap

import pytest

import trainer.engine.evaluation as evaluation_module
import trainer.engine.group as group_module
from trainer.config import ConfigError, config_from_toml
from trainer.engine.timing import WallClock
from trainer.plan import eval_interval
from trainer.runlog import Emitter, ListSink, summary_csv
from trainer.sweep.driver import run_sweep


@pytest.fixture(autouse=True)
def _shared_dataset(tiny_dataset, monkeypatch):
    monkeypatch.setattr("trainer.sweep.prepare.load_dataset", lambda cfg, **kwargs: tiny_dataset)


def _sweep(cfg):
    sink = ListSink()
    result = run_sweep(cfg, Emitter([sink]))
    return result, sink


def test_the_default_evaluates_about_ten_times_an_epoch_and_zero_only_at_epoch_ends(tiny_config):
    assert eval_interval(-1, 60_000) == 6_000 and eval_interval(-1, 600) == 60 and eval_interval(-1, 5) == 1
    assert eval_interval(0, 60_000) == 0 and eval_interval(1234, 60_000) == 1234
    _, sink = _sweep(tiny_config(sweep={"batch_sizes": [20], "epochs": 2}))
    evals = sink.of_type("evaluation")
    # 600 samples an epoch, every 60: 9 in each epoch, and the 10th at the epoch end (on the same slice,
    # before the epoch_end that adds the full test set's figures)
    assert [e["samples"] for e in evals] == [60 * i for i in range(1, 21)]
    assert [e["epoch"] for e in evals] == [1] * 10 + [2] * 10
    assert [e["epoch_end"] for e in evals] == ([False] * 9 + [True]) * 2
    assert all(
        e["eval_set"] == "slice" and e["eval_samples"] == 200 and e["iter"] == e["samples"] // 20
        for e in evals
    )
    assert [e["eval_set"] for e in sink.of_type("epoch_end")] == ["full", "full"]
    position = {id(e): i for i, e in enumerate(sink.events)}
    assert all(
        position[id(end)] == position[id(ev)] + 1 for ev, end in zip(evals[9::10], sink.of_type("epoch_end"))
    )
    assert all(0 <= e["test_acc"] <= 1 and e["train_loss"] > 0 for e in evals)
    walls = [e["wall_s"] for e in evals]
    assert walls == sorted(walls) and all(0 <= e["compute_s"] <= e["wall_s"] for e in evals)
    started = sink.of_type("run_started")[0]
    assert (started["eval_every"], started["eval_samples"]) == (60, 200)

    _, sink = _sweep(tiny_config(sweep={"batch_sizes": [20], "epochs": 1, "eval_every": 0}))
    assert [e["epoch_end"] for e in sink.of_type("evaluation")] == [True] and len(
        sink.of_type("epoch_end")
    ) == 1


def test_the_crossing_is_the_first_hit_with_the_last_miss_as_its_lower_end(tiny_config, monkeypatch):
    accuracies = iter([0.1, 0.2, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3])
    monkeypatch.setattr(evaluation_module, "evaluate", lambda model, x, y: (2.0, next(accuracies)))
    result, sink = _sweep(tiny_config(sweep={"batch_sizes": [20], "epochs": 1, "target_accuracy": 0.25}))
    target = sink.of_type("target_reached")
    assert len(target) == 1
    t = target[0]
    assert (t["source"], t["epoch"], t["iter"], t["samples"], t["iter_lo"], t["samples_lo"]) == (
        "slice",
        1,
        9,
        180,
        6,
        120,
    )
    assert (t["optimizer_steps"], t["optimizer_steps_lo"]) == (9, 6)
    assert 0 < t["wall_s_lo"] < t["wall_s"] and 0 < t["compute_s_lo"] < t["compute_s"]
    s = result.summaries[0]
    assert (
        s["iters_to_target"],
        s["iters_to_target_lo"],
        s["samples_to_target"],
        s["samples_to_target_lo"],
    ) == (9, 6, 180, 120)
    assert (s["time_to_target_s"], s["time_to_target_lo_s"]) == (t["wall_s"], t["wall_s_lo"])
    assert s["final_test_acc"] == 0.3  # the epoch end's full test set
    header, row = summary_csv([s]).splitlines()
    cells = dict(zip(header.split(","), row.split(",")))
    assert (cells["iters_to_target_lo"], cells["samples_to_target_lo"], cells["final_test_acc"]) == (
        "6",
        "120",
        "0.3",
    )


def test_a_target_hit_at_the_first_evaluation_has_the_start_as_its_lower_end(tiny_config):
    result, sink = _sweep(tiny_config(sweep={"batch_sizes": [20], "epochs": 1, "target_accuracy": 0.01}))
    s = result.summaries[0]
    assert (s["iters_to_target"], s["iters_to_target_lo"], s["time_to_target_lo_s"]) == (3, 0, 0)


def test_evaluations_run_with_the_clocks_stopped(tiny_config, monkeypatch):
    clocks: list[WallClock] = []

    class Watched(WallClock):
        def __init__(self, device):
            super().__init__(device)
            clocks.append(self)

    seen: list[bool] = []
    real = evaluation_module.evaluate

    def evaluate(model, x, y):
        seen.append(any(c.running for c in clocks))
        return real(model, x, y)

    monkeypatch.setattr(group_module, "WallClock", Watched)  # the group's clocks time its runs
    monkeypatch.setattr(evaluation_module, "evaluate", evaluate)
    _sweep(tiny_config(sweep={"batch_sizes": [20, 200], "epochs": 1}))
    assert len(seen) == 9 + 1 + 2 + 1 and not any(seen)  # bs20: 9 + epoch end; bs200: at 200, 400 + end


def test_eval_every_is_validated_with_its_line():
    with pytest.raises(ConfigError) as info:
        config_from_toml(
            textwrap.dedent("""
            [sweep]
            eval_every = -5
        """).lstrip("\n"),
            source="exp.toml",
        )
    assert (
        str(info.value)
        == "exp.toml:2: sweep.eval_every: must be >= -1 (0 = epoch ends only, -1 = about 10 per epoch), got -5"
    )
