"""Time alone (trainer.sweep.calibrate): each kind of step timed alone once per sweep, outside the runs' clocks,
so fused and lone runs are compared at what each batch size's steps cost alone."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from trainer.analysis.recommend import recommendation
from trainer.engine.evaluation import prepare_test
from trainer.plan import RunSettings, run_specs
from trainer.runlog import SUMMARY, Emitter, ListSink
from trainer.runlog.controls import Controls, StopRequested
from trainer.sweep import calibrate
from trainer.sweep.driver import run_sweep


@pytest.fixture(autouse=True)
def _shared_dataset(tiny_dataset, monkeypatch):
    monkeypatch.setattr("trainer.sweep.prepare.load_dataset", lambda cfg, **kwargs: tiny_dataset)


@pytest.fixture(scope="module")
def swept(data_root, tiny_dataset):
    """A fused group (batch 6: two lrs train as one stacked model) and two lone runs (batch 20: above the CPU
    fusing limit), two epochs, to a low target every run reaches."""
    from trainer.config import Config

    cfg = Config()
    cfg.data.dataset, cfg.data.root, cfg.data.download = "synthetic-digits", str(data_root), False
    cfg.data.train_samples, cfg.data.test_samples = 600, 200
    cfg.sweep.batch_sizes, cfg.sweep.lrs, cfg.sweep.epochs = [6, 20], [0.1, 0.2], 2
    cfg.sweep.device, cfg.sweep.target_accuracy, cfg.perf.cpu_threads = "cpu", 0.15, 1
    sink = ListSink()
    result = run_sweep(cfg, Emitter([sink]), dataset=tiny_dataset)
    return cfg, result, sink


def test_every_kind_of_step_is_timed_alone_once_before_training(swept):
    _, _, sink = swept
    times = sink.of_type("step_time")
    assert [(e["batch_size"], e["runs"]) for e in times] == [
        (6, ["bs6-lr0.1", "bs6-lr0.2"]),
        (20, ["bs20-lr0.1", "bs20-lr0.2"]),
    ]
    for e in times:
        assert "run" not in e and e["reason"] == ""
        assert 0 < e["step_s_lo"] <= e["step_s"] <= e["step_s_hi"] and e["cost_s"] > 0
        assert e["blocks"] >= calibrate.BLOCKS[0] and e["steps"] == e["blocks"] * e["block_steps"]
    first_run = next(i for i, e in enumerate(sink.events) if e["type"] == "run_started")
    assert all(sink.events.index(e) < first_run for e in times)  # before any run, outside every clock


def test_time_alone_is_batches_to_target_times_the_step_alone_for_fused_and_lone_runs(swept):
    _, result, sink = swept
    step = {r: e["step_s"] for e in sink.of_type("step_time") for r in e["runs"]}
    rows = {s["run"]: s for s in result.summaries}
    assert {r: rows[r]["fused_runs"] for r in rows} == {
        "bs6-lr0.1": 2,
        "bs6-lr0.2": 2,
        "bs20-lr0.1": 0,
        "bs20-lr0.2": 0,
    }
    for run, row in rows.items():
        assert row["iters_to_target"] is not None, run
        assert row["step_alone_s"] == step[run]
        assert math.isclose(row["time_alone_to_target_s"], row["iters_to_target"] * step[run])
        assert math.isclose(row["time_alone_to_target_lo_s"], row["iters_to_target_lo"] * step[run])
    # the fused runs' measured times stay their share of the group's, recorded as before
    assert rows["bs6-lr0.1"]["time_to_target_s"] is not None and sink.of_type("fused_group")


def test_the_answer_compares_the_fused_group_and_the_lone_runs_by_time_alone(swept):
    cfg, result, _ = swept
    points = {(p["batch_size"], p["lr"]): p for p in result.scaling["points"]}
    assert {p["time_alone_source"] for p in points.values()} == {"calibrated"}
    sentence = recommendation(result.scaling, cfg.sweep.target_accuracy, "cpu")
    assert "(its steps timed alone)" in sentence and "share" not in sentence
    fastest = min(points.values(), key=lambda p: p["time_alone_s"])
    assert sentence.startswith(f"fastest to 15% test accuracy: batch {fastest['batch_size']} at lr")


def test_summary_csv_has_the_time_alone_columns(tmp_path, tiny_config):
    from trainer.cli.main import main

    cfg_args = [
        "--set",
        'data.dataset="synthetic-digits"',
        "--set",
        f'data.root="{tiny_config().data.root}"',
        "--set",
        "data.download=false",
        "--set",
        "data.train_samples=600",
        "--set",
        "data.test_samples=200",
        "--set",
        "sweep.batch_sizes=[20]",
        "--set",
        "optim.lr=0.1",
        "--set",
        "sweep.epochs=2",
        "--set",
        "sweep.target_accuracy=0.15",
        "--set",
        "perf.cpu_threads=1",
        "--device",
        "cpu",
        "--quiet",
    ]
    out = tmp_path / "run"
    assert main(["run", *cfg_args, "--out", str(out)]) == 0
    with open(out / SUMMARY, newline="") as f:
        row = next(csv.DictReader(f))
    assert float(row["step_alone_s"]) > 0
    assert math.isclose(
        float(row["time_alone_to_target_s"]),
        int(row["iters_to_target"]) * float(row["step_alone_s"]),
        rel_tol=1e-6,
    )


def _one(tiny_config, tiny_dataset, batch=6):
    cfg = tiny_config(sweep={"batch_sizes": [batch]})
    settings = RunSettings.from_config(cfg)
    return run_specs(cfg)[0], settings, prepare_test(tiny_dataset, torch.device("cpu"))


def test_a_calibration_leaves_torch_random_state_as_it_was(tiny_config, tiny_dataset):
    spec, settings, test_set = _one(tiny_config, tiny_dataset)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    out = calibrate.measure(spec, settings, tiny_dataset, torch.device("cpu"), test_set, budget_s=0.01)
    assert out["step_s"] > 0
    assert torch.equal(torch.get_rng_state(), before)


def test_recorded_step_times_are_reused_not_measured_again(tiny_config, tiny_dataset, monkeypatch):
    spec, settings, test_set = _one(tiny_config, tiny_dataset)
    key = calibrate.step_key(spec, settings, torch.device("cpu"))
    recorded = [
        {
            "type": "step_time",
            "t": 1.0,
            "key": key,
            "batch_size": 6,
            "runs": [spec.run_id],
            "step_s": 0.002,
            "step_s_lo": 0.0019,
            "step_s_hi": 0.0022,
        }
    ]

    def never(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr(calibrate, "measure", never)
    sink = ListSink()
    got = calibrate.StepTimes(recorded).ensure(
        [spec], settings, tiny_dataset, torch.device("cpu"), test_set, Emitter([sink])
    )
    assert got[spec.run_id]["step_s"] == 0.002 and not sink.events


def test_a_stop_during_the_calibration_stops_it(tiny_config, tiny_dataset):
    spec, settings, test_set = _one(tiny_config, tiny_dataset)
    controls = Controls()
    controls.stop = True
    with pytest.raises(StopRequested):
        calibrate.measure(spec, settings, tiny_dataset, torch.device("cpu"), test_set, controls=controls)


def test_runs_of_a_few_steps_are_not_calibrated_and_say_why(tiny_config, tiny_dataset, monkeypatch):
    spec, settings, test_set = _one(tiny_config, tiny_dataset, batch=200)  # 600 samples x 2 epochs: 6 steps

    def never(*args, **kwargs):
        raise AssertionError("measured")

    monkeypatch.setattr(calibrate, "measure", never)
    sink = ListSink()
    got = calibrate.StepTimes().ensure(
        [spec], settings, tiny_dataset, torch.device("cpu"), test_set, Emitter([sink])
    )
    (event,) = sink.of_type("step_time")
    assert got[spec.run_id]["step_s"] is None and event["step_s"] is None
    assert "6 steps, fewer than 50" in event["reason"]
