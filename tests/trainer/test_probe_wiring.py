"""The batch-independent noise probe in the run loop: readings every `gns.probe_every`
training samples, off the clocks, as `noise_probe` events; the run's summary B_simple is the probe
window's with its interval and share of undefined readings; the probe's state goes through checkpoints."""

from __future__ import annotations

import math

import pytest
import torch

import trainer.engine.group as group_module
import trainer.measure.noise_probe as noise_probe
from trainer.config import GnsConfig
from trainer.engine.timing import WallClock
from trainer.measure.probes import Probes
from trainer.models.builtin import SimpleModel
from trainer.runlog import Emitter, ListSink
from trainer.sweep.driver import run_sweep


@pytest.fixture(autouse=True)
def _shared_dataset(tiny_dataset, monkeypatch):
    monkeypatch.setattr("trainer.sweep.prepare.load_dataset", lambda cfg, **kwargs: tiny_dataset)


def test_readings_every_probe_every_samples_off_the_clocks_and_in_the_summary(tiny_config, monkeypatch):
    clocks: list[WallClock] = []

    class Watched(WallClock):
        def __init__(self, device):
            super().__init__(device)
            clocks.append(self)

    running: list[bool] = []
    real = noise_probe.probe_reading

    def terms(*args, **kwargs):
        running.append(any(c.running for c in clocks))
        return real(*args, **kwargs)

    monkeypatch.setattr(group_module, "WallClock", Watched)  # the group's clocks time its runs
    monkeypatch.setattr(noise_probe, "probe_reading", terms)
    sink = ListSink()
    cfg = tiny_config(
        sweep={"batch_sizes": [20, 200], "epochs": 1, "eval_every": 0}, gns={"probe_every": 200}
    )
    result = run_sweep(cfg, Emitter([sink]))
    assert running and not any(running)  # every reading with the clocks stopped
    for run_id, _batch in (("bs20", 20), ("bs200", 200)):
        readings = [e for e in sink.of_type("noise_probe") if e["run"] == run_id]
        # due at the first batch end at or past each multiple of 200 samples: the same samples at any batch
        assert [e["samples"] for e in readings] == [200, 400, 600]
        assert all(
            e["probe_size"] == 1024 and e["chunk_size"] == 8 and e["window_samples"] == 1000 for e in readings
        )
        last = readings[-1]
        assert last["b_simple_readings"] == 3 and last["b_simple_from_samples"] == 200
        assert last["b_simple_at_samples"] == 600 and last["loss"] > 0  # read at the newest reading
        summary = next(s for s in result.summaries if s["run"] == run_id)
        assert summary["b_simple_source"] == "probe" and summary["b_simple_readings"] == 3
        assert (summary["b_simple_from_samples"], summary["b_simple_to_samples"]) == (200, 600)
        assert 0 <= summary["b_simple_undefined"] <= 1
        assert summary["b_simple"] == last["b_simple"]
        if summary["b_simple"] is not None and summary["b_simple_hi"] is not None:
            assert summary["b_simple_lo"] <= summary["b_simple"] <= summary["b_simple_hi"]
    started = sink.of_type("run_started")
    assert all(e["gns_probe_every"] == 200 for e in started)


def test_probe_every_zero_takes_no_reading_and_the_summary_keeps_the_in_batch_estimate(tiny_config):
    sink = ListSink()
    result = run_sweep(
        tiny_config(sweep={"batch_sizes": [20], "epochs": 1, "eval_every": 0}, gns={"probe_every": 0}),
        Emitter([sink]),
    )
    assert sink.of_type("noise_probe") == []
    s = result.summaries[0]
    assert s["b_simple_readings"] is None and s["b_simple_source"] in ("in_batch", None)
    assert s["b_simple"] == sink.of_type("epoch_end")[-1]["b_simple"]


def _probes(every: int) -> Probes:
    return Probes(GnsConfig(probe_every=every), batch_size=20, iters_per_epoch=30, seed=3)


def test_the_probe_state_goes_through_a_checkpoint_and_an_old_state_without_it_loads(tiny_dataset):
    torch.manual_seed(0)
    model = SimpleModel()
    images, labels = tiny_dataset.train.images, tiny_dataset.train.labels

    def read(p: Probes, samples: int) -> noise_probe.Reading:
        x, y = p.noise.draw(images, labels)
        return p.noise.update(model, x.unsqueeze(1).float().div(255), y, samples)

    first = _probes(100)
    read(first, 100)
    saved = first.state_dict()
    assert "noise" in saved
    again = _probes(100)
    again.load_state_dict(saved)
    assert again.noise.readings == first.noise.readings and again.noise.next_at == first.noise.next_at
    assert read(again, 200) == read(first, 200)  # the same probe batch drawn next: identical readings

    old = {k: v for k, v in saved.items() if k != "noise"}  # a checkpoint from before the probe
    fresh = _probes(100)
    fresh.load_state_dict(old)
    assert fresh.noise.readings == [] and fresh.noise.due(500)
    assert math.isfinite(read(fresh, 500).trace)
