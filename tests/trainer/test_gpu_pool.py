"""sweep.parallel: runs spread over worker processes, one per device. The GPUs are simulated
by CPU worker processes: the scheduling and event plumbing are the same."""

from __future__ import annotations

import pytest
import torch

from trainer.config import ConfigError, load_config
from trainer.plan import RunSpec, queue_order
from trainer.runlog import Emitter, ListSink
from trainer.runlog.controls import Controls
from trainer.sweep import gpu_pool
from trainer.sweep.driver import run_sweep


def test_auto_spreads_over_every_gpu_only_when_there_are_several():
    cuda = torch.device("cuda")
    assert gpu_pool.parallel_devices("auto", cuda, 4) == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    assert gpu_pool.parallel_devices("auto", cuda, 1) == []
    assert gpu_pool.parallel_devices("off", cuda, 4) == []
    assert gpu_pool.parallel_devices("auto", torch.device("cpu"), 0) == []


def test_runs_with_the_most_iterations_are_handed_out_first():
    specs = [
        RunSpec(run_id=f"bs{b}-{i}", batch_size=b, lr=0.1, momentum=0.5)
        for i, b in enumerate([600, 6, 60, 6, 6000])
    ]
    order = [s.run_id for s in queue_order(specs, 60000)]
    assert order == ["bs6-1", "bs6-3", "bs60-2", "bs600-0", "bs6000-4"]


def test_parallel_typo_gets_a_did_you_mean():
    with pytest.raises(ConfigError, match='did you mean "auto"'):
        load_config(None, ["sweep.parallel=atuo"])


@pytest.fixture
def two_cpu_workers(tiny_dataset, monkeypatch):
    """Sweeps here spread their runs over two CPU worker processes, as over two GPUs."""
    monkeypatch.setattr("trainer.sweep.prepare.load_dataset", lambda cfg, **kwargs: tiny_dataset)
    monkeypatch.setattr(gpu_pool, "parallel_devices", lambda setting, device, count: ["cpu", "cpu"])


def _losses(sink: ListSink) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for e in sink.of_type("losses"):
        out.setdefault(e["run"], []).extend(e["values"])
    return out


def test_runs_on_two_workers_train_exactly_as_in_one_process(tiny_config, tiny_dataset, two_cpu_workers):
    cfg = tiny_config(sweep={"batch_sizes": [60, 100, 200], "epochs": 1, "parallel": "auto"})
    spread = ListSink()
    result = run_sweep(cfg, Emitter([spread]))
    assert result.status == "done"
    assert [s["run"] for s in result.summaries] == [
        "bs60",
        "bs100",
        "bs200",
    ]  # sweep order, whoever finished first
    assert spread.events[0]["parallel_devices"] == ["cpu", "cpu"]
    assert spread.events[-1]["type"] == "sweep_finished"
    started = spread.of_type("run_started")
    assert sorted(e["run"] for e in started) == ["bs100", "bs200", "bs60"]
    assert all(e["worker"] in (0, 1) and e["device"] == "cpu" for e in started)
    assert sorted(e["run"] for e in spread.of_type("run_finished")) == ["bs100", "bs200", "bs60"]

    cfg.sweep.parallel = "off"
    alone = ListSink()
    run_sweep(cfg, Emitter([alone]), dataset=tiny_dataset)
    assert _losses(spread) == _losses(alone)  # same device, seeds and order: the same numbers


def test_stop_reaches_the_workers(tiny_config, tiny_dataset, monkeypatch):
    monkeypatch.setattr("trainer.sweep.prepare.load_dataset", lambda cfg, **kwargs: tiny_dataset)
    monkeypatch.setattr(gpu_pool, "parallel_devices", lambda setting, device, count: ["cpu"])  # one is enough
    controls = Controls()
    controls.apply({"cmd": "stop"})
    sink = ListSink()
    result = run_sweep(
        tiny_config(sweep={"batch_sizes": [20, 200], "parallel": "auto"}), Emitter([sink]), controls=controls
    )
    assert result.status == "stopped"
    assert {e["status"] for e in sink.of_type("run_finished")} <= {"stopped"}
    assert not sink.of_type("epoch_end")
    assert sink.events[-1]["type"] == "sweep_finished" and sink.events[-1]["status"] == "stopped"


def test_a_worker_that_cannot_start_leaves_its_runs_to_the_others(tiny_config, tiny_dataset, monkeypatch):
    monkeypatch.setattr("trainer.sweep.prepare.load_dataset", lambda cfg, **kwargs: tiny_dataset)
    monkeypatch.setattr(
        gpu_pool, "parallel_devices", lambda setting, device, count: ["cpu", "no-such-device"]
    )
    said: list[str] = []
    sink = ListSink()
    result = run_sweep(
        tiny_config(sweep={"batch_sizes": [100, 200], "epochs": 1, "parallel": "auto"}),
        Emitter([sink]),
        log=said.append,
    )
    assert result.status == "done"
    assert {e["worker"] for e in sink.of_type("run_started")} == {0}
    assert any("worker on no-such-device" in m and "the other workers take its runs" in m for m in said)
