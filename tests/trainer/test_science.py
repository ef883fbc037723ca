"""The science in the sweep: lr x batch x seed points, noise scale and oscillation figures, the scaling analysis."""

from __future__ import annotations

import math

import pytest

from trainer.plan import run_specs
from trainer.runlog import Emitter, ListSink
from trainer.sweep.driver import run_sweep


@pytest.fixture(autouse=True)
def _shared_dataset(tiny_dataset, monkeypatch):
    monkeypatch.setattr("trainer.sweep.prepare.load_dataset", lambda cfg, **kwargs: tiny_dataset)


def test_lr_grid_and_seeds_make_one_run_per_point(tiny_config):
    cfg = tiny_config(sweep={"seeds": 2})
    from trainer.config import LrGridConfig

    cfg.sweep.lr_grid = LrGridConfig(min=0.01, max=0.1, points=2)
    ids = [(s.run_id, s.batch_size, s.lr, s.seed) for s in run_specs(cfg)]
    assert ids == [
        ("bs20-lr0.01-s0", 20, 0.01, 0),
        ("bs20-lr0.01-s1", 20, 0.01, 1),
        ("bs20-lr0.1-s0", 20, 0.1, 0),
        ("bs20-lr0.1-s1", 20, 0.1, 1),
        ("bs200-lr0.01-s0", 200, 0.01, 0),
        ("bs200-lr0.01-s1", 200, 0.01, 1),
        ("bs200-lr0.1-s0", 200, 0.1, 0),
        ("bs200-lr0.1-s1", 200, 0.1, 1),
    ]


def test_seeds_change_the_initial_weights_and_the_order():
    from trainer.config import Config

    cfg = Config()
    cfg.sweep.batch_sizes = [60]
    cfg.sweep.seeds = 3
    cfg.sweep.seed = 5
    assert [s.seed for s in run_specs(cfg)] == [5, 6, 7]


def test_epochs_report_oscillation_and_noise_scale(tiny_config):
    cfg = tiny_config(gns={"every": 2, "chunks": 4})
    sink = ListSink()
    run_sweep(cfg, Emitter([sink]))
    for e in sink.of_type("epoch_end"):
        assert e["loss_diff_std"] > 0
        assert -1 <= e["grad_cos"] <= 1
        assert e["gns_estimates"] > 0
    bs20 = [e for e in sink.of_type("epoch_end") if e["run"] == "bs20"]
    assert bs20[-1]["gns_estimates"] == 2 * math.ceil(math.ceil(600 / 20) / 2)
    assert isinstance(bs20[-1]["gns_trace"], float)


def test_noise_scale_probes_do_not_change_training(tiny_config):
    def losses(every):
        sink = ListSink()
        run_sweep(
            tiny_config(gns={"every": every}, sweep={"batch_sizes": [20], "epochs": 1}), Emitter([sink])
        )
        return [v for e in sink.of_type("losses") for v in e["values"]]

    assert losses(0) == losses(3)


def test_sweep_finished_carries_the_scaling_analysis(tiny_config):
    sink = ListSink()
    run_sweep(tiny_config(sweep={"target_accuracy": 0.05}), Emitter([sink]))
    scaling = sink.events[-1]["scaling"]
    assert [p["batch_size"] for p in scaling["best"]] == [20, 200]
    assert all(p["reached_target"] for p in scaling["best"])
    assert "B_crit" in scaling["fit_steps"] or "error" in scaling["fit_steps"]
